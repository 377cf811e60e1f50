"""Run the batch on this machine, through the same python3-on-stdin path SSH targets use."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import threading
import time

from checkrunner.errors import Unreachable
from checkrunner.results import UnreachableReason
from checkrunner.transport.base import MAX_OUTPUT_BYTES, MAX_STDERR_BYTES, ExecResult, Transport
from checkrunner.transport.payload import BOOTSTRAP, with_become_password

_CHUNK = 65536


class LocalTransport(Transport):
    name = "local"

    def __init__(self) -> None:
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def run_batch(self, host, payload: bytes, timeout: float) -> ExecResult:
        interpreter = host.python_interpreter
        if shutil.which(interpreter) is None:
            raise Unreachable(
                UnreachableReason.NO_PYTHON,
                f"interpreter '{interpreter}' not found on this machine; "
                "set ansible_python_interpreter to a Python 3 path",
            )
        argv = [interpreter, "-c", BOOTSTRAP]
        password = None
        if host.become and os.geteuid() != 0:
            password = getattr(host, "become_password", None) or None
            sudo = ["sudo", "-S", "-p", ""] if password else ["sudo", "-n"]
            argv = [*sudo, "--", *argv]
        payload = with_become_password(payload, password)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C reaches us, and we stop the batch ourselves
            )
        except OSError as exc:
            raise Unreachable(
                UnreachableReason.NO_PYTHON, f"cannot start {interpreter}: {exc}"
            ) from None
        with self._lock:
            self._live.add(proc)
        try:
            return _communicate(proc, payload, time.monotonic() + timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise Unreachable(
                UnreachableReason.TIMEOUT, f"no answer within the host deadline of {timeout:g}s"
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            with self._lock:
                self._live.discard(proc)

    def abort(self) -> None:
        with self._lock:
            live = list(self._live)
        for proc in live:
            _kill_group(proc, reap=False)


def _communicate(proc: subprocess.Popen, payload: bytes, deadline: float) -> ExecResult:
    """Popen.communicate with bounded reads: stderr keeps its first MAX_STDERR_BYTES, and a
    batch whose stdout passes MAX_OUTPUT_BYTES is stopped and its result marked overflowing."""
    writer = threading.Thread(target=_feed, args=(proc.stdin, payload), daemon=True)
    writer.start()
    stdout, stderr = bytearray(), bytearray()
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ, stdout)
            selector.register(proc.stderr, selectors.EVENT_READ, stderr)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise subprocess.TimeoutExpired(proc.args, 0)
                for key, _ in selector.select(remaining):
                    data = os.read(key.fd, _CHUNK)
                    if not data:
                        selector.unregister(key.fileobj)
                    elif key.data is stderr:
                        stderr += data[: max(0, MAX_STDERR_BYTES - len(stderr))]
                    else:
                        stdout += data
                        if len(stdout) > MAX_OUTPUT_BYTES:
                            _kill_group(proc)
                            return ExecResult(-1, bytes(stdout), bytes(stderr), overflow=True)
        status = proc.wait(max(0.0, deadline - time.monotonic()))
    finally:
        proc.stdout.close()
        proc.stderr.close()
    writer.join()  # the batch has exited: its stdin is closed and the writer done
    return ExecResult(status, bytes(stdout), bytes(stderr))


def _feed(stdin, payload: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        stdin.write(payload)
    with contextlib.suppress(BrokenPipeError, OSError):
        stdin.close()


def _kill_group(proc: subprocess.Popen, reap: bool = True) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if reap:
        proc.wait()
