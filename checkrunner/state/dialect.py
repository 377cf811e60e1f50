"""What differs between the state backends' SQL, so that the stores write each statement once.

The stores (logs.py, alerts.py, history.py ...) write SQL that SQLite and PostgreSQL both
run: `?` placeholders (the PostgreSQL connection turns them into psycopg's), upserts as
`INSERT ... ON CONFLICT (key) DO UPDATE SET col = excluded.col` (`upsert_sql`), `INSERT
... ON CONFLICT DO NOTHING` for SQLite's INSERT OR IGNORE, `RETURNING id` for a new row's
id. The few fragments that cannot be written once are a Dialect's attributes; a store finds
its connection's with `dialect_of`. Nothing here imports a database driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str
    smaller: str  # the smaller of two values (NULL-ignoring in PostgreSQL, NULL in SQLite)
    larger: str
    # A join whose order the query planner keeps (SQLite: CROSS JOIN ... ON, a planner hint)
    ordered_join: str
    # Formats the aggregates of one history bucket as one text: COUNT, COUNT, three numbers
    # and a status, '|'-separated (exact numbers: %.17g, PostgreSQL's float text is exact).
    bucket_text: str
    # Appended to a SELECT that claims the rows it reads (the outbox): empty where the
    # backend has no row locks (SQLite's writers take the whole database in turn).
    claim_rows: str


SQLITE = Dialect(
    name="sqlite",
    smaller="MIN",
    larger="MAX",
    ordered_join="CROSS JOIN",
    bucket_text="printf('%d|%d|%.17g|%.17g|%.17g|%s'",
    claim_rows="",
)
POSTGRESQL = Dialect(
    name="postgresql",
    smaller="LEAST",
    larger="GREATEST",
    ordered_join="JOIN",
    bucket_text="format('%s|%s|%s|%s|%s|%s'",
    claim_rows=" FOR UPDATE SKIP LOCKED",
)


def dialect_of(connection: object) -> Dialect:
    """The dialect of a store's connection: a PostgreSQL connection says so, a
    sqlite3.Connection (used as it is, for speed) has no such attribute."""
    return getattr(connection, "dialect", SQLITE)


def upsert_sql(table: str, key: Sequence[str], columns: Sequence[str]) -> str:
    """INSERT of `key` + `columns` that replaces the other columns of the row with that
    key: SQLite's INSERT OR REPLACE, written so that both backends run it."""
    names = [*key, *columns]
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns)
    return (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )
