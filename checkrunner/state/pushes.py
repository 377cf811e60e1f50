"""The Pushgateway outbox: every SQL statement `--push` runs is here.

A run queues its metrics before pushing them; a push that fails stays `pending` and the
next run with the same gateway delivers it, oldest first, before its own. Each change is
committed on its own (as alerting's `Outbox`): a crash after the gateway accepted a push
and before the row says so pushes it again next run (at least once, in order; the gateway
keeps the newest push of a group, so a repeat changes nothing it shows).

Rows are keyed by a digest of the gateway URL, never the URL: a URL may hold credentials,
and the state database holds no secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checkrunner.state.db import StateDB

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
SUPERSEDED = "superseded"  # a newer push of its group was queued before it went out
KEPT_SECONDS = 7 * 86400.0  # delivered and failed rows are kept this long, to be looked at


@dataclass(frozen=True)
class PendingPush:
    id: int
    grouping: dict[str, str]  # "job" and the grouping key's labels
    payload: bytes
    created_at: float
    attempts: int


class PushOutbox:
    """The pushes of one state database, each change committed at once."""

    def __init__(self, db: StateDB):
        self.db = db

    def queue(
        self,
        destination: str,
        grouping: dict[str, str],
        payload: bytes,
        now: float,
        latest_only: bool = False,
    ) -> int:
        """`latest_only`: the pending pushes of the same group are superseded by this one
        (watch mode: a gateway keeps only a group's newest push, so a runner cut off for a
        day delivers one push when its link returns, not thousands)."""
        with self.db.transaction() as connection:
            connection.execute(
                "DELETE FROM push_outbox WHERE state != ? AND done_at < ?",
                (PENDING, now - KEPT_SECONDS),
            )
            if latest_only:
                connection.execute(
                    "UPDATE push_outbox SET state = ?, done_at = ? "
                    "WHERE state = ? AND destination = ? AND grouping = ?",
                    (SUPERSEDED, now, PENDING, destination, json.dumps(grouping, sort_keys=True)),
                )
            cursor = connection.execute(
                "INSERT INTO push_outbox (destination, grouping, payload, created_at) "
                "VALUES (?, ?, ?, ?)",
                (destination, json.dumps(grouping, sort_keys=True), payload, now),
            )
        return int(cursor.lastrowid)

    def pending(self, destination: str) -> list[PendingPush]:
        """The pushes still to deliver to `destination`, oldest first."""
        rows = self.db.connection.execute(
            "SELECT id, grouping, payload, created_at, attempts FROM push_outbox "
            "WHERE state = ? AND destination = ? ORDER BY id",
            (PENDING, destination),
        ).fetchall()
        return [
            PendingPush(id_, json.loads(grouping), bytes(payload), created_at, attempts)
            for id_, grouping, payload, created_at, attempts in rows
        ]

    def pending_elsewhere(self, destination: str) -> int:
        """How many pushes wait for other gateways (a run with another --push URL)."""
        (count,) = self.db.connection.execute(
            "SELECT COUNT(*) FROM push_outbox WHERE state = ? AND destination != ?",
            (PENDING, destination),
        ).fetchone()
        return int(count)

    def record_failure(self, push_id: int, error: str) -> None:
        """A try that failed for now: the push stays pending."""
        with self.db.transaction() as connection:
            connection.execute(
                "UPDATE push_outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error, push_id),
            )

    def finish(self, push_id: int, state: str, error: str | None, now: float) -> None:
        """The push left the outbox: `delivered`, or `failed` for good (the gateway refused it)."""
        with self.db.transaction() as connection:
            connection.execute(
                "UPDATE push_outbox SET state = ?, attempts = attempts + 1, done_at = ?, "
                "last_error = COALESCE(?, last_error) WHERE id = ?",
                (state, now, error, push_id),
            )

    def history(self) -> list[tuple[int, str, float | None]]:
        """(id, state, done_at) of every row, in queue order: what `checkrun` kept."""
        return [
            (id_, state, done_at)
            for id_, state, done_at in self.db.connection.execute(
                "SELECT id, state, done_at FROM push_outbox ORDER BY id"
            )
        ]
