"""Running a handler the guard rails let through, then verifying it.

`command` and `service` actions run ON the host as the command module, through the same
runner and transports as the checks (one batch, `become` as for checks, UNREACHABLE handled
the same way): no second remote-execution path. `service: UNIT` is the command module given
a fixed script with the unit quoted: `systemctl restart UNIT` where systemctl exists, else
`service UNIT restart`. `webhook` actions are HTTP calls from the control node through
alerting's HTTP client (2xx is success, as for the webhook receiver).

Each action is audited through `ActionLog.run`: the intent is committed before it runs. After
it, and `settle` seconds later, the checks that notified it run again on the host: all of them
passing is REMEDIATED, anything else REMEDIATION_FAILED.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from checkrunner import catalog
from checkrunner.config.model import HandlerSpec
from checkrunner.config.normalize import normalize_args
from checkrunner.errors import ConfigError
from checkrunner.evaluate.evaluate import CheckIdentity
from checkrunner.plan import HostPlan, Plan, PlannedCheck
from checkrunner.remediation.guard import Decision
from checkrunner.results import REMEDIATED, REMEDIATION_FAILED, Status
from checkrunner.runner import RunOptions, run_plan
from checkrunner.state.actions import (
    ActionIntent,
    ActionLog,
    ActionOutcome,
)
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
    ):
        self.plan = plan
        self.options = options
        self.transports = transports
        self.log = log
        self.clock = clock
        self.sleep = sleep
        self.hosts = {hp.host.name: hp for hp in plan.hosts}

    def remediate(self, decision: Decision) -> Remediation:
        spec = decision.handler
        intent = ActionIntent(
            decision.host,
            decision.play,
            spec.name,
            decision.triggers,
            spec.action,
            described(spec),
        )
        started = self.clock()
        action_id, outcome = self.log.run(intent, lambda: self._act(decision), started, self.clock)
        verify, status, message = REMEDIATION_FAILED, None, ""
        if outcome.ok:
            self.sleep(spec.settle)
            status, message = self._verify(decision)
            verify = REMEDIATED if status == Status.OK.value else REMEDIATION_FAILED
        self.log.verified(action_id, verify)
        return Remediation(
            decision, action_id, outcome, verify, self.clock() - started, status, message
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

    def _verify(self, decision: Decision) -> tuple[str, str]:
        """The notifying checks run again on the host: their worst status and its message
        (every one must be OK for the handler to have remediated)."""
        host_plan = self.hosts[decision.host]
        checks = [
            c
            for c in host_plan.runnable
            if c.identity.play == decision.play and c.identity.name in decision.triggers
        ]
        if not checks:  # a reload dropped them: nothing says the handler helped
            return Status.UNKNOWN.value, "the notifying checks are no longer planned"
        host = self._run(HostPlan(host=host_plan.host, checks=checks)).hosts[0]
        if not host.reachable:
            return Status.UNREACHABLE.value, f"{host.reason}: {host.message}"
        worst = max(host.checks, key=lambda c: c.status.severity)
        return worst.status.value, worst.message

    def _run(self, host_plan: HostPlan):
        plan = Plan(playbook=self.plan.playbook, hosts=[host_plan])
        return run_plan(plan, self.options, (), self.transports)


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
