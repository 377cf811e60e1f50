"""What differs between the state backends' SQL, so that the stores write each statement once.

The stores (logs.py, alerts.py, history.py ...) write SQL that SQLite and PostgreSQL both
run: `?` placeholders (the PostgreSQL connection turns them into psycopg's), upserts as
`INSERT ... ON CONFLICT (key) DO UPDATE SET col = excluded.col` (`upsert_sql`), `INSERT
... ON CONFLICT DO NOTHING` for SQLite's INSERT OR IGNORE, `RETURNING id` for a new row's
id. The few fragments that cannot be written once are a Dialect's attributes; a store finds
its connection's with `dialect_of`. Nothing here imports a database driver.

A statement over many rows (a round's samples, streaks, offsets) is `execute_for_rows`'s:
on SQLite, in process, once per row (executemany); on PostgreSQL once, its rows unnested
from one array parameter per column, so that a round costs one round trip and one
statement text (psycopg parses and the server plans a constant text once) whatever the
number of rows (`rows_source`, `insert_rows`, `upsert_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# A column of rows passed as arrays: its name and its SQL type (each array parameter is
# cast to an array of it: PostgreSQL cannot tell an array's type otherwise, nor a NULL's).
Column = tuple[str, str]


@dataclass(frozen=True)
class RowsStatement:
    """A statement run for many rows of `columns` (execute_for_rows)."""

    text: str
    columns: tuple[Column, ...]


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
    # Takes a Python list as one array parameter: a statement over many rows runs once
    # (execute_for_rows).
    arrays: bool
    # Its text holds a NUL character (PostgreSQL's cannot: its connection writes U+FFFD).
    keeps_nul: bool


SQLITE = Dialect(
    name="sqlite",
    smaller="MIN",
    larger="MAX",
    ordered_join="CROSS JOIN",
    bucket_text="printf('%d|%d|%.17g|%.17g|%.17g|%s'",
    claim_rows="",
    arrays=False,
    keeps_nul=True,
)
POSTGRESQL = Dialect(
    name="postgresql",
    smaller="LEAST",
    larger="GREATEST",
    ordered_join="JOIN",
    bucket_text="format('%s|%s|%s|%s|%s|%s'",
    claim_rows=" FOR UPDATE SKIP LOCKED",
    arrays=True,
    keeps_nul=False,
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


def stored_text(dialect: Dialect, text: str) -> str:
    """`text` as the dialect's database gives it back."""
    return text if dialect.keeps_nul or "\x00" not in text else text.replace("\x00", "\ufffd")


def rows_source(columns: Sequence[Column], alias: str = "given", numbered: str = "") -> str:
    """A FROM item of the rows of one array parameter per column (PostgreSQL), in order;
    `numbered`: a column of that name numbers them from 1."""
    arrays = ", ".join(f"CAST(? AS {kind}[])" for _, kind in columns)
    names = [name for name, _ in columns] + ([numbered] if numbered else [])
    ordinality = " WITH ORDINALITY" if numbered else ""
    return f"unnest({arrays}){ordinality} AS {alias} ({', '.join(names)})"


def insert_rows(
    dialect: Dialect, table: str, columns: Sequence[Column], tail: str = ""
) -> RowsStatement:
    """INSERT of rows of `columns` into `table` (`tail`: an ON CONFLICT clause): a row per
    execution, or every row from arrays."""
    names = ", ".join(name for name, _ in columns)
    if dialect.arrays:
        text = f"INSERT INTO {table} ({names}) SELECT {names} FROM {rows_source(columns)}{tail}"
    else:
        text = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))}){tail}"
    return RowsStatement(text, tuple(columns))


def upsert_rows(
    dialect: Dialect, table: str, key: Sequence[Column], columns: Sequence[Column]
) -> RowsStatement:
    """`upsert_sql` for `execute_for_rows`. The rows' keys must differ (PostgreSQL updates
    a row once per statement)."""
    updates = ", ".join(f"{name} = excluded.{name}" for name, _ in columns)
    tail = f" ON CONFLICT ({', '.join(name for name, _ in key)}) DO UPDATE SET {updates}"
    return insert_rows(dialect, table, [*key, *columns], tail)


def execute_for_rows(
    connection: Any, statement: RowsStatement, rows: Sequence[Sequence[Any]]
) -> None:
    """`statement` for each of `rows`, in order: once with each column's values as one
    array parameter where the dialect takes arrays (its text reads its rows from
    `rows_source`), else once per row."""
    if not rows:
        return
    if dialect_of(connection).arrays:
        connection.execute(statement.text, array_columns(rows, statement.columns))
    else:
        connection.executemany(statement.text, rows)


def array_columns(rows: Sequence[Sequence[Any]], columns: Sequence[Column]) -> list[list[Any]]:
    """`rows` as one list per column, each value of its column's type: an array holds one
    type (an int among floats, which a row of its own may pass, is made a float)."""
    arrays = []
    for values, (_, kind) in zip(zip(*rows), columns):
        convert = _ARRAY_TYPES.get(kind)
        if convert is None:
            arrays.append(list(values))
        else:
            arrays.append([value if value is None else convert(value) for value in values])
    return arrays or [[] for _ in columns]


_ARRAY_TYPES = {"DOUBLE PRECISION": float, "BIGINT": int, "TEXT": str}
