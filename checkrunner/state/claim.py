"""Which processes deliver a state database's outbox, so that two never send the same message.

Watch mode's delivery worker claims the outbox for as long as it runs: an exclusive flock on
`STATE.delivery` beside the database (the kernel drops it when the process dies, however it
dies). A one-shot run (`checkrun`, `notify --flush`) delivers under a shared flock: one-shot
runs may overlap each other as before, and a run that finds the outbox claimed leaves it to
the watch process, whose worker waits for the one-shot runs delivering now to finish.

flock belongs to an open file, not a process: two claims in one process exclude each other
as two processes' do.
"""

from __future__ import annotations

import fcntl
import os

SUFFIX = ".delivery"


class DeliveryClaim:
    """The claim on the outbox of the database at `db_path` (created 0600 on first use)."""

    def __init__(self, db_path: str):
        self.path = db_path + SUFFIX
        self._fd: int | None = None
        self._exclusive = False

    def share(self) -> bool:
        """A one-shot run's claim: False when a watch process holds the outbox."""
        return self._lock(fcntl.LOCK_SH | fcntl.LOCK_NB, holder=None)

    def take(self) -> bool:
        """The watch worker's claim: False while another claim holds it (try again)."""
        return self._lock(fcntl.LOCK_EX | fcntl.LOCK_NB, holder=f"pid {os.getpid()}")

    def holder(self) -> str:
        """Who holds the exclusive claim, as it wrote itself down ("pid 1234")."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                return handle.read().strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._fd is None:
            return
        if self._exclusive:
            os.ftruncate(self._fd, 0)  # no holder written down once it let go
        os.close(self._fd)  # closing drops the flock
        self._fd, self._exclusive = None, False

    def _lock(self, operation: int, holder: str | None) -> bool:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, operation)
        except BlockingIOError:
            return False
        if holder is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, holder.encode(), 0)
            self._exclusive = True
        return True
