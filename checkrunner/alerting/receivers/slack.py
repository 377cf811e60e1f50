"""Slack incoming webhook, as Alertmanager's slack receiver: one attachment coloured by
status (danger / good), success only when the reply is 200 with body "ok"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checkrunner.alerting.model import Notification
from checkrunner.alerting.receivers import format as fmt
from checkrunner.alerting.receivers.base import (
    TIMEOUT_OPTION,
    Delivery,
    redact_url,
    scrubbed,
    send_resolved_option,
    short_body,
    template_option,
    url_or_file,
    url_or_file_destination,
    with_defaults,
)
from checkrunner.alerting.receivers.http import HTTP_OPTIONS, post_json

KIND = "slack"
SEND_RESOLVED_DEFAULT = False  # as Alertmanager's slack receiver
RATE_LIMIT: tuple[int, float] | None = (60, 60.0)  # about one message a second
KEEPS_ALERTS = False  # told through the notification log: new, resolved, repeat_interval

#: Slack truncates longer message text (about 40k characters); longer messages are split.
TEXT_LIMIT = 38000
COLORS = {"firing": "danger", "resolved": "good", "test": "#439FE0"}

OPTIONS: dict[str, dict[str, Any]] = {
    "api_url": {
        "type": "str",
        "format": "url",
        "secret": True,
        "description": "The incoming webhook URL, https://hooks.slack.com/services/T/B/X.",
    },
    "api_url_file": {
        "type": "str",
        "description": "File holding the webhook URL (read at each send), instead of api_url.",
    },
    "channel": {"type": "str", "description": "Channel or user to send to (#ops, @someone)."},
    "username": {"type": "str", "description": "Name the message is posted under."},
    "icon_emoji": {"type": "str", "description": "Emoji icon, e.g. :rotating_light:."},
    "icon_url": {"type": "str", "description": "URL of an image icon."},
    "title": template_option(
        "Jinja2 template of the attachment title; default like '[FIRING:2] disk full (web)'."
    ),
    "title_link": {"type": "str", "description": "URL the title links to."},
    "text": template_option(
        "Jinja2 template of the attachment text (mrkdwn); default a line per alert."
    ),
    "color": {
        "type": "str",
        "description": "Attachment colour; default danger when firing, good when resolved.",
    },
    "send_resolved": send_resolved_option(SEND_RESOLVED_DEFAULT),
    "timeout": TIMEOUT_OPTION,
    **HTTP_OPTIONS,
}
REQUIRED_ONE_OF = [["api_url", "api_url_file"]]
MUTUALLY_EXCLUSIVE = [["api_url", "api_url_file"]]


def destination(config: Mapping[str, Any]) -> str:
    return url_or_file_destination(KIND, config, "api_url")


def render(config: Mapping[str, Any], notification: Notification) -> list[dict[str, Any]]:
    config = with_defaults(OPTIONS, config)
    title, body = fmt.title_and_body(
        config,
        notification,
        default_body=lambda n: fmt.body_markdown(n, "slack"),
        body_option="text",
    )
    status = "test" if notification.test else notification.status
    color = config.get("color") or COLORS[status]
    pieces = fmt.split_by_bytes(body, TEXT_LIMIT, size=lambda _char: 1)
    payloads = []
    for index, piece in enumerate(pieces):
        shown = title if len(pieces) == 1 else f"{title} ({index + 1}/{len(pieces)})"
        attachment: dict[str, Any] = {
            "fallback": shown,
            "color": color,
            "title": shown,
            "text": piece,
            "mrkdwn_in": ["text", "pretext"],
        }
        if config.get("title_link"):
            attachment["title_link"] = config["title_link"]
        payload: dict[str, Any] = {"attachments": [attachment]}
        for name in ("channel", "username", "icon_emoji", "icon_url"):
            if config.get(name):
                payload[name] = config[name]
        payloads.append(payload)
    return payloads


def send(config: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> Delivery:
    config = with_defaults(OPTIONS, config)
    return scrubbed(_send(config, payload, timeout), OPTIONS, config)


def _send(config: dict[str, Any], payload: Mapping[str, Any], timeout: float) -> Delivery:
    url = url_or_file(KIND, config, "api_url")
    if isinstance(url, Delivery):
        return url
    shown = redact_url(url, keep_path=False)
    response, verdict = post_json(url, payload, timeout=timeout, config=config, shown=shown)
    verdict = scrubbed(verdict, OPTIONS, {**config, "api_url": url})  # also one from a file
    if response is None or not verdict.ok:
        return verdict
    if response.body.strip() != b"ok":
        return Delivery.fail(
            f"POST {shown}: HTTP {response.status} but not ok: {short_body(response.body)}"
        )
    return verdict
