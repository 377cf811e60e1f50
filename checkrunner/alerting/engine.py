"""From one run's results to notifications in the outbox, with state kept across runs.

Per run, in one transaction of the state database:
1. every check's streak of consecutive failing runs is updated; an alert fires once its
   check has failed `for` runs in a row, and resolves when the check passes again;
2. firing alerts are filtered: inhibit rules, a host that is UNREACHABLE mutes its own
   check alerts, a check whose `depends_on` check fails is muted;
3. alerts are routed (Alertmanager's tree) and grouped; the notification log, keyed by
   receiver and group, decides whether the group is notified now: new alerts, resolved
   ones (with `send_resolved`), or `repeat_interval` elapsed;
4. the rendered messages go to the outbox, in order. Delivery (delivery.py) happens
   afterwards; a message stays in the outbox until a receiver has accepted it.

Alerts whose host was unreachable keep their state: no result is not a recovery.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
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

    @property
    def hosts_seen(self) -> set[str]:
        return {o.ref.host for o in self.checks}


def observe_run(
    run: RunResult, check_settings: dict[CheckKey, tuple[int, tuple[str, ...]]], now: float
) -> RunObservations:
    """The alerts this run's results raise. `check_settings`: `for` and `depends_on` per check."""
    observations = RunObservations()
    for host in run.hosts:
        if not host.reachable:
            observations.unreachable[host.host] = Alert(
                labels={"alertname": UNREACHABLE_ALERT, "host": host.host, "severity": "critical"},
                annotations={"message": f"{host.reason or 'unreachable'}: {host.message}".strip()},
                starts_at=now,
            )
            continue
        for check in host.checks:
            if check.status == Status.SKIPPED:
                continue
            ref = CheckKey(check.host, check.play, check.name)
            for_runs, depends_on = check_settings.get(ref, (1, ()))
            failing = check.status in SEVERITY
            alert = _check_alert(check, now) if failing else None
            observations.checks.append(Observation(ref, failing, alert, for_runs, depends_on))
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
        firing_now = self._update_state(connection, observations, now, outcome)
        active = self._not_inhibited(firing_now, observations, outcome)
        self._notify(connection, active, outcome.resolved, now, outcome)
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
    ) -> list[Alert]:
        failing_checks = {(o.ref.host, o.ref.check) for o in observations.checks if o.failing}
        depends = {
            (o.ref.host, o.ref.check): o.depends_on for o in observations.checks if o.depends_on
        }
        sources = [a.labels for a in firing]
        active = []
        for alert in firing:
            labels = alert.labels
            host = labels.get("host", "")
            is_check_alert = labels.get("alertname") != UNREACHABLE_ALERT
            muted = (
                (is_check_alert and host in observations.unreachable)
                or any(
                    (host, dependency) in failing_checks
                    for dependency in depends.get((host, labels.get("alertname", "")), ())
                )
                or any(rule.inhibits(labels, sources) for rule in self.spec.inhibit_rules)
            )
            (outcome.inhibited if muted else active).append(alert)
        return active

    # -- 3. routing, grouping, the notification log ----------------------------------------------

    def _notify(
        self,
        connection: sqlite3.Connection,
        active: list[Alert],
        resolved: list[Alert],
        now: float,
        outcome: Outcome,
    ) -> None:
        groups: dict[tuple[str, str], tuple[Route, list[Alert]]] = {}
        for alert in [*active, *resolved]:
            for route in self.spec.route.match(alert.labels):
                key = (route.receiver, route.group_key(alert.labels))
                groups.setdefault(key, (route, []))[1].append(alert)
        for (receiver, group_key), (route, alerts) in groups.items():
            self._notify_group(connection, receiver, group_key, route, alerts, now, outcome)

    def _notify_group(
        self,
        connection: sqlite3.Connection,
        receiver: str,
        group_key: str,
        route: Route,
        alerts: list[Alert],
        now: float,
        outcome: Outcome,
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
        changed = bool(new) or bool(resolved) or repeat_due
        notification = Notification(
            receiver=receiver,
            group_key=group_key,
            group_labels=route.group_labels(alerts[0].labels),
            alerts=[a for a in alerts if a.status == FIRING] + resolved,
        )
        queued = 0
        for config in self.receivers.get(receiver, []):
            if config.kind == "alertmanager":
                # Alertmanager forgets alerts not re-sent; it dedups and repeats itself.
                if firing or resolved:
                    queued += self._enqueue(connection, config, notification, now)
            elif changed:
                queued += self._enqueue(connection, config, notification, now)
        if changed or queued:
            outcome.notifications.append(notification)
            connection.execute(
                "INSERT OR REPLACE INTO nflog (receiver, group_key, firing, sent_at) "
                "VALUES (?, ?, ?, ?)",
                (receiver, group_key, json.dumps(firing), now if changed else sent_at or now),
            )
        outcome.queued += queued

    def _enqueue(
        self,
        connection: sqlite3.Connection,
        config: ReceiverConfig,
        notification: Notification,
        now: float,
    ) -> int:
        options = config.options
        alerts = notification.alerts
        if not options.get("send_resolved"):
            alerts = [a for a in alerts if a.status == FIRING]
        if not alerts:
            return 0
        message = dataclasses.replace(notification, alerts=alerts)
        return enqueue(connection, config, options, message, now)


def enqueue(
    connection: sqlite3.Connection,
    config: ReceiverConfig,
    options: dict[str, Any],
    notification: Notification,
    now: float,
) -> int:
    """The notification rendered by its receiver into outbox messages, in order."""
    from checkrunner.alerting import receivers as registry

    module = registry.get(config.kind)
    payloads = module.render(options, notification)
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


def _destination(module: Any, options: dict[str, Any], payload: Any) -> str:
    """Where a message goes, for ordering and rate limits: one key per replica URL too, so a
    replica that is down holds back only its own messages."""
    key = module.destination(options)
    replica = payload.get("replica") if isinstance(payload, dict) else None
    return f"{key}:{replica}" if replica else key


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
    """`for` and `depends_on` of every planned check, by host, play and name."""
    return {
        CheckKey.of(c): (
            c.identity.for_runs,
            c.identity.depends_on,
        )
        for hp in plan.hosts
        for c in hp.checks
    }


def summarize(outcome: Outcome) -> Iterable[str]:
    yield (
        f"alerts: {len(outcome.firing)} firing, {len(outcome.pending)} pending, "
        f"{len(outcome.resolved)} resolved, {len(outcome.inhibited)} inhibited; "
        f"{outcome.queued} message(s) queued"
    )
