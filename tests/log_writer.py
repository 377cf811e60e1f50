"""A real log writer for the rotation tests: appends numbered lines until SIGTERM.

    python log_writer.py PATH

- Writes `<n> ERROR ...` every 5th line, `<n> INFO ...` otherwise, one line every ~2 ms.
- Every 7th line is written in two write() calls with a pause between them, so readers
  meet half-written last lines.
- Opens PATH with O_APPEND (so copytruncate works as it does for real daemons) and keeps
  the descriptor, like a daemon: SIGHUP makes it reopen PATH (logrotate's postrotate),
  so between a rename and the HUP it goes on writing into the renamed file.
- SIGUSR1 pauses it at a line boundary (it prints `paused`), SIGUSR2 resumes it: tests
  that destroy data (truncate, delete) read everything first while it is paused. On SIGTERM it finishes the current line and prints
  `written=<lines> errors=<error lines>` on stdout.
"""

from __future__ import annotations

import os
import signal
import sys
import time

path = sys.argv[1]
state = {"reopen": False, "stop": False, "pause": False}


def _open() -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def _on_hup(signum, frame) -> None:
    state["reopen"] = True


def _on_term(signum, frame) -> None:
    state["stop"] = True


def _on_pause(signum, frame) -> None:
    state["pause"] = True


def _on_resume(signum, frame) -> None:
    state["pause"] = False


signal.signal(signal.SIGHUP, _on_hup)
signal.signal(signal.SIGTERM, _on_term)
signal.signal(signal.SIGUSR1, _on_pause)
signal.signal(signal.SIGUSR2, _on_resume)

fd = _open()
written = errors = 0
print("ready", flush=True)
while not state["stop"]:
    if state["pause"]:
        print("paused", flush=True)
        while state["pause"] and not state["stop"]:
            time.sleep(0.001)
        continue
    if state["reopen"]:
        os.close(fd)
        fd = _open()
        state["reopen"] = False
    written += 1
    level = "ERROR" if written % 5 == 0 else "INFO"
    errors += level == "ERROR"
    line = f"{written} {level} worker=w{written % 3} request handled in {written % 97} ms\n"
    data = line.encode()
    if written % 7 == 0:
        os.write(fd, data[:10])
        time.sleep(0.003)
        os.write(fd, data[10:])
    else:
        os.write(fd, data)
    time.sleep(0.002)
os.close(fd)
print(f"written={written} errors={errors}", flush=True)
