"""Ansible host patterns: `web:&prod:!web3`, `*.example.com`, `~db\\d+`, `web[0:2]`, `a,b`."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from checkrunner.errors import ConfigError, Location

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


@dataclass(frozen=True)
class _Part:
    text: str  # stripped
    offset: int  # 0-based, in the pattern it came from


def split_pattern(pattern: str | Sequence[str]) -> list[str]:
    """The parts of a host pattern: 'a,b' and 'a:b' both give ['a', 'b']; lists are flattened."""
    if not isinstance(pattern, str):
        return [part for item in pattern for part in split_pattern(item)]
    return [part.text for part in _split(pattern)]


def _split(pattern: str) -> list[_Part]:
    """Parts on ',' (when there is one) or on ':' and spaces outside [...]; nothing is dropped, so an
    unclosed '[' stays in its part and is reported there (Ansible silently loses it)."""
    if "," in pattern:
        pieces, offset = [], 0
        for piece in pattern.split(","):
            pieces.append((piece, offset))
            offset += len(piece) + 1
    elif _is_ipv6(pattern.strip()):
        pieces = [(pattern, 0)]
    else:
        pieces, start, depth = [], 0, 0
        for index, char in enumerate(pattern):
            if char == "[":
                depth += 1
            elif char == "]":
                depth = max(depth - 1, 0)
            elif (char == ":" or char.isspace()) and depth == 0:  # Ansible splits on both
                pieces.append((pattern[start:index], start))
                start = index + 1
        pieces.append((pattern[start:], start))
    parts = []
    for piece, offset in pieces:
        stripped = piece.strip()
        if stripped:
            parts.append(_Part(stripped, offset + len(piece) - len(piece.lstrip())))
    return parts


def parse_terms(pattern: str | Sequence[str], location: Location | None = None) -> list[Term]:
    """Terms in evaluation order: unions as written, then intersections, then exclusions.

    A malformed pattern (unbalanced brackets, a bad subscript or regex, no names at all) is a
    ConfigError naming the character where it goes wrong; one that merely matches nothing is not."""
    items = [pattern] if isinstance(pattern, str) else list(pattern)
    terms = []
    for item in items:
        parts = _split(item)
        if not parts:
            raise _pattern_error(item, 0, "names no host or group", location)
        terms.extend(_parse_term(item, part, location) for part in parts)
    unions = [term for term in terms if term.operator == ""]
    intersections = [term for term in terms if term.operator == "&"]
    exclusions = [term for term in terms if term.operator == "!"]
    if not unions and terms:
        unions = [Term("all", "", "all", implicit=True)]
    return unions + intersections + exclusions


def compile_matcher(expression: str, location: Location | None = None) -> Callable[[str], bool]:
    """A predicate for names: '~regex' matches from the start (re.match), others are fnmatch globs."""
    if expression.startswith("~"):
        regex = _compiled_regex(expression, expression, 0, location)
        return lambda name: regex.match(name) is not None
    if GLOB_CHARACTERS.isdisjoint(expression):
        return lambda name: name == expression
    glob = re.compile(fnmatch.translate(expression))
    return lambda name: glob.match(name) is not None


def is_plain_name(expression: str) -> bool:
    return not expression.startswith("~") and GLOB_CHARACTERS.isdisjoint(expression)


def _parse_term(pattern: str, part: _Part, location: Location | None) -> Term:
    text = part.text
    operator = text[0] if text[0] in "&!" else ""
    expression = text[len(operator) :]
    start = part.offset + len(operator)
    if not expression:
        raise _pattern_error(
            pattern, part.offset, f"'{text}' has an operator but no name", location,
            "write e.g. web:!web3",
        )  # fmt: skip
    if expression.startswith("~"):
        _compiled_regex(pattern, expression, start, location)
        return Term(text, operator, expression)
    _check_brackets(pattern, expression, start, location)
    subscript = None
    match = _SUBSCRIPT.match(expression)
    if match:
        expression, subscript = match.group(1), _subscript(match)
    elif expression.endswith("]") and ":" in expression[expression.rindex("[") :]:
        raise _pattern_error(
            pattern, start + expression.rindex("["),
            f"invalid subscript '{expression[expression.rindex('['):]}'", location,
            "a subscript is [i], [-i], [i:j] or [i:] with whole numbers, e.g. web[0:2]",
        )  # fmt: skip
    return Term(text, operator, expression, subscript)


def _check_brackets(pattern: str, expression: str, start: int, location: Location | None) -> None:
    depth, opened = 0, 0
    for index, char in enumerate(expression):
        if char == "[":
            if depth:
                break
            depth, opened = 1, index
        elif char == "]":
            if not depth:
                raise _pattern_error(pattern, start + index, "unbalanced ']'", location)
            if index == opened + 1:
                raise _pattern_error(pattern, start + opened, "empty '[]'", location)
            depth = 0
    if depth:
        raise _pattern_error(
            pattern, start + opened, "unclosed '['", location,
            "close the subscript or glob class, e.g. web[0] or web[12]*",
        )  # fmt: skip


def _compiled_regex(
    pattern: str, expression: str, start: int, location: Location | None
) -> re.Pattern:
    try:
        return re.compile(expression[1:])
    except re.error as exc:
        position = start + 1 + (exc.pos or 0)
        raise _pattern_error(
            pattern, position, f"invalid regular expression '{expression}': {exc.msg}", location,
            "a pattern starting with '~' is a Python regular expression, e.g. ~(web|db)\\d+",
        ) from None  # fmt: skip


def _pattern_error(
    pattern: str, offset: int, problem: str, location: Location | None, hint: str | None = None
) -> ConfigError:
    return ConfigError(
        f"malformed host pattern '{pattern}': {problem} (at character {offset + 1})",
        location,
        hint or "write names, groups, globs or ~regex joined by ':' or ',', e.g. web:&prod:!web3",
    )


def _subscript(match: re.Match) -> Subscript:
    index, start, end = match.group(2), match.group(3), match.group(5)
    if index is not None:
        return Subscript(int(index), None)
    if not end:
        return Subscript(int(start), -1)
    # As in Ansible, an end of 0 selects the single item at the start index.
    return Subscript(int(start), int(end) or None)


def _is_ipv6(text: str) -> bool:
    """An IPv6 address as a whole pattern; '::' (the unspecified address) is no host."""
    if text.count(":") < 2:
        return False
    try:
        return not ipaddress.IPv6Address(text).is_unspecified
    except ValueError:
        return False
