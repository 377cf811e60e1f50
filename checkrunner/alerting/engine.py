"""From one run's results to notifications in the outbox, with state kept across runs.

Per run, in one transaction of the state database:
1. every check's streak of consecutive failing runs is updated; an alert fires once its
   check has failed `for` runs in a row, and resolves when the check passes again;
2. firing alerts are filtered: inhibit rules, a host that is UNREACHABLE mutes its own
   check alerts, a check whose `depends_on` check fails is muted;
3. alerts are routed (Alertmanager's tree) and grouped; the notification log, keyed by
   receiver and group, decides whether the group is notified now: new alerts, resolved
   ones (with `send_resolved`), or `repeat_interval` elapsed. An `alertmanager` receiver is
   different: it forgets alerts that are not re-sent, so it gets every firing alert its
   route matches on every run, muted ones too (annotated `muted_by`: Alertmanager's own
   inhibit rules and silences decide what it notifies), with the interval observed between
   runs so that it keeps them until well after the next run (see alertmanager.py);
4. the rendered messages go to the outbox, in order. Delivery (delivery.py) happens
   afterwards; a message stays in the outbox until a receiver has accepted it.

Alerts whose host was unreachable keep their state: no result is not a recovery.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from checkrunner.alerting.config import AlertingSpec, ReceiverConfig
from checkrunner.alerting.model import FIRING, RESOLVED, Alert, Notification
from checkrunner.alerting.route import Route
from checkrunner.results import RunResult, Status
from checkrunner.state.logs import CheckKey

SEVERITY = {
    Status.WARNING: "warning",
    Status.CRITICAL: "critical",
    Status.UNKNOWN: "unknown",
}
UNREACHABLE_ALERT = "host unreachable"
ALERTMANAGER = "alertmanager"  # the receiver kind that keeps alerts itself
MUTED_ANNOTATION = "muted_by"  # why checkrun mutes an alert it still posts to Alertmanager
GAPS_KEPT = 5  # intervals between a check's runs remembered (their largest one counts)
MAX_OBSERVED_INTERVAL = 86400.0  # a check idle longer than a day does not stretch endsAt more


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


def observe_run(
    run: RunResult, check_settings: dict[CheckKey, tuple[int, tuple[str, ...]]], now: float
) -> RunObservations:
    """The alerts this run's results raise. `check_settings`: `for` and `depends_on` per check."""
    observations = RunObservations()
    planned: dict[str, list[CheckKey]] = defaultdict(list)
    for key in check_settings:
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
            for_runs, depends_on = check_settings.get(ref, (1, ()))
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
    if check.value is not None:
        annotations["value"] = f"{check.value:g}{check.unit}"
    if check.thresholds.warn is not None:
        annotations["warn"] = str(check.thresholds.warn)
    if check.thresholds.crit is not None:
        annotations["crit"] = str(check.thresholds.crit)
    return Alert(labels=labels, annotations=annotations, starts_at=now)


@dataclass
class Outcome:
    """What the engine decided in one run (for reports and tests)."""

    firing: list[Alert] = field(default_factory=list)
    pending: list[tuple[Alert, int, int]] = field(default_factory=list)  # alert, runs, needed
    resolved: list[Alert] = field(default_factory=list)
    inhibited: list[Alert] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    queued: int = 0  # outbox messages added
    unrenderable: list[str] = field(default_factory=list)  # "receiver (kind): reason"


class AlertEngine:
    def __init__(self, spec: AlertingSpec, receivers: dict[str, list[ReceiverConfig]]):
        """`receivers`: the spec's receiver configs with their templates rendered."""
        self.spec = spec
        self.receivers = receivers

    def process(
        self, connection: sqlite3.Connection, observations: RunObservations, now: float
    ) -> Outcome:
        """Update the alert state and queue notifications; the caller owns the transaction."""
        outcome = Outcome()
        run_interval = _update_run_gaps(connection, observations.ran, now)
        firing_now = self._update_state(connection, observations, now, outcome)
        active, muted = self._not_inhibited(firing_now, observations, outcome)
        self._notify(connection, active, outcome.resolved, now, outcome)
        self._post_to_alertmanagers(
            connection, [*active, *muted, *outcome.resolved], now, run_interval, outcome
        )
        return outcome

    # -- 1. state ----------------------------------------------------------------------------

    def _update_state(
        self,
        connection: sqlite3.Connection,
        observations: RunObservations,
        now: float,
        outcome: Outcome,
    ) -> list[Alert]:
        stored = {
            fp: (json.loads(labels), json.loads(annotations), starts_at)
            for fp, labels, annotations, starts_at in connection.execute(
                "SELECT fingerprint, labels, annotations, starts_at FROM alerts WHERE state = ?",
                (FIRING,),
            )
        }
        streaks = _update_streaks(connection, observations.checks, now)
        firing: dict[str, Alert] = {}
        for obs in observations.checks:
            runs = streaks[obs.ref]
            if obs.alert is None:
                continue
            if runs < obs.for_runs:
                outcome.pending.append((obs.alert, runs, obs.for_runs))
                continue
            firing[obs.alert.fingerprint] = obs.alert
        for alert in observations.unreachable.values():
            firing[alert.fingerprint] = alert
        unreachable_hosts = set(observations.unreachable)
        for fp, alert in firing.items():
            previous = stored.get(fp)
            if previous:
                alert.starts_at = previous[2]  # still the same incident
            connection.execute(
                "INSERT OR REPLACE INTO alerts (fingerprint, labels, annotations, state, "
                "starts_at, ends_at, updated_at) VALUES (?, ?, ?, ?, ?, NULL, ?)",
                (
                    fp,
                    json.dumps(alert.labels),
                    json.dumps(alert.annotations),
                    FIRING,
                    alert.starts_at,
                    now,
                ),
            )
        still_firing = list(firing.values())
        observed = {(o.ref.host, o.ref.play, o.ref.check) for o in observations.checks}
        for fp, (labels, notes, starts_at) in stored.items():
            if fp in firing:
                continue
            host = labels.get("host", "")
            if labels.get("alertname") == UNREACHABLE_ALERT:
                answered = host in observations.hosts_seen  # reached again this run
            else:
                answered = (host, labels.get("play", ""), labels.get("alertname", "")) in observed
                if not answered and host in unreachable_hosts:
                    # No result, because its host is down: still firing (and muted by that).
                    still_firing.append(Alert(labels, notes, starts_at))
            if not answered:
                # Not part of this run (another playbook, --tags, --limit): left as it is.
                continue
            resolved = Alert(labels, notes, starts_at, ends_at=now)
            outcome.resolved.append(resolved)
            connection.execute(
                "UPDATE alerts SET state = ?, ends_at = ?, updated_at = ? WHERE fingerprint = ?",
                (RESOLVED, now, now, fp),
            )
        outcome.firing = still_firing
        return still_firing

    # -- 2. inhibition -----------------------------------------------------------------------

    def _not_inhibited(
        self, firing: list[Alert], observations: RunObservations, outcome: Outcome
    ) -> tuple[list[Alert], list[Alert]]:
        """(active, muted): the muted ones as copies that say why in MUTED_ANNOTATION."""
        failing_checks = {(o.ref.host, o.ref.check) for o in observations.checks if o.failing}
        depends = {
            (o.ref.host, o.ref.check): o.depends_on for o in observations.checks if o.depends_on
        }
        sources = [a.labels for a in firing]
        active, muted = [], []
        for alert in firing:
            reason = self._mute_reason(alert.labels, observations, failing_checks, depends, sources)
            if reason is None:
                active.append(alert)
                continue
            outcome.inhibited.append(alert)
            annotations = {**alert.annotations, MUTED_ANNOTATION: reason}
            muted.append(dataclasses.replace(alert, annotations=annotations))
        return active, muted

    def _mute_reason(
        self,
        labels: dict[str, str],
        observations: RunObservations,
        failing_checks: set[tuple[str, str]],
        depends: dict[tuple[str, str], tuple[str, ...]],
        sources: list[dict[str, str]],
    ) -> str | None:
        host = labels.get("host", "")
        if labels.get("alertname") != UNREACHABLE_ALERT and host in observations.unreachable:
            return UNREACHABLE_ALERT
        for dependency in depends.get((host, labels.get("alertname", "")), ()):
            if (host, dependency) in failing_checks:
                return f"depends_on: {dependency}"
        if any(rule.inhibits(labels, sources) for rule in self.spec.inhibit_rules):
            return "inhibit_rules"
        return None

    # -- 3. routing, grouping, the notification log ----------------------------------------------

    def _notify(
        self,
        connection: sqlite3.Connection,
        active: list[Alert],
        resolved: list[Alert],
        now: float,
        outcome: Outcome,
    ) -> None:
        moment = dt.datetime.fromtimestamp(now, dt.timezone.utc)
        for (receiver, group_key), (route, alerts) in self._groups([*active, *resolved]).items():
            muted = route.muted_at(moment, self.spec.time_intervals)
            self._notify_group(connection, receiver, group_key, route, alerts, now, outcome, muted)

    def _groups(self, alerts: list[Alert]) -> dict[tuple[str, str], tuple[Route, list[Alert]]]:
        """The alerts by (receiver, groupKey), as the routing tree sends them."""
        groups: dict[tuple[str, str], tuple[Route, list[Alert]]] = {}
        for alert in alerts:
            for route in self.spec.route.match(alert.labels):
                key = (route.receiver, route.group_key(alert.labels))
                groups.setdefault(key, (route, []))[1].append(alert)
        return groups

    def _notify_group(
        self,
        connection: sqlite3.Connection,
        receiver: str,
        group_key: str,
        route: Route,
        alerts: list[Alert],
        now: float,
        outcome: Outcome,
        muted: bool = False,
    ) -> None:
        row = connection.execute(
            "SELECT firing, sent_at FROM nflog WHERE receiver = ? AND group_key = ?",
            (receiver, group_key),
        ).fetchone()
        notified = set(json.loads(row[0])) if row else set()
        sent_at = row[1] if row else None
        firing = sorted(a.fingerprint for a in alerts if a.status == FIRING)
        # Only alerts people were told about can be told resolved.
        resolved = [a for a in alerts if a.status == RESOLVED and a.fingerprint in notified]
        new = set(firing) - notified
        repeat_due = bool(firing) and (sent_at is None or now - sent_at >= route.repeat_interval)
        # A time interval holds the route's notifications (mute_time_intervals,
        # active_time_intervals); the notification log is left as it is, so what happened
        # meanwhile is told once the interval is over.
        changed = (bool(new) or bool(resolved) or repeat_due) and not muted
        notification = Notification(
            receiver=receiver,
            group_key=group_key,
            group_labels=route.group_labels(alerts[0].labels),
            alerts=[a for a in alerts if a.status == FIRING] + resolved,
        )
        queued = 0
        for config in self.receivers.get(receiver, []):
            if config.kind != ALERTMANAGER and changed:
                queued += self._enqueue(connection, config, notification, now, outcome)
        if changed or queued:
            outcome.notifications.append(notification)
            connection.execute(
                "INSERT OR REPLACE INTO nflog (receiver, group_key, firing, sent_at) "
                "VALUES (?, ?, ?, ?)",
                (receiver, group_key, json.dumps(firing), now if changed else sent_at or now),
            )
        outcome.queued += queued

    def _post_to_alertmanagers(
        self,
        connection: sqlite3.Connection,
        alerts: list[Alert],
        now: float,
        run_interval: float | None,
        outcome: Outcome,
    ) -> None:
        """Every firing alert routed to an alertmanager receiver, on every run, muted or not,
        and the ones that resolved: Alertmanager expires an alert that is not re-sent, which
        would announce "resolved" while the check still fails. It dedups, groups, inhibits
        and repeats by itself, so the notification log is not consulted."""
        for (receiver, group_key), (route, members) in self._groups(alerts).items():
            configs = [c for c in self.receivers.get(receiver, []) if c.kind == ALERTMANAGER]
            if not configs:
                continue
            notification = Notification(
                receiver=receiver,
                group_key=group_key,
                group_labels=route.group_labels(members[0].labels),
                alerts=members,
                run_interval=run_interval,
            )
            queued = sum(
                self._enqueue(connection, config, notification, now, outcome) for config in configs
            )
            if queued:
                outcome.notifications.append(notification)
            outcome.queued += queued

    def _enqueue(
        self,
        connection: sqlite3.Connection,
        config: ReceiverConfig,
        notification: Notification,
        now: float,
        outcome: Outcome,
    ) -> int:
        options = config.options
        alerts = notification.alerts
        if not options.get("send_resolved"):
            alerts = [a for a in alerts if a.status == FIRING]
        if not alerts:
            return 0
        message = dataclasses.replace(notification, alerts=alerts)
        return enqueue(connection, config, options, message, now, outcome.unrenderable)


def enqueue(
    connection: sqlite3.Connection,
    config: ReceiverConfig,
    options: dict[str, Any],
    notification: Notification,
    now: float,
    failures: list[str] | None = None,
) -> int:
    """The notification rendered by its receiver into outbox messages, in order.

    A notification this receiver cannot render (a template that fails on these alerts) is
    its delivery failure alone: it is kept in the outbox as failed, with the reason (shown
    by `checkrun alerts`, and added to `failures`), and the other receivers and the alert
    state go on as if it had been refused.
    """
    from checkrunner.alerting import receivers as registry
    from checkrunner.alerting.receivers.base import RenderError, scrub, secret_values

    module = registry.get(config.kind)
    try:
        payloads = module.render(options, notification)
    except RenderError as exc:
        reason = scrub(f"cannot render the message: {exc}", secret_values(module.OPTIONS, options))
        _record_render_failure(connection, config, notification, reason, now)
        if failures is not None:
            failures.append(f"{config.receiver} ({config.kind}): {reason}")
        return 0
    for payload in payloads:
        destination = _destination(module, options, payload)
        connection.execute(
            "INSERT INTO outbox (receiver, kind, config_index, destination, group_key, payload, "
            "created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                config.receiver,
                config.kind,
                config.index,
                destination,
                notification.group_key,
                json.dumps(payload),
                now,
                now,
            ),
        )
    return len(payloads)


def _record_render_failure(
    connection: sqlite3.Connection,
    config: ReceiverConfig,
    notification: Notification,
    reason: str,
    now: float,
) -> None:
    connection.execute(
        "INSERT INTO outbox (receiver, kind, config_index, destination, group_key, payload, "
        "created_at, next_attempt_at, last_error, state, done_at) "
        "VALUES (?, ?, ?, ?, ?, 'null', ?, ?, ?, 'failed', ?)",
        (
            config.receiver,
            config.kind,
            config.index,
            f"{config.receiver}:{config.kind}:{config.index}",
            notification.group_key,
            now,
            now,
            reason,
            now,
        ),
    )


def _destination(module: Any, options: dict[str, Any], payload: Any) -> str:
    """Where a message goes, for ordering and rate limits: one key per replica URL too, so a
    replica that is down holds back only its own messages."""
    key = module.destination(options)
    replica = payload.get("replica") if isinstance(payload, dict) else None
    return f"{key}:{replica}" if replica else key


def _update_run_gaps(
    connection: sqlite3.Connection, ran: list[CheckKey], now: float
) -> float | None:
    """Record that these checks ran now; the largest of their recent intervals between runs
    (at most MAX_OBSERVED_INTERVAL), or None when none of them ran before.

    Measured per check, not per run: playbooks sharing a state database, --tags and
    --limit run a check less often than the database sees runs.
    """
    wanted = set(ran)
    before = {
        CheckKey(host, play, name): (ran_at, json.loads(gaps))
        for host, play, name, ran_at, gaps in connection.execute(
            "SELECT host, play, check_name, ran_at, gaps FROM check_runs"
        )
        if CheckKey(host, play, name) in wanted
    }
    rows = []
    largest: float | None = None
    for key in wanted:
        last, gaps = before.get(key, (None, []))
        if last is not None and now > last:
            gaps = [*gaps, now - last][-GAPS_KEPT:]
        if gaps:
            largest = max(largest or 0.0, *gaps)
        rows.append((key.host, key.play, key.check, now, json.dumps(gaps)))
    connection.executemany(
        "INSERT OR REPLACE INTO check_runs (host, play, check_name, ran_at, gaps) "
        "VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    return None if largest is None else min(largest, MAX_OBSERVED_INTERVAL)


def _update_streaks(
    connection: sqlite3.Connection, observations: list[Observation], now: float
) -> dict[CheckKey, int]:
    """Consecutive failing runs of each observed check, this run included (0 once it passes)."""
    before = {
        CheckKey(host, play, name): runs
        for host, play, name, runs in connection.execute(
            "SELECT host, play, check_name, failing_runs FROM check_streaks"
        )
    }
    streaks = {obs.ref: before.get(obs.ref, 0) + 1 if obs.failing else 0 for obs in observations}
    connection.executemany(
        "INSERT OR REPLACE INTO check_streaks (host, play, check_name, failing_runs, updated_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(ref.host, ref.play, ref.check, runs, now) for ref, runs in streaks.items()],
    )
    return streaks


def check_settings(plan) -> dict[CheckKey, tuple[int, tuple[str, ...]]]:
    """`for` and `depends_on` of every check the plan runs (not those that tags or `when`
    leave out), by host, play and name."""
    return {
        CheckKey.of(c): (
            c.identity.for_runs,
            c.identity.depends_on,
        )
        for hp in plan.hosts
        for c in hp.runnable
    }


def summarize(outcome: Outcome) -> Iterable[str]:
    yield (
        f"alerts: {len(outcome.firing)} firing, {len(outcome.pending)} pending, "
        f"{len(outcome.resolved)} resolved, {len(outcome.inhibited)} inhibited; "
        f"{outcome.queued} message(s) queued"
        + (f", {len(outcome.unrenderable)} could not be rendered" if outcome.unrenderable else "")
    )
