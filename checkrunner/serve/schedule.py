"""When each check of each host is due: stable jitter, intervals, the checks due together.

A host's checks start at a phase of their interval taken from a hash of the host's name
(stable across restarts and reloads, not random per start), so that a thousand hosts with
`interval: 1m` spread over the minute instead of firing in the same second. The checks of a
host that are due within SLACK of each other go in one batch (rate collectors then share
one sampling window). Each check's next time is its last scheduled time plus its current
interval: a host that is late does not drift, and a time that passed while the host was
still busy is skipped, never stacked. Pure bookkeeping over times the caller passes in.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from checkrunner.plan import HostPlan, PlannedCheck
from checkrunner.serve.adaptive import RECENT_VALUES

SLACK = 1.0  # seconds: checks of a host due this close together go in the same batch
SLACK_FRACTION = 0.1  # ...and never more than this fraction of their interval early

ScheduleKey = tuple[str, str, str]  # host (inventory name), play, check name


def jitter_fraction(host: str) -> float:
    """A stable number in [0, 1) for `host`: the phase of its checks within their interval."""
    digest = hashlib.sha256(host.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def schedule_key(host: str, check: PlannedCheck) -> ScheduleKey:
    return (host, check.identity.play, check.identity.name)


@dataclass
class CheckTimes:
    interval: float  # the current interval (adaptive checks change it)
    next_due: float
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_VALUES))


class Schedule:
    """The next due time of every check of a plan."""

    def __init__(self) -> None:
        self.checks: dict[ScheduleKey, CheckTimes] = {}

    def sync(self, hosts: Iterable[HostPlan], now: float) -> None:
        """Add the checks of `hosts` that are new (their first time: now plus the host's
        jitter), keep the times of those already known, forget the ones that are gone."""
        known: dict[ScheduleKey, CheckTimes] = {}
        for host_plan in hosts:
            name = host_plan.host.name
            shortest = min((c.interval.minimum for c in host_plan.checks), default=0.0)
            first = now + jitter_fraction(name) * shortest
            for check in host_plan.checks:
                key = schedule_key(name, check)
                times = self.checks.get(key)
                if times is None:
                    times = CheckTimes(interval=check.interval.minimum, next_due=first)
                else:
                    times.interval = min(
                        max(times.interval, check.interval.minimum), check.interval.maximum
                    )
                known[key] = times
        self.checks = known

    def due(self, host_plan: HostPlan, now: float) -> list[PlannedCheck]:
        """The checks of the host to run now: those due, and those due within the slack."""
        name = host_plan.host.name
        if not any(self.checks[schedule_key(name, c)].next_due <= now for c in host_plan.checks):
            return []
        return [
            check
            for check in host_plan.checks
            if self.checks[schedule_key(name, check)].next_due
            <= now + min(SLACK, SLACK_FRACTION * self.checks[schedule_key(name, check)].interval)
        ]

    def started(self, host: str, checks: Iterable[PlannedCheck], now: float) -> float:
        """These checks start (or are skipped) now: each moves to its next time after `now`,
        in steps of its interval (times that passed are skipped, not stacked). Returns the
        time they were scheduled for (the earliest)."""
        scheduled = now
        for check in checks:
            times = self.checks[schedule_key(host, check)]
            scheduled = min(scheduled, times.next_due)
            times.next_due = _after(times.next_due, times.interval, now)
        return scheduled

    def finished(
        self, host: str, check: PlannedCheck, scheduled: float, interval: float, now: float
    ) -> None:
        """The check's result is in and its interval is now `interval` (adaptive): its next
        time is the first step of the new interval from when this run was scheduled that is
        still ahead (a run that took longer than its interval is followed by the next one on
        the grid, not by a catching-up one)."""
        times = self.checks.get(schedule_key(host, check))
        if times is None:  # gone in a reload while it ran
            return
        times.interval = interval
        times.next_due = _after(scheduled, interval, now)

    def next_due(self) -> float | None:
        return min((t.next_due for t in self.checks.values()), default=None)


def _after(time: float, interval: float, now: float) -> float:
    """The first of time + k·interval (k ≥ 1) that lies after `now`."""
    step = max(interval, 1e-3)
    later = time + step
    if later <= now:
        later += ((now - later) // step + 1) * step
    return later
