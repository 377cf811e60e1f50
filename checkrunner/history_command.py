"""`checkrun history`: the series of one check on one host, as a table or as JSON.

A command function as app.py's are, kept out of app.py so that it starts without importing
what a run needs (the playbook and inventory layers, the transports, Jinja2, YAML): only
the state database and the history's reporting. A PLAYBOOK argument loads that playbook.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from checkrunner.errors import ConfigError, did_you_mean
from checkrunner.report.history import TABLE_SAMPLES, as_json, table
from checkrunner.results import EXIT_OK
from checkrunner.state.db import default_state_path, is_database_url, open_state
from checkrunner.state.history import HistoryStore


@dataclass
class HistoryQuery:
    """`checkrun history`: which series, from when, shown how."""

    host: str
    check: str
    metric: str | None = None
    since: float = 86400.0
    as_json: bool = False
    playbook: str | None = None  # only its plays' series
    state: str | None = None


def history(query: HistoryQuery, clock: Callable[[], float] | None = None) -> int:
    """`checkrun history`: the series of one check on one host, a table or JSON."""
    path = query.state or default_state_path()
    if not is_database_url(path) and not os.path.exists(path):  # a read creates no file
        raise ConfigError(
            f"no state database at {path}",
            hint="give the one the runs write with --state PATH (or $CHECKRUN_STATE)",
        )
    db = open_state(path)
    store = HistoryStore(db.connection)
    keys = _history_series(store.series(), query)
    since = (clock or time.time)() - query.since
    if query.as_json:  # every sample, for machines
        print(as_json([(key, store.samples(key, since)) for key in keys], since))
        return EXIT_OK
    found = [(key, store.samples(key, since, hours_beyond=TABLE_SAMPLES)) for key in keys]
    unicode = (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"
    blocks = ["\n".join(table(key, samples, unicode)) for key, samples in found]
    print("\n\n".join(blocks))
    return EXIT_OK


def _history_series(series: list, query: HistoryQuery) -> list:
    """The series the query names; an unknown host, check or metric is bad input (exit 5)."""
    if query.playbook is not None:
        from checkrunner.playbook import load_playbook  # the config layer: only when asked

        plays = {play.name for play in load_playbook(query.playbook).plays}
        series = [key for key in series if key.check.play in plays]
    where = f"in the history{' of ' + query.playbook if query.playbook else ''}"
    chosen = _narrowed(series, lambda key: key.check.host, query.host, "host", where)
    chosen = _narrowed(chosen, lambda key: key.check.check, query.check, "check", where)
    if query.metric is not None:
        chosen = _narrowed(chosen, lambda key: key.metric, query.metric, "metric", where)
    return chosen


def _narrowed(series: list, part: Callable, wanted: str, what: str, where: str) -> list:
    chosen = [key for key in series if part(key) == wanted]
    if chosen:
        return chosen
    known = sorted({part(key) for key in series})
    hint = did_you_mean(wanted, known) or (
        f"known: {', '.join(known[:10])}" if known else "nothing is recorded yet: run the checks"
    )
    raise ConfigError(f"no {what} '{wanted}' {where}", hint=hint)
