"""Circuit breakers of watch mode, kept in the state database: which hosts are backing off.

A watch process writes a row when a host's breaker opens (or its backoff grows) and deletes
it when the host answers again; `checkrun alerts` lists the rows, and a restarted watch
process picks its backoffs up where they were. Host names arrive masked, like every key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from checkrunner.state.dialect import upsert_sql

if TYPE_CHECKING:
    from checkrunner.state.db import StateDB


@dataclass(frozen=True)
class StoredBackoff:
    host: str
    failures: int  # failed attempts in a row
    next_attempt_at: float
    reason: str
    message: str
    updated_at: float


class BackoffStore:
    """The host_backoff table. Each write is its own small transaction."""

    def __init__(self, db: StateDB):
        self.db = db

    def save(self, backoff: StoredBackoff) -> None:
        with self.db.transaction() as connection:
            connection.execute(
                upsert_sql(
                    "host_backoff",
                    ("host",),
                    ("failures", "next_attempt_at", "reason", "message", "updated_at"),
                ),
                (
                    backoff.host,
                    backoff.failures,
                    backoff.next_attempt_at,
                    backoff.reason,
                    backoff.message,
                    backoff.updated_at,
                ),
            )

    def clear(self, host: str) -> None:
        with self.db.transaction() as connection:
            connection.execute("DELETE FROM host_backoff WHERE host = ?", (host,))

    def all(self) -> list[StoredBackoff]:
        rows = self.db.connection.execute(
            "SELECT host, failures, next_attempt_at, reason, message, updated_at "
            "FROM host_backoff ORDER BY host"
        )
        return [StoredBackoff(*row) for row in rows]
