"""A round's remediation: from the alerting outcome the round recorded to handlers run.

Only alerts that fire (after `for:`) notify handlers; an alert alerting mutes (UNREACHABLE,
`depends_on`, inhibit rules) notifies too, and the guard rails then hold its handler back
saying why. Handlers run on alerting's decision previewed before the round is recorded
(serve/rounds.py RoundRecorder.heal), and what they did is attached to the notifying checks'
results, so that the reports, the alert (its `remediation` label and annotation) and its
notification all say it. The audit (state/actions.py) commits each action's intent first.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from checkrunner.alerting.engine import Outcome
from checkrunner.alerting.stages import MUTED_ANNOTATION
from checkrunner.config.model import HandlerSpec
from checkrunner.plan import Plan
from checkrunner.remediation.execute import COULD_NOT_RUN, Executor, Remediation, described
from checkrunner.remediation.guard import DRY_RUN, RUN, Decision, Mode, Notified, decide
from checkrunner.results import (
    REMEDIATED,
    REMEDIATION_DRY_RUN,
    REMEDIATION_SUPPRESSED,
    CheckResult,
    RemediationResult,
    RunResult,
)
from checkrunner.runner import RunOptions
from checkrunner.state.actions import ActionLog, ActionOutcome
from checkrunner.state.logs import LogVerifier


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


def attach(run: RunResult, result: RoundRemediation, mask: Callable[[str], str]) -> None:
    """Each notifying check's result in `run` gets what its handler did (masked): the
    reports show it and the check's alert carries it when the round is recorded."""
    done = {id(r.decision): r for r in result.done}
    checks = {(c.host, c.play, c.name): c for c in run.all_checks()}
    for decision in result.decisions:
        for trigger in decision.triggers:
            check = checks.get((decision.host, decision.play, trigger))
            if check is not None:
                check.remediation = remediation_result(
                    check, decision, done.get(id(decision)), mask
                )


def remediation_result(
    check: CheckResult,
    decision: Decision,
    remediation: Remediation | None,
    mask: Callable[[str], str],
) -> RemediationResult:
    """One line a person reads at 3 a.m.: "app health CRITICAL → restarted app.service → OK
    after 4.2 s", "... → restart app.service failed (exit 4)", "... → restart app.service
    suppressed by cooldown: ...", "... → would restart app.service (dry-run)"."""
    spec = decision.handler
    action = mask(described(spec))
    head = f"{check.name} {check.status.value}"
    shown = mask(_action_text(spec))
    result = RemediationResult(spec.name, action, REMEDIATION_SUPPRESSED, "", decision.reason)
    if remediation is None and decision.verdict == DRY_RUN:
        result.result = REMEDIATION_DRY_RUN
        result.text = f"{head} → would {shown} (dry-run)"
    elif remediation is None:
        result.text = f"{head} → {shown} suppressed by {decision.reason}"
    else:
        outcome = remediation.outcome
        result.result = remediation.verify
        result.exit_status = outcome.exit_status
        result.seconds = round(remediation.seconds, 3)
        result.verify_status = remediation.verify_status
        result.verify_message = mask(remediation.verify_message)
        if not outcome.ok:
            result.reason = mask(_failure(spec, outcome))
            result.text = f"{head} → {shown} failed ({result.reason})"
        else:
            done_text = mask(_action_text(spec, done=True))
            verified = f"{remediation.verify_status} after {remediation.seconds:.1f} s"
            if remediation.verify != REMEDIATED:
                result.reason = f"still {verified}: {result.verify_message}".rstrip(": ")
                verified = f"still {verified}"
            result.text = f"{head} → {done_text} → {verified}"
    return result


def _action_text(spec: HandlerSpec, done: bool = False) -> str:
    if spec.service is not None:
        return f"{'restarted' if done else 'restart'} {spec.service}"
    if spec.webhook is not None:
        return f"{'called' if done else 'call'} {described(spec)}"
    return f"{'ran' if done else 'run'} {described(spec)}"


def _failure(spec: HandlerSpec, outcome: ActionOutcome) -> str:
    if outcome.exit_status == COULD_NOT_RUN:
        return f"not run: {outcome.output.strip()}"
    code = (
        f"HTTP {outcome.exit_status}" if spec.webhook is not None else f"exit {outcome.exit_status}"
    )
    tail = outcome.output.strip().splitlines()[-1:] if outcome.output.strip() else []
    return f"{code}: {tail[0]}" if tail else code


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
    verifier: LogVerifier | None = None,
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
        executor = Executor(plan, options, connections, log, clock, verifier=verifier)
        result.done = executor.remediate_all(chosen)
    return result
