"""Bodies of the HTTP face built off the request path, served stale rather than late.

A 1,000-host fleet's /metrics exposition or JSON results take about 0.8 s of CPU to build;
on a control node whose CPU and GIL are shared with a thousand connection threads (a watch
process's first round, or a fleet reconnecting) the same build takes tens of seconds, longer
than Prometheus waits for a scrape (10 s). So each body is built once per change of what it
shows, in a thread of its own, and an answer waits at most `fresh_wait` for the build it
asked for; past that it gets the last complete body (stale-while-revalidate, as a caching
proxy does). Only the very first request of a body waits for it to exist.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from checkrunner.errors import NotBuilt

FRESH_WAIT = 2.0  # seconds an answer waits for a body newer than the last complete one
FIRST_WAIT = 60.0  # seconds the first request of a body waits for it to exist


@dataclass
class _Body:
    version: int
    data: bytes


@dataclass
class _Build:
    version: int
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class Rendered:
    """Bodies by key (a path, an encoding), each tagged with the `version()` it was built
    at. Thread-safe; at most one build per key runs at a time."""

    def __init__(
        self,
        version: Callable[[], int],
        fresh_wait: float = FRESH_WAIT,
        first_wait: float = FIRST_WAIT,
    ):
        self._version = version
        self.fresh_wait = fresh_wait
        self.first_wait = first_wait
        self._lock = threading.Lock()
        self._bodies: dict[str, _Body] = {}
        self._builds: dict[str, _Build] = {}

    def get(self, key: str, build: Callable[[], bytes]) -> bytes:
        """The body for the current version, or the last complete one if the build of a
        newer one outlasts `fresh_wait`. A build's exception reaches the requests that
        waited for it; NotBuilt when there is no body at all in time."""
        version = self._version()
        with self._lock:
            body = self._bodies.get(key)
            if body is not None and body.version >= version:
                return body.data
            running = self._builds.get(key)
            if running is None:
                running = self._start(key, build, version)
        if running.done.wait(self.fresh_wait if body is not None else self.first_wait):
            if running.error is not None:
                raise running.error
            with self._lock:
                return self._bodies[key].data
        if body is None:
            raise NotBuilt(key)
        return body.data

    def _start(self, key: str, build: Callable[[], bytes], version: int) -> _Build:
        running = _Build(version)
        self._builds[key] = running
        threading.Thread(
            target=self._run, args=(key, build, running), name=f"render {key}", daemon=True
        ).start()
        return running

    def _run(self, key: str, build: Callable[[], bytes], running: _Build) -> None:
        try:
            data = build()
        except BaseException as exc:  # noqa: BLE001 - handed to the requests that wait
            running.error = exc
        else:
            with self._lock:
                self._bodies[key] = _Body(running.version, data)
        finally:
            with self._lock:
                self._builds.pop(key, None)
            running.done.set()
