"""Ansible host patterns: `web:&prod:!web3`, `*.example.com`, `~db\\d+`, `web[0:2]`, `a,b`."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from checkrunner.errors import ConfigError, Location

_PART = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")  # a pattern part: no ':' outside [...]
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class Subscript:
    start: int
    end: int | None  # None: a single index; -1: to the end; else inclusive end

    def apply(self, items: list) -> list:
        """Ansible's slices: [i] one item, [i:j] items i..j inclusive, [i:] to the end."""
        if self.end is None:
            try:
                return [items[self.start]]
            except IndexError:
                return []
        end = len(items) - 1 if self.end == -1 else self.end
        return items[self.start : end + 1]


@dataclass(frozen=True)
class Term:
    text: str  # as written, with its operator
    operator: str  # '' (union), '&' (intersection) or '!' (exclusion)
    expression: str  # the name, glob or ~regex without operator and subscript
    subscript: Subscript | None = None
    implicit: bool = False  # the 'all' Ansible assumes when a pattern only intersects or excludes


def split_pattern(pattern: str | Sequence[str]) -> list[str]:
    """The parts of a host pattern: 'a,b' and 'a:b' both give ['a', 'b']; lists are flattened."""
    if not isinstance(pattern, str):
        return [part for item in pattern for part in split_pattern(item)]
    if "," in pattern:
        parts = pattern.split(",")
    elif _is_ipv6(pattern.strip()):
        parts = [pattern]
    else:
        parts = _PART.findall(pattern)
    return [part.strip() for part in parts if part.strip()]


def parse_terms(pattern: str | Sequence[str], location: Location | None = None) -> list[Term]:
    """Terms in evaluation order: unions as written, then intersections, then exclusions."""
    terms = [_parse_term(part, location) for part in split_pattern(pattern)]
    unions = [term for term in terms if term.operator == ""]
    intersections = [term for term in terms if term.operator == "&"]
    exclusions = [term for term in terms if term.operator == "!"]
    if not unions and terms:
        unions = [Term("all", "", "all", implicit=True)]
    return unions + intersections + exclusions


def compile_matcher(expression: str, location: Location | None = None) -> Callable[[str], bool]:
    """A predicate for names: '~regex' matches from the start (re.match), others are fnmatch globs."""
    if expression.startswith("~"):
        try:
            regex = re.compile(expression[1:])
        except re.error as exc:
            raise ConfigError(
                f"invalid regular expression in host pattern '{expression}': {exc}",
                location,
                "a pattern starting with '~' is a Python regular expression, e.g. ~(web|db)\\d+",
            ) from None
        return lambda name: regex.match(name) is not None
    if GLOB_CHARACTERS.isdisjoint(expression):
        return lambda name: name == expression
    glob = re.compile(fnmatch.translate(expression))
    return lambda name: glob.match(name) is not None


def is_plain_name(expression: str) -> bool:
    return not expression.startswith("~") and GLOB_CHARACTERS.isdisjoint(expression)


def _parse_term(part: str, location: Location | None) -> Term:
    operator = part[0] if part[0] in "&!" else ""
    expression = part[len(operator) :]
    if not expression:
        raise ConfigError(
            f"host pattern part '{part}' has an operator but no name",
            location,
            "write e.g. web:!web3",
        )
    subscript = None
    if not expression.startswith("~"):
        match = _SUBSCRIPT.match(expression)
        if match:
            expression, subscript = match.group(1), _subscript(match)
    return Term(part, operator, expression, subscript)


def _subscript(match: re.Match) -> Subscript:
    index, start, end = match.group(2), match.group(3), match.group(5)
    if index is not None:
        return Subscript(int(index), None)
    if not end:
        return Subscript(int(start), -1)
    # As in Ansible, an end of 0 selects the single item at the start index.
    return Subscript(int(start), int(end) or None)


def _is_ipv6(text: str) -> bool:
    if text.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
