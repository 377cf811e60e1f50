"""Delivering the outbox: in order per destination, with retries, backoff and rate limits.

A message leaves the outbox only when its receiver accepted it (`delivered`) or refused
it for good (`failed`: a 4xx other than 429, a rejected errcode). Network errors, 5xx and
429 are retried with exponential backoff (Retry-After respected) while the run's delivery
budget lasts; what is left is sent by the next run or `checkrun notify --flush`. Messages
to one destination go out in the order they were queued: after a failure, the later ones
to that destination wait too.

A crash between a receiver's acceptance and the commit that marks the message delivered
re-sends it next run: delivery is at least once, and the notification log keeps the
engine from queueing the same notification twice.

`Sender` is one attempt at one message under these rules; `Dispatcher` (one-shot runs,
`notify`) drives it within a run's budget, sleeping between attempts, and watch mode's
`DeliveryWorker` (worker.py) drives it from its own threads, never holding a round. While a
worker runs, one-shot runs on the same state leave the outbox to it (state/claim.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from checkrunner.alerting.config import ReceiverConfig
from checkrunner.state.alerts import Outbox, PendingMessage
from checkrunner.state.db import StateDB
from checkrunner.state.failpoints import failpoint

DEFAULT_BUDGET = 30.0  # seconds a run spends delivering before leaving the rest for later
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
MAX_ATTEMPTS_PER_RUN = 5


DELIVERED = "delivered"
FAILED = "delivery failed"  # refused for good: left the outbox as failed
DEFERRED = "delivery deferred"  # to be tried again: still pending
# Not this process's to send now: another runner sharing the state (PostgreSQL) holds it or
# an earlier message to its destination, or it left the outbox since it was read.
TAKEN = "claimed elsewhere"


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: list[str] = field(default_factory=list)  # refused for good, with the reason
    deferred: int = 0  # left in the outbox for the next run
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Attempt:
    """What one attempt at a message came to: DELIVERED, FAILED or DEFERRED, with a masked
    one-line account (`summary`) and, when deferred, the destination's Retry-After."""

    result: str
    summary: str
    retry_after: float | None = None


@dataclass
class Backoff:
    """Pauses between failed attempts at one destination: doubling from `first` up to
    `most`; a Retry-After the destination sent is waited instead."""

    first: float = FIRST_BACKOFF
    most: float = MAX_BACKOFF
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._next = self.first

    def pause(self, retry_after: float | None) -> float:
        pause = retry_after if retry_after is not None else self._next
        self._next = min(self._next * 2, self.most)
        return pause

    def reset(self) -> None:
        self._next = self.first


class Sender:
    """One attempt at one message, recorded in the outbox on `db` (a connection of the
    calling thread): the attempt is committed, and the message leaves the outbox when its
    receiver accepted it or refused it for good."""

    def __init__(
        self,
        db: StateDB,
        receivers: dict[str, list[ReceiverConfig]],
        mask: Callable[[str], str] = lambda text: text,
        clock: Callable[[], float] = time.time,
    ):
        self.outbox = Outbox(db)
        self.receivers = receivers
        self.mask = mask
        self.clock = clock

    def attempt(self, message: PendingMessage, time_left: float | None = None) -> Attempt:
        """Send `message` once; `time_left`: the caller's budget, which shortens the
        receiver's timeout (never under a second)."""
        with self.outbox.claim(message.id) as claimed:
            if claimed is None:
                return Attempt(TAKEN, f"{message.receiver} ({message.kind}): not ours to send")
            return self._attempt(claimed, time_left)

    def _attempt(self, message: PendingMessage, time_left: float | None) -> Attempt:
        from checkrunner.alerting import receivers as registry

        config = self._config(message)
        if config is None:
            self._finish(message, "failed", "its receiver is no longer in the configuration")
            return Attempt(FAILED, f"{message.receiver}: receiver removed from the configuration")
        timeout = float(config.options.get("timeout") or 10.0)
        if time_left is not None:
            timeout = min(timeout, max(1.0, time_left))
        outcome = registry.get(message.kind).send(config.options, message.payload, timeout)
        error = None if outcome.ok else self.mask(outcome.detail)
        self.outbox.record_attempt(message.id, message.destination, error, self.clock())
        if outcome.ok:
            failpoint("after-send")
            self._finish(message, "delivered", None)
            return Attempt(DELIVERED, f"{message.receiver} ({message.kind})")
        summary = f"{message.receiver} ({message.kind}): {error}"
        if not outcome.retryable:
            self._finish(message, "failed", error)
            return Attempt(FAILED, summary)
        return Attempt(DEFERRED, summary, outcome.retry_after)

    def rate_limit_wait(self, message: PendingMessage) -> float:
        """Seconds until the message's destination may be sent to again under its rate limit."""
        from checkrunner.alerting import receivers as registry

        limit = getattr(registry.get(message.kind), "RATE_LIMIT", None)
        if not limit:
            return 0.0
        count, window = limit
        now = self.clock()
        sent = self.outbox.sent_since(message.destination, now - window)
        if len(sent) < count:
            return 0.0
        return max(0.0, sent[len(sent) - count] + window - now)

    def _config(self, message: PendingMessage) -> ReceiverConfig | None:
        for config in self.receivers.get(message.receiver, []):
            if config.kind == message.kind and config.index == message.config_index:
                return config
        return None

    def _finish(self, message: PendingMessage, state: str, error: str | None) -> None:
        self.outbox.finish(message.id, state, error, self.clock())


class Dispatcher:
    """The whole outbox within one run's `budget`, sleeping between attempts."""

    def __init__(
        self,
        db: StateDB,
        receivers: dict[str, list[ReceiverConfig]],
        mask: Callable[[str], str] = lambda text: text,
        budget: float = DEFAULT_BUDGET,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        self.db = db
        self.outbox = Outbox(db)
        self.sender = Sender(db, receivers, mask, clock)
        self.budget = budget
        self.sleep = sleep

    def deliver(self) -> DeliveryReport:
        """Everything queued, unless a watch process's worker delivers this outbox: then
        that worker sends it (at its next look), and it is reported left in the outbox."""
        claim = self.db.delivery_claim()
        try:
            if claim.share():
                return self._deliver_all()
            report = DeliveryReport(deferred=len(self.outbox.pending()))
            report.errors.append(f"the running checkrun watch ({claim.holder()}) delivers them")
            return report
        finally:
            claim.release()

    def _deliver_all(self) -> DeliveryReport:
        report = DeliveryReport()
        deadline = time.monotonic() + self.budget
        blocked: set[str] = set()  # destinations that must wait: keeps their order
        for message in self.outbox.pending():
            if message.destination in blocked:
                report.deferred += 1
                continue
            if not self._deliver_one(message, deadline, report):
                blocked.add(message.destination)
        return report

    def _deliver_one(
        self, message: PendingMessage, deadline: float, report: DeliveryReport
    ) -> bool:
        """True when the message left the outbox (delivered or refused for good)."""
        backoff = Backoff()
        for attempt_number in range(1, MAX_ATTEMPTS_PER_RUN + 1):
            wait = self.sender.rate_limit_wait(message)
            if wait and time.monotonic() + wait > deadline:
                report.deferred += 1
                return False
            if wait:
                self.sleep(wait)
            attempt = self.sender.attempt(message, deadline - time.monotonic())
            if attempt.result == DELIVERED:
                report.delivered += 1
                return True
            if attempt.result == FAILED:
                report.failed.append(attempt.summary)
                return True
            if attempt.result == TAKEN:  # another runner delivers it (or did)
                return False
            report.errors.append(attempt.summary)
            pause = backoff.pause(attempt.retry_after)
            if attempt_number == MAX_ATTEMPTS_PER_RUN or time.monotonic() + pause > deadline:
                break  # no pause after the last attempt: nothing follows it in this run
            self.sleep(pause)
        report.deferred += 1
        return False
