"""Prometheus Alertmanager as a receiver: POST /api/v2/alerts to every replica.

Alertmanager replicates silences and its notification log but not alerts, so every replica
must get every alert (not one behind a load balancer). A resolved alert carries endsAt = the
time it resolved, so Alertmanager resolves it at once; a firing alert has no endsAt, so
Alertmanager keeps it until resolve_timeout after the last time it was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checkrunner.alerting.model import Alert, Notification, rfc3339
from checkrunner.alerting.receivers.base import (
    TIMEOUT_OPTION,
    Delivery,
    RenderError,
    digest,
    scrubbed,
    send_resolved_option,
    with_defaults,
)
from checkrunner.alerting.receivers.http import HTTP_OPTIONS, post_json

KIND = "alertmanager"
SEND_RESOLVED_DEFAULT = True  # it is how Alertmanager learns that an alert resolved
RATE_LIMIT: tuple[int, float] | None = None

API_PATH = "/api/v2/alerts"
TEST_ALERTNAME = "CheckrunnerTestNotification"

OPTIONS: dict[str, dict[str, Any]] = {
    "urls": {
        "type": "list",
        "elements": "str",
        "format": "url",
        "required": True,
        "description": "Base URL of every Alertmanager replica, e.g. http://am1:9093 "
        "(each gets every alert; /api/v2/alerts is appended).",
    },
    "headers": {
        "type": "dict",
        "default": {},
        "secret": True,
        "description": "Extra request headers, e.g. {Authorization: 'Bearer {{ env.TOKEN }}'}.",
    },
    "send_resolved": send_resolved_option(SEND_RESOLVED_DEFAULT),
    "timeout": TIMEOUT_OPTION,
    **HTTP_OPTIONS,
}
REQUIRED_ONE_OF: list[list[str]] = []
MUTUALLY_EXCLUSIVE: list[list[str]] = []


def api_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


def destination(config: Mapping[str, Any]) -> str:
    return digest(KIND, *sorted(str(u) for u in config.get("urls") or []))


def postable(alert: Alert) -> dict[str, Any]:
    """One item of POST /api/v2/alerts."""
    item: dict[str, Any] = {
        "labels": {str(k): str(v) for k, v in alert.labels.items()},
        "annotations": {str(k): str(v) for k, v in alert.annotations.items()},
    }
    if alert.starts_at:
        item["startsAt"] = rfc3339(alert.starts_at)
    if alert.ends_at is not None:
        item["endsAt"] = rfc3339(alert.ends_at)
    if alert.generator_url:
        item["generatorURL"] = alert.generator_url
    return item


def render(config: Mapping[str, Any], notification: Notification) -> list[dict[str, Any]]:
    """One payload per replica: {"url": base URL, "alerts": [postable alerts]}."""
    config = with_defaults(OPTIONS, config)
    urls = [str(u) for u in config.get("urls") or [] if u]
    if not urls:
        raise RenderError("the alertmanager receiver needs at least one URL in `urls`")
    alerts = [postable(a) for a in notification.alerts]
    if notification.test and not alerts:
        alerts = [
            {
                "labels": {"alertname": TEST_ALERTNAME, "receiver": notification.receiver},
                "annotations": {"message": "test notification from checkrun notify --test"},
            }
        ]
    return [{"url": url, "alerts": alerts} for url in urls]


def send(config: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> Delivery:
    config = with_defaults(OPTIONS, config)
    url = api_url(str(payload["url"]))
    _, verdict = post_json(
        url, payload["alerts"], timeout=timeout, config=config, headers=config["headers"]
    )
    return scrubbed(verdict, OPTIONS, config)
