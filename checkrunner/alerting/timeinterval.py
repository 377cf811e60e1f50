"""Alertmanager's time intervals (`time_intervals`, and the older `mute_time_intervals`), with
the rules and semantics of its timeinterval package (0.25).

An interval holds any of `times` (start_time inclusive, end_time exclusive, `HH:MM`, up to
`24:00`), `weekdays` (`monday`, `monday:friday`), `days_of_month` (`1`, `1:5`, `-1` for the
last day, `-7:-1`), `months` (`january:march` or `1:3`), `years` (`2024:2025`) and a
`location` (an IANA zone; UTC by default). It contains a moment when every field it has
matches; a named time interval contains it when any of its intervals does.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

WEEKDAYS = {
    "sunday": 0,
    "monday": 1,
    "tuesday": 2,
    "wednesday": 3,
    "thursday": 4,
    "friday": 5,
    "saturday": 6,
}
MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
INTERVAL_KEYS = ("times", "weekdays", "days_of_month", "months", "years", "location")
_TIME = re.compile(r"(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)\Z")

Range = tuple[int, int]
LOCAL = "Local"  # Go's time.Local: the control node's zone, with its DST rules


@dataclass
class TimeInterval:
    times: list[Range] | None = None  # minutes of the day, [start, end)
    weekdays: list[Range] | None = None  # 0 = sunday
    days_of_month: list[Range] | None = None
    months: list[Range] | None = None
    years: list[Range] | None = None
    location: Any = None  # a tzinfo; None is UTC

    def contains(self, moment: dt.datetime) -> bool:
        if self.location == LOCAL:
            moment = moment.astimezone()
        else:
            moment = moment.astimezone(self.location or dt.timezone.utc)
        minute = moment.hour * 60 + moment.minute
        weekday = (moment.weekday() + 1) % 7  # Go's time.Weekday: sunday is 0
        checks = (
            (self.times, lambda r: r[0] <= minute < r[1]),
            (self.days_of_month, lambda r: _day_in(r, moment)),
            (self.months, lambda r: r[0] <= moment.month <= r[1]),
            (self.weekdays, lambda r: r[0] <= weekday <= r[1]),
            (self.years, lambda r: r[0] <= moment.year <= r[1]),
        )
        return all(ranges is None or any(test(r) for r in ranges) for ranges, test in checks)


def _day_in(days: Range, moment: dt.datetime) -> bool:
    length = calendar.monthrange(moment.year, moment.month)[1]
    begin = length + days[0] + 1 if days[0] < 0 else days[0]
    end = length + days[1] + 1 if days[1] < 0 else days[1]
    if begin > length:
        return False
    begin = max(-length, min(begin, length))
    end = max(-length, min(end, length))
    return begin <= moment.day <= end


@dataclass
class NamedInterval:
    name: str
    intervals: list[TimeInterval] = field(default_factory=list)

    def contains(self, moment: dt.datetime) -> bool:
        return any(interval.contains(moment) for interval in self.intervals)


def parse_interval(node: Mapping[Any, Any]) -> TimeInterval:
    """One entry of a time interval's `time_intervals` list; ValueError saying what is wrong."""
    unknown = [str(k) for k in node if k not in INTERVAL_KEYS]
    if unknown:
        raise ValueError(
            f"unknown key '{unknown[0]}' in a time interval (it takes: {', '.join(INTERVAL_KEYS)})"
        )
    interval = TimeInterval()
    if node.get("times") is not None:
        interval.times = [_time_range(item) for item in _list(node, "times")]
    if node.get("weekdays") is not None:
        interval.weekdays = [_weekdays(str(item)) for item in _list(node, "weekdays")]
    if node.get("days_of_month") is not None:
        interval.days_of_month = [_days(str(item)) for item in _list(node, "days_of_month")]
    if node.get("months") is not None:
        interval.months = [_months(str(item)) for item in _list(node, "months")]
    if node.get("years") is not None:
        interval.years = [_years(str(item)) for item in _list(node, "years")]
    if node.get("location") is not None:
        interval.location = _location(node["location"])
    return interval


def _list(node: Mapping[Any, Any], key: str) -> list[Any]:
    value = node[key]
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list, e.g. {key}: ['...']")
    return value


def _time_range(item: Any) -> Range:
    if not isinstance(item, Mapping):
        raise ValueError("times: each item is {start_time: 'HH:MM', end_time: 'HH:MM'}")
    start, end = item.get("start_time"), item.get("end_time")
    if not start or not end:
        raise ValueError("times: both start_time and end_time must be provided")
    first, last = _minutes(str(start)), _minutes(str(end))
    if first >= last:
        raise ValueError("times: start_time cannot be equal to or later than end_time")
    return first, last


def _minutes(text: str) -> int:
    if not _TIME.match(text):
        raise ValueError(f"couldn't parse timestamp {text!r}: write HH:MM, 00:00 to 24:00")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _bounds(text: str, member) -> Range:
    text = text.lower()
    parts = text.split(":") if ":" in text else [text, text]
    if len(parts) != 2:
        raise ValueError(f"couldn't parse range {text!r}, invalid format")
    return member(parts[0]), member(parts[1])


def _integer(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"{text!r} is not a number")
    return int(text)


def _weekdays(text: str) -> Range:
    def member(word: str) -> int:
        if word not in WEEKDAYS:
            raise ValueError(f"{word!r} is not a valid weekday (monday ... sunday)")
        return WEEKDAYS[word]

    return _rising(
        text, member, lambda _b, _e: f"weekdays {text!r}: the start day is after the end day"
    )


def _days(text: str) -> Range:
    begin, end = _bounds(text, _integer)
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise ValueError(f"{day} is not a valid day of the month: out of range")
    if begin < 0 < end:
        raise ValueError("days_of_month: the end day must be negative if the start day is")
    if (28 + begin if begin < 0 else begin) > (28 + end if end < 0 else end):
        raise ValueError(f"days_of_month: end day {end} is always before start day {begin}")
    return begin, end


def _months(text: str) -> Range:
    def member(word: str) -> int:
        if word in MONTHS:
            return MONTHS[word]
        try:
            return _integer(word)
        except ValueError:
            raise ValueError(f"{word!r} is not a valid month") from None

    return _rising(
        text, member, lambda _b, _e: f"months {text!r}: the end month is before the start month"
    )


def _years(text: str) -> Range:
    return _rising(
        text, _integer, lambda b, e: f"years {text!r}: end year {e} is before start year {b}"
    )


def _rising(text: str, member: Callable[[str], int], backwards: Callable[[int, int], str]) -> Range:
    """_bounds that must not run backwards: ValueError(backwards(begin, end)) when they do."""
    begin, end = _bounds(text, member)
    if begin > end:
        raise ValueError(backwards(begin, end))
    return begin, end


def _location(name: Any) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str):
        raise ValueError("location: expected a time zone name such as Europe/Berlin")
    if name in ("", "UTC"):
        return dt.timezone.utc
    if name == "Local":
        return LOCAL
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)"
        ) from None
