"""The Reporter base class and the plumbing every format shares: where the text goes, and how."""

from __future__ import annotations

import abc
import contextlib
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar, TextIO

from checkrunner.results import HostResult, RunResult

if TYPE_CHECKING:
    from checkrunner.state.history import HistoryStore

STDOUT_PATHS = (None, "", "-")


class Reporter(abc.ABC):
    """One report format. Subclasses set `name` and implement `render`.

    The runner calls `on_start` once, `on_host_done` as each host finishes (in completion
    order) and the command calls `finish` with the whole run, which writes the report to
    `path` (atomically) or, when `path` is None, to `stream` (stdout by default).
    """

    name: ClassVar[str] = ""
    # A format that charts the past declares it; the app then sets `history` before `finish`
    # (a HistoryStore on the run's state database, None with --no-state).
    uses_history: ClassVar[bool] = False

    def __init__(
        self,
        path: str | None,
        *,
        verbose: int = 0,
        color: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.path = None if path in STDOUT_PATHS else path
        self.verbose = verbose
        self.color = color
        self._stream = stream
        self.history: HistoryStore | None = None

    @property
    def writes_to_stdout(self) -> bool:
        return self.path is None

    @property
    def stream(self) -> TextIO:
        """The output stream when there is no path; sys.stdout is looked up late on purpose,
        so that redirections made after the reporter was created are honoured."""
        return self._stream if self._stream is not None else sys.stdout

    def on_start(self, total_hosts: int, total_checks: int) -> None:  # noqa: B027 - optional hook; no-op by default
        """Called once before any host runs."""

    def on_host_done(self, host: HostResult) -> None:  # noqa: B027 - optional hook; no-op by default
        """Called as each host finishes."""

    @abc.abstractmethod
    def render(self, run: RunResult) -> str:
        """The whole report as text."""

    def finish(self, run: RunResult) -> None:
        """Render the whole run and write it out."""
        self.close()
        self.write(self.render(run))

    def close(self) -> None:  # noqa: B027 - optional hook; no-op by default
        """Release live resources (a progress display); safe to call more than once."""

    def write(self, text: str | Iterable[str]) -> None:
        """Write the report: one text, or its pieces in order (a report written as it is
        made)."""
        if self.path is None:
            write_to_stream(self.stream, text)
        elif is_special_file(self.path):
            # /dev/stderr, a named pipe: there is nothing to replace, only something to write to.
            with open(self.path, "w", encoding="utf-8", errors="backslashreplace") as handle:
                handle.writelines(_pieces(text))
        else:
            atomic_write(self.path, text)


def _pieces(text: str | Iterable[str]) -> Iterable[str]:
    return (text,) if isinstance(text, str) else text


def write_to_stream(stream: TextIO, text: str | Iterable[str]) -> None:
    # A report must never die on a character the stream cannot encode (a lone surrogate
    # from a log line, or an ASCII-only locale): such characters become backslash escapes.
    encoding = getattr(stream, "encoding", None) or "utf-8"
    for piece in _pieces(text):
        stream.write(piece.encode(encoding, errors="backslashreplace").decode(encoding))
    stream.flush()


def atomic_write(path: str, text: str | Iterable[str]) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never half.

    Parent directories are created. The temporary file sits next to the target (same
    filesystem, so os.replace is atomic) and is created with mode 0666 minus the umask,
    like any file the user's shell would create.
    """
    target = os.path.abspath(path)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    temp = os.path.join(
        parent, f".{os.path.basename(target)}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    )
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            for piece in _pieces(text):
                handle.write(piece.encode("utf-8", errors="backslashreplace"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def is_special_file(path: str) -> bool:
    """An existing path that is neither a regular file nor a directory (device, FIFO)."""
    return os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path)


def color_wanted(stream: TextIO, requested: bool | None = None) -> bool:
    """Whether to colour output going to `stream`.

    An explicit choice wins; otherwise NO_COLOR (non-empty) turns colour off, then
    FORCE_COLOR (non-empty) turns it on, then TERM=dumb turns it off, and finally colour
    follows whether the stream is a terminal. NO_COLOR beats FORCE_COLOR because it is the
    user saying no.
    """
    if requested is not None:
        return requested
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    if os.environ.get("TERM") == "dumb":
        return False
    return is_tty(stream)


def is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
