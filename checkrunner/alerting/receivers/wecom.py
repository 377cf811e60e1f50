"""WeCom (企业微信) group robot: text or markdown, split by UTF-8 bytes under the platform's
limits, success only when the reply says errcode 0."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checkrunner.alerting.model import Notification
from checkrunner.alerting.receivers import format as fmt
from checkrunner.alerting.receivers.base import (
    RobotAddress,
    with_defaults,
)
from checkrunner.alerting.receivers.http import ReplyCodes, im_message_options, robot_sender

KIND = "wecom"
SEND_RESOLVED_DEFAULT = False  # as Alertmanager's wechat receiver
RATE_LIMIT: tuple[int, float] | None = (20, 60.0)  # 20 messages a minute per robot
KEEPS_ALERTS = False  # told through the notification log: new, resolved, repeat_interval

API_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
#: Content limits in UTF-8 bytes (errcode 40058 beyond them).
LIMITS = {"text": 2048, "markdown": 4096}
REPLY_CODES = ReplyCodes.errcode(rate_limited={45009: 60.0})  # api freq out of limit

ADDRESS = RobotAddress(KIND, API_URL, "key")
robot_url = ADDRESS.url
destination = ADDRESS.destination

OPTIONS: dict[str, dict[str, Any]] = {
    **ADDRESS.options(f"{API_URL}?key=KEY", "key"),
    "msgtype": {
        "type": "str",
        "default": "markdown",
        "choices": ["markdown", "text"],
        "description": "markdown (up to 4096 bytes a message) or text (2048 bytes, and the "
        "only type whose mentions notify people).",
    },
    "mentioned_list": {
        "type": "list",
        "elements": "str",
        "default": [],
        "description": "User ids to mention (@all for everyone); with markdown written as "
        "<@userid> in the message.",
    },
    "mentioned_mobile_list": {
        "type": "list",
        "elements": "str",
        "default": [],
        "description": "Mobile numbers to mention (text messages only).",
    },
    **im_message_options(
        "Jinja2 template of the first line; default like '[FIRING:2] disk full (web)'.",
        SEND_RESOLVED_DEFAULT,
    ),
}
REQUIRED_ONE_OF = ADDRESS.one_of
MUTUALLY_EXCLUSIVE = ADDRESS.one_of


def render(config: Mapping[str, Any], notification: Notification) -> list[dict[str, Any]]:
    """A message per piece of at most LIMITS[msgtype] bytes, cut at line boundaries."""
    config = with_defaults(OPTIONS, config)
    msgtype = config["msgtype"]
    title, body = fmt.im_title_and_body(config, notification, "wecom")
    if msgtype == "text":
        content = fmt.join(title, body)
    else:
        mentions = " ".join(f"<@{m}>" for m in config["mentioned_list"] if m != "@all")
        content = fmt.join(f"**{title}**" if title else "", body, mentions)
    pieces = fmt.split_by_bytes(content, LIMITS[msgtype])
    payloads: list[dict[str, Any]] = []
    for index, piece in enumerate(pieces):
        if msgtype == "markdown":
            payloads.append({"msgtype": "markdown", "markdown": {"content": piece}})
            continue
        message: dict[str, Any] = {"content": piece}
        if index == 0:  # mention once, on the first message
            if config["mentioned_list"]:
                message["mentioned_list"] = list(config["mentioned_list"])
            if config["mentioned_mobile_list"]:
                message["mentioned_mobile_list"] = list(config["mentioned_mobile_list"])
        payloads.append({"msgtype": "text", "text": message})
    return payloads


send = robot_sender(OPTIONS, robot_url, REPLY_CODES)
