"""Leadership among `checkrun watch --ha` replicas that share a state database: every SQL
statement about leases is here.

A lease is one row per name (the playbook, and its shard): who holds it, until when, and an
epoch that grows each time it changes hands. A replica takes it when it is free, expired or
already its own (`acquire`, one statement, so two replicas racing for it cannot both win),
and keeps it by taking it again before it expires. Whoever holds it does the work; the others
stand by and try again.

A lease alone cannot stop a leader that stalled past its expiry (a long pause, a lost link)
from writing once it resumes, after a standby took over. So every transaction that records a
round checks, inside itself, that its replica still holds the lease with its epoch (`fence`):
the takeover's UPDATE of that row and the check exclude each other (SQLite: one writer at a
time; PostgreSQL: the check's FOR SHARE row lock), so a round is recorded by the holder or
not at all. Replicas compare expiries with their own clocks: keep them in sync (NTP); the TTL
is seconds, so skew well under a second does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from checkrunner.errors import LeaseLost
from checkrunner.state.dialect import dialect_of

if TYPE_CHECKING:
    from checkrunner.state.db import StateDB


@dataclass(frozen=True)
class Holder:
    holder: str
    epoch: int
    expires_at: float


class Lease:
    def __init__(self, db: StateDB, name: str, holder: str, ttl: float):
        self.db = db
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.epoch: int | None = None  # while this replica holds it
        self.seen: Holder | None = None  # the lease as the last acquire found it

    def acquire(self, now: float) -> bool:
        """Take the lease (free, expired or already ours) until now + ttl: whether we hold it."""
        with self.db.transaction() as connection:
            connection.execute(
                "INSERT INTO leases (name, holder, epoch, expires_at) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (name) DO UPDATE SET "
                "epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch "
                "ELSE leases.epoch + 1 END, "
                "holder = excluded.holder, expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at < ?",
                (self.name, self.holder, now + self.ttl, now),
            )
            self.seen = _holder(connection, self.name)
        held = self.seen is not None and self.seen.holder == self.holder
        self.epoch = self.seen.epoch if held and self.seen is not None else None
        return held

    def release(self) -> None:
        """Let a standby take over at once (a clean stop)."""
        with self.db.transaction() as connection:
            connection.execute(
                "UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?",
                (self.name, self.holder),
            )
        self.epoch = None

    def fence(self, connection: Any) -> None:
        """Inside a transaction that records: LeaseLost unless we still hold the lease with
        the epoch we took it at (an expiry we did not renew in time counts as held until a
        standby took it: nobody else has written)."""
        lock = " FOR SHARE" if dialect_of(connection).name == "postgresql" else ""
        row = connection.execute(
            f"SELECT holder, epoch FROM leases WHERE name = ?{lock}", (self.name,)
        ).fetchone()
        if self.epoch is None or row is None or (row[0], row[1]) != (self.holder, self.epoch):
            raise LeaseLost(f"the lease {self.name!r} is held by {row[0] if row else 'nobody'}")


def _holder(connection: Any, name: str) -> Holder | None:
    row = connection.execute(
        "SELECT holder, epoch, expires_at FROM leases WHERE name = ?", (name,)
    ).fetchone()
    return Holder(row[0], int(row[1]), float(row[2])) if row else None
