"""`checkrun watch` as a process for the tests: its events (the JSON lines of its stderr)
collected, its /metrics read, stopped by a signal and killed if it does not stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import urllib.request
from pathlib import Path
from typing import Any

from helpers import CHECKRUN, wait_for
from prometheus_client.parser import text_string_to_metric_families

EXIT_WAIT = 60.0


class WatchProcess:
    """A running `checkrun watch`, its events (the JSON lines of its stderr) collected."""

    def __init__(self, *args: Any, cwd: Path | None = None, listen: str = "127.0.0.1:0"):
        self.process = subprocess.Popen(
            [CHECKRUN, "watch", *map(str, args), "--listen", listen, "--log-format", "json"],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        self.events: list[dict[str, Any]] = []
        self.other: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            with self._lock:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    self.other.append(line)

    def of(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [
                e
                for e in self.events
                if e["event"] == event and all(e.get(k) == v for k, v in fields.items())
            ]

    def wait_event(self, event: str, timeout: float = 60.0, **fields: Any) -> dict[str, Any]:
        return wait_for(lambda: (self.of(event, **fields) or [None])[-1], event, timeout)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample of /metrics (scraped now), None when it is not exported."""
        url = self.wait_event("listening")["message"]
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return sample.value
        return None

    def stop(self, signum: int | None = None) -> int:
        """SIGTERM (or `signum`), then its exit code."""
        self.signal(signum or signal.SIGTERM)
        code = self.process.wait(timeout=EXIT_WAIT)
        self._reader.join(timeout=10)
        return code

    def __enter__(self) -> WatchProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
