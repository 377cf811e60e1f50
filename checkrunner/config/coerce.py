"""Option values as users write them -> the clean types check modules receive.

One place decides what each option type accepts, so load-time validation, the JSON schema
(through the *_PATTERN expressions) and `normalize_args` always agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from checkrunner.errors import did_you_mean, looks_like_private_key, quote
from checkrunner.units import parse_duration, parse_size
from checkrunner.unsafe import UnsafeText

TEMPLATE_MARKERS = ("{{", "{%", "{#")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

BOOL_WORDS = {
    "yes": True,
    "true": True,
    "on": True,
    "1": True,
    "no": False,
    "false": False,
    "off": False,
    "0": False,
}

# Regular expressions valid in Python and ECMA 262 alike (editors evaluate the schema in JS).
INT_PATTERN = r"^\s*[+-]?[0-9]+\s*$"
FLOAT_PATTERN = r"^\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$"
DURATION_PATTERN = (
    r"^\s*(?:[0-9]+(?:\.[0-9]+)?|(?:[0-9]+(?:\.[0-9]+)?(?:[mM][sS]|[sSmMhHdDwW]))+)\s*$"
)
SIZE_PATTERN = r"^\s*[0-9]+(?:\.[0-9]+)?\s*(?:[kKmMgGtTpP][iI]?[bB]?|[bB])?\s*$"
BOOL_PATTERN = "^\\s*(?:{})\\s*$".format(
    "|".join(
        "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in w) for w in BOOL_WORDS
    )
)

_INT = re.compile(INT_PATTERN)
_FLOAT = re.compile(FLOAT_PATTERN)
_DURATION = re.compile(DURATION_PATTERN)
_SIZE = re.compile(SIZE_PATTERN)

TYPE_HINTS = {
    "str": "write text",
    "int": "write a whole number, e.g. 8080",
    "float": "write a number, e.g. 0.5",
    "bool": "write yes or no (true/false, on/off and 1/0 work too)",
    "duration": "write a duration like 500ms, 2s, 5m, 1h30m or 7d",
    "size": "write a size like 512KB, 64MB, 1GiB (or a number of bytes)",
    "list": "write a list like [a, b] (a single value is a list of one)",
    "dict": "write a mapping like {key: value}",
}


class OptionValueError(ValueError):
    """A value an option cannot take, with the fix to suggest."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def is_templated(value: Any) -> bool:
    """A string with Jinja2 markup: its type is only known once rendered for a host. Text
    written `!unsafe` never is, whatever it holds."""
    return (
        isinstance(value, str)
        and not isinstance(value, UnsafeText)
        and any(marker in value for marker in TEMPLATE_MARKERS)
    )


def contains_template(value: Any) -> bool:
    if isinstance(value, str):
        return is_templated(value)
    if isinstance(value, Mapping):
        return any(contains_template(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_template(v) for v in value)
    return False


def kind_of(value: Any, show_text: bool = True) -> str:
    """What a value is, in the words of the YAML the user wrote. Text is quoted as a short
    excerpt (it may come from the environment or a file); with show_text=False (a whole file
    that is not what was expected: maybe a key or a password file) not at all."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a yes/no value ({str(value).lower()})" if show_text else "a yes/no value"
    if isinstance(value, (int, float)):
        return f"the number {quote(value)}" if show_text else "a number"
    if isinstance(value, str):
        if looks_like_private_key(value):
            return "what looks like a private key (not shown)"
        if not show_text:
            return f"a text of {len(value)} character{'s' * (len(value) != 1)}"
        return f"the text {quote(value)}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def describe_type(spec: Mapping[str, Any]) -> str:
    kind = str(spec.get("type", "raw"))
    if kind == "list" and spec.get("elements"):
        return f"list of {spec['elements']}"
    return kind


def coerce_value(value: Any, spec: Mapping[str, Any], *, keep_templates: bool = False) -> Any:
    """`value` converted to the option's type; OptionValueError when it cannot be.

    With keep_templates, template strings (anywhere in a list too) are left as they are:
    their type is checked after rendering.
    """
    if keep_templates and is_templated(value):
        return value
    kind = str(spec.get("type", "raw"))
    if kind == "list":
        return _coerce_list(value, spec, keep_templates)
    converted = _coerce_scalar(value, kind)
    _check_choice(converted, spec.get("choices"))
    return converted


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
        return BOOL_WORDS[value.strip().lower()]
    raise OptionValueError(f"expected yes or no, got {kind_of(value)}", TYPE_HINTS["bool"])


def parse_duration_value(value: Any) -> float:
    """Seconds from a duration as written (500ms, 2s, 1h30m, or a number of seconds)."""
    if isinstance(value, str) and not _DURATION.match(value):
        raise OptionValueError(f"{quote(value)} is not a duration", TYPE_HINTS["duration"])
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise OptionValueError(str(exc), TYPE_HINTS["duration"]) from None
    if not math.isfinite(seconds):
        raise OptionValueError(f"{quote(value)} is not a finite duration", TYPE_HINTS["duration"])
    return seconds


def parse_size_value(value: Any) -> int:
    """Bytes from a size as written (64MB, 1GiB, or a number of bytes)."""
    if isinstance(value, str) and not _SIZE.match(value):
        raise OptionValueError(f"{quote(value)} is not a size", TYPE_HINTS["size"])
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionValueError(f"{quote(value)} is not a finite size", TYPE_HINTS["size"])
    try:
        return parse_size(value)
    except ValueError as exc:
        raise OptionValueError(str(exc), TYPE_HINTS["size"]) from None


def _coerce_list(value: Any, spec: Mapping[str, Any], keep_templates: bool) -> list[Any]:
    if isinstance(value, Mapping):
        raise OptionValueError(f"expected a list, got {kind_of(value)}", TYPE_HINTS["list"])
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    element = {"type": spec.get("elements", "raw"), "choices": spec.get("choices")}
    converted = []
    for position, item in enumerate(items, start=1):
        try:
            converted.append(coerce_value(item, element, keep_templates=keep_templates))
        except OptionValueError as exc:
            where = f"item {position}: " if len(items) > 1 else ""
            raise OptionValueError(f"{where}{exc.message}", exc.hint) from None
    return converted


def _coerce_scalar(value: Any, kind: str) -> Any:
    if kind == "str":
        return _to_str(value)
    if kind == "int":
        return _to_int(value)
    if kind == "float":
        return _to_float(value)
    if kind == "bool":
        return parse_bool(value)
    if kind == "duration":
        return parse_duration_value(value)
    if kind == "size":
        return parse_size_value(value)
    if kind == "dict":
        if not isinstance(value, Mapping):
            raise OptionValueError(f"expected a mapping, got {kind_of(value)}", TYPE_HINTS["dict"])
        return value
    return value  # "raw", and any type a module declares that the control node does not know


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise OptionValueError(
        f"expected text, got {kind_of(value)}", "put the value in quotes if it is meant as text"
    )


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.match(value):
        return int(value)
    raise OptionValueError(f"expected a whole number, got {kind_of(value)}", TYPE_HINTS["int"])


def _to_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and _FLOAT.match(value):
        return float(value)
    raise OptionValueError(f"expected a number, got {kind_of(value)}", TYPE_HINTS["float"])


def _check_choice(value: Any, choices: Sequence[Any] | None) -> None:
    if not choices or value in choices:
        return
    listed = ", ".join(str(c) for c in choices)
    same_but_case = [c for c in choices if str(c).lower() == str(value).lower()]
    if same_but_case:
        raise OptionValueError(
            f"{quote(value)} is not one of {listed} — did you mean '{same_but_case[0]}'?",
            "choices are case-sensitive",
        )
    suggestion = did_you_mean(str(value), [str(c) for c in choices])
    message = f"{quote(value)} is not one of {listed}"
    raise OptionValueError(
        f"{message} — {suggestion}" if suggestion else message, f"choose one of {listed}"
    )
