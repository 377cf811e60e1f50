"""Run the batch on this machine, through the same python3-on-stdin path SSH targets use."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import subprocess
import threading
import time

from checkrunner.errors import Unreachable
from checkrunner.results import UnreachableReason
from checkrunner.subprocesses import CHUNK, kill_group, read_bounded
from checkrunner.transport.base import MAX_OUTPUT_BYTES, MAX_STDERR_BYTES, ExecResult, Transport
from checkrunner.transport.live import (
    LIVE_BOOTSTRAP,
    KeptSessions,
    LiveChannel,
    opening_bytes,
)
from checkrunner.transport.payload import BOOTSTRAP, Batch, with_become_password

_CLOSE_GRACE = 2.0  # a live process told to stop (stdin closed) has this long to exit


class LocalTransport(Transport):
    name = "local"

    def __init__(self) -> None:
        self._live: set[subprocess.Popen] = set()
        self._kept = KeptSessions()
        self._lock = threading.Lock()

    def run_batch(self, host, payload: bytes, timeout: float) -> ExecResult:
        argv, password = _command(host, BOOTSTRAP)
        payload = with_become_password(payload, password)
        proc = _start(argv)
        with self._lock:
            self._live.add(proc)
        try:
            result = _communicate(proc, payload, time.monotonic() + timeout)
            result.sent_bytes = len(payload)
            result.received_bytes = len(result.stdout) + len(result.stderr)
            return result
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise Unreachable(
                UnreachableReason.TIMEOUT, f"no answer within the host deadline of {timeout:g}s"
            ) from None
        except BaseException:
            kill_group(proc)
            raise
        finally:
            with self._lock:
                self._live.discard(proc)

    def run_kept(self, host, batch: Batch, timeout: float) -> ExecResult:
        argv, password = _command(host, LIVE_BOOTSTRAP)

        def open_channel(deadline: float) -> tuple[LiveChannel, bytes]:
            return _LiveProcess(_start(argv)), opening_bytes(password)

        deadline = time.monotonic() + timeout
        return self._kept.run(host, batch, deadline, timeout, (argv, password), open_channel)

    def configure_kept(self, on_event, idle_timeout: float) -> None:
        self._kept.on_event = on_event
        self._kept.idle_timeout = idle_timeout

    def forget(self, host_name: str) -> None:
        self._kept.forget(host_name)

    def abort(self) -> None:
        with self._lock:
            live = list(self._live)
        for proc in live:
            kill_group(proc, reap=False)
        self._kept.abort()

    def close(self) -> None:
        self._kept.close()


def _command(host, bootstrap: str) -> tuple[list[str], str | None]:
    """The argv that runs `bootstrap` as the host wants (sudo when it becomes), and the
    become password to send first, if any."""
    interpreter = host.python_interpreter
    if shutil.which(interpreter) is None:
        raise Unreachable(
            UnreachableReason.NO_PYTHON,
            f"interpreter '{interpreter}' not found on this machine; "
            "set ansible_python_interpreter to a Python 3 path",
        )
    argv = [interpreter, "-c", bootstrap]
    password = None
    if host.become and os.geteuid() != 0:
        password = getattr(host, "become_password", None) or None
        sudo = ["sudo", "-S", "-p", ""] if password else ["sudo", "-n"]
        argv = [*sudo, "--", *argv]
    return argv, password


def _start(argv: list[str]) -> subprocess.Popen:
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches us, and we stop the batch ourselves
        )
    except OSError as exc:
        raise Unreachable(UnreachableReason.NO_PYTHON, f"cannot start {argv[0]}: {exc}") from None


class _LiveProcess(LiveChannel):
    """A kept local python3: its pipes, read and written without blocking past a deadline."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.aborted = False
        self._stdout_ended = False
        self._closed = False
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            os.set_blocking(pipe.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(proc.stdout, selectors.EVENT_READ)
        self._selector.register(proc.stderr, selectors.EVENT_READ)
        self._lock = threading.Lock()

    def send(self, data: bytes, deadline: float) -> bool:
        view = memoryview(data)
        fd = self.proc.stdin.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_WRITE)
            while view:
                try:
                    view = view[os.write(fd, view) :]
                    continue
                except BlockingIOError:
                    pass
                except OSError:  # BrokenPipeError: the process is gone
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                selector.select(remaining)
        return True

    def receive(self, deadline: float) -> tuple[bytes, bytes]:
        out, err = bytearray(), bytearray()
        try:
            events = self._selector.select(max(0.0, deadline - time.monotonic()))
        except (OSError, ValueError, RuntimeError):  # closed under us (forget, close)
            self._stdout_ended = True
            return b"", b""
        if not self._selector.get_map():
            self._stdout_ended = True
        for key, _ in events:
            while True:
                try:
                    data = os.read(key.fd, CHUNK)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self._selector.unregister(key.fileobj)
                    if key.fileobj is self.proc.stdout:
                        self._stdout_ended = True
                    break
                (out if key.fileobj is self.proc.stdout else err).extend(data)
                if len(out) > MAX_OUTPUT_BYTES or len(err) > MAX_STDERR_BYTES:
                    break
        return bytes(out), bytes(err)

    def ended(self) -> bool:
        return self._stdout_ended

    def alive(self) -> bool:
        return not self._stdout_ended and self.proc.poll() is None

    def exit_status(self) -> int:
        try:
            return self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return -1

    def stopped(self, timed_out: bool, timeout: float) -> Unreachable | None:
        if self.aborted:
            return Unreachable(UnreachableReason.ERROR, "interrupted")
        return None

    def close(self, graceful: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            if graceful:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(_CLOSE_GRACE)
            kill_group(self.proc)
            self._selector.close()
            for pipe in (self.proc.stdout, self.proc.stderr):
                with contextlib.suppress(OSError):
                    pipe.close()

    def abort(self) -> None:
        self.aborted = True
        kill_group(self.proc, reap=False)


def _communicate(proc: subprocess.Popen, payload: bytes, deadline: float) -> ExecResult:
    """Popen.communicate with bounded reads: stderr keeps its first MAX_STDERR_BYTES, and a
    batch whose stdout passes MAX_OUTPUT_BYTES is stopped and its result marked overflowing."""
    writer = threading.Thread(target=_feed, args=(proc.stdin, payload), daemon=True)
    writer.start()
    stdout, stderr, overflow = read_bounded(proc, deadline, MAX_OUTPUT_BYTES, MAX_STDERR_BYTES)
    if overflow:
        kill_group(proc)
        return ExecResult(-1, stdout, stderr, overflow=True)
    status = proc.wait(max(0.0, deadline - time.monotonic()))
    writer.join()  # the batch has exited: its stdin is closed and the writer done
    return ExecResult(status, stdout, stderr)


def _feed(stdin, payload: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        stdin.write(payload)
    with contextlib.suppress(BrokenPipeError, OSError):
        stdin.close()
