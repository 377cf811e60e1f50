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
(dynamic thresholds) are computed here too, in SQL: `baseline_stats`. Reports read a window
of many series at once, each folded into at most a given number of buckets
(`HistoryStore.buckets`, min/avg/max per bucket): what they embed stays bounded however long
the window and however often the checks ran.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import time
from collections.abc import Iterable
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


@dataclass
class Bucket:
    """Samples of one series in one time slot: when (the slot's middle), min/avg/max of those
    with a value (None when none had one), how many, and the worst status among them."""

    at: float
    minimum: float | None
    average: float | None
    maximum: float | None
    count: int
    worst: str

    def fold(self, other: Bucket) -> None:
        """`other` (a neighbour in the same slot) merged into this bucket."""
        total = self.count + other.count
        valued = [b for b in (self, other) if b.average is not None]
        if valued:
            weights = sum(b.count for b in valued) or 1
            self.average = sum(b.average * b.count for b in valued) / weights  # type: ignore[operator]
            self.minimum = min(b.minimum for b in valued)  # type: ignore[type-var]
            self.maximum = max(b.maximum for b in valued)  # type: ignore[type-var]
        self.at = (self.at * self.count + other.at * other.count) / (total or 1)
        self.count = total
        self.worst = _worse(self.worst, other.worst)


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

    def buckets(
        self, keys: Iterable[SeriesKey], since: float, until: float, count: int
    ) -> dict[SeriesKey, list[Bucket]]:
        """Each series' samples in [since, until) in at most `count` buckets, oldest first.

        A series' buckets divide the time from its first sample in the window to `until`,
        so a young series is drawn at full resolution. Per series: one primary-key range of
        its hourly rows (older than the raw retention), one seek for its first raw sample and
        one primary-key range of its raw samples per bucket, aggregated in SQL; series not in
        the database are left out.
        """
        ids = self._series_ids()
        found: dict[SeriesKey, list[Bucket]] = {}
        for key in keys:
            series = ids.get(key)
            if series is None:
                continue
            hourly = self.connection.execute(
                _HOURLY_IN_WINDOW, (series, since // HOUR * HOUR, until)
            )
            hours = hourly.fetchall()
            first_raw = self.connection.execute(_FIRST_RAW, (series, since, until)).fetchone()[0]
            firsts = [at for at in (hours[0][0] if hours else None, first_raw) if at is not None]
            if not firsts:
                continue
            start = max(min(firsts), since)
            width = max((until - start) / count, 1e-9)
            slots = dict(self._raw_slots(series, start, width, count, until))
            for hour, minimum, average, maximum, samples, worst in hours:
                at = max(hour + HOUR / 2, start)
                slot = min(max(int((at - start) // width), 0), count - 1)
                bucket = Bucket(at, minimum, average, maximum, samples, worst)
                if slot in slots:
                    slots[slot].fold(bucket)
                else:
                    slots[slot] = bucket
            found[key] = [slots[slot] for slot in sorted(slots)]
        return found

    def _raw_slots(
        self, series: int, start: float, width: float, count: int, until: float
    ) -> Iterable[tuple[int, Bucket]]:
        for slot, summary in self.connection.execute(
            _RAW_SLOTS, (series, start, width, count, until)
        ):
            total, valued, minimum, average, maximum, worst = summary.split("|", 5)
            if total == "0":
                continue
            values = (
                (float(minimum), float(average), float(maximum)) if valued != "0" else (None,) * 3
            )
            yield slot, Bucket(start + (slot + 0.5) * width, *values, int(total), worst)

    def _series_ids(self) -> dict[SeriesKey, int]:
        return {
            SeriesKey(CheckKey(host, play, name), metric): ident
            for ident, host, play, name, metric in self.connection.execute(
                "SELECT id, host, play, check_name, metric FROM series"
            )
        }

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


def _worse(one: str, other: str) -> str:
    """The worse of two stored statuses ('' when unknown loses to any status)."""
    ranked = {status.value: status.severity for status in Status}
    return max((one, other), key=lambda status: ranked.get(status, -1))


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
_HOURLY_IN_WINDOW = (
    "SELECT hour, min, avg, max, count, worst FROM samples_hourly "
    "WHERE series = ? AND hour >= ? AND hour < ? ORDER BY hour"
)
_FIRST_RAW = "SELECT MIN(at) FROM samples WHERE series = ? AND at >= ? AND at < ?"
# Each slot's samples aggregated over their own primary-key range (a scalar subquery per
# slot: no sort, unlike a GROUP BY on the slot, which costs twice as much on dense series),
# as one text per slot; the last slot ends at `until` exactly.
_RAW_SLOTS = (
    "WITH RECURSIVE slots(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM slots WHERE i + 1 < ?4) "
    "SELECT i, (SELECT printf('%d|%d|%.17g|%.17g|%.17g|%s', COUNT(*), COUNT(value), "
    f"MIN(value), AVG(value), MAX(value), {_WORST_SQL}) FROM samples WHERE series = ?1 "
    "AND at >= ?2 + i * ?3 AND at < CASE WHEN i + 1 = ?4 THEN ?5 ELSE ?2 + (i + 1) * ?3 END) "
    "FROM slots"
)
