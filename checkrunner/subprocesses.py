"""Child processes whose output cannot be trusted to be small or to end: a batch on the
local connection (transport/local.py), an inventory script (inventory/script.py).

`read_bounded` is Popen.communicate without its unbounded buffers and with a deadline;
`kill_group` ends the child and everything it started (each runs in a session of its own).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time

CHUNK = 65536


def read_bounded(
    proc: subprocess.Popen, deadline: float, max_stdout: int, max_stderr: int
) -> tuple[bytes, bytes, bool]:
    """(stdout, stderr, overflow): both pipes read together until the child closes them.
    stderr keeps its first `max_stderr` bytes; reading stops (overflow True) once stdout
    passes `max_stdout`. subprocess.TimeoutExpired once `deadline` (time.monotonic) passes.
    Both pipes are closed on return."""
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
                    data = os.read(key.fd, CHUNK)
                    if not data:
                        selector.unregister(key.fileobj)
                    elif key.data is stderr:
                        stderr += data[: max(0, max_stderr - len(stderr))]
                    else:
                        stdout += data
                        if len(stdout) > max_stdout:
                            return bytes(stdout), bytes(stderr), True
    finally:
        proc.stdout.close()
        proc.stderr.close()
    return bytes(stdout), bytes(stderr), False


def kill_group(proc: subprocess.Popen, reap: bool = True) -> None:
    """SIGKILL the child's process group (it was started with start_new_session), then
    reap the child unless `reap` is False."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if reap:
        proc.wait()
