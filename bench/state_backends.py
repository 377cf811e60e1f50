#!/usr/bin/env python3
"""State backends: what a run costs in the state database, SQLite against PostgreSQL.

One run of `--hosts` (1,000) hosts × 8 checks (cpu, memory, disk, load, http, tcp, process
and a log check, which keeps offsets) is recorded the way `checkrun` records it
(serve/rounds.py RoundRecorder): `prepare` reads the log offsets and baselines, `record`
writes the offsets, every measurement into the history and the alert state (a webhook
receiver; every check OK, so nothing is queued), each in its transaction. The results are
made here (what matters is what reaches the database, not the hosts); `--runs` runs after a
warm-up run (the first creates every series) are timed, median per run.

SQLite: a file in a temporary directory, as the product opens it (WAL, synchronous=FULL).
PostgreSQL: Debian's server (tests/postgres.py) on loopback, durable (fsync and synchronous
commits on), through psycopg as the product connects. Same machine, same window.

Run by hand, as root, with the project's venv:
  .venv/bin/python bench/state_backends.py [--hosts 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from postgres import PostgresServer  # noqa: E402 - the tests' real PostgreSQL

from checkrunner.app import RunCommand, load_config  # noqa: E402
from checkrunner.results import CheckResult, HostResult, RunResult, Status  # noqa: E402
from checkrunner.serve.rounds import LoadedConfig, RoundRecorder  # noqa: E402
from checkrunner.state.db import open_state  # noqa: E402

CHECKS = {
    "cpu": ("cpu", {"busy": "%"}),
    "memory": ("memory", {"used": "%"}),
    "disk": ("disk", {"used": "%", "inodes_used": "%"}),
    "load": ("load", {"load1": "", "load5": "", "load15": ""}),
    "health": ("http", {"response_time": "s", "status_code": ""}),
    "port": ("tcp", {"connect_time": "s"}),
    "sshd": ("process", {"count": ""}),
    "errors": ("log", {"errors": ""}),
}


def playbook(folder: Path, hosts: int) -> Path:
    inventory = folder / "inventory.ini"
    inventory.write_text(
        "[fleet]\n" + "".join(f"h{n:05d} ansible_connection=local\n" for n in range(hosts))
    )
    path = folder / "fleet.yml"
    path.write_text(
        "receivers: [{name: ops, webhook_configs: [{url: 'http://127.0.0.1:9/hook'}]}]\n"
        "route: {receiver: ops}\n"
        "plays:\n  - name: fleet\n    hosts: fleet\n    checks:\n"
        "      - {name: cpu, cpu: {sample: 0.2s}}\n"
        "      - {name: memory, memory: {}}\n"
        "      - {name: disk, disk: {path: /}}\n"
        "      - {name: load, load: {}}\n"
        "      - {name: health, http: {url: 'http://127.0.0.1:8080/health'}}\n"
        "      - {name: port, tcp: {port: 22}}\n"
        "      - {name: sshd, process: {name: sshd}}\n"
        "      - {name: errors, log: {path: /var/log/app.log, patterns: [{name: errors, "
        "regex: ' ERROR '}]}}\n"
    )
    return path, inventory


def results(config: LoadedConfig, run_number: int) -> RunResult:
    now = time.time()
    run = RunResult(playbook=config.plan.playbook, started_at=now, finished_at=now)
    for host_plan in config.plan.hosts:
        host = HostResult(host=host_plan.host.name, started_at=now, duration=0.3)
        for planned in host_plan.checks:
            identity = planned.identity
            module, units = CHECKS[identity.name]
            values = {name: float((run_number * 7 + len(name)) % 50) for name in units}
            host.checks.append(
                CheckResult(
                    host=host.host,
                    play=identity.play,
                    name=identity.name,
                    module=module,
                    status=Status.OK,
                    metric=next(iter(units)),
                    value=next(iter(values.values())),
                    measurements=values,
                    units={k: v for k, v in units.items() if v},
                )
            )
        run.hosts.append(host)
    return run


def observe_cursors(recorder: RoundRecorder, config: LoadedConfig, run_number: int) -> None:
    """What the log module would return: each host's new offset, as the runner hands it."""
    for host_plan in config.plan.hosts:
        for planned in host_plan.checks:
            if planned.identity.module == "log":
                raw = {
                    "result": {
                        "status": "OK",
                        "measurements": {"errors": 0.0},
                        "state": {"cursors": {"/var/log/app.log": {"offset": run_number * 100}}},
                    }
                }
                recorder.log_state.observe(planned, raw)


def time_runs(state: str, config: LoadedConfig, runs: int) -> list[float]:
    db = open_state(state)
    took = []
    try:
        for number in range(runs + 1):
            started = time.perf_counter()
            recorder = RoundRecorder(db, config)
            recorder.prepare(config.plan.hosts)
            observe_cursors(recorder, config, number)
            recorder.record(results(config, number))
            if number:  # the first run creates every series: a warm-up
                took.append(time.perf_counter() - started)
    finally:
        db.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-state-") as scratch:
        folder = Path(scratch)
        path, inventory = playbook(folder, args.hosts)
        config = load_config(RunCommand(playbook=str(path), inventories=[str(inventory)]))
        sqlite = time_runs(str(folder / "state.db"), config, args.runs)
        server = PostgresServer.start(durable=True)
        try:
            postgresql = time_runs(server.new_database(), config, args.runs)
        finally:
            server.stop()
    lite, pg = statistics.median(sqlite), statistics.median(postgresql)
    samples = args.hosts * sum(len(units) for _, units in CHECKS.values())
    print(
        f"state read + commit per run, {args.hosts} hosts x {len(CHECKS)} checks "
        f"({samples} measurements), median of {args.runs}: SQLite {lite:.3f} s, "
        f"PostgreSQL {pg:.3f} s (durable, loopback); PostgreSQL / SQLite {pg / lite:.2f}"
    )


if __name__ == "__main__":
    main()
