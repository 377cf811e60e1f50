"""Dynamic thresholds against series with known answers.

Every sample is a real run: the command module prints the number the test wrote to a file
(and exits with the code it wrote, for an outage), the runner judges it against the
baselines the RoundRecorder prepared, and the recorder writes it into a real state
database at the time of a clock the test moves.
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
import time
from pathlib import Path

import jsonschema
import pytest
from helpers import plan_from_text, run_checkrun, wait_for
from watching import WatchProcess

from checkrunner.masking import Masker
from checkrunner.results import CheckResult, Status
from checkrunner.runner import RunOptions, run_plan
from checkrunner.serve.rounds import LoadedConfig, RoundRecorder
from checkrunner.state.db import open_state

HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
INVENTORY = "all:\n  hosts:\n    localhost: {ansible_connection: local}\n"
SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "json-report.schema.json").read_text())


def _monday(hour: int = 0) -> float:
    """A Monday (4 Jan 2027) at `hour`, local time: seasons are local hours."""
    return time.mktime((2027, 1, 4, hour, 0, 0, 0, 0, -1))


class Series:
    """A playbook of command checks that all print the value in `v` (and exit with `rc`),
    run for real and recorded at the clock's time."""

    def __init__(self, tmp_path: Path, checks: str, start: float, state: str | None = None):
        self.dir = tmp_path
        self.now = start
        command = f"cat {tmp_path}/v; exit $(cat {tmp_path}/rc)"
        playbook = "- name: dyn\n  hosts: all\n  checks:\n" + checks.replace(
            "COMMAND", f"command: {{cmd: {json.dumps(command)}, shell: true}}"
        )
        self.plan = plan_from_text(tmp_path, playbook, INVENTORY)
        self.db = open_state(state or str(tmp_path / "s.db"))
        config = LoadedConfig(self.plan, None, Masker([]))
        self.recorder = RoundRecorder(self.db, config, clock=lambda: self.now)

    def run(self, value: float, at: float | None = None, rc: int = 0) -> dict[str, CheckResult]:
        """One real run at `at` (default: where the clock is); its results by check name."""
        if at is not None:
            self.now = at
        (self.dir / "v").write_text(f"{value}\n")
        (self.dir / "rc").write_text(f"{rc}\n")
        self.recorder.prepare(self.plan.hosts)
        options = RunOptions(
            observe=self.recorder.log_state.observe, baselines=self.recorder.lookup_baseline
        )
        result = run_plan(self.plan, options)
        self.recorder.record(result)
        return {check.name: check for check in result.all_checks()}

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def series_factory(tmp_path, state_target):
    """Series on each backend: the baselines' SQL (sums, medians, the cache) on both."""
    made: list[Series] = []

    def make(checks: str, start: float) -> Series:
        made.append(Series(tmp_path, checks, start, state_target))
        return made[-1]

    yield make
    for series in made:
        series.close()


def _bound(result: CheckResult, level: str = "warn"):
    [bound] = [b for b in result.baselines if b.level == level]
    return bound


def test_hour_of_week_flags_the_spike_and_not_the_weekly_peak(series_factory):
    """Mondays 10-11h run a batch (80); Tuesdays at that hour are quiet (10). Three weeks
    on, the same 80 is normal on a Monday and a spike on a Tuesday; a baseline without
    seasons cannot tell them apart."""
    series = series_factory(
        "    - name: seasonal\n      COMMAND\n"
        "      warn: {baseline: 28d, factor: 1.5, seasonal: hour_of_week, min_samples: 6}\n"
        "    - name: flat\n      COMMAND\n"
        "      warn: {baseline: 28d, factor: 1.5, min_samples: 6}\n",
        _monday(),
    )
    for week in range(3):
        for day, value in ((0, 80), (1, 10)):
            for minute in (0, 20, 40):
                at = _monday(10) + week * WEEK + day * DAY + minute * 60
                results = series.run(value, at)
                assert results["seasonal"].status is Status.OK, results["seasonal"].message

    peak = series.run(80, _monday(10) + 3 * WEEK + 30 * 60)
    bound = _bound(peak["seasonal"])
    assert (bound.samples, bound.center, bound.upper) == (9, 80.0, 120.0)
    assert peak["seasonal"].status is Status.OK
    assert (
        "value=80 ≤ 120 = 1.5 × 28-day mean at this hour of the week 80" in peak["seasonal"].message
    )
    # Without seasons the regular peak itself breaches, week after week: after the first
    # week (warming up) every Monday's 80 was a WARNING, left out of the flat baseline.
    assert peak["flat"].status is Status.WARNING
    assert _bound(peak["flat"]).center == pytest.approx((3 * 80 + 9 * 10) / 12)

    spike = series.run(80, _monday(10) + 3 * WEEK + DAY + 30 * 60)
    bound = _bound(spike["seasonal"])
    assert (bound.samples, bound.center, bound.upper, bound.warming_up) == (9, 10.0, 15.0, False)
    assert spike["seasonal"].status is Status.WARNING
    assert spike["seasonal"].message.startswith(
        "value=80 > 15 = 1.5 × 28-day mean at this hour of the week 10"
    )


def test_a_step_change_is_flagged_at_once_and_direction_below_catches_a_drop(series_factory):
    series = series_factory(
        "    - name: up\n      COMMAND\n      warn: {baseline: 1d, factor: 1.5, min_samples: 20}\n"
        "    - name: down\n      COMMAND\n"
        "      crit: {baseline: 1d, factor: 2, direction: below, min_samples: 20}\n"
        "    - name: both\n      COMMAND\n"
        "      warn: {baseline: 1d, sigma: 3, direction: both, min_samples: 20}\n",
        _monday(),
    )
    values = [48, 50, 52] * 8  # mean 50, σ = √(8/3)
    for index, value in enumerate(values):
        series.run(value, _monday() + index * 1800)
    after = _monday() + len(values) * 1800

    step = series.run(100, after)
    assert step["up"].status is Status.WARNING
    assert step["up"].message.startswith("value=100 > 75 = 1.5 × 1-day mean 50")
    assert step["down"].status is Status.OK  # a rise is no drop
    assert step["both"].status is Status.WARNING
    sigma = math.sqrt(8 / 3)
    bound = _bound(step["both"])
    assert bound.spread == pytest.approx(sigma)
    assert (bound.lower, bound.upper) == (
        pytest.approx(50 - 3 * sigma),
        pytest.approx(50 + 3 * sigma),
    )

    # Two hours on (every baseline computed afresh): `down` learnt the step (100 was OK
    # for it), `up` and `both` did not (it was their WARNING).
    drop = series.run(20, after + 2 * HOUR)
    assert drop["down"].status is Status.CRITICAL
    assert drop["down"].message.startswith("value=20 < 26 = 1-day mean 52 / 2")
    assert _bound(drop["down"], "crit").lower == 26.0
    assert _bound(drop["down"], "crit").upper is None
    assert drop["up"].status is Status.OK
    assert drop["both"].status is Status.WARNING
    assert drop["both"].message.startswith("value=20 < 45.1 = 1-day mean 50 ± 3 × σ 1.63")


def test_an_outage_does_not_move_the_baseline(series_factory):
    """Failing samples (the check CRITICAL: the command exits 1) are left out."""
    series = series_factory(
        "    - name: latency\n      COMMAND\n"
        "      warn: {baseline: 1d, sigma: 3, min_samples: 10}\n",
        _monday(),
    )
    normal = [9, 10, 11] * 5
    at = _monday()
    for value in normal:
        series.run(value, at)
        at += 1200
    for _ in range(6):  # the outage: huge values, every run failing
        assert series.run(500, at, rc=1)["latency"].status is Status.CRITICAL
        at += 1200
    later = series.run(30, at)["latency"]
    bound = _bound(later)
    assert bound.samples == len(normal)
    assert bound.center == pytest.approx(10.0)
    assert bound.spread == pytest.approx(statistics.pstdev(normal))
    assert later.status is Status.WARNING  # had the outage counted, σ would hide this
    assert later.message.startswith("value=30 > 12.45 = 1-day mean 10 + 3 × σ 0.816")


def test_the_robust_form_is_not_dragged_by_a_few_spikes_while_sigma_is(series_factory):
    series = series_factory(
        "    - name: sigma\n      COMMAND\n      warn: {baseline: 1d, sigma: 3}\n"
        "    - name: mad\n      COMMAND\n      warn: {baseline: 1d, mad: 3}\n",
        _monday(),
    )
    history = [1000, 1000, 1000] + [9, 10, 11] * 9  # 30 samples: warming up until the last
    at = _monday()
    for value in history:
        results = series.run(value, at)
        assert results["mad"].status is Status.OK and results["sigma"].status is Status.OK
        at += 600
    results = series.run(20, at)
    mad = _bound(results["mad"])
    assert (mad.samples, mad.center) == (30, 10.0)
    assert mad.spread == pytest.approx(1.4826)  # the median deviation is 1
    assert mad.upper == pytest.approx(10 + 3 * 1.4826)
    assert results["mad"].status is Status.WARNING
    assert results["mad"].message.startswith("value=20 > 14.45 = 1-day median 10 + 3 × MAD 1.48")
    sigma = _bound(results["sigma"])
    assert sigma.center == pytest.approx(statistics.fmean(history))
    assert sigma.upper > 900  # three spikes in thirty drag mean + 3σ far up
    assert results["sigma"].status is Status.OK


def test_warming_up_says_so_and_applies_the_fallback_if_any(series_factory):
    series = series_factory(
        "    - name: bare\n      COMMAND\n      warn: {baseline: 1d, factor: 2, min_samples: 3}\n"
        "    - name: fallback\n      COMMAND\n"
        "      warn: {baseline: 1d, factor: 2, min_samples: 3, fallback: 50}\n",
        _monday(),
    )
    first = series.run(70, _monday())
    assert first["bare"].status is Status.OK
    assert "value=70: warn baseline warming up (0 of 3 samples)" in first["bare"].message
    bound = _bound(first["bare"])
    assert (bound.warming_up, bound.center, bound.upper, bound.samples) == (True, None, None, 0)
    assert first["fallback"].status is Status.WARNING
    assert first["fallback"].message.startswith(
        "value=70 above warn 50 (fallback: baseline warming up (0 of 3 samples))"
    )
    quiet = series.run(10, _monday() + 600)
    # The first 70 broke the fallback: a failing sample, not one the baseline learns from.
    assert "value=10: warn baseline warming up (0 of 3 samples), fallback warn 50 applies" in (
        quiet["fallback"].message
    )
    assert "value=10: warn baseline warming up (1 of 3 samples)" in quiet["bare"].message
    series.run(10, _monday() + 1200)
    series.run(10, _monday() + 1800)
    # Three OK samples (the first run's 70 was OK for `bare`, WARNING for `fallback`).
    # (More than 1d / 100 after the last run: a baseline computed then is not reused.)
    ready = series.run(70, _monday() + 1800 + 900)
    assert _bound(ready["bare"]).samples == 4 and not _bound(ready["bare"]).warming_up
    assert _bound(ready["bare"]).center == pytest.approx(25.0)  # (70 + 10 + 10 + 10) / 4
    assert ready["bare"].status is Status.WARNING  # 70 > 2 × 25
    assert _bound(ready["fallback"]).samples == 3  # its failing 70 was left out
    assert ready["fallback"].message.startswith("value=70 > 20 = 2 × 1-day mean 10")


def test_beyond_the_raw_window_the_hourly_rows_count_weighted(series_factory, monkeypatch):
    """With 2 hours of raw retention, a 12-hour baseline reads mostly hourly rows: the
    mean and σ are still exactly those of every OK sample (the hourly rows keep the count,
    sum and sum of squares of their OK samples): a failing sample is left out, not the
    other samples of its hour."""
    monkeypatch.setenv("CHECKRUN_HISTORY_RAW", "2h")
    series = series_factory(
        "    - name: load\n      COMMAND\n      warn: {baseline: 12h, sigma: 3, min_samples: 5}\n",
        _monday(),
    )
    kept: list[float] = []
    at = _monday()
    for hour in range(10):
        for minute, value in ((0, 10 + hour), (20, 12 + hour), (40, 14 + hour)):
            rc = 1 if (hour == 4 and minute == 20) else 0  # hour 4 has a failing sample
            series.run(value, at + hour * HOUR + minute * 60, rc=rc)
            if not rc:
                kept.append(value)
    connection = series.db.connection
    hourly = connection.execute("SELECT COUNT(*) FROM samples_hourly").fetchone()[0]
    raw_values = connection.execute(
        "SELECT COUNT(*) FROM samples x JOIN series s ON s.id = x.series WHERE s.metric = 'value'"
    ).fetchone()[0]
    assert raw_values < 10 and hourly > 0  # most of the window is hourly rows now

    result = series.run(10, at + 10 * HOUR)["load"]
    bound = _bound(result)
    assert bound.samples == len(kept)
    assert bound.center == pytest.approx(statistics.fmean(kept))
    assert bound.spread == pytest.approx(statistics.pstdev(kept))


def test_the_statistics_are_computed_in_sql_and_cached(series_factory):
    """A round reads the cached baseline instead of recomputing it, until it is due."""
    series = series_factory(
        "    - name: c\n      COMMAND\n      warn: {baseline: 7d, factor: 2, min_samples: 2}\n",
        _monday(),
    )
    for index in range(3):
        series.run(10, _monday() + index * 60)
    assert series.recorder.baselines.computed == 1  # the third: two samples, cached
    series.run(10, _monday() + 240)
    assert series.recorder.baselines.computed == 0  # read from baseline_cache
    series.run(10, _monday() + 180 + HOUR)  # min(1 h, 7d / 100) later: recomputed
    assert series.recorder.baselines.computed == 1
    if series.db.dialect.name != "sqlite":
        return  # the query plans below are SQLite's (EXPLAIN QUERY PLAN)
    statements: list[str] = []
    series.db.connection.set_trace_callback(statements.append)
    series.run(10, _monday() + 180 + 3 * HOUR)
    series.db.connection.set_trace_callback(None)
    reads = [s for s in statements if "FROM samples" in s and "WITH kept" in s]
    assert reads
    for statement in reads:
        plan = series.db.connection.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
        scans = [row[3] for row in plan if row[3].startswith("SCAN") and " x" not in row[3]]
        assert not [s for s in scans if s.startswith(("SCAN samples", "SCAN samples_hourly"))], plan


# -- through the real command line ---------------------------------------------------------


PLAYBOOK = """
- name: dyn
  hosts: localhost
  checks:
    - name: used
      command: {cmd: "cat VALUE"}
      metric: value
      warn: {baseline: 1d, factor: 1.5, min_samples: 3}
"""


def test_checkrun_reports_the_bound_in_its_message_json_and_exit_code(tmp_path):
    playbook = tmp_path / "p.yml"
    playbook.write_text(PLAYBOOK.replace("VALUE", str(tmp_path / "v")))
    state = tmp_path / "s.db"
    for value in ("10", "10", "10"):
        (tmp_path / "v").write_text(value)
        done = run_checkrun(playbook, "--state", state, "--fail-on", "warning")
        assert done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "v").write_text("20")
    report = tmp_path / "r.json"
    done = run_checkrun(playbook, "--state", state, "--fail-on", "warning", "-r", f"json:{report}")
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(report.read_text())
    jsonschema.validate(data, SCHEMA)
    [check] = data["hosts"][0]["checks"]
    assert check["status"] == "WARNING"
    assert check["message"].startswith("value=20 > 15 = 1.5 × 1-day mean 10")
    [bound] = check["baselines"]
    assert bound == {
        "metric": "value",
        "level": "warn",
        "method": "factor",
        "window": DAY,
        "seasonal": None,
        "direction": "above",
        "samples": 3,
        "center": 10.0,
        "spread": None,
        "lower": None,
        "upper": 15.0,
        "warming_up": False,
        "text": "1.5 × 1-day mean 10",
    }
    assert check["thresholds"]["warn"] == "{baseline: 1d, factor: 1.5, min_samples: 3}"
    # Nagios perfdata carries the bound of this run as its warn range (graphs draw the band).
    nagios = run_checkrun(playbook, "--state", state, "-r", "nagios")
    assert "| 'used'=20;15" in nagios.stdout.splitlines(), nagios.stdout

    no_state = run_checkrun(playbook, "--no-state", "-r", f"json:{report}")
    assert no_state.returncode == 0
    [check] = json.loads(report.read_text())["hosts"][0]["checks"]
    assert "warn baseline warming up (no history: --no-state)" in check["message"]
    assert check["baselines"][0]["warming_up"] is True


def test_watch_judges_each_round_against_the_baseline(tmp_path):
    playbook = tmp_path / "p.yml"
    text = PLAYBOOK.replace("VALUE", str(tmp_path / "v"))
    playbook.write_text(text.replace("metric: value", "metric: value\n      interval: 1s"))
    state = tmp_path / "s.db"
    (tmp_path / "v").write_text("10")

    def statuses() -> list[tuple[float, str]]:
        if not state.exists():
            return []
        try:
            connection = sqlite3.connect(state)
            try:
                return connection.execute(
                    "SELECT x.value, x.status FROM samples x JOIN series s ON s.id = x.series "
                    "WHERE s.metric = 'value' ORDER BY x.at"
                ).fetchall()
            finally:
                connection.close()
        except sqlite3.OperationalError:
            return []

    with WatchProcess(playbook, "--state", state) as watch:
        wait_for(lambda: len(statuses()) >= 4, "four rounds at 10")
        (tmp_path / "v").write_text("20")
        wait_for(lambda: any(value == 20 for value, _ in statuses()), "a round at 20")
        watch.stop()
    assert set(statuses()) == {(10.0, "OK"), (20.0, "WARNING")}


@pytest.mark.parametrize(
    "pairs",
    [
        [(1.0, 1), (2.0, 3), (10.0, 1)],
        [(3.0, 2), (1.0, 2)],
        [(5.0, 120), (7.5, 60), (4.0, 1), (40.0, 3), (6.0, 59)],  # hourly rows and raw samples
        [(9.0, 1), (10.0, 1), (11.0, 1), (1000.0, 1)],
    ],
)
def test_the_weighted_median_and_mad_equal_those_of_the_expanded_samples(pairs):
    """An hourly row counts as its average repeated `count` times."""
    from checkrunner.state.history import median_and_mad

    expanded = [value for value, weight in pairs for _ in range(weight)]
    median = statistics.median(expanded)
    mad = statistics.median([abs(value - median) for value in expanded])
    total = sum(weight for _, weight in pairs)
    assert median_and_mad(list(pairs), total) == (pytest.approx(median), pytest.approx(mad))


def test_a_log_patterns_count_takes_a_baseline_too(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("")
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- name: logs\n  hosts: localhost\n  checks:\n    - name: app\n"
        f"      log:\n        path: {log}\n        start: beginning\n        patterns:\n"
        "          - {name: errors, keyword: ERROR, "
        "warn: {baseline: 1d, factor: 3, min_samples: 3}}\n"
    )
    state = tmp_path / "s.db"
    report = tmp_path / "r.json"
    for errors in (2, 2, 2, 9):
        with log.open("a") as out:
            out.write("ERROR x\n" * errors + "fine\n")
        done = run_checkrun(
            playbook, "--state", state, "--fail-on", "warning", "-r", f"json:{report}"
        )
    assert done.returncode == 1, done.stdout + done.stderr
    [check] = json.loads(report.read_text())["hosts"][0]["checks"]
    assert check["message"].startswith("errors=9 > 6 = 3 × 1-day mean 2")
    assert check["baselines"][0]["samples"] == 3


def test_a_season_is_the_same_local_hour_across_a_dst_change(monkeypatch):
    """hour_of_day 10h on the day after Europe's spring change: the earlier days' 10h are
    an hour further apart in UTC across the change, still 10h local."""
    from checkrunner.state.history import season_of, season_ranges

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        now = time.mktime((2027, 3, 29, 10, 30, 0, 0, 0, -1))  # Monday after 28 March
        ranges = season_ranges("hour_of_day", now - 3 * DAY, now)
        assert [time.localtime(start).tm_hour for start, _ in ranges] == [10, 10, 10, 10]
        # now - 3 days (in seconds) is 9:30 local on the 26th, before that day's 10h.
        assert [end - start for start, end in ranges] == [1800.0, HOUR, HOUR, HOUR]
        assert ranges[1][0] - ranges[2][0] == DAY - HOUR  # the short day
        assert {season_of("hour_of_week", start) for start, _ in ranges[:1]} == {1 * 24 + 10}
    finally:
        monkeypatch.undo()
        time.tzset()
