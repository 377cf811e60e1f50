#!/usr/bin/env python3
"""History benchmark: what keeping every measurement costs a run, the disk, and a read.

The hosts, services and 8-check playbook of bench/fanout.py (N loopback sshd hosts, 16
addresses per sshd), run by the real `checkrun` (the one next to this Python, or
--checkrun) with its own state database. In one run (legs chosen with --legs) it measures:

- write: the share of a one-shot run's wall time that its history write takes. The run is
  `checkrun PLAYBOOK -i INV -f 32` (bench/watch.py's one_shot_cli), median of `--runs` after
  a warm-up run, all writing their history into one state database. The run's own
  RunResult (read back from its JSON report) is then recorded again, `--repeats` times, by
  the same code the run used (HistoryStore.record in a StateDB transaction, as
  RoundRecorder._commit_round does it) on a copy of that database, each repeat a new time;
  the median against the run's wall time is the share. Also timed: the first run's write
  (every series new) and the hourly upkeep on that database.
- size: a day of rounds every 10 s of one host with 20 measurements (the real run's values
  of one host, round-robin over its checks, jittered per round), written through
  RoundRecorder.record with a clock that this script moves (so the hourly upkeep runs as in
  watch mode), then VACUUMed: bytes per host-day raw (with the hourly rows record keeps as it
  writes). Then on to 8 days (the raw window), and the 8 days pruned of their raw samples by
  the upkeep (what is left: their hourly rows): bytes per host-day hourly; the
  steady state (8 days raw + 90 days hourly) is extrapolated from the two.
- read: `checkrun history --host H --check C --metric M --since 8d` (a table) and the same
  with `--json`, over that database (8 days of one 10 s series among every series of the
  real run), median of `--runs`, against the floor measured alongside: `python -c 'import
  checkrunner'` (the interpreter and the package); `checkrun --version` (a run's start-up)
  for comparison. Goal: 100 ms. And HistoryStore.baseline_stats over its last 7 days (mean
  and σ; median and MAD), in this process: what a baseline costs when it is not cached.

The building connections run with `PRAGMA synchronous = OFF`: fsyncs change no byte of the
file and would make the 69,120 rounds of the build take minutes.

Run by hand, as root, with the project's venv:
  .venv/bin/python bench/history.py [--hosts 64] [--legs write,size,read]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import (  # noqa: E402 - the fan-out bench's hosts, services and playbook
    ADDRESSES_PER_SSHD,
    CPU_SAMPLE,
    FIRST_SUBNET,
    Scenario,
    cpu_seconds,
)
from watch import (  # noqa: E402 - a real one-shot run, timed, on fanout's fleet
    bench_fleet,
    checkrun_binary,
    one_shot_cli,
    ready_for_a_fleet,
)

from checkrunner.masking import Masker  # noqa: E402
from checkrunner.plan import Plan  # noqa: E402
from checkrunner.results import (  # noqa: E402
    CheckResult,
    HostResult,
    RunResult,
    Status,
    Thresholds,
)
from checkrunner.serve.rounds import LoadedConfig, RoundRecorder  # noqa: E402
from checkrunner.state.db import StateDB, open_state  # noqa: E402
from checkrunner.state.history import HistoryStore, Retention, SeriesKey, Window  # noqa: E402
from checkrunner.state.keys import CheckKey  # noqa: E402

GOAL_WRITE_SHARE = 0.03  # the history write against a 64-host run's wall time (issue 12)
GOAL_READ = 0.100  # `checkrun history` over 8 days of 10 s data, seconds
STEP = 10.0  # seconds between rounds (size and read legs)
HOUR = 3600.0
DAY = 86400.0
MEASUREMENTS = 20  # per host (size and read legs)
RAW_DAYS = 8
HOURLY_DAYS = 90
COMMAND_TIMEOUT = 120.0


# --- the real run's results -----------------------------------------------------------------


def run_from_report(path: Path) -> RunResult:
    """The RunResult a JSON report was made from (the fields history.record reads)."""
    report = json.loads(path.read_text())
    known = {f.name for f in fields(CheckResult)}
    hosts = []
    for host in report["hosts"]:
        checks = []
        for data in host["checks"]:
            values = {k: v for k, v in data.items() if k in known}
            values["status"] = Status(values["status"])
            values["thresholds"] = Thresholds(**(values.get("thresholds") or {}))
            checks.append(CheckResult(**values))
        hosts.append(HostResult(host["host"], address=host.get("address", ""), checks=checks))
    started = report.get("started_at") or time.time()
    return RunResult(report.get("playbook", ""), started, hosts=hosts)


def config() -> LoadedConfig:
    return LoadedConfig(plan=Plan(playbook="", hosts=[]), receivers=None, masker=Masker([]))


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy (WAL included) through SQLite's backup API."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


# --- write: the history's share of a run ----------------------------------------------------


@dataclass
class WriteFigures:
    hosts: int
    run_wall: float  # the one-shot run's wall time, median
    samples: int  # samples one run writes
    series: int
    record: float  # HistoryStore.record, steady state, median
    transaction: float  # the same with BEGIN IMMEDIATE ... COMMIT (fsync)
    first: float  # the first run's transaction: every series new
    upkeep: float  # the hourly upkeep on this database


def timed(action: Callable[..., object], *args: object, **kwargs: object) -> float:
    started = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - started


def write_cost(
    checkrun: Path, s: Scenario, playbook: Path, fleet, state: Path, runs: int, repeats: int
) -> tuple[WriteFigures, RunResult]:
    os.environ["CHECKRUN_STATE"] = str(state)  # one_shot_cli's checkrun inherits it
    one_shot_cli(checkrun, s, playbook, fleet)  # warm-up: page cache, bytecode, series made
    # The process's whole wall time (one_shot_cli leaves the sampling window out of it).
    walls = [one_shot_cli(checkrun, s, playbook, fleet).wall + CPU_SAMPLE for _ in range(runs)]
    run = run_from_report(s.directory / "one-shot.json")
    copy = state.with_name("write-copy.db")
    copy_database(state, copy)
    db = open_state(str(copy))
    try:
        (last,) = db.connection.execute("SELECT MAX(at) FROM samples").fetchone()
        written = db.connection.execute("SELECT COUNT(*) FROM samples WHERE at = ?", (last,))
        (samples,) = written.fetchone()
        (series,) = db.connection.execute("SELECT COUNT(*) FROM series").fetchone()
        record_times, transaction_times = [], []
        for repeat in range(1, repeats + 1):
            now = last + repeat  # within the hour: the upkeep is not due, as in most runs
            store = HistoryStore(db.connection, Retention())
            with db.transaction():
                record_times.append(timed(store.record, run, now))
            transaction_times.append(timed(record_in_transaction, db, run, now + 0.5))
        upkeep = timed(record_in_transaction, db, run, last + repeats + HOUR, upkeep=True)
    finally:
        db.close()
    fresh = open_state(str(state.with_name("write-fresh.db")))
    try:
        first = timed(record_in_transaction, fresh, run, last)
    finally:
        fresh.close()
    if samples != sum(len(c.measurements) or 1 for c in run.all_checks()):
        raise SystemExit(f"the real run wrote {samples} samples, its report has other counts")
    figures = WriteFigures(
        len(run.hosts),
        statistics.median(walls),
        samples,
        series,
        statistics.median(record_times),
        statistics.median(transaction_times),
        first,
        upkeep,
    )
    return figures, run


def record_in_transaction(db: StateDB, run: RunResult, now: float, upkeep: bool = False) -> None:
    with db.transaction() as connection:
        store = HistoryStore(connection, Retention())
        if upkeep:
            store.upkeep(now)
        else:
            store.record(run, now)


# --- size: bytes per host-day ---------------------------------------------------------------


def one_host_round(run: RunResult, count: int = MEASUREMENTS) -> RunResult:
    """One host of the real run with `count` of its measurements, taken round-robin over its
    checks (each check keeps its own status, unit and name)."""
    host = run.hosts[0]
    kept: list[CheckResult] = []
    names = [list(check.measurements) for check in host.checks]
    chosen: dict[int, list[str]] = {}
    position = 0
    while sum(len(v) for v in chosen.values()) < count and any(position < len(n) for n in names):
        for index, measured in enumerate(names):
            if position < len(measured) and sum(len(v) for v in chosen.values()) < count:
                chosen.setdefault(index, []).append(measured[position])
        position += 1
    for index, metrics in sorted(chosen.items()):
        check = host.checks[index]
        trimmed = CheckResult(**{f.name: getattr(check, f.name) for f in fields(CheckResult)})
        trimmed.measurements = {m: check.measurements[m] for m in metrics}
        trimmed.units = {m: u for m, u in check.units.items() if m in metrics}
        kept.append(trimmed)
    return RunResult(run.playbook, run.started_at, hosts=[HostResult(host.host, checks=kept)])


class Jitter:
    """Each round's values: the real ones, moved a little (integers stay integers)."""

    def __init__(self, template: RunResult, seed: int = 12):
        self.template = template
        self.rng = random.Random(seed)
        self.base = [dict(c.measurements) for c in template.all_checks()]

    def next(self) -> RunResult:
        for check, base in zip(self.template.all_checks(), self.base, strict=True):
            for name, value in base.items():
                if float(value).is_integer():
                    moved = value + self.rng.randint(-2, 2) * max(1, abs(value) // 1000)
                else:
                    moved = value * (1 + self.rng.gauss(0, 0.05))
                check.measurements[name] = moved
        return self.template


@dataclass
class SizeFigures:
    samples_per_day: int
    raw_per_host_day: int  # bytes
    raw_days: int
    raw_window_per_host_day: int  # bytes, over the whole raw window
    hourly_per_host_day: int
    build_rounds: int
    build_seconds: float

    @property
    def steady_bytes(self) -> int:
        return RAW_DAYS * self.raw_window_per_host_day + HOURLY_DAYS * self.hourly_per_host_day


def vacuumed_size(source: Path, target: Path) -> int:
    copy_database(source, target)
    connection = sqlite3.connect(target)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.execute("VACUUM")
    connection.close()
    return target.stat().st_size


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def build_history(
    path: Path, run: RunResult, days: int, end: float, on_day: Callable[[int], None]
) -> tuple[int, float]:
    """`days` of rounds every STEP seconds of one host, ending within the hour before `end`,
    through RoundRecorder.record; on_day(n) after each whole day. (rounds, seconds)"""
    template = one_host_round(run)
    jitter = Jitter(template)
    start = (end - days * DAY) // HOUR * HOUR  # a whole hour: the upkeep folds whole hours
    clock = Clock(start)
    db = open_state(str(path))
    db.connection.execute("PRAGMA synchronous = OFF")
    recorder = RoundRecorder(db, config(), clock=clock)
    rounds = 0
    started = time.perf_counter()
    try:
        while rounds < days * DAY / STEP:
            recorder.record(jitter.next())
            rounds += 1
            clock.now = start + rounds * STEP
            if rounds % int(DAY / STEP) == 0:
                on_day(rounds // int(DAY / STEP))
        seconds = time.perf_counter() - started
    finally:
        db.close()
    return rounds, seconds


def size_and_database(
    directory: Path, run: RunResult, end: float, days: int
) -> tuple[SizeFigures, Path, RunResult]:
    """The size figures; the 8-day database (for the read leg) and its host's round."""
    empty = vacuumed_size_of_new(directory)
    path = directory / "history-8d.db"
    template = one_host_round(run)
    per_day: dict[int, int] = {}

    def measure(day: int) -> None:
        if day in (1, days):
            per_day[day] = vacuumed_size(path, directory / f"vacuumed-{day}.db") - empty
            print(f"  day {day}: {per_day[day] / 2**20:.2f} MiB", file=sys.stderr, flush=True)

    rounds, seconds = build_history(path, run, days, end, measure)
    # Every raw day folded into hours: the upkeep as it runs once they leave the raw window.
    folded = directory / "history-folded.db"
    copy_database(path, folded)
    db = open_state(str(folded))
    record_in_transaction(db, template, end + (RAW_DAYS + 1) * DAY, upkeep=True)  # all out
    db.close()
    hourly = vacuumed_size(folded, directory / "vacuumed-folded.db") - empty
    figures = SizeFigures(
        samples_per_day=int(DAY / STEP) * MEASUREMENTS,
        raw_per_host_day=per_day[1],
        raw_days=days,
        raw_window_per_host_day=per_day[days] // days,
        hourly_per_host_day=hourly // days,
        build_rounds=rounds,
        build_seconds=seconds,
    )
    return figures, path, template


def vacuumed_size_of_new(directory: Path) -> int:
    """An empty, migrated state database: what every size is measured above."""
    path = directory / "empty.db"
    open_state(str(path)).close()
    return vacuumed_size(path, directory / "empty-vacuumed.db")


# --- read: `checkrun history` ---------------------------------------------------------------


@dataclass
class Timing:
    wall: float  # seconds, median
    cpu: float  # user + system seconds of the process, median: steadier on a loaded machine


@dataclass
class ReadFigures:
    days: int
    samples: int  # shown by the table
    table: Timing
    as_json: Timing
    version: Timing  # `checkrun --version`
    import_only: Timing  # python -c 'import checkrunner'
    table_lines: int
    json_bytes: int
    baseline: float = 0.0  # HistoryStore.baseline_stats, 7-day mean and σ, seconds
    robust_baseline: float = 0.0  # the same, median and MAD


def median_timing(argv: list[str], runs: int, output: Path) -> Timing:
    walls, cpus = [], []
    for _ in range(runs):
        with output.open("wb") as out:
            cpu_before = cpu_seconds(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(
                argv, stdout=out, stderr=subprocess.PIPE, timeout=COMMAND_TIMEOUT, check=False
            )
            walls.append(time.perf_counter() - started)
            cpus.append(cpu_seconds(resource.RUSAGE_CHILDREN) - cpu_before)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-2000:]}")
    return Timing(statistics.median(walls), statistics.median(cpus))


def read_latency(
    checkrun: Path, state: Path, template: RunResult, runs: int, directory: Path, days: int
) -> ReadFigures:
    check = template.hosts[0].checks[0]
    metric = next(iter(check.measurements))
    query = [
        str(checkrun), "history", "--host", check.host, "--check", check.name,
        "--metric", metric, "--since", f"{days}d", "--state", str(state),
    ]  # fmt: skip
    table_out, json_out = directory / "history.txt", directory / "history.json"
    env_python = str(Path(checkrun).parent / "python")
    python = env_python if os.access(env_python, os.X_OK) else sys.executable
    figures = ReadFigures(
        days=days,
        samples=0,
        table=median_timing(query, runs, table_out),
        as_json=median_timing([*query, "--json"], runs, json_out),
        version=median_timing([str(checkrun), "--version"], runs, directory / "v.txt"),
        import_only=median_timing([python, "-c", "import checkrunner"], runs, directory / "i"),
        table_lines=len(table_out.read_text().splitlines()),
        json_bytes=json_out.stat().st_size,
    )
    (series,) = json.loads(json_out.read_text())["series"]
    figures.samples = len(series["samples"])
    figures.baseline, figures.robust_baseline = baseline_latency(state, template, runs)
    return figures


def baseline_latency(state: Path, template: RunResult, runs: int) -> tuple[float, float]:
    """HistoryStore.baseline_stats over the 7 days before the series' newest sample (what a
    baseline computes when baseline_cache has nothing fresh): mean and σ, median and MAD."""
    check = template.hosts[0].checks[0]
    key = SeriesKey(CheckKey(check.host, check.play, check.name), next(iter(check.measurements)))
    db = open_state(str(state))
    try:
        store = HistoryStore(db.connection)
        series = store.series_id(key)
        (end,) = db.connection.execute(
            "SELECT MAX(at) FROM samples WHERE series = ?", (series,)
        ).fetchone()
        ranges = ((end - 7 * DAY, end + 1),)
        timings = []
        for robust in (False, True):
            window = Window(ranges, robust)
            store.baseline_stats(series, window)  # warm-up
            walls = []
            for _ in range(runs):
                started = time.perf_counter()
                store.baseline_stats(series, window)
                walls.append(time.perf_counter() - started)
            timings.append(statistics.median(walls))
        return timings[0], timings[1]
    finally:
        db.close()


# --- the report -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def mib(size: float) -> str:
    return f"{size / 2**20:.2f} MiB"


def print_summary(
    write: WriteFigures | None, size: SizeFigures | None, read: ReadFigures | None
) -> None:
    print()
    print(
        f"== history: {os.cpu_count()} CPUs, load "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} =="
    )
    if write is not None:
        share = write.transaction / write.run_wall
        print(
            f"write: one-shot run of {write.hosts} hosts, wall {write.run_wall:.3f} s "
            f"(median), {write.samples} samples in {write.series} series per run"
        )
        print(
            f"  HistoryStore.record {write.record * 1000:.1f} ms, with its transaction "
            f"(commit, fsync) {write.transaction * 1000:.1f} ms = "
            f"{write.transaction / write.samples * 1e6:.1f} us per sample"
        )
        print(
            f"  history write / run wall: {share * 100:.2f}%  goal <= "
            f"{GOAL_WRITE_SHARE * 100:g}%  {verdict(share <= GOAL_WRITE_SHARE)}"
        )
        print(
            f"  first run (every series new): {write.first * 1000:.1f} ms "
            f"({write.first / write.run_wall * 100:.2f}%); hourly upkeep on this database: "
            f"{write.upkeep * 1000:.1f} ms"
        )
    if size is not None:
        print(
            f"size: 1 host, {MEASUREMENTS} measurements every {STEP:g} s "
            f"({size.samples_per_day} samples a day), {size.build_rounds} rounds through "
            f"RoundRecorder.record in {size.build_seconds:.1f} s "
            f"({size.build_seconds / size.build_rounds * 1000:.2f} ms a round, hourly upkeep "
            "included), VACUUMed, above an empty database"
        )
        print(
            f"  raw, first day: {mib(size.raw_per_host_day)} per host-day "
            f"({size.raw_per_host_day / size.samples_per_day:.1f} B per sample)"
        )
        print(
            f"  raw, {size.raw_days} days: {mib(size.raw_window_per_host_day)} per host-day; "
            f"hourly rows: {size.hourly_per_host_day / 1024:.1f} KiB per host-day"
        )
        print(
            f"  steady state ({RAW_DAYS} days raw + {HOURLY_DAYS} days hourly): "
            f"{mib(size.steady_bytes)} per host, {mib(size.steady_bytes * 64)} for 64 hosts"
        )
    if read is not None:
        floor = read.import_only
        print(
            f"read: `checkrun history --metric M --since {read.days}d` over {read.samples} "
            f"samples ({read.days} days of one {STEP:g} s series), median wall / cpu"
        )
        for name, timing, extra in (
            ("table", read.table, f"{read.table_lines} lines"),
            ("--json", read.as_json, mib(read.json_bytes)),
        ):
            print(
                f"  {name:7} {timing.wall * 1000:6.1f} / {timing.cpu * 1000:6.1f} ms ({extra}); "
                f"above the floor {(timing.wall - floor.wall) * 1000:6.1f} / "
                f"{(timing.cpu - floor.cpu) * 1000:6.1f} ms  goal <= {GOAL_READ * 1000:g} ms  "
                f"{verdict(timing.wall <= GOAL_READ)}"
            )
        print(
            f"  baseline_stats over 7 days: mean and σ {read.baseline * 1000:.1f} ms, "
            f"median and MAD {read.robust_baseline * 1000:.1f} ms"
        )
        print(
            f"  floor: `python -c 'import checkrunner'` {floor.wall * 1000:.1f} / "
            f"{floor.cpu * 1000:.1f} ms (for comparison, `checkrun --version`: "
            f"{read.version.wall * 1000:.1f} / {read.version.cpu * 1000:.1f} ms)"
        )


LEGS = ("write", "size", "read")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=64, help="loopback hosts (64)")
    parser.add_argument("--legs", default=",".join(LEGS), help=f"of {','.join(LEGS)}")
    parser.add_argument("--runs", type=int, default=3, help="one-shot runs and reads (median)")
    parser.add_argument("--repeats", type=int, default=9, help="replayed history writes")
    parser.add_argument("--days", type=int, default=RAW_DAYS, help="days of history built (8)")
    parser.add_argument("--checkrun", type=Path, help="the checkrun binary (default: beside)")
    args = parser.parse_args()
    args.legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    limit = ADDRESSES_PER_SSHD * (256 - FIRST_SUBNET)
    if (
        not 1 <= args.hosts <= limit
        or set(args.legs) - set(LEGS)
        or min(args.runs, args.repeats) < 1
    ):
        parser.error(f"--hosts 1..{limit}, --legs of {','.join(LEGS)}, counts at least 1")
    if "read" in args.legs and "size" not in args.legs:
        args.legs.append("size")  # the read leg reads the database the size leg builds
    return args


def main() -> None:
    args = parse_args()
    ready_for_a_fleet()
    checkrun = checkrun_binary(args.checkrun)
    write = size = read = None
    started = time.monotonic()
    with bench_fleet("history-bench-", args.hosts, "history.yml") as bench:
        root, s, fleet, playbook = bench.root, bench.scenario, bench.fleet, bench.playbook
        state = root / "state.db"
        write, run = write_cost(checkrun, s, playbook, fleet, state, args.runs, args.repeats)
        if "write" not in args.legs:
            write = None
        if "size" in args.legs:
            end = time.time()
            size, history_db, template = size_and_database(root, run, end, args.days)
            if "read" in args.legs:
                # Every series of the real run beside the 8 days of one host: a real listing.
                db = open_state(str(history_db))
                record_in_transaction(db, run, end)
                db.close()
                read = read_latency(checkrun, history_db, template, args.runs, root, args.days)
    print_summary(write, size, read)
    print(f"(bench time {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
