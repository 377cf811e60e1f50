"""What a watch process knows of its fleet now: the latest result of every check, the rounds,
the connections and the config reloads. The watch loop writes it; /metrics and
/api/v1/results (serve/http.py) read it, from other threads.

`StatusCollector` builds the /metrics families from a snapshot on every scrape (a custom
prometheus_client collector, not registered gauges): a host or check that left the config
(`keep_only`) has no series any more, instead of a stale one that lives forever.
"""

from __future__ import annotations

import bisect
import copy
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from checkrunner.report.prometheus import CHECK_LABELS, host_families, label_value
from checkrunner.results import CheckResult, HostResult, RunResult

# Upper bounds (seconds) of the round-duration histogram: a round is a sampling window plus
# the slowest host, from well under a second to a host timeout.
ROUND_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, float("inf"))


@dataclass
class _Backoff:
    seconds: float | None  # None: the circuit is closed
    failures: int


@dataclass
class _Rounds:
    """The round-duration histogram: a count per bucket (not cumulative), sum and count."""

    counts: list[int] = field(default_factory=lambda: [0] * len(ROUND_BUCKETS))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(ROUND_BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        running, buckets = 0, []
        for bound, count in zip(ROUND_BUCKETS, self.counts):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return buckets


@dataclass
class _Snapshot:
    hosts: list[HostResult]
    checked_at: dict[tuple[str, str, str], float]
    intervals: dict[tuple[str, str, str], float]
    backoffs: dict[str, _Backoff]
    reconnects: dict[str, int]
    skipped: dict[str, int]
    rounds: _Rounds
    reload_success: bool
    reload_success_at: float
    configured_hosts: set[str]
    state_up: bool = True


class WatchStatus:
    """Thread-safe; every method takes the lock for as long as it copies or changes a field."""

    def __init__(self, playbook: str, clock: Callable[[], float] = time.time):
        self.playbook = playbook
        self._clock = clock
        self._lock = threading.Lock()
        self._started_at = clock()
        self._hosts: dict[str, HostResult] = {}  # by name, checks merged (record_host)
        self._checked_at: dict[tuple[str, str, str], float] = {}  # when each check last ran
        self._intervals: dict[tuple[str, str, str], float] = {}
        self._backoffs: dict[str, _Backoff] = {}
        self._reconnects: dict[str, int] = {}
        self._skipped: dict[str, int] = {}
        self._rounds = _Rounds()
        self._reload_success = True  # the config the process started with loaded
        self._reload_success_at = self._started_at
        self._configured_hosts: set[str] = set()  # keep_only's: their counters start at 0
        self._ready = False
        self._state_up = True
        self._leader: tuple[bool, str] | None = None  # --ha: (this replica leads, who leads)
        self._version = 0  # +1 whenever the results change: what / caches its page by
        self._changes = 0  # +1 whenever anything /metrics shows changes (results included)

    # -- what the watch loop reports ----------------------------------------------------

    def record_host(self, host: HostResult) -> None:
        """A host's new result. Checks not in it (not due this round, or not run because the
        host was unreachable) keep their last result; the host's own fields are the new ones."""
        with self._lock:
            self._changes += 1
            self._version += 1
            previous = self._hosts.get(host.host)
            merged = copy.copy(host)
            merged.checks = _merge_checks(previous.checks if previous else [], host.checks)
            self._hosts[host.host] = merged
            for check in host.checks:
                self._checked_at[(host.host, check.play, check.name)] = (
                    host.started_at + host.duration
                )

    def record_round(self, duration: float) -> None:
        with self._lock:
            self._changes += 1
            self._rounds.observe(duration)

    def count_skipped(self, host: str) -> None:
        """A round of `host` not started because its last one is still in flight."""
        with self._lock:
            self._changes += 1
            self._skipped[host] = self._skipped.get(host, 0) + 1

    def count_reconnect(self, host: str) -> None:
        with self._lock:
            self._changes += 1
            self._reconnects[host] = self._reconnects.get(host, 0) + 1

    def set_interval(self, host: str, play: str, check: str, seconds: float) -> None:
        with self._lock:
            self._changes += 1
            self._intervals[(host, play, check)] = seconds

    def set_backoff(self, host: str, seconds: float | None, failures: int) -> None:
        """The host's circuit breaker: open for `seconds` after `failures` failures, or
        closed (None)."""
        with self._lock:
            self._changes += 1
            self._backoffs[host] = _Backoff(seconds, failures)

    def set_reload(self, success: bool, at: float) -> None:
        with self._lock:
            self._changes += 1
            self._reload_success = success
            if success:
                self._reload_success_at = at

    def set_state_up(self, up: bool) -> None:
        """Whether the state database answers (watch holds rounds while it does not)."""
        with self._lock:
            self._changes += 1
            self._state_up = up

    def set_ready(self, ready: bool) -> None:
        with self._lock:  # /-/ready's, not /metrics': no change for its cached body
            self._ready = ready

    def set_leader(self, leading: bool, leader: str) -> None:
        """--ha: whether this replica leads, and which replica does (/-/ready says so)."""
        with self._lock:  # set every tick with --ha: /metrics does not show it
            self._leader = (leading, leader)

    def keep_only(self, hosts: set[str], checks: set[tuple[str, str, str]]) -> None:
        """The configuration's hosts and checks (at start and after a reload): forget the
        hosts and the (host, play, check)s it no longer has, so that their series vanish
        from /metrics. Its hosts' counters and breaker gauges are exported from 0 on, before
        anything happened to them: a counter that appears at 1 hides its first increase from
        increase() and rate()."""
        with self._lock:
            self._changes += 1
            self._version += 1
            self._configured_hosts = set(hosts)
            for name in list(self._hosts):
                if name not in hosts:
                    del self._hosts[name]
                    continue
                result = copy.copy(self._hosts[name])
                result.checks = [c for c in result.checks if (name, c.play, c.name) in checks]
                self._hosts[name] = result
            self._intervals = {k: v for k, v in self._intervals.items() if k in checks}
            self._checked_at = {k: v for k, v in self._checked_at.items() if k in checks}
            for per_host in (self._backoffs, self._reconnects, self._skipped):
                for name in [name for name in per_host if name not in hosts]:
                    del per_host[name]

    # -- what the HTTP face reads -------------------------------------------------------

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready

    @property
    def leader(self) -> tuple[bool, str] | None:
        """--ha: (this replica leads, who leads); None without --ha."""
        with self._lock:
            return self._leader

    @property
    def version(self) -> int:
        """Changes whenever the results do (a host's new result, a reload)."""
        with self._lock:
            return self._version

    @property
    def changes(self) -> int:
        """Changes whenever anything /metrics exports does (results, rounds, counters,
        intervals, breakers, reloads)."""
        with self._lock:
            return self._changes

    def results(self) -> RunResult:
        """The latest result of every host, as one run (the JSON report's shape)."""
        with self._lock:
            hosts = [copy.copy(host) for host in self._hosts.values()]
        return RunResult(self.playbook, self._started_at, self._clock(), hosts)

    def snapshot(self) -> _Snapshot:
        with self._lock:
            return _Snapshot(
                hosts=[copy.copy(host) for host in self._hosts.values()],
                checked_at=dict(self._checked_at),
                intervals=dict(self._intervals),
                backoffs=dict(self._backoffs),
                reconnects=dict(self._reconnects),
                skipped=dict(self._skipped),
                rounds=_Rounds(list(self._rounds.counts), self._rounds.total),
                reload_success=self._reload_success,
                reload_success_at=self._reload_success_at,
                configured_hosts=set(self._configured_hosts),
                state_up=self._state_up,
            )


def _merge_checks(old: list[CheckResult], new: list[CheckResult]) -> list[CheckResult]:
    """`old` with each check `new` has replaced in place, then `new`'s other checks."""
    fresh = {(c.play, c.name): c for c in new}
    merged = [fresh.pop((c.play, c.name), c) for c in old]
    return merged + [c for c in new if (c.play, c.name) in fresh]


def status_registry(status: WatchStatus) -> CollectorRegistry:
    """What /metrics serves (and watch --push pushes): the StatusCollector's families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    return registry


class StatusCollector(Collector):
    """/metrics: the checks' families (report/prometheus.py) and the watch process's own."""

    def __init__(self, status: WatchStatus):
        self.status = status

    def collect(self) -> Iterator[Metric]:
        snapshot = self.status.snapshot()
        zero = dict.fromkeys(snapshot.configured_hosts, 0)
        yield from host_families(snapshot.hosts, snapshot.checked_at)
        yield _round_histogram(snapshot.rounds)
        yield _per_host_counter(
            "checkrun_reconnects",
            "Reconnections to the host after its connection was lost",
            {**zero, **snapshot.reconnects},
        )
        yield _per_host_counter(
            "checkrun_skipped_rounds",
            "Rounds of the host not started because its previous one was still running",
            {**zero, **snapshot.skipped},
        )
        intervals = GaugeMetricFamily(
            "checkrun_check_interval_seconds",
            "The check's current interval (adaptive intervals move it between min and max)",
            labels=CHECK_LABELS,
        )
        for key, seconds in sorted(snapshot.intervals.items()):
            intervals.add_metric([label_value(part) for part in key], seconds)
        yield intervals
        closed = {host: _Backoff(None, 0) for host in snapshot.configured_hosts}
        yield from _backoff_families({**closed, **snapshot.backoffs})
        yield GaugeMetricFamily(
            "checkrun_state_up",
            "Whether the state database answers (while it does not, rounds are held, none start)",
            value=1.0 if snapshot.state_up else 0.0,
        )
        yield GaugeMetricFamily(
            "checkrun_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful",
            value=1.0 if snapshot.reload_success else 0.0,
        )
        yield GaugeMetricFamily(
            "checkrun_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            value=snapshot.reload_success_at,
        )


def _round_histogram(rounds: _Rounds) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        "checkrun_round_duration_seconds", "Duration of the watch rounds"
    )
    family.add_metric([], rounds.cumulative(), rounds.total)
    return family


def _per_host_counter(name: str, documentation: str, counts: dict[str, int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=("host",))
    for host, count in sorted(counts.items()):
        family.add_metric([label_value(host)], float(count))
    return family


def _backoff_families(backoffs: dict[str, _Backoff]) -> Iterator[Metric]:
    seconds = GaugeMetricFamily(
        "checkrun_host_backoff_seconds",
        "How long the host's circuit breaker waits before the next try (0: closed)",
        labels=("host",),
    )
    failures = GaugeMetricFamily(
        "checkrun_host_consecutive_failures",
        "Consecutive rounds in which the host could not be reached",
        labels=("host",),
    )
    for host, backoff in sorted(backoffs.items()):
        seconds.add_metric([label_value(host)], backoff.seconds or 0.0)
        failures.add_metric([label_value(host)], float(backoff.failures))
    yield seconds
    yield failures
