"""A round's remediation: from the alerting outcome the round recorded to handlers run.

Only alerts that fire (after `for:`) notify handlers; an alert alerting mutes (UNREACHABLE,
`depends_on`, inhibit rules) notifies too, and the guard rails then hold its handler back
saying why. The run and verify happen after the round is recorded, so the audit and the
alert state are never ahead of what was committed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from checkrunner.alerting.engine import Outcome
from checkrunner.alerting.stages import MUTED_ANNOTATION
from checkrunner.plan import Plan
from checkrunner.remediation.execute import Executor, Remediation, described
from checkrunner.remediation.guard import DRY_RUN, RUN, Decision, Mode, Notified, decide
from checkrunner.runner import RunOptions
from checkrunner.state.actions import ActionLog


@dataclass
class RoundRemediation:
    decisions: list[Decision] = field(default_factory=list)
    done: list[Remediation] = field(default_factory=list)


def describe(result: RoundRemediation) -> list[str]:
    """One line per decision: what ran and its verify result, or what stopped it."""
    done = {id(r.decision): r for r in result.done}
    lines = []
    for decision in result.decisions:
        head = (
            f"remediation: {decision.host}: {', '.join(decision.triggers)} -> "
            f"{decision.handler.name} ({described(decision.handler)})"
        )
        remediation = done.get(id(decision))
        if remediation is not None:
            lines.append(
                f"{head}: exit {remediation.outcome.exit_status}, {remediation.verify} "
                f"after {remediation.seconds:.1f}s"
            )
        elif decision.verdict == DRY_RUN:
            lines.append(f"{head}: would run (--remediate=dry-run: nothing run)")
        else:
            lines.append(f"{head}: suppressed by {decision.reason}")
    return lines


def notified_from(outcome: Outcome, plan: Plan) -> list[Notified]:
    """The firing alerts of checks that notify handlers, with why alerting mutes them."""
    notify = {
        (c.identity.host, c.identity.play, c.identity.name): c.identity.notify
        for hp in plan.hosts
        for c in hp.checks
        if c.identity.notify
    }
    muted_by = {
        alert.fingerprint: alert.annotations.get(MUTED_ANNOTATION) for alert in outcome.muted
    }
    notified = []
    for alert in outcome.firing:
        labels = alert.labels
        key = (labels.get("host", ""), labels.get("play", ""), labels.get("alertname", ""))
        if notify.get(key):
            notified.append(Notified(*key, notify[key], muted_by.get(alert.fingerprint)))
    return notified


def remediate_round(
    plan: Plan,
    outcome: Outcome,
    db: Any,
    mask: Callable[[str], str],
    options: RunOptions,
    mode: Mode,
    clock: Callable[[], float] = time.time,
    transports: Callable[[], Any] | None = None,
) -> RoundRemediation:
    """Decide with the guard rails, then run and verify what they let through. `transports`
    makes the connections the actions and verify runs use (the run's SSH options: known
    hosts, keys, ssh config); None: the runner's defaults."""
    result = RoundRemediation()
    if not plan.handlers:
        return result
    log = ActionLog(db, mask) if db is not None else None
    result.decisions = decide(
        notified_from(outcome, plan), plan.handlers, plan.play_hosts, log, clock(), mode
    )
    rendered = {hp.host.name: hp.handlers for hp in plan.hosts}
    for decision in result.decisions:  # what runs (and is shown) is the host's rendering
        key = (decision.play, decision.handler.name)
        decision.handler = rendered.get(decision.host, {}).get(key, decision.handler)
    if log is None:
        return result
    chosen = [decision for decision in result.decisions if decision.verdict == RUN]
    if not chosen:
        return result
    with contextlib.ExitStack() as stack:
        connections = stack.enter_context(transports()) if transports is not None else None
        executor = Executor(plan, options, connections, log, clock)
        for decision in chosen:
            result.done.append(executor.remediate(decision))
    return result
