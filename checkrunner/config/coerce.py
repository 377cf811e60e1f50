"""Option values as users write them -> the clean types check modules receive.

One place decides what each option type accepts, so load-time validation, the JSON schema
(through the *_PATTERN expressions) and `normalize_args` always agree.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from checkrunner.errors import OptionValueError, did_you_mean, looks_like_private_key, quote
from checkrunner.units import parse_duration, parse_size
from checkrunner.unsafe import UnsafeText

T = TypeVar("T")

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

MAX_SIZE_VALUE = 1024**5  # bytes (1 PiB)

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
    "argv": "write a command line as text, or its arguments as a list: [systemctl, is-active, nginx]",
}

# What a list option passes on to the check of each of its elements.
_ELEMENT_KEYS = ("choices", "min", "max", "format")
_NUMERIC_KINDS = ("int", "float", "duration", "size")
_KIND_WORDS = {"int": "whole number", "float": "number"}


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
    """`str`, `list of int`; a format names the text it takes: `url`, `list of regex`."""
    kind = str(spec.get("type", "raw"))
    element = spec.get("format") or spec.get("elements")
    if kind in ("list", "dict") and element:
        return f"{kind} of {element}"
    return str(spec.get("format") or kind)


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
    _check_bounds(value, converted, spec, kind)
    if kind == "dict" and spec.get("elements"):
        return _coerce_mapping_values(converted, spec, keep_templates)
    if spec.get("format"):
        check_format(converted, str(spec["format"]))
    return converted


def _coerce_mapping_values(
    mapping: Mapping[Any, Any], spec: Mapping[str, Any], keep_templates: bool
) -> dict[Any, Any]:
    """A mapping whose values have a type (`elements`), e.g. environment variables: text."""
    element = {key: spec[key] for key in _ELEMENT_KEYS if key in spec}
    element["type"] = spec["elements"]
    converted = {}
    for key, value in mapping.items():
        try:
            converted[key] = coerce_value(value, element, keep_templates=keep_templates)
        except OptionValueError as exc:
            raise OptionValueError(f"the value of '{key}': {exc.message}", exc.hint) from None
    return converted


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
        return BOOL_WORDS[value.strip().lower()]
    raise OptionValueError(f"expected yes or no, got {kind_of(value)}", TYPE_HINTS["bool"])


def _parse_written(value: Any, what: str, pattern: re.Pattern[str], parse: Callable[[Any], T]) -> T:
    """parse(value) of a value written as a `what` (text must match `pattern`), with the
    type's hint on what is refused; OverflowError passes through for the caller to word."""
    if isinstance(value, str) and not pattern.match(value):
        raise OptionValueError(f"{quote(value)} is not a {what}", TYPE_HINTS[what])
    try:
        return parse(value)
    except ValueError as exc:
        raise OptionValueError(str(exc), TYPE_HINTS[what]) from None


def parse_duration_value(value: Any) -> float:
    """Seconds from a duration as written (500ms, 2s, 1h30m, or a number of seconds)."""
    try:
        seconds = _parse_written(value, "duration", _DURATION, parse_duration)
    except OverflowError:
        raise OptionValueError("the duration is too large", TYPE_HINTS["duration"]) from None
    if not math.isfinite(seconds):
        raise OptionValueError(f"{quote(value)} is not a finite duration", TYPE_HINTS["duration"])
    return seconds


def parse_size_value(value: Any) -> int:
    """Bytes from a size as written (64MB, 1GiB, or a number of bytes)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionValueError(f"{quote(value)} is not a finite size", TYPE_HINTS["size"])
    try:
        size = _parse_written(value, "size", _SIZE, parse_size)
    except OverflowError:
        size = MAX_SIZE_VALUE + 1
    if size > MAX_SIZE_VALUE:  # more than any target can hold; Python's I/O overflows
        raise OptionValueError("the size is too large: at most 1PiB", TYPE_HINTS["size"])
    return size


def _coerce_list(value: Any, spec: Mapping[str, Any], keep_templates: bool) -> list[Any]:
    if isinstance(value, Mapping):
        raise OptionValueError(f"expected a list, got {kind_of(value)}", TYPE_HINTS["list"])
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    element = {key: spec[key] for key in _ELEMENT_KEYS if key in spec}
    element["type"] = spec.get("elements", "raw")
    converted = []
    for position, item in enumerate(items, start=1):
        try:
            converted.append(coerce_value(item, element, keep_templates=keep_templates))
        except OptionValueError as exc:
            where = f"item {position}: " if len(items) > 1 else ""
            raise OptionValueError(f"{where}{exc.message}", exc.hint, position - 1) from None
    return converted


def _coerce_scalar(value: Any, kind: str) -> Any:
    coerce = _SCALAR_COERCIONS.get(kind)
    # "raw", and any type a module declares that the control node does not know, stay as given
    return value if coerce is None else coerce(value)


def _to_mapping(value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise OptionValueError(f"expected a mapping, got {kind_of(value)}", TYPE_HINTS["dict"])
    return value


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise OptionValueError(
        f"expected text, got {kind_of(value)}", "put the value in quotes if it is meant as text"
    )


def _to_argv(value: Any) -> str | list[str]:
    """A command line (text, split on the target like a shell would) or a list of arguments."""
    if isinstance(value, (list, tuple)):
        if value and all(_is_text_or_number(part) for part in value):
            return [str(part) for part in value]
        what = (
            "an empty list"
            if not value
            else "a list with "
            + kind_of(next(part for part in value if not _is_text_or_number(part)))
        )
        raise OptionValueError(f"expected a command, got {what}", TYPE_HINTS["argv"])
    if _is_text_or_number(value) and str(value).strip():
        return str(value)
    raise OptionValueError(f"expected a command, got {kind_of(value)}", TYPE_HINTS["argv"])


def _is_text_or_number(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


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


# -- ranges ------------------------------------------------------------------------------------


def bounds_text(spec: Mapping[str, Any]) -> str:
    """The range an option allows, as written in its spec: "1 to 65535", "at most 1d"."""
    low, high = spec.get("min"), spec.get("max")
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f"at least {low}"
    return f"at most {high}" if high is not None else ""


def _check_bounds(written: Any, value: Any, spec: Mapping[str, Any], kind: str) -> None:
    if kind not in _NUMERIC_KINDS or (spec.get("min") is None and spec.get("max") is None):
        return
    low = _coerce_scalar(spec["min"], kind) if spec.get("min") is not None else None
    high = _coerce_scalar(spec["max"], kind) if spec.get("max") is not None else None
    if (low is not None and value < low) or (high is not None and value > high):
        shown = written.strip() if isinstance(written, str) else written
        raise OptionValueError(
            f"{shown} is out of range: allowed {bounds_text(spec)}",
            f"write a {_KIND_WORDS.get(kind, kind)} from {bounds_text(spec)}",
        )


# -- formats: text that must parse -------------------------------------------------------------

REGEX_DIALECT = (
    "Python's re syntax, compiled on the target by its python3 (3.6 or later); checkrun "
    "checks it before anything runs, refusing what a 3.6 target would not compile "
    "(atomic groups, possessive quantifiers, \\N{name})"
)
_NAMED_CHARACTER = re.compile(r"(?<!\\)(?:\\\\)*\\N\{")


def check_format(value: Any, name: str) -> None:
    """OptionValueError unless `value` is valid text of the format `name` (see FORMATS)."""
    checker = FORMATS.get(name)
    if checker is not None and value is not None:
        checker(value)


def check_regex(pattern: Any) -> None:
    text = str(pattern)
    try:
        compiled = re.compile(text)
    except (re.error, OverflowError, RecursionError) as exc:
        raise OptionValueError(
            f"{text!r} is not a valid regular expression: {exc}",
            "regular expressions use Python's re syntax; escape a literal . * + ? ( ) [ ] { } | \\ with \\",
        ) from None
    newer = _newer_regex_syntax(compiled.pattern)
    if newer:
        raise OptionValueError(
            f"{text!r} uses {newer}, which Python before 3.11 cannot compile",
            "targets may run Python 3.6: rewrite the expression without it",
        )


def _newer_regex_syntax(pattern: str) -> str | None:
    if _NAMED_CHARACTER.search(pattern):
        return "a \\N{name} escape (Python 3.8+)"
    try:  # Python 3.11+, the first to accept atomic groups and possessive quantifiers
        from re import _constants, _parser  # type: ignore[attr-defined]
    except ImportError:  # older Pythons refuse them when compiling
        return None
    newer = {_constants.ATOMIC_GROUP: "an atomic group (?>...)"}
    newer[_constants.POSSESSIVE_REPEAT] = "a possessive quantifier (*+, ++, ?+, {m,n}+)"
    pending: list[Any] = [_parser.parse(pattern)]
    while pending:
        item = pending.pop()
        if isinstance(item, _parser.SubPattern):
            pending.extend(item.data)
        elif isinstance(item, (list, tuple)):
            if item and item[0] in newer:
                return newer[item[0]]
            pending.extend(item)
    return None


def check_url(value: Any) -> None:
    text = str(value)
    hint = "write an http or https URL, e.g. http://127.0.0.1:8080/health"
    # The URL itself is not quoted: webhook URLs often hold a token.
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise OptionValueError(f"not a valid URL: {exc}", hint) from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = f"scheme '{parts.scheme}'" if parts.scheme.isalnum() else "no scheme"
        raise OptionValueError(f"not an http(s) URL ({scheme})", hint)
    if not parts.hostname:
        raise OptionValueError("not an http(s) URL (no host)", hint)


def check_address(value: Any) -> None:
    """`host:port`, `[ipv6]:port` or a bare port, as the tcp module reads it."""
    text = str(value).strip()
    hint = "write host:port, [ipv6]:port or a port number from 1 to 65535"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") and host else ""
    elif text.isdigit():
        port = text
    else:
        host, _, port = text.rpartition(":")
        if not host or ":" in host:
            port = ""
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionValueError(f"{text!r} is not a valid address", hint)


_MODE = re.compile(r"0?[0-7]{3,4}|0o[0-7]{3,4}")


def check_mode(value: Any) -> None:
    """Permission bits as the file module reads them: '0644', '644', '2775' or a number."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise OptionValueError(f"expected a mode, got {kind_of(value)}", "write it quoted: '0644'")
    valid = 0 <= value <= 0o7777 if isinstance(value, int) else _MODE.fullmatch(value.strip())
    if not valid:
        raise OptionValueError(
            f"{value!r} is not a permission mode", "write it quoted, in octal: '0644' or '2775'"
        )


def check_encoding(value: Any) -> None:
    try:
        codecs.lookup(str(value))
    except LookupError:
        raise OptionValueError(
            f"{value!r} is not a known text encoding",
            "use a Python codec name such as utf-8, latin-1 or utf-16",
        ) from None


def check_selector(value: Any) -> None:
    """A PromQL series selector as the prometheus module reads it (its own parser), with
    each regex also held to what the targets' Python can compile."""
    from checkrunner.modules._utils.exposition import parse_selector

    try:
        matchers = parse_selector(str(value))
    except ValueError as exc:
        raise OptionValueError(
            str(exc).removeprefix("select: "),
            'write a PromQL series selector: name{label="value", other=~"regex"}',
        ) from None
    for _label, operator, pattern in matchers:
        if operator in ("=~", "!~"):
            check_regex(pattern)


FORMATS: dict[str, Callable[[Any], None]] = {
    "regex": check_regex,
    "url": check_url,
    "address": check_address,
    "encoding": check_encoding,
    "mode": check_mode,
    "selector": check_selector,
}


_SCALAR_COERCIONS: dict[str, Callable[[Any], Any]] = {
    "str": _to_str,
    "int": _to_int,
    "float": _to_float,
    "bool": parse_bool,
    "duration": parse_duration_value,
    "size": parse_size_value,
    "argv": _to_argv,
    "dict": _to_mapping,
}
