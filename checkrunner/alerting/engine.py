"""From one run's observations to notifications in the outbox: the pipeline of stages
(stages.py) run over the state store (state/alerts.py), in one transaction its caller owns.

1. run times and failure streaks are updated; an alert fires once its check has failed
   `for` runs in a row, and resolves when the check passes again;
2. firing alerts are muted: a host that is UNREACHABLE mutes its own check alerts, a check
   whose `depends_on` check fails is muted, then inhibit rules;
3. alerts are routed and grouped. A receiver told through the notification log (most
   kinds) has aggregation groups, kept in the store as Alertmanager keeps them in memory:
   a group holds its alerts between runs and, with `group_waits` (watch mode), is flushed
   `group_wait` after it appeared and then every `group_interval`; without (one-shot runs)
   on every run. A flush tells the group when it has new alerts, resolved ones (with
   `send_resolved`), or `repeat_interval` elapsed, and not while a time interval holds its
   route; the resolved alerts then leave the group, and a group left empty is gone. A receiver that
   keeps alerts itself (`KEEPS_ALERTS`: Alertmanager) gets every firing alert its route
   matches on every run, muted ones too (annotated `muted_by`), with the interval observed
   between runs, so that it keeps them until well after the next run;
4. the rendered messages go to the outbox, in order. Delivery (delivery.py) happens
   afterwards; a message stays in the outbox until a receiver has accepted it.

The store and the time are passed in: a long-running process runs the same pipeline over
the store it keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from checkrunner.alerting import stages
from checkrunner.alerting.config import AlertingSpec, ReceiverConfig
from checkrunner.alerting.model import FIRING, Alert, Notification
from checkrunner.errors import RenderError
from checkrunner.state.alerts import AlertStore, StoredAlert, StoredGroup


@dataclass
class Outcome:
    """What the engine decided in one run (for reports and tests)."""

    firing: list[Alert] = field(default_factory=list)
    pending: list[tuple[Alert, int, int]] = field(default_factory=list)  # alert, runs, needed
    resolved: list[Alert] = field(default_factory=list)
    inhibited: list[Alert] = field(default_factory=list)
    muted: list[Alert] = field(default_factory=list)  # copies of inhibited saying why (muted_by)
    notifications: list[Notification] = field(default_factory=list)
    queued: int = 0  # outbox messages added
    unrenderable: list[str] = field(default_factory=list)  # "receiver (kind): reason"


def keeps_alerts(config: ReceiverConfig) -> bool:
    """Whether the receiver keeps alerts itself (see receivers/__init__.py)."""
    from checkrunner.alerting import receivers as registry

    return bool(registry.get(config.kind).KEEPS_ALERTS)


class AlertEngine:
    def __init__(self, spec: AlertingSpec | None, receivers: dict[str, list[ReceiverConfig]]):
        """`receivers`: the spec's receiver configs with their templates rendered. `spec`
        None: a playbook with handlers and no alerting keeps its alert state (streaks,
        `for:`, what fires, for the handlers) and notifies no one."""
        self.spec = spec
        self.receivers = receivers

    def process(
        self,
        store: AlertStore,
        observations: stages.RunObservations,
        now: float,
        group_waits: bool = False,
    ) -> Outcome:
        """Update the alert state and queue notifications; the caller owns the transaction.
        `group_waits`: the routes' group_wait and group_interval apply (watch mode)."""
        outcome = Outcome()
        run_times, run_interval = stages.next_run_times(
            store.run_times(observations.ran), observations.ran, now
        )
        store.save_run_times(run_times)
        streaks = stages.next_streaks(store.streaks(), observations.checks)
        store.save_streaks(streaks, now)
        state, muted = self._decide(store.firing(), streaks, observations, now, outcome)
        store.save_firing((stages.to_stored(a) for a in state.raised), now)
        store.save_resolved((a.fingerprint for a in state.resolved), now)
        if self.spec is None:
            return outcome
        decided = {a.fingerprint for a in [*state.firing, *state.resolved]}
        with store.held_writes():  # the groups' writes together, however many groups
            self._notify_logged(
                store, [*muted.active, *state.resolved], decided, now, outcome, group_waits
            )
            self._notify_keepers(
                store, [*muted.active, *muted.muted, *state.resolved], now, run_interval, outcome
            )
        return outcome

    def preview(
        self, store: AlertStore | None, observations: stages.RunObservations, now: float
    ) -> Outcome:
        """What `process` would decide (firing, pending, muted), read from `store` and
        written nowhere: handlers run on this, before the round is recorded, so that the
        alert and the reports say what they did. `store` None: no state, every streak
        starts with this run."""
        before = store.streaks() if store is not None else {}
        streaks = stages.next_streaks(before, observations.checks)
        outcome = Outcome()
        self._decide(store.firing() if store else [], streaks, observations, now, outcome)
        return outcome

    def _decide(
        self,
        stored: list[StoredAlert],
        streaks: dict,
        observations: stages.RunObservations,
        now: float,
        outcome: Outcome,
    ) -> tuple[stages.AlertState, stages.Muted]:
        state = stages.update_alerts(stored, observations, streaks, now)
        outcome.firing, outcome.pending, outcome.resolved = (
            state.firing,
            state.pending,
            state.resolved,
        )
        rules = self.spec.inhibit_rules if self.spec is not None else []
        muters = stages.run_muters(observations, rules, state.firing)
        muted = stages.mute(state.firing, muters)
        outcome.inhibited, outcome.muted = muted.inhibited, muted.muted
        return state, muted

    def _configs(self, receiver: str, keeping: bool) -> list[ReceiverConfig]:
        return [c for c in self.receivers.get(receiver, []) if keeps_alerts(c) == keeping]

    def _notify_logged(
        self,
        store: AlertStore,
        alerts: list[Alert],
        decided: set[str],
        now: float,
        outcome: Outcome,
        group_waits: bool,
    ) -> None:
        """Receivers told through the notification log: this run's `alerts` join their
        aggregation groups (`decided`: every alert this run made firing, muted or resolved),
        then each group whose time has come is flushed."""
        routed = stages.group(alerts, self.spec.route)
        stored = {(g.receiver, g.group_key): g for g in store.groups()}
        this_run = {a.fingerprint: a for a in alerts}
        members = {
            key: stages.group_members(
                stored[key].alerts if key in stored else (),
                decided,
                [a.fingerprint for a in routed[key].alerts] if key in routed else [],
            )
            for key in [*routed, *(k for k in stored if k not in routed)]
        }
        kept = store.alerts(fp for fps in members.values() for fp in fps if fp not in this_run)
        store.read_log_entries(members)
        for key, fingerprints in members.items():
            group_alerts = stages.member_alerts(fingerprints, this_run, kept)
            self._group_round(
                store,
                key,
                stored.get(key),
                routed.get(key),
                group_alerts,
                now,
                outcome,
                group_waits,
            )

    def _group_round(
        self,
        store: AlertStore,
        key: tuple[str, str],
        before: StoredGroup | None,
        fresh: stages.Group | None,
        group_alerts: list[Alert],
        now: float,
        outcome: Outcome,
        group_waits: bool,
    ) -> None:
        """One group this run: flushed when its time has come, then stored (or gone)."""
        receiver, group_key = key
        route = fresh.route if fresh else None
        route = route or stages.group_route(self.spec.route, receiver, group_key, group_alerts)
        if route is None or not group_alerts:
            store.delete_group(receiver, group_key)
            return
        timing = stages.group_timing(
            before, group_alerts, route, now, group_waits, arrived=fresh is not None
        )
        flushed_at = before.flushed_at if before else None
        if timing.due:
            self._flush(store, key, stages.Group(route, group_alerts), now, outcome)
            # Told or not, resolved alerts leave the group once it is flushed.
            group_alerts = [a for a in group_alerts if a.status == FIRING]
            flushed_at = now
        if not group_alerts:
            store.delete_group(receiver, group_key)
            return
        after = StoredGroup(
            receiver,
            group_key,
            tuple(a.fingerprint for a in group_alerts),
            timing.created_at,
            flushed_at,
            timing.next_flush_at,
        )
        if after != before:  # a watch round writes only the groups that changed
            store.save_group(after)

    def _flush(
        self,
        store: AlertStore,
        key: tuple[str, str],
        group: stages.Group,
        now: float,
        outcome: Outcome,
    ) -> None:
        """One group's flush: time intervals, then the notification log (dedup)."""
        receiver, group_key = key
        held = stages.time_muted(group.route, now, self.spec.time_intervals)
        entry = store.log_entry(receiver, group_key)
        verdict = stages.dedup(entry, group.alerts, group.route.repeat_interval, now, held)
        if not verdict.notify:
            return
        notification = group.notification(receiver, group_key, verdict.alerts)
        for config in self._configs(receiver, keeping=False):
            outcome.queued += self._enqueue(store, config, notification, now, outcome)
        outcome.notifications.append(notification)
        store.save_log_entry(receiver, group_key, verdict.firing, now)

    def _notify_keepers(
        self,
        store: AlertStore,
        alerts: list[Alert],
        now: float,
        run_interval: float | None,
        outcome: Outcome,
    ) -> None:
        """Receivers that keep alerts: every firing alert, muted or not, on every run, and
        the ones that resolved. Such a receiver expires an alert that is not re-sent, which
        would announce "resolved" while the check still fails; it dedups, groups, inhibits
        and repeats by itself, so the notification log is not consulted."""
        for (receiver, group_key), group in stages.group(alerts, self.spec.route).items():
            configs = self._configs(receiver, keeping=True)
            if not configs:
                continue
            notification = group.notification(
                receiver, group_key, group.alerts, run_interval=run_interval
            )
            queued = sum(self._enqueue(store, c, notification, now, outcome) for c in configs)
            if queued:
                outcome.notifications.append(notification)
            outcome.queued += queued

    def _enqueue(
        self,
        store: AlertStore,
        config: ReceiverConfig,
        notification: Notification,
        now: float,
        outcome: Outcome,
    ) -> int:
        message = stages.for_receiver(notification, config.options)
        if message is None:
            return 0
        return enqueue(store, config, config.options, message, now, outcome.unrenderable)


def enqueue(
    store: AlertStore,
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
    from checkrunner.alerting.receivers.base import scrub, secret_values

    module = registry.get(config.kind)
    try:
        messages = stages.render_messages(config, module, options, notification)
    except RenderError as exc:
        reason = scrub(f"cannot render the message: {exc}", secret_values(module.OPTIONS, options))
        store.queue_failed(
            config.receiver, config.kind, config.index, notification.group_key, reason, now
        )
        if failures is not None:
            failures.append(f"{config.receiver} ({config.kind}): {reason}")
        return 0
    store.queue(messages, now)
    return len(messages)


def summarize(outcome: Outcome) -> Iterable[str]:
    yield (
        f"alerts: {len(outcome.firing)} firing, {len(outcome.pending)} pending, "
        f"{len(outcome.resolved)} resolved, {len(outcome.inhibited)} inhibited; "
        f"{outcome.queued} message(s) queued"
        + (f", {len(outcome.unrenderable)} could not be rendered" if outcome.unrenderable else "")
    )
