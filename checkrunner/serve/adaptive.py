"""Adaptive sampling: how long until a check runs again, from what its last result showed.

`interval: {min: 5s, max: 1m}` samples at `min` while the check fails, while a measurement
is within NEAR_THRESHOLD of a warn/crit bound, or while its value moves more than its recent
variation; otherwise the interval doubles toward `max`. Nagios' retry_interval falls out of
this: a check that starts failing is re-checked at `min` until `for:` decides. Pure
functions of values: the scheduler hands in the result and the recent values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from checkrunner.config import Interval, Range
from checkrunner.evaluate.evaluate import MetricThresholds
from checkrunner.results import CheckResult, Status

NEAR_THRESHOLD = 0.2  # within 20% of a bound counts as near it
MOVE_SIGMAS = 2.0  # a value beyond mean ± 2σ of its recent values has moved
MOVE_FLOOR = 0.05  # ...and by more than 5% of that mean (flat series do not move on noise)
RECENT_VALUES = 10  # values kept per check to measure its variation
MIN_RECENT = 3  # fewer than this: too little to tell movement from noise
BACKOFF_FACTOR = 2.0


def next_interval(interval: Interval, current: float, urgent: bool) -> float:
    """`min` while urgent, else `current` grown by BACKOFF_FACTOR, up to `max`."""
    if urgent or not interval.adaptive:
        return interval.minimum
    return min(interval.maximum, max(interval.minimum, current * BACKOFF_FACTOR))


def is_urgent(
    result: CheckResult, thresholds: Iterable[MetricThresholds], recent: Sequence[float]
) -> bool:
    """Whether the check should be sampled at its shortest interval: it is failing, near a
    threshold, or its value moved beyond its recent variation."""
    if result.status not in (Status.OK, Status.SKIPPED):
        return True
    if near_threshold(thresholds, result.measurements, result.units):
        return True
    return result.value is not None and moved(result.value, recent)


def near_threshold(
    thresholds: Iterable[MetricThresholds],
    measurements: Mapping[str, float],
    units: Mapping[str, str],
    fraction: float = NEAR_THRESHOLD,
) -> bool:
    """Whether any measurement lies within `fraction` of one of its finite warn/crit bounds."""
    for metric in thresholds:
        value = measurements.get(metric.metric)
        if value is None:
            continue
        for bound in _bounds(metric, units.get(metric.metric, "")):
            if abs(value - bound) <= fraction * abs(bound):
                return True
    return False


def _bounds(metric: MetricThresholds, unit: str) -> list[float]:
    bounds: list[float] = []
    for level in (metric.warn, metric.crit):
        if level is None:
            continue
        try:
            converted: Range = level.for_unit(unit)
        except ValueError:  # a unit mismatch is evaluate's to report
            continue
        bounds += [b for b in (converted.start, converted.end) if math.isfinite(b)]
    return bounds


def moved(value: float, recent: Sequence[float]) -> bool:
    """Whether `value` lies beyond mean ± MOVE_SIGMAS·σ of `recent` (and beyond MOVE_FLOOR
    of the mean): a change worth sampling closely."""
    if len(recent) < MIN_RECENT:
        return False
    mean = sum(recent) / len(recent)
    sigma = math.sqrt(sum((v - mean) ** 2 for v in recent) / len(recent))
    return abs(value - mean) > max(MOVE_SIGMAS * sigma, MOVE_FLOOR * abs(mean), 1e-9)
