"""Watch mode's `--push URL`: an edge runner's results to a central Pushgateway, through the
state database's push outbox, so that a runner on a poor link loses nothing and never waits
for the link.

After each round that recorded results, `queued(now)` puts the exposition of every host's
latest results (what /metrics serves) in the outbox, superseding a push of the same group
still pending there (a Pushgateway keeps only a group's newest push, so a runner cut off for
a day delivers one push when its link returns, not thousands), and wakes the worker's
thread. The thread delivers with report/push.py `deliver` on its own connection; while the
gateway fails it backs off, doubling from FIRST_BACKOFF to MAX_BACKOFF, and a wake never
shortens that (alerting's Backoff, as the delivery worker's lanes): a gateway that is down is
not tried once per round. Events: `push-deferred`
when a push is kept (once per outage), `push-delivered` when pushes go out again after one,
`push-failed` when the gateway refused one for good.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from checkrunner.alerting.delivery import Backoff
from checkrunner.report.push import Gateway, PushReport, deliver
from checkrunner.state.db import StateDB
from checkrunner.state.pushes import PushOutbox

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0


class PushWorker:
    def __init__(
        self,
        db: StateDB,
        gateway: Gateway,
        grouping: dict[str, str],
        payload: Callable[[], bytes],
        mask: Callable[[str], str],
        on_event: Callable[[str, str], None] = lambda kind, detail: None,
        clock: Callable[[], float] = time.time,
    ):
        """`grouping`: the push's job and grouping key; `payload`: the exposition to push
        now (thread-safe: WatchStatus's); `on_event(kind, detail)` is called from the
        worker's thread with a masked detail."""
        self.db = db
        self.gateway = gateway
        self.grouping = grouping
        self.payload = payload
        self.mask = mask
        self.on_event = on_event
        self.clock = clock
        self._wake = threading.Condition()
        self._woken = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="checkrun-push", daemon=True)

    def start(self) -> None:
        """Also delivers what an earlier process left pending for this gateway."""
        self._thread.start()
        self.wake()

    def queued(self, now: float) -> None:
        """The latest results queued (superseding a pending push of the group), then a wake."""
        outbox = PushOutbox(self.db)
        outbox.queue(self.gateway.destination, self.grouping, self.payload(), now, latest_only=True)
        self.wake()

    def wake(self) -> None:
        with self._wake:
            self._woken = True
            self._wake.notify()

    def stop(self, grace: float) -> bool:
        """Stop after the push in flight (at most `grace` seconds): False when it was left."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(grace)
        return not self._thread.is_alive()

    def _run(self) -> None:
        db = self.db.reopen()  # a connection belongs to the thread that opened it
        try:
            backoff = Backoff(FIRST_BACKOFF, MAX_BACKOFF)
            retry_at: float | None = None  # while a push is kept: when to try again
            while self._next(retry_at):
                report = self._deliver(db)
                if report.pending:
                    if retry_at is None:
                        detail = f"{report.pending} kept in the state database ({report.error})"
                        self.on_event("push-deferred", self.mask(detail))
                    retry_at = time.monotonic() + backoff.pause(None)
                    continue
                if retry_at is not None and report.delivered:
                    self.on_event("push-delivered", f"{report.delivered} push(es) delivered")
                backoff.reset()
                retry_at = None
        finally:
            db.close()

    def _next(self, retry_at: float | None) -> bool:
        """Wait for a wake, or while a push is kept for its backoff to end (a wake does not
        shorten it): False once stopping."""
        with self._wake:
            while not self._stopping:
                left = retry_at - time.monotonic() if retry_at is not None else None
                if (left is not None and left <= 0) or (left is None and self._woken):
                    self._woken = False
                    return True
                self._wake.wait(left)
            return False

    def _deliver(self, db: StateDB) -> PushReport:
        try:
            report = deliver(PushOutbox(db), self.gateway, self.clock)
        except Exception as exc:  # noqa: BLE001 - the state database failing: retried later
            return PushReport(pending=1, error=repr(exc))
        for refusal in report.refused:
            self.on_event("push-failed", self.mask(f"refused, not retried: {refusal}"))
        return report
