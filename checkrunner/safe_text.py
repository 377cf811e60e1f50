"""The one sanitiser for text that reaches a terminal, a log or a report.

Anything a target sent (message, units, facts, error text) and anything read from an input
file (playbook keys, play and host names) may carry control characters. Printed raw, they
would retitle the window (OSC), clear the screen or move the cursor (CSI) and overwrite a
line with a forged "Result: OK", or reorder what is shown (bidi overrides). Such characters
are shown instead as visible escapes: \\x1b, \\x9b, \\u202e.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, C1 controls (U+0085 included), the Arabic letter
# mark and the other bidi marks, embeddings, overrides and isolates, the line and paragraph
# separators, lone surrogates and the two non-characters: they move a terminal's cursor,
# start escape sequences, reorder text, break lines, break XML or fail to encode.
_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufffe\uffff]"
)
_WHITESPACE_RUN = re.compile(r"\s+")


def printable(text: str, *, newlines: bool = True) -> str:
    """`text` with every unsafe character shown as \\xNN or \\uNNNN; tabs stay, and so do
    newlines (CRLF line ends become plain newlines first) unless `newlines` is False."""
    text = str(text).replace("\r\n", "\n")
    shown = _UNPRINTABLE.sub(_escape_char, text)
    return shown if newlines else shown.replace("\n", "\\n")


def one_line(text: str) -> str:
    """printable() on a single line: any run of whitespace, newlines included, becomes a space."""
    return _WHITESPACE_RUN.sub(" ", printable(text)).strip()


def escape_unprintable_json(document: str) -> str:
    """A JSON document with the unsafe characters json.dumps(ensure_ascii=False) leaves raw
    (C1 controls, bidi controls, separators) written as \\uNNNN escapes: the same data."""
    return _UNPRINTABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", document)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
