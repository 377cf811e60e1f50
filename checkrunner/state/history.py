"""Measurement history in the state database: every SQL statement it runs is here.

Every measurement of every check on every host (value, status, time) is written by
`HistoryStore.record` inside the transaction of the round that measured it. A series is
one measurement of one check on one host: host, play name and check name (the CheckKey of
alerting and the log offsets, masked as planned) plus the measurement's name. A check that
measured nothing keeps its statuses under the metric ''. A series also keeps its unit (the
newest recorded), a property of the series rather than part of its name.

Retention (settings.HISTORY_RAW, settings.HISTORY_HOURLY): raw samples older than the raw
window are folded into hourly rows (min/avg/max/count, worst status) and deleted; hourly
rows older than the hourly window are deleted. This upkeep runs at most once an hour per
database, in the transaction of the round that finds it due.

Reads are one primary-key range per series: (series, at) and (series, hour); a read that
folds raw samples into hours (`checkrun history`'s table) reads one range per hour. Baselines
(dynamic thresholds) are computed here too, in SQL: `baseline_stats`.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import time
from dataclasses import dataclass, field

from checkrunner import settings
from checkrunner.errors import ConfigError
from checkrunner.evaluate.history import MAD_SCALE, median_and_mad
from checkrunner.results import CheckResult, RunResult, Status
from checkrunner.state.keys import CheckKey
from checkrunner.units import parse_duration

HOUR = 3600.0
NO_METRIC = ""  # the series of a check's statuses when it measured nothing


@dataclass(frozen=True)
class Retention:
    raw: float = settings.HISTORY_RAW.default
    hourly: float = settings.HISTORY_HOURLY.default

    @classmethod
    def from_environment(cls) -> Retention:
        """The settings' defaults, or $CHECKRUN_HISTORY_RAW / $CHECKRUN_HISTORY_HOURLY."""
        return cls(
            raw=_duration_setting(settings.HISTORY_RAW),
            hourly=_duration_setting(settings.HISTORY_HOURLY),
        )


def _duration_setting(setting: settings.Setting[float]) -> float:
    text = setting.from_environment()
    if text is None:
        return setting.default
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"${setting.env}: {exc}", hint="write it like 8d, 36h or 90d") from None
    if seconds <= 0:
        raise ConfigError(f"${setting.env}: {text!r} is not positive", hint="write it like 8d")
    return seconds


@dataclass(frozen=True)
class Sample:
    """A raw sample, or an hour's summary (`count` > 0: min/avg/max are the hour's)."""

    at: float
    value: float | None
    status: str
    minimum: float | None = None
    maximum: float | None = None
    count: int = 0  # 0: a raw sample

    @property
    def hourly(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class SeriesKey:
    check: CheckKey
    metric: str
    # What the values are in ('%', 'B', 's' ...; '' unknown): not part of the series' name.
    unit: str = field(default="", compare=False)


class HistoryStore:
    """History read and written on `connection`; writes inside the caller's transaction."""

    def __init__(self, connection: sqlite3.Connection, retention: Retention | None = None):
        self.connection = connection
        self.retention = retention or Retention()

    # -- writing ------------------------------------------------------------------------------

    def record(self, run: RunResult, now: float) -> int:
        """Every measurement of every check of `run` at `now` (the run's results are masked
        already); then the upkeep if it is due. Returns the samples written."""
        rows = []
        for check in run.all_checks():
            if check.status is Status.SKIPPED:
                continue
            key = CheckKey(check.host, check.play, check.name)
            measured = {name: float(value) for name, value in check.measurements.items()}
            if not measured:
                measured = {check.metric or NO_METRIC: check.value}
            for metric, value in measured.items():
                series = self._series_id(key, metric, _unit_of(check, metric))
                rows.append((series, now, value, check.status.value))
        self.connection.executemany(
            "INSERT OR REPLACE INTO samples (series, at, value, status) VALUES (?, ?, ?, ?)", rows
        )
        self.upkeep_if_due(now)
        return len(rows)

    def _series_id(self, key: CheckKey, metric: str, unit: str) -> int:
        """The series' id, made if new; its unit updated only when it changed (a module
        upgrade), so a round costs one read per series, as before units were kept."""
        ident = (key.host, key.play, key.check, metric)
        row = self.connection.execute(
            "SELECT id, unit FROM series "
            "WHERE host = ? AND play = ? AND check_name = ? AND metric = ?",
            ident,
        ).fetchone()
        if row is None:
            return self.connection.execute(
                "INSERT INTO series (host, play, check_name, metric, unit) VALUES (?, ?, ?, ?, ?)",
                (*ident, unit),
            ).lastrowid
        series, stored = row
        if stored != unit:
            self.connection.execute("UPDATE series SET unit = ? WHERE id = ?", (unit, series))
        return series

    # -- retention ----------------------------------------------------------------------------

    def upkeep_if_due(self, now: float) -> bool:
        row = self.connection.execute("SELECT ran_at FROM history_upkeep").fetchone()
        if row and now - row[0] < settings.HISTORY_MAINTENANCE_EVERY:
            return False
        self.upkeep(now)
        return True

    def upkeep(self, now: float) -> None:
        """Fold the raw samples older than the raw window into whole hours, prune both."""
        # Only whole hours are folded, so an hour is summarised once, from all its samples.
        cutoff = (now - self.retention.raw) // HOUR * HOUR
        # Each statement walks the series (CROSS JOIN keeps `series` the outer loop) and
        # reads a primary-key range of each, the old end only: never a whole-table scan.
        self.connection.execute(
            "INSERT OR REPLACE INTO samples_hourly "
            "(series, hour, min, avg, max, count, worst, sumsq) "
            f"SELECT series, hour, {_FOLD_SQL}, SUM(value * value) FROM (SELECT x.series, "
            f"{_HOUR_SQL} AS hour, x.value, x.status FROM series AS s CROSS JOIN samples AS x "
            "ON x.series = s.id AND x.at < ?) GROUP BY series, hour",
            (cutoff,),
        )
        self.connection.execute(
            "DELETE FROM samples WHERE series IN (SELECT id FROM series) AND at < ?", (cutoff,)
        )
        self.connection.execute(
            "DELETE FROM samples_hourly WHERE series IN (SELECT id FROM series) AND hour < ?",
            (now - self.retention.hourly,),
        )
        self.connection.execute(
            "DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM samples WHERE series = id) "
            "AND NOT EXISTS (SELECT 1 FROM samples_hourly WHERE series = id)"
        )
        self.connection.execute(
            "DELETE FROM baseline_cache WHERE NOT EXISTS (SELECT 1 FROM series WHERE id = series)"
        )
        self.connection.execute(
            "INSERT OR REPLACE INTO history_upkeep (id, ran_at) VALUES (1, ?)", (now,)
        )

    # -- reading ------------------------------------------------------------------------------

    def series(self) -> list[SeriesKey]:
        return [
            SeriesKey(CheckKey(host, play, name), metric, unit)
            for host, play, name, metric, unit in self.connection.execute(
                "SELECT host, play, check_name, metric, unit FROM series "
                "ORDER BY host, play, check_name, metric"
            )
        ]

    def series_id(self, key: SeriesKey) -> int | None:
        row = self.connection.execute(
            "SELECT id FROM series WHERE host = ? AND play = ? AND check_name = ? AND metric = ?",
            (key.check.host, key.check.play, key.check.check, key.metric),
        ).fetchone()
        return row[0] if row else None

    def samples(
        self, key: SeriesKey, since: float, hours_beyond: int | None = None
    ) -> list[Sample]:
        """The series from `since` on, oldest first: its hourly rows, then its raw samples.
        With `hours_beyond`, raw samples more numerous than that come folded into hours as
        the upkeep folds them (a read whose length grows with hours, not with samples)."""
        series = self.series_id(key)
        if series is None:
            return []
        hourly = [
            Sample(hour, avg, worst, minimum, maximum, count)
            for hour, minimum, avg, maximum, count, worst in self.connection.execute(
                "SELECT hour, min, avg, max, count, worst FROM samples_hourly "
                "WHERE series = ? AND hour >= ? ORDER BY hour",
                (series, since // HOUR * HOUR),
            )
        ]
        if hours_beyond is not None and self._raw_count(series, since) > hours_beyond:
            return hourly + self._raw_hours(series, since)
        raw = [
            Sample(at, value, status)
            for at, value, status in self.connection.execute(
                "SELECT at, value, status FROM samples WHERE series = ? AND at >= ? ORDER BY at",
                (series, since),
            )
        ]
        return hourly + raw

    def _raw_count(self, series: int, since: float) -> int:
        return self.connection.execute(
            "SELECT COUNT(*) FROM samples WHERE series = ? AND at >= ?", (series, since)
        ).fetchone()[0]

    def _raw_hours(self, series: int, since: float) -> list[Sample]:
        """The raw samples from `since` on, one summary per hour (the first may be partial).
        One primary-key range per hour: GROUP BY over the whole window would sort it."""
        first, last = self.connection.execute(
            "SELECT MIN(at), MAX(at) FROM samples WHERE series = ? AND at >= ?", (series, since)
        ).fetchone()
        if first is None:
            return []
        hours = []
        hour = first // HOUR * HOUR
        while hour <= last:
            minimum, avg, maximum, count, worst = self.connection.execute(
                f"SELECT {_FOLD_SQL} FROM samples WHERE series = ? AND at >= ? AND at < ?",
                (series, max(hour, since), hour + HOUR),
            ).fetchone()
            if count:
                hours.append(Sample(hour, avg, worst, minimum, maximum, count))
            hour += HOUR
        return hours

    # -- baselines (dynamic thresholds) ---------------------------------------------------------

    def baseline_stats(self, series: int, window: Window) -> tuple[int, float | None, float | None]:
        """(samples, centre, spread) of the series' samples in `window`: mean and σ, or with
        `window.robust` the median and scaled MAD. Only samples whose check was OK count
        (a failing one is an outage, not the normal the baseline learns); the hourly rows
        beyond the raw retention count as their average weighted by their count, and only
        the hours without a failing sample.

        Each statement reads, per range of the window (one, or with a season one short
        range per earlier week or day), one primary-key range of `samples` and one of
        `samples_hourly`. SQLite sums; for a median the values are read and walked here
        (measured on 60,480 raw samples: 15 ms for mean and σ, about 90 ms for the median
        and MAD; SQLite's window functions took 200 ms for the same)."""
        kept, parameters = _kept_sql(series, window)
        count, total, squares = self.connection.execute(
            f"WITH kept (value, weight, squares) AS ({kept}) "
            "SELECT SUM(weight), SUM(value * weight), SUM(squares) FROM kept",
            parameters,
        ).fetchone()
        if not count:
            return 0, None, None
        if not window.robust:
            mean = total / count
            return int(count), mean, math.sqrt(max(0.0, squares / count - mean * mean))
        # A median needs the values in order: they are read over the same ranges and
        # sorted here (faster than SQLite's ORDER BY or its window functions).
        pairs = self.connection.execute(
            f"WITH kept (value, weight, squares) AS ({kept}) SELECT value, weight FROM kept",
            parameters,
        ).fetchall()
        median, mad = median_and_mad(pairs, count)
        return int(count), median, MAD_SCALE * mad


@dataclass(frozen=True)
class Window:
    """Which samples a baseline is computed from: those in `ranges` ([start, end) each,
    oldest last): the whole window, or with a season each earlier hour of the same hour of
    the week or day (`season_ranges`)."""

    ranges: tuple[tuple[float, float], ...]
    robust: bool = False


# Statuses a baseline learns from: OK, and '' (log counts kept before statuses were).
_LEARNED = "('OK', '')"
_PERIOD_DAYS = {"hour_of_week": 7, "hour_of_day": 1}


def season_of(seasonal: str | None, at: float) -> int:
    """The hour of the week (Sunday 0h = 0) or of the day `at` falls in, local time."""
    if seasonal is None:
        return 0
    local = time.localtime(at)
    if seasonal == "hour_of_day":
        return local.tm_hour
    return (local.tm_wday + 1) % 7 * 24 + local.tm_hour


def season_ranges(
    seasonal: str | None, since: float, now: float
) -> tuple[tuple[float, float], ...]:
    """The time ranges a baseline from `since` to `now` reads: all of it, or the local hour
    `now` is in, on each earlier week (hour_of_week) or day (hour_of_day) back to `since`:
    one short primary-key range each instead of the whole window filtered row by row."""
    if seasonal is None:
        return ((since, now),)
    local = time.localtime(now)
    days = _PERIOD_DAYS[seasonal]
    ranges = []
    for back in itertools.count():
        # mktime normalises the day and keeps the local hour across DST changes.
        start = time.mktime(
            (
                local.tm_year,
                local.tm_mon,
                local.tm_mday - back * days,
                local.tm_hour,
                0,
                0,
                0,
                0,
                -1,
            )
        )
        if start + HOUR <= since:
            break
        ranges.append((max(start, since), min(start + HOUR, now)))
    return tuple(ranges)


def _kept_sql(series: int, window: Window) -> tuple[str, tuple]:
    """SELECT (value, weight, Σ value²) of the samples a baseline learns from: per range,
    the raw samples, then the hourly rows (each weighted by its count)."""
    raw = (
        "SELECT value, 1, value * value FROM samples WHERE series = ? AND at >= ? AND at < ? "
        f"AND value IS NOT NULL AND status IN {_LEARNED}"
    )
    hourly = (
        "SELECT avg, count, COALESCE(sumsq, avg * avg * count) FROM samples_hourly "
        f"WHERE series = ? AND hour >= ? AND hour < ? AND avg IS NOT NULL AND worst IN {_LEARNED}"
    )
    parts = [raw] * len(window.ranges) + [hourly] * len(window.ranges)
    parameters = [(series, start, end) for start, end in window.ranges] * 2
    return " UNION ALL ".join(parts), tuple(x for triple in parameters for x in triple)


def _unit_of(check: CheckResult, metric: str) -> str:
    """The unit of one of `check`'s measurements ('' for a count, a status or unknown)."""
    unit = check.units.get(metric)
    if unit is None and metric == check.metric:
        unit = check.unit
    return unit or ""


def _worst_sql() -> str:
    """SQL for the worst status of a group, by Status.severity."""
    ranked = sorted(Status, key=lambda status: status.severity)
    cases = " ".join(f"WHEN '{s.value}' THEN {s.severity}" for s in ranked)
    names = " ".join(f"WHEN {s.severity} THEN '{s.value}'" for s in ranked)
    return f"CASE MAX(CASE status {cases} END) {names} END"


_WORST_SQL = _worst_sql()
# How raw samples (as `x`) fold into hours: by the upkeep into samples_hourly, and by a read.
_HOUR_SQL = f"CAST(x.at / {HOUR} AS INTEGER) * {HOUR}"
_FOLD_SQL = f"MIN(value), AVG(value), MAX(value), COUNT(*), {_WORST_SQL}"
