"""Watch mode's delivery: the outbox delivered continuously by threads of their own, so that a
receiver that is down or slow never holds a round.

How the watch loop uses it (serve/watch.py; `db` is the loop's StateDB, `loaded` its
LoadedConfig):

    worker = DeliveryWorker(db, loaded.receivers.receivers, loaded.masker.text,
                            on_event=lambda kind, detail: events.emit(kind.replace(" ", "-"), detail))
    worker.start()      # also delivers what an earlier process left in the outbox
    # every round, instead of process_run(..., deliver=True):
    outcome = enqueue_run(db, spec, loaded.receivers, plan, run, loaded.masker.text,
                          group_waits=True)   # commits alert state and the outbox, sends nothing
    worker.wake()       # returns at once; outcome.unrenderable are this round's failures
    # on SIGHUP, once the new configuration is in:
    worker.update(new.receivers.receivers, new.masker.text)
    # on SIGTERM/SIGINT, from the loop (not inside the signal handler), before db.close():
    worker.stop(grace)  # the messages in flight finish and are committed; the rest stay queued

A grace at least as long as the receivers' timeouts (10s by default) lets every send in flight
end cleanly. The signal handler itself should only note the signal: an Event.set() in it can
deadlock against the main thread's own Event.wait() on that Event (the handler runs in the
main thread, which may hold the Event's lock at that moment).

`on_event(kind, detail)` is called from the worker's threads with kind DELIVERED ("delivered"),
FAILED ("delivery failed": refused for good, it left the outbox) or DEFERRED ("delivery
deferred": an attempt failed, retried after the pause the detail names), and a one-line
detail masked with the run's mask. It must be thread-safe (the events log and WatchStatus are).

Each destination (a receiver config's target) has its own thread, a "lane", while it has
messages queued: a lane sends its destination's messages one at a time in the order they
were queued and, when an attempt fails, waits its backoff (doubling up to max_backoff, or the
Retry-After the destination sent) before trying the same message again. A destination that
is down or hangs therefore delays only its own messages; the others go on. wake() never
shortens a backoff: a down receiver is not tried once per round.

The outbox rows are the truth: a message is pending until the commit that says its receiver
accepted or refused it, and each thread uses its own connection to the database file (a
connection belongs to the thread that opened it). The worker claims the outbox
(state/claim.py) from start() until its last send has ended, after stop() too when the grace
ran out: a second worker (in this process or another) waits for the claim, and a one-shot
run (`checkrun`, `notify --flush`) on the same state leaves delivery to the worker, so no
message is sent twice while the process stops cleanly. A crash between a receiver's
acceptance and that commit sends it again next time: delivery is at least once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from checkrunner.alerting.config import ReceiverConfig
from checkrunner.alerting.delivery import (
    DEFERRED,
    DELIVERED,
    FAILED,
    FIRST_BACKOFF,
    MAX_BACKOFF,
    TAKEN,
    Backoff,
    Sender,
)
from checkrunner.errors import ConfigError
from checkrunner.state.alerts import Outbox
from checkrunner.state.claim import DeliveryClaim
from checkrunner.state.db import STATE_ERRORS, StateDB

__all__ = ["DELIVERED", "DEFERRED", "FAILED", "DeliveryWorker"]

RESCAN = 30.0  # seconds between looks at the outbox when no round woke the worker
_CLAIM_POLL = 0.2  # seconds between tries for the claim another worker holds

EventCallback = Callable[[str, str], None]


class DeliveryWorker:
    """Delivers the outbox of `db`'s file from threads of its own; see the module docstring.
    `db` is the caller's: only its path is used here."""

    def __init__(
        self,
        db: StateDB,
        receivers: dict[str, list[ReceiverConfig]],
        mask: Callable[[str], str] = lambda text: text,
        on_event: EventCallback | None = None,
        first_backoff: float = FIRST_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        rescan: float = RESCAN,
        clock: Callable[[], float] = time.time,
    ):
        self._db = db
        self._rescan = rescan
        self._receivers = receivers
        self._mask = mask
        self._on_event = on_event or (lambda kind, detail: None)
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # the lanes, and a lane's decision that it is done
        self._lanes: dict[str, threading.Thread] = {}
        self._thread: threading.Thread | None = None

    # -- what the watch loop calls -----------------------------------------------------------

    def start(self) -> None:
        """Start delivering (what is queued already too). ConfigError (exit 5) when the
        database file cannot be opened."""
        ready = threading.Event()
        problems: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._watch_outbox, args=(ready, problems), name="delivery", daemon=True
        )
        self._thread.start()
        ready.wait()
        if problems:
            raise ConfigError(
                f"state database {self._db.path}: {problems[0]}",
                hint="give a writable path with --state PATH",
            )

    def wake(self) -> None:
        """A round committed new messages: look at the outbox now. Never blocks."""
        self._wake.set()

    def update(
        self, receivers: dict[str, list[ReceiverConfig]], mask: Callable[[str], str]
    ) -> None:
        """A reloaded configuration: the next attempts use these receivers and this mask (a
        message whose receiver is gone fails, as in a one-shot run)."""
        self._receivers, self._mask = receivers, mask
        self.wake()

    def stop(self, grace: float) -> bool:
        """Stop: every message in flight finishes (or times out), its result is committed,
        and what is still queued stays in the outbox for the next worker or run. True when
        every thread ended within `grace` seconds."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            threads = [t for t in (self._thread, *self._lanes.values()) if t is not None]
        deadline = time.monotonic() + grace
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    # -- the threads -------------------------------------------------------------------------

    def _watch_outbox(self, ready: threading.Event, problems: list[BaseException]) -> None:
        """The worker's thread: holds the claim, and starts a lane for every destination
        with messages queued when a round wakes it (and every `rescan` seconds)."""
        try:
            claim = self._db.delivery_claim()
            db = self._db.reopen()
        except (*STATE_ERRORS, OSError) as exc:
            problems.append(exc)
            ready.set()
            return
        ready.set()
        try:
            if self._take(claim):
                self._start_lanes_when_woken(Outbox(db))
        finally:
            with self._lock:
                lanes = list(self._lanes.values())
            for lane in lanes:  # the claim outlives every send in flight
                lane.join()
            claim.release()
            db.close()

    def _take(self, claim: DeliveryClaim) -> bool:
        """The claim, once whoever holds it lets go; False when stopped first."""
        told = False
        while not claim.take():
            if not told:
                self._event(DEFERRED, f"waiting for {claim.holder()}, which delivers this outbox")
                told = True
            if self._stopping.wait(_CLAIM_POLL):
                return False
        return True

    def _start_lanes_when_woken(self, outbox: Outbox) -> None:
        self._wake.set()  # what an earlier process left
        unreadable = Backoff(self._first_backoff, self._max_backoff)
        while True:
            self._wake.wait(self._rescan)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._start_lanes(outbox.pending_destinations())
            except STATE_ERRORS as exc:
                # The wake that found it failing may have announced a message: look again
                # soon (a database restarting), not at the next round or rescan.
                pause = unreadable.pause(None)
                self._event(DEFERRED, f"cannot read the outbox: {exc}; again in {pause:g}s")
                if self._stopping.wait(pause):
                    return
                self._wake.set()
            else:
                unreadable.reset()

    def _start_lanes(self, destinations: list[str]) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            for destination in destinations:
                if destination not in self._lanes:
                    lane = threading.Thread(
                        target=self._lane, args=(destination,), name="delivery-lane", daemon=True
                    )
                    self._lanes[destination] = lane
                    lane.start()

    def _lane(self, destination: str) -> None:
        """One destination's thread, while it has messages queued."""
        try:
            db = self._db.reopen()
            try:
                self._deliver_destination(Outbox(db), db, destination)
            finally:
                db.close()
        except STATE_ERRORS as exc:  # the next wake (or rescan) starts the lane again
            self._event(DEFERRED, f"cannot update the outbox: {exc}")
        finally:
            with self._lock:
                if self._lanes.get(destination) is threading.current_thread():
                    del self._lanes[destination]

    def _deliver_destination(self, outbox: Outbox, db: StateDB, destination: str) -> None:
        backoff = Backoff(self._first_backoff, self._max_backoff)
        while not self._stopping.is_set():
            message = outbox.next_pending(destination)
            if message is None:
                with self._lock:  # a round's wake after this sees no lane and starts one
                    if outbox.next_pending(destination) is None:
                        del self._lanes[destination]
                        return
                continue
            sender = Sender(db, self._receivers, self._mask, self._clock)
            wait = sender.rate_limit_wait(message)
            if wait:
                self._stopping.wait(wait)
                continue
            attempt = sender.attempt(message)
            if attempt.result == TAKEN:  # another runner sends it: look again shortly
                self._stopping.wait(_CLAIM_POLL)
                continue
            if attempt.result != DEFERRED:
                backoff.reset()
                self._event(attempt.result, attempt.summary)
                continue
            pause = backoff.pause(attempt.retry_after)
            self._event(DEFERRED, f"{attempt.summary}; next attempt in {pause:g}s")
            self._stopping.wait(pause)

    def _event(self, kind: str, detail: str) -> None:
        self._on_event(kind, self._mask(detail))
