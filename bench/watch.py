#!/usr/bin/env python3
"""Kept-connection benchmark: watch-mode rounds against one-shot runs of the same playbook.

The hosts, services and 8-check playbook of bench/fanout.py (N loopback sshd hosts, 16
addresses per sshd; cpu over 0.2 s, memory, disk, load, HTTP, TCP, process, a grep of an
18 MB log). In one run it measures:

1. the one-shot run as cron runs it: `checkrun PLAYBOOK -i INV` (the checkrun next to this
   Python, or --checkrun), `--one-shot-runs` times;
2. the one-shot round in process: runner.run_plan over a fresh Transports(), what a watch
   process would pay per round without kept connections;
3. the rounds of watch mode: runner.run_plan over one Transports(keep_alive=True), `--rounds`
   rounds `--interval` apart (the first, which connects, is reported on its own).

Wall time is the run's (or round's) minus the 0.2 s sampling window. CPU is user + system
seconds: on the control node (the checkrun child's RUSAGE_CHILDREN, or this process's
RUSAGE_SELF for in-process rounds, which also holds this script's HTTP and TCP probe servers:
conservative for the kept rounds), and on the targets (every sshd listener and everything
below it: sessions, pythons, grep; live processes by /proc, ended ones through their parents'
cutime/cstime). Control-node RSS is read after round 10 and after the last round.

Run by hand, as root: python3 bench/watch.py [--hosts 64] [--rounds 300] [--interval 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

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


def one_shot_cli(checkrun: Path, s: Scenario, playbook: Path, fleet: Fleet) -> Cost:
    report = s.directory / "one-shot.json"
    argv = [
        str(checkrun),
        str(playbook),
        "-i",
        str(s.inventory),
        "-f",
        str(FORKS),
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


def print_report(
    hosts: int, cli: Cost, in_process: Cost, kept: KeptFigures, rounds: int, interval: float
) -> None:
    round_cost = mean_cost(kept.rounds)
    print()
    print(
        f"Kept connections: {hosts} hosts, {CHECKS} checks each, forks {FORKS}, "
        f"{rounds} kept rounds {interval:g} s apart, {os.cpu_count()} CPUs, "
        f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(f"wall = seconds minus the {CPU_SAMPLE:g} s sampling window; cpu = user + system s")
    header = f"{'':34} {'wall':>8} {'ctl cpu':>8} {'tgt cpu':>8} {'cpu/host':>9}"
    print(header)
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
    wall_cli = round_cost.wall / cli.wall
    wall_round = round_cost.wall / in_process.wall
    print()
    print(
        f"kept round / one-shot run:   cpu per host {cpu_cli:.3f}x (goal <= {GOAL_CPU})   "
        f"wall {wall_cli:.3f}x (goal <= {GOAL_WALL})"
    )
    print(f"kept round / one-shot round: cpu per host {cpu_round:.3f}x   wall {wall_round:.3f}x")
    growth = kept.rss_after_all / kept.rss_after_10 if kept.rss_after_10 else 0.0
    print(
        f"control-node RSS: {kept.rss_after_10:.1f} MiB after 10 rounds, "
        f"{kept.rss_after_all:.1f} MiB after {rounds} ({growth:.3f}x)"
    )
    print(f"transport events: {kept.events}")


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=64, help="loopback hosts (64)")
    parser.add_argument("--rounds", type=int, default=300, help="kept rounds (300)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between rounds")
    parser.add_argument("--one-shot-runs", type=int, default=3, help="one-shot runs (median)")
    parser.add_argument("--checkrun", type=Path, help="the checkrun binary of the one-shot run")
    args = parser.parse_args()
    limit = ADDRESSES_PER_SSHD * (256 - FIRST_SUBNET)
    if not 1 <= args.hosts <= limit or args.rounds < 11 or args.one_shot_runs < 1:
        parser.error(f"--hosts 1..{limit}, --rounds at least 11, --one-shot-runs at least 1")
    if os.geteuid() != 0 or not os.access(SSHD, os.X_OK):
        raise SystemExit("needs root and /usr/sbin/sshd (apt-get install openssh-server)")
    signal.signal(signal.SIGTERM, stop_on_sigterm)  # so the finally blocks stop the sshds
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    checkrun = checkrun_binary(args.checkrun)
    with tempfile.TemporaryDirectory(prefix="watch-bench-") as tmp, running_services() as ports:
        root = Path(tmp)
        log = root / "app.log"
        errors = write_log(log)
        client_key = generate_key(root / "client_key", "bench-client")
        home = root / "home"
        home.mkdir()
        with running_targets(root, args.hosts, client_key, home) as fleet:
            s = Scenario(root, fleet.targets, client_key, *ports, log, errors)
            playbook = root / "watch.yml"
            playbook.write_text(checkrun_playbook(s))
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
            one_shot_cli(checkrun, s, playbook, fleet)  # warm-up: page cache, bytecode
            cli = median_cost(
                [one_shot_cli(checkrun, s, playbook, fleet) for _ in range(args.one_shot_runs)]
            )
            in_process = median_cost(
                [one_shot_in_process(plan, options, ssh, fleet) for _ in range(args.one_shot_runs)]
            )
            kept = kept_rounds(plan, options, ssh, fleet, args.rounds, args.interval)
    print_report(args.hosts, cli, in_process, kept, args.rounds, args.interval)


if __name__ == "__main__":
    main()
