"""Threshold ranges: the Nagios plugin range syntax, with one deliberate difference.

`warn:` and `crit:` take a number or a range string. A range says when to ALERT:

    N        alert when value > N              (a bare number: the same as ~:N)
    N:       alert when value < N              (value must stay at or above N)
    ~:N      alert when value > N
    M:N      alert when value < M or value > N (value must stay within M..N)
    @M:N     alert when M <= value <= N        (@ inverts: alert inside, bounds included)
    @N       alert when value <= N             (the inverse of N)
    @N:      alert when value >= N
    @~:N     alert when value <= N

Everything follows the Nagios guidelines (nagios-plugins.org/doc/guidelines.html) except the
bare number: Nagios reads `N` as 0..N, which also alerts on negative values; checkrunner reads
it as "upper bound", i.e. ~:N, because `warn: 80` on a percentage means "above 80". Negative
values therefore never alert on a bare number. `:N` (no start) is rejected as ambiguous, and
so is `~:` (no bounds at all: it could never alert).

A bound may carry a unit suffix, so thresholds read like the rest of the playbook:
durations `ms s m h d w`, sizes `B KB MB GB TB PB` (powers of 1000) and `KiB MiB GiB TiB PiB`
(powers of 1024), and `%`. Sizes always end in B, so `m` is minutes and `MB` megabytes. A range
with suffixes must be converted to the unit of the measurement it applies to
(`parse_range(text, unit)` or `Range.for_unit(unit)`): `500ms` becomes 0.5 for a measurement
in `s`, `30d` becomes 30 for one in `d`, `1GiB` becomes 1073741824 for one in `B`; a suffix of
another kind than the measurement's unit (`500ms` for a `%` measurement, any suffix for a
plain count) is an error, never a silent guess.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from checkrunner.config.coerce import kind_of
from checkrunner.units import parse_duration, parse_size

NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
DURATION_SUFFIX = r"(?:ms|s|m|h|d|w)"
SIZE_SUFFIX = r"(?:[kKmMgGtTpP][iI]?[bB]|[bB])"
SUFFIX = rf"(?:{DURATION_SUFFIX}|{SIZE_SUFFIX}|%)"
_BOUND = rf"{NUMBER}{SUFFIX}?"
# The whole syntax as one regular expression (Python and ECMA 262 alike), for the JSON schema.
RANGE_PATTERN = rf"^\s*@?(?:~:{_BOUND}|{_BOUND}(?::(?:{_BOUND})?)?)\s*$"

_BOUND_PARTS = re.compile(rf"(?P<number>{NUMBER})(?P<suffix>.*)")
_DURATION_UNIT = re.compile(DURATION_SUFFIX)
_SIZE_UNIT = re.compile(SIZE_SUFFIX)

DURATION, SIZE, PERCENT = "duration", "size", "percent"
SYNTAX_HINT = (
    "write a number (alert above it) or a Nagios range: 10: (alert below 10), ~:10, "
    '10:20 (alert outside), "@10:20" (alert inside); units like 500ms, 2GB or 80% are allowed'
)


@dataclass(frozen=True)
class Range:
    """When to alert: outside start..end, or inside it when `inside` (bounds included).

    `unit_kind` is DURATION, SIZE or PERCENT when a bound carried a unit suffix: the bounds are
    then in seconds, bytes or percent, and `for_unit` converts them to a measurement's unit.
    """

    start: float
    end: float
    inside: bool
    text: str
    unit_kind: str | None = None

    def alerts(self, value: float) -> bool:
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def for_unit(self, unit: str) -> Range:
        """The same range in the unit a measurement is reported in; ValueError if they differ."""
        if self.unit_kind is None:
            return self
        scale = unit_scale(unit)
        if scale is None or scale[0] != self.unit_kind:
            shown = f"'{unit}'" if unit else "plain numbers (no unit)"
            raise ValueError(
                f"'{self.text}' has a {self.unit_kind} unit but the measurement is in {shown}"
            )
        factor = scale[1]
        return replace(self, start=self.start / factor, end=self.end / factor, unit_kind=None)

    def __str__(self) -> str:
        return self.text


def unit_scale(unit: str) -> tuple[str, float] | None:
    """(kind, size of one `unit` in seconds/bytes/percent) for a measurement's unit, if it has one."""
    if unit == "%":
        return (PERCENT, 1.0)
    if _DURATION_UNIT.fullmatch(unit):
        return (DURATION, parse_duration(f"1{unit}"))
    if _SIZE_UNIT.fullmatch(unit):
        return (SIZE, float(parse_size(f"1{unit}")))
    return None


def parse_range(text: str | float, unit: str | None = None) -> Range:
    """A threshold as written in a playbook (number or range string); ValueError if invalid.

    With `unit`, the bounds are converted to that measurement unit (see `Range.for_unit`).
    """
    parsed = _parse(text)
    return parsed.for_unit(unit) if unit is not None else parsed


def _parse(text: str | float) -> Range:
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"a threshold is a number or a range string, not {kind_of(text)}")
    if not isinstance(text, str):
        try:
            bound = float(text)
        except OverflowError:
            raise ValueError("the threshold is too large to be a number") from None
        if not math.isfinite(bound):
            raise ValueError(f"threshold {text} is not a finite number")
        return Range(-math.inf, bound, inside=False, text=str(text))
    shown = text.strip()
    body = shown
    inside = body.startswith("@")
    if inside:
        body = body[1:]
    if not body:
        raise ValueError(f"'{text}' is an empty range")
    start_text, colon, end_text = body.partition(":")
    if not colon:
        start_text, end_text = "~", body
    if ":" in end_text:
        raise ValueError(f"'{shown}' has more than one ':'")
    if start_text == "":
        raise ValueError(f"'{shown}' has no start: write ~:{end_text} for no lower bound")
    start, start_kind = (-math.inf, None) if start_text == "~" else _bound(start_text, shown)
    end, end_kind = (math.inf, None) if end_text == "" else _bound(end_text, shown)
    if start == -math.inf and end == math.inf:
        raise ValueError(f"'{shown}' has no bounds, so it could never alert")
    if start > end:
        raise ValueError(f"'{shown}' starts above its end ({start_text} > {end_text})")
    kinds = {kind for kind in (start_kind, end_kind) if kind}
    if len(kinds) > 1:
        raise ValueError(f"'{shown}' mixes a {start_kind} unit and a {end_kind} unit")
    return Range(start, end, inside=inside, text=shown, unit_kind=kinds.pop() if kinds else None)


def _bound(text: str, whole: str) -> tuple[float, str | None]:
    match = _BOUND_PARTS.fullmatch(text)
    if not match:
        if text == whole:
            raise ValueError(f"'{whole}' is neither a number nor a range")
        raise ValueError(f"'{text}' in '{whole}' is not a number")
    number, suffix = float(match.group("number")), match.group("suffix")
    if not math.isfinite(number):
        raise ValueError(f"'{text}' in '{whole}' is too large")
    if not suffix:
        return number, None
    if suffix == "%":
        return number, PERCENT
    if _DURATION_UNIT.fullmatch(suffix):
        return number * parse_duration(f"1{suffix}"), DURATION
    if _SIZE_UNIT.fullmatch(suffix):
        return number * parse_size(f"1{suffix}"), SIZE
    raise ValueError(
        f"unknown unit '{suffix}' in '{whole}' (durations: ms s m h d w; "
        "sizes: B KB MB GB TB or KiB MiB GiB TiB; or %)"
    )
