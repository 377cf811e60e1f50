"""The alerting pipeline's stages, each a pure function over small values (Alertmanager's
notify/ pipeline: dedup, mute, time intervals), so that each is tested on its own and a
long-running process can run them again and again. What was stored comes in as values,
what is to be stored goes out as values, and the time is an argument; engine.py reads and
writes the state store around them.

In pipeline order:
- observe_run: results -> observations (the alert each failing check would raise);
- next_run_times: the intervals between each check's runs (the endsAt of kept alerts);
- next_streaks: consecutive failing runs per check;
- update_alerts: `for:` (pending until the streak is long enough), firing, resolved; an
  alert whose host was unreachable keeps its state: no result is not a recovery;
- mute: a host that is UNREACHABLE mutes its own check alerts, a failing `depends_on` check
  mutes its dependants, then inhibit rules;
- group: the routing tree, (receiver, groupKey) -> alerts;
- group_members, group_timing: Alertmanager's aggregation groups, which keep their alerts
  between runs and are flushed after group_wait, then every group_interval (watch mode);
- time_muted: a route's mute/active time intervals hold its notifications;
- dedup: the notification log decides whether a group is notified now;
- for_receiver: a receiver config's own share of a notification (send_resolved);
- render_messages: a notification rendered by its receiver into outbox messages.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from checkrunner.alerting.config import ReceiverConfig
from checkrunner.alerting.model import FIRING, RESOLVED, Alert, Notification
from checkrunner.alerting.route import InhibitRule, Route
from checkrunner.alerting.timeinterval import NamedInterval
from checkrunner.results import RunResult, Status
from checkrunner.state.alerts import LogEntry, OutboxMessage, RunTimes, StoredAlert, StoredGroup
from checkrunner.state.keys import CheckKey

SEVERITY = {
    Status.WARNING: "warning",
    Status.CRITICAL: "critical",
    Status.UNKNOWN: "unknown",
}
UNREACHABLE_ALERT = "host unreachable"
REMEDIATION_LABEL = "remediation"  # "failed" or "suppressed": a human is needed (escalation)
MUTED_ANNOTATION = "muted_by"  # why checkrun mutes an alert it still posts to Alertmanager
GAPS_KEPT = 5  # intervals between a check's runs remembered (their largest one counts)
MAX_OBSERVED_INTERVAL = 86400.0  # a check idle longer than a day does not stretch endsAt more
# A flush due a moment after a round is made in that round (see flush_reached).
FLUSH_SLACK_SHARE = 0.1  # of the wait (group_wait or group_interval)
FLUSH_SLACK_MAX = 1.0  # seconds


# -- observing a run -----------------------------------------------------------------------


@dataclass
class Observation:
    """One check's outcome in this run, as alerting sees it."""

    ref: CheckKey
    failing: bool
    alert: Alert | None  # the alert it would raise (labels and annotations), when failing
    for_runs: int = 1
    depends_on: tuple[str, ...] = ()


@dataclass
class RunObservations:
    checks: list[Observation] = field(default_factory=list)
    unreachable: dict[str, Alert] = field(default_factory=dict)  # host -> its alert
    ran: list[CheckKey] = field(default_factory=list)  # every check run, or planned on a host
    # that could not be reached (the time between runs is measured on these)

    @property
    def hosts_seen(self) -> set[str]:
        return {o.ref.host for o in self.checks}


CheckSettings = dict[CheckKey, tuple[int, tuple[str, ...]]]  # `for` and `depends_on`


def check_settings(plan) -> CheckSettings:
    """`for` and `depends_on` of every check the plan runs (not those that tags or `when`
    leave out), by host, play and name."""
    settings = {
        CheckKey.of(c): (c.identity.for_runs, c.identity.depends_on)
        for hp in plan.hosts
        for c in hp.runnable
    }
    for hp in plan.hosts:  # each play's synthetic `host score` check alerts like the others
        for score in hp.scores:
            key = CheckKey(score.identity.host, score.identity.play, score.identity.name)
            settings[key] = (score.identity.for_runs, score.identity.depends_on)
    return settings


def observe_run(run: RunResult, settings: CheckSettings, now: float) -> RunObservations:
    """The alerts this run's results raise. `settings`: `for` and `depends_on` per check."""
    observations = RunObservations()
    planned: dict[str, list[CheckKey]] = defaultdict(list)
    for key in settings:
        planned[key.host].append(key)
    for host in run.hosts:
        if not host.reachable:
            observations.unreachable[host.host] = Alert(
                labels={"alertname": UNREACHABLE_ALERT, "host": host.host, "severity": "critical"},
                annotations={"message": f"{host.reason or 'unreachable'}: {host.message}".strip()},
                starts_at=now,
            )
            observations.ran += planned[host.host]
            continue
        for check in host.checks:
            if check.status == Status.SKIPPED:
                continue
            ref = CheckKey(check.host, check.play, check.name)
            for_runs, depends_on = settings.get(ref, (1, ()))
            failing = check.status in SEVERITY
            alert = _check_alert(check, now) if failing else None
            observations.checks.append(Observation(ref, failing, alert, for_runs, depends_on))
            observations.ran.append(ref)
    return observations


def _check_alert(check, now: float) -> Alert:
    labels = {
        **{k: str(v) for k, v in check.labels.items()},
        "alertname": check.name,
        "host": check.host,
        "play": check.play,
        "severity": SEVERITY[check.status],
        "module": check.module,
    }
    annotations = {"message": check.message}
    if check.remediation is not None:
        labels[REMEDIATION_LABEL] = check.remediation.escalation or ""
        annotations[REMEDIATION_LABEL] = check.remediation.text
    if check.value is not None:
        annotations["value"] = f"{check.value:g}{check.unit}"
    if check.thresholds.warn is not None:
        annotations["warn"] = str(check.thresholds.warn)
    if check.thresholds.crit is not None:
        annotations["crit"] = str(check.thresholds.crit)
    return Alert(labels=labels, annotations=annotations, starts_at=now)


# -- run times and streaks -----------------------------------------------------------------


def next_run_times(
    before: dict[CheckKey, RunTimes], ran: list[CheckKey], now: float
) -> tuple[dict[CheckKey, RunTimes], float | None]:
    """These checks ran now: their run times to store, and the largest of their recent
    intervals between runs (at most MAX_OBSERVED_INTERVAL), or None when none ran before.

    Measured per check, not per run: playbooks sharing a state database, --tags and
    --limit run a check less often than the database sees runs.
    """
    after: dict[CheckKey, RunTimes] = {}
    largest: float | None = None
    for key in set(ran):
        previous = before.get(key)
        gaps = previous.gaps if previous else ()
        if previous is not None and now > previous.ran_at:
            gaps = (*gaps, now - previous.ran_at)[-GAPS_KEPT:]
        if gaps:
            largest = max(largest or 0.0, *gaps)
        after[key] = RunTimes(now, gaps)
    return after, None if largest is None else min(largest, MAX_OBSERVED_INTERVAL)


def next_streaks(before: dict[CheckKey, int], checks: list[Observation]) -> dict[CheckKey, int]:
    """Consecutive failing runs of each observed check, this run included (0 once it passes)."""
    return {obs.ref: before.get(obs.ref, 0) + 1 if obs.failing else 0 for obs in checks}


# -- alert state ---------------------------------------------------------------------------


@dataclass
class AlertState:
    """What one run makes of the alerts: `raised` (to store as firing, with the start of
    their incident) and `resolved` change the store; `firing` adds the stored alerts of
    hosts that could not be reached, which stay firing."""

    raised: list[Alert] = field(default_factory=list)
    firing: list[Alert] = field(default_factory=list)
    pending: list[tuple[Alert, int, int]] = field(default_factory=list)  # alert, runs, needed
    resolved: list[Alert] = field(default_factory=list)


def update_alerts(
    stored: list[StoredAlert],
    observations: RunObservations,
    streaks: dict[CheckKey, int],
    now: float,
) -> AlertState:
    """The run's alerts against the `stored` firing ones: an alert fires once its check's
    streak reaches `for`; a stored alert resolves when its check (or its host, for the
    unreachable alert) answered this run without raising it."""
    state = AlertState()
    raised: dict[str, Alert] = {}
    escalated = _escalations(stored)
    for obs in observations.checks:
        if obs.alert is None:
            continue
        runs = streaks[obs.ref]
        if runs < obs.for_runs:
            state.pending.append((obs.alert, runs, obs.for_runs))
            continue
        alert = _kept_escalation(
            obs.alert, escalated.get((obs.ref.host, obs.ref.play, obs.ref.check))
        )
        raised[alert.fingerprint] = alert
    for alert in observations.unreachable.values():
        raised[alert.fingerprint] = alert
    known = {alert.fingerprint: alert for alert in stored}
    for fp, alert in raised.items():
        if fp in known:  # still the same incident
            raised[fp] = dataclasses.replace(alert, starts_at=known[fp].starts_at)
    state.raised = list(raised.values())
    state.firing = list(state.raised)
    observed = {(o.ref.host, o.ref.play, o.ref.check) for o in observations.checks}
    for alert in stored:
        if alert.fingerprint in raised:
            continue
        labels = alert.labels
        host = labels.get("host", "")
        if labels.get("alertname") == UNREACHABLE_ALERT:
            answered = host in observations.hosts_seen  # reached again this run
        else:
            answered = (host, labels.get("play", ""), labels.get("alertname", "")) in observed
            if not answered and host in observations.unreachable:
                # No result, because its host is down: still firing (and muted by that).
                state.firing.append(Alert(labels, alert.annotations, alert.starts_at))
        if answered:
            state.resolved.append(Alert(labels, alert.annotations, alert.starts_at, ends_at=now))
        # Not answered: not part of this run (another playbook, --tags, --limit), left as is.
    return state


def _escalations(stored: list[StoredAlert]) -> dict[tuple[str, str, str], str]:
    """The `remediation` label of each firing check alert that carries one."""
    return {
        (
            a.labels.get("host", ""),
            a.labels.get("play", ""),
            a.labels.get("alertname", ""),
        ): a.labels[REMEDIATION_LABEL]
        for a in stored
        if a.labels.get(REMEDIATION_LABEL)
    }


def _kept_escalation(alert: Alert, escalation: str | None) -> Alert:
    """An escalated alert stays escalated, with its first label, until its check passes.

    The label is part of the alert's identity: an alert that went from no label to
    "failed" is a new incident for a human (the one handled automatically resolves), but
    one that goes from "failed" to "suppressed" (the next run's handler held by its
    cooldown), or back to no label (a later handler run that verified) while its check
    still fails, is the same incident: changing the label would resolve it and fire a twin.
    """
    if escalation is None or alert.labels.get(REMEDIATION_LABEL) == escalation:
        return alert
    return dataclasses.replace(alert, labels={**alert.labels, REMEDIATION_LABEL: escalation})


def to_stored(alert: Alert) -> StoredAlert:
    return StoredAlert(alert.fingerprint, alert.labels, alert.annotations, alert.starts_at)


# -- muting --------------------------------------------------------------------------------

Muter = Callable[[dict[str, str]], Optional[str]]  # an alert's labels -> why it is muted


def unreachable_muter(unreachable_hosts: set[str]) -> Muter:
    """A host that could not be reached mutes its own check alerts (not its own alert)."""

    def reason(labels: dict[str, str]) -> str | None:
        if labels.get("alertname") == UNREACHABLE_ALERT:
            return None
        return UNREACHABLE_ALERT if labels.get("host", "") in unreachable_hosts else None

    return reason


def depends_on_muter(checks: list[Observation]) -> Muter:
    """A check whose `depends_on` check fails on the same host is muted."""
    failing = {(o.ref.host, o.ref.check) for o in checks if o.failing}
    depends = {(o.ref.host, o.ref.check): o.depends_on for o in checks if o.depends_on}

    def reason(labels: dict[str, str]) -> str | None:
        host = labels.get("host", "")
        for dependency in depends.get((host, labels.get("alertname", "")), ()):
            if (host, dependency) in failing:
                return f"depends_on: {dependency}"
        return None

    return reason


def inhibit_muter(rules: list[InhibitRule], firing: list[Alert]) -> Muter:
    """Alertmanager's inhibit rules, with the firing alerts as their sources."""
    sources = [a.labels for a in firing]

    def reason(labels: dict[str, str]) -> str | None:
        return "inhibit_rules" if any(rule.inhibits(labels, sources) for rule in rules) else None

    return reason


@dataclass
class Muted:
    active: list[Alert] = field(default_factory=list)
    muted: list[Alert] = field(default_factory=list)  # copies saying why, in MUTED_ANNOTATION
    inhibited: list[Alert] = field(default_factory=list)  # the muted alerts as they were


def mute(firing: list[Alert], muters: list[Muter]) -> Muted:
    """The firing alerts split by the first muter that gives a reason."""
    result = Muted()
    for alert in firing:
        reason = next((r for r in (m(alert.labels) for m in muters) if r is not None), None)
        if reason is None:
            result.active.append(alert)
            continue
        result.inhibited.append(alert)
        annotations = {**alert.annotations, MUTED_ANNOTATION: reason}
        result.muted.append(dataclasses.replace(alert, annotations=annotations))
    return result


def run_muters(
    observations: RunObservations, inhibit_rules: list[InhibitRule], firing: list[Alert]
) -> list[Muter]:
    """The muters of one run, in the order their reasons win."""
    return [
        unreachable_muter(set(observations.unreachable)),
        depends_on_muter(observations.checks),
        inhibit_muter(inhibit_rules, firing),
    ]


# -- routing, time intervals, the notification log -----------------------------------------


@dataclass
class Group:
    route: Route
    alerts: list[Alert]

    def notification(
        self,
        receiver: str,
        group_key: str,
        alerts: list[Alert],
        run_interval: float | None = None,
    ) -> Notification:
        """A notification about `alerts` (all or some of the group's), labelled as the
        group's first alert is."""
        return Notification(
            receiver=receiver,
            group_key=group_key,
            group_labels=self.route.group_labels(self.alerts[0].labels),
            alerts=alerts,
            run_interval=run_interval,
        )


def group(alerts: list[Alert], route: Route) -> dict[tuple[str, str], Group]:
    """The alerts by (receiver, groupKey), as the routing tree sends them."""
    groups: dict[tuple[str, str], Group] = {}
    for alert in alerts:
        for matched in route.match(alert.labels):
            key = (matched.receiver, matched.group_key(alert.labels))
            groups.setdefault(key, Group(matched, [])).alerts.append(alert)
    return groups


# -- aggregation groups: group_wait and group_interval -------------------------------------


def group_members(before: tuple[str, ...], decided: set[str], routed: list[str]) -> tuple[str, ...]:
    """The fingerprints in a group after this run: those it held that this run decided
    nothing about (their checks did not run now: another interval, --tags, another
    playbook) or routed to it again, in the order they joined, then the new ones.
    An alert this run muted, or routed elsewhere, leaves the group."""
    here = set(routed)
    kept = [fp for fp in before if fp not in decided or fp in here]
    return tuple(dict.fromkeys([*kept, *routed]))


def member_alerts(
    members: tuple[str, ...], this_run: dict[str, Alert], stored: dict[str, StoredAlert]
) -> list[Alert]:
    """The group's alerts: as this run made them, else as the store holds them (firing, or
    resolved and not flushed yet); a fingerprint found in neither is gone."""
    alerts = []
    for fp in members:
        if fp in this_run:
            alerts.append(this_run[fp])
        elif fp in stored:
            row = stored[fp]
            alerts.append(Alert(row.labels, row.annotations, row.starts_at, ends_at=row.ends_at))
    return alerts


def group_route(root: Route, receiver: str, group_key: str, alerts: list[Alert]) -> Route | None:
    """The route a stored group belongs to, found again from its alerts' labels (None when
    the routing tree no longer sends them there, e.g. after a reload)."""
    for alert in alerts:
        for matched in root.match(alert.labels):
            if matched.receiver == receiver and matched.group_key(alert.labels) == group_key:
                return matched
    return None


@dataclass(frozen=True)
class GroupTiming:
    """Whether a group is flushed now, and the times to store for it."""

    due: bool
    created_at: float
    next_flush_at: float


def flush_reached(now: float, due_at: float, wait: float, early: bool = True) -> bool:
    """Whether a flush due at `due_at` is made now. A run's time is late by however long
    its hosts took, so a flush due within a tenth of its wait (at most a second) after this
    run is made now rather than a whole run later: with group_interval equal to the check
    interval, a change is told in the next run, as Alertmanager's own timer would.

    Only a run that brings the group alerts (`early`) is let in early. Watch mode also
    records rounds in which nothing of the group ran (every tick, other hosts' results);
    were those let in early, the tick that starts the group's own check would make the
    flush, with nothing new, a moment before the check's result came in, and a recovery
    would wait a whole group_interval more."""
    slack = min(FLUSH_SLACK_MAX, FLUSH_SLACK_SHARE * wait) if early else 0.0
    return now >= due_at - slack


def group_timing(
    stored: StoredGroup | None,
    alerts: list[Alert],
    route: Route,
    now: float,
    waits: bool,
    arrived: bool = True,
) -> GroupTiming:
    """Alertmanager's aggregation-group timer (dispatch.go). A new group is flushed
    group_wait after it was created, at once when its oldest alert started more than
    group_wait ago; after each flush, group_interval later, on the same cadence.
    `arrived`: this run routed alerts to the group (see flush_reached).

    Without `waits` (a one-shot run: cron cannot wait for group_wait, the next run may be
    an hour away) every group is flushed on every run and nothing is left waiting.
    """
    if not waits:
        return GroupTiming(True, stored.created_at if stored else now, now)
    if stored is None:
        oldest = min((a.starts_at for a in alerts), default=now)
        created = now
        due_at = now if oldest + route.group_wait < now else now + route.group_wait
    else:
        created, due_at = stored.created_at, stored.next_flush_at
    wait = route.group_wait if stored is None or stored.flushed_at is None else route.group_interval
    if not flush_reached(now, due_at, wait, early=arrived):
        return GroupTiming(False, created, due_at)
    return GroupTiming(True, created, next_flush(due_at, route.group_interval, now))


def next_flush(due_at: float, group_interval: float, now: float) -> float:
    """The flush after the one due at `due_at`: group_interval later, on the same cadence
    (a run that came late does not shift it), and after `now`."""
    if group_interval <= 0:
        return now
    following = due_at + group_interval
    if following <= now:
        following += group_interval * (int((now - following) // group_interval) + 1)
    return following


def time_muted(route: Route, now: float, intervals: dict[str, NamedInterval]) -> bool:
    """Whether the route's mute_time_intervals / active_time_intervals hold it now."""
    return route.muted_at(dt.datetime.fromtimestamp(now, dt.timezone.utc), intervals)


@dataclass
class Dedup:
    """The notification log's verdict on one group."""

    notify: bool
    alerts: list[Alert]  # what to tell: the firing ones, then the resolved ones told firing
    firing: list[str]  # fingerprints firing, sorted: the log's new entry when notified


def dedup(
    entry: LogEntry | None, alerts: list[Alert], repeat_interval: float, now: float, held: bool
) -> Dedup:
    """Notify when alerts are new, resolved ones were told firing, or repeat_interval has
    passed; never while a time interval holds the route (`held`): the log is then left as
    it is, so what happened meanwhile is told once the interval is over."""
    notified = entry.firing if entry else frozenset()
    sent_at = entry.sent_at if entry else None
    firing = sorted(a.fingerprint for a in alerts if a.status == FIRING)
    # Only alerts people were told about can be told resolved.
    resolved = [a for a in alerts if a.status == RESOLVED and a.fingerprint in notified]
    new = set(firing) - notified
    repeat_due = bool(firing) and (sent_at is None or now - sent_at >= repeat_interval)
    notify = (bool(new) or bool(resolved) or repeat_due) and not held
    return Dedup(notify, [a for a in alerts if a.status == FIRING] + resolved, firing)


# -- per receiver --------------------------------------------------------------------------


def for_receiver(notification: Notification, options: dict[str, Any]) -> Notification | None:
    """The notification as this receiver config gets it: without resolved alerts unless
    send_resolved; None when nothing is left."""
    alerts = notification.alerts
    if not options.get("send_resolved"):
        alerts = [a for a in alerts if a.status == FIRING]
    return dataclasses.replace(notification, alerts=alerts) if alerts else None


def render_messages(
    config: ReceiverConfig, module: Any, options: dict[str, Any], notification: Notification
) -> list[OutboxMessage]:
    """The notification rendered by its receiver module, in order (RenderError if it cannot)."""
    return [
        OutboxMessage(
            receiver=config.receiver,
            kind=config.kind,
            config_index=config.index,
            destination=_destination(module, options, payload),
            group_key=notification.group_key,
            payload=payload,
        )
        for payload in module.render(options, notification)
    ]


def _destination(module: Any, options: dict[str, Any], payload: Any) -> str:
    """Where a message goes, for ordering and rate limits: one key per replica URL too, so a
    replica that is down holds back only its own messages."""
    key = module.destination(options)
    replica = payload.get("replica") if isinstance(payload, dict) else None
    return f"{key}:{replica}" if replica else key
