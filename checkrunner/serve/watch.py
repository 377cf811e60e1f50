"""`checkrun watch`: the scheduler loop that runs a playbook's checks until it is stopped.

Each host's checks run when they are due (serve.schedule), on a long-lived pool of host
workers (runner.HostPool): a host in flight holds one worker and delays nobody else, and a
host still in flight when it is due again is skipped and counted, never stacked. Results are
recorded as they come in, by the same RoundRecorder as a one-shot run (log offsets, alert
state, the outbox), and exported to the status (/metrics). A host that cannot be reached
opens its circuit breaker (serve.breaker): it is reported UNREACHABLE from the control node
until its backoff is over, then probed once. Adaptive intervals (serve.adaptive) decide each
check's next time.

Signals: SIGTERM and SIGINT stop it (the hosts in flight get the grace period to finish;
what finished is recorded, the rest abandoned, unrecorded: their log lines are read again
next time); SIGHUP re-reads the playbook, inventory and alerting, and swaps them in once
nothing is in flight; a broken new config keeps the old one running.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from checkrunner.alerting.delivery import Backoff
from checkrunner.errors import CheckrunError, ConfigError, LeaseLost, flatten_problems
from checkrunner.plan import HostPlan, PlannedCheck
from checkrunner.results import HostResult, RunResult, UnreachableReason
from checkrunner.runner import HostPool, RunOptions, raise_open_files_limit
from checkrunner.serve.adaptive import is_urgent, next_interval
from checkrunner.serve.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from checkrunner.serve.events import EventLog
from checkrunner.serve.ha import Leadership
from checkrunner.serve.rounds import LoadedConfig, Recorded, RoundRecorder
from checkrunner.serve.schedule import Schedule, schedule_key
from checkrunner.state.breakers import BackoffStore, StoredBackoff
from checkrunner.state.db import STATE_ERRORS

TICK = 0.5  # seconds: the longest the loop sleeps (signals, alert group waits, due checks)
MIN_WAIT = 0.01  # seconds: the shortest, so that the loop never spins
STATE_RETRY_FIRST = 1.0  # seconds before the state database is tried again after a failure
STATE_RETRY_MOST = 30.0


@dataclass
class WatchSettings:
    backoff_max: float  # the longest backoff of an unreachable host
    stop_grace: float  # how long hosts in flight may finish after SIGTERM


@dataclass
class _Held:
    """A round not recorded yet: the state database failed under it (or is failing)."""

    run: RunResult
    remediation: list[str]
    committed: bool = False  # its offsets and measurements are in; its alerts are not


class _StateHealth:
    """Whether the state database answers; while it fails, when to try it again (doubling
    from STATE_RETRY_FIRST to STATE_RETRY_MOST). One event when it fails, one when it is back."""

    def __init__(self, events: EventLog, status: Any):
        self.events = events
        self.status = status
        self.down_since: float | None = None
        self.retry_at = 0.0
        self._backoff = Backoff(STATE_RETRY_FIRST, STATE_RETRY_MOST)

    def usable(self, now: float) -> bool:
        return self.down_since is None or now >= self.retry_at

    def failed(self, exc: BaseException, now: float) -> None:
        pause = self._backoff.pause(None)
        self.retry_at = now + pause
        if self.down_since is not None:
            return
        self.down_since = now
        self.status.set_state_up(False)
        self.events.emit(
            "state-failed",
            f"{exc}; the rounds are held and recorded once it answers (tried again with a "
            "backoff); no new round starts meanwhile",
        )

    def answered(self, now: float) -> None:
        if self.down_since is None:
            return
        self.events.emit(
            "state-restored", f"the state database answers again after {now - self.down_since:.0f}s"
        )
        self.down_since = None
        self._backoff.reset()
        self.status.set_state_up(True)


@dataclass
class _InFlight:
    host_plan: HostPlan  # the host with the checks that were due
    scheduled: float  # when they were due


class Watch:
    """One watch process's loop. Everything it uses is handed in and owned by the caller
    (app.watch): the transports, the state database, the status, the events log.

    `load` reads the configuration again (SIGHUP); `options` makes the runner's options
    for a configuration (its become password, its mask, the recorder's observe).
    """

    def __init__(
        self,
        config: LoadedConfig,
        load: Callable[[], LoadedConfig],
        options: Callable[[LoadedConfig, RoundRecorder], RunOptions],
        transports: Any,
        recorder: RoundRecorder,
        status: Any,
        events: EventLog,
        settings: WatchSettings,
        clock: Callable[[], float] = time.time,
        pusher: Any = None,
        leadership: Leadership | None = None,
    ):
        """`pusher`: --push's PushWorker (serve/pusher.py), told after each round that
        recorded results; None without --push. `leadership`: --ha's (serve/ha.py): the loop
        works only while this replica leads; None: always."""
        self.pusher = pusher
        self.leadership = leadership
        self._leading = leadership is None
        self.config = config
        self._load = load
        self._options = options
        self.transports = transports
        self.recorder = recorder
        self.status = status
        self.events = events
        self.settings = settings
        self.clock = clock
        self.schedule = Schedule()
        self.breakers: dict[str, Breaker] = {}
        self._backoffs = BackoffStore(recorder.db) if recorder.db is not None else None
        self._pool = HostPool(options(config, recorder), transports)
        self._in_flight: dict[Future, _InFlight] = {}
        # Set by the signal handlers: a plain flag, never an Event, whose set() in a handler
        # can deadlock against the main thread's own wait() on it (the handler runs in the
        # main thread, which may hold the Event's lock at that moment). The loop sleeps at
        # most TICK, so it sees the flag within TICK.
        self._stopping = False
        self._reload_requested = False
        self._pending: LoadedConfig | None = None
        # hosts (masked, as results name them) without a result yet: /-/ready says 200 once
        # every host has had its first round
        self._awaiting_first_round: set[str] | None = None
        self._state = _StateHealth(events, status)
        self._held: list[_Held] = []  # rounds the state database failed under, oldest first

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        raise_open_files_limit()
        self._install_signal_handlers()
        plan = self.config.plan
        self.events.emit("start", playbook=plan.playbook, hosts=len(plan.hosts))
        self._restore_backoffs()
        self.schedule.sync(plan.hosts, self.clock())
        self.status.set_reload(True, self.clock())
        self._awaiting_first_round = self._export_config()
        self._first_rounds_done([])
        if self.leadership is not None:
            self.leadership.start()
        while not self._stopping:
            if self._follows_leadership():
                self.tick()
                self._wait_for_work()
            else:  # standing by: the lease's thread says when this replica leads
                time.sleep(TICK)
        return self._shut_down()

    def _follows_leadership(self) -> bool:
        """With --ha: whether this replica leads now. A replica that starts leading checks
        every host at once (from the state the last leader recorded); one that stops leading
        drops the hosts in flight unrecorded (the leader now checks them)."""
        if self.leadership is None:
            return True
        leading = self.leadership.leading
        if leading and not self._leading:
            now = self.clock()
            self.schedule = Schedule()
            self.schedule.sync(self.config.plan.hosts, now)
            self._awaiting_first_round = self._export_config()
        elif self._leading and not leading:
            self._in_flight.clear()
            self._held.clear()  # the next leader reads their lines again (the offsets' CAS)
            self.status.set_ready(False)
        self._leading = leading
        self.status.set_leader(leading, self.leadership.leader)
        return leading

    def stop(self) -> None:
        """Stop after the current tick (safe from a signal handler and from other threads)."""
        self._stopping = True

    def request_reload(self) -> None:
        self._reload_requested = True

    def tick(self) -> None:
        """Record what finished, apply a reload, start what is due: one round."""
        now = self.clock()
        results = self._collect(now)
        if self._reload_requested:
            self._reload_requested = False
            self._reload(now)
        if self._pending is not None and not self._in_flight:
            self._swap(self._pending, now)
        to_start: list[tuple[HostPlan, list[PlannedCheck]]] = []
        # A new configuration waits for the hosts in flight; no round starts while the
        # state database is failing, or rounds are held for it (their offsets are not saved:
        # a new round would read their lines again).
        if self._pending is None and self._state.usable(now) and not self._held:
            results += self._due(now, to_start)
        self._record(results)
        for host_plan, checks in to_start:
            try:
                self._start(host_plan, checks, now)
            except STATE_ERRORS as exc:  # its offsets unread: it and the rest start later
                self._state.failed(exc, now)
                break

    def _wait_for_work(self) -> None:
        next_due = self.schedule.next_due()
        if next_due is None or self._pending is not None:  # due checks wait for the swap
            timeout = TICK
        else:
            timeout = min(TICK, max(MIN_WAIT, next_due - self.clock()))
        if self._in_flight:
            wait(list(self._in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
        else:
            time.sleep(timeout)

    def _first_rounds_done(self, recorded: list[HostResult]) -> None:
        """Ready (/-/ready) once every host of the configuration the process started with
        has a result in the status."""
        awaiting = self._awaiting_first_round
        if awaiting is None:
            return
        awaiting.difference_update(result.host for result in recorded)
        if not awaiting:
            self._awaiting_first_round = None
            self.status.set_ready(True)

    def _install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            self.stop()

        def reload(signum: int, _frame: Any) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    # -- starting hosts ----------------------------------------------------------------------

    def _due(self, now: float, to_start: list[tuple[HostPlan, list[PlannedCheck]]]) -> list:
        """Collects the hosts to start now in `to_start`; returns the results made here, on
        the control node, for hosts whose breaker is open."""
        busy = {entry.host_plan.host.name for entry in self._in_flight.values()}
        made_here: list[HostResult] = []
        for host_plan in self.config.plan.hosts:
            name = host_plan.host.name
            due = self.schedule.due(host_plan, now)
            if not due:
                continue
            if name in busy:
                self.schedule.started(name, due, now)
                masked = self.config.masker.text(name)
                self.status.count_skipped(masked)
                self.events.emit("skipped", "still in flight from its previous round", host=name)
                continue
            breaker = self.breakers.get(name)
            state = breaker.state(now) if breaker is not None else CLOSED
            if state == OPEN:
                self.schedule.started(name, due, now)
                made_here.append(self._backoff_result(host_plan, breaker, now))
                continue
            if state == HALF_OPEN:
                self.events.emit("half-open", "one attempt", host=name, failures=breaker.failures)
            to_start.append((host_plan, due))
        return made_here

    def _start(self, host_plan: HostPlan, checks: list[PlannedCheck], now: float) -> None:
        subset = HostPlan(host=host_plan.host, checks=checks, scores=host_plan.scores)
        self.recorder.prepare([subset])
        scheduled = self.schedule.started(host_plan.host.name, checks, now)
        self._in_flight[self._pool.submit(subset)] = _InFlight(subset, scheduled)

    def _backoff_result(self, host_plan: HostPlan, breaker: Breaker, now: float) -> HostResult:
        """UNREACHABLE, decided here without a worker: the host's breaker is open."""
        host = host_plan.host
        wait_for = max(0.0, breaker.next_attempt_at - now)
        message = f"backoff: next attempt in {wait_for:.0f}s"
        if breaker.message:
            message += f" (last attempt: {breaker.message})"
        result = HostResult(
            host=host.name,
            address=host.address,
            connection=host.connection,
            reachable=False,
            reason=breaker.reason or UnreachableReason.ERROR.value,
            message=message,
            started_at=now,
        )
        return self.config.masker.leaving_run(result)

    # -- results -------------------------------------------------------------------------------

    def _collect(self, now: float) -> list[HostResult]:
        finished = [future for future in self._in_flight if future.done()]
        results = []
        for future in finished:
            entry = self._in_flight.pop(future)
            result = self._result_of(future, entry)
            self._update_breaker(entry.host_plan, result, now)
            self._update_intervals(entry, result, now)
            self.status.record_round(result.duration)
            results.append(result)
        return results

    def _result_of(self, future: Future, entry: _InFlight) -> HostResult:
        host = entry.host_plan.host
        try:
            return future.result()
        except Exception as exc:  # a bug in one host's run never stops the others
            message = self.config.masker.text(f"{type(exc).__name__}: {exc}")
            self.events.emit("error", message, host=host.name)
            result = HostResult(
                host=host.name,
                address=host.address,
                connection=host.connection,
                reachable=False,
                reason=UnreachableReason.ERROR.value,
                message=message,
            )
            return self.config.masker.leaving_run(result)

    def _update_breaker(self, host_plan: HostPlan, result: HostResult, now: float) -> None:
        name = host_plan.host.name
        breaker = self.breakers.setdefault(name, Breaker())
        failed = not result.reachable and result.reason != (
            UnreachableReason.UNSUPPORTED_CONNECTION.value
        )
        if failed:
            base = min((c.interval.minimum for c in host_plan.checks), default=1.0)
            backoff = breaker.record_failure(
                now, base, self.settings.backoff_max, result.reason or "", result.message
            )
            self._forget(name)
            self.status.set_backoff(result.host, backoff, breaker.failures)
            self._save_backoff(result.host, breaker, now)
            self.events.emit(
                "backoff",
                f"{result.reason}: {result.message}; next attempt in {backoff:.0f}s",
                host=name,
                failures=breaker.failures,
            )
        elif result.reachable and breaker.record_success():
            self.status.set_backoff(result.host, None, 0)
            self._save_backoff(result.host, None, now)
            self.events.emit("closed", "reachable again", host=name)

    def _update_intervals(self, entry: _InFlight, result: HostResult, now: float) -> None:
        name = entry.host_plan.host.name
        by_id = {check.check_id: check for check in result.checks}
        for planned in entry.host_plan.checks:
            times = self.schedule.checks.get(schedule_key(name, planned))
            if times is None:
                continue
            interval = times.interval
            check = by_id.get(planned.identity.check_id)
            if check is not None:
                urgent = is_urgent(check, planned.identity.thresholds, list(times.recent))
                interval = next_interval(planned.interval, times.interval, urgent)
                if check.value is not None:
                    times.recent.append(check.value)
                self.status.set_interval(result.host, check.play, check.name, interval)
            self.schedule.finished(name, planned, entry.scheduled, interval, now)

    def _record(self, results: list[HostResult]) -> None:
        now = self.clock()
        run = RunResult(playbook=self.config.plan.playbook, started_at=now, finished_at=now)
        run.hosts = results
        usable = self._state.usable(now)
        held = None
        if results or not self._held:  # the handlers decide on the alert state: none without
            held = _Held(run, self.recorder.heal(run) if usable else [])
            self._held.append(held)
        if usable:
            self._record_held(now)
        if any(waiting is held for waiting in self._held):  # shown now, recorded once it answers
            for host in results:
                self.status.record_host(host)

    def _record_held(self, now: float) -> None:
        """The rounds held, oldest first: each committed, then alerted (the two steps are
        retried apart, so that a round is committed once however often the state failed)."""
        while self._held:
            held = self._held[0]
            try:
                if not held.committed:
                    self.recorder.commit_round(held.run)
                    held.committed = True
                recorded = self.recorder.finish(held.run, held.remediation)
            except LeaseLost as exc:  # another replica leads now: these rounds are not ours
                self.events.emit("lease-lost", f"round not recorded: {exc}")
                self._held.clear()
                if self.leadership is not None:
                    self.leadership.lost()
                return
            except STATE_ERRORS as exc:
                self._state.failed(exc, now)
                return
            self._held.pop(0)
            self._recorded(recorded)
        self._state.answered(now)

    def _recorded(self, recorded: Recorded) -> None:
        results = recorded.run.hosts
        now = recorded.run.finished_at
        self._first_rounds_done(results)
        if self.pusher is not None and results:
            self.pusher.queued(now)
        for line in recorded.remediation:
            self.events.emit("remediation", line)
        outcome, report = recorded.outcome, recorded.report
        if outcome is not None and (outcome.queued or outcome.resolved):
            self.events.emit(
                "alerts",
                f"{len(outcome.firing)} firing, {len(outcome.resolved)} resolved; "
                f"{outcome.queued} message(s) queued",
            )
        if outcome is not None and report is None:  # the DeliveryWorker sends, and says so
            for failure in outcome.unrenderable:
                self.events.emit("delivery-failed", f"cannot be rendered, not sent: {failure}")
        if report is not None:
            for failure in report.failed:
                self.events.emit("delivery-failed", f"refused, not retried: {failure}")
            if report.deferred:
                detail = f" (last error: {report.errors[-1]})" if report.errors else ""
                self.events.emit(
                    "delivery-deferred", f"{report.deferred} kept in the outbox{detail}"
                )

    # -- backoff state ---------------------------------------------------------------------

    def _restore_backoffs(self) -> None:
        """Breakers left open by an earlier watch process go on where they were."""
        if self._backoffs is None:
            return
        stored = {backoff.host: backoff for backoff in self._backoffs.all()}
        for host_plan in self.config.plan.hosts:
            backoff = stored.get(self.config.masker.text(host_plan.host.name))
            if backoff is None:
                continue
            self.breakers[host_plan.host.name] = Breaker(
                backoff.failures, backoff.next_attempt_at, backoff.reason, backoff.message
            )
            wait_for = max(0.0, backoff.next_attempt_at - self.clock())
            self.status.set_backoff(backoff.host, wait_for, backoff.failures)

    def _save_backoff(self, masked_host: str, breaker: Breaker | None, now: float) -> None:
        """The host's open breaker kept for a restart (None: closed, forgotten). The breaker
        itself lives here: a state database failing delays only this copy."""
        if self._backoffs is None:
            return
        try:
            if breaker is None:
                self._backoffs.clear(masked_host)
                return
            self._backoffs.save(
                StoredBackoff(
                    masked_host,
                    breaker.failures,
                    breaker.next_attempt_at,
                    breaker.reason,
                    breaker.message,
                    now,
                )
            )
        except STATE_ERRORS as exc:
            self._state.failed(exc, now)

    def _forget(self, host: str) -> None:
        self.transports.forget(host)  # its kept connection and live target process close

    # -- reload ------------------------------------------------------------------------------

    def _reload(self, now: float) -> None:
        try:
            config = self._load()
        except CheckrunError as exc:
            self.status.set_reload(False, now)
            self.events.emit("reload-failed", f"{describe(exc)}; the old configuration runs on")
            return
        self._pending = config
        if self._in_flight:
            self.events.emit(
                "reload",
                f"new configuration read; applied once {len(self._in_flight)} "
                "host(s) in flight are done",
            )

    def _export_config(self) -> set[str]:
        """The status exports the current configuration's hosts and checks, no others;
        returns the hosts (masked, as results name them)."""
        mask = self.config.masker.text
        plan = self.config.plan
        hosts = {mask(host_plan.host.name) for host_plan in plan.hosts}
        checks = {
            (mask(host_plan.host.name), identity.play, identity.name)
            for host_plan in plan.hosts
            for identity in host_plan.identities()
        }
        self.status.keep_only(hosts, checks)
        return hosts

    def _swap(self, config: LoadedConfig, now: float) -> None:
        """At a round boundary (nothing in flight): the new configuration replaces the old.
        Hosts that are gone or whose connection settings changed are forgotten."""
        self._pending = None
        old_hosts = {hp.host.name: hp.host for hp in self.config.plan.hosts}
        new_hosts = {hp.host.name: hp.host for hp in config.plan.hosts}
        for name, host in old_hosts.items():
            if new_hosts.get(name) != host:
                self._forget(name)
                self.breakers.pop(name, None)
        self.config = config
        self.events.mask = config.masker.text
        self.recorder.replace_config(config)
        self._pool.shutdown(wait=False)
        self._pool = HostPool(self._options(config, self.recorder), self.transports)
        self.schedule.sync(config.plan.hosts, now)
        hosts = self._export_config()
        if self._awaiting_first_round is not None:  # a host the reload removed has none to wait for
            self._awaiting_first_round &= hosts
            self._first_rounds_done([])
        if self.recorder.worker is not None:
            receivers = config.receivers.receivers if config.receivers is not None else {}
            self.recorder.worker.update(receivers, config.masker.text)
        if self.pusher is not None:
            self.pusher.mask = config.masker.text
        self.status.set_reload(True, now)
        self.events.emit(
            "reload",
            "configuration applied",
            hosts=len(config.plan.hosts),
            checks=config.plan.total_checks,
        )

    # -- stopping ------------------------------------------------------------------------------

    def _shut_down(self) -> int:
        """Give the hosts in flight the grace period, record what finished, abandon the rest
        (unrecorded: their log lines are read again next time), close every connection."""
        deadline = time.monotonic() + self.settings.stop_grace
        while self._in_flight and time.monotonic() < deadline:
            left = deadline - time.monotonic()
            wait(list(self._in_flight), timeout=min(TICK, left), return_when=FIRST_COMPLETED)
            self._record(self._collect(self.clock()))
        abandoned = len(self._in_flight)
        if abandoned:
            self._pool.abort()
        self._pool.shutdown(wait=False)
        self.transports.close()
        if self.recorder.worker is not None and not self.recorder.worker.stop(
            self.settings.stop_grace
        ):
            self.events.emit("delivery-deferred", "a send still in flight was left at the grace")
        if self.pusher is not None and not self.pusher.stop(self.settings.stop_grace):
            self.events.emit("push-deferred", "a push still in flight was left at the grace")
        if self.leadership is not None:
            self.leadership.stop()  # a leader releases the lease: a standby takes over now
        self.status.set_ready(False)
        # Rounds still held for a failing state database are dropped like the abandoned
        # ones: their offsets were not saved, so the next run reads their lines again.
        self.events.emit("stop", "stopped", abandoned=abandoned, unrecorded=len(self._held) or None)
        return 0


def describe(exc: CheckrunError) -> str:
    """An error on one line per problem, file:line:column first, as the log shows it."""
    if isinstance(exc, ConfigError):
        return "; ".join(str(error).replace("\n", " ") for error in flatten_problems([exc]))
    return str(exc)
