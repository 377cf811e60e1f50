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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from checkrunner.alerting.config import ReceiverConfig
from checkrunner.state.alerts import Outbox, PendingMessage
from checkrunner.state.db import StateDB
from checkrunner.state.failpoints import failpoint

DEFAULT_BUDGET = 30.0  # seconds a run spends delivering before leaving the rest for later
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
MAX_ATTEMPTS_PER_RUN = 5


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: list[str] = field(default_factory=list)  # refused for good, with the reason
    deferred: int = 0  # left in the outbox for the next run
    errors: list[str] = field(default_factory=list)


class Dispatcher:
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
        self.clock = clock
        self.receivers = receivers
        self.mask = mask
        self.budget = budget
        self.sleep = sleep

    def deliver(self) -> DeliveryReport:
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
        from checkrunner.alerting import receivers as registry

        config = self._config(message)
        if config is None:
            self._finish(message, "failed", "its receiver is no longer in the configuration")
            report.failed.append(f"{message.receiver}: receiver removed from the configuration")
            return True
        module = registry.get(message.kind)
        options = config.options
        backoff = FIRST_BACKOFF
        for _ in range(MAX_ATTEMPTS_PER_RUN):
            wait = self._rate_limit_wait(module, message.destination)
            if wait and time.monotonic() + wait > deadline:
                report.deferred += 1
                return False
            if wait:
                self.sleep(wait)
            timeout = min(
                float(options.get("timeout") or 10.0), max(1.0, deadline - time.monotonic())
            )
            outcome = module.send(options, message.payload, timeout)
            self._record_attempt(message, outcome)
            if outcome.ok:
                failpoint("after-send")
                self._finish(message, "delivered", None)
                report.delivered += 1
                return True
            detail = self.mask(outcome.detail)
            if not outcome.retryable:
                self._finish(message, "failed", detail)
                report.failed.append(f"{message.receiver} ({message.kind}): {detail}")
                return True
            report.errors.append(f"{message.receiver} ({message.kind}): {detail}")
            pause = outcome.retry_after if outcome.retry_after is not None else backoff
            backoff = min(backoff * 2, MAX_BACKOFF)
            if time.monotonic() + pause > deadline:
                break
            self.sleep(pause)
        report.deferred += 1
        return False

    def _config(self, message: PendingMessage) -> ReceiverConfig | None:
        for config in self.receivers.get(message.receiver, []):
            if config.kind == message.kind and config.index == message.config_index:
                return config
        return None

    def _rate_limit_wait(self, module: Any, destination: str) -> float:
        """Seconds until this destination may be sent to again under its rate limit."""
        limit = getattr(module, "RATE_LIMIT", None)
        if not limit:
            return 0.0
        count, window = limit
        now = self.clock()
        sent = self.outbox.sent_since(destination, now - window)
        if len(sent) < count:
            return 0.0
        return max(0.0, sent[len(sent) - count] + window - now)

    def _record_attempt(self, message: PendingMessage, outcome: Any) -> None:
        error = None if outcome.ok else self.mask(outcome.detail)
        self.outbox.record_attempt(message.id, message.destination, error, self.clock())

    def _finish(self, message: PendingMessage, state: str, error: str | None) -> None:
        self.outbox.finish(message.id, state, error, self.clock())
