"""Run the batch on this machine, through the same python3-on-stdin path SSH targets use."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading

from checkrunner.results import UnreachableReason
from checkrunner.transport.base import ExecResult, Transport, Unreachable
from checkrunner.transport.payload import BOOTSTRAP, with_become_password


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
            stdout, stderr = proc.communicate(payload, timeout=timeout)
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
        return ExecResult(proc.returncode, stdout, stderr)

    def abort(self) -> None:
        with self._lock:
            live = list(self._live)
        for proc in live:
            _kill_group(proc, reap=False)


def _kill_group(proc: subprocess.Popen, reap: bool = True) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if reap:
        proc.wait()
