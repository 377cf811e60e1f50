"""Ansible's INI inventory format: [group], [group:children], [group:vars] and host lines."""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from dataclasses import dataclass
from typing import Any

from checkrunner.errors import ConfigError, HostEntryError, Location, did_you_mean
from checkrunner.inventory.data import UNGROUPED, GroupReference, InventoryData
from checkrunner.inventory.hostnames import is_ipv6, parse_host_entry

SECTION_KINDS = ("hosts", "children", "vars")
SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:[#;].*)?$")
_COMMENT_MARKERS = ("#", ";")
_NEEDS_SHLEX = frozenset("\"'\\#")
_TRAILING_COMMENT = re.compile(r"\s+[#;].*$")
_LITERAL_WORDS = ("True", "False", "None")
_BRACKETED_IPV6_HOST = re.compile(r"^\[([0-9A-Fa-f:.%\w]+)\](?::\d+)?$")
_DOTTED_NUMBERS = re.compile(r"^\d+(?:\.\d+){2,}$")  # IPv4 addresses and versions: never literals


@dataclass
class _Section:
    group: str
    kind: str


# child group -> (parent, where) of [parent:children] entries naming it before it exists
_Pending = dict[str, list[tuple[str, Location]]]


def parse_ini_inventory(path: str, text: str, data: InventoryData) -> None:
    section = _Section(UNGROUPED, "hosts")
    pending: _Pending = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in _COMMENT_MARKERS:
            continue
        location = Location(path, number, raw.find(line[0]) + 1)
        if line.startswith("[") and not _is_bracketed_host(line, section):
            section = _parse_section(line, location, data)
            if section.kind != "vars":
                _attach_pending(section.group, pending, data)
        elif section.kind == "hosts":
            _parse_host_line(line, raw, section.group, location, data)
        elif section.kind == "vars":
            _parse_var_line(line, section.group, location, data)
        else:
            _parse_child_line(line, section.group, location, data, pending)
    for child in list(pending):  # never defined: attached so the reference check reports them
        _attach_pending(child, pending, data)


def _is_bracketed_host(line: str, section: _Section) -> bool:
    """`[2001:db8::10]:2222 ...` in a hosts section: an IPv6 host with a port, not a header.
    Like Ansible, a line ending in ']' is always read as a header."""
    if section.kind != "hosts" or line.endswith("]") or SECTION.match(line):
        return False
    match = _BRACKETED_IPV6_HOST.match(line.split()[0])
    return match is not None and is_ipv6(match.group(1))


def _attach_pending(child: str, pending: _Pending, data: InventoryData) -> None:
    """As Ansible's INI plugin: a child named before its own section joins its parents when
    that section appears, which decides the order of the parents' children and hosts."""
    for parent, location in pending.pop(child, []):
        data.add_child(parent, child, location)


def parse_ini_value(text: str) -> Any:
    """Ansible's INI value rule: a Python literal when it is one (2222, True, [1, 2]), else the text."""
    if not text or (text[0].isalpha() and not _has_quote(text) and text not in _LITERAL_WORDS):
        return text
    if _DOTTED_NUMBERS.match(text):
        return text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _parse_section(line: str, location: Location, data: InventoryData) -> _Section:
    match = SECTION.match(line)
    if match is None:
        raise ConfigError(
            f"invalid section header {line!r}",
            location,
            "write [group], [group:children] or [group:vars]; group names cannot contain spaces, ':' or ']'",
        )
    group, kind = match.group(1), match.group(2) or "hosts"
    if kind not in SECTION_KINDS:
        raise ConfigError(
            f"unknown section type [{group}:{kind}]",
            location,
            did_you_mean(kind, SECTION_KINDS)
            or f"use [{group}] for hosts, [{group}:children] or [{group}:vars]",
        )
    data.group(group, location, declare=kind != "vars")
    if kind == "vars":
        data.references.append(GroupReference(group, location))
    return _Section(group, kind)


def _parse_host_line(
    line: str, raw: str, group: str, location: Location, data: InventoryData
) -> None:
    tokens = _split_host_line(line, location)
    if not tokens:
        return
    try:
        entry = parse_host_entry(tokens[0])
    except HostEntryError as exc:
        raise ConfigError(str(exc), location) from None
    values: dict[str, Any] = {}
    for token in tokens[1:]:
        key, value = _host_variable(token, raw, location)
        values[key] = value
    locations = dict.fromkeys(values, location)
    for name in entry.names:
        host = data.add_host(name, group, location, location.file, entry.port)
        data.set_host_vars(host, values, locations)


def _split_host_line(line: str, location: Location) -> list[str]:
    if _NEEDS_SHLEX.isdisjoint(line):
        return line.split()
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        raise ConfigError(
            f"cannot read host line: {exc}", location, "close every quote you open"
        ) from None


def _host_variable(token: str, raw: str, location: Location) -> tuple[str, Any]:
    key, equals, value = token.partition("=")
    column = raw.find(token) + 1 or location.column
    if not equals or not key:
        raise ConfigError(
            f"expected key=value after the host name, got {token!r}",
            Location(location.file, location.line, column),
            "host variables are written `name=value` with no spaces around '='; quote values with spaces",
        )
    return key, parse_ini_value(value)


def _parse_var_line(line: str, group: str, location: Location, data: InventoryData) -> None:
    key, equals, value = line.partition("=")
    key, value = key.strip(), value.strip()
    if not equals or not key:
        raise ConfigError(
            f"expected key=value in [{group}:vars], got {line!r}",
            location,
            "one `name=value` per line; `name: value` is YAML, not INI",
        )
    parsed = parse_ini_value(value)
    if parsed is value:
        # An unparsed value is plain text: a trailing ' # comment' is a comment, not part of it.
        parsed = _TRAILING_COMMENT.sub("", value)
    data.set_group_var(group, key, parsed, location)


def _parse_child_line(
    line: str, parent: str, location: Location, data: InventoryData, pending: _Pending
) -> None:
    match = _GROUP_NAME.match(line)
    if match is None:
        raise ConfigError(
            f"expected a group name in [{parent}:children], got {line!r}",
            location,
            "list one child group per line; hosts go in [group] sections",
        )
    child = match.group(1)
    if child in data.groups:
        data.add_child(parent, child, location)
    else:
        pending.setdefault(child, []).append((parent, location))
    data.references.append(GroupReference(child, location, parent))


def _has_quote(text: str) -> bool:
    return "'" in text or '"' in text


def _plain(value: Any) -> Any:
    """Literals as JSON-like data: tuples and sets become lists, bytes text, odd types their text."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if value is Ellipsis:
        return "..."
    if isinstance(value, complex):
        return str(value)
    return value
