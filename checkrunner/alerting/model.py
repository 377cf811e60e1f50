"""Alerts and notifications, in Alertmanager's shapes so its users read them at once.

An alert is a labelled, non-OK check result; its identity is the fingerprint of its
labels, computed exactly as Alertmanager does (FNV-1a 64 over sorted name/value pairs).
A notification is one message to one receiver about one group of alerts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

FIRING = "firing"
RESOLVED = "resolved"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF  # model.SeparatorByte
_MASK = (1 << 64) - 1


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's label-set fingerprint (model.LabelSet.Fingerprint), as 16 hex digits."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8"):
                value = ((value ^ byte) * _FNV_PRIME) & _MASK
            value = ((value ^ _SEPARATOR) * _FNV_PRIME) & _MASK
    return f"{value:016x}"


def rfc3339(timestamp: float | None) -> str:
    if timestamp is None:
        return ZERO_TIME
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float | None = None  # set when resolved
    generator_url: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def status(self) -> str:
        return RESOLVED if self.ends_at is not None else FIRING

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def to_webhook(self) -> dict[str, Any]:
        """One entry of Alertmanager's webhook payload (version 4)."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


@dataclass
class Notification:
    """What one receiver is told about one group: the alerts, firing and resolved."""

    receiver: str
    group_key: str
    group_labels: dict[str, str]
    alerts: list[Alert]
    external_url: str = ""
    test: bool = False  # `checkrun notify --test`
    # Seconds between the runs that raised these alerts, as observed (None: no earlier run);
    # a receiver that expires alerts not re-sent (Alertmanager) keeps them longer than this.
    run_interval: float | None = None

    @property
    def status(self) -> str:
        return FIRING if any(a.status == FIRING for a in self.alerts) else RESOLVED

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == FIRING]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == RESOLVED]

    @property
    def common_labels(self) -> dict[str, str]:
        return _common(a.labels for a in self.alerts)

    @property
    def common_annotations(self) -> dict[str, str]:
        return _common(a.annotations for a in self.alerts)

    def to_webhook(self, max_alerts: int = 0) -> dict[str, Any]:
        """Alertmanager's webhook payload, version 4."""
        alerts = self.alerts[:max_alerts] if max_alerts else self.alerts
        return {
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": len(self.alerts) - len(alerts),
            "status": self.status,
            "receiver": self.receiver,
            "groupLabels": dict(self.group_labels),
            "commonLabels": self.common_labels,
            "commonAnnotations": self.common_annotations,
            "externalURL": self.external_url,
            "alerts": [a.to_webhook() for a in alerts],
        }


def _common(label_sets) -> dict[str, str]:
    sets = list(label_sets)
    if not sets:
        return {}
    common = dict(sets[0])
    for other in sets[1:]:
        common = {k: v for k, v in common.items() if other.get(k) == v}
    return common
