"""Alerting as the commands use it: after a run, `notify --flush`, `notify --test`, `alerts`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from checkrunner.alerting.config import AlertingSpec, ReceiverConfig, receiver_option_set
from checkrunner.alerting.delivery import DeliveryReport, Dispatcher
from checkrunner.alerting.engine import AlertEngine, Outcome, enqueue
from checkrunner.alerting.model import Alert, Notification
from checkrunner.alerting.stages import check_settings, observe_run
from checkrunner.errors import ConfigError
from checkrunner.results import RunResult
from checkrunner.state.alerts import AlertStore
from checkrunner.state.db import StateDB


@dataclass
class RenderedReceivers:
    receivers: dict[str, list[ReceiverConfig]]
    secrets: set[str]


def render_receivers(spec: AlertingSpec) -> RenderedReceivers:
    """Receiver options with their templates rendered ({{ env.WECOM_KEY }}), then checked.

    Everything rendered from the environment, and every option a receiver marks secret,
    is returned as a secret so that reports and logs mask it.
    """
    from checkrunner.config import Templater
    from checkrunner.masking import errors_masked

    templater = Templater()
    with errors_masked(lambda: templater.environment_values_used):
        return _render_receivers(templater, spec)


def _render_receivers(templater, spec: AlertingSpec) -> RenderedReceivers:
    from checkrunner.alerting import receivers as registry
    from checkrunner.alerting.receivers.base import secret_values
    from checkrunner.config.normalize import check_option_set
    from checkrunner.config.problems import raise_problems

    rendered: dict[str, list[ReceiverConfig]] = {}
    secrets: set[str] = set()
    problems = []
    for name, configs in spec.receivers.items():
        for config in configs:
            module = registry.get(config.kind)
            # Message templates ({{ status }}, {{ alerts }}) are the receiver's, per notification.
            per_notification = {
                key: value
                for key, value in config.options.items()
                if module.OPTIONS.get(key, {}).get("template")
            }
            now = {k: v for k, v in config.options.items() if k not in per_notification}
            options = {**templater.render(now, {}, config.location), **per_notification}
            owner = receiver_option_set(config.kind, config.index, name)
            values, found = check_option_set(owner, options, config.location, keep_templates=False)
            problems += found
            secrets |= set(secret_values(module.OPTIONS, values))
            rendered.setdefault(name, []).append(dataclasses.replace(config, options=values))
    raise_problems(problems)
    secrets |= templater.environment_values_used
    return RenderedReceivers(rendered, {s for s in secrets if s})


def process_run(
    db: StateDB,
    spec: AlertingSpec,
    receivers: RenderedReceivers,
    plan,
    run: RunResult,
    mask: Callable[[str], str],
    deliver: bool = True,
    clock: Callable[[], float] = time.time,
    group_waits: bool = False,
) -> tuple[Outcome, DeliveryReport | None]:
    """Alert state and notifications for one run (enqueue_run), then delivery of the outbox
    within the run's budget. With `deliver` False (--no-notify) everything is decided and
    nothing kept or sent. Watch mode calls enqueue_run and wakes its DeliveryWorker instead
    (worker.py): a receiver that is down must not hold a round.
    """
    outcome = enqueue_run(db, spec, receivers, plan, run, mask, clock, group_waits, keep=deliver)
    if not deliver:
        return outcome, None
    report = Dispatcher(db, receivers.receivers, mask).deliver()
    report.failed[:0] = outcome.unrenderable
    return outcome, report


def enqueue_run(
    db: StateDB,
    spec: AlertingSpec | None,
    receivers: RenderedReceivers | None,
    plan,
    run: RunResult,
    mask: Callable[[str], str],
    clock: Callable[[], float] = time.time,
    group_waits: bool = False,
    keep: bool = True,
) -> Outcome:
    """Alert state and notifications for one run, committed with the messages they put in
    the outbox (in one transaction); nothing is sent. `outcome.unrenderable` (masked) are
    the notifications a receiver could not render: kept as failed, never sent.

    `group_waits` (watch mode, which calls this once per round, also with a `run` that
    holds no hosts): the routes' group_wait and group_interval apply as in Alertmanager. A
    new group is told group_wait after it appeared, then changes are told at most every
    group_interval; a call flushes every group whose wait is over, whatever `run` holds.
    Without it (one-shot runs, cron, CI) nothing waits and every group is looked at now:
    nothing runs after a one-shot run to send what would wait, and a cron job's next run
    is a minute or an hour away, not group_wait. `keep` False: decided, then rolled back
    (--no-notify: later runs are unaffected). `spec` None (a playbook with handlers and no
    receivers): the alert state only, for the handlers; nothing is queued.
    """
    now = clock()
    observations = observe_run(run, check_settings(plan), now)
    engine = AlertEngine(spec, receivers.receivers if receivers is not None else {})
    with db.transaction(dry_run=not keep) as connection:
        outcome = engine.process(AlertStore(connection), observations, now, group_waits)
    outcome.unrenderable = [mask(failure) for failure in outcome.unrenderable]
    return outcome


def preview_run(
    db: StateDB | None, spec: AlertingSpec | None, plan, run: RunResult, now: float
) -> Outcome:
    """What recording `run` at `now` will make of its alerts (what fires after `for:`, what
    is muted and why), decided now and kept nowhere. `db` None: no state, so no streak
    from earlier runs."""
    observations = observe_run(run, check_settings(plan), now)
    engine = AlertEngine(spec, {})
    if db is None:
        return engine.preview(None, observations, now)
    with db.transaction(dry_run=True) as connection:
        return engine.preview(AlertStore(connection), observations, now)


def flush(db: StateDB, receivers: RenderedReceivers, mask: Callable[[str], str]) -> DeliveryReport:
    return Dispatcher(db, receivers.receivers, mask).deliver()


def send_test(
    db: StateDB, receivers: RenderedReceivers, name: str, mask: Callable[[str], str]
) -> DeliveryReport:
    """A test notification to every config of receiver `name`, through the outbox."""
    configs = receivers.receivers.get(name)
    if configs is None:
        raise ConfigError(
            f"no receiver named '{name}'",
            hint=f"receivers: {', '.join(receivers.receivers) or 'none defined'}",
        )
    now = time.time()
    alert = Alert(
        labels={"alertname": "checkrun test", "severity": "warning", "host": "checkrun"},
        annotations={"message": f"test notification from checkrun to receiver '{name}'"},
        starts_at=now,
    )
    notification = Notification(
        receiver=name, group_key=f"test:{now}", group_labels={}, alerts=[alert], test=True
    )
    unrenderable: list[str] = []
    with db.transaction() as connection:
        store = AlertStore(connection)
        for config in configs:
            enqueue(store, config, config.options, notification, now, unrenderable)
    report = Dispatcher(db, receivers.receivers, mask).deliver()
    report.failed[:0] = [mask(failure) for failure in unrenderable]
    return report


def alert_listing(db: StateDB, clock: Callable[[], float] = time.time) -> list[str]:
    """Firing alerts, checks on their way to firing (pending), groups waiting for their
    group_wait or group_interval (watch mode), and undelivered messages."""
    store = AlertStore(db.connection)
    firing = store.firing(by_start=True)
    lines = [f"firing ({len(firing)}):"]
    for alert in firing:
        labels = alert.labels
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(alert.starts_at))
        lines.append(
            f"  {labels.get('alertname')} on {labels.get('host')} "
            f"[{labels.get('severity')}] since {since}: {alert.annotations.get('message', '')}"
        )
        if "remediation" in alert.annotations:  # what its handler did (last), and if escalated
            escalated = labels.get("remediation")
            lines.append(
                f"    remediation{f' {escalated}' if escalated else ''}: "
                f"{alert.annotations['remediation']}"
            )
    pending = store.failing_streaks()
    lines.append(f"failing checks ({len(pending)}):")
    for key, runs in pending:
        lines.append(f"  {key.check} on {key.host} ({key.play}): {runs} failing run(s) in a row")
    lines += _waiting_groups(store, clock())
    undelivered = store.undelivered()
    lines.append(f"undelivered ({len(undelivered)}):")
    for message in undelivered:
        queued = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(message.created_at))
        lines.append(
            f"  {message.receiver} ({message.kind}) {message.state}, queued {queued}, "
            f"{message.attempts} attempt(s)"
            + (f": {message.last_error}" if message.last_error else "")
        )
    return lines


def _waiting_groups(store: AlertStore, now: float) -> list[str]:
    """Groups whose next flush is still to come: a watch process tells them then."""
    waiting = [g for g in store.groups() if g.next_flush_at > now]
    lines = [f"waiting groups ({len(waiting)}):"]
    for group in waiting:
        alerts = store.alerts(group.alerts).values()
        resolved = sum(1 for a in alerts if a.ends_at is not None)
        due = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(group.next_flush_at))
        timer = "group_wait" if group.flushed_at is None else "group_interval"
        lines.append(
            f"  {group.receiver} {group.group_key}: {len(alerts) - resolved} firing, "
            f"{resolved} resolved; next flush at {due} "
            f"(in {group.next_flush_at - now:.0f}s, {timer})"
        )
    return lines
