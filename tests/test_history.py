"""History: every measurement of every check kept per round, retention, `checkrun history`."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

import pytest
from helpers import run_checkrun, wait_for
from watching import WatchProcess

from checkrunner.masking import Masker
from checkrunner.plan import Plan
from checkrunner.report.formatting import format_value
from checkrunner.report.history import (
    BLOCKS,
    PLAIN_LEVELS,
    SPARK_WIDTH,
    TABLE_SAMPLES,
    sparkline,
    table,
)
from checkrunner.results import CheckResult, HostResult, RunResult, Status
from checkrunner.serve.rounds import LoadedConfig, RoundRecorder
from checkrunner.state.db import STATE_ERRORS, open_state
from checkrunner.state.history import HistoryStore, Retention, Sample, SeriesKey
from checkrunner.state.keys import CheckKey

PLAYBOOK = """
- name: thresholds
  hosts: localhost
  checks:
    - name: value is 42
      command: {cmd: "echo {{ env.CHECKRUN_TEST_V }}"}
      metric: value
      warn: 40
      crit: 50
"""
HOUR = 3600.0
DAY = 86400.0


def _rows(state: Path | str, sql: str, *args) -> list[tuple]:
    """The rows of a query on a state database, a file (read as it is) or a URL."""
    if isinstance(state, str) and state.startswith("postgresql://"):
        db = open_state(state)
        try:
            return [tuple(row) for row in db.connection.execute(sql, args).fetchall()]
        finally:
            db.close()
    connection = sqlite3.connect(state)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def _run(tmp_path: Path, value: str, *extra: str, state: Path | str | None = None):
    playbook = tmp_path / "p.yml"
    playbook.write_text(PLAYBOOK)
    env = {"CHECKRUN_TEST_V": value}
    return run_checkrun(playbook, "--state", state or tmp_path / "s.db", *extra, env=env)


def _rounds(state: Path) -> int:
    """Rounds recorded so far (0 before watch has made and migrated the database)."""
    if not state.exists():
        return 0
    try:
        return len(_rows(state, "SELECT DISTINCT at FROM samples"))
    except sqlite3.OperationalError:
        return 0


def test_each_run_records_every_measurement_with_its_status_at_one_time(tmp_path, state_target):
    state = state_target
    assert _run(tmp_path, "42", state=state).returncode == 0  # WARNING, fail-on critical
    assert _run(tmp_path, "55", state=state).returncode == 2
    rows = _rows(
        state,
        "SELECT s.metric, x.at, x.value, x.status FROM samples x JOIN series s ON s.id = x.series "
        "WHERE s.host = 'localhost' AND s.play = 'thresholds' AND s.check_name = 'value is 42' "
        "ORDER BY x.at, s.metric",
    )
    values = [(metric, value, status) for metric, _, value, status in rows if metric == "value"]
    assert values == [("value", 42.0, "WARNING"), ("value", 55.0, "CRITICAL")]
    # Every measurement of the check (value, exit code ...), each run's at one time.
    metrics = {metric for metric, *_ in rows}
    assert {"value", "exit_code"} <= metrics
    times = sorted({at for _, at, _, _ in rows})
    assert len(times) == 2
    assert all(sum(1 for r in rows if r[1] == at) == len(metrics) for at in times)
    # --no-state keeps nothing.
    env = {"CHECKRUN_STATE": str(state), "CHECKRUN_TEST_V": "1"}
    assert run_checkrun(tmp_path / "p.yml", "--no-state", env=env).returncode == 0
    assert len(_rows(state, "SELECT * FROM samples")) == len(rows)


def test_history_command_table_and_json(tmp_path):
    _run(tmp_path, "42")
    _run(tmp_path, "55")
    args = ("history", tmp_path / "p.yml", "--host", "localhost", "--check", "value is 42")
    state = ("--state", tmp_path / "s.db", "--metric", "value")
    shown = run_checkrun(*args, *state)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "localhost · play thresholds · value is 42 · value"
    spark = lines[1].strip()
    assert spark in {BLOCKS[0] + BLOCKS[-1], PLAIN_LEVELS[0] + PLAIN_LEVELS[-1]}
    rows = [line.split() for line in lines[3:]]
    assert [(row[2], row[3]) for row in rows] == [("42", "WARNING"), ("55", "CRITICAL")]

    as_json = run_checkrun(*args, *state, "--json")
    assert as_json.returncode == 0, as_json.stderr
    [series] = json.loads(as_json.stdout)["series"]
    assert (series["host"], series["play"], series["check"], series["metric"]) == (
        "localhost",
        "thresholds",
        "value is 42",
        "value",
    )
    assert [(s["value"], s["status"]) for s in series["samples"]] == [
        (42.0, "WARNING"),
        (55.0, "CRITICAL"),
    ]
    # Without --metric: every measurement of the check, one block each.
    every = json.loads(run_checkrun(*args, "--state", tmp_path / "s.db", "--json").stdout)
    assert {"value", "exit_code"} <= {s["metric"] for s in every["series"]}


def _plugin_run(tmp_path: Path, value: str, unit: str):
    """A run whose Nagios plugin reports `used` in `unit` (its perfdata UOM)."""
    plugin = tmp_path / "plugin.sh"
    plugin.write_text('#!/bin/sh\necho "OK | used=$1$2"\n')
    plugin.chmod(0o755)
    playbook = tmp_path / "units.yml"
    playbook.write_text(
        "- name: disk\n  hosts: localhost\n  checks:\n"
        f'    - {{name: data, nagios: {{plugin: "{plugin}", '
        'args: ["{{ env.CHECKRUN_TEST_V }}", "{{ env.CHECKRUN_TEST_U }}"]}, metric: used}\n'
    )
    env = {"CHECKRUN_TEST_V": value, "CHECKRUN_TEST_U": unit}
    done = run_checkrun(playbook, "--state", tmp_path / "s.db", env=env)
    assert done.returncode == 0, done.stderr


def _history(tmp_path: Path, *extra: str):
    args = ("history", "--host", "localhost", "--check", "data", "--metric", "used")
    shown = run_checkrun(*args, "--state", tmp_path / "s.db", *extra)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def test_history_shows_values_in_their_unit_and_json_the_raw_number_with_it(tmp_path):
    _plugin_run(tmp_path, "24806000000", "B")
    _plugin_run(tmp_path, "1536", "B")
    rows = [line.split()[2:] for line in _history(tmp_path).splitlines()[3:]]
    assert rows == [["23.1", "GiB", "OK"], ["1.50", "KiB", "OK"]]
    [series] = json.loads(_history(tmp_path, "--json"))["series"]
    assert series["unit"] == "B"
    assert [s["value"] for s in series["samples"]] == [24806000000.0, 1536.0]


def test_a_series_unit_follows_the_newest_run(tmp_path):
    """The unit is the series' newest: a plugin that now reports percent is shown in it."""
    _plugin_run(tmp_path, "2048", "B")
    assert json.loads(_history(tmp_path, "--json"))["series"][0]["unit"] == "B"
    _plugin_run(tmp_path, "12.5", "%")
    assert json.loads(_history(tmp_path, "--json"))["series"][0]["unit"] == "%"
    assert "12.5%" in _history(tmp_path)
    assert _rows(tmp_path / "s.db", "SELECT unit FROM series WHERE metric = 'used'") == [("%",)]


def test_hourly_rows_show_min_avg_max_in_the_unit(state_target):
    start = 1_800_000_000.0 // HOUR * HOUR
    clock = Clock(start)
    db = open_state(state_target)
    recorder = RoundRecorder(db, _config(), clock=clock)
    for offset, value in ((0, 0.25), (600, 1.5)):
        clock.now = start + offset
        recorder.record(_round(("web", "latency", value, Status.OK), unit="s"))
    clock.now = start + 9 * DAY
    recorder.record(_round(("web", "latency", 2.0, Status.OK), unit="s"))
    [key] = HistoryStore(db.connection).series()
    assert key.unit == "s"
    lines = table(key, HistoryStore(db.connection).samples(key, start))
    db.close()
    assert "min 250ms avg 875ms max 1.5s count 2" in lines[3]
    assert lines[4].split()[2] == "2s"


def test_a_long_window_is_shown_one_row_per_hour_and_json_keeps_every_sample(state_target):
    """More samples than TABLE_SAMPLES: the table has a row per hour (as the upkeep folds
    them), the sparkline a character per row; --json still gives each sample."""
    rounds = TABLE_SAMPLES + 60
    step = 15  # 300 samples over more than an hour: two or three hours, whatever the time
    start = time.time() - rounds * step  # the newest sample is now
    clock = Clock(start)
    db = open_state(state_target)
    recorder = RoundRecorder(db, _config(), clock=clock)
    by_hour: dict[float, list[int]] = {}
    for number in range(rounds):
        clock.now = start + number * step
        by_hour.setdefault(clock.now // HOUR * HOUR, []).append(number)
        status = Status.WARNING if number == rounds - 1 else Status.OK
        recorder.record(_round(("web", "load", float(number), status), unit="%"))
    db.close()
    args = ("history", "--host", "web", "--check", "load", "--state", state_target)
    shown = run_checkrun(*args, "--since", "3h")
    assert len(by_hour) >= 2
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    spark, rows = lines[1].strip(), lines[3:]
    assert len(rows) == len(by_hour) and len(spark) == len(rows), lines  # a character a row
    for row, numbers in zip(rows, by_hour.values()):
        low, high = numbers[0], numbers[-1]
        average = format_value(sum(numbers) / len(numbers), "%")
        assert f"min {low}.0% avg {average} max {high}.0% count {len(numbers)}" in row, row
    assert rows[-1].endswith("WARNING") and rows[0].endswith("OK")  # each hour's worst status
    every = json.loads(run_checkrun(*args, "--since", "3h", "--json").stdout)
    assert [s["value"] for s in every["series"][0]["samples"]] == [float(n) for n in range(rounds)]
    # A window with fewer samples than that: each is a row.
    recent = run_checkrun(*args, "--since", "10m").stdout.splitlines()[3:]
    assert 30 <= len(recent) <= 60 and recent[-1].split()[2:] == [f"{rounds - 1}.0%", "WARNING"]


def test_a_sparkline_of_more_values_than_its_width_averages_them():
    assert sparkline([float(v) for v in range(1000)]) == "".join(
        BLOCKS[round(column / (SPARK_WIDTH - 1) * 7)] for column in range(SPARK_WIDTH)
    )
    assert sparkline([1.0, None, 2.0], width=2) == BLOCKS[0] + BLOCKS[-1]


def test_recording_a_round_reads_each_series_once_and_writes_no_unit_it_already_has(tmp_path):
    """Keeping units costs a round no statement: one read per series, one insert for all."""
    clock = Clock(1_800_000_000.0)
    db = open_state(str(tmp_path / "s.db"))
    recorder = RoundRecorder(db, _config(), clock=clock)
    checks = [(host, "load", 1.0, Status.OK) for host in ("web", "db", "cache")]
    recorder.record(_round(*checks, unit="%"))
    statements: list[str] = []
    db.connection.set_trace_callback(statements.append)
    clock.now += 10
    recorder.record(_round(*checks, unit="%"))
    db.connection.set_trace_callback(None)
    on_series = [s for s in statements if "series" in s and "samples" not in s]
    assert len(on_series) == 3 and all(s.startswith("SELECT") for s in on_series), statements
    assert not any(s.startswith("UPDATE") for s in statements)
    # A unit that changed is written once, on the series that changed.
    statements.clear()
    db.connection.set_trace_callback(statements.append)
    clock.now += 10
    recorder.record(_round(*checks[:2], unit="%"))
    recorder.record(_round(checks[2], unit="B"))
    db.connection.set_trace_callback(None)
    assert len([s for s in statements if s.startswith("UPDATE series")]) == 1
    units = {k.check.host: k.unit for k in HistoryStore(db.connection).series()}
    db.close()
    assert units == {"web": "%", "db": "%", "cache": "B"}


@pytest.mark.parametrize(
    ("option", "wrong", "hint"),
    [
        ("--check", "value is 24", "did you mean 'value is 42'?"),
        ("--host", "localhots", "did you mean 'localhost'?"),
        ("--metric", "valeu", "did you mean 'value'?"),
    ],
)
def test_history_of_something_never_recorded_is_bad_input(tmp_path, option, wrong, hint):
    _run(tmp_path, "42")
    query = {"--host": "localhost", "--check": "value is 42", "--metric": "value"}
    query[option] = wrong
    args = [a for pair in query.items() for a in pair]
    shown = run_checkrun("history", *args, "--state", tmp_path / "s.db")
    assert shown.returncode == 5
    assert hint in shown.stderr
    assert "Traceback" not in shown.stderr
    assert shown.stdout == ""


def test_history_without_a_state_database_is_bad_input_and_creates_none(tmp_path):
    missing = tmp_path / "none.db"
    shown = run_checkrun("history", "--host", "h", "--check", "c", "--state", missing)
    assert shown.returncode == 5
    assert f"no state database at {missing}" in shown.stderr
    assert not missing.exists()


def test_untrusted_names_are_printed_escaped(tmp_path):
    db = open_state(str(tmp_path / "s.db"))
    recorder = RoundRecorder(db, _config(), clock=lambda: 1000.0)
    recorder.record(_round(("web\x1b]0;owned\x07", "c\u202eheck", 1.0, Status.OK)))
    db.close()
    shown = run_checkrun(
        "history", "--host", "web\x1b]0;owned\x07", "--check", "c\u202eheck",
        "--state", tmp_path / "s.db",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\u202e" not in shown.stdout
    assert "web\\x1b]0;owned\\x07" in shown.stdout and "c\\u202eheck" in shown.stdout


def test_a_secret_in_a_check_name_never_lands_in_history(tmp_path):
    secret = "tok-5d0e7acb19f2"
    playbook = tmp_path / "p.yml"
    playbook.write_text(PLAYBOOK.replace("value is 42", "probe {{ env.CHECKRUN_TEST_SECRET }}"))
    state = tmp_path / "s.db"
    env = {"CHECKRUN_TEST_SECRET": secret, "CHECKRUN_TEST_V": "1"}
    assert run_checkrun(playbook, "--state", state, env=env).returncode == 0
    names = _rows(state, "SELECT check_name FROM series")
    assert {name for (name,) in names} == {"probe ***"}
    for path in tmp_path.glob("s.db*"):
        assert secret.encode() not in path.read_bytes()


def test_each_watch_round_is_written_in_one_transaction(tmp_path, monkeypatch):
    playbook = tmp_path / "p.yml"
    playbook.write_text(PLAYBOOK.replace("metric: value", "metric: value\n      interval: 1s"))
    state = tmp_path / "s.db"
    monkeypatch.setenv("CHECKRUN_TEST_V", "7")
    with WatchProcess(playbook, "--state", state) as watch:
        wait_for(lambda: _rounds(state) >= 3, "three recorded rounds")
        watch.stop()
    rows = _rows(state, "SELECT series, at, value, status FROM samples")
    series = {s for s, *_ in rows}
    by_round: dict[float, set[int]] = {}
    for s, at, _, _ in rows:
        by_round.setdefault(at, set()).add(s)
    assert all(seen == series for seen in by_round.values())  # a round is all or nothing
    values = _rows(
        state,
        "SELECT x.value, x.status FROM samples x JOIN series s ON s.id = x.series "
        "WHERE s.metric = 'value'",
    )
    assert set(values) == {(7.0, "OK")}


# -- retention, with a clock the test moves ---------------------------------------------------


def _config() -> LoadedConfig:
    return LoadedConfig(plan=Plan(playbook="p.yml", hosts=[]), receivers=None, masker=Masker([]))


def _round(*checks: tuple[str, str, float | None, Status], unit: str = "") -> RunResult:
    hosts: dict[str, HostResult] = {}
    for host, name, value, status in checks:
        result = CheckResult(
            host, "play", name, "command", status, metric="v", value=value, unit=unit
        )
        if value is not None:
            result.measurements = {"v": value}
            result.units = {"v": unit} if unit else {}
        hosts.setdefault(host, HostResult(host)).checks.append(result)
    return RunResult(playbook="p.yml", started_at=0.0, hosts=list(hosts.values()))


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_raw_samples_fold_into_hourly_min_avg_max_count_and_are_pruned(state_target):
    start = 1_800_000_000.0 // HOUR * HOUR  # the start of an hour
    clock = Clock(start)
    db = open_state(state_target)
    recorder = RoundRecorder(db, _config(), clock=clock)
    hour_one = [(0, 1.0, Status.OK), (600, 2.0, Status.OK), (1200, 3.0, Status.WARNING)]
    for offset, value, status in [*hour_one, (3000, 6.0, Status.OK), (HOUR + 60, 10.0, Status.OK)]:
        clock.now = start + offset
        recorder.record(_round(("web", "load", value, status)))
    key = SeriesKey(CheckKey("web", "play", "load"), "v")
    store = HistoryStore(db.connection)
    assert [s.value for s in store.samples(key, start)] == [1.0, 2.0, 3.0, 6.0, 10.0]

    # Eight days and two hours on: both hours are older than the raw window.
    clock.now = start + 8 * DAY + 2 * HOUR
    recorder.record(_round(("web", "load", 4.0, Status.OK)))
    samples = store.samples(key, start)
    first, second, raw = samples
    assert (first.at, first.minimum, first.value, first.maximum, first.count) == (
        start,
        1.0,
        3.0,
        6.0,
        4,
    )
    assert first.status == "WARNING"  # the hour's worst
    assert (second.at, second.minimum, second.value, second.maximum, second.count) == (
        start + HOUR,
        10.0,
        10.0,
        10.0,
        1,
    )
    assert (raw.value, raw.count) == (4.0, 0)
    assert len(_rows(state_target, "SELECT * FROM samples")) == 1

    # At most once an hour: a sample that falls out of the raw window meanwhile waits.
    upkeep_at = _rows(state_target, "SELECT ran_at FROM history_upkeep")
    clock.now += 30 * 60
    recorder.record(_round(("web", "load", 5.0, Status.OK)))
    assert _rows(state_target, "SELECT ran_at FROM history_upkeep") == upkeep_at

    # Past the hourly window, the hourly rows go; a series with nothing left goes too.
    clock.now = start + 100 * DAY
    recorder.record(_round(("db", "load", 1.0, Status.OK)))
    assert store.samples(key, 0.0) == []
    assert [s.check.host for s in store.series()] == ["db"]
    db.close()


def test_retention_is_configurable_and_a_bad_value_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKRUN_HISTORY_RAW", "2h")
    monkeypatch.setenv("CHECKRUN_HISTORY_HOURLY", "1d")
    assert Retention.from_environment() == Retention(raw=2 * HOUR, hourly=DAY)
    shown = _run(tmp_path, "1")
    assert shown.returncode == 0
    env_bad = {"CHECKRUN_HISTORY_RAW": "eight days", "CHECKRUN_TEST_V": "1"}
    playbook = tmp_path / "p.yml"
    bad = run_checkrun(playbook, "--state", tmp_path / "s.db", env=env_bad)
    assert bad.returncode == 5
    assert "$CHECKRUN_HISTORY_RAW" in bad.stderr and "Traceback" not in bad.stderr


def test_history_reads_and_upkeep_use_primary_key_ranges(tmp_path):
    """No statement of a round, of the upkeep or of a read scans the samples tables."""
    clock = Clock(1_800_000_000.0)
    db = open_state(str(tmp_path / "s.db"))
    recorder = RoundRecorder(db, _config(), clock=clock)
    recorder.record(_round(("web", "load", 1.0, Status.OK), ("db", "load", 2.0, Status.OK)))
    statements: list[str] = []
    db.connection.set_trace_callback(statements.append)
    clock.now += 9 * DAY
    recorder.record(_round(("web", "load", 3.0, Status.OK)))
    key = SeriesKey(CheckKey("web", "play", "load"), "v")
    HistoryStore(db.connection).samples(key, 0.0)
    HistoryStore(db.connection).samples(key, 0.0, hours_beyond=0)  # as hours
    HistoryStore(db.connection).samples(key, 1_800_000_000.0 + 1800, hours_beyond=0)  # cut hour
    HistoryStore(db.connection).buckets([key], 0.0, clock.now + 1, 48)
    db.connection.set_trace_callback(None)
    touching = [s for s in statements if "samples" in s and not s.startswith("EXPLAIN")]
    assert any("samples_hourly" in s and "INSERT" in s for s in touching)  # the rollup
    assert any(s.startswith("DELETE FROM samples ") for s in touching)  # the upkeep ran
    for statement in touching:
        plan = db.connection.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
        scans = [row[3] for row in plan if row[3].startswith("SCAN") and "series" not in row[3]]
        scans = [s for s in scans if s not in ("SCAN s", "SCAN CONSTANT ROW", "SCAN slots")]
        # a subquery's own rows (named as PostgreSQL needs them named: AS kept)
        scans = [s for s in scans if not s.startswith(("SCAN (subquery", "SCAN kept"))]
        assert not scans, (statement, plan)
    db.close()


def test_the_log_checks_former_history_table_moves_into_the_samples(state_target):
    """A database from before: its log counts become samples (status '' : not recorded)."""
    from checkrunner.state.db import MIGRATIONS

    rows = [("web", "logs", "errors", "errors", at, at * 2) for at in (1.0, 2.0)]
    insert = (
        "INSERT INTO history (host, play, check_name, metric, at, value) VALUES (?, ?, ?, ?, ?, ?)"
    )
    if state_target.startswith("postgresql://"):
        from checkrunner.state.postgres import open_postgres

        old = open_postgres(state_target, upto=7)
        old.connection.executemany(insert, rows)
        old.close()
    else:
        connection = sqlite3.connect(state_target)
        for migration in MIGRATIONS[:7]:
            connection.executescript(migration)
        connection.execute("PRAGMA user_version = 7")
        connection.executemany(insert, rows)
        connection.commit()
        connection.close()
    db = open_state(state_target)
    key = SeriesKey(CheckKey("web", "logs", "errors"), "errors")
    samples = HistoryStore(db.connection).samples(key, 0.0)
    assert [(s.at, s.value, s.status) for s in samples] == [(1.0, 2.0, ""), (2.0, 4.0, "")]
    with pytest.raises(STATE_ERRORS):  # the table is gone
        db.connection.execute("SELECT COUNT(*) FROM history").fetchone()
    db.close()


# -- the hourly rollup: kept at write time, read for whole hours --------------------------------


def _fold(samples: list[tuple[float, float | None, str]]) -> tuple:
    """What an hour's row must hold for these raw samples (at, value, status)."""
    values = [value for _, value, _ in samples if value is not None]
    learned = [value for _, value, status in samples if value is not None and status in ("OK", "")]
    ranked = {status.value: status.severity for status in Status}
    return (
        min(values, default=None),
        sum(values) / len(values) if values else None,
        max(values, default=None),
        len(samples),
        max((status for _, _, status in samples), key=lambda s: ranked.get(s, -1)),
        sum(v * v for v in values) if values else None,
        len(learned),
        sum(learned),
        sum(v * v for v in learned),
    )


def _hourly(connection: sqlite3.Connection) -> dict[tuple[int, float], tuple]:
    return {
        (series, hour): rest
        for series, hour, *rest in connection.execute(
            "SELECT series, hour, min, avg, max, count, worst, sumsq, ok_count, ok_sum, ok_sumsq "
            "FROM samples_hourly"
        )
    }


def _folded_raw(connection: sqlite3.Connection) -> dict[tuple[int, float], tuple]:
    by_hour: dict[tuple[int, float], list] = {}
    for series, at, value, status in connection.execute(
        "SELECT series, at, value, status FROM samples ORDER BY series, at"
    ):
        by_hour.setdefault((series, at // HOUR * HOUR), []).append((at, value, status))
    return {hour: _fold(samples) for hour, samples in by_hour.items()}


def _assert_same_rows(found: dict, expected: dict) -> None:
    assert found.keys() == expected.keys()
    for hour, row in expected.items():
        for got, want in zip(found[hour], row):
            assert got == (pytest.approx(want, rel=1e-12) if isinstance(want, float) else want)


def test_every_hour_including_the_current_one_is_a_fold_of_its_raw_samples(state_target):
    """record keeps each hour's row up to date: min/avg/max/count/worst/Σv² and the OK-only
    sums equal a fold of the raw samples, the current (partial) hour included; a second
    sample of a series at the same instant is ignored in both tables."""
    start = 1_800_000_000.0 // HOUR * HOUR
    clock = Clock(start)
    db = open_state(state_target)
    recorder = RoundRecorder(db, _config(), clock=clock)
    statuses = [Status.OK, Status.OK, Status.WARNING, Status.OK, Status.CRITICAL, Status.OK]
    for number in range(3 * 60 + 25):  # every minute: three hours and a current partial one
        clock.now = start + number * 60
        status = statuses[number % len(statuses)]
        load = None if number % 50 == 7 else float(number % 17) * 1.5  # some measured nothing
        recorder.record(
            _round(("web", "load", load, status), ("db", "load", number / 7, Status.OK))
        )
    recorder.record(_round(("web", "load", 999.0, Status.UNKNOWN)))  # the same instant again
    raw = _folded_raw(db.connection)
    assert len({hour for _, hour in raw}) == 4  # the current hour has 25 samples so far
    _assert_same_rows(_hourly(db.connection), raw)
    assert 999.0 not in {value for (value,) in db.connection.execute("SELECT value FROM samples")}
    db.close()


def _previous_schema_database(target: str, raw: list[tuple], hourly: list[tuple]) -> None:
    """A database as the checkrun before the rollup left it: raw samples inside the raw
    window and no hourly row for their hours; hourly rows (as its upkeep folded them) before."""
    from checkrunner.state.db import MIGRATIONS
    from checkrunner.state.history import FOLD_RAW_INTO_HOURS_SQL

    # The schema just before the rollup's migration (later migrations are appended after it).
    rollup = next(n for n, m in enumerate(MIGRATIONS) if FOLD_RAW_INTO_HOURS_SQL in m)
    if target.startswith("postgresql://"):
        from checkrunner.state.postgres import open_postgres

        db = open_postgres(target, upto=rollup)
        connection = db.connection
    else:
        db = None
        connection = sqlite3.connect(target)
        for migration in MIGRATIONS[:rollup]:
            connection.executescript(migration)
        connection.execute(f"PRAGMA user_version = {rollup}")
    connection.execute(
        "INSERT INTO series (id, host, play, check_name, metric, unit) "
        "VALUES (1, 'web', 'play', 'load', 'v', '%')"
    )
    connection.executemany("INSERT INTO samples VALUES (1, ?, ?, ?)", raw)
    connection.executemany(
        "INSERT INTO samples_hourly (series, hour, min, avg, max, count, worst, sumsq) "
        "VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
        hourly,
    )
    if db is not None:  # PostgreSQL: each statement committed on its own
        db.close()
        return
    connection.commit()
    connection.close()


def test_a_database_from_before_the_rollup_answers_history_and_baselines_the_same(state_target):
    """The migration folds the kept raw samples into hourly rows: `checkrun history` (as
    hours and as every sample) and the baselines answer as the checkrun before did (the
    hours folded then: left out of a baseline whole if any of their samples failed)."""
    from checkrunner.state.history import MAD_SCALE, Window, median_and_mad

    start = 1_800_000_000.0 // HOUR * HOUR
    old_hours = [  # (hour, min, avg, max, count, worst, sumsq), folded by the old upkeep
        (start, 1.0, 2.0, 3.0, 3, "OK", 14.0),
        (start + HOUR, 5.0, 6.0, 7.0, 2, "WARNING", 74.0),
    ]
    statuses = ("OK", "OK", "OK", "WARNING", "OK", "CRITICAL", "OK")
    raw = [  # three hours of raw samples every 30 s, some failing
        (start + 2 * HOUR + n * 30.0, float(n % 13), statuses[n % 7]) for n in range(360)
    ]
    path = state_target
    _previous_schema_database(path, raw, old_hours)
    db = open_state(path)
    store = HistoryStore(db.connection)
    [key] = store.series()
    since = start + 30 * 60  # cuts the first old hour (shown whole, as before) ...
    as_hours = store.samples(key, since, hours_beyond=TABLE_SAMPLES)
    expected = [Sample(h, avg, worst, low, high, n) for h, low, avg, high, n, worst, _ in old_hours]
    for hour in (start + 2 * HOUR, start + 3 * HOUR, start + 4 * HOUR):
        low, avg, high, count, worst, *_ = _fold([s for s in raw if hour <= s[0] < hour + HOUR])
        expected.append(Sample(hour, avg, worst, low, high, count))
    assert as_hours == expected
    # ... and a cut hour whose raw samples are kept is folded from `since` on, as before.
    cut = store.samples(key, start + 2 * HOUR + 1800, hours_beyond=TABLE_SAMPLES)
    assert cut[0] == Sample(start + 2 * HOUR, *_sample_fold(raw, start + 2 * HOUR + 1800))
    assert cut[1:] == expected[3:]
    every = store.samples(key, start)
    assert every == expected[:2] + [Sample(at, value, status) for at, value, status in raw]
    shown = run_checkrun(
        "history", "--host", "web", "--check", "load", "--state", path, "--since", "30d", "--json"
    )
    assert shown.returncode == 0, shown.stderr
    samples = json.loads(shown.stdout)["series"][0]["samples"]
    assert [s.get("avg", s.get("value")) for s in samples] == [row[2] for row in old_hours] + [
        r[1] for r in raw
    ]

    # Baselines: every OK raw sample, and the old hours that were all OK, weighted.
    learned = [value for _, value, status in raw if status == "OK"]
    pairs = [(2.0, 3)] + [(value, 1) for value in learned]
    count = 3 + len(learned)
    mean = (2.0 * 3 + sum(learned)) / count
    squares = 14.0 + sum(v * v for v in learned)
    window = ((start, start + 5 * HOUR),)
    stats = store.baseline_stats(1, Window(window))
    assert stats == pytest.approx((count, mean, math.sqrt(squares / count - mean * mean)))
    median, mad = median_and_mad(pairs, count)
    assert store.baseline_stats(1, Window(window, robust=True)) == pytest.approx(
        (count, median, MAD_SCALE * mad)
    )
    db.close()


def _sample_fold(raw: list[tuple], since: float) -> tuple:
    """(value, status, min, max, count) of the raw samples from `since` to its hour's end."""
    hour_end = since // HOUR * HOUR + HOUR
    low, avg, high, count, worst, *_ = _fold([s for s in raw if since <= s[0] < hour_end])
    return avg, worst, low, high, count


def test_whole_hours_are_read_from_the_hourly_rows_and_only_the_edges_from_raw(state_target):
    """The readers take whole hours from samples_hourly: raw samples changed behind the
    rollup's back inside whole hours change no answer; changed in a cut first hour or in
    the current hour, they do (those edges are read from the raw samples)."""
    from checkrunner.state.history import Window

    start = 1_800_000_000.0 // HOUR * HOUR
    clock = Clock(start)
    db = open_state(state_target)
    recorder = RoundRecorder(db, _config(), clock=clock)
    for number in range(5 * 360 + 100):  # every 10 s: five hours and a current partial one
        clock.now = start + number * 10
        recorder.record(_round(("web", "load", float(number % 23), Status.OK)))
    store = HistoryStore(db.connection)
    [key] = store.series()
    since, until = start + 1800, clock.now + 1  # cuts the first hour; the current hour
    window = Window(((since, until),))

    def answers() -> tuple:
        return (
            store.buckets([key], since, until, 8)[key],
            store.samples(key, since, hours_beyond=TABLE_SAMPLES),
            store.baseline_stats(1, window),
        )

    before = answers()
    buckets = before[0]
    assert sum(b.count for b in buckets) == 4 * 360 + 180 + 100  # each sample once
    assert len(before[1]) == 6 and before[1][0].count == 180
    # A window shorter than count / 2 hours: finer buckets, each over its raw samples.
    recent = store.buckets([key], clock.now - 1200, until, 48)[key]
    assert len(recent) == 48 and sum(b.count for b in recent) == 121
    inner = "UPDATE samples SET value = value + 1000 WHERE at >= ? AND at < ?"
    db.connection.execute(inner, (start + HOUR, start + 5 * HOUR))
    assert answers() == before
    db.connection.execute(inner, (since, start + HOUR))  # the cut first hour
    changed = answers()
    assert all(new != old for new, old in zip(changed, before))
    # The current hour: the window's end (now + 1) cuts it, so the buckets and the baseline
    # read its raw samples; samples() has no end: its up-to-date hourly row is read whole.
    db.connection.execute(inner, (start + 5 * HOUR, until))
    current = answers()
    assert current[0] != changed[0] and current[2] != changed[2] and current[1] == changed[1]
    db.close()


def test_a_round_of_ints_floats_and_odd_names_is_recorded_whole_twice(state_target):
    """A round's samples are written in one statement per table on PostgreSQL (arrays of
    each column): a check whose value is an int beside others' floats, a value-less one,
    and a host name with a NUL character (PostgreSQL's text holds none) are recorded, and
    found again in the next round, as one row per sample each."""
    start = 1_800_000_000.0 // HOUR * HOUR
    clock = Clock(start)
    db = open_state(state_target)
    recorder = RoundRecorder(db, _config(), clock=clock)

    def round_() -> RunResult:
        run = _round(("web", "load", 2.5, Status.OK), ("web", "none", None, Status.CRITICAL))
        counted = CheckResult("db\x00x", "play", "count", "command", Status.OK, metric="n", value=3)
        run.hosts.append(HostResult("db\x00x", checks=[counted]))
        return run

    for offset in (0, 60):
        clock.now = start + offset
        recorder.record(round_())
    samples = _rows(
        state_target,
        "SELECT s.host, s.check_name, s.metric, x.at, x.value, x.status FROM samples x "
        "JOIN series s ON s.id = x.series ORDER BY s.check_name, x.at",
    )
    db_host = "db\ufffdx" if state_target.startswith("postgresql://") else "db\x00x"
    assert samples == [(db_host, "count", "n", start + at, 3.0, "OK") for at in (0, 60)] + [
        ("web", "load", "v", start + at, 2.5, "OK") for at in (0, 60)
    ] + [("web", "none", "v", start + at, None, "CRITICAL") for at in (0, 60)]
    hours = _rows(state_target, "SELECT count, valued, total FROM samples_hourly ORDER BY series")
    assert sorted(hours) == [(2, 0, None), (2, 2, 5.0), (2, 2, 6.0)]
    db.close()
