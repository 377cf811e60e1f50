"""Host entries as inventories write them: ranges like `web[01:20].example.com` and an optional `:port`."""

from __future__ import annotations

import ipaddress
import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from checkrunner.errors import HostEntryError

_FIRST_RANGE = re.compile(r"\[([^\[\]]*)\]")
_BRACKETED_IPV6 = re.compile(r"^\[([^\[\]]+)\](?::(.*))?$")
MAX_HOSTS_PER_ENTRY = 100_000  # one inventory line; a bigger fleet is written as several lines
_RANGE_SYNTAX = "write ranges as [start:end] or [start:end:step], e.g. web[01:20] or db-[a:c]"


# What OpenSSH (since 9.6, CVE-2023-51385) refuses in a host or user name, because such names
# would reach a shell through `%h`/`%r` in ProxyCommand or Match exec (ssh.c valid_hostname and
# valid_ruser). A user name may hold '$' and '\\' (DOMAIN\\user, machine$ accounts).
_HOSTNAME_FORBIDDEN = frozenset("'`\"$\\;&<>|(){},")
_USER_FORBIDDEN = frozenset("'`\";&<>|(){}")


_WHITESPACE = re.compile(r"\s")  # str.isspace()'s characters
_RANGE_OR_PORT = re.compile(r"[\[\]:]")


@dataclass(frozen=True)
class HostEntry:
    names: list[str]
    port: int | None = None


def parse_host_entry(text: str) -> HostEntry:
    """Names and port of one inventory host entry: 'web[1:3].example.com:2222' -> 3 names, port 2222."""
    entry = text.strip()
    if not entry:
        raise HostEntryError("empty host name")
    if _WHITESPACE.search(entry):
        raise HostEntryError(f"host name {entry!r} contains whitespace")
    if entry == "---":
        raise HostEntryError("'---' is not a host name; this looks like a YAML file read as INI")
    if not _RANGE_OR_PORT.search(entry):  # most entries: one plain name (10,000-host inventories)
        return HostEntry([entry])
    name, port = split_port(entry)
    return HostEntry(expand_host_ranges(name), port)


def split_port(entry: str) -> tuple[str, int | None]:
    """('host', 22) from 'host:22'; IPv6 addresses keep their colons ('[::1]:22' for a port)."""
    bracketed = _BRACKETED_IPV6.match(entry)
    if bracketed and is_ipv6(bracketed.group(1)):
        port_text = bracketed.group(2)
        return bracketed.group(1), None if port_text is None else _parse_port(port_text, entry)
    colons = _colons_outside_brackets(entry)
    if not colons:
        return entry, None
    if len(colons) > 1:
        if is_ipv6(entry):
            return entry, None
        raise HostEntryError(
            f"host {entry!r} has several ':'; for an IPv6 address with a port write [addr]:port"
        )
    head, port_text = entry[: colons[0]], entry[colons[0] + 1 :]
    if not head:
        raise HostEntryError(f"host {entry!r} has no name before ':'")
    return head, _parse_port(port_text, entry)


def expand_host_ranges(name: str) -> list[str]:
    """Every name a pattern with [start:end(:step)] ranges stands for, in order.

    The count is known before any name is made: past MAX_HOSTS_PER_ENTRY it is an error, not
    gigabytes of names (`h[0:99999999]`)."""
    literals: list[str] = []
    ranges: list[Sequence[str]] = []
    rest = name
    while (match := _FIRST_RANGE.search(rest)) is not None:
        head = rest[: match.start()]
        if "[" in head or "]" in head:
            raise HostEntryError(f"unbalanced '[' or ']' in host {name!r}; {_RANGE_SYNTAX}")
        literals.append(head)
        ranges.append(_range_items(match.group(1), name))
        rest = rest[match.end() :]
    if "[" in rest or "]" in rest:
        raise HostEntryError(f"unbalanced '[' or ']' in host {name!r}; {_RANGE_SYNTAX}")
    count = math.prod(len(items) for items in ranges)
    if count > MAX_HOSTS_PER_ENTRY:
        raise HostEntryError(
            f"host {name!r} stands for {count:,} hosts; one entry may stand for at most "
            f"{MAX_HOSTS_PER_ENTRY:,} (check the range bounds, or split it over several entries)"
        )
    names = [literals[0] if literals else rest]
    for index, items in enumerate(ranges):
        tail = literals[index + 1] if index + 1 < len(literals) else rest
        names = [prefix + item + tail for prefix in names for item in items]
    return names


class _Numbers(Sequence):
    """The names of a numeric range, zero-padded to `width`, made only when asked for."""

    def __init__(self, numbers: range, width: int):
        self._numbers = numbers
        self._width = width

    def __len__(self) -> int:
        return len(self._numbers)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [str(n).zfill(self._width) for n in self._numbers[index]]
        return str(self._numbers[index]).zfill(self._width)


def _range_items(spec: str, name: str) -> Sequence[str]:
    bounds = spec.split(":")
    if len(bounds) not in (2, 3):
        raise HostEntryError(f"invalid host range [{spec}] in {name!r}; {_RANGE_SYNTAX}")
    start, end = bounds[0] or "0", bounds[1]
    if not end:
        raise HostEntryError(f"host range [{spec}] in {name!r} has no end; {_RANGE_SYNTAX}")
    step = _range_step(bounds[2] if len(bounds) == 3 else "1", spec, name)
    if (
        len(start) == 1
        and len(end) == 1
        and start in string.ascii_letters
        and end in string.ascii_letters
    ):
        return _letter_range(start, end, step, spec, name)
    if is_ascii_number(start) and is_ascii_number(end):
        return _number_range(start, end, step, spec, name)
    raise HostEntryError(
        f"host range [{spec}] in {name!r} must go from number to number (digits 0-9) "
        "or from letter to letter (a-z, A-Z)"
    )


def _range_step(text: str, spec: str, name: str) -> int:
    if not is_ascii_number(text) or int(text) == 0:
        raise HostEntryError(
            f"host range [{spec}] in {name!r}: the step must be a positive integer"
        )
    return int(text)


def _letter_range(start: str, end: str, step: int, spec: str, name: str) -> list[str]:
    first, last = string.ascii_letters.index(start), string.ascii_letters.index(end)
    if first > last:
        raise HostEntryError(f"host range [{spec}] in {name!r} starts after it ends")
    return list(string.ascii_letters[first : last + 1 : step])


def _number_range(start: str, end: str, step: int, spec: str, name: str) -> Sequence[str]:
    width = len(start) if start.startswith("0") and len(start) > 1 else 0
    if width and len(end) != width:
        raise HostEntryError(
            f"host range [{spec}] in {name!r}: a zero-padded start needs an end of the same width "
            f"(e.g. [{start}:{end.zfill(width)}])"
        )
    first, last = int(start), int(end)
    if first > last:
        raise HostEntryError(f"host range [{spec}] in {name!r} starts after it ends")
    return _Numbers(range(first, last + 1, step), width)


def is_ascii_number(text: str) -> bool:
    """Digits 0-9 only: str.isdigit() also takes '²' and '١', which int() then refuses or reads."""
    return text.isascii() and text.isdigit()


def _parse_port(text: str, entry: str) -> int:
    if not text:
        raise HostEntryError(f"host {entry!r} ends with ':'; ':' is reserved for a port number")
    if not is_ascii_number(text) or not 1 <= int(text) <= 65535:
        raise HostEntryError(f"invalid port {text!r} in host {entry!r}; a port is 1-65535")
    return int(text)


def _colons_outside_brackets(entry: str) -> list[int]:
    depth = 0
    positions = []
    for index, char in enumerate(entry):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == ":" and depth == 0:
            positions.append(index)
    return positions


def is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def hostname_problem(name: str) -> str | None:
    """Why ssh must not be given this host name (OpenSSH's valid_hostname), or None if it may."""
    if not name or name.startswith("-"):
        return _start_problem(name)
    for char in name:
        if char in _HOSTNAME_FORBIDDEN:
            return f"contains {char!r}"
        if char.isspace() or not char.isprintable():
            return f"contains the control or space character {char!r}"
    return None


def user_problem(user: str) -> str | None:
    """Why ssh must not be given this remote user name (OpenSSH's valid_ruser), or None."""
    if not user or user.startswith("-"):
        return _start_problem(user)
    for index, char in enumerate(user):
        if char in _USER_FORBIDDEN:
            return f"contains {char!r}"
        if not char.isprintable():  # a plain space is printable; tabs, newlines, NUL are not
            return f"contains the control character {char!r}"
        if char.isspace() and user[index + 1 : index + 2] == "-":
            return "contains a space followed by '-'"
    if user.endswith("\\"):
        return "ends with '\\'"
    return None


def _start_problem(text: str) -> str:
    return "starts with '-' (ssh would read it as an option)" if text else "is empty"
