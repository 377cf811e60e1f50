#!/usr/bin/env python3
"""Watch-mode benchmark: the real `checkrun watch` against one-shot runs of the same playbook.

The hosts, services and 8-check playbook of bench/fanout.py (N loopback sshd hosts, 16
addresses per sshd; cpu over 0.2 s, memory, disk, load, HTTP, TCP, process, a grep of an
18 MB log). In one run (legs chosen with --legs) it measures:

- one-shot: `checkrun PLAYBOOK -i INV` as cron runs it (the checkrun next to this Python, or
  --checkrun), median of `--one-shot-runs` after a warm-up run;
- watch: a `checkrun watch` process (--listen on loopback, --log-format json) at
  `--watch-interval` (10 s) for 1 + `--watch-rounds` (30) rounds. Rounds are counted and timed
  from its /metrics (checkrun_round_duration_seconds: one observation per host round); CPU is
  that process's and its children's (psutil) plus the targets' over all rounds but the first
  (which connects and ships the modules), per host round; RSS (psutil) after 10 rounds and the
  last; at the end every host's latest result (/api/v1/results) must be OK;
- rss: the same at `--rss-interval` (1 s) for `--rss-rounds` (300), so that 300 rounds fit in
  minutes: RSS after 10 and after 300 rounds;
- alerts: one host (over SSH) checks an HTTP service served here with `interval:
  --alert-interval` (5 s) and `for: --alert-for` (3), routed with group_wait 0s and
  group_interval equal to the interval to a recording webhook (send_resolved). The service
  goes down at a random phase of the interval, `--alert-repeats` times: seconds to the
  firing notification, and from its return (at a random phase too) to the resolved one;
- kept (not by default): runner.run_plan in this process over a fresh Transports() (a
  one-shot round) and over one Transports(keep_alive=True) for `--rounds` rounds
  `--interval` apart.

Wall times exclude the 0.2 s sampling window: a watch round's is the mean duration of a
host's round, the one-shot run's the run's wall time. Target CPU is every sshd listener and
everything below it (sessions, pythons, grep; live processes by /proc, ended ones through
their parents' cutime/cstime). The summary prints the ratios against the goals of issue 11.

Run by hand, as root, with the project's venv:
  .venv/bin/python bench/watch.py [--hosts 64] [--legs watch,rss,alerts]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # recorder.py

from fanout import (  # noqa: E402 - the fan-out bench's hosts, services and playbook
    ADDRESSES_PER_SSHD,
    CHECKS,
    CLOCK_TICKS,
    CPU_SAMPLE,
    FIRST_SUBNET,
    FORKS,
    SSHD,
    Fleet,
    Scenario,
    checkrun_playbook,
    cpu_seconds,
    generate_key,
    proc_stat,
    running_services,
    running_targets,
    write_log,
)
from recorder import Recorder  # noqa: E402 - the tests' recording HTTP server

from checkrunner.inventory import load_inventories  # noqa: E402
from checkrunner.plan import PlanOptions, build_plan  # noqa: E402
from checkrunner.playbook import load_playbook  # noqa: E402
from checkrunner.results import RunResult, Status  # noqa: E402
from checkrunner.runner import RunOptions, run_plan  # noqa: E402
from checkrunner.transport import Transports  # noqa: E402
from checkrunner.transport.base import TransportEvent  # noqa: E402
from checkrunner.transport.ssh_config import SSHOptions  # noqa: E402

ONE_SHOT_TIMEOUT = 600.0
GOAL_CPU = 0.2  # a kept round's CPU per host, against the one-shot run's (issue 11)
GOAL_WALL = 0.3  # a kept round's wall time, sampling window excluded
GOAL_RSS_GROWTH = 0.10  # control-node RSS after 300 rounds against after 10
GOAL_RSS_MIB = 150  # MB
WATCH_START_TIMEOUT = 60.0
WATCH_STOP_TIMEOUT = 60.0
# The bench's own patience with /metrics: generous, so that a slow answer is measured (the
# slowest is printed) rather than ending the bench; Prometheus' default scrape timeout is 10 s.
HTTP_TIMEOUT = 300.0
SCRAPE_EVERY = 15.0  # seconds: a Prometheus scraping the watch process through the bench
SCRAPE_TIMEOUT = 10.0  # Prometheus' default scrape timeout: an answer later than this fails


@dataclass
class Cost:
    wall: float  # seconds, sampling window excluded
    control_cpu: float
    target_cpu: float

    def per_host(self, hosts: int) -> float:
        return (self.control_cpu + self.target_cpu) / hosts


def fleet_cpu(fleet: Fleet) -> float:
    """CPU seconds of every sshd listener and all below it, live or ended."""
    listeners = {g.process.pid for g in fleet.groups if g.process is not None}
    children: dict[int, list[int]] = {}
    fields_of: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = proc_stat(entry)
            except (OSError, IndexError):
                continue
            fields_of[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    total = 0
    pending = list(listeners)
    while pending:
        pid = pending.pop()
        fields = fields_of.get(pid)
        if fields is not None:
            total += sum(int(fields[i]) for i in (11, 12, 13, 14))  # u/s time, cu/cs time
        pending.extend(children.get(pid, []))
    return total / CLOCK_TICKS


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def checkrun_binary(given: Path | None) -> Path:
    if given is not None:
        return given
    beside = Path(sys.executable).parent / "checkrun"
    found = beside if beside.exists() else shutil.which("checkrun")
    if not found:
        raise SystemExit("no checkrun next to this Python nor on PATH: pass --checkrun")
    return Path(found)


def not_ok_messages(hosts: list[dict[str, Any]]) -> dict[str, int]:
    """Of a JSON report's hosts, those not OK with all CHECKS checks: a count per message
    (the host's own, or its failing checks')."""
    messages: dict[str, int] = {}
    for host in hosts:
        if host["status"] == "OK" and len(host["checks"]) == CHECKS:
            continue
        text = host.get("message") or "; ".join(
            f"{c['name']}: {c['message']}" for c in host["checks"] if c["status"] != "OK"
        )
        messages[text[:200]] = messages.get(text[:200], 0) + 1
    return messages


def failed_hosts(report: Path) -> str:
    """What the JSON report says of the hosts that were not OK, a line per message."""
    if not report.exists():
        return ""
    messages = not_ok_messages(json.loads(report.read_text())["hosts"])
    return "".join(f"\n  {count} host(s): {text}" for text, count in messages.items())


def one_shot_cli(checkrun: Path, s: Scenario, playbook: Path, fleet: Fleet) -> Cost:
    report = s.directory / "one-shot.json"
    argv = [
        str(checkrun),
        str(playbook),
        "-i",
        str(s.inventory),
        "-f",
        str(s.forks),
        "--known-hosts",
        str(s.known_hosts),
        "-r",
        f"json:{report}",
    ]
    target_before = fleet_cpu(fleet)
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=ONE_SHOT_TIMEOUT)
    wall = time.perf_counter() - started
    control = cpu_seconds(resource.RUSAGE_CHILDREN) - before
    fleet.wait_sessions_done()
    if proc.returncode != 0:
        raise SystemExit(
            f"the one-shot run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
            f"{failed_hosts(report)}"
        )
    hosts = json.loads(report.read_text())["hosts"]
    if len(hosts) != len(s.targets) or any(h["status"] != "OK" for h in hosts):
        raise SystemExit("the one-shot run was not OK on every host")
    return Cost(wall - CPU_SAMPLE, control, fleet_cpu(fleet) - target_before)


def check_round(run: RunResult, hosts: int) -> None:
    problems = [
        f"{h.host}: {h.reason or ''} {h.message}"
        for h in run.hosts
        if not h.reachable or len(h.checks) != CHECKS or h.status != Status.OK
    ]
    if len(run.hosts) != hosts or problems:
        raise SystemExit(f"a round was not OK on every host: {problems[:5]}")


def in_process_round(plan, options: RunOptions, transports: Transports, fleet: Fleet) -> Cost:
    target_before = fleet_cpu(fleet)
    before = cpu_seconds(resource.RUSAGE_SELF)
    started = time.perf_counter()
    run = run_plan(plan, options, (), transports)
    wall = time.perf_counter() - started
    control = cpu_seconds(resource.RUSAGE_SELF) - before
    check_round(run, len(plan.hosts))
    return Cost(wall - CPU_SAMPLE, control, fleet_cpu(fleet) - target_before)


def one_shot_in_process(plan, options: RunOptions, ssh: SSHOptions, fleet: Fleet) -> Cost:
    target_before = fleet_cpu(fleet)
    with Transports(ssh) as transports:
        cost = in_process_round(plan, options, transports, fleet)
    fleet.wait_sessions_done()  # every session ended: its CPU is in its listener's now
    cost.target_cpu = fleet_cpu(fleet) - target_before
    return cost


@dataclass
class KeptFigures:
    first: Cost
    rounds: list[Cost]
    rss_after_10: float
    rss_after_all: float
    events: dict[str, int]


def kept_rounds(
    plan, options: RunOptions, ssh: SSHOptions, fleet: Fleet, rounds: int, interval: float
) -> KeptFigures:
    events: dict[str, int] = {}

    def count(event: TransportEvent) -> None:
        events[event.kind] = events.get(event.kind, 0) + 1

    costs: list[Cost] = []
    rss_after_10 = 0.0
    with Transports(ssh, keep_alive=True, on_event=count) as transports:
        for number in range(1, rounds + 1):
            costs.append(in_process_round(plan, options, transports, fleet))
            if number == 10:
                rss_after_10 = rss_mib()
            if number % 50 == 0:
                print(f"  round {number}/{rounds}", file=sys.stderr, flush=True)
            time.sleep(interval)
        rss_after_all = rss_mib()
    return KeptFigures(costs[0], costs[1:], rss_after_10, rss_after_all, events)


def mean_cost(costs: list[Cost]) -> Cost:
    return Cost(
        statistics.mean(c.wall for c in costs),
        statistics.mean(c.control_cpu for c in costs),
        statistics.mean(c.target_cpu for c in costs),
    )


def median_cost(costs: list[Cost]) -> Cost:
    return Cost(
        statistics.median(c.wall for c in costs),
        statistics.median(c.control_cpu for c in costs),
        statistics.median(c.target_cpu for c in costs),
    )


# --- the real `checkrun watch` process ---------------------------------------------------


class WatchProcess:
    """A running `checkrun watch` (JSON events log on stderr, /metrics on a loopback port),
    killed by its pid if it does not stop on SIGTERM."""

    def __init__(self, argv: list[str]):
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        self.ps = psutil.Process(self.process.pid)
        self.events: list[dict] = []
        self.other: list[str] = []
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""
        self.slowest_answer = 0.0  # seconds: the slowest answer of its HTTP face seen
        self.scrapes: list[float] = []  # seconds each scrape of the scraper thread took
        self._scraping = threading.Event()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                event = json.loads(line)
            except ValueError:
                with self._lock:
                    self.other.append(line)
                continue
            with self._lock:
                self.events.append(event)
            if event.get("event") == "listening":
                self.url = event["message"]
                self._listening.set()

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for e in self.events if e.get("event") == kind)

    def wait_listening(self) -> None:
        if not self._listening.wait(WATCH_START_TIMEOUT):
            self.fail("no `listening` event")

    def fail(self, why: str) -> None:
        tail = "".join(self.other[-20:]) + "\n".join(json.dumps(e) for e in self.events[-20:])
        raise SystemExit(f"checkrun watch: {why}\n{tail}")

    def get(self, path: str) -> str:
        """`path` of the watch's HTTP face; how long the slowest answer took is kept."""
        base = self.url.rsplit("/metrics", 1)[0]
        started = time.monotonic()
        with urllib.request.urlopen(base + path, timeout=HTTP_TIMEOUT) as answer:
            text = answer.read().decode()
        self.slowest_answer = max(self.slowest_answer, time.monotonic() - started)
        return text

    def scrape_every(self, seconds: float) -> None:
        """Scrape /metrics every `seconds` from a thread, as Prometheus would, until
        stop_scraping() or stop()."""

        def scrape() -> None:
            while not self._scraping.wait(seconds):
                with suppress(OSError):
                    started = time.monotonic()
                    self.get("/metrics")
                    self.scrapes.append(time.monotonic() - started)

        threading.Thread(target=scrape, name="scraper", daemon=True).start()

    def stop_scraping(self) -> None:
        self._scraping.set()

    def rounds(self) -> tuple[float, float]:
        """(count, sum) of checkrun_round_duration_seconds: one per host round."""
        count = total = 0.0
        for family in text_string_to_metric_families(self.get("/metrics")):
            for sample in family.samples:
                if sample.name == "checkrun_round_duration_seconds_count":
                    count = sample.value
                elif sample.name == "checkrun_round_duration_seconds_sum":
                    total = sample.value
        return count, total

    def metric_total(self, name: str) -> float:
        return sum(
            sample.value
            for family in text_string_to_metric_families(self.get("/metrics"))
            for sample in family.samples
            if sample.name == name
        )

    def wait_rounds(self, count: int, timeout: float, poll: float) -> tuple[float, float]:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self.fail(f"exited with {self.process.returncode}")
            done = self.rounds()
            if done[0] >= count:
                return done
            if time.monotonic() > deadline:
                self.fail(f"{done[0]:.0f} host rounds of {count} after {timeout:.0f} s")
            time.sleep(poll)

    def cpu(self) -> float:
        """User + system seconds of the watch process and of all its children."""
        total = 0.0
        with suppress(psutil.NoSuchProcess):
            times = self.ps.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
            for child in self.ps.children(recursive=True):
                with suppress(psutil.NoSuchProcess):
                    child_times = child.cpu_times()
                    total += child_times.user + child_times.system
        return total

    def rss_mib(self) -> float:
        return self.ps.memory_info().rss / 2**20

    def stop(self) -> int:
        self._scraping.set()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=WATCH_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=WATCH_STOP_TIMEOUT)
            return -signal.SIGKILL
        finally:
            self._reader.join(timeout=5)

    def __enter__(self) -> WatchProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def watch_argv(
    checkrun: Path, s: Scenario, playbook: Path, interval: float, state: Path, *extra: str
) -> list[str]:
    return [
        str(checkrun),
        "watch",
        str(playbook),
        "-i",
        str(s.inventory),
        "-f",
        str(s.forks),
        "--known-hosts",
        str(s.known_hosts),
        "--interval",
        f"{interval:g}s",
        "--state",
        str(state),
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        *extra,
    ]


@dataclass
class WatchFigures:
    interval: float
    rounds: float  # fleet rounds measured (host rounds / hosts), the first excluded
    host_round: float  # mean duration of a host's round, sampling window excluded
    control_cpu: float  # per host round
    target_cpu: float  # per host round
    rss_after_10: float
    rss_after_all: float
    all_rounds: int  # fleet rounds at the last RSS reading, the first included
    skipped: float
    reconnects: int
    fds: int = 0  # open file descriptors of the watch process at the last round
    threads: int = 0
    slowest_answer: float = 0.0  # seconds: the slowest /metrics or /api answer seen
    scrapes: list[float] = field(default_factory=list)  # SCRAPE_EVERY's answers, seconds
    not_ok: dict[str, int] = field(default_factory=dict)  # latest results: count per message

    @property
    def cpu_per_host(self) -> float:
        return self.control_cpu + self.target_cpu


def results_not_ok(watch: WatchProcess, hosts: int) -> dict[str, int]:
    """What the latest results say of the hosts that are not OK (every one should be): a
    count per message. A host missing from them is counted too."""
    report = json.loads(watch.get("/api/v1/results"))["hosts"]
    messages = not_ok_messages(report)
    if len(report) != hosts:
        messages["no result"] = hosts - len(report)
    return messages


def watch_costs(
    checkrun: Path,
    s: Scenario,
    playbook: Path,
    fleet: Fleet,
    interval: float,
    rounds: int,
    warmup: int = 1,
) -> WatchFigures:
    """`checkrun watch` for `warmup` + `rounds` fleet rounds: CPU (its own and the targets')
    and round durations over all but the warm-up (the first connects and ships the modules;
    at 1,000 hosts on one machine, hosts that timed out in that storm reconnect in the
    second); RSS after 10 fleet rounds and after the last."""
    hosts = len(s.targets)
    # One scrape of /metrics per round, as a Prometheus scraping at the check interval: the
    # scrapes are part of the watch process's CPU.
    poll = interval
    timeout = interval * 3 + 120
    state = s.directory / f"watch-{interval:g}.db"
    with WatchProcess(watch_argv(checkrun, s, playbook, interval, state)) as watch:
        watch.wait_listening()
        # Through the warm-up (every connection made, the modules shipped: the busiest time
        # of the process) a Prometheus scrapes it too; only then, so that the CPU of the
        # measured rounds has one scrape each, as before.
        watch.scrape_every(SCRAPE_EVERY)
        first = watch.wait_rounds(hosts * warmup, timeout * warmup, poll)
        watch.stop_scraping()
        control_before, target_before = watch.cpu(), fleet_cpu(fleet)
        rss_after_10 = 0.0
        done = first
        for number in range(warmup + 1, warmup + rounds + 1):
            done = watch.wait_rounds(hosts * number, timeout, poll)
            if number == 10:
                rss_after_10 = watch.rss_mib()
            if number % 50 == 0:
                print(
                    f"  interval {interval:g}s: round {number}/{warmup + rounds}", file=sys.stderr
                )
        control = watch.cpu() - control_before
        target = fleet_cpu(fleet) - target_before
        rss_after_all = watch.rss_mib()
        fds, threads = watch.ps.num_fds(), watch.ps.num_threads()
        not_ok = results_not_ok(watch, hosts)
        skipped = watch.metric_total("checkrun_skipped_rounds_total")
        reconnects = watch.count("reconnected") + watch.count("lost")
        if watch.stop() != 0:
            watch.fail("did not exit 0 on SIGTERM")
    host_rounds = done[0] - first[0]
    return WatchFigures(
        interval,
        host_rounds / hosts,
        (done[1] - first[1]) / host_rounds - CPU_SAMPLE,
        control / host_rounds,
        target / host_rounds,
        rss_after_10,
        rss_after_all,
        rounds + warmup,
        skipped,
        reconnects,
        fds,
        threads,
        watch.slowest_answer,
        list(watch.scrapes),
        not_ok,
    )


# --- alert latency: a service goes down and comes back ----------------------------------


def alert_playbook(
    target: str, service: Recorder, receiver: Recorder, interval: float, for_rounds: int
) -> str:
    return f"""\
plays:
  - name: heartbeat
    hosts: {target}
    checks:
      - name: app health
        http: {{url: "{service.url("/health")}", timeout: 1s}}
        interval: {interval:g}s
        for: {for_rounds}
receivers:
  - name: hook
    webhook_configs: [{{url: "{receiver.url("/hook")}", send_resolved: true}}]
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: {interval:g}s
"""


@dataclass
class AlertFigures:
    interval: float
    for_rounds: int
    host_round: float  # the mean round of the heartbeat host (its sampling window included)
    fired: list[float]  # seconds from the service going down to the firing notification
    resolved: list[float]  # from its return to the resolved notification


def wait_notification(receiver: Recorder, seen: int, status: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hooks = receiver.requests("/hook")
        if len(hooks) > seen:
            got = hooks[seen].json()["status"]
            if got != status:
                raise SystemExit(f"expected a {status} notification, got {got}")
            return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"no {status} notification within {timeout:.0f} s")


def alert_latency(
    checkrun: Path, s: Scenario, interval: float, for_rounds: int, repeats: int
) -> AlertFigures:
    """One host (over SSH, kept connection) checks an HTTP service served here; the service
    goes down at a random phase of the interval and comes back, at a random phase too, after
    the alert."""
    rng = random.Random(11)
    target = s.targets[0].name
    fired: list[float] = []
    resolved: list[float] = []
    timeout = (for_rounds + 4) * interval + 60
    with Recorder() as service, Recorder() as receiver:
        playbook = s.directory / "heartbeat.yml"
        playbook.write_text(alert_playbook(target, service, receiver, interval, for_rounds))
        state = s.directory / "heartbeat.db"
        with WatchProcess(watch_argv(checkrun, s, playbook, interval, state)) as watch:
            watch.wait_listening()
            for repeat in range(repeats):
                beats = len(service.requests("/health"))
                deadline = time.monotonic() + timeout
                while len(service.requests("/health")) < beats + 1:
                    if time.monotonic() > deadline:
                        watch.fail("the heartbeat host does not probe the service")
                    time.sleep(0.02)
                time.sleep(rng.uniform(0, interval))  # a random phase of the interval
                seen = len(receiver.requests("/hook"))
                service.down()
                down_at = time.monotonic()
                fired.append(wait_notification(receiver, seen, "firing", timeout) - down_at)
                # The page went out in a round: back at a random phase too, not just after it.
                time.sleep(rng.uniform(0, interval))
                service.up()
                up_at = time.monotonic()
                resolved.append(wait_notification(receiver, seen + 1, "resolved", timeout) - up_at)
                print(
                    f"  alert {repeat + 1}/{repeats}: firing after {fired[-1]:.1f} s, "
                    f"resolved after {resolved[-1]:.1f} s",
                    file=sys.stderr,
                )
            count, total = watch.rounds()
            if watch.stop() != 0:
                watch.fail("did not exit 0 on SIGTERM")
    return AlertFigures(interval, for_rounds, total / count, fired, resolved)


# --- the report -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_kept(
    hosts: int, cli: Cost, in_process: Cost, kept: KeptFigures, rounds: int, interval: float
) -> None:
    round_cost = mean_cost(kept.rounds)
    print()
    print(
        f"In process (runner.run_plan): {rounds} kept rounds {interval:g} s apart; "
        f"wall = seconds minus the {CPU_SAMPLE:g} s sampling window; cpu = user + system s"
    )
    print(f"{'':34} {'wall':>8} {'ctl cpu':>8} {'tgt cpu':>8} {'cpu/host':>9}")
    for name, cost in (
        ("one-shot run (checkrun CLI)", cli),
        ("one-shot round (in process)", in_process),
        ("kept: first round (connects)", kept.first),
        ("kept: later rounds (mean)", round_cost),
    ):
        print(
            f"{name:34} {cost.wall:8.3f} {cost.control_cpu:8.3f} {cost.target_cpu:8.3f} "
            f"{cost.per_host(hosts) * 1000:7.1f}ms"
        )
    cpu_cli = round_cost.per_host(hosts) / cli.per_host(hosts)
    cpu_round = round_cost.per_host(hosts) / in_process.per_host(hosts)
    print(
        f"kept round / one-shot run:   cpu per host {cpu_cli:.3f}x   "
        f"wall {round_cost.wall / cli.wall:.3f}x"
    )
    print(
        f"kept round / one-shot round: cpu per host {cpu_round:.3f}x   "
        f"wall {round_cost.wall / in_process.wall:.3f}x"
    )
    growth = kept.rss_after_all / kept.rss_after_10 if kept.rss_after_10 else 0.0
    print(
        f"this process's RSS: {kept.rss_after_10:.1f} MiB after 10 rounds, "
        f"{kept.rss_after_all:.1f} MiB after {rounds} ({growth:.3f}x); "
        f"transport events: {kept.events}"
    )


def print_summary(
    hosts: int,
    runs: int,
    cli: Cost | None,
    cost: WatchFigures | None,
    rss: WatchFigures | None,
    alerts: AlertFigures | None,
    forks: int = FORKS,
) -> None:
    print()
    print(
        f"== checkrun watch: {hosts} loopback hosts, {CHECKS} checks each, forks {forks}, "
        f"{os.cpu_count()} CPUs, load {' '.join(f'{x:.1f}' for x in os.getloadavg())} =="
    )
    print(
        f"wall: sampling window ({CPU_SAMPLE:g} s) excluded; cpu: user + system s of the "
        "control node (checkrun and its children) plus every process under the sshds"
    )
    if cli is not None:
        print(
            f"one-shot run (`checkrun`, median of {runs}): wall {cli.wall:.3f} s, cpu/host "
            f"{cli.per_host(hosts) * 1000:.1f} ms (control {cli.control_cpu / hosts * 1000:.1f}"
            f" + targets {cli.target_cpu / hosts * 1000:.1f})"
        )
    if cost is not None:
        print(
            f"watch round (interval {cost.interval:g}s, {cost.rounds:.0f} rounds after the "
            f"first): host round {cost.host_round:.3f} s, cpu/host "
            f"{cost.cpu_per_host * 1000:.1f} ms (control {cost.control_cpu * 1000:.1f} + "
            f"targets {cost.target_cpu * 1000:.1f}); skipped {cost.skipped:.0f}, "
            f"reconnects {cost.reconnects}"
        )
    if cli is not None and cost is not None:
        cpu_ratio = cost.cpu_per_host / cli.per_host(hosts)
        wall_ratio = cost.host_round / cli.wall
        print(
            f"  cpu per host per round / one-shot:  {cpu_ratio:.3f}x  goal <= {GOAL_CPU}  "
            f"{verdict(cpu_ratio <= GOAL_CPU)}"
        )
        print(
            f"  wall of a round / one-shot run:     {wall_ratio:.3f}x  goal <= {GOAL_WALL}  "
            f"{verdict(wall_ratio <= GOAL_WALL)}"
        )
    for figures in (cost, rss):
        if figures is not None:
            print(
                f"watch process at interval {figures.interval:g}s, last round: RSS "
                f"{figures.rss_after_all:.1f} MiB, {figures.fds} open fds, {figures.threads} "
                f"threads; slowest HTTP answer {figures.slowest_answer:.2f} s"
            )
        if figures is not None:
            bad = sum(figures.not_ok.values())
            print(
                f"  hosts whose latest result is not OK (misclassified): {bad}  {verdict(bad == 0)}"
            )
            for text, count in sorted(figures.not_ok.items(), key=lambda item: -item[1])[:5]:
                print(f"    {count} host(s): {text}")
        if figures is not None and figures.scrapes:
            late = sum(1 for seconds in figures.scrapes if seconds > SCRAPE_TIMEOUT)
            print(
                f"  /metrics scraped every {SCRAPE_EVERY:g} s through the warm-up rounds: "
                f"{len(figures.scrapes)} scrapes, median {statistics.median(figures.scrapes):.2f}"
                f" s, slowest {max(figures.scrapes):.2f} s; over the {SCRAPE_TIMEOUT:g} s scrape "
                f"timeout: {late}  {verdict(late == 0)}"
            )
        if figures is None or not figures.rss_after_10:
            continue
        growth = figures.rss_after_all / figures.rss_after_10
        print(
            f"control-node RSS at interval {figures.interval:g}s: "
            f"{figures.rss_after_10:.1f} MiB after 10 rounds, {figures.rss_after_all:.1f} MiB "
            f"after {figures.all_rounds} ({growth:.3f}x)  goal flat within 10%, under "
            f"{GOAL_RSS_MIB} MB  "
            f"{verdict(growth <= 1 + GOAL_RSS_GROWTH and figures.rss_after_all * 2**20 < GOAL_RSS_MIB * 1e6)}"
        )
    if rss is not None and cost is not None and rss.interval != cost.interval:
        print(
            f"  (the RSS rounds run at {rss.interval:g}s, not {cost.interval:g}s, so that "
            f"{rss.all_rounds} rounds fit in minutes; their cpu/host "
            f"{rss.cpu_per_host * 1000:.1f} ms, host round {rss.host_round:.3f} s)"
        )
    if alerts is not None:
        fire_goal = alerts.for_rounds * alerts.interval + alerts.host_round
        print(
            f"alerts (interval {alerts.interval:g}s, for: {alerts.for_rounds}, group_wait 0s, "
            f"group_interval {alerts.interval:g}s, {len(alerts.fired)} outages):"
        )
        print(
            f"  down -> firing:   median {statistics.median(alerts.fired):.2f} s, max "
            f"{max(alerts.fired):.2f} s  goal <= {fire_goal:.2f} s (for x interval + one "
            f"round of {alerts.host_round:.2f} s)  {verdict(max(alerts.fired) <= fire_goal)}"
        )
        print(
            f"  up -> resolved:   median {statistics.median(alerts.resolved):.2f} s, max "
            f"{max(alerts.resolved):.2f} s  goal <= {alerts.interval:g} s (one interval)  "
            f"{verdict(max(alerts.resolved) <= alerts.interval)}"
        )
        print(
            "  (a return is seen at the next beat: a service back just after a beat is told "
            f"after up to one interval + one round, {alerts.interval + alerts.host_round:.2f} s)"
        )


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def ready_for_a_fleet() -> None:
    """What every fleet bench needs first: root and sshd, SIGTERM ending through the finally
    blocks (so the sshds stop), and every file descriptor the hard limit allows."""
    if os.geteuid() != 0 or not os.access(SSHD, os.X_OK):
        raise SystemExit("needs root and /usr/sbin/sshd (apt-get install openssh-server)")
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def bench_fleet(
    prefix: str, hosts: int, playbook_name: str, forks: int = FORKS
) -> Iterator[BenchFleet]:
    """A temporary root with the services, `hosts` loopback sshd targets, their scenario and
    fanout.py's eight-check playbook written as `playbook_name`."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp, running_services() as ports:
        root = Path(tmp)
        log = root / "app.log"
        errors = write_log(log)
        client_key = generate_key(root / "client_key", "bench-client")
        home = root / "home"
        home.mkdir()
        with running_targets(root, hosts, client_key, home) as fleet:
            scenario = Scenario(root, fleet.targets, client_key, *ports, log, errors, forks)
            playbook = root / playbook_name
            playbook.write_text(checkrun_playbook(scenario))
            yield BenchFleet(root, scenario, fleet, playbook)


@dataclass
class BenchFleet:
    root: Path
    scenario: Scenario
    fleet: Any  # fanout's running fleet (its targets and sshds)
    playbook: Path


LEGS = ("watch", "rss", "alerts", "kept")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=64, help="loopback hosts (64)")
    parser.add_argument("--forks", type=int, default=FORKS, help=f"checkrun's forks ({FORKS})")
    parser.add_argument(
        "--legs", default="watch,rss,alerts", help=f"comma-separated, of {','.join(LEGS)}"
    )
    parser.add_argument("--one-shot-runs", type=int, default=3, help="one-shot runs (median)")
    parser.add_argument("--checkrun", type=Path, help="the checkrun binary (default: beside)")
    parser.add_argument("--watch-interval", type=float, default=10.0, help="seconds (10)")
    parser.add_argument("--watch-rounds", type=int, default=30, help="measured rounds (30)")
    parser.add_argument(
        "--warmup-rounds", type=int, default=1, help="watch rounds before the measured ones (1)"
    )
    parser.add_argument("--rss-interval", type=float, default=1.0, help="seconds (1)")
    parser.add_argument("--rss-rounds", type=int, default=300, help="rounds (300)")
    parser.add_argument("--alert-interval", type=float, default=5.0, help="seconds (5)")
    parser.add_argument("--alert-for", type=int, default=3, help="for: (3)")
    parser.add_argument("--alert-repeats", type=int, default=3, help="outages (3)")
    parser.add_argument("--rounds", type=int, default=300, help="kept: in-process rounds")
    parser.add_argument("--interval", type=float, default=0.2, help="kept: seconds apart")
    args = parser.parse_args()
    args.legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    limit = ADDRESSES_PER_SSHD * (256 - FIRST_SUBNET)
    if (
        not 1 <= args.hosts <= limit
        or set(args.legs) - set(LEGS)
        or min(args.rounds, args.rss_rounds) < 11
        or min(args.one_shot_runs, args.watch_rounds, args.alert_repeats) < 1
        or min(args.watch_interval, args.rss_interval, args.alert_interval) < 1
    ):
        parser.error(
            f"--hosts 1..{limit}, --legs of {','.join(LEGS)}, --rounds and --rss-rounds at "
            "least 11, counts at least 1, watch intervals at least 1 s"
        )
    return args


def main() -> None:
    args = parse_args()
    ready_for_a_fleet()
    checkrun = checkrun_binary(args.checkrun)
    cli = cost = rss = alerts = None
    started = time.monotonic()
    with bench_fleet("watch-bench-", args.hosts, "watch.yml", args.forks) as bench:
        root, s, fleet, playbook = bench.root, bench.scenario, bench.fleet, bench.playbook
        if {"watch", "kept"} & set(args.legs):
            one_shot_cli(checkrun, s, playbook, fleet)  # warm-up: page cache, bytecode
            cli = median_cost(
                [one_shot_cli(checkrun, s, playbook, fleet) for _ in range(args.one_shot_runs)]
            )
        if "kept" in args.legs:
            plan = build_plan(
                load_playbook(playbook), load_inventories([str(s.inventory)]), PlanOptions()
            )
            ssh = SSHOptions(
                known_hosts=(str(s.known_hosts),),
                accept_new_file=str(root / "accepted_known_hosts"),
                ssh_config="none",
                allow_agent=False,
                look_for_keys=False,
                global_known_hosts=(),
            )
            options = RunOptions(forks=FORKS)
            in_process = median_cost(
                [one_shot_in_process(plan, options, ssh, fleet) for _ in range(args.one_shot_runs)]
            )
            kept = kept_rounds(plan, options, ssh, fleet, args.rounds, args.interval)
            print_kept(args.hosts, cli, in_process, kept, args.rounds, args.interval)
        if "watch" in args.legs:
            cost = watch_costs(
                checkrun,
                s,
                playbook,
                fleet,
                args.watch_interval,
                args.watch_rounds,
                args.warmup_rounds,
            )
        if "rss" in args.legs:
            rss = watch_costs(checkrun, s, playbook, fleet, args.rss_interval, args.rss_rounds - 1)
        if "alerts" in args.legs:
            alerts = alert_latency(
                checkrun, s, args.alert_interval, args.alert_for, args.alert_repeats
            )
    print_summary(args.hosts, args.one_shot_runs, cli, cost, rss, alerts, args.forks)
    print(f"(bench time {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
