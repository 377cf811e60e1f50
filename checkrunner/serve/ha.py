"""Watch mode's `--ha`: two or more `checkrun watch` replicas of one playbook (and shard)
sharing a state database (PostgreSQL across machines, or one SQLite file on one machine);
one leads and works, the others stand by and take over when it stops or dies.

Leadership is the lease in the state database (state/lease.py). A thread of its own takes
it again every `ttl / 3` seconds, so a long round (a handler's settle) does not lose it, and
a standby tries as often, so it takes over at most `ttl + ttl / 3` seconds after the leader
died (a leader that stops cleanly releases it: at once). Every transaction that records a
round is fenced with the lease (`fence`): a leader that stalled past its expiry and resumed
after a takeover records nothing (LeaseLost), so no round is recorded twice, no log line
counted twice and no notification queued twice. Notifications already queued are in the
shared outbox: whichever replica delivers claims each message (state/claim.py; PostgreSQL:
row locks), so none is lost with the leader and none sent twice (a crash between a
receiver's answer and the commit that records it excepted: delivery is at least once).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from checkrunner.errors import LeaseLost
from checkrunner.state.db import StateDB
from checkrunner.state.lease import Lease


def replica_name() -> str:
    """How this replica names itself in the lease (and /-/ready on the others)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    def __init__(
        self,
        db: StateDB,
        name: str,
        ttl: float,
        on_change: Callable[[bool, str], None] = lambda leading, detail: None,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        """`on_change(leading, detail)` is called from the lease's thread when this replica
        starts or stops leading (detail: the epoch, or who leads now)."""
        self.lease = Lease(db, name, holder or replica_name(), ttl)
        self.on_change = on_change
        self.clock = clock
        self.leader = ""  # who leads, as last seen
        self._leading = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkrun-lease", daemon=True)

    @property
    def leading(self) -> bool:
        return self._leading

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing; a leader releases the lease so that a standby takes over now."""
        self._stop.set()
        self._thread.join()

    def fence(self, connection: Any) -> None:
        """Inside a recording transaction: LeaseLost unless this replica still leads."""
        if not self._leading:
            raise LeaseLost("this replica is standing by")
        self.lease.fence(connection)

    def lost(self) -> None:
        """The loop found the lease gone (LeaseLost while recording): stand by now."""
        self._change(False, "the lease was taken while a round was recorded")

    def _run(self) -> None:
        lease = Lease(self.lease.db.reopen(), self.lease.name, self.lease.holder, self.lease.ttl)
        try:
            while not self._stop.is_set():
                self._renew(lease)
                self._stop.wait(lease.ttl / 3)
            if self._leading:
                lease.release()
        finally:
            lease.db.close()

    def _renew(self, lease: Lease) -> None:
        try:
            held = lease.acquire(self.clock())
        except Exception as exc:  # noqa: BLE001 - a database we cannot reach: not leading
            self.lease.epoch = None
            self._change(False, f"the state database cannot be reached: {exc!r}")
            return
        self.leader = lease.seen.holder if lease.seen is not None else ""
        self.lease.epoch = lease.epoch
        self._change(held, f"epoch {lease.epoch}" if held else f"{self.leader} leads")

    def _change(self, leading: bool, detail: str) -> None:
        if leading != self._leading:
            self._leading = leading
            self.on_change(leading, detail)
