"""Dynamic thresholds: `warn: {baseline: 7d, factor: 1.8}` read into a BaselineSpec.

A threshold is a number, a range string, or this mapping. Exactly one of `factor`, `sigma`
and `mad` says how far from the series' own past a value may go:

    factor: F   above F × the window's mean (direction below: under mean / F)
    sigma: K    beyond the window's mean ± K standard deviations
    mad: K      beyond the window's median ± K × 1.4826·MAD (robust: a few spikes barely move it)

`seasonal` narrows the window to samples in the same hour of the week or day as now,
`direction` says which side breaches, `min_samples` how much history is needed before the
baseline judges (until then the `fallback` range, if any, applies).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from checkrunner.config.coerce import is_templated, kind_of
from checkrunner.config.keywords import BASELINE_KEYWORDS, DEFAULT_MIN_SAMPLES
from checkrunner.config.ranges import parse_range
from checkrunner.errors import BaselineError
from checkrunner.units import parse_duration

METHODS = ("factor", "sigma", "mad")
SEASONS = ("hour_of_week", "hour_of_day")
DIRECTIONS = ("above", "below", "both")
EXAMPLE = "write e.g. {baseline: 7d, factor: 1.8} or {baseline: 7d, mad: 3, direction: both}"


def _invalid(
    message: str, key: str | None = None, hint: str = EXAMPLE, at_key: bool = False
) -> BaselineError:
    """The error of a bad baseline mapping, with the example as the fix unless told."""
    return BaselineError(message, key, hint, at_key)


@dataclass(frozen=True)
class BaselineSpec:
    """One dynamic threshold, as checked: every field has its value (defaults applied)."""

    window: float  # seconds of history it looks back
    method: str  # factor | sigma | mad
    k: float  # the factor, or how many sigmas / scaled MADs
    seasonal: str | None = None  # hour_of_week | hour_of_day
    direction: str = "above"
    min_samples: int = DEFAULT_MIN_SAMPLES
    fallback: str | None = None  # the static range applied while warming up, as written
    text: str = ""  # the mapping as written, one line

    @property
    def robust(self) -> bool:
        """Whether it needs the median and MAD (else the mean and standard deviation)."""
        return self.method == "mad"


def is_baseline(value: Any) -> bool:
    return isinstance(value, Mapping)


def parse_baseline(value: Mapping[Any, Any]) -> BaselineSpec:
    """The mapping as a BaselineSpec; BaselineError naming the key at fault."""
    for key in value:
        if key not in BASELINE_KEYWORDS:
            raise _invalid(
                f"unknown key '{key}' in a baseline",
                str(key),
                f"allowed keys: {', '.join(BASELINE_KEYWORDS)}",
                at_key=True,
            )
        if is_templated(value[key]):
            raise _invalid(f"{key}: a baseline's settings cannot be templates", str(key), EXAMPLE)
    if "baseline" not in value:
        raise _invalid("a threshold mapping needs `baseline:` (the window)", None)
    methods = [m for m in METHODS if m in value]
    if len(methods) != 1:
        found = " and ".join(methods) if methods else "none of them"
        raise _invalid(
            f"a baseline takes exactly one of factor, sigma and mad, not {found}",
            methods[1] if len(methods) > 1 else None,
            "keep one: factor (× mean), sigma (mean ± k·σ) or mad (median ± k·MAD)",
            at_key=True,
        )
    method = methods[0]
    return BaselineSpec(
        window=_positive_duration(value["baseline"]),
        method=method,
        k=_positive_number(value[method], method),
        seasonal=_choice(value, "seasonal", SEASONS, None),
        direction=_choice(value, "direction", DIRECTIONS, "above"),
        min_samples=_min_samples(value.get("min_samples", DEFAULT_MIN_SAMPLES)),
        fallback=_fallback(value.get("fallback")),
        text=one_line(value),
    )


def _positive_duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _invalid(
            f"baseline: expected a window, not {kind_of(value)}",
            "baseline",
            "write the window like 7d, 36h or 4w",
        )
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise _invalid(
            f"baseline: {exc}", "baseline", "write the window like 7d, 36h or 4w"
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise _invalid(
            f"baseline: the window must be positive, not {value!r}",
            "baseline",
            "write the window like 7d, 36h or 4w",
        )
    return seconds


def _positive_number(value: Any, key: str) -> float:
    example = f"write {key}: {1.8 if key == 'factor' else 3}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid(f"{key}: expected a positive number, not {kind_of(value)}", key, example)
    if not math.isfinite(value) or value <= 0:
        raise _invalid(f"{key}: must be positive, not {value!r}", key, example)
    return float(value)


def _min_samples(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid(
            f"min_samples: expected a whole number of at least 1, not {value!r}",
            "min_samples",
            f"write min_samples: {DEFAULT_MIN_SAMPLES}",
        )
    return value


def _choice(value: Mapping[Any, Any], key: str, allowed: tuple[str, ...], default):
    if key not in value:
        return default
    chosen = value[key]
    if chosen not in allowed:
        raise _invalid(
            f"{key}: {chosen!r} is not one of {', '.join(allowed)}",
            key,
            f"write {key}: {allowed[0]}",
        )
    return chosen


def _fallback(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        parse_range(value)
    except ValueError as exc:
        raise _invalid(
            f"fallback: {exc}",
            "fallback",
            "the fallback is a static threshold: a number or a Nagios range like 80 or 10:",
        ) from None
    return str(value)


def one_line(value: Mapping[Any, Any]) -> str:
    """The mapping in YAML flow style, in the order written: {baseline: 7d, factor: 1.8}."""
    parts = []
    for key, item in value.items():
        shown = str(int(item)) if isinstance(item, float) and item.is_integer() else str(item)
        parts.append(f"{key}: {shown}")
    return "{" + ", ".join(parts) + "}"
