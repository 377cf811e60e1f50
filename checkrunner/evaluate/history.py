"""Measurements judged against time and their own past: rates per interval, anomalies of
a log count over its last runs, and dynamic thresholds (a baseline over a time window).

Pure functions; the state database supplies the previous scan time and the history (for
baselines, already summarised: state/history.py computes the statistics in SQL).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from checkrunner.config.baselines import BaselineSpec
from checkrunner.results import BaselineBound
from checkrunner.units import format_value

_RATE_UNITS = {1.0: "/s", 60.0: "/min", 3600.0: "/h", 86400.0: "/d"}


def rate_unit(per: float) -> str:
    return _RATE_UNITS.get(float(per), f"/{per:g}s")


def rate(count: float, elapsed: float | None, per: float) -> float | None:
    """`count` events over `elapsed` seconds, as events per `per` seconds (None: no interval)."""
    if elapsed is None or elapsed <= 0:
        return None
    return count * per / elapsed


@dataclass(frozen=True)
class AnomalySettings:
    """A value far above its own recent past: above mean + k·σ of the last `window` values.

    `min_runs` values are needed before anything is flagged, and the value must exceed the
    mean by at least `min_increase` (a flat history of zeros has σ = 0: one stray line is
    not an anomaly unless min_increase says so).
    """

    k: float = 3.0
    window: int = 20
    min_runs: int = 5
    min_increase: float = 1.0
    status: str = "WARNING"


@dataclass(frozen=True)
class Anomaly:
    value: float
    mean: float
    stddev: float
    runs: int
    limit: float

    def describe(self, name: str, settings: AnomalySettings) -> str:
        return (
            f"{name}={_number(self.value)} is far above its recent history "
            f"(mean {_number(self.mean)}, σ {_number(self.stddev)} over {self.runs} runs; "
            f"limit {_number(self.limit)} at k={settings.k:g})"
        )


def detect_anomaly(
    value: float, history: Sequence[float], settings: AnomalySettings
) -> Anomaly | None:
    """The anomaly `value` is against `history` (oldest first), or None."""
    recent = list(history)[-settings.window :]
    if len(recent) < settings.min_runs:
        return None
    mean = sum(recent) / len(recent)
    stddev = math.sqrt(sum((x - mean) ** 2 for x in recent) / len(recent))
    limit = max(mean + settings.k * stddev, mean + settings.min_increase)
    if value > limit:
        return Anomaly(value=value, mean=mean, stddev=stddev, runs=len(recent), limit=limit)
    return None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


# -- dynamic thresholds: a measurement against its own baseline ---------------------------------


@dataclass(frozen=True)
class SeriesStats:
    """What a series' history says for one baseline: the centre and spread of the samples
    in its window (mean and σ, or median and scaled MAD), or why there are none (`note`)."""

    samples: int = 0
    center: float | None = None
    spread: float | None = None
    note: str = ""  # "no history: --no-state"


def baseline_bound(
    spec: BaselineSpec, stats: SeriesStats, metric: str, level: str, unit: str
) -> BaselineBound:
    """The bound `spec` puts on the measurement, given its history's `stats`."""
    bound = BaselineBound(
        metric=metric,
        level=level,
        method=spec.method,
        window=spec.window,
        seasonal=spec.seasonal,
        direction=spec.direction,
        samples=stats.samples,
        center=None,
        spread=None,
        lower=None,
        upper=None,
        warming_up=True,
        text="",
    )
    if stats.samples < spec.min_samples or stats.center is None:
        why = stats.note or f"{stats.samples} of {spec.min_samples} samples"
        bound.text = f"baseline warming up ({why})"
        return bound
    center, spread = stats.center, stats.spread or 0.0
    bound.warming_up = False
    bound.center = center
    above, below = spec.direction in ("above", "both"), spec.direction in ("below", "both")
    what = f"{_window_words(spec.window)} {'median' if spec.robust else 'mean'}"
    if spec.seasonal:
        what += f" at this hour of the {'week' if spec.seasonal == 'hour_of_week' else 'day'}"
    what += f" {format_value(center, unit)}"
    k = format_factor(spec.k)
    if spec.method == "factor":
        bound.upper = spec.k * center if above else None
        bound.lower = center / spec.k if below else None
        texts = {"above": f"{k} × {what}", "below": f"{what} / {k}"}
        bound.text = texts.get(spec.direction, f"{what} × or / {k}")
        return bound
    bound.spread = spread
    bound.upper = center + spec.k * spread if above else None
    bound.lower = center - spec.k * spread if below else None
    sign = {"above": "+", "below": "-"}.get(spec.direction, "±")
    name = "σ" if spec.method == "sigma" else "MAD"
    bound.text = f"{what} {sign} {k} × {name} {format_value(spread, unit)}"
    return bound


def breach(bound: BaselineBound, value: float) -> str | None:
    """How `value` breaks the bound ("> 11.1%"-style comparison), or None."""
    if bound.warming_up:
        return None
    if bound.upper is not None and value > bound.upper:
        return ">"
    if bound.lower is not None and value < bound.lower:
        return "<"
    return None


def describe_bound(bound: BaselineBound, value: float, unit: str) -> str:
    """ "used_percent=12.3% > 11.1% = 1.8 × 7-day mean 6.2%" (the side it broke, else the
    bound(s) it is within)."""
    shown = f"{bound.metric}={format_value(value, unit)}"
    if bound.warming_up:
        return f"{shown}: {bound.level} {bound.text}"
    side = breach(bound, value)
    if side == ">" or (side is None and bound.lower is None):
        limit = bound.upper
        side = side or "≤"
    elif side == "<" or bound.upper is None:
        limit = bound.lower
        side = side or "≥"
    else:
        return (
            f"{shown} within {format_value(bound.lower, unit)}..{format_value(bound.upper, unit)} = "
            f"{bound.text}"
        )
    return f"{shown} {side} {format_value(limit, unit)} = {bound.text}"


def _window_words(seconds: float) -> str:
    for size, word in ((604800.0, "week"), (86400.0, "day"), (3600.0, "hour"), (60.0, "minute")):
        if seconds >= size and (seconds / size).is_integer():
            count = int(seconds / size)
            return f"{count}-{word}" if word != "week" else f"{count * 7}-day"
    return f"{format_factor(seconds)}-second"


def format_factor(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
