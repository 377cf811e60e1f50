"""Alertmanager's label matchers: `severity="critical"`, `team=~"db|infra"`, `env!=dev`, `x!~"a.*"`.

Regular expressions are anchored at both ends, as in Alertmanager. A label that is not
there matches as the empty string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MATCHER = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^"'\s][^"']*?)?\s*$"""
)
_OPERATORS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = self._regex is not None and self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """One matcher; ValueError with what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f'a matcher is text like severity="critical", not {text!r}')
    found = _MATCHER.match(text)
    if not found:
        raise ValueError(
            f'{text!r} is not a matcher: write name="value", name!="value", '
            'name=~"regex" or name!~"regex"'
        )
    value = _unquote(found.group("value") or "")
    op = found.group("op")
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: the regular expression does not compile: {exc}") from None
    return Matcher(found.group("name"), op, value, regex)


def parse_matchers(texts: list[str]) -> tuple[Matcher, ...]:
    return tuple(parse_matcher(text) for text in texts)


def all_match(matchers: tuple[Matcher, ...], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value.strip()
