"""Alertmanager's label matchers, parsed exactly as its pkg/labels/parse.go (0.25) does.

- One string may hold several matchers: `a="1",b="2"`, with optional braces `{a="1"}` and a
  trailing comma. Commas inside double quotes do not separate.
- A matcher is NAME OP VALUE; NAME is a Prometheus label name (`[a-zA-Z_:][a-zA-Z0-9_:]*`),
  OP one of `=`, `!=`, `=~`, `!~`. VALUE may be in double quotes; only `\\\\`, `\\"` and `\\n`
  are unescaped, any other backslash is literal (`C:\\Temp`, `web-\\d+`). Single quotes are
  ordinary characters, and an unescaped `"` inside the value is an error (`foo=a"b`).
- Regular expressions are Go's RE2 (see re2.py), anchored at both ends.
- A label that is not there matches as the empty string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from checkrunner.alerting.re2 import compile_anchored
from checkrunner.errors import RE2Error

_GO_SPACE = "[\t\n\f\r ]"  # Go's \s (RE2: no \v, nothing beyond ASCII)
_MATCHER = re.compile(
    rf"\A{_GO_SPACE}*([a-zA-Z_:][a-zA-Z0-9_:]*){_GO_SPACE}*(=~|=|!=|!~){_GO_SPACE}*(.*?){_GO_SPACE}*\Z",
    re.DOTALL,
)
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")  # model.LabelNameRE
OPERATORS = ("=", "!=", "=~", "!~")  # in Go's MatchType order (the sort's last key)
MATCHER_HINT = 'e.g. severity="critical", team=~"db|infra" or {env="prod",team!="web"}'


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
        found = self._regex is not None and self._regex.search(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{open_metrics_escape(self.value)}"'

    @property
    def sort_key(self) -> tuple[str, str, int]:
        """labels.Matchers' order: name, then value, then operator."""
        return (self.name, self.value, OPERATORS.index(self.op))


def open_metrics_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def new_matcher(name: str, op: str, value: str) -> Matcher:
    """labels.NewMatcher: a regex value is compiled as RE2, anchored; ValueError if invalid."""
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = compile_anchored(value)
        except RE2Error as exc:
            raise ValueError(f"invalid regular expression (Go RE2 syntax): {exc}") from None
    return Matcher(name, op, value, regex)


def parse_matcher(text: str) -> Matcher:
    """One matcher (labels.ParseMatcher); ValueError with what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f'a matcher is text like severity="critical", not {text!r}')
    found = _MATCHER.match(text)
    if not found:
        raise ValueError(
            f'bad matcher format: {text!r} (write name="value", name!="value", '
            'name=~"regex" or name!~"regex")'
        )
    name, op, raw = found.groups()
    return new_matcher(name, op, _unescape(raw))


def _unescape(raw: str) -> str:
    """The value of a matcher as parse.go reads it (OpenMetrics escapes, literal backslashes)."""
    quoted_raw = raw
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    expect_closing = quoted
    value: list[str] = []
    escaped = False
    last = len(raw) - 1
    for index, char in enumerate(raw):
        if escaped:
            escaped = False
            value.append({"n": "\n", '"': '"', "\\": "\\"}.get(char, "\\" + char))
            continue
        if char == "\\":
            if index < last:
                escaped = True
                continue
            value.append("\\")  # a backslash as the very last character is literal
        elif char == '"':
            if not expect_closing or index < last:
                raise ValueError(
                    f"matcher value contains an unescaped double quote: {raw!r} "
                    '(escape it as \\" or quote the whole value)'
                )
            expect_closing = False
        else:
            value.append(char)
    if expect_closing:
        raise ValueError(f"matcher value has no closing double quote: {quoted_raw!r}")
    return "".join(value)


def split_matchers(text: str) -> list[str]:
    """The matcher strings of one `matchers` entry (labels.ParseMatchers' tokenizer)."""
    text = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for char in text:
        if char == "," and not inside_quotes:
            tokens.append("".join(token))
            token = []
            continue
        if char == '"':
            if not escaped:
                inside_quotes = not inside_quotes
            else:
                escaped = False
        elif char == "\\":
            escaped = not escaped
        elif char != ",":
            escaped = False
        token.append(char)
    last = "".join(token).strip()
    if last:
        tokens.append(last)
    return tokens


def parse_matchers(text: str | list[str]) -> tuple[Matcher, ...]:
    """Every matcher of a string such as `{a="1", b=~"x|y",}` (or of a list of such
    strings), sorted as Alertmanager sorts them; ValueError naming the bad one."""
    texts = [text] if isinstance(text, str) else list(text)
    found: list[Matcher] = []
    for entry in texts:
        if not isinstance(entry, str):
            raise ValueError(f'a matcher is text like severity="critical", not {entry!r}')
        found += [parse_matcher(token) for token in split_matchers(entry)]
    return sort_matchers(found)


def sort_matchers(matchers: list[Matcher] | tuple[Matcher, ...]) -> tuple[Matcher, ...]:
    return tuple(sorted(matchers, key=lambda m: m.sort_key))


def all_match(matchers: tuple[Matcher, ...], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
