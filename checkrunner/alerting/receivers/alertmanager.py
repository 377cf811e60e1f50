"""Prometheus Alertmanager as a receiver: POST /api/v2/alerts to every replica.

Alertmanager replicates silences and its notification log but not alerts, so every replica
must get every alert (not one behind a load balancer). A resolved alert carries endsAt = the
time it resolved, so Alertmanager resolves it at once.

Alertmanager resolves a firing alert by itself once its endsAt has passed, and without an
endsAt that is resolve_timeout (5m) after the last time it was sent: runs further apart
would make it announce "resolved" while the check still fails. So, as Prometheus does with
4 x its evaluation interval, a firing alert is sent with endsAt = the time it is sent +
ENDS_AT_RUNS x the time between runs: `run_interval` when set, else the interval observed
between the runs of its checks (at least MIN_RUN_INTERVAL; FIRST_RUN_INTERVAL while there
is no earlier run). Every run re-sends every firing alert, so endsAt keeps moving ahead;
an alert whose checks stop running expires after it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from checkrunner.alerting.model import Alert, Notification, rfc3339
from checkrunner.alerting.receivers.base import (
    TIMEOUT_OPTION,
    Delivery,
    digest,
    scrubbed,
    send_resolved_option,
    with_defaults,
)
from checkrunner.alerting.receivers.http import HTTP_OPTIONS, post_json
from checkrunner.errors import RenderError

KIND = "alertmanager"
SEND_RESOLVED_DEFAULT = True  # it is how Alertmanager learns that an alert resolved
RATE_LIMIT: tuple[int, float] | None = None
# Alertmanager keeps alerts itself and forgets one that is not re-sent: it gets every firing
# alert its route matches on every run, muted ones too (annotated `muted_by`: its own inhibit
# rules and silences decide), with the interval observed between runs; it dedups, groups and
# repeats by itself, so the notification log is not consulted for it.
KEEPS_ALERTS = True

API_PATH = "/api/v2/alerts"
TEST_ALERTNAME = "CheckrunnerTestNotification"

ENDS_AT_RUNS = 4  # Prometheus: endsAt = 4 x its evaluation interval ahead
MIN_RUN_INTERVAL = 60.0  # Prometheus's resend delay: no endsAt closer than 4 minutes
FIRST_RUN_INTERVAL = 900.0  # assumed before a second run has shown the real interval

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
    "run_interval": {
        "type": "duration",
        "description": "How often checkrun runs these checks (e.g. the cron interval). Firing "
        "alerts are sent with endsAt 4 x this ahead (4 x the observed interval between runs "
        "when that is longer); default: the observed interval, at least 1m (15m before "
        "the second run).",
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


def valid_for(config: Mapping[str, Any], notification: Notification) -> float:
    """Seconds ahead of the send time that a firing alert's endsAt is set."""
    configured = config.get("run_interval")
    observed = notification.run_interval
    if configured:
        interval = max(float(configured), observed or 0.0)
    elif observed is None:
        interval = FIRST_RUN_INTERVAL
    else:
        interval = max(MIN_RUN_INTERVAL, observed)
    return ENDS_AT_RUNS * interval


def render(config: Mapping[str, Any], notification: Notification) -> list[dict[str, Any]]:
    """One payload per replica: {"replica": digest of its URL, "alerts": [postable alerts],
    "valid_for": seconds}; send() sets the endsAt of firing alerts to the send time +
    valid_for, so a message that waited in the outbox does not arrive already expired. The
    outbox keeps payloads and a URL can hold credentials: send() looks the URL up again."""
    config = with_defaults(OPTIONS, config)
    urls = [str(u) for u in config.get("urls") or [] if u]
    if not urls:
        raise RenderError("the alertmanager receiver needs at least one URL in `urls`")
    alerts = [postable(a) for a in notification.alerts]
    if notification.test:  # no endsAt: Alertmanager lets it go after its resolve_timeout
        alerts = alerts or [
            {
                "labels": {"alertname": TEST_ALERTNAME, "receiver": notification.receiver},
                "annotations": {"message": "test notification from checkrun notify --test"},
            }
        ]
        return [{"replica": digest(url), "alerts": alerts} for url in urls]
    seconds = valid_for(config, notification)
    return [{"replica": digest(url), "alerts": alerts, "valid_for": seconds} for url in urls]


def _replica_url(config: Mapping[str, Any], payload: Mapping[str, Any]) -> str | None:
    if "url" in payload:  # queued by an earlier version
        return str(payload["url"])
    return next(
        (str(u) for u in config.get("urls") or [] if digest(str(u)) == payload.get("replica")),
        None,
    )


def send(config: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> Delivery:
    config = with_defaults(OPTIONS, config)
    base = _replica_url(config, payload)
    if base is None:
        return Delivery(ok=False, detail="its Alertmanager is no longer in `urls`")
    url = api_url(base)
    alerts = with_ends_at(payload["alerts"], payload.get("valid_for"), time.time())
    _, verdict = post_json(url, alerts, timeout=timeout, config=config, headers=config["headers"])
    return scrubbed(verdict, OPTIONS, config)


def with_ends_at(
    alerts: list[dict[str, Any]], seconds: float | None, now: float
) -> list[dict[str, Any]]:
    """The alerts, each firing one (no endsAt) with endsAt = now + seconds."""
    if seconds is None:  # a test notification, or a message queued by an older checkrun
        return alerts
    ends_at = rfc3339(now + float(seconds))
    return [a if "endsAt" in a else {**a, "endsAt": ends_at} for a in alerts]
