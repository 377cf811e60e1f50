"""Feishu / Lark custom bot: a text message or an interactive card with a coloured header,
signed in the body when a secret is set; success only when the reply says code 0."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from typing import Any

from checkrunner.alerting.model import Notification
from checkrunner.alerting.receivers import format as fmt
from checkrunner.alerting.receivers.base import (
    Delivery,
    digest,
    redact_url,
    scrubbed,
    with_defaults,
)
from checkrunner.alerting.receivers.http import (
    ReplyCodes,
    encode_json,
    im_message_options,
    post_im,
)

KIND = "feishu"
SEND_RESOLVED_DEFAULT = True  # webhook-like: the recovery message is the point
RATE_LIMIT: tuple[int, float] | None = (100, 60.0)  # 100 a minute (and 5 a second) per bot
KEEPS_ALERTS = False  # told through the notification log: new, resolved, repeat_interval

#: The request body may be at most 20 KB; room is kept for timestamp and sign.
BODY_LIMIT = 20000
SIGNATURE_ROOM = 128  # ,"timestamp":"…","sign":"…" and a " (n/m)" in the title
REPLY_CODES = ReplyCodes(
    code_keys=("code", "StatusCode"),
    message_keys=("msg", "StatusMessage"),
    #: 11232: frequency limited; 9499: too many requests.
    rate_limited={11232: 60.0, 9499: 60.0},
)

OPTIONS: dict[str, dict[str, Any]] = {
    "url": {
        "type": "str",
        "format": "url",
        "required": True,
        "secret": True,
        "description": "The bot's webhook URL, https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN "
        "(Lark: open.larksuite.com).",
    },
    "secret": {
        "type": "str",
        "secret": True,
        "description": "The bot's signing secret: each message carries a timestamp and its "
        "HMAC-SHA256 signature when it is set.",
    },
    "msgtype": {
        "type": "str",
        "default": "interactive",
        "choices": ["interactive", "text"],
        "description": "interactive (a card: coloured title, markdown lines) or text.",
    },
    **im_message_options(
        "Jinja2 template of the title; default like '[FIRING:2] disk full (web)'.",
        SEND_RESOLVED_DEFAULT,
    ),
}
REQUIRED_ONE_OF: list[list[str]] = []
MUTUALLY_EXCLUSIVE: list[list[str]] = []


def destination(config: Mapping[str, Any]) -> str:
    return digest(KIND, str(config.get("url") or ""))


def sign(secret: str, timestamp_s: str) -> str:
    """base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=b"")): the key and message roles
    are the reverse of DingTalk's."""
    import hmac

    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def _color(notification: Notification) -> str:
    if notification.test:
        return "blue"
    return "red" if notification.firing else "green"


def _message(msgtype: str, title: str, content: str, color: str) -> dict[str, Any]:
    if msgtype == "text":
        return {"msg_type": "text", "content": {"text": content}}
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {"template": color, "title": {"tag": "plain_text", "content": title}},
            "elements": [{"tag": "markdown", "content": content}],
        },
    }


def render(config: Mapping[str, Any], notification: Notification) -> list[dict[str, Any]]:
    """A message per piece, each body (JSON as sent, with room for the signature) at most
    BODY_LIMIT bytes."""
    config = with_defaults(OPTIONS, config)
    msgtype = config["msgtype"]
    title, body = fmt.im_title_and_body(config, notification)
    color = _color(notification)
    content = fmt.join(title, body) if msgtype == "text" else body or title
    overhead = len(encode_json(_message(msgtype, title, "", color))) + SIGNATURE_ROOM
    pieces = fmt.split_by_bytes(content, BODY_LIMIT - overhead, size=fmt.json_string_size)
    payloads = []
    for index, piece in enumerate(pieces):
        shown = title if len(pieces) == 1 else f"{title} ({index + 1}/{len(pieces)})"
        payloads.append(_message(msgtype, shown, piece, color))
    return payloads


def send(config: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> Delivery:
    config = with_defaults(OPTIONS, config)
    url = str(config.get("url") or "")
    if not url:
        return Delivery.fail("the feishu receiver needs `url`")
    body = dict(payload)
    if config.get("secret"):
        timestamp_s = str(int(time.time()))
        body["timestamp"] = timestamp_s
        body["sign"] = sign(config["secret"], timestamp_s)
    shown = redact_url(url, keep_path=False)
    verdict = post_im(url, body, timeout=timeout, config=config, shown=shown, codes=REPLY_CODES)
    return scrubbed(verdict, OPTIONS, config)
