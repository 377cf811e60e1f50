"""Running a handler the guard rails let through, then verifying it.

`command` and `service` actions run ON the host as the command module, through the same
runner and transports as the checks (one batch, `become` as for checks, UNREACHABLE handled
the same way): no second remote-execution path. `service: UNIT` is the command module given
a fixed script with the unit quoted: `systemctl restart UNIT` where systemctl exists, else
`service UNIT restart`. `webhook` actions are HTTP calls from the control node through
alerting's HTTP client (2xx is success, as for the webhook receiver).

Each action is audited through `ActionLog.run`: the intent is committed before it runs. After
the round's actions, and the longest of their `settle` times later, the checks that notified
them run again on their hosts (all hosts at once): all of a handler's passing is REMEDIATED,
anything else REMEDIATION_FAILED.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checkrunner import catalog
from checkrunner.config.model import HandlerSpec
from checkrunner.config.normalize import normalize_args
from checkrunner.errors import ConfigError
from checkrunner.evaluate.evaluate import CheckIdentity
from checkrunner.plan import HostPlan, Plan, PlannedCheck
from checkrunner.remediation.guard import Decision
from checkrunner.results import REMEDIATED, REMEDIATION_FAILED, HostResult, Status
from checkrunner.runner import RunOptions, run_plan
from checkrunner.state.actions import (
    ActionIntent,
    ActionLog,
    ActionOutcome,
)
from checkrunner.state.logs import LogVerifier
from checkrunner.transport.payload import BatchCheck

COULD_NOT_RUN = -1  # the exit status recorded when the action never ran (unreachable, refused)
OUTPUT_KEPT = 4096


@dataclass
class Remediation:
    """What one handler did on one host."""

    decision: Decision
    action_id: int
    outcome: ActionOutcome
    verify: str  # REMEDIATED or REMEDIATION_FAILED
    seconds: float  # from the action's start to the verify result
    verify_status: str | None = None  # the worst status the checks had when run again
    verify_message: str = ""  # that check's message (or why the host was not reached)


def service_script(unit: str) -> str:
    quoted = shlex.quote(unit)
    return (
        f"if command -v systemctl >/dev/null 2>&1; then systemctl restart {quoted}; "
        f"else service {quoted} restart; fi"
    )


def command_args(spec: HandlerSpec) -> dict[str, Any]:
    """The command module's arguments the action runs with (command and service actions)."""
    info = catalog.get("command")
    raw: Mapping[str, Any] = (
        spec.command
        if spec.command is not None
        else {"cmd": service_script(spec.service or ""), "shell": True}
    )
    return normalize_args(info, dict(raw), spec.location)


def described(spec: HandlerSpec) -> str:
    """The action as the audit and the reports show it (masked by the audit)."""
    if spec.webhook is not None:
        return f"{spec.webhook.method} {spec.webhook.url}"
    if spec.service is not None:
        return f"restart {spec.service}"
    try:
        args = command_args(spec)
    except ConfigError:  # shown as written; running it reports the problem (_act)
        return str((spec.command or {}).get("cmd", ""))
    cmd = args["cmd"]
    return cmd if isinstance(cmd, str) else shlex.join(str(part) for part in cmd)


class Executor:
    """Runs decided handlers on the hosts of `plan` through `transports` with `options`."""

    def __init__(
        self,
        plan: Plan,
        options: RunOptions,
        transports: Any,
        log: ActionLog,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        verifier: LogVerifier | None = None,
    ):
        """`verifier`: the round's log state for verify runs (state/logs.py LogVerifier):
        log checks read on from the round's read; None: as planned."""
        self.verifier = verifier
        self.plan = plan
        self.options = options
        self.transports = transports
        self.log = log
        self.clock = clock
        self.sleep = sleep
        self.hosts = {hp.host.name: hp for hp in plan.hosts}

    def remediate(self, decision: Decision) -> Remediation:
        (done,) = self.remediate_all([decision])
        return done

    def remediate_all(self, decisions: Sequence[Decision]) -> list[Remediation]:
        """Each action in turn (audited, its intent committed first), then one wait for the
        longest `settle` of those that succeeded, then the notifying checks of every host
        run again at once (hosts in parallel, as a run): a round with many remediations
        takes one settle, not one each. Whatever goes wrong in one (the state database, a
        bug) is that one's failure, said in its result; the others go on."""
        acted = [self._audited_act(decision) for decision in decisions]
        succeeded = [a.decision for a in acted if a.outcome.ok]
        verified: dict[int, tuple[str, str]] = {}
        if succeeded:
            self.sleep(max(decision.handler.settle for decision in succeeded))
            verified = self._verify_all(succeeded)
        return [self._verified(a, *verified.get(id(a.decision), (None, ""))) for a in acted]

    def _audited_act(self, decision: Decision) -> _Acted:
        spec = decision.handler
        intent = ActionIntent(
            decision.host, decision.play, spec.name, decision.triggers, spec.action, described(spec)
        )
        started = self.clock()
        try:
            action_id, outcome = self.log.run(
                intent, lambda: self._act(decision), started, self.clock
            )
        except Exception as exc:  # noqa: BLE001 - this handler's failure; its intent, when
            # committed, stays in the audit as unfinished, which the guard rails count
            outcome = ActionOutcome(COULD_NOT_RUN, f"{type(exc).__name__}: {exc}")
            return _Acted(decision, None, outcome, started)
        return _Acted(decision, action_id, outcome, started)

    def _verified(self, acted: _Acted, status: str | None, message: str) -> Remediation:
        verify = REMEDIATED if status == Status.OK.value else REMEDIATION_FAILED
        if acted.action_id is not None:
            with contextlib.suppress(Exception):  # the result stands; the audit lacks it
                self.log.verified(acted.action_id, verify)
        seconds = self.clock() - acted.started
        action_id = acted.action_id if acted.action_id is not None else -1
        return Remediation(
            acted.decision, action_id, acted.outcome, verify, seconds, status, message
        )

    def _act(self, decision: Decision) -> ActionOutcome:
        spec = decision.handler
        if spec.webhook is not None:
            return _call_webhook(spec)
        host_plan = self.hosts[decision.host]
        try:
            args = command_args(spec)
        except ConfigError as exc:  # a template rendered for this host into a bad command
            return ActionOutcome(COULD_NOT_RUN, str(exc))
        identity = CheckIdentity(
            host=decision.host,
            play=decision.play,
            name=f"handler {spec.name}",
            module="command",
            check_id=f"{spec.play_index}.handler{spec.index}",
            metric=None,
            thresholds=(),
            declared_units={},
        )
        planned = PlannedCheck(
            identity=identity,
            batch=BatchCheck(
                id=identity.check_id,
                module="command",
                args=args,
                timeout=spec.timeout,
            ),
            become=bool(spec.become),
        )
        result = self._run(HostPlan(host=host_plan.host, checks=[planned]))
        host = result.hosts[0]
        if not host.reachable:
            return ActionOutcome(COULD_NOT_RUN, f"{host.reason}: {host.message}")
        (check,) = host.checks
        code = check.measurements.get("exit_code")
        output = "".join(str(check.facts.get(key) or "") for key in ("stdout", "stderr"))
        if code is None:
            return ActionOutcome(COULD_NOT_RUN, check.message)
        return ActionOutcome(int(code), output[-OUTPUT_KEPT:])

    def _verify_all(self, decisions: Sequence[Decision]) -> dict[int, tuple[str, str]]:
        """The notifying checks of each decision run again, every host at once: by id of
        its decision, the worst status they had and its message (OK: remediated)."""
        wanted: dict[str, list[PlannedCheck]] = {}
        for decision in decisions:
            checks = wanted.setdefault(decision.host, [])
            checks += [c for c in self._triggers(decision) if c not in checks]
        plans = [
            HostPlan(host=self.hosts[host].host, checks=checks)
            for host, checks in wanted.items()
            if checks
        ]
        options = self.options
        if self.verifier is not None:
            options = dataclasses.replace(options, observe=self.verifier.observe)
        try:
            hosts = {h.host: h for h in self._run_hosts(plans, options).hosts} if plans else {}
        except Exception as exc:  # noqa: BLE001 - no verify, so no remediated
            return {id(d): (Status.UNKNOWN.value, f"not verified: {exc!r}") for d in decisions}
        return {id(d): _verify_result(d, hosts.get(d.host)) for d in decisions}

    def _triggers(self, decision: Decision) -> list[PlannedCheck]:
        checks = [
            c
            for c in self.hosts[decision.host].runnable
            if c.identity.play == decision.play and c.identity.name in decision.triggers
        ]
        return [self.verifier.check(c) for c in checks] if self.verifier else checks

    def _run(self, host_plan: HostPlan):
        return self._run_hosts([host_plan])

    def _run_hosts(self, host_plans: list[HostPlan], options: RunOptions | None = None):
        plan = Plan(playbook=self.plan.playbook, hosts=host_plans)
        return run_plan(plan, options or self.options, (), self.transports)


@dataclass
class _Acted:
    decision: Decision
    action_id: int | None  # None: not even its intent could be recorded
    outcome: ActionOutcome
    started: float


def _verify_result(decision: Decision, host: HostResult | None) -> tuple[str, str]:
    if host is None:  # a reload dropped the checks: nothing says the handler helped
        return Status.UNKNOWN.value, "the notifying checks are no longer planned"
    if not host.reachable:
        return Status.UNREACHABLE.value, f"{host.reason}: {host.message}"
    checks = [c for c in host.checks if c.play == decision.play and c.name in decision.triggers]
    if not checks:
        return Status.UNKNOWN.value, "the notifying checks are no longer planned"
    worst = max(checks, key=lambda c: c.status.severity)
    return worst.status.value, worst.message


def _call_webhook(spec: HandlerSpec) -> ActionOutcome:
    from checkrunner.alerting.receivers.http import Response, post, redact_url

    webhook = spec.webhook
    assert webhook is not None
    body = webhook.body
    if body is None:
        data, content_type = b"", "text/plain"
    elif isinstance(body, str):
        data, content_type = body.encode(), "text/plain; charset=utf-8"
    else:
        data, content_type = json.dumps(body).encode(), "application/json"
    reply = post(
        webhook.url,
        data,
        timeout=webhook.timeout,
        headers=dict(webhook.headers),
        content_type=content_type,
        shown=redact_url(webhook.url),
        method=webhook.method,
    )
    if isinstance(reply, Response):
        text = reply.body.decode("utf-8", "replace")
        return ActionOutcome(reply.status, text[-OUTPUT_KEPT:])
    return ActionOutcome(COULD_NOT_RUN, reply.detail)
