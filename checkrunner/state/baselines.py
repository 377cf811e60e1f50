"""Dynamic thresholds' history: each baseline's statistics, read before a round.

A round's checks are judged in host threads, so what they compare with is prepared first
(as the log offsets are, logs.py): `prepare` reads, for every dynamic threshold of the
hosts about to run, the statistics of its series (history.py computes them in SQL from the
OK sums of the hourly rows for whole hours and the raw samples of the cut edges), and the runner's
`lookup` hands them out. Nothing is read in host threads.

Computing them was the costly part (a 7-day window of 10-second samples is 60,480 raw
rows; from the hourly rows, about 170 rows and two short raw ranges), so each result is kept in `baseline_cache` with the time it was computed and reused for
min(1 h, window / 100) (shortened by up to half per series, so that refreshes spread over
rounds); a seasonal one also for no longer than its hour of the week/day,
and one still warming up is computed afresh every round (it is cheap: few samples). A
cached baseline leaves out the samples of the last hour at most, which moves a 7-day
mean by at most 1/168 of the change.

Without a database (--no-state), every baseline is warming up: "no history: --no-state".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from checkrunner.config.baselines import BaselineSpec
from checkrunner.evaluate.evaluate import CheckIdentity
from checkrunner.evaluate.history import SeriesStats
from checkrunner.plan import HostPlan
from checkrunner.state.dialect import upsert_sql
from checkrunner.state.history import HistoryStore, SeriesKey, Window, season_of, season_ranges
from checkrunner.state.keys import CheckKey

if TYPE_CHECKING:
    from checkrunner.state.db import StateDB

NO_STATE = SeriesStats(note="no history: --no-state")
CACHE_FOR = 3600.0  # at most this long, and at most window / 100


@dataclass(frozen=True)
class _Need:
    """What a baseline's statistics depend on (factor and sigma share the mean)."""

    window: float
    robust: bool
    seasonal: str | None


def _need(spec: BaselineSpec) -> _Need:
    return _Need(spec.window, spec.robust, spec.seasonal)


class BaselineState:
    """The statistics every dynamic threshold of a round compares with, read before it."""

    def __init__(self, db: StateDB | None, mask: Callable[[str], str] = lambda text: text):
        """`mask`: the run's Masker.text (series are kept under masked measurement names)."""
        self.db = db
        self._mask = mask
        self._stats: dict[tuple[SeriesKey, _Need], SeriesStats] = {}
        self.computed = 0  # baselines computed (not read from the cache) by the last prepare

    def prepare(self, host_plans: Iterable[HostPlan], now: float) -> None:
        """Read the statistics of every dynamic threshold of these hosts' checks at `now`."""
        wanted: dict[tuple[SeriesKey, _Need], int] = {}
        for host_plan in host_plans:
            for check in host_plan.checks:
                if check.batch is None:
                    continue
                for thresholds in check.identity.thresholds:
                    key = self._series(check.identity, thresholds.metric)
                    for spec in (thresholds.warn_baseline, thresholds.crit_baseline):
                        if spec is not None:
                            need = (key, _need(spec))
                            wanted[need] = max(wanted.get(need, 0), spec.min_samples)
        self.computed = 0
        if self.db is None or not wanted:
            return
        with self.db.transaction() as connection:
            store = HistoryStore(connection)
            for (key, need), min_samples in wanted.items():
                self._stats[key, need] = self._read(store, key, need, min_samples, now)

    def lookup(self, identity: CheckIdentity, metric: str, spec: BaselineSpec) -> SeriesStats:
        """What `prepare` read for this check's measurement and baseline (runner threads)."""
        if self.db is None:
            return NO_STATE
        return self._stats.get((self._series(identity, metric), _need(spec)), SeriesStats())

    def _series(self, identity: CheckIdentity, metric: str) -> SeriesKey:
        return SeriesKey(CheckKey(identity.host, identity.play, identity.name), self._mask(metric))

    def _read(
        self, store: HistoryStore, key: SeriesKey, need: _Need, min_samples: int, now: float
    ) -> SeriesStats:
        series = store.series_id(key)
        if series is None:
            return SeriesStats()
        season = season_of(need.seasonal, now)
        cached = _cached(store.connection, series, need)
        if cached is not None:
            computed_at, cached_season, stats = cached
            fresh = 0 <= now - computed_at < _reuse_for(series, need.window)
            if fresh and cached_season == season and stats.samples >= min_samples:
                return stats
        window = Window(season_ranges(need.seasonal, now - need.window, now), need.robust)
        samples, center, spread = store.baseline_stats(series, window)
        stats = SeriesStats(samples, center, spread)
        self.computed += 1
        store.connection.execute(
            _UPSERT_CACHED,
            (series, need.window, int(need.robust), need.seasonal or "", season, now)
            + (samples, center, spread),
        )
        return stats


def _reuse_for(series: int, window: float) -> float:
    """How long a computed baseline is reused: min(1 h, window / 100), shortened by up to
    half per series, so that the series computed together at first fall due on different
    rounds afterwards instead of all in the same one."""
    return min(CACHE_FOR, window / 100) * (1 - (series % 16) / 32)


_UPSERT_CACHED = upsert_sql(
    "baseline_cache",
    ("series", "lookback", "robust", "seasonal"),
    ("season", "computed_at", "samples", "center", "spread"),
)


def _cached(connection, series: int, need: _Need) -> tuple[float, int, SeriesStats] | None:
    row = connection.execute(
        "SELECT computed_at, season, samples, center, spread FROM baseline_cache "
        "WHERE series = ? AND lookback = ? AND robust = ? AND seasonal = ?",
        (series, need.window, int(need.robust), need.seasonal or ""),
    ).fetchone()
    if row is None:
        return None
    computed_at, season, samples, center, spread = row
    return computed_at, season, SeriesStats(samples, center, spread)
