"""Measurements judged against time and their own past: rates per interval, anomalies.

Pure functions; the state database supplies the previous scan time and the history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
