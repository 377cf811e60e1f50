"""From one run's observations to notifications in the outbox: the pipeline of stages
(stages.py) run over the state store (state/alerts.py), in one transaction its caller owns.

1. run times and failure streaks are updated; an alert fires once its check has failed
   `for` runs in a row, and resolves when the check passes again;
2. firing alerts are muted: a host that is UNREACHABLE mutes its own check alerts, a check
   whose `depends_on` check fails is muted, then inhibit rules;
3. alerts are routed and grouped. A receiver told through the notification log (most
   kinds) gets a group when it has new alerts, resolved ones (with `send_resolved`), or
   `repeat_interval` elapsed, and not while a time interval holds its route. A receiver that
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
from checkrunner.alerting.model import Alert, Notification
from checkrunner.errors import RenderError
from checkrunner.state.alerts import AlertStore


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


def keeps_alerts(config: ReceiverConfig) -> bool:
    """Whether the receiver keeps alerts itself (see receivers/__init__.py)."""
    from checkrunner.alerting import receivers as registry

    return bool(registry.get(config.kind).KEEPS_ALERTS)


class AlertEngine:
    def __init__(self, spec: AlertingSpec, receivers: dict[str, list[ReceiverConfig]]):
        """`receivers`: the spec's receiver configs with their templates rendered."""
        self.spec = spec
        self.receivers = receivers

    def process(
        self, store: AlertStore, observations: stages.RunObservations, now: float
    ) -> Outcome:
        """Update the alert state and queue notifications; the caller owns the transaction."""
        outcome = Outcome()
        run_times, run_interval = stages.next_run_times(
            store.run_times(observations.ran), observations.ran, now
        )
        store.save_run_times(run_times)
        streaks = stages.next_streaks(store.streaks(), observations.checks)
        store.save_streaks(streaks, now)
        state = stages.update_alerts(store.firing(), observations, streaks, now)
        store.save_firing((stages.to_stored(a) for a in state.raised), now)
        store.save_resolved((a.fingerprint for a in state.resolved), now)
        outcome.firing, outcome.pending, outcome.resolved = (
            state.firing,
            state.pending,
            state.resolved,
        )
        muters = stages.run_muters(observations, self.spec.inhibit_rules, state.firing)
        muted = stages.mute(state.firing, muters)
        outcome.inhibited = muted.inhibited
        self._notify_logged(store, [*muted.active, *state.resolved], now, outcome)
        self._notify_keepers(
            store, [*muted.active, *muted.muted, *state.resolved], now, run_interval, outcome
        )
        return outcome

    def _configs(self, receiver: str, keeping: bool) -> list[ReceiverConfig]:
        return [c for c in self.receivers.get(receiver, []) if keeps_alerts(c) == keeping]

    def _notify_logged(
        self, store: AlertStore, alerts: list[Alert], now: float, outcome: Outcome
    ) -> None:
        """Receivers told through the notification log: time intervals, then dedup."""
        for (receiver, group_key), group in stages.group(alerts, self.spec.route).items():
            held = stages.time_muted(group.route, now, self.spec.time_intervals)
            entry = store.log_entry(receiver, group_key)
            verdict = stages.dedup(entry, group.alerts, group.route.repeat_interval, now, held)
            if not verdict.notify:
                continue
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
