"""Alerting's tables in the state database: every SQL statement alerting runs is here.

`AlertStore` reads and writes inside a transaction its caller owns (one run's alert state,
notification log and outbox rows land together or not at all). `Outbox` serves delivery,
which commits each attempt on its own so that a crash never loses what a receiver accepted.

Rows are plain values (labels as dicts, fingerprints as strings): the alerting stages turn
them into alerts. The state layer knows nothing of alerting's classes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checkrunner.state.dialect import (
    POSTGRESQL,
    SQLITE,
    Column,
    Dialect,
    RowsStatement,
    array_columns,
    dialect_of,
    execute_for_rows,
    insert_rows,
    rows_source,
    upsert_rows,
    upsert_sql,
)
from checkrunner.state.keys import CheckKey

if TYPE_CHECKING:
    from checkrunner.state.db import StateDB

FIRING = "firing"
RESOLVED = "resolved"
SENDS_KEPT = 3600.0  # seconds of send times kept for rate limits
_SQL_VARIABLES = 500  # fingerprints per IN (...) query, under SQLite's variable limit


@dataclass(frozen=True)
class StoredAlert:
    """An alert as the `alerts` table holds it (`ends_at`: when it resolved, None while firing)."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None = None


@dataclass(frozen=True)
class RunTimes:
    """When a check last ran (host reached or not) and its recent intervals between runs."""

    ran_at: float
    gaps: tuple[float, ...]


@dataclass(frozen=True)
class LogEntry:
    """The notification log of one receiver and group: what it was last told, and when."""

    firing: frozenset[str]  # fingerprints firing when last notified
    sent_at: float


@dataclass(frozen=True)
class StoredGroup:
    """One aggregation group of one receiver (Alertmanager's aggrGroup): the alerts in it,
    firing or resolved and not yet flushed, and its timers."""

    receiver: str
    group_key: str
    alerts: tuple[str, ...]  # fingerprints, in the order they joined
    created_at: float
    flushed_at: float | None  # None: never flushed (waiting for group_wait)
    next_flush_at: float


@dataclass(frozen=True)
class OutboxMessage:
    """One message queued for one receiver config."""

    receiver: str
    kind: str
    config_index: int
    destination: str
    group_key: str
    payload: Any


@dataclass(frozen=True)
class PendingMessage:
    """A message still to deliver, as delivery reads it back."""

    id: int
    receiver: str
    kind: str
    config_index: int
    destination: str
    payload: Any
    attempts: int


@dataclass(frozen=True)
class Undelivered:
    receiver: str
    kind: str
    state: str
    attempts: int
    last_error: str | None
    created_at: float


_CHECK = ("host", "play", "check_name")
_CHECK_ROW: tuple[Column, ...] = (("host", "TEXT"), ("play", "TEXT"), ("check_name", "TEXT"))
_ALERT_ROW: tuple[Column, ...] = (
    ("labels", "TEXT"),
    ("annotations", "TEXT"),
    ("state", "TEXT"),
    ("starts_at", "DOUBLE PRECISION"),
    ("ends_at", "DOUBLE PRECISION"),
    ("updated_at", "DOUBLE PRECISION"),
)
_MESSAGE_ROW: tuple[Column, ...] = (
    ("receiver", "TEXT"),
    ("kind", "TEXT"),
    ("config_index", "BIGINT"),
    ("destination", "TEXT"),
    ("group_key", "TEXT"),
    ("payload", "TEXT"),
    ("created_at", "DOUBLE PRECISION"),
    ("next_attempt_at", "DOUBLE PRECISION"),
)
_RESOLVED_ROW: tuple[Column, ...] = (
    ("fingerprint", "TEXT"),
    ("ends_at", "DOUBLE PRECISION"),
    ("updated_at", "DOUBLE PRECISION"),
)
_GROUP_KEY: tuple[Column, ...] = (("receiver", "TEXT"), ("group_key", "TEXT"))
_GROUP_ROW: tuple[Column, ...] = (
    ("alerts", "TEXT"),
    ("created_at", "DOUBLE PRECISION"),
    ("flushed_at", "DOUBLE PRECISION"),
    ("next_flush_at", "DOUBLE PRECISION"),
)
_UPSERT_LOG_ENTRY = upsert_sql("nflog", ("receiver", "group_key"), ("firing", "sent_at"))
_UPSERT_GROUP = upsert_sql(
    "alert_groups",
    ("receiver", "group_key"),
    ("alerts", "created_at", "flushed_at", "next_flush_at"),
)


@dataclass(frozen=True)
class _Statements:
    """Alert state's statements over many rows (execute_for_rows), and the read of alerts
    by fingerprint, in each backend's words (dialect.py)."""

    upsert_alerts: RowsStatement
    resolve: str
    upsert_streaks: RowsStatement
    upsert_run_times: RowsStatement
    queue: RowsStatement
    # Alerts whose fingerprint is among a list: SQLite's `IN (?, ...)` of up to
    # _SQL_VARIABLES (then `{}` is the placeholders), PostgreSQL's one array.
    alerts_by_fingerprint: str
    upsert_log_entries: RowsStatement
    upsert_groups: RowsStatement
    delete_groups: RowsStatement
    log_entries: str  # PostgreSQL's: entries by number in the arrays of _GROUP_KEY


def _statements(dialect: Dialect) -> _Statements:
    columns = "fingerprint, labels, annotations, starts_at, state, ends_at"
    if dialect.arrays:
        resolve = (
            "UPDATE alerts SET state = ?, ends_at = given.ends_at, "
            f"updated_at = given.updated_at FROM {rows_source(_RESOLVED_ROW)} "
            "WHERE alerts.fingerprint = given.fingerprint"
        )
        by_fingerprint = f"SELECT {columns} FROM alerts WHERE fingerprint = ANY(CAST(? AS TEXT[]))"
        delete_groups = (
            "DELETE FROM alert_groups WHERE (receiver, group_key) IN "
            f"(SELECT receiver, group_key FROM {rows_source(_GROUP_KEY)})"
        )
        log_entries = (
            "SELECT given.n, firing, sent_at FROM nflog JOIN "
            f"{rows_source(_GROUP_KEY, numbered='n')} "
            "ON nflog.receiver = given.receiver AND nflog.group_key = given.group_key"
        )
    else:
        resolve = "UPDATE alerts SET state = ?, ends_at = ?, updated_at = ? WHERE fingerprint = ?"
        by_fingerprint = f"SELECT {columns} FROM alerts WHERE fingerprint IN ({{}})"
        delete_groups = "DELETE FROM alert_groups WHERE receiver = ? AND group_key = ?"
        log_entries = ""
    return _Statements(
        upsert_alerts=upsert_rows(dialect, "alerts", [("fingerprint", "TEXT")], _ALERT_ROW),
        resolve=resolve,
        upsert_streaks=upsert_rows(
            dialect,
            "check_streaks",
            _CHECK_ROW,
            [("failing_runs", "BIGINT"), ("updated_at", "DOUBLE PRECISION")],
        ),
        upsert_run_times=upsert_rows(
            dialect, "check_runs", _CHECK_ROW, [("ran_at", "DOUBLE PRECISION"), ("gaps", "TEXT")]
        ),
        queue=insert_rows(dialect, "outbox", _MESSAGE_ROW),
        alerts_by_fingerprint=by_fingerprint,
        upsert_log_entries=upsert_rows(
            dialect, "nflog", _GROUP_KEY, [("firing", "TEXT"), ("sent_at", "DOUBLE PRECISION")]
        ),
        upsert_groups=upsert_rows(dialect, "alert_groups", _GROUP_KEY, _GROUP_ROW),
        delete_groups=RowsStatement(delete_groups, _GROUP_KEY),
        log_entries=log_entries,
    )


_STATEMENTS = {dialect.name: _statements(dialect) for dialect in (SQLITE, POSTGRESQL)}


@dataclass
class _Held:
    """Writes held by AlertStore.held_writes: rows by key (None: the group deleted), and
    outbox rows in order."""

    entries: dict[tuple[str, str], tuple] = field(default_factory=dict)
    groups: dict[tuple[str, str], tuple | None] = field(default_factory=dict)
    messages: list[tuple] = field(default_factory=list)


class AlertStore:
    """Alert state, failure streaks, run times, the notification log and outbox rows, read and
    written on `connection` inside the caller's transaction."""

    def __init__(self, connection):
        """`connection`: a sqlite3.Connection or the PostgreSQL backend's (db.py)."""
        self.connection = connection
        self._dialect = dialect_of(connection)
        self._sql = _STATEMENTS[self._dialect.name]
        self._held: _Held | None = None  # writes held by `held_writes`
        self._entries: dict[tuple[str, str], LogEntry | None] = {}  # read_log_entries'

    # -- alerts ------------------------------------------------------------------------------

    def firing(self, by_start: bool = False) -> list[StoredAlert]:
        """The alerts firing, in the order they were last raised (or by when they started)."""
        order = " ORDER BY starts_at" if by_start else ""
        return [
            StoredAlert(fp, json.loads(labels), json.loads(annotations), starts_at)
            for fp, labels, annotations, starts_at in self.connection.execute(
                "SELECT fingerprint, labels, annotations, starts_at FROM alerts WHERE state = ?"
                + order,
                (FIRING,),
            )
        ]

    def save_firing(self, alerts: Iterable[StoredAlert], now: float) -> None:
        rows = {  # an alert given twice is saved as given last
            alert.fingerprint: (
                alert.fingerprint,
                json.dumps(alert.labels),
                json.dumps(alert.annotations),
                FIRING,
                alert.starts_at,
                None,
                now,
            )
            for alert in alerts
        }
        execute_for_rows(self.connection, self._sql.upsert_alerts, list(rows.values()))

    def alerts(self, fingerprints: Iterable[str]) -> dict[str, StoredAlert]:
        """The stored alerts (firing or resolved) with these fingerprints, by fingerprint."""
        wanted = list(dict.fromkeys(fingerprints))
        if self._dialect.arrays:
            chunks = [(self._sql.alerts_by_fingerprint, [wanted])] if wanted else []
        else:
            chunks = [
                (self._sql.alerts_by_fingerprint.format(",".join("?" * len(chunk))), chunk)
                for chunk in (
                    wanted[start : start + _SQL_VARIABLES]
                    for start in range(0, len(wanted), _SQL_VARIABLES)
                )
            ]
        found: dict[str, StoredAlert] = {}
        for statement, parameters in chunks:
            for fp, labels, notes, starts_at, state, ends_at in self.connection.execute(
                statement, parameters
            ):
                found[fp] = StoredAlert(
                    fp,
                    json.loads(labels),
                    json.loads(notes),
                    starts_at,
                    ends_at if state == RESOLVED else None,
                )
        return found

    def save_resolved(self, fingerprints: Iterable[str], now: float) -> None:
        if self._dialect.arrays:
            rows = [(fingerprint, now, now) for fingerprint in dict.fromkeys(fingerprints)]
            if rows:
                columns = array_columns(rows, _RESOLVED_ROW)
                self.connection.execute(self._sql.resolve, [RESOLVED, *columns])
            return
        self.connection.executemany(
            self._sql.resolve,
            [(RESOLVED, now, now, fingerprint) for fingerprint in fingerprints],
        )

    # -- failure streaks and run times -------------------------------------------------------

    def streaks(self) -> dict[CheckKey, int]:
        """Consecutive failing runs of every check the database knows."""
        return {
            CheckKey(host, play, name): runs
            for host, play, name, runs in self.connection.execute(
                "SELECT host, play, check_name, failing_runs FROM check_streaks"
            )
        }

    def failing_streaks(self) -> list[tuple[CheckKey, int]]:
        """The checks failing now, with their streaks, by host and check name."""
        return [
            (CheckKey(host, play, name), runs)
            for host, play, name, runs in self.connection.execute(
                "SELECT host, play, check_name, failing_runs FROM check_streaks "
                "WHERE failing_runs > 0 ORDER BY host, check_name"
            )
        ]

    def save_streaks(self, streaks: dict[CheckKey, int], now: float) -> None:
        execute_for_rows(
            self.connection,
            self._sql.upsert_streaks,
            [(key.host, key.play, key.check, runs, now) for key, runs in streaks.items()],
        )

    def run_times(self, keys: Iterable[CheckKey]) -> dict[CheckKey, RunTimes]:
        wanted = set(keys)
        found = {}
        for host, play, name, ran_at, gaps in self.connection.execute(
            "SELECT host, play, check_name, ran_at, gaps FROM check_runs"
        ):
            key = CheckKey(host, play, name)
            if key in wanted:
                found[key] = RunTimes(ran_at, tuple(json.loads(gaps)))
        return found

    def save_run_times(self, times: dict[CheckKey, RunTimes]) -> None:
        execute_for_rows(
            self.connection,
            self._sql.upsert_run_times,
            [
                (key.host, key.play, key.check, run.ran_at, json.dumps(list(run.gaps)))
                for key, run in times.items()
            ],
        )

    # -- a round's notifications, written together ---------------------------------------------

    @contextlib.contextmanager
    def held_writes(self) -> Iterator[None]:
        """The notification log entries, aggregation groups and outbox rows saved in this
        block are held and written when it ends, a statement per table (on PostgreSQL one
        whatever the number of groups, instead of a round trip per group and table); reads
        of the notification log in it see what is held. An error writes nothing (the
        caller's transaction rolls back)."""
        self._held = _Held()
        try:
            yield
            held, self._held = self._held, None
            self._write_held(held)
        finally:
            self._held = None
            self._entries = {}

    def _write_held(self, held: _Held) -> None:
        execute_for_rows(self.connection, self._sql.queue, held.messages)
        execute_for_rows(self.connection, self._sql.upsert_log_entries, list(held.entries.values()))
        execute_for_rows(
            self.connection,
            self._sql.delete_groups,
            [key for key, row in held.groups.items() if row is None],
        )
        execute_for_rows(
            self.connection,
            self._sql.upsert_groups,
            [row for row in held.groups.values() if row is not None],
        )

    # -- the notification log ----------------------------------------------------------------

    def read_log_entries(self, keys: Iterable[tuple[str, str]]) -> None:
        """The entries of these (receiver, group key) read ahead, in one statement on
        PostgreSQL, for `log_entry` in `held_writes`' block."""
        wanted = list(dict.fromkeys(keys))
        if not self._dialect.arrays:
            return  # SQLite reads each in process as fast
        found: dict[tuple[str, str], LogEntry | None] = dict.fromkeys(wanted)
        if wanted:
            for number, firing, sent_at in self.connection.execute(
                self._sql.log_entries, array_columns(wanted, _GROUP_KEY)
            ):
                found[wanted[number - 1]] = LogEntry(frozenset(json.loads(firing)), sent_at)
        self._entries.update(found)

    def log_entry(self, receiver: str, group_key: str) -> LogEntry | None:
        key = (receiver, group_key)
        if self._held is not None and key in self._held.entries:
            _, _, firing, sent_at = self._held.entries[key]
            return LogEntry(frozenset(json.loads(firing)), sent_at)
        if key in self._entries:
            return self._entries[key]
        row = self.connection.execute(
            "SELECT firing, sent_at FROM nflog WHERE receiver = ? AND group_key = ?",
            (receiver, group_key),
        ).fetchone()
        return LogEntry(frozenset(json.loads(row[0])), row[1]) if row else None

    def save_log_entry(
        self, receiver: str, group_key: str, firing: list[str], sent_at: float
    ) -> None:
        """`firing`: sorted, as it is stored."""
        row = (receiver, group_key, json.dumps(firing), sent_at)
        if self._held is not None:
            self._held.entries[receiver, group_key] = row
            return
        self.connection.execute(_UPSERT_LOG_ENTRY, row)

    # -- aggregation groups ------------------------------------------------------------------

    def groups(self) -> list[StoredGroup]:
        """Every aggregation group, oldest first (as committed: not what `held_writes` holds)."""
        return [
            StoredGroup(receiver, key, tuple(json.loads(alerts)), created, flushed, next_flush)
            for receiver, key, alerts, created, flushed, next_flush in self.connection.execute(
                "SELECT receiver, group_key, alerts, created_at, flushed_at, next_flush_at "
                "FROM alert_groups ORDER BY created_at, receiver, group_key"
            )
        ]

    def save_group(self, group: StoredGroup) -> None:
        row = (
            group.receiver,
            group.group_key,
            json.dumps(list(group.alerts)),
            group.created_at,
            group.flushed_at,
            group.next_flush_at,
        )
        if self._held is not None:
            self._held.groups[group.receiver, group.group_key] = row
            return
        self.connection.execute(_UPSERT_GROUP, row)

    def delete_group(self, receiver: str, group_key: str) -> None:
        if self._held is not None:
            self._held.groups[receiver, group_key] = None
            return
        self.connection.execute(
            "DELETE FROM alert_groups WHERE receiver = ? AND group_key = ?", (receiver, group_key)
        )

    # -- the outbox --------------------------------------------------------------------------

    def queue(self, messages: Iterable[OutboxMessage], now: float) -> None:
        """In order (their ids ascending: a destination's messages are sent in that order)."""
        rows = [
            (
                message.receiver,
                message.kind,
                message.config_index,
                message.destination,
                message.group_key,
                json.dumps(message.payload),
                now,
                now,
            )
            for message in messages
        ]
        if self._held is not None:
            self._held.messages += rows
            return
        execute_for_rows(self.connection, self._sql.queue, rows)

    def queue_failed(
        self, receiver: str, kind: str, config_index: int, group_key: str, reason: str, now: float
    ) -> None:
        """A message that could not be made: kept as failed, with the reason, to be shown
        (after the messages held before it: the outbox keeps their order)."""
        if self._held is not None:
            execute_for_rows(self.connection, self._sql.queue, self._held.messages)
            self._held.messages = []
        self.connection.execute(
            "INSERT INTO outbox (receiver, kind, config_index, destination, group_key, payload, "
            "created_at, next_attempt_at, last_error, state, done_at) "
            "VALUES (?, ?, ?, ?, ?, 'null', ?, ?, ?, 'failed', ?)",
            (
                receiver,
                kind,
                config_index,
                f"{receiver}:{kind}:{config_index}",
                group_key,
                now,
                now,
                reason,
                now,
            ),
        )

    def undelivered(self) -> list[Undelivered]:
        return [
            Undelivered(*row)
            for row in self.connection.execute(
                "SELECT receiver, kind, state, attempts, last_error, created_at FROM outbox "
                "WHERE state != 'delivered' ORDER BY id"
            )
        ]


class Outbox:
    """The outbox as delivery uses it: each change committed at once.

    Who may send a message: on SQLite, the process holding the delivery claim (claim.py:
    its writers take the whole file in turn, so a claim spans processes through a flock
    beside it). On PostgreSQL, runners on several machines share the outbox: `claim` locks
    the message's row (SELECT ... FOR UPDATE SKIP LOCKED) in a transaction that stays open
    through the send and commits its outcome, so two runners never send one message; if
    the process dies mid-send the database drops the lock and the message stays pending
    (delivered at least once, as on SQLite)."""

    def __init__(self, db: StateDB):
        self.db = db
        self._claimed = None  # the claiming transaction's connection (PostgreSQL), if any

    def pending(self) -> list[PendingMessage]:
        rows = self.db.connection.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM outbox WHERE state = 'pending' ORDER BY id"
        ).fetchall()
        return [_pending(row) for row in rows]

    def next_pending(self, destination: str) -> PendingMessage | None:
        """The oldest message still to deliver to `destination` (its order is theirs)."""
        row = self.db.connection.execute(
            f"SELECT {_MESSAGE_COLUMNS} "
            "FROM outbox WHERE state = 'pending' AND destination = ? ORDER BY id LIMIT 1",
            (destination,),
        ).fetchone()
        return None if row is None else _pending(row)

    @contextlib.contextmanager
    def claim(self, message_id: int) -> Iterator[PendingMessage | None]:
        """The message for one attempt, as it is now; None when it left the outbox, another
        runner is sending it, or an earlier message to its destination is still pending
        (the destination's order). On PostgreSQL the attempt's `record_attempt` and
        `finish` commit with the claim when the block ends."""
        if not dialect_of(self.db.connection).claim_rows:
            yield self._claimable(self.db.connection, message_id)
            return
        with self.db.transaction(exclusive=False) as connection:
            message = self._claimable(connection, message_id)
            self._claimed = connection if message is not None else None
            try:
                yield message
            finally:
                self._claimed = None

    def _claimable(self, connection, message_id: int) -> PendingMessage | None:
        claim_rows = dialect_of(connection).claim_rows
        row = connection.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM outbox WHERE id = ? AND state = 'pending'"
            + claim_rows,
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        message = _pending(row)
        earlier = connection.execute(
            "SELECT 1 FROM outbox WHERE state = 'pending' AND destination = ? AND id < ? LIMIT 1",
            (message.destination, message.id),
        ).fetchone()
        return None if earlier else message

    @contextlib.contextmanager
    def _writing(self) -> Iterator:
        """The claiming transaction when there is one, else a transaction of its own."""
        if self._claimed is not None:
            yield self._claimed
            return
        with self.db.transaction() as connection:
            yield connection

    def pending_destinations(self) -> list[str]:
        """Every destination with a message still to deliver, the longest waiting first."""
        return [
            destination
            for (destination,) in self.db.connection.execute(
                "SELECT destination FROM outbox WHERE state = 'pending' "
                "GROUP BY destination ORDER BY MIN(id)"
            )
        ]

    def sent_since(self, destination: str, since: float) -> list[float]:
        """When messages to `destination` were sent after `since`, oldest first."""
        return [
            sent_at
            for (sent_at,) in self.db.connection.execute(
                "SELECT sent_at FROM sends WHERE destination = ? AND sent_at > ? ORDER BY sent_at",
                (destination, since),
            )
        ]

    def record_attempt(self, message_id: int, destination: str, error: str | None, now: float):
        with self._writing() as connection:
            connection.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error, message_id),
            )
            connection.execute(
                "INSERT INTO sends (destination, sent_at) VALUES (?, ?)", (destination, now)
            )
            connection.execute(
                "DELETE FROM sends WHERE destination = ? AND sent_at < ?",
                (destination, now - SENDS_KEPT),
            )

    def finish(self, message_id: int, state: str, error: str | None, now: float) -> None:
        with self._writing() as connection:
            connection.execute(
                "UPDATE outbox SET state = ?, done_at = ?, last_error = COALESCE(?, last_error) "
                "WHERE id = ?",
                (state, now, error, message_id),
            )


_MESSAGE_COLUMNS = "id, receiver, kind, config_index, destination, payload, attempts"


def _pending(row: tuple) -> PendingMessage:
    id_, receiver, kind, index, destination, payload, attempts = row
    return PendingMessage(id_, receiver, kind, index, destination, json.loads(payload), attempts)
