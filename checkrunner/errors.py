"""Every exception checkrunner raises, in one tree (the way httpx's `_exceptions.py` does it).

    Exception
    └── CheckrunError ........................ a run ends with a message, never a traceback
        ├── ConfigError ...................... bad playbook, inventory, vars or CLI: exit 5
        │   ├── MultipleConfigErrors ......... several ConfigErrors from one pass: exit 5
        │   └── VariableLoop ................. variables that refer to each other: exit 5
        ├── InvalidValue (also ValueError) ... a value without its place; the caller adds it
        │   ├── OptionValueError ............. an option's value of the wrong type or form
        │   ├── HostEntryError ............... an inventory host entry or range
        │   ├── BaselineError ................ a dynamic threshold's mapping
        │   └── RE2Error ..................... a pattern that is not Go RE2
        ├── TargetError ...................... one host's failure; the other hosts go on
        │   ├── Unreachable .................. the batch could not run there: UNREACHABLE, exit 4
        │   └── ProtocolError ................ the target's answer is not a valid result
        │       └── RemoteCrash .............. the batch died: its checks UNKNOWN, exit 3
        ├── AlertingError .................... a notification failed; the run's exit is unchanged
        │   └── RenderError (also ValueError)  a payload cannot be made from the configuration
        ├── LeaseLost ........................ watch --ha: another replica leads; round unrecorded
        ├── NotBuilt ......................... watch's HTTP face has no body yet: answer 503
        ├── CommandFailed .................... checkrun init could not do its job: its exit code
        └── Cancelled ........................ the run was interrupted: exit 130

`exit_code` on each class is what the command line ends with when that error decides the
outcome: `cli.main` prints a CheckrunError that reaches it and returns its `exit_code`; a
TargetError never reaches it (the runner turns it into that host's result, and the run's
exit code follows `results.exit_code_for`); an AlertingError is logged with the
notification and changes no exit code (`exit_code` None). `tests/test_errors.py` checks this
picture against the classes and the command line.

Exceptions defined elsewhere, on purpose (the same test holds this list):
- Subclasses of a library's exception, which that library raises or catches by its own
  class, and which would make this module import the library at start-up:
  `config.jinja_sandbox.TemplateLimit` (Jinja2's SecurityError, so that the sandbox stops
  the template), `config.jinja_sandbox.UndefinedName` (Jinja2's UndefinedError, raised by
  Jinja2's Undefined), `yamlio.marked.VaultValue` (PyYAML's ConstructorError, raised inside
  PyYAML's constructor and reported by the YAML error formatter).
- `state.db.BackendError`: the PostgreSQL driver's errors re-raised as this, so that
  catching them needs no driver imported; like sqlite3.Error it is a state database failing,
  not a user's mistake, and the tuple STATE_ERRORS beside it catches the two together.
- Private control flow that never leaves its module: `config.templating._NotAValue` (a
  native template gave a function; turned into a ConfigError in the same file) and
  `transport.ssh._HostDeadline` (the deadline passed mid-batch; turned into Unreachable in
  the same file). Moving them here would make their one raise and one except two files apart.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from checkrunner.results import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_UNKNOWN,
    EXIT_UNREACHABLE,
    UnreachableReason,
)

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
    """Base class of errors that end a run with a message instead of a traceback (exit 5
    when one reaches the command line without a more specific code)."""

    exit_code: ClassVar[int | None] = EXIT_BAD_INPUT


class ConfigError(CheckrunError):
    """The playbook, inventory, vars or command line is wrong: nothing ran (exit 5).

    Raised by every parser and loader (config, inventory, yamlio, playbook, alerting's
    configuration, the command line); names file:line:column, what is wrong and the fix.
    """

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


class MultipleConfigErrors(ConfigError):
    """Two or more ConfigErrors found in one pass (`config.problems.raise_problems`); str()
    lists each with its location and hint, in file order (exit 5)."""

    def __init__(self, errors: Iterable[ConfigError]):
        ordered = sort_problems(errors)
        if not ordered:
            raise ValueError("MultipleConfigErrors needs at least one error")
        super().__init__(f"{len(ordered)} problems", ordered[0].location)
        self.errors = ordered

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


class VariableLoop(ConfigError):
    """Variables that refer to each other in a circle (`config.templating`): reported once,
    not once per level of the loop (exit 5)."""


class InvalidValue(CheckrunError, ValueError):
    """A value that cannot be read, found where its file and line are not known. The caller
    that knows them re-raises it as a ConfigError at that place (exit 5). It stays a
    ValueError for callers that read values of any kind."""


class OptionValueError(InvalidValue):
    """A value an option cannot take, with the fix to suggest (`config.coerce`); the option
    parsers and the command line turn it into a ConfigError (exit 5)."""

    def __init__(self, message: str, hint: str | None = None, item: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.item = item  # the index of the list item at fault, for its location


class HostEntryError(InvalidValue):
    """A host entry that cannot be read (`inventory.hostnames`); the message says what is
    wrong and how to write it. The inventory readers make it a ConfigError (exit 5)."""


class BaselineError(InvalidValue):
    """What is wrong with a baseline mapping (`config.baselines`): `key` is the key at fault
    (None: the mapping), `at_key` when the key itself is (unknown, one too many) rather than
    its value; the parser reports it at that place (exit 5)."""

    def __init__(self, message: str, key: str | None = None, hint: str = "", at_key: bool = False):
        super().__init__(message)
        self.key = key
        self.hint = hint
        self.at_key = at_key


class RE2Error(InvalidValue):
    """The pattern is not valid RE2, or uses RE2 that Python cannot evaluate
    (`alerting.re2`); the matcher parser reports it as an invalid matcher (exit 5)."""


class TargetError(CheckrunError):
    """One host failed; the runner records it as that host's result and the other hosts go
    on. It never reaches the command line: the run's exit code comes from the results."""


class Unreachable(TargetError):
    """The batch could not be run on the host (raised by the transports); the host is
    UNREACHABLE with `reason`, an UnreachableReason (exit 4 unless something is worse)."""

    exit_code = EXIT_UNREACHABLE

    def __init__(self, reason: UnreachableReason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class ProtocolError(TargetError):
    """The target answered, but not with a valid result: a crash, garbage or a hostile
    answer (`transport.answer.read_answer`). The runner re-raises it as RemoteCrash."""

    exit_code = EXIT_UNKNOWN


class RemoteCrash(ProtocolError):
    """The host answered, but its batch died before printing results (a target-side
    traceback): the runner makes every check of the batch UNKNOWN (exit 3)."""


class AlertingError(CheckrunError):
    """A notification could not be made or sent. The alerting engine records it with the
    notification (and `checkrun alerts` shows it); it changes no exit code."""

    exit_code = None


class RenderError(AlertingError, ValueError):
    """A payload cannot be made from the configuration (a template failed, a value is
    missing); raised by the receiver modules. Its message names the option and never holds
    a secret value."""


class LeaseLost(CheckrunError):
    """watch --ha: this replica no longer holds the lease (state/lease.py's fence, inside a
    recording transaction), so the transaction is rolled back; the watch loop stands by. It
    never reaches the command line."""

    exit_code = None


class NotBuilt(CheckrunError):
    """Watch's HTTP face (serve/rendered.py): the first build of a body did not finish in
    time, and there is no earlier one to serve; the request is answered 503. It never
    reaches the command line."""

    exit_code = None


class CommandFailed(CheckrunError):
    """A command other than a run (`checkrun init`) could not do its job; it ends with the
    exit code a run would have had for the same cause (4 unreachable, 3 a module failed):
    each instance carries its own."""

    exit_code = None  # the instance's, given when raised

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Cancelled(CheckrunError):
    """The run was interrupted (Ctrl-C, a signal): a host stops between attempts, the
    partial report is still written, exit 130."""

    exit_code = EXIT_INTERRUPTED


def flatten_problems(errors: Iterable[ConfigError]) -> list[ConfigError]:
    flat: list[ConfigError] = []
    for error in errors:
        if isinstance(error, MultipleConfigErrors):
            flat.extend(error.errors)
        else:
            flat.append(error)
    return flat


def sort_problems(errors: Iterable[ConfigError]) -> list[ConfigError]:
    """Files in the order they first appear, then by line and column."""
    flat = flatten_problems(errors)
    file_rank: dict[str, int] = {}
    for error in flat:
        if error.location is not None:
            file_rank.setdefault(error.location.file, len(file_rank))

    def position(error: ConfigError) -> tuple[int, int, int]:
        where = error.location
        if where is None:
            return (-1, 0, 0)
        return (file_rank[where.file], where.line or 0, where.column or 0)

    return sorted(flat, key=position)


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
