"""Bodies of watch's HTTP face built off the request path (serve/rendered.py): once per
version, one build at a time, the last complete body served while a newer one is slow to
build, and through the real status server: a scrape answered while /metrics' collection is
held up."""

from __future__ import annotations

import threading

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_servers import get

from checkrunner.errors import NotBuilt
from checkrunner.results import CheckResult, HostResult, Status
from checkrunner.serve.http import StatusServer
from checkrunner.serve.rendered import Rendered
from checkrunner.serve.status import WatchStatus


class Counter:
    """A version the test moves on."""

    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


class Build:
    """A build that counts its runs and, once `hold()` was called, waits to be released."""

    def __init__(self) -> None:
        self.runs = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def hold(self) -> None:
        self.release.clear()
        self.started.clear()

    def __call__(self) -> bytes:
        self.runs += 1
        self.started.set()
        assert self.release.wait(30), "the test never released the build"
        return f"body {self.runs}".encode()


def test_a_body_is_built_once_per_version():
    version, build = Counter(), Build()
    rendered = Rendered(version)
    assert rendered.get("k", build) == b"body 1"
    assert rendered.get("k", build) == b"body 1"
    assert build.runs == 1
    version.value += 1
    assert rendered.get("k", build) == b"body 2"
    assert rendered.get("other", build) == b"body 3"  # keys are kept apart
    assert build.runs == 3


def test_a_slow_build_serves_the_last_complete_body_and_runs_once():
    version, build = Counter(), Build()
    rendered = Rendered(version, fresh_wait=0.05)
    assert rendered.get("k", build) == b"body 1"
    version.value += 1
    build.hold()
    # Both answers come while the build of the new version is still held: stale, not late.
    assert rendered.get("k", build) == b"body 1"
    assert build.started.wait(10)
    assert rendered.get("k", build) == b"body 1"
    assert not build.release.is_set()
    assert build.runs == 2  # the second request found the build running and waited on it
    build.release.set()
    assert _until_fresh(rendered, build) == b"body 2"
    assert build.runs == 2


def _until_fresh(rendered: Rendered, build: Build) -> bytes:
    for _ in range(2000):
        body = rendered.get("k", build)
        if body != b"body 1":
            return body
    raise AssertionError("the released build never became the answer")


def test_the_first_request_waits_for_the_body_or_says_it_is_not_built():
    version, build = Counter(), Build()
    build.hold()
    rendered = Rendered(version, fresh_wait=0.05, first_wait=0.05)
    with pytest.raises(NotBuilt):
        rendered.get("k", build)
    build.release.set()
    patient = Rendered(version)
    assert patient.get("k", build) == b"body 2"


def test_a_failing_build_reaches_the_request_and_the_next_one_builds_again():
    version = Counter()
    rendered = Rendered(version)

    def broken() -> bytes:
        raise RuntimeError("history unreadable")

    with pytest.raises(RuntimeError, match="history unreadable"):
        rendered.get("k", broken)
    assert rendered.get("k", lambda: b"fixed") == b"fixed"


class HeldCollector:
    """A collector of the status server's registry that holds /metrics' collection until
    released, as a busy control node's starved build does."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.collecting = threading.Event()

    def collect(self):
        self.collecting.set()
        assert self.release.wait(30)
        yield GaugeMetricFamily("held_gauge", "A gauge collected once released", value=1.0)


def _host(name: str, status: Status) -> HostResult:
    host = HostResult(host=name, started_at=1.0, duration=0.1)
    host.checks.append(
        CheckResult(host=name, play="p", name="memory", module="memory", status=status)
    )
    return host


def test_a_scrape_is_answered_while_the_collection_is_held():
    status = WatchStatus("p.yml")
    status.record_host(_host("first", Status.OK))
    server = StatusServer("127.0.0.1:0", status)
    server.start()
    held = HeldCollector()
    try:
        base = f"http://127.0.0.1:{server.port}"
        code, before = get(f"{base}/metrics")
        assert code == 200 and 'host="first"' in before
        server._server.registry.register(held)
        status.record_host(_host("second", Status.CRITICAL))
        code, stale = get(f"{base}/metrics")
        assert held.collecting.is_set() and not held.release.is_set()
        assert code == 200 and stale == before  # the last complete exposition, in time
        code, results = get(f"{base}/api/v1/results")  # built on its own, by the results
        assert code == 200 and '"second"' in results
        held.release.set()
        for _ in range(200):
            code, fresh = get(f"{base}/metrics")
            if fresh != before:
                break
        assert 'host="second"' in fresh and "held_gauge 1.0" in fresh
    finally:
        held.release.set()
        server.close()
