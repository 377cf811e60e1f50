"""Turn one raw result from the target into a CheckResult with a status and a message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from checkrunner.config.ranges import Range
from checkrunner.results import CheckResult, Status, Thresholds

_MODULE_STATUSES = {
    s.value: s for s in (Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN)
}


@dataclass(frozen=True)
class MetricThresholds:
    """The parsed warn/crit ranges of one measurement, with the text the user wrote."""

    metric: str
    warn: Range | None = None
    crit: Range | None = None
    warn_text: str | None = None
    crit_text: str | None = None


@dataclass(frozen=True)
class CheckIdentity:
    """Everything about a planned check that a result carries, minus the measurements."""

    host: str
    play: str
    name: str
    module: str
    check_id: str
    metric: str | None
    thresholds: tuple[MetricThresholds, ...]
    declared_units: dict[str, str]
    tags: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    for_runs: int = 1  # alerting: consecutive failing runs before the alert fires
    depends_on: tuple[str, ...] = ()

    def base_result(self, status: Status, message: str) -> CheckResult:
        primary = next((t for t in self.thresholds if t.metric == self.metric), None)
        return CheckResult(
            host=self.host,
            play=self.play,
            name=self.name,
            module=self.module,
            status=status,
            message=message,
            metric=self.metric,
            thresholds=Thresholds(
                warn=primary.warn_text if primary else None,
                crit=primary.crit_text if primary else None,
            ),
            tags=list(self.tags),
            labels=dict(self.labels),
            check_id=self.check_id,
        )


def skipped_result(identity: CheckIdentity, reason: str) -> CheckResult:
    return identity.base_result(Status.SKIPPED, reason)


def unknown_result(identity: CheckIdentity, reason: str) -> CheckResult:
    return identity.base_result(Status.UNKNOWN, reason)


def evaluate_check(identity: CheckIdentity, raw: dict[str, Any]) -> CheckResult:
    """Status from the module's own verdict, its failed expectations and the thresholds."""
    if "error" in raw:
        result = unknown_result(identity, str(raw["error"]))
        result.duration = float(raw.get("duration", 0.0))
        return result
    body = raw.get("result") or {}
    measurements = {
        k: float(v)
        for k, v in (body.get("measurements") or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    units = {**identity.declared_units, **(body.get("units") or {})}
    result = identity.base_result(Status.OK, str(body.get("message") or ""))
    result.measurements = measurements
    result.units = {k: units[k] for k in measurements if units.get(k)}
    result.facts = body.get("facts") or {}
    result.duration = float(raw.get("duration", 0.0))
    if identity.metric and identity.metric in measurements:
        result.value = measurements[identity.metric]
        result.unit = units.get(identity.metric, "")

    statuses = [_MODULE_STATUSES.get(str(body.get("status", "OK")).upper(), Status.UNKNOWN)]
    notes: list[str] = []
    failures = [str(f) for f in body.get("failures") or []]
    if failures:
        statuses.append(Status.CRITICAL)
        notes.extend(failures)
    else:
        status, threshold_notes = apply_thresholds(identity.thresholds, measurements, units)
        statuses.append(status)
        notes.extend(threshold_notes)
    result.status = Status.worst(statuses)
    if notes:
        keep_message = result.message and result.message not in notes
        result.message = "; ".join([*notes, result.message] if keep_message else notes)
    return result


def apply_thresholds(
    thresholds: tuple[MetricThresholds, ...], measurements: dict[str, float], units: dict[str, str]
) -> tuple[Status, list[str]]:
    status = Status.OK
    notes: list[str] = []
    for t in thresholds:
        if t.warn is None and t.crit is None:
            continue
        if t.metric not in measurements:
            status = Status.worst([status, Status.UNKNOWN])
            notes.append(f"measurement '{t.metric}' missing from the result")
            continue
        value = measurements[t.metric]
        shown = f"{t.metric}={format_plain(value)}{units.get(t.metric, '')}"
        if t.crit is not None and t.crit.alerts(value):
            status = Status.worst([status, Status.CRITICAL])
            notes.append(f"{shown} {_breach(t.crit)} crit {t.crit_text}")
        elif t.warn is not None and t.warn.alerts(value):
            status = Status.worst([status, Status.WARNING])
            notes.append(f"{shown} {_breach(t.warn)} warn {t.warn_text}")
    return status, notes


def _breach(limit: Range) -> str:
    """How a value broke a range, in words: above, below, outside or inside."""
    if limit.inside:
        return "inside"
    if limit.start == float("-inf"):
        return "above"
    if limit.end == float("inf"):
        return "below"
    return "outside"


def format_plain(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:.4g}"
