"""Durations (500ms, 2s, 5m, 7d) and sizes (64MB, 1GiB) as users write them, and
measurements with their units as people read them (93.2%, 1.50 GiB, 12.5ms)."""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "p": 1000**5,
    "pb": 1000**5,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
    "pi": 1024**5,
    "pib": 1024**5,
}


def _number_or_text(value: object, what: str) -> int | float | str:
    """A non-negative number, or a string to parse; ValueError naming `what` for anything
    else (a bool is no number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a {what}: {value!r}")
    if not isinstance(value, str) and value < 0:
        raise ValueError(f"a {what} cannot be negative: {value!r}")
    return value


def parse_duration(value: object) -> float:
    """Seconds from a number (seconds) or a string like '500ms', '2s', '1m30s', '7d'."""
    value = _number_or_text(value, "duration")
    if not isinstance(value, str):
        return float(value)
    text = value.strip().lower()
    try:
        return parse_duration(float(text))
    except ValueError:
        pass
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {value!r} (write it like 500ms, 2s, 5m, 1h30m, 7d)")
    return total


def parse_size(value: object) -> int:
    """Bytes from a number or a string like '64MB', '1.5GiB', '512k'."""
    value = _number_or_text(value, "size")
    if not isinstance(value, str):
        return int(value)
    match = _SIZE.match(value)
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"not a size: {value!r} (write it like 512k, 64MB, 1GiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


# -- formatting: a measurement as a person reads it -----------------------------------------

_BYTE_UNITS = {"B", "byte", "bytes"}
_BYTE_RATE_UNITS = {"B/s", "byte/s", "bytes/s"}
_SECOND_UNITS = {"s", "sec", "secs", "second", "seconds"}
_MILLISECOND_UNITS = {"ms", "msec", "milliseconds"}
_BINARY_PREFIXES = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_value(value: float | None, unit: str = "") -> str:
    """A measurement as a person reads it: 93.2%, 1.50 GiB, 12.5ms, 2m05s, 42 conns."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    unit = unit.strip()
    if unit == "%":
        return f"{value:.1f}%"
    if unit in _BYTE_UNITS:
        return humanize_bytes(value)
    if unit in _BYTE_RATE_UNITS:
        return f"{humanize_bytes(value)}/s"
    if unit in _SECOND_UNITS:
        return humanize_seconds(value)
    if unit in _MILLISECOND_UNITS:
        return humanize_seconds(value / 1000)
    number = format_number(value)
    return f"{number} {unit}" if unit else number


def format_number(value: float) -> str:
    """Integers as integers; otherwise about three significant digits, no trailing zeros."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:.0f}"
    if magnitude >= 100:
        return _trim(f"{value:.1f}")
    if magnitude >= 1:
        return _trim(f"{value:.2f}")
    return f"{value:.3g}"


def humanize_bytes(value: float) -> str:
    """IEC binary units, as free(1) and df -h show them: 512 B, 1.50 KiB, 12.3 GiB."""
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    index = 0
    while magnitude >= 1024 and index < len(_BINARY_PREFIXES) - 1:
        magnitude /= 1024
        index += 1
    if index == 0:
        return f"{sign}{format_number(magnitude)} B"
    digits = 2 if magnitude < 10 else 1 if magnitude < 100 else 0
    return f"{sign}{magnitude:.{digits}f} {_BINARY_PREFIXES[index]}"


def humanize_seconds(value: float) -> str:
    """Sub-second values in ms, then seconds, then minutes/hours/days: 12.5ms, 1.23s, 2m05s."""
    if value < 0:
        return f"-{humanize_seconds(-value)}"
    if value < 1:
        milliseconds = value * 1000
        digits = 2 if milliseconds < 10 else 1 if milliseconds < 100 else 0
        return f"{_trim(f'{milliseconds:.{digits}f}')}ms"
    if value < 60:
        return f"{_trim(f'{value:.2f}')}s"
    total = int(round(value))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number
