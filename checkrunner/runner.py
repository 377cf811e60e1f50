"""Thread-pool fan-out: one batch per host, deadlines, retries, --wait, progress events, Ctrl-C."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

from checkrunner import settings
from checkrunner.errors import Cancelled, ProtocolError, RemoteCrash, Unreachable
from checkrunner.evaluate import evaluate_check, skipped_result, unknown_result
from checkrunner.evaluate.evaluate import BaselineLookup
from checkrunner.evaluate.score import scores_for_round
from checkrunner.plan import HostPlan, Plan, PlannedCheck
from checkrunner.results import CheckResult, HostResult, RunResult, Status, UnreachableReason
from checkrunner.transport import Batch, BatchOptions, Transports, read_answer


@dataclass
class RunOptions:
    forks: int = settings.FORKS.default
    host_timeout: float | None = settings.HOST_TIMEOUT.default  # None: from the checks' timeouts
    wait: float = settings.WAIT.default  # keep re-running what fails until it passes or this ends
    wait_interval: float = settings.WAIT_INTERVAL.default
    fail_on: str = settings.FAIL_ON.default
    batch_options: BatchOptions | None = None
    become_password: str | None = None  # for hosts that set no ansible_become_password
    # Called with each raw result before it is evaluated (log state: rates, anomalies, cursors).
    observe: Callable[[PlannedCheck, dict], dict] | None = None
    # What dynamic thresholds compare with: the history's statistics, read before the round
    # (state.baselines.BaselineState.lookup); None: every baseline has no history.
    baselines: BaselineLookup | None = None
    # Applied to each host's result as it leaves the run (masking.Masker.leaving_run): listeners,
    # the RunResult and everything after them (alerting, state) see only what it returns.
    mask: Callable[[HostResult], HostResult] | None = None


class Listener(Protocol):
    def on_start(self, total_hosts: int, total_checks: int) -> None: ...

    def on_host_done(self, host: HostResult) -> None: ...


def raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit: every host in flight holds sockets and pipes."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


class HostPool:
    """Long-lived host workers: each submitted host plan runs on a worker of its own, and
    its future holds the host's result, masked (`options.mask`) before anyone sees it.

    A one-shot run submits every host once (run_plan); watch mode submits a host whenever
    its checks are due, so a slow or hung host holds one worker and delays nobody else.
    The caller owns `transports` and closes them.
    """

    def __init__(self, options: RunOptions, transports: Transports, workers: int | None = None):
        self.options = options
        self.transports = transports
        self._cancel = threading.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, workers or options.forks), thread_name_prefix="host"
        )

    def submit(self, host_plan: HostPlan) -> Future:
        return self._executor.submit(self._run, host_plan)

    def _run(self, host_plan: HostPlan) -> HostResult:
        result = _run_host(host_plan, self.options, self.transports, self._cancel)
        return self.options.mask(result) if self.options.mask is not None else result

    def abort(self) -> None:
        """Stop every host in flight (their retries and --wait pauses, their batches)."""
        self._cancel.set()
        self.transports.abort()

    def shutdown(self, wait: bool = True) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)


def run_plan(
    plan: Plan,
    options: RunOptions,
    listeners: Iterable[Listener] = (),
    transports: Transports | None = None,
) -> RunResult:
    """Run every host's checks, at most `options.forks` hosts at once, through `transports`.

    The caller owns `transports` and closes them (they may serve several runs); without
    them the run builds its own and closes them when it ends.
    """
    if transports is None:
        with Transports() as own:
            return run_plan(plan, options, listeners, own)
    listeners = list(listeners)
    raise_open_files_limit()
    run = RunResult(
        playbook=plan.playbook, started_at=time.time(), fail_on=options.fail_on, shard=plan.shard
    )
    for listener in listeners:
        listener.on_start(len(plan.hosts), plan.total_checks)
    done: dict[str, HostResult] = {}
    pool = HostPool(options, transports)
    futures: dict[Future, HostPlan] = {pool.submit(hp): hp for hp in plan.hosts}
    try:
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                host_result = future.result()
                done[futures[future].host.name] = host_result
                for listener in listeners:
                    listener.on_host_done(host_result)
    except KeyboardInterrupt:
        run.interrupted = True
        for future in futures:
            future.cancel()
        pool.abort()
    finally:
        pool.shutdown(wait=not run.interrupted)
    # Keep the inventory's order in reports, whatever order hosts finished in.
    run.hosts = [done[hp.host.name] for hp in plan.hosts if hp.host.name in done]
    run.finished_at = time.time()
    return run


def host_deadline(host_plan: HostPlan, options: RunOptions) -> float:
    if options.host_timeout:
        return options.host_timeout
    checks = host_plan.runnable
    longest = max((c.batch.timeout for c in checks), default=0.0)
    window = max((c.batch.window or 0.0 for c in checks), default=0.0)
    return longest + window + settings.HOST_DEADLINE_SLACK


def _run_host(
    host_plan: HostPlan, options: RunOptions, transports: Transports, cancel: threading.Event
) -> HostResult:
    host = host_plan.host
    started = time.monotonic()
    result = HostResult(
        host=host.name, address=host.address, connection=host.connection, started_at=time.time()
    )
    results: dict[str, CheckResult] = {
        c.identity.check_id: skipped_result(c.identity, c.skip_reason or "skipped")
        for c in host_plan.checks
        if c.batch is None
    }
    attempts: dict[str, int] = {}
    to_run = host_plan.runnable
    wait_until = started + options.wait if options.wait else None
    try:
        while to_run:
            try:
                raw = _execute(host_plan, to_run, options, transports)
            except RemoteCrash as exc:
                # Reached, but nothing could be checked: every check of the batch is UNKNOWN.
                result.reason = UnreachableReason.REMOTE_CRASH.value
                result.message = f"remote crash: {exc}"
                for check in to_run:
                    results[check.identity.check_id] = unknown_result(
                        check.identity, result.message
                    )
                break
            except Unreachable as exc:
                waiting = exc.reason != UnreachableReason.UNSUPPORTED_CONNECTION  # never will be
                if waiting and wait_until and time.monotonic() + options.wait_interval < wait_until:
                    _sleep(options.wait_interval, cancel)
                    continue
                result.reachable = False
                result.reason = exc.reason.value
                result.message = exc.message
                break
            for check in to_run:
                check_id = check.identity.check_id
                attempts[check_id] = attempts.get(check_id, 0) + 1
                entry = raw.get(check_id)
                if entry is None:
                    results[check_id] = unknown_result(check.identity, "no result from the target")
                else:
                    if options.observe is not None:
                        entry = options.observe(check, entry)
                    results[check_id] = evaluate_check(check.identity, entry, options.baselines)
                results[check_id].attempts = attempts[check_id]
            to_run, pause = _next_round(to_run, results, attempts, wait_until, options)
            if to_run:
                _sleep(pause, cancel)
    except Cancelled:
        result.message = "interrupted"
    result.checks = [
        results[c.identity.check_id] for c in host_plan.checks if c.identity.check_id in results
    ]
    if result.reachable:
        result.checks += scores_for_round(host_plan.scores, result.checks)
    result.duration = time.monotonic() - started
    return result


def _next_round(
    ran: list[PlannedCheck],
    results: dict[str, CheckResult],
    attempts: dict[str, int],
    wait_until: float | None,
    options: RunOptions,
) -> tuple[list[PlannedCheck], float]:
    """The checks to run again (retries left, or --wait time left) and how long to pause first."""
    now = time.monotonic()
    again = []
    pause = 0.0
    for check in ran:
        check_id = check.identity.check_id
        if results[check_id].status in (Status.OK, Status.SKIPPED):
            continue
        retry_left = attempts[check_id] <= check.retries
        delay = check.delay if retry_left else max(check.delay, options.wait_interval)
        waiting = wait_until is not None and now + delay < wait_until
        if retry_left or waiting:
            again.append(check)
            pause = max(pause, delay)
    return again, pause


def _execute(
    host_plan: HostPlan, checks: list[PlannedCheck], options: RunOptions, transports: Transports
) -> dict[str, dict]:
    """One round trip per privilege level (usually one): raw results by check id.

    Checks that ask for `become` run in their own batch under sudo; the others never do.
    """
    raw: dict[str, dict] = {}
    for become in (False, True):
        group = [c for c in checks if c.become == become]
        if group:
            raw.update(_execute_batch(host_plan.host, group, become, options, transports))
    return raw


def _execute_batch(
    host, checks: list[PlannedCheck], become: bool, options: RunOptions, transports: Transports
) -> dict[str, dict]:
    batch = Batch(checks=[c.batch for c in checks], options=options.batch_options or BatchOptions())
    try:
        exec_result = transports.run_batch(
            _with_become(host, become, options.become_password),
            batch,
            host_deadline(HostPlan(host=host, checks=checks), options),
        )
        return read_answer(exec_result, [c.batch.id for c in checks])
    except ProtocolError as exc:  # a live target's frames are checked while they are read
        raise RemoteCrash(str(exc)) from None


def _with_become(host, become: bool, password: str | None):
    """The host as the transport sees it: the play's become decision in its variables, and the
    run's become password (--become-password-env) unless the inventory sets one."""
    become_vars = {"ansible_become": become}
    if password and not host.become_password:
        become_vars["ansible_become_password"] = password
    return dataclasses.replace(host, vars={**host.vars, **become_vars})


def _sleep(seconds: float, cancel: threading.Event) -> None:
    if cancel.wait(seconds):
        raise Cancelled()
