"""Kept connections: one live target process per (host, become), spoken to in frames.

A kept connection runs `[sudo ...] PYTHON -c LIVE_BOOTSTRAP` once. Its stdin gets, in the first
round, an optional become password line (for `sudo -S`), the LIVE_MARKER line, then a frame
holding the compressed target-side runner (modules/_batch.py) whose `_serve()` takes over; after
that only request frames. The process greets on stdout (LIVE_GREETING, so a banner a shell rc
file prints is skipped) and answers each request with one frame.

A frame is a 5-byte header (big-endian body length, one flags byte) and a zlib-compressed body.
A request's body is JSON: the sources of the modules the batch needs that this process has not
been sent yet, the batch (the shape of `Batch.to_wire()`), and the idle timeout after which the
process leaves on its own. An answer's body is the one-shot answer JSON plus "pid"; the
RETIRING flag says the process exits after it (hung check threads piled up, memory grew), and
the next round starts a fresh one.

Everything a target sends is untrusted: FrameReader bounds the noise before the greeting, a
frame's announced and inflated size (MAX_OUTPUT_BYTES), and turns anything unreadable into a
ProtocolError. Any failure (end of stream, deadline, protocol error) closes that session; the
next round reconnects.
"""

from __future__ import annotations

import abc
import functools
import json
import logging
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from checkrunner import catalog
from checkrunner.errors import ProtocolError, Unreachable
from checkrunner.results import UnreachableReason
from checkrunner.transport.answer import RESULT_MARKER
from checkrunner.transport.base import (
    LIVE_IDLE_TIMEOUT,
    MAX_OUTPUT_BYTES,
    MAX_STDERR_BYTES,
    ExecResult,
    TransportEvent,
)
from checkrunner.transport.payload import Batch, with_become_password

# The line before the program on stdin; a become password line that sudo did not read comes
# before it and is skipped. Also what `pgrep -f CHECKRUN_LIVE` finds on a target.
LIVE_MARKER = b"#CHECKRUN_LIVE_1"
LIVE_BOOTSTRAP = (
    "import sys,zlib,struct;i=sys.stdin.buffer;"
    "i.readline()==b'#CHECKRUN_LIVE_1\\n' or i.readline();"
    "n=struct.unpack('>IB',i.read(5))[0];exec(zlib.decompress(i.read(n)))"
)
LIVE_GREETING = b"__CHECKRUN_LIVE__1\n"  # modules/_batch.py's LIVE_GREETING
FRAME_HEADER = struct.Struct(">IB")  # modules/_batch.py's FRAME_HEADER
RETIRING = 1
MAX_NOISE_BYTES = 64 * 1024  # a login banner, a shell rc file's chatter before the greeting
KEEPALIVE_SECONDS = 15  # ssh keepalives on kept connections (ServerAliveInterval)
# paramiko's reader thread wakes whenever a read of its socket times out (0.1 s: ten times a
# second per connection, ~0.6 ms of CPU per host and second, more than a round's own work
# at a 10s interval). A kept connection idles between rounds: its reader only needs to wake
# for keepalives and for close, which it notices on its next wake.
READER_WAKE_SECONDS = 1.0

_log = logging.getLogger(__name__)


def encode_frame(body: bytes, flags: int = 0, level: int = 6) -> bytes:
    compressed = zlib.compress(body, level)
    return FRAME_HEADER.pack(len(compressed), flags) + compressed


@functools.cache
def program_frame() -> bytes:
    """The target-side runner as the live bootstrap reads it: header + zlib'd source."""
    program = catalog.batch_runner_source() + "\n_serve()\n"
    return encode_frame(program.encode("utf-8"), level=9)


def opening_bytes(password: str | None) -> bytes:
    """What a fresh live process reads first: [password line,] marker line, the program."""
    return with_become_password(LIVE_MARKER + b"\n" + program_frame(), password)


@dataclass(frozen=True)
class Frame:
    flags: int
    body: bytes  # inflated


class FrameReader:
    """Frames out of a live target's stdout as its bytes arrive (pure: no I/O)."""

    def __init__(self, max_body: int = MAX_OUTPUT_BYTES, max_noise: int = MAX_NOISE_BYTES):
        self.max_body = max_body
        self.max_noise = max_noise
        self.greeted = False
        self.received = 0
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes held that no frame has taken yet (an answer that has begun to arrive)."""
        return len(self._buffer)

    def next_frame(self) -> Frame | None:
        """The next complete frame, None until one is, ProtocolError for a bad one."""
        if not self.greeted and not self._greeting():
            return None
        if len(self._buffer) < FRAME_HEADER.size:
            return None
        size, flags = FRAME_HEADER.unpack_from(self._buffer)
        if size > self.max_body:
            raise ProtocolError(
                f"the target announced a frame of {size} bytes, more than "
                f"{self.max_body // 1024**2} MiB"
            )
        end = FRAME_HEADER.size + size
        if len(self._buffer) < end:
            return None
        compressed = bytes(self._buffer[FRAME_HEADER.size : end])
        del self._buffer[:end]
        return Frame(flags, inflate(compressed, self.max_body))

    def _greeting(self) -> bool:
        index = self._buffer.find(LIVE_GREETING)
        if index < 0:
            if len(self._buffer) > self.max_noise:
                raise ProtocolError(
                    f"the target sent {len(self._buffer)} bytes without the live greeting"
                )
            return False
        del self._buffer[: index + len(LIVE_GREETING)]
        self.greeted = True
        return True


def inflate(compressed: bytes, limit: int) -> bytes:
    """zlib-decompressed `compressed`, ProtocolError when unreadable, cut or past `limit`."""
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(compressed, limit + 1)
    except zlib.error as exc:
        raise ProtocolError(f"unreadable frame from the target: {exc}") from None
    if len(body) > limit:
        raise ProtocolError(f"the target sent more than {limit // 1024**2} MiB")
    if not inflater.eof or inflater.unused_data:
        raise ProtocolError("unreadable frame from the target: not one whole zlib stream")
    return body


class LiveChannel(abc.ABC):
    """The pipes of one live target process: an ssh channel, a local subprocess."""

    @abc.abstractmethod
    def send(self, data: bytes, deadline: float) -> bool:
        """Write all of `data`; False when the process no longer reads (or the deadline)."""

    @abc.abstractmethod
    def receive(self, deadline: float) -> tuple[bytes, bytes]:
        """(stdout, stderr) bytes that came, after waiting for some until `deadline`."""

    @abc.abstractmethod
    def ended(self) -> bool:
        """The process closed its stdout (it exited, or the connection is gone)."""

    @abc.abstractmethod
    def alive(self) -> bool:
        """Worth sending the next request to, as far as can be known without asking."""

    @abc.abstractmethod
    def exit_status(self) -> int:
        """The ended process's exit status; -1 when unknown."""

    @abc.abstractmethod
    def close(self, graceful: bool = False) -> None:
        """End the process and the connection; `graceful` lets it see stdin end first."""

    def abort(self) -> None:
        """Stop the process now, from another thread (Ctrl-C): its round is interrupted."""
        self.close()

    def watch_with(self, guard: Any) -> None:  # noqa: B027 - optional hook
        """This round's deadline/abort guard (ssh: the watchdog closes the connection)."""

    def stopped(self, timed_out: bool, timeout: float) -> Unreachable | None:
        """Why the round stopped early (interrupted, deadline), or None."""
        return None


class LiveSession:
    """One live target process: the sources it already holds, the frames it sends."""

    def __init__(self, channel: LiveChannel, opening: bytes, identity: Any, idle_timeout: float):
        self.channel = channel
        self.identity = identity  # what it was opened for: a host whose settings change is new
        self.idle_timeout = idle_timeout
        self.retiring: str | None = None
        self.answered = 0  # rounds answered
        self._opening = opening
        self._shipped: set[str] = set()
        self._reader = FrameReader()

    def request(self, batch: Batch) -> bytes:
        """The request frame of `batch`: sources not shipped yet, batch and idle timeout."""
        sources = {
            name: source
            for name, source in catalog.batch_sources({c.module for c in batch.checks}).items()
            if name not in self._shipped
        }
        body = {"sources": sources, "batch": batch.to_wire(), "idle": self.idle_timeout}
        frame = encode_frame(json.dumps(body).encode("utf-8"))
        self._shipped.update(sources)
        opening, self._opening = self._opening, b""
        return opening + frame

    def exchange(self, batch: Batch, deadline: float, timeout: float) -> tuple[ExecResult, bool]:
        """(result, answered): the answer as read_answer takes it, or, when the process ended
        first, what it left (exit status, stderr); Unreachable at the deadline."""
        received_before = self._reader.received
        stderr = bytearray(self._unasked())
        data = self.request(batch)
        sent = self.channel.send(data, deadline)
        while True:
            frame = self._reader.next_frame() if sent else None
            if frame is not None:
                return self._answered(frame, stderr, len(data), received_before), True
            if not sent or self.channel.ended():
                return self._ended(stderr, len(data), received_before, deadline, timeout), False
            if time.monotonic() >= deadline:
                raise self.channel.stopped(True, timeout) or _deadline(timeout)
            out, err = self.channel.receive(deadline)
            self._reader.feed(out)
            stderr += err[: max(0, MAX_STDERR_BYTES - len(stderr))]

    def _unasked(self) -> bytes:
        """What the process wrote since its last answer: stderr is kept for this round, but
        stdout must be empty (a second answer to one request would pass for the next one's)."""
        if not self.answered:
            return b""  # a fresh process: a login banner may come before the greeting
        out, err = self.channel.receive(time.monotonic())
        if out or self._reader.buffered:
            raise ProtocolError(
                f"the target sent {len(out) + self._reader.buffered} bytes nobody asked for"
            )
        return err[:MAX_STDERR_BYTES]

    @property
    def answer_started(self) -> bool:
        return self._reader.buffered > 0

    def _answered(self, frame: Frame, stderr: bytearray, sent: int, before: int) -> ExecResult:
        self.answered += 1
        if frame.flags & RETIRING:
            self.retiring = f"the target process retired itself{_retire_reason(frame.body)}"
        stdout = RESULT_MARKER.encode() + frame.body + b"\n"
        received = self._reader.received - before + len(stderr)
        return ExecResult(0, stdout, bytes(stderr), sent_bytes=sent, received_bytes=received)

    def _ended(
        self, stderr: bytearray, sent: int, before: int, deadline: float, timeout: float
    ) -> ExecResult:
        stopped = self.channel.stopped(time.monotonic() >= deadline, timeout)
        if stopped is not None:
            raise stopped
        out, err = self.channel.receive(time.monotonic())  # what is left in the pipes
        self._reader.feed(out)
        stderr += err[: max(0, MAX_STDERR_BYTES - len(stderr))]
        received = self._reader.received - before + len(stderr)
        return ExecResult(
            self.channel.exit_status(), b"", bytes(stderr), sent_bytes=sent, received_bytes=received
        )


def _retire_reason(body: bytes) -> str:
    """': why', from an answer flagged RETIRING (untrusted: a short string or nothing)."""
    try:
        reason = json.loads(body).get("retiring")
    except (ValueError, AttributeError, RecursionError):
        return ""
    return f": {reason[:200]}" if isinstance(reason, str) else ""


def _deadline(timeout: float) -> Unreachable:
    return Unreachable(
        UnreachableReason.TIMEOUT, f"no answer within the host deadline of {timeout:g}s"
    )


Key = tuple[str, bool]  # (host name, become)
OpenChannel = Callable[[float], tuple[LiveChannel, bytes]]  # deadline -> (channel, opening)


class KeptSessions:
    """The live sessions of one transport by (host name, become), and their events."""

    def __init__(self, idle_timeout: float = LIVE_IDLE_TIMEOUT):
        self.idle_timeout = idle_timeout
        self.on_event: Callable[[TransportEvent], None] | None = None
        self._sessions: dict[Key, LiveSession] = {}
        self._key_locks: dict[Key, threading.Lock] = {}
        self._ever: set[Key] = set()  # keys that had a session: a new one is a reconnection
        self._lock = threading.Lock()

    def run(
        self,
        host: Any,
        batch: Batch,
        deadline: float,
        timeout: float,
        identity: Any,
        open_channel: OpenChannel,
        guard: Any = None,
    ) -> ExecResult:
        """One round on `host`'s live process, opened (again) when there is none."""
        key = (host.name, bool(getattr(host, "become", False)))
        lock = self._key_lock(key)
        if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise _deadline(timeout)
        try:
            return self._run(key, batch, deadline, timeout, identity, open_channel, guard)
        finally:
            lock.release()

    def forget(self, host_name: str) -> None:
        """Close `host_name`'s sessions (every become level) now."""
        self._close_where(lambda key: key[0] == host_name)

    def close(self) -> None:
        """Close every session; their processes see stdin end and exit."""
        self._close_where(lambda key: True)

    def abort(self) -> None:
        """Stop every session at once (Ctrl-C): rounds in flight end as interrupted."""
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.channel.abort()

    def _close_where(self, chosen: Callable[[Key], bool]) -> None:
        with self._lock:
            taken = [(key, self._sessions.pop(key)) for key in list(self._sessions) if chosen(key)]
        for key, session in taken:
            lock = self._key_lock(key)
            if lock.acquire(blocking=False):
                try:
                    session.channel.close(graceful=True)
                finally:
                    lock.release()
            else:  # a round is in flight: stop it; that round closes what is left
                session.channel.abort()

    def _run(
        self,
        key: Key,
        batch: Batch,
        deadline: float,
        timeout: float,
        identity: Any,
        open_channel: OpenChannel,
        guard: Any,
    ) -> ExecResult:
        session = self._reusable(key, identity)
        while True:
            reused = session is not None
            if session is None:
                session = self._open(key, deadline, identity, open_channel)
            session.channel.watch_with(guard)
            try:
                result, answered = session.exchange(batch, deadline, timeout)
            except (Unreachable, ProtocolError) as exc:
                self._drop(key, session, str(exc))
                raise
            except BaseException:
                self._drop(key, session, "interrupted")
                raise
            if answered:
                if session.retiring:
                    self._drop(key, session, session.retiring)
                return result
            self._drop(key, session, _ended_detail(result))
            # A kept process that died between rounds (killed, host rebooted) is seen only
            # now: nothing of this round reached it, so the round goes to a fresh one.
            if reused and not session.answer_started and time.monotonic() < deadline:
                session = None
                continue
            return result

    def _reusable(self, key: Key, identity: Any) -> LiveSession | None:
        with self._lock:
            session = self._sessions.get(key)
        if session is None:
            return None
        if session.identity != identity:
            self._drop(key, session, None)  # the host's settings changed: a new connection
            return None
        if not session.channel.alive():
            self._drop(key, session, "the connection or the live process ended")
            return None
        return session

    def _open(self, key: Key, deadline: float, identity: Any, open_channel: OpenChannel):
        channel, opening = open_channel(deadline)
        session = LiveSession(channel, opening, identity, self.idle_timeout)
        with self._lock:
            self._sessions[key] = session
            again = key in self._ever
            self._ever.add(key)
        self._emit("reconnected" if again else "connected", key[0], "")
        return session

    def _drop(self, key: Key, session: LiveSession, detail: str | None) -> None:
        with self._lock:
            if self._sessions.get(key) is session:
                del self._sessions[key]
        session.channel.close()
        if detail is not None:
            self._emit("lost", key[0], detail)

    def _key_lock(self, key: Key) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _emit(self, kind: str, host: str, detail: str) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(TransportEvent(kind, host, detail))
        except Exception:  # a listener's bug must not fail the host's round
            _log.debug("transport event listener failed", exc_info=True)


def _ended_detail(result: ExecResult) -> str:
    lines = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
    last = lines[-1][:200] if lines else "no error output"
    return f"the live process ended (exit status {result.exit_status}: {last})"
