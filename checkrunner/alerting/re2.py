"""Go's regexp (RE2) syntax, translated to Python's `re`, for Alertmanager's regex matchers.

Alertmanager compiles `=~`/`!~` values with Go's regexp package. Python's `re` reads many of
the same patterns differently, so a pattern is parsed here with Go's rules and written out
as a Python pattern that accepts exactly the same strings:

- what RE2 rejects is rejected: look-around, backreferences, atomic groups, possessive and
  nested repetition (`a**`, `a++`), conditionals, comments, `\\Z`, `\\u1234`, unknown escapes,
  repeat counts over 1000, flags other than i, m, s;
- `\\d`, `\\w`, `\\s`, `\\b` are ASCII as in Go (Python's are Unicode);
- POSIX classes (`[[:alpha:]]`, `[[:^digit:]]`), `\\Q...\\E`, `\\x{10FFFF}`, octal `\\12`,
  `\\z`, `{,3}` (a literal in Go), `$` (only the very end without `(?m)`), flags set in the
  middle of a group (`a(?i)b`) are rewritten into their Python equivalents;
- Unicode classes (`\\pL`, `\\p{Greek}`) are valid RE2 that Python's `re` cannot express:
  they are rejected with that reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from checkrunner.errors import RE2Error

MAX_REPEAT = 1000  # RE2's limit on {n,m}
_MAX_CODE_POINT = 0x10FFFF

# Go's ASCII classes, as (low, high) code point ranges.
_DIGIT = [(0x30, 0x39)]
_WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SPACE = [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)]  # \t \n \f \r space (no \v)
_PERL = {"d": _DIGIT, "w": _WORD, "s": _SPACE}
_POSIX = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": _DIGIT,
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": _WORD,
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}
_SIMPLE_ESCAPES = {"a": 0x07, "f": 0x0C, "t": 0x09, "n": 0x0A, "r": 0x0D, "v": 0x0B}
_WORD_CLASS = "[0-9A-Za-z_]"
_ASCII_WORD_BOUNDARY = (
    f"(?:(?<={_WORD_CLASS})(?!{_WORD_CLASS})|(?<!{_WORD_CLASS})(?={_WORD_CLASS}))"
)
_ASCII_NOT_WORD_BOUNDARY = (
    f"(?:(?<={_WORD_CLASS})(?={_WORD_CLASS})|(?<!{_WORD_CLASS})(?!{_WORD_CLASS}))"
)
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    result, start = [], 0
    for low, high in sorted(ranges):
        if low > start:
            result.append((start, low - 1))
        start = max(start, high + 1)
    if start <= _MAX_CODE_POINT:
        result.append((start, _MAX_CODE_POINT))
    return result


def _char(code: int) -> str:
    """One code point as a Python class member or literal, escaped."""
    if code < 0x80 and chr(code).isalnum():
        return chr(code)
    return f"\\x{code:02x}" if code < 0x100 else f"\\U{code:08x}"


def _class_text(ranges: list[tuple[int, int]], negated: bool = False) -> str:
    inner = "".join(
        _char(low) if low == high else f"{_char(low)}-{_char(high)}" for low, high in ranges
    )
    if not inner:  # Go's empty class: matches nothing (or, negated, anything)
        return "[\\x00-\\U0010ffff]" if negated else "(?!)"
    return f"[{'^' if negated else ''}{inner}]"


@dataclass
class _Group:
    """One open group of the Go pattern; `scopes` are flag groups opened inside it by `(?i)`,
    each closed again at `|` and at the group's end (Go's flags run to the group's end)."""

    scopes: list[str] = field(default_factory=list)
    multiline: bool = False
    start: int = 0  # index in the output where the group opens


class _Translator:
    def __init__(self, pattern: str, shown: str | None = None, offset: int = 0):
        self.pattern = pattern
        self.shown = pattern if shown is None else shown  # what the user wrote
        self.offset = offset  # where it starts in `pattern`
        self.pos = 0
        self.out: list[str] = []
        self.groups = [_Group()]
        self.can_repeat = False  # the previous item can take a repetition operator
        self.just_repeated = False
        self.item_start = 0  # index in the output where the previous item starts
        self.item_repeated = False  # the previous item ends with a repetition operator
        self.flags_at: int | None = None  # index of the (?i) scopes opened after that item

    def fail(self, message: str) -> RE2Error:
        position = min(max(self.pos - self.offset, 0), len(self.shown)) + 1
        return RE2Error(f"{message} at position {position} of {self.shown!r}")

    def peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.pattern[index] if index < len(self.pattern) else ""

    def translate(self) -> str:
        while self.pos < len(self.pattern):
            self.step()
        if len(self.groups) > 1:
            raise self.fail("missing closing )")
        self.out.append(")" * len(self.groups[0].scopes))
        return "".join(self.out)

    def emit(self, text: str, repeatable: bool = True, start: int | None = None) -> None:
        self.item_start = len(self.out) if start is None else start
        self.out.append(text)
        self.can_repeat = repeatable
        self.just_repeated = self.item_repeated = False
        self.flags_at = None

    def step(self) -> None:
        char = self.pattern[self.pos]
        if char in "*+?{" and self.repetition(char):
            return
        self.pos += 1
        if char == "\\":
            self.escape()
        elif char == "[":
            self.emit(self.char_class())
        elif char == "(":
            self.open_group()
        elif char == ")":
            self.close_group()
        elif char == "|":
            scopes = self.groups[-1].scopes
            self.emit(")" * len(scopes) + "|" + "".join(scopes), repeatable=False)
        elif char == "$":
            self.emit("(?:$)" if self.groups[-1].multiline else r"(?:\Z)")
        elif char == "^":
            self.emit("(?:^)")
        elif char == ".":
            self.emit(".")
        else:
            self.emit(_char(ord(char)) if not char.isalnum() else char)

    # -- repetition ---------------------------------------------------------------------------

    def repetition(self, char: str) -> bool:
        """Handles *, +, ?, {n,m} (and their lazy forms); False when `{` is a literal."""
        text = char
        if char == "{":
            found = _REPEAT.match(self.pattern, self.pos)
            if not found:
                return False  # Go reads a `{` that starts no repeat as a literal
            low = int(found.group(1))
            high = found.group(3)
            if low > MAX_REPEAT or (high and int(high) > MAX_REPEAT):
                raise self.fail(f"invalid repeat count (RE2 allows at most {MAX_REPEAT})")
            if high and int(high) < low:
                raise self.fail("invalid repeat count")
            text = found.group(0)
        if self.just_repeated:
            raise self.fail("invalid nested repetition operator (RE2)")
        if not self.can_repeat:
            raise self.fail("missing argument to repetition operator")
        self.pos += len(text)
        if self.peek() == "?":
            text += "?"
            self.pos += 1
        if self.flags_at is None:
            self.out.append(text)
        else:
            # Go applies a repetition after `(?i)` to the item before it: K(?m)? is K? then
            # the flags; a repeated item repeated again this way is (a*)*.
            if self.item_repeated:
                wrapped = "(?:" + "".join(self.out[self.item_start : self.flags_at]) + ")"
                self.out[self.item_start : self.flags_at] = [wrapped]
                self.flags_at = self.item_start + 1
            self.out.insert(self.flags_at, text)
            self.flags_at += 1
        self.just_repeated = self.item_repeated = True
        return True

    # -- escapes --------------------------------------------------------------------------------

    def escape(self) -> None:
        if self.pos >= len(self.pattern):
            raise self.fail("trailing backslash")
        char = self.pattern[self.pos]
        self.pos += 1
        if char in _PERL or char.lower() in _PERL:
            ranges = _PERL[char.lower()]
            self.emit(_class_text(ranges, negated=char.isupper()))
        elif char == "b":
            self.emit(_ASCII_WORD_BOUNDARY)
        elif char == "B":
            self.emit(_ASCII_NOT_WORD_BOUNDARY)
        elif char == "A":
            self.emit(r"(?:\A)")
        elif char == "z":
            self.emit(r"(?:\Z)")
        elif char == "Q":
            end = self.pattern.find("\\E", self.pos)
            end = len(self.pattern) if end < 0 else end
            literal = self.pattern[self.pos : end]
            self.pos = min(len(self.pattern), end + 2)
            if literal:
                self.emit("".join(_char(ord(c)) for c in literal))
        elif char in "pP":
            raise self.fail(
                "Unicode classes (\\p, \\P) are valid RE2 but checkrun cannot evaluate them"
            )
        else:
            self.emit(_char(self.literal_escape(char)))

    def literal_escape(self, char: str) -> int:
        """The code point of an escape that stands for one character (in or out of classes)."""
        if char in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[char]
        if char == "x":
            return self.hex_escape()
        if char in "01234567":
            digits = char
            if char != "0" and not ("0" <= self.peek() <= "7"):
                raise self.fail(f"invalid escape sequence \\{char} (RE2 has no backreferences)")
            while len(digits) < 3 and "0" <= self.peek() <= "7":
                digits += self.peek()
                self.pos += 1
            return int(digits, 8)
        if char.isascii() and not char.isalnum():
            return ord(char)  # \. \* \_ \\ ...: the punctuation itself
        raise self.fail(f"invalid escape sequence \\{char}")

    def hex_escape(self) -> int:
        if self.peek() == "{":
            end = self.pattern.find("}", self.pos)
            digits = self.pattern[self.pos + 1 : end] if end > 0 else ""
            if not digits or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
                raise self.fail("invalid escape sequence \\x{...}")
            self.pos = end + 1
            code = int(digits, 16)
            if code > _MAX_CODE_POINT:
                raise self.fail("invalid escape sequence: code point too large")
            return code
        digits = self.pattern[self.pos : self.pos + 2]
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", digits):
            raise self.fail("invalid escape sequence \\x")
        self.pos += 2
        return int(digits, 16)

    # -- classes ---------------------------------------------------------------------------------

    def char_class(self) -> str:
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            if self.pos >= len(self.pattern):
                raise self.fail("missing closing ]")
            char = self.pattern[self.pos]
            if char == "]" and not first:
                self.pos += 1
                break
            first = False
            posix = re.match(r"\[:(\^?)([a-z]+):\]", self.pattern[self.pos :])
            if posix:
                if posix.group(2) not in _POSIX:
                    raise self.fail(f"invalid character class range [:{posix.group(2)}:]")
                members = _POSIX[posix.group(2)]
                ranges += _complement(members) if posix.group(1) else members
                self.pos += len(posix.group(0))
                continue
            low = self.class_member(ranges)
            if low is None:
                continue
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                high = self.class_member(ranges, in_range=True)
                if high is None or high < low:
                    raise self.fail("invalid character class range")
                ranges.append((low, high))
            else:
                ranges.append((low, low))
        return _class_text(_complement(ranges) if negated else sorted(ranges))

    def class_member(self, ranges: list[tuple[int, int]], in_range: bool = False) -> int | None:
        """One member: its code point, or None when it was a class escape added to `ranges`."""
        char = self.pattern[self.pos]
        self.pos += 1
        if char != "\\":
            return ord(char)
        if self.pos >= len(self.pattern):
            raise self.fail("trailing backslash")
        escaped = self.pattern[self.pos]
        self.pos += 1
        if escaped.lower() in _PERL and not in_range:
            members = _PERL[escaped.lower()]
            ranges += _complement(members) if escaped.isupper() else members
            return None
        if escaped in "pP":
            raise self.fail(
                "Unicode classes (\\p, \\P) are valid RE2 but checkrun cannot evaluate them"
            )
        return self.literal_escape(escaped)

    # -- groups ----------------------------------------------------------------------------------

    def open_group(self) -> None:
        if self.peek() != "?":
            self.push_group("(")
            return
        rest = self.pattern[self.pos + 1 :]
        if rest.startswith("P<"):
            named = re.match(r"P<([A-Za-z0-9_]+)>", rest)
            if not named:
                raise self.fail("invalid named capture")
            self.pos += 1 + len(named.group(0))
            self.push_group("(")  # names play no part in matching (Go allows 1a, repeats)
            return
        if rest.startswith((":", ")")):  # (?:...) and Go's no-op (?)
            self.pos += 2
            if rest[0] == ":":
                self.push_group("(?:")
            return
        flags = re.match(r"([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])", rest)
        if not flags or rest.startswith(("=", "!", "<", ">", "#", "(", "P=")):
            raise self.fail(
                "invalid or unsupported Perl syntax (RE2 has no look-around, backreferences, "
                "atomic groups, conditionals or comments)"
            )
        on, off, end = flags.group(1), flags.group(2), flags.group(3)
        if (
            not set(on + (off or "")) <= set("imsU")
            or (off is not None and not off)
            or (not on and not off)
        ):
            raise self.fail("invalid or unsupported Perl syntax (RE2 flags are i, m, s, U)")
        if "U" in on + (off or ""):
            raise self.fail("the U (ungreedy) flag is valid RE2 but checkrun cannot evaluate it")
        self.pos += 1 + len(flags.group(0))
        multiline = ("m" in on) or (self.groups[-1].multiline and "m" not in (off or ""))
        scope = f"(?{on}{'-' + off if off else ''}:"
        if end == ":":
            self.push_group(scope, multiline)
        else:  # (?i) applies up to the end of the enclosing group
            self.groups[-1].scopes.append(scope)
            self.groups[-1].multiline = multiline
            if self.flags_at is None:
                self.flags_at = len(self.out)
            self.out.append(scope)
            self.just_repeated = False

    def push_group(self, opening: str, multiline: bool | None = None) -> None:
        inherited = self.groups[-1].multiline if multiline is None else multiline
        self.groups.append(_Group(multiline=inherited, start=len(self.out)))
        self.emit(opening, repeatable=False)

    def close_group(self) -> None:
        if len(self.groups) == 1:
            raise self.fail("unexpected )")
        group = self.groups.pop()
        self.emit(")" * len(group.scopes) + ")", start=group.start)


def translate(pattern: str) -> str:
    """The Python pattern accepting exactly what Go's regexp accepts; RE2Error otherwise."""
    return _Translator(pattern).translate()


def compile_anchored(pattern: str) -> re.Pattern[str]:
    """Alertmanager's regex: the text `^(?:` + pattern + `)$` compiled as Go does, so
    that even `a)|(b` or an unterminated `\\Q` mean what they mean there. Use search()."""
    prefix = "^(?:"
    translated = _Translator(prefix + pattern + ")$", pattern, len(prefix)).translate()
    try:
        return re.compile(translated)
    except re.error as exc:  # a translation Python still refuses: report it as invalid
        raise RE2Error(f"{exc} in {pattern!r}") from None
