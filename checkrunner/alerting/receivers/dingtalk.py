"""DingTalk (钉钉) custom robot: text or markdown, signed with timestamp + HMAC-SHA256 when a
secret is set, success only when the reply says errcode 0."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus, urlsplit

from checkrunner.alerting.model import Notification
from checkrunner.alerting.receivers import format as fmt
from checkrunner.alerting.receivers.base import (
    RobotAddress,
    with_defaults,
)
from checkrunner.alerting.receivers.http import ReplyCodes, im_message_options, robot_sender

KIND = "dingtalk"
SEND_RESOLVED_DEFAULT = True  # webhook-like: the recovery message is the point
RATE_LIMIT: tuple[int, float] | None = (20, 60.0)  # 20 a minute per robot
KEEPS_ALERTS = False  # told through the notification log: new, resolved, repeat_interval

API_URL = "https://oapi.dingtalk.com/robot/send"
#: Content limit in UTF-8 bytes (about 20 KB; not documented exactly).
LIMIT = 20000
#: 130101: over 20 a minute, after which the robot is throttled for 10 minutes;
#: 410100: sending too fast.
REPLY_CODES = ReplyCodes.errcode(rate_limited={130101: 600.0, 410100: 60.0})

ADDRESS = RobotAddress(KIND, API_URL, "access_token")
robot_url = ADDRESS.url
destination = ADDRESS.destination

OPTIONS: dict[str, dict[str, Any]] = {
    **ADDRESS.options(f"{API_URL}?access_token=TOKEN", "access token"),
    "secret": {
        "type": "str",
        "secret": True,
        "description": "The robot's signing secret (SEC...): each message is signed with a "
        "timestamp and HMAC-SHA256 when it is set.",
    },
    "msgtype": {
        "type": "str",
        "default": "markdown",
        "choices": ["markdown", "text"],
        "description": "markdown (title + text) or text.",
    },
    "at_mobiles": {
        "type": "list",
        "elements": "str",
        "default": [],
        "description": "Mobile numbers to mention.",
    },
    "at_user_ids": {
        "type": "list",
        "elements": "str",
        "default": [],
        "description": "DingTalk user ids to mention.",
    },
    "is_at_all": {"type": "bool", "default": False, "description": "Mention everyone."},
    **im_message_options(
        "Jinja2 template of the title (markdown's title and first line); "
        "default like '[FIRING:2] disk full (web)'.",
        SEND_RESOLVED_DEFAULT,
    ),
}
REQUIRED_ONE_OF = ADDRESS.one_of
MUTUALLY_EXCLUSIVE = ADDRESS.one_of


def sign(secret: str, timestamp_ms: str) -> str:
    """base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")), not yet URL-encoded."""
    import hmac

    digest_bytes = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest_bytes).decode("ascii")


def signed_url(url: str, secret: str, now: float | None = None) -> str:
    timestamp_ms = str(round((time.time() if now is None else now) * 1000))
    joiner = "&" if urlsplit(url).query else ("" if url.endswith("?") else "?")
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={quote_plus(sign(secret, timestamp_ms))}"


def render(config: Mapping[str, Any], notification: Notification) -> list[dict[str, Any]]:
    """A message per piece of at most LIMIT bytes; mentions on the last one (DingTalk wants
    the @mobile in the text for markdown)."""
    config = with_defaults(OPTIONS, config)
    msgtype = config["msgtype"]
    title, body = fmt.im_title_and_body(config, notification)
    mentions = " ".join(
        [f"@{m}" for m in config["at_mobiles"]] + [f"@{u}" for u in config["at_user_ids"]]
    )
    if msgtype == "text":
        content = fmt.join(title, body, mentions)
    else:
        content = fmt.join(f"#### {title}" if title else "", body, mentions)
    pieces = fmt.split_by_bytes(content, LIMIT)
    at = {
        "atMobiles": list(config["at_mobiles"]),
        "atUserIds": list(config["at_user_ids"]),
        "isAtAll": bool(config["is_at_all"]),
    }
    payloads: list[dict[str, Any]] = []
    for index, piece in enumerate(pieces):
        if msgtype == "text":
            payload: dict[str, Any] = {"msgtype": "text", "text": {"content": piece}}
        else:
            shown_title = title or "alert"
            if len(pieces) > 1:
                shown_title += f" ({index + 1}/{len(pieces)})"
            payload = {"msgtype": "markdown", "markdown": {"title": shown_title, "text": piece}}
        if index == len(pieces) - 1:
            payload["at"] = at
        payloads.append(payload)
    return payloads


send = robot_sender(OPTIONS, robot_url, REPLY_CODES, signed_url)
