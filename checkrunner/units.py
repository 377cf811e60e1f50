"""Durations (500ms, 2s, 5m, 7d) and sizes (64MB, 1GiB) as users write them."""

from __future__ import annotations

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
