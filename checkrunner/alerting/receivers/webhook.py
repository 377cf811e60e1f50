"""Alertmanager's webhook: a POST of the version 4 JSON payload, or of a body rendered from
a Jinja2 template; any 2xx is success."""

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
    template_option,
    url_or_file,
    url_or_file_destination,
    with_defaults,
)
from checkrunner.alerting.receivers.http import HTTP_OPTIONS, classify, encode_json, post

KIND = "webhook"
SEND_RESOLVED_DEFAULT = True
RATE_LIMIT: tuple[int, float] | None = None
KEEPS_ALERTS = False  # told through the notification log: new, resolved, repeat_interval

OPTIONS: dict[str, dict[str, Any]] = {
    "url": {
        "type": "str",
        "format": "url",
        "secret": True,
        "description": "URL to POST to.",
    },
    "url_file": {
        "type": "str",
        "description": "File holding the URL (read at each send), instead of `url`.",
    },
    "max_alerts": {
        "type": "int",
        "default": 0,
        "description": "At most this many alerts in one payload (0: all); the number left out "
        "is in truncatedAlerts.",
    },
    "headers": {
        "type": "dict",
        "default": {},
        "secret": True,
        "description": "Extra request headers, e.g. {Authorization: 'Bearer {{ env.TOKEN }}'}.",
    },
    "payload": template_option(
        "Jinja2 template of the request body (sandboxed); its variables are the "
        "fields of the version 4 payload (status, groupKey, alerts, commonLabels, ...). "
        "Without it the body is the version 4 JSON."
    ),
    "send_resolved": send_resolved_option(SEND_RESOLVED_DEFAULT),
    "timeout": TIMEOUT_OPTION,
    **HTTP_OPTIONS,
}
REQUIRED_ONE_OF = [["url", "url_file"]]
MUTUALLY_EXCLUSIVE = [["url", "url_file"]]


def destination(config: Mapping[str, Any]) -> str:
    return url_or_file_destination(KIND, config, "url")


def render(config: Mapping[str, Any], notification: Notification) -> list[dict[str, Any]]:
    """One payload, {"body": the v4 dict, or the text rendered from `payload`}."""
    config = with_defaults(OPTIONS, config)
    max_alerts = max(0, int(config["max_alerts"]))
    if config.get("payload"):
        variables = fmt.template_vars(notification, max_alerts)
        return [{"body": fmt.render_template(config["payload"], variables, "payload")}]
    return [{"body": notification.to_webhook(max_alerts)}]


def send(config: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> Delivery:
    config = with_defaults(OPTIONS, config)
    return scrubbed(_send(config, payload, timeout), OPTIONS, config)


def _send(config: dict[str, Any], payload: Mapping[str, Any], timeout: float) -> Delivery:
    url = url_or_file(KIND, config, "url")
    if isinstance(url, Delivery):
        return url
    body = payload["body"]
    data = body.encode("utf-8") if isinstance(body, str) else encode_json(body)
    shown = redact_url(url)
    result = post(url, data, timeout=timeout, headers=config["headers"], config=config, shown=shown)
    verdict = result if isinstance(result, Delivery) else classify(result, shown)
    return scrubbed(verdict, OPTIONS, {**config, "url": url})  # also a URL read from url_file
