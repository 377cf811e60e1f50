"""Recording a round: what a one-shot run and every round of watch mode do with results.

A one-shot run is one round with every check due; watch mode records a round whenever
hosts finish (and on every tick, also when none did, so that alert groups whose wait is
over are flushed). Before a round is reported and recorded, `heal` runs the handlers its
firing alerts notify (self-healing). Recording a round, in this order: the log checks' new offsets of the
hosts whose results are in (never of a host still in flight) with every measurement of
those hosts into the history (one transaction), alert state, notifications and the outbox
(one transaction, then delivery), and the status export.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checkrunner.plan import HostPlan, Plan
from checkrunner.results import RunResult
from checkrunner.state.baselines import BaselineState
from checkrunner.state.history import HistoryStore, Retention
from checkrunner.state.logs import LogState

if TYPE_CHECKING:
    from checkrunner.alerting.delivery import DeliveryReport
    from checkrunner.alerting.engine import Outcome
    from checkrunner.alerting.runtime import RenderedReceivers
    from checkrunner.config.baselines import BaselineSpec
    from checkrunner.evaluate.evaluate import CheckIdentity
    from checkrunner.evaluate.history import SeriesStats
    from checkrunner.masking import Masker
    from checkrunner.state.db import StateDB


@dataclass
class LoadedConfig:
    """One reading of the playbook, inventory and alerting, with its secrets masked: what a
    run runs, and what watch mode replaces on SIGHUP."""

    plan: Plan
    receivers: RenderedReceivers | None
    masker: Masker
    become_password: str | None = None


@dataclass
class Recorded:
    run: RunResult
    outcome: Outcome | None = None  # None: no alerting, or an interrupted run
    report: DeliveryReport | None = None  # None: no delivery (--no-notify)
    remediation: list[str] = field(default_factory=list)  # what the handlers did, one line each


class RoundRecorder:
    """Records rounds into the state database (`db`, None without state) and `status`
    (watch mode's WatchStatus, None for a one-shot run). `group_waits`: route group_wait
    and group_interval apply (watch mode). `worker`: watch mode's DeliveryWorker; a round
    then commits its notifications to the outbox and wakes the worker instead of delivering
    them itself, so that a receiver that is down never holds a round. `remediate`: called
    by `heal` with the config, alerting's preview of the round, the round's results, open
    transports (or None) and the round's log state for verify runs; runs the handlers the firing alerts notify, attaches what they did
    to the results and returns one line per decision (app.py builds it). `fence`: called
    first in each transaction that records (watch --ha: LeaseLost unless this replica
    leads)."""

    def __init__(
        self,
        db: StateDB | None,
        config: LoadedConfig,
        deliver: bool = True,
        group_waits: bool = False,
        status: Any = None,
        clock: Callable[[], float] = time.time,
        worker: Any = None,
        remediate: Callable[..., list[str]] | None = None,
        fence: Callable[[Any], None] | None = None,
    ):
        self.db = db
        self.config = config
        self.log_state = LogState(db, config.masker.text)
        self.baselines = BaselineState(db, config.masker.text)
        self.deliver = deliver
        self.group_waits = group_waits
        self.status = status
        self.clock = clock
        self.worker = worker
        self.remediate = remediate
        self.fence = fence
        self.retention = Retention.from_environment()

    def replace_config(self, config: LoadedConfig) -> None:
        """After a reload (at a round boundary: nothing in flight), record with `config`."""
        self.config = config
        self.log_state = LogState(self.db, config.masker.text)
        self.baselines = BaselineState(self.db, config.masker.text)

    def prepare(self, host_plans: list[HostPlan]) -> None:
        """Before these hosts run: their log checks get the offsets saved so far, and their
        dynamic thresholds the statistics of their history at the recorder's clock."""
        plan = self.config.plan
        self.log_state.prepare(Plan(playbook=plan.playbook, hosts=host_plans))
        self.baselines.prepare(host_plans, self.clock())

    def lookup_baseline(
        self, identity: CheckIdentity, metric: str, spec: BaselineSpec
    ) -> SeriesStats:
        """The runner's baselines hook (RunOptions.baselines), through the current state
        (replaced on reload)."""
        return self.baselines.lookup(identity, metric, spec)

    def heal(self, run: RunResult, transports: Any = None) -> list[str]:
        """Before the round is reported and recorded: the handlers that the alerts it will
        fire notify, behind the guard rails (the `remediate` hook), decided on alerting's
        preview of the round; what they did is attached to the notifying checks' results.
        `transports`: connections already open to the hosts (a one-shot run's), or None to
        open them. One line per decision."""
        config = self.config
        if self.remediate is None or run.interrupted or not config.plan.handlers or not run.hosts:
            return []
        from checkrunner.alerting.runtime import preview_run

        try:
            preview = preview_run(self.db, config.plan.alerting, config.plan, run, self.clock())
            return self.remediate(config, preview, run, transports, self.log_state.verifier())
        except Exception as exc:  # noqa: BLE001 - the round is still reported and alerted
            return [config.masker.text(f"remediation: not attempted this round: {exc!r}")]

    def record(self, run: RunResult, remediation: list[str] | None = None) -> Recorded:
        """`remediation`: what `heal` said of this round."""
        self.commit_round(run)
        return self.finish(run, remediation)

    def commit_round(self, run: RunResult) -> None:
        """The first half of `record`: the round's log offsets and measurements."""
        # Offsets only for the hosts whose results are recorded here, in one transaction
        # with the round's measurements: a crash before it re-reads their lines, never
        # skips them, and their counts land in the history exactly once.
        self._commit_round(run, {host.host for host in run.hosts})

    def finish(self, run: RunResult, remediation: list[str] | None = None) -> Recorded:
        """The second half of `record`, once the round is committed: its alerts (the alert
        state, the outbox, delivery) and the status. Watch mode retries it alone when the
        state database failed under it, so that nothing is committed twice."""
        recorded = Recorded(run, remediation=remediation or [])
        config = self.config
        keeps_alerts = config.receivers is not None or bool(config.plan.handlers)
        if keeps_alerts and self.db is not None and not run.interrupted:
            recorded.outcome, recorded.report = self._alert(run)
        if self.status is not None:
            for host in run.hosts:
                self.status.record_host(host)
        return recorded

    def _commit_round(self, run: RunResult, hosts: set[str]) -> None:
        """The log offsets and every measurement of the round, in one transaction."""
        if self.db is None:
            self.log_state.commit(hosts)  # remembered in memory for the next round
            return
        try:
            with self.db.transaction() as connection:
                if self.fence is not None:
                    self.fence(connection)
                # A check whose lines another run counted meanwhile (sharing the database)
                # keeps neither its offsets nor its counts (LogState.commit).
                counted_elsewhere = self.log_state.commit(hosts, connection)
                if run.all_checks():
                    HistoryStore(connection, self.retention).record(
                        run, self.clock(), skip=counted_elsewhere
                    )
        except BaseException:
            self.log_state.rollback()  # the offsets are the round's again, for a retry
            raise
        self.log_state.committed()

    def _alert(self, run: RunResult):
        from checkrunner.alerting.runtime import enqueue_run, process_run

        config = self.config
        arguments = (config.plan.alerting, config.receivers, config.plan, run, config.masker.text)
        fence = self.fence
        if config.receivers is None:  # handlers without receivers: the alert state only
            outcome = enqueue_run(
                self.db, *arguments, clock=self.clock, keep=self.deliver, fence=fence
            )
            return outcome, None
        if self.worker is None or not self.deliver:
            return process_run(
                self.db,
                *arguments,
                deliver=self.deliver,
                clock=self.clock,
                group_waits=self.group_waits,
                fence=fence,
            )
        outcome = enqueue_run(
            self.db, *arguments, clock=self.clock, group_waits=self.group_waits, fence=fence
        )
        self.worker.wake()
        return outcome, None
