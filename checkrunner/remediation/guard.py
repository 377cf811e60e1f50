"""Which handlers run on which hosts after a round, and why the others do not: the guard rails.

Input is the round's recorded alerting outcome, never the raw samples: a handler is notified
by an alert that FIRES (its check failed `for` runs in a row) on a host. Per host, a handler
notified by several checks runs once. Then, in this order, a notified handler is held back:

1. `--no-remediate` (mode OFF): nothing runs;
2. the host's alert is muted: the host is UNREACHABLE or a `depends_on` check fails
   (alerting's `muted_by`: the root cause is what gets fixed, or paged);
3. `max_hosts`: more of the play's hosts would get this handler in this round than it
   allows: a fleet-wide failure is not fixed by restarting everything, so none runs and
   every one of those alerts pages;
4. `max_runs`: it ran that many times on the host within the last hour (runs whose process
   died before finishing count: state/actions.py records the intent first);
5. `cooldown`: it ran on the host less than `cooldown` ago.

A held-back handler's decision says which guard stopped it (`reason`), for the alert's
`remediation="suppressed"` label and annotation; in dry-run mode the handlers that would run
are decided as DRY_RUN and nothing is run or recorded.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from checkrunner.config.keywords import MAX_RUNS_WINDOW
from checkrunner.config.model import HandlerSpec
from checkrunner.state.actions import ActionLog


class Mode(enum.Enum):
    ON = "on"
    OFF = "off"  # --no-remediate, or --wait without --remediate
    DRY_RUN = "dry-run"


RUN = "run"
DRY_RUN = "dry-run"
SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class Notified:
    """A firing alert of a check that notifies handlers. `muted_by`: why alerting mutes it
    (`unreachable`, `depends_on: CHECK`, an inhibit rule), None when it is active."""

    host: str
    play: str
    check: str
    handlers: Sequence[str]
    muted_by: str | None = None


@dataclass
class Decision:
    host: str
    play: str
    handler: HandlerSpec
    triggers: list[str] = field(default_factory=list)  # the notifying checks, in order
    verdict: str = RUN  # RUN, DRY_RUN or SUPPRESSED
    reason: str | None = None  # the guard that stopped it


def decide(
    notified: Iterable[Notified],
    handlers: Mapping[str, Mapping[str, HandlerSpec]],
    play_hosts: Mapping[str, int],
    log: ActionLog | None,
    now: float,
    mode: Mode = Mode.ON,
) -> list[Decision]:
    """One decision per (host, play, handler) notified this round. `handlers`: play name ->
    handler name -> spec; `play_hosts`: play name -> how many hosts the play runs on; `log`:
    the audit the run and cooldown counts come from (None: no state, so no handler runs)."""
    notified = list(notified)
    decisions = _grouped(notified, handlers)
    for decision in decisions:
        decision.reason = _held_by_host(decision, mode, log, notified_muted(notified, decision))
    _apply_max_hosts(decisions, play_hosts)
    for decision in decisions:
        if decision.reason is None and log is not None:
            decision.reason = _held_by_history(decision, log, now)
        if decision.reason is not None:
            decision.verdict = SUPPRESSED
        elif mode is Mode.DRY_RUN:
            decision.verdict = DRY_RUN
    return decisions


def notified_muted(notified: Iterable[Notified], decision: Decision) -> str | None:
    """Why the alerts that notified `decision` are muted, when every one of them is."""
    reasons = [
        n.muted_by
        for n in notified
        if (n.host, n.play) == (decision.host, decision.play) and n.check in decision.triggers
    ]
    return reasons[0] if reasons and all(reasons) else None


def _grouped(
    notified: Iterable[Notified], handlers: Mapping[str, Mapping[str, HandlerSpec]]
) -> list[Decision]:
    """One decision per host, play and handler, with every check that notified it."""
    by_key: dict[tuple[str, str, str], Decision] = {}
    for alert in notified:
        for name in alert.handlers:
            spec = handlers.get(alert.play, {}).get(name)
            if spec is None:  # the parser refuses unknown names; a reload may drop one
                continue
            decision = by_key.setdefault(
                (alert.host, alert.play, name), Decision(alert.host, alert.play, spec)
            )
            if alert.check not in decision.triggers:
                decision.triggers.append(alert.check)
    return list(by_key.values())


def _held_by_host(
    decision: Decision, mode: Mode, log: ActionLog | None, muted_by: str | None
) -> str | None:
    if mode is Mode.OFF:
        return "remediation is off (--no-remediate, or --wait without --remediate)"
    if log is None and mode is Mode.ON:
        return "no state database: the guard rails (max_runs, cooldown) need one"
    if muted_by is not None:
        return f"the alert is muted ({muted_by})"
    return None


def _apply_max_hosts(decisions: list[Decision], play_hosts: Mapping[str, int]) -> None:
    """A handler wanted on more of a play's hosts than max_hosts allows runs on none."""
    wanted: dict[tuple[str, str], list[Decision]] = {}
    for decision in decisions:
        if decision.reason is None:
            wanted.setdefault((decision.play, decision.handler.name), []).append(decision)
    for (play, _), group in wanted.items():
        hosts = play_hosts.get(play, len(group))
        limit = group[0].handler.host_limit(hosts)
        if len(group) > limit:
            for decision in group:
                decision.reason = (
                    f"max_hosts: {len(group)} of the play's {hosts} hosts need it, "
                    f"at most {limit} may be acted on in one run"
                )


def _held_by_history(decision: Decision, log: ActionLog, now: float) -> str | None:
    spec = decision.handler
    runs = log.runs_since(decision.host, decision.play, spec.name, now - MAX_RUNS_WINDOW)
    if runs >= spec.max_runs:
        return f"max_runs: ran {runs} times on this host in the last hour (max {spec.max_runs})"
    last = log.last_started(decision.host, decision.play, spec.name)
    if last is not None and now - last < spec.cooldown:
        return f"cooldown: ran {now - last:.0f}s ago (cooldown {spec.cooldown:g}s)"
    return None
