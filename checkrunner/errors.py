"""User-facing errors. Every bad input becomes one ConfigError: file:line:col, what, and the fix."""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Error messages quote at most this much of a value: enough to recognise it, too little to
#: carry a key or a token (values from files and the environment can be secret).
EXCERPT_LENGTH = 24
ELLIPSIS = "…"
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PuTTY-User-Key-File-")


@dataclass
class Location:
    file: str
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class CheckrunError(Exception):
    """Base class of errors that end a run with a message instead of a traceback."""

    exit_code = 5


class ConfigError(CheckrunError):
    """The playbook, inventory, vars or command line is wrong: nothing ran (exit 5)."""

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


def looks_like_private_key(text: str) -> bool:
    return _PRIVATE_KEY.search(text) is not None


def quote(value: object) -> str:
    """A value as error messages cite it: the repr of a short excerpt of its first line,
    cut with ELLIPSIS (which masking recognises, so a secret cut short is masked too)."""
    if isinstance(value, (bool, int, float)) or value is None:
        try:
            return reprlib.repr(value)  # a long number is shortened in its middle
        except ValueError:  # an int past Python's digit limit for str()
            return "(a number too long to show)"
    if isinstance(value, Mapping):  # what a list or mapping holds could be anything
        return "(a mapping)"
    if not isinstance(value, str):
        return "(a list)" if isinstance(value, (list, tuple)) else f"(a {type(value).__name__})"
    if looks_like_private_key(value):
        return "(what looks like a private key, not shown)"
    excerpt = value.split("\n", 1)[0][:EXCERPT_LENGTH]
    return repr(excerpt + ELLIPSIS) if excerpt != value else repr(value)


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The nearest known name to a misspelt one, or None."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    best = suggest(word, candidates)
    return f"did you mean '{best}'?" if best else None
