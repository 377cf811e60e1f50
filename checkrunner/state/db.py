"""The embedded state database: one SQLite file on the control node, private to its owner.

It holds what must survive between runs: log offsets (logs.py), every measurement of every
check, the log checks' counts among them (history.py),
alert state, the notification log and the outbox (alerts.py), the Pushgateway pushes not
yet delivered (pushes.py), the remediation audit (actions.py). Nothing is ever written on a
target.

Several checkrun processes may share one file (cron and a hand run overlapping): WAL mode
lets readers go on during a write, and writers wait up to BUSY_TIMEOUT for each other.
Threads are treated the same way: a connection belongs to the thread that opened it
(sqlite3 refuses it anywhere else), so a thread that needs the database (watch mode's
delivery worker) opens its own with `StateDB.reopen()` in that thread.

`--state postgresql://...` (or postgres://) opens a PostgreSQL database instead, shared by
runners on several machines (postgres.py, imported only then): the same schema and
migrations, the same stores and SQL (dialect.py names the few fragments that differ),
the same `StateDB` interface. Its errors are `BackendError`; `STATE_ERRORS` catches either
backend's.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from checkrunner import settings
from checkrunner.errors import ConfigError
from checkrunner.state.claim import DeliveryClaim
from checkrunner.state.dialect import SQLITE
from checkrunner.state.history import FOLD_RAW_INTO_HOURS_SQL

STATE_ENV = settings.STATE.env
BUSY_TIMEOUT_MS = 30_000
DATABASE_URL_SCHEMES = ("postgresql://", "postgres://")


class BackendError(Exception):
    """An error of the PostgreSQL backend (its driver's, re-raised as this: catching it
    needs no driver imported)."""


STATE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, BackendError)

# Each entry moves the schema from version N to N+1; never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE log_cursors (
        host TEXT NOT NULL,
        play TEXT NOT NULL,
        check_name TEXT NOT NULL,
        path TEXT NOT NULL,
        cursor TEXT NOT NULL,          -- JSON, as the log module returned it
        updated_at REAL NOT NULL,
        PRIMARY KEY (host, play, check_name, path)
    );
    CREATE TABLE log_scans (
        host TEXT NOT NULL,
        play TEXT NOT NULL,
        check_name TEXT NOT NULL,
        scanned_at REAL NOT NULL,      -- when the last recorded scan ran (rates divide by this)
        PRIMARY KEY (host, play, check_name)
    );
    CREATE TABLE history (
        host TEXT NOT NULL,
        play TEXT NOT NULL,
        check_name TEXT NOT NULL,
        metric TEXT NOT NULL,
        at REAL NOT NULL,
        value REAL NOT NULL
    );
    CREATE INDEX history_series ON history (host, play, check_name, metric, at);
    """,
    """
    CREATE TABLE check_streaks (
        host TEXT NOT NULL,
        play TEXT NOT NULL,
        check_name TEXT NOT NULL,
        failing_runs INTEGER NOT NULL, -- consecutive failing runs, 0 once it passes
        updated_at REAL NOT NULL,
        PRIMARY KEY (host, play, check_name)
    );
    CREATE TABLE alerts (
        fingerprint TEXT PRIMARY KEY,
        labels TEXT NOT NULL,
        annotations TEXT NOT NULL,
        state TEXT NOT NULL,           -- firing or resolved
        starts_at REAL NOT NULL,
        ends_at REAL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE nflog (
        receiver TEXT NOT NULL,
        group_key TEXT NOT NULL,
        firing TEXT NOT NULL,          -- JSON list: fingerprints firing when last notified
        sent_at REAL NOT NULL,
        PRIMARY KEY (receiver, group_key)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        receiver TEXT NOT NULL,
        kind TEXT NOT NULL,
        config_index INTEGER NOT NULL,
        destination TEXT NOT NULL,
        group_key TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        state TEXT NOT NULL DEFAULT 'pending', -- pending, delivered or failed (not retryable)
        done_at REAL
    );
    CREATE INDEX outbox_pending ON outbox (state, destination, id);
    CREATE TABLE sends (
        destination TEXT NOT NULL,
        sent_at REAL NOT NULL
    );
    CREATE INDEX sends_window ON sends (destination, sent_at);
    """,
    """
    CREATE TABLE check_runs (
        host TEXT NOT NULL,
        play TEXT NOT NULL,
        check_name TEXT NOT NULL,
        ran_at REAL NOT NULL,          -- the last run that planned this check (host reached or not)
        gaps TEXT NOT NULL,            -- JSON list: seconds between its last runs, newest last
        PRIMARY KEY (host, play, check_name)
    );
    """,
    """
    CREATE TABLE alert_groups (
        receiver TEXT NOT NULL,
        group_key TEXT NOT NULL,
        alerts TEXT NOT NULL,          -- JSON list: fingerprints in the group, firing or resolved
        created_at REAL NOT NULL,
        flushed_at REAL,               -- the last flush (NULL: waiting for group_wait)
        next_flush_at REAL NOT NULL,   -- when the group is looked at again (group_interval)
        PRIMARY KEY (receiver, group_key)
    );
    """,
    """
    CREATE TABLE push_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        destination TEXT NOT NULL,     -- digest of the Pushgateway URL (it may hold a secret)
        grouping TEXT NOT NULL,        -- JSON: job and the grouping key's labels
        payload BLOB NOT NULL,         -- the metrics, text exposition format
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        state TEXT NOT NULL DEFAULT 'pending', -- pending, delivered or failed (not retryable)
        done_at REAL
    );
    CREATE INDEX push_outbox_pending ON push_outbox (state, destination, id);
    """,
    """
    CREATE TABLE host_backoff (
        host TEXT PRIMARY KEY,         -- a host whose circuit breaker is open (watch mode)
        failures INTEGER NOT NULL,     -- failed attempts in a row
        next_attempt_at REAL NOT NULL, -- when the half-open probe may go
        reason TEXT NOT NULL,
        message TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,        -- one measurement of one check on one host (history.py)
        host TEXT NOT NULL,
        play TEXT NOT NULL,
        check_name TEXT NOT NULL,
        metric TEXT NOT NULL,          -- '' for a check that measured nothing (status only)
        UNIQUE (host, play, check_name, metric)
    );
    CREATE TABLE samples (
        series INTEGER NOT NULL,
        at REAL NOT NULL,
        value REAL,
        status TEXT NOT NULL,
        PRIMARY KEY (series, at)
    ) WITHOUT ROWID;
    CREATE TABLE samples_hourly (
        series INTEGER NOT NULL,
        hour REAL NOT NULL,            -- the hour's start (epoch seconds, UTC)
        min REAL,
        avg REAL,
        max REAL,
        count INTEGER NOT NULL,        -- samples in the hour (those with a value: min/avg/max)
        worst TEXT NOT NULL,           -- the hour's worst status
        PRIMARY KEY (series, hour)
    ) WITHOUT ROWID;
    CREATE TABLE history_upkeep (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        ran_at REAL NOT NULL           -- the last downsampling and pruning
    );
    """,
    # The log checks' counts move into the history of every measurement, their status
    # unknown (''): their anomaly windows read them from there.
    """
    INSERT OR IGNORE INTO series (host, play, check_name, metric)
        SELECT DISTINCT host, play, check_name, metric FROM history;
    INSERT OR REPLACE INTO samples (series, at, value, status)
        SELECT s.id, h.at, h.value, '' FROM history AS h JOIN series AS s
        USING (host, play, check_name, metric);
    DROP TABLE history;
    """,
    # Dynamic thresholds (baselines.py): an hour's sum of squares, so σ over hourly rows is
    # exact; and the baselines computed lately, so a round reads one row per baseline.
    """
    ALTER TABLE samples_hourly ADD COLUMN sumsq REAL;  -- Σ value², with count and avg: σ
    CREATE TABLE baseline_cache (
        series INTEGER NOT NULL,
        lookback REAL NOT NULL,        -- the window: seconds looked back
        robust INTEGER NOT NULL,       -- 1: median and scaled MAD, 0: mean and σ
        seasonal TEXT NOT NULL,        -- '', hour_of_week or hour_of_day
        season INTEGER NOT NULL,       -- the hour of the week/day it was computed for (or 0)
        computed_at REAL NOT NULL,
        samples INTEGER NOT NULL,
        center REAL,
        spread REAL,
        PRIMARY KEY (series, lookback, robust, seasonal)
    ) WITHOUT ROWID;
    """,
    # Each series' unit (the measurement's, as the module or the check declares it), so that
    # `checkrun history` prints 1.50 GiB rather than 1.61061e+09; '' until the next record.
    """
    ALTER TABLE series ADD COLUMN unit TEXT NOT NULL DEFAULT '';
    """,
    # The hourly rollup at write time (history.py): each hour's row is kept up to date by
    # every sample written, with the count and sum of its values (an exact running average)
    # and the count, sum and Σ value² of its OK values (what baselines learn from). The rows
    # folded before keep their meaning: their OK sums are their own if the hour was all OK.
    # Then the hours whose raw samples are kept are folded into rows as record keeps them.
    """
    ALTER TABLE samples_hourly ADD COLUMN valued INTEGER NOT NULL DEFAULT 0;  -- with a value
    ALTER TABLE samples_hourly ADD COLUMN total REAL;  -- Σ value (avg = total / valued)
    ALTER TABLE samples_hourly ADD COLUMN ok_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE samples_hourly ADD COLUMN ok_sum REAL NOT NULL DEFAULT 0;
    ALTER TABLE samples_hourly ADD COLUMN ok_sumsq REAL NOT NULL DEFAULT 0;
    UPDATE samples_hourly SET
        valued = CASE WHEN avg IS NULL THEN 0 ELSE count END,
        total = avg * count,
        ok_count = CASE WHEN avg IS NOT NULL AND worst IN ('OK', '') THEN count ELSE 0 END,
        ok_sum = CASE WHEN avg IS NOT NULL AND worst IN ('OK', '') THEN avg * count ELSE 0 END,
        ok_sumsq = CASE WHEN avg IS NOT NULL AND worst IN ('OK', '')
            THEN COALESCE(sumsq, avg * avg * count) ELSE 0 END;
    """
    + FOLD_RAW_INTO_HOURS_SQL,
    # The remediation audit (actions.py): every handler action, written as an intent before
    # it runs and completed after, so a crash in between leaves the record of the first.
    """
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at REAL NOT NULL,
        host TEXT NOT NULL,
        play TEXT NOT NULL,
        handler TEXT NOT NULL,
        triggers TEXT NOT NULL,        -- JSON list: the checks whose alerts notified it
        kind TEXT NOT NULL,            -- command, service or webhook
        target TEXT NOT NULL,          -- the command line or METHOD URL, masked
        state TEXT NOT NULL,           -- intent (running, or cut short by a crash) or done
        finished_at REAL,
        exit_status INTEGER,           -- the command's exit code, the HTTP status, or -1
        output TEXT NOT NULL DEFAULT '', -- the tail of its output, masked
        verify TEXT                    -- remediated, remediation failed, or NULL (not yet)
    );
    CREATE INDEX actions_by_handler ON actions (host, play, handler, started_at);
    CREATE INDEX actions_by_time ON actions (started_at);
    """,
    """
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,         -- what is led: "watch PLAYBOOK" (and its shard)
        holder TEXT NOT NULL,          -- the replica: host:pid
        epoch INTEGER NOT NULL,        -- +1 each time it changes hands (the fencing token)
        expires_at REAL NOT NULL
    );
    """,
)


def default_state_path() -> str:
    """$CHECKRUN_STATE, else $XDG_STATE_HOME/checkrunner/state.db (~/.local/state/...)."""
    return settings.state_path()


def is_database_url(target: str) -> bool:
    """Whether --state names a PostgreSQL database rather than a file."""
    return target.startswith(DATABASE_URL_SCHEMES)


class StateDB:
    """An open state database; `transaction()` groups writes so they land all or nothing.

    The interface both backends offer (postgres.py's PostgresStateDB is the other):
    `connection` runs statements outside a transaction (reads), `transaction()` writes,
    `reopen()` gives a thread its own connection, `delivery_claim()` says who delivers the
    outbox. `path` names the database in messages (a URL without its password)."""

    dialect = SQLITE

    def __init__(self, path: str, connection: sqlite3.Connection | None = None):
        self.path = path
        self._connection = connection or _connect(path)

    @property
    def connection(self) -> sqlite3.Connection:
        return self._connection

    @contextlib.contextmanager
    def transaction(
        self, dry_run: bool = False, exclusive: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """All or nothing; with dry_run, nothing even when it succeeds (--no-notify).
        SQLite's writers take the database in turn whatever `exclusive` says (PostgreSQL's
        take a lock for it, postgres.py)."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield self._connection
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("ROLLBACK" if dry_run else "COMMIT")

    def reopen(self) -> StateDB:
        """Another connection to the same file, for the calling thread (a connection is
        used only by the thread that opened it); transactions on the two wait for each
        other as two processes' do. The file exists and is migrated already: nothing
        process-wide (the umask) changes under the other threads."""
        return StateDB(self.path, _open(self.path, existing=True))

    def delivery_claim(self) -> DeliveryClaim:
        """Which process delivers this file's outbox (claim.py)."""
        return DeliveryClaim(self.path)

    def close(self) -> None:
        self._connection.close()


def open_state(path: str) -> StateDB:
    """Open (creating it 0600, and its folder 0700, if needed) and migrate the database;
    a postgresql:// URL opens (and migrates) that database instead."""
    if is_database_url(path):
        try:
            from checkrunner.state.postgres import open_postgres
        except ImportError as exc:
            raise ConfigError(
                f"--state {path.partition(':')[0]}://...: {exc}",
                hint="install the PostgreSQL driver: pip install 'psycopg[binary]'",
            ) from None
        return open_postgres(path)
    try:
        return StateDB(path)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(
            f"state database {path}: {exc}",
            hint="give a writable path with --state PATH, or run without state: --no-state",
        ) from None


def _connect(path: str) -> sqlite3.Connection:
    directory = Path(path).parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
    # Created private before SQLite opens it: SQLite gives the -wal and -shm files the
    # database file's own mode. No umask: it is process-wide, and a thread starting a command
    # meanwhile would hand it the private umask.
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    connection = _open(path)
    _migrate(connection)
    return connection


def _open(path: str, existing: bool = False) -> sqlite3.Connection:
    """`existing`: the file must be there (never created here, outside `_connect`)."""
    target = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=rw" if existing else path
    connection = sqlite3.connect(
        target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, uri=existing
    )
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = FULL")
    return connection


def _migrate(connection: sqlite3.Connection) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this checkrun knows ({len(MIGRATIONS)}); "
                "upgrade checkrunner"
            )
        for number in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
