"""Watch mode's events log: one line per notable event on stderr, for people or machines.

Events: start, stop, connected, reconnected, lost (the transports'), backoff (a host opens
its circuit breaker), half-open (its probe), closed (it answered again), reload, reload-failed,
skipped (a host still in flight when due again), delivery-failed, delivery-deferred, alert.
Text lines read `2026-12-05T00:01:02Z backoff host=web1 next attempt in 20s`; with
`--log-format json` each line is one JSON object (`ts`, `event`, the fields, `message`).
Every text goes through the run's mask (a secret never reaches the log) and is kept on one
line with control characters escaped (a hostile host name cannot drive a terminal).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from checkrunner.safe_text import escape_unprintable_json, one_line

LOG_FORMATS = ("text", "json")


class EventLog:
    """Writes events to `stream` in `fmt`; `mask` (the config's Masker.text) may be replaced
    on reload. Thread-safe: transport events arrive from worker threads."""

    def __init__(
        self,
        fmt: str = "text",
        mask: Callable[[str], str] = lambda text: text,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if fmt not in LOG_FORMATS:
            raise ValueError(f"log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
        self.fmt = fmt
        self.mask = mask
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """No event is written after this returns: a daemon thread (a transport's, a worker's)
        still writing to stderr while the interpreter shuts down aborts the process (Python's
        "could not acquire lock for <stderr> at interpreter shutdown")."""
        with self._lock:
            self._closed = True

    def emit(self, event: str, message: str = "", **fields: Any) -> None:
        cleaned = {key: self._clean(value) for key, value in fields.items() if value is not None}
        text = self._clean(message)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock()))
        if self.fmt == "json":
            record = {"ts": stamp, "event": event, **cleaned}
            if text:
                record["message"] = text
            line = escape_unprintable_json(json.dumps(record, ensure_ascii=False))
        else:
            pairs = " ".join(f"{key}={_quoted(value)}" for key, value in cleaned.items())
            line = " ".join(part for part in (stamp, event, pairs, text) if part)
        with self._lock:
            if self._closed:
                return
            stream = self._stream or sys.stderr
            stream.write(line + "\n")
            stream.flush()

    def _clean(self, value: Any) -> Any:
        if isinstance(value, (int, float, bool)):
            return value
        return one_line(self.mask(str(value)))


def _quoted(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or "=" in text or '"' in text or not text) else text
