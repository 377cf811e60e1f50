"""Log checks across runs: offsets in, new offsets out, committed only once results are recorded.

Which checks keep state is the module's to say (`"keeps_state": True` in its MODULE spec:
the log module's file cursors, the cgroup module's OOM-kill counter): this layer names no
module. The control node hands each such
check the cursors it saved for that host and check (`_cursors` in the check's arguments);
the target reads from there and returns the new cursors with its counts. They are written to the state database by `commit()`, which the
run calls after its reports are written: a crash or Ctrl-C before that point means the
same lines are read again next run (at least once), never skipped.

Offsets are keyed by host, play, check name and file path: two checks that watch the same
file keep their own place. Renaming a check starts it afresh (at `start`). The counts'
past, which `anomaly:` compares with, is the check's measurement history (history.py).

Nothing secret is stored: check names arrive masked (the plan's identities), and a path
templated from a secret is stored masked and restored from the check's own `path` when read.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checkrunner import catalog
from checkrunner.evaluate.history import AnomalySettings, detect_anomaly, rate, rate_unit
from checkrunner.plan import Plan, PlannedCheck
from checkrunner.state.dialect import (
    POSTGRESQL,
    SQLITE,
    Column,
    RowsStatement,
    array_columns,
    dialect_of,
    execute_for_rows,
    insert_rows,
    rows_source,
    stored_text,
)
from checkrunner.state.failpoints import failpoint
from checkrunner.state.keys import CheckKey

if TYPE_CHECKING:
    from checkrunner.state.db import StateDB

CURSORS_ARG = "_cursors"
HISTORY_KEEP = 500  # values kept in memory per series (--no-state); anomaly windows are shorter
_GLOB = re.compile(r"[*?\[]")


@dataclass
class _Saved:
    cursors: dict[str, Any] = field(default_factory=dict)
    scanned_at: float | None = None
    history: dict[str, list[float]] = field(default_factory=dict)  # metric -> values, oldest first


@dataclass
class _Update:
    cursors: dict[str, Any]
    scanned_at: float
    values: dict[str, float]
    # The scan time the cursors were read at (None: none saved): the commit writes them
    # only if the database still holds it (compare-and-set), see `commit`.
    read_at: float | None = None


def keeps_state(check: PlannedCheck) -> bool:
    """Whether the check's module keeps state between runs (MODULE's `keeps_state`)."""
    return catalog.get(check.identity.module).keeps_state


class LogState:
    """Reads saved cursors before a run, turns counts into rates and anomalies, commits after."""

    def __init__(self, db: StateDB | None, mask: Callable[[str], str] = lambda text: text):
        """`mask`: the run's Masker.text; what is written goes through it."""
        self.db = db
        self._mask = mask
        self._saved: dict[CheckKey, _Saved] = {}
        self._updates: dict[CheckKey, _Update] = {}
        self._writing: dict[CheckKey, _Update] = {}  # the last commit's, until it is known
        self._lock = threading.Lock()

    # -- before the run --------------------------------------------------------------------

    def prepare(self, plan: Plan) -> None:
        """Give every log check its saved cursors (none without a database: `start` applies)."""
        planned = [
            check
            for host_plan in plan.hosts
            for check in host_plan.checks
            if check.batch is not None and keeps_state(check)
        ]
        if not planned:
            return
        if self.db is not None:
            self._load(
                {CheckKey.of(check) for check in planned},
                max((_window(check) for check in planned), default=0),
            )
        for check in planned:
            saved = self._saved.get(CheckKey.of(check), _Saved())
            cursors = self._unmasked(saved.cursors, str(check.batch.args.get("path", "")))
            args = {**check.batch.args, CURSORS_ARG: cursors}
            check.batch = dataclasses.replace(check.batch, args=args)

    def _unmasked(self, cursors: dict[str, Any], path: str) -> dict[str, Any]:
        """Saved cursors with the masked part of the check's `path` (up to its first glob
        character: every file it covers starts so) back in clear."""
        static = _GLOB.split(path, maxsplit=1)[0]
        masked = self._mask(static)
        if not cursors or masked == static:
            return cursors
        text = json.dumps(cursors)
        return json.loads(text.replace(json.dumps(masked)[1:-1], json.dumps(static)[1:-1]))

    def _load(self, keys: set[CheckKey], window: int) -> None:
        """Cursors, scan times and (for anomaly windows) recent history of these checks, read
        afresh (watch mode prepares the same checks every round)."""
        for key in keys:
            self._saved[key] = _Saved()
        connection = self.db.connection
        connection.execute(
            "CREATE TEMP TABLE IF NOT EXISTS wanted (host TEXT, play TEXT, check_name TEXT)"
        )
        connection.execute("DELETE FROM wanted")
        dialect = dialect_of(connection)
        execute_for_rows(
            connection,
            _STATEMENTS[dialect.name].insert_wanted,
            [(k.host, k.play, k.check) for k in keys],
        )
        joined = "JOIN wanted USING (host, play, check_name)"
        ordered_join = dialect.ordered_join
        # Scan time and cursors in one statement, so from one snapshot: they are the
        # compare-and-set's pair (commit), whatever another run commits meanwhile.
        for host, play, name, scanned_at, path, cursor in connection.execute(
            f"SELECT host, play, check_name, scanned_at, path, cursor FROM log_scans {joined} "
            "LEFT JOIN log_cursors USING (host, play, check_name)"
        ):
            saved = self._entry(host, play, name)
            saved.scanned_at = scanned_at
            if path is not None:
                saved.cursors[path] = json.loads(cursor)
        if window <= 0:
            return
        # The measurement history every round keeps (history.py): the newest `window`
        # values of each of these checks' series.
        rows = connection.execute(
            "SELECT host, play, check_name, metric, value FROM ("
            "  SELECT s.host, s.play, s.check_name, s.metric, x.at, x.value, ROW_NUMBER() OVER ("
            "    PARTITION BY x.series ORDER BY x.at DESC) AS recent"
            f"  FROM series AS s {joined} {ordered_join} samples AS x ON x.series = s.id"
            "  WHERE x.value IS NOT NULL"
            ") AS ranked WHERE recent <= ? ORDER BY at",
            (window,),
        )
        for host, play, name, metric, value in rows:
            self._entry(host, play, name).history.setdefault(metric, []).append(value)

    def _entry(self, host: str, play: str, name: str) -> _Saved:
        return self._saved.setdefault(CheckKey(host, play, name), _Saved())

    # -- as results arrive (host threads) ----------------------------------------------------

    def observe(self, planned: PlannedCheck, raw: dict[str, Any]) -> dict[str, Any]:
        """The raw result with rates and anomalies applied; its new cursors kept for commit."""
        return self._observed(planned, raw, keep=True)

    def _observed(self, planned: PlannedCheck, raw: dict[str, Any], keep: bool) -> dict[str, Any]:
        if not keeps_state(planned) or "error" in raw:
            return raw
        body = dict(raw.get("result") or {})
        state = body.pop("state", None) or {}
        key = CheckKey.of(planned)
        saved = self._saved.get(key, _Saved())
        if not keep:  # read on from this round's read: rates over the time since
            update = self._updates.get(key)
            if update is not None:
                saved = _Saved(update.cursors, update.scanned_at, saved.history)
        now = time.time()
        args = planned.batch.args if planned.batch else {}
        values = self._apply_rates(body, args, saved, now)
        self._apply_anomalies(body, args, saved, values)
        if keep and isinstance(state.get("cursors"), dict):
            with self._lock:
                self._updates[key] = _Update(state["cursors"], now, values, saved.scanned_at)
        return {**raw, "result": body}

    def verifier(self) -> LogVerifier:
        """For checks run again right after this round (a handler's verify)."""
        return LogVerifier(self)

    def _apply_rates(
        self, body: dict[str, Any], args: dict[str, Any], saved: _Saved, now: float
    ) -> dict[str, float]:
        """Each pattern's count, or its rate with `per:`; returns the values history keeps."""
        measurements = dict(body.get("measurements") or {})
        names = [p["name"] for p in args.get("patterns") or [] if p.get("name") in measurements]
        per = args.get("per")
        values: dict[str, float] = {}
        if per:
            elapsed = None if saved.scanned_at is None else now - saved.scanned_at
            units = dict(body.get("units") or {})
            for name in names:
                count = measurements[name]
                measurements[f"{name}_count"] = count
                value = rate(count, elapsed, float(per))
                measurements[name] = 0.0 if value is None else round(value, 6)
                units[name] = rate_unit(float(per))
            body["units"] = units
            if elapsed is None:
                body["message"] = f"{body.get('message', '')}; first scan: rates start next run"
        for name in names:
            values[name] = float(measurements[name])
        body["measurements"] = measurements
        return values

    def _apply_anomalies(
        self, body: dict[str, Any], args: dict[str, Any], saved: _Saved, values: dict[str, float]
    ) -> None:
        if not args.get("anomaly"):
            return
        settings = anomaly_settings(args["anomaly"])
        notes = []
        for name, value in values.items():
            anomaly = detect_anomaly(value, saved.history.get(self._mask(name), []), settings)
            if anomaly:
                notes.append(anomaly.describe(name, settings))
        if notes:
            body["status"] = settings.status
            message = body.get("message")
            body["message"] = "; ".join([*notes, message] if message else notes)

    # -- after the results are recorded ---------------------------------------------------------

    def commit(self, hosts: set[str] | None = None, connection=None) -> set[CheckKey]:
        """Write the new cursors and scan times in one transaction; returns the checks whose
        lines another run counted meanwhile (their counts must not be recorded again).

        `hosts`: only the checks of these hosts (watch mode commits the hosts whose results
        were recorded; a host still in flight, or abandoned at exit, keeps its lines unread).
        `connection`: inside the caller's transaction (RoundRecorder's, which writes the
        round's measurements, the counts among them, with the offsets: a count is in the
        history exactly when its lines are behind the saved offset).

        Two runs sharing the database may read the same lines (overlapping on a host: cron
        and a hand run, a reshard, an HA pair): each check's cursors are written only if its
        scan time in the database is still the one they were read at, a compare-and-set in
        one statement (the upsert's WHERE) that the backend applies under the row's lock.
        The run that loses keeps its report, but neither its offsets nor its counts: every
        line is counted once in the state, and read again by the next run if it was new.
        """
        with self._lock:
            updates = {
                key: update
                for key, update in self._updates.items()
                if hosts is None or key.host in hosts
            }
            for key in updates:
                del self._updates[key]
            self._writing = updates
        self._remember(updates)
        if self.db is None or not updates:
            return set()
        failpoint("before-state-commit")
        if connection is not None:
            return self._write_all(connection, updates)
        try:
            with self.db.transaction() as own:
                lost = self._write_all(own, updates)
        except BaseException:
            self.rollback()
            raise
        self.committed()
        return lost

    def committed(self) -> None:
        """The transaction that the last commit() wrote in (the caller's) is committed."""
        with self._lock:
            self._writing = {}

    def rollback(self) -> None:
        """The transaction of the last commit() failed (the state database went away): its
        cursors are this run's to commit again, so that a retried recording writes them
        with the counts they go with (never counts without their offsets)."""
        with self._lock:
            for key, update in self._writing.items():
                self._updates.setdefault(key, update)
            self._writing = {}

    def _write_all(self, connection, updates: dict[CheckKey, _Update]) -> set[CheckKey]:
        """Every check's scan time and cursors, except those another run committed since
        their cursors were read (returned: nothing of them is written)."""
        # In key order: two runs committing the same checks lock their rows in one order.
        ordered = sorted(updates)
        won = _taken(connection, [(key, updates[key]) for key in ordered])
        lost = set(updates) - won
        for key in lost:
            self._saved.pop(key, None)  # what the database holds is read afresh next time
        written = [key for key in ordered if key in won]
        sql = _STATEMENTS[dialect_of(connection).name]
        execute_for_rows(
            connection, sql.delete_cursors, [(key.host, key.play, key.check) for key in written]
        )
        execute_for_rows(
            connection,
            sql.insert_cursors,
            [
                (
                    key.host,
                    key.play,
                    key.check,
                    self._mask(path),
                    self._mask(json.dumps(cursor, sort_keys=True)),
                    updates[key].scanned_at,
                )
                for key in written
                for path, cursor in updates[key].cursors.items()
            ],
        )
        return lost

    def _remember(self, updates: dict[CheckKey, _Update]) -> None:
        """What is committed is also what the next prepare() hands out without a database
        (watch mode with --no-state: each round goes on from the last, in memory)."""
        for key, update in updates.items():
            saved = self._saved.setdefault(key, _Saved())
            saved.cursors = dict(update.cursors)
            saved.scanned_at = update.scanned_at
            for name, value in update.values.items():
                series = saved.history.setdefault(self._mask(name), [])
                series.append(value)
                del series[:-HISTORY_KEEP]


def _taken(connection, updates: list[tuple[CheckKey, _Update]]) -> set[CheckKey]:
    """The checks whose new scan time the compare-and-set wrote (in the order given): on
    PostgreSQL all in one statement, which says which rows it wrote; on SQLite one
    statement per check, in process."""
    if not updates:
        return set()
    rows = [
        (key.host, key.play, key.check, update.scanned_at, update.read_at)
        for key, update in updates
    ]
    dialect = dialect_of(connection)
    sql = _STATEMENTS[dialect.name]
    if dialect.arrays:
        # A written row's key, as the database gives it back, names the check given so.
        by_stored = {
            tuple(stored_text(dialect, part) for part in (key.host, key.play, key.check)): key
            for key, _ in updates
        }
        columns = array_columns(rows, _SCAN_ROW)
        return {by_stored[tuple(row)] for row in connection.execute(sql.compare_and_set, columns)}
    return {
        key
        for (key, _), row in zip(updates, rows)
        if connection.execute(sql.compare_and_set, row).rowcount
    }


# The new scan time of a check, written only where the stored one is the scan its cursors
# were read at (a first scan: no row yet; `= NULL` never holds, so a row another run wrote
# meanwhile is kept). Both backends lock the row for the upsert: one statement, one winner.
_SCAN_COMPARE_AND_SET = (
    "INSERT INTO log_scans (host, play, check_name, scanned_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (host, play, check_name) DO UPDATE SET scanned_at = excluded.scanned_at "
    "WHERE log_scans.scanned_at = ?"
)
_SCAN_ROW: tuple[Column, ...] = (
    ("host", "TEXT"),
    ("play", "TEXT"),
    ("check_name", "TEXT"),
    ("scanned_at", "DOUBLE PRECISION"),
    ("read_at", "DOUBLE PRECISION"),
)
# The same for many checks at once (PostgreSQL, from arrays): a row is updated where its
# key and stored scan time are among the checks' keys and read times (a NULL read time is
# never among them), and RETURNING names the checks written, inserted or updated. The rows
# are inserted, so locked, in the arrays' order.
_SCAN_COMPARE_AND_SET_ROWS = (
    f"WITH given AS (SELECT * FROM {rows_source(_SCAN_ROW)}) "
    "INSERT INTO log_scans (host, play, check_name, scanned_at) "
    "SELECT host, play, check_name, scanned_at FROM given "
    "ON CONFLICT (host, play, check_name) DO UPDATE SET scanned_at = excluded.scanned_at "
    "WHERE (log_scans.host, log_scans.play, log_scans.check_name, log_scans.scanned_at) "
    "IN (SELECT host, play, check_name, read_at FROM given) "
    "RETURNING host, play, check_name"
)
_CHECK_ROW: tuple[Column, ...] = (("host", "TEXT"), ("play", "TEXT"), ("check_name", "TEXT"))
_CURSOR_ROW: tuple[Column, ...] = (
    *_CHECK_ROW,
    ("path", "TEXT"),
    ("cursor", "TEXT"),
    ("updated_at", "DOUBLE PRECISION"),
)


@dataclass(frozen=True)
class _Statements:
    """The statements of the offsets' commit that differ between the backends (dialect.py)."""

    compare_and_set: str
    delete_cursors: RowsStatement
    insert_cursors: RowsStatement
    insert_wanted: RowsStatement  # the checks `_load` reads, into its temporary table


_STATEMENTS = {
    SQLITE.name: _Statements(
        _SCAN_COMPARE_AND_SET,
        RowsStatement(
            "DELETE FROM log_cursors WHERE host = ? AND play = ? AND check_name = ?", _CHECK_ROW
        ),
        insert_rows(SQLITE, "log_cursors", _CURSOR_ROW),
        insert_rows(SQLITE, "wanted", _CHECK_ROW),
    ),
    POSTGRESQL.name: _Statements(
        _SCAN_COMPARE_AND_SET_ROWS,
        RowsStatement(
            "DELETE FROM log_cursors WHERE (host, play, check_name) IN "
            f"(SELECT host, play, check_name FROM {rows_source(_CHECK_ROW)})",
            _CHECK_ROW,
        ),
        insert_rows(POSTGRESQL, "log_cursors", _CURSOR_ROW),
        insert_rows(POSTGRESQL, "wanted", _CHECK_ROW),
    ),
}


def _window(check: PlannedCheck) -> int:
    anomaly = check.batch.args.get("anomaly") if check.batch else None
    return anomaly_settings(anomaly).window if anomaly else 0


def anomaly_settings(spec: dict[str, Any]) -> AnomalySettings:
    """The `anomaly:` mapping of a check, already checked against its suboptions."""
    defaults = AnomalySettings()
    return AnomalySettings(
        k=float(spec.get("k") if spec.get("k") is not None else defaults.k),
        window=int(spec.get("window") or defaults.window),
        min_runs=int(spec.get("min_runs") or defaults.min_runs),
        min_increase=float(
            spec.get("min_increase")
            if spec.get("min_increase") is not None
            else defaults.min_increase
        ),
        status=str(spec.get("status") or defaults.status).upper(),
    )


class LogVerifier:
    """Log checks run again right after a round (a handler's verify) read on from where the
    round's read ended, with rates over the time since, and keep nothing: the next round
    reads those lines again and counts them once. Without this they would re-read the
    round's own lines and never see a fix."""

    def __init__(self, state: LogState):
        self.state = state

    def check(self, planned: PlannedCheck) -> PlannedCheck:
        """`planned`, reading on from the round's new cursors when it has them."""
        update = self.state._updates.get(CheckKey.of(planned))
        if planned.batch is None or update is None or not keeps_state(planned):
            return planned
        args = {**planned.batch.args, CURSORS_ARG: update.cursors}
        return dataclasses.replace(planned, batch=dataclasses.replace(planned.batch, args=args))

    def observe(self, planned: PlannedCheck, raw: dict[str, Any]) -> dict[str, Any]:
        return self.state._observed(planned, raw, keep=False)
