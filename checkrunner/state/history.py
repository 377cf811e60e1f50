"""Measurement history in the state database: every SQL statement it runs is here.

Every measurement of every check on every host (value, status, time) is written by
`HistoryStore.record` inside the transaction of the round that measured it. A series is
one measurement of one check on one host: host, play name and check name (the CheckKey of
alerting and the log offsets, masked as planned) plus the measurement's name. A check that
measured nothing keeps its statuses under the metric ''.

Retention (settings.HISTORY_RAW, settings.HISTORY_HOURLY): raw samples older than the raw
window are folded into hourly rows (min/avg/max/count, worst status) and deleted; hourly
rows older than the hourly window are deleted. This upkeep runs at most once an hour per
database, in the transaction of the round that finds it due.

Reads are one primary-key range per series: (series, at) and (series, hour). Reports read a
window of many series at once, each folded into at most a given number of buckets
(`HistoryStore.buckets`, min/avg/max per bucket): what they embed stays bounded however long
the window and however often the checks ran.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from checkrunner import settings
from checkrunner.errors import ConfigError
from checkrunner.results import RunResult, Status
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
                rows.append((self._series_id(key, metric), now, value, check.status.value))
        self.connection.executemany(
            "INSERT OR REPLACE INTO samples (series, at, value, status) VALUES (?, ?, ?, ?)", rows
        )
        self.upkeep_if_due(now)
        return len(rows)

    def _series_id(self, key: CheckKey, metric: str) -> int:
        ident = (key.host, key.play, key.check, metric)
        row = self.connection.execute(
            "SELECT id FROM series WHERE host = ? AND play = ? AND check_name = ? AND metric = ?",
            ident,
        ).fetchone()
        if row:
            return row[0]
        return self.connection.execute(
            "INSERT INTO series (host, play, check_name, metric) VALUES (?, ?, ?, ?)", ident
        ).lastrowid

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
            "INSERT OR REPLACE INTO samples_hourly (series, hour, min, avg, max, count, worst) "
            "SELECT series, hour, MIN(value), AVG(value), MAX(value), COUNT(*), "
            f"{_WORST_SQL} FROM (SELECT x.series, CAST(x.at / {HOUR} AS INTEGER) * {HOUR} "
            "AS hour, x.value, x.status FROM series AS s CROSS JOIN samples AS x "
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
            "INSERT OR REPLACE INTO history_upkeep (id, ran_at) VALUES (1, ?)", (now,)
        )

    # -- reading ------------------------------------------------------------------------------

    def series(self) -> list[SeriesKey]:
        return [
            SeriesKey(CheckKey(host, play, name), metric)
            for host, play, name, metric in self.connection.execute(
                "SELECT host, play, check_name, metric FROM series "
                "ORDER BY host, play, check_name, metric"
            )
        ]

    def samples(self, key: SeriesKey, since: float) -> list[Sample]:
        """The series from `since` on, oldest first: its hourly rows, then its raw samples."""
        row = self.connection.execute(
            "SELECT id FROM series WHERE host = ? AND play = ? AND check_name = ? AND metric = ?",
            (key.check.host, key.check.play, key.check.check, key.metric),
        ).fetchone()
        if row is None:
            return []
        hourly = [
            Sample(hour, avg, worst, minimum, maximum, count)
            for hour, minimum, avg, maximum, count, worst in self.connection.execute(
                "SELECT hour, min, avg, max, count, worst FROM samples_hourly "
                "WHERE series = ? AND hour >= ? ORDER BY hour",
                (row[0], since // HOUR * HOUR),
            )
        ]
        raw = [
            Sample(at, value, status)
            for at, value, status in self.connection.execute(
                "SELECT at, value, status FROM samples WHERE series = ? AND at >= ? ORDER BY at",
                (row[0], since),
            )
        ]
        return hourly + raw

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


def _worse(one: str, other: str) -> str:
    """The worse of two stored statuses ('' when unknown loses to any status)."""
    ranked = {status.value: status.severity for status in Status}
    return max((one, other), key=lambda status: ranked.get(status, -1))


def _worst_sql() -> str:
    """SQL for the worst status of a group, by Status.severity."""
    ranked = sorted(Status, key=lambda status: status.severity)
    cases = " ".join(f"WHEN '{s.value}' THEN {s.severity}" for s in ranked)
    names = " ".join(f"WHEN {s.severity} THEN '{s.value}'" for s in ranked)
    return f"CASE MAX(CASE status {cases} END) {names} END"


_WORST_SQL = _worst_sql()
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
