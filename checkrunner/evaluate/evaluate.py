"""Turn one raw result from the target into a CheckResult with a status and a message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from checkrunner.config.baselines import BaselineSpec
from checkrunner.config.ranges import Range
from checkrunner.evaluate.history import SeriesStats, baseline_bound, breach, describe_bound
from checkrunner.results import BaselineBound, CheckResult, Status, Thresholds

_MODULE_STATUSES = {
    s.value: s for s in (Status.OK, Status.WARNING, Status.CRITICAL, Status.UNKNOWN)
}


@dataclass(frozen=True)
class MetricThresholds:
    """The parsed warn/crit ranges of one measurement, with the text the user wrote.

    A level with a baseline (`warn: {baseline: 7d, factor: 1.8}`) is judged against the
    measurement's history; its range, if any, is the baseline's fallback (warm-up only).
    """

    metric: str
    warn: Range | None = None
    crit: Range | None = None
    warn_text: str | None = None
    crit_text: str | None = None
    warn_baseline: BaselineSpec | None = None
    crit_baseline: BaselineSpec | None = None

    def baseline(self, level: str) -> BaselineSpec | None:
        return self.warn_baseline if level == "warn" else self.crit_baseline

    def range(self, level: str) -> Range | None:
        return self.warn if level == "warn" else self.crit

    @property
    def dynamic(self) -> bool:
        return self.warn_baseline is not None or self.crit_baseline is not None


# The history's statistics of one measurement for one baseline (state/baselines.py prepares
# them before the round).
SeriesStatsOf = Callable[[str, BaselineSpec], SeriesStats]
# The same, for a check: what the runner is handed (RunOptions.baselines).
BaselineLookup = Callable[["CheckIdentity", str, BaselineSpec], SeriesStats]
NO_LOOKUP = SeriesStats(note="no history")
_LEVELS = ((Status.CRITICAL, "crit"), (Status.WARNING, "warn"))


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
    notify: tuple[str, ...] = ()  # the play's handlers its firing alert runs

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


def evaluate_check(
    identity: CheckIdentity, raw: dict[str, Any], baselines: BaselineLookup | None = None
) -> CheckResult:
    """Status from the module's own verdict, its failed expectations and the thresholds
    (dynamic ones against the history `baselines` reads)."""
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
        stats_of = (lambda metric, spec: baselines(identity, metric, spec)) if baselines else None
        status, threshold_notes, result.baselines = apply_thresholds(
            identity.thresholds, measurements, units, stats_of
        )
        statuses.append(status)
        notes.extend(threshold_notes)
    result.status = Status.worst(statuses)
    if notes:
        keep_message = result.message and result.message not in notes
        result.message = "; ".join([*notes, result.message] if keep_message else notes)
    return result


def apply_thresholds(
    thresholds: tuple[MetricThresholds, ...],
    measurements: dict[str, float],
    units: dict[str, str],
    stats_of: SeriesStatsOf | None = None,
) -> tuple[Status, list[str], list[BaselineBound]]:
    """The worst status the thresholds give, why, and the bound each baseline put."""
    status = Status.OK
    notes: list[str] = []
    bounds: list[BaselineBound] = []
    for t in thresholds:
        if t.warn is None and t.crit is None and not t.dynamic:
            continue
        if t.metric not in measurements:
            status = Status.worst([status, Status.UNKNOWN])
            notes.append(f"measurement '{t.metric}' missing from the result")
            continue
        value = measurements[t.metric]
        unit = units.get(t.metric, "")
        verdicts = [
            _judge_level(t, level_status, level, value, unit, stats_of)
            for level_status, level in _LEVELS  # crit first: it wins
            if t.range(level) is not None or t.baseline(level) is not None
        ]
        bounds += [v.bound for v in verdicts if v.bound is not None]
        breached = next((v for v in verdicts if v.breach), None)
        if breached is not None:
            status = Status.worst([status, breached.status])
            notes.append(breached.breach)
            continue
        # Within bounds: a dynamic threshold still says where its bound was.
        notes += [
            _within(v.bound, t.range(v.bound.level), value, unit)
            for v in verdicts
            if v.bound is not None
        ]
    return status, notes, bounds


@dataclass(frozen=True)
class _Verdict:
    """One level of one measurement: the status it gives when breached, why it is ('' when
    it is not), and the bound its baseline put (None for a static threshold)."""

    status: Status
    breach: str
    bound: BaselineBound | None = None


def _judge_level(
    t: MetricThresholds,
    status: Status,
    level: str,
    value: float,
    unit: str,
    stats_of: SeriesStatsOf | None,
) -> _Verdict:
    shown = f"{t.metric}={format_plain(value)}{unit}"
    spec = t.baseline(level)
    static = t.range(level)
    if spec is None:
        assert static is not None
        text = t.warn_text if level == "warn" else t.crit_text
        broken = static.alerts(value)
        return _Verdict(status, f"{shown} {_breach(static)} {level} {text}" if broken else "")
    stats = stats_of(t.metric, spec) if stats_of is not None else NO_LOOKUP
    bound = baseline_bound(spec, stats, t.metric, level, unit)
    if not bound.warming_up:
        broken = breach(bound, value) is not None
        return _Verdict(status, describe_bound(bound, value, unit) if broken else "", bound)
    if static is not None and static.alerts(value):
        why = f"{shown} {_breach(static)} {level} {static.text} (fallback: {bound.text})"
        return _Verdict(status, why, bound)
    return _Verdict(status, "", bound)


def _within(bound: BaselineBound, fallback: Range | None, value: float, unit: str) -> str:
    text = describe_bound(bound, value, unit)
    if bound.warming_up and fallback is not None:
        return f"{text}, fallback {bound.level} {fallback.text} applies"
    return text


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
