"""The circuit breaker of one host: exponential backoff while it cannot be reached.

Closed: the host is tried whenever its checks are due. After a failure it opens: the host
is not tried again until its backoff is over (its interval doubled per failure in a row,
capped); in between the scheduler reports it UNREACHABLE without holding a worker. When
the backoff is over it is half-open: one attempt; success closes it, failure opens it for
twice as long. Pure: the caller passes the clock's time.
"""

from __future__ import annotations

from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


@dataclass
class Breaker:
    failures: int = 0  # failed attempts in a row
    next_attempt_at: float = 0.0  # while open: when the half-open probe may go
    reason: str = ""  # why the last attempt failed (an UnreachableReason value)
    message: str = ""

    def state(self, now: float) -> str:
        if self.failures == 0:
            return CLOSED
        return OPEN if now < self.next_attempt_at else HALF_OPEN

    def record_failure(
        self, now: float, base: float, cap: float, reason: str = "", message: str = ""
    ) -> float:
        """The attempt failed: open for base·2^failures (at most `cap`); returns that backoff."""
        self.failures += 1
        backoff = backoff_seconds(self.failures, base, cap)
        self.next_attempt_at = now + backoff
        self.reason, self.message = reason, message
        return backoff

    def record_success(self) -> bool:
        """The host answered: closed again; True when it was not closed before."""
        was_open = self.failures > 0
        self.failures, self.next_attempt_at, self.reason, self.message = 0, 0.0, "", ""
        return was_open


def backoff_seconds(failures: int, base: float, cap: float) -> float:
    """How long to wait after `failures` failed attempts in a row: the interval doubled per
    failure, never more than `cap`."""
    return min(cap, base * 2.0 ** min(failures, 64))
