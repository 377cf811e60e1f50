"""The commands behind the CLI: each takes parsed options and returns an exit code."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from checkrunner import catalog, settings
from checkrunner.config import (
    parse_extra_vars,
    playbook_schema,
    render_module_doc,
    render_module_list,
    render_receiver_doc,
    render_receiver_list,
)
from checkrunner.errors import ConfigError, did_you_mean
from checkrunner.inventory import load_inventories
from checkrunner.plan import Plan, PlanOptions, build_plan
from checkrunner.playbook import load_playbook
from checkrunner.results import EXIT_OK
from checkrunner.safe_text import one_line, printable

if TYPE_CHECKING:
    from checkrunner.masking import Masker
    from checkrunner.runner import RunOptions
    from checkrunner.serve.rounds import LoadedConfig, Recorded
    from checkrunner.shards import ShardSpec
    from checkrunner.transport.ssh_config import SSHOptions


@dataclass
class RunCommand:
    playbook: str
    inventories: list[str] = field(default_factory=list)
    extra_vars: list[str] = field(default_factory=list)
    limit: str | None = None
    shard: ShardSpec | None = None  # --shard K/N
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    become: bool = False
    become_password_env: str | None = None
    user: str | None = None
    private_key: str | None = None
    known_hosts: list[str] = field(default_factory=list)
    host_key_checking: str | None = None
    ssh_config: str | None = None
    connect_timeout: float | None = None  # None: settings.CONNECT_TIMEOUT unless ssh says
    forks: int = settings.FORKS.default
    host_timeout: float | None = settings.HOST_TIMEOUT.default
    wait: float = settings.WAIT.default
    wait_interval: float = settings.WAIT_INTERVAL.default
    reports: list[str] = field(default_factory=list)
    fail_on: str = settings.FAIL_ON.default
    verbose: int = 0
    use_psutil: bool = True
    target_nice: int = settings.TARGET_NICE.default
    target_memory_limit: int = settings.TARGET_MEMORY_LIMIT.default
    list_hosts: bool = False
    list_checks: bool = False
    syntax_check: bool = False
    state: str | None = settings.STATE.default  # None: settings.state_path()
    no_state: bool = False
    no_notify: bool = False
    remediate: str | None = None  # --remediate: "on" or "dry-run"; None: not given
    no_remediate: bool = False
    push: str | None = None  # a Pushgateway URL
    push_job: str = settings.PUSH_JOB.default


@dataclass
class WatchCommand(RunCommand):
    """`checkrun watch`: a run's options, plus the loop's."""

    interval: float = settings.INTERVAL.default
    listen: str = settings.LISTEN.default
    web_config: str | None = None
    log_format: str = settings.LOG_FORMAT.default
    backoff_max: float = settings.BACKOFF_MAX.default
    stop_grace: float = settings.STOP_GRACE.default
    ha: bool = False
    ha_ttl: float = settings.HA_TTL.default


def _warn(message: str) -> None:
    print(f"[WARNING] {printable(message, newlines=False)}", file=sys.stderr)


def make_ssh_options(cmd: RunCommand) -> SSHOptions:
    """The command line's ssh settings (SSHOptions); ConfigError for unusable ones."""
    from checkrunner.transport.ssh_config import SSHOptions

    try:
        return SSHOptions(
            user=cmd.user,
            private_key=cmd.private_key,
            known_hosts=tuple(cmd.known_hosts) or None,
            host_key_checking=cmd.host_key_checking,
            ssh_config=cmd.ssh_config,
            connect_timeout=cmd.connect_timeout,
        )
    except ValueError as exc:
        raise ConfigError(f"command line: {exc}", hint="see `checkrun --help`") from None


def load_plan(
    cmd: RunCommand, schema_check: bool = True, warn: Callable[[str], None] = _warn
) -> Plan:
    playbook = load_playbook(cmd.playbook, schema_check=schema_check)
    extra = parse_extra_vars(cmd.extra_vars, os.getcwd())
    inventory = load_inventories(cmd.inventories, os.path.dirname(os.path.abspath(cmd.playbook)))
    options = PlanOptions(
        extra_vars=extra,
        limit=cmd.limit,
        shard=cmd.shard,
        tags=cmd.tags,
        skip_tags=cmd.skip_tags,
        become=cmd.become,
        interval=getattr(cmd, "interval", settings.INTERVAL.default),
    )
    plan = build_plan(playbook, inventory, options)
    masker = _masker(plan)
    for warning in plan.warnings:
        warn(masker.text(warning))
    return plan


def _masker(plan: Plan, *more_secrets: str | None) -> Masker:
    """The run's Masker: what templates read from the environment, the inventory's
    passwords, and `more_secrets` (the become password, the receivers' secrets)."""
    from checkrunner.masking import Masker

    return Masker([*plan.secrets, *_inventory_secrets(plan), *more_secrets])


def run(cmd: RunCommand) -> int:
    if cmd.syntax_check:
        return validate(cmd)
    # Imported here so that validate, doc and schema start fast (rich and the runner are heavy).
    from checkrunner.masking import errors_masked
    from checkrunner.report import create_reporters

    reporters = create_reporters(cmd.reports, verbose=cmd.verbose)  # bad --report: exit 5 first
    if cmd.push is not None:
        _push_gateway(cmd)  # a bad --push URL: exit 5 before anything else is read
    ssh_options = make_ssh_options(cmd)
    config = load_config(cmd)
    with errors_masked(lambda: config.masker.secrets):
        return _run_masked(cmd, config, reporters, ssh_options)


def load_config(cmd: RunCommand, warn: Callable[[str], None] = _warn) -> LoadedConfig:
    """The playbook, inventory and alerting read, planned and masked: from here on nothing
    downstream sees a secret: the checks' names (what results, alerts and state rows are
    keyed by) now, their results as they leave the run, and errors."""
    from checkrunner.serve.rounds import LoadedConfig

    push_password = _push_gateway(cmd).password if cmd.push is not None else None
    plan = load_plan(cmd, schema_check=False, warn=warn)
    become_password = _become_password(cmd)
    receivers = _receivers(plan)
    masker = _masker(
        plan, become_password, push_password, *(receivers.secrets if receivers else ())
    )
    for warning in masker.mask_identities(plan):
        warn(warning)
    return LoadedConfig(plan, receivers, masker, become_password)


def run_options(cmd: RunCommand, config: LoadedConfig, observe=None, baselines=None) -> RunOptions:
    """How the runner runs the checks of `config` (a one-shot run's, or a watch round's)."""
    from checkrunner.runner import RunOptions
    from checkrunner.transport import BatchOptions

    return RunOptions(
        forks=cmd.forks,
        host_timeout=cmd.host_timeout,
        wait=cmd.wait,
        wait_interval=cmd.wait_interval,
        fail_on=cmd.fail_on,
        become_password=config.become_password,
        observe=observe,
        baselines=baselines,
        mask=config.masker.leaving_run,
        batch_options=BatchOptions(
            psutil=cmd.use_psutil, nice=cmd.target_nice, memory_limit=cmd.target_memory_limit
        ),
    )


def _run_masked(
    cmd: RunCommand, config: LoadedConfig, reporters: list, ssh_options: SSHOptions
) -> int:
    """One round with every check due, then the reports: the round is recorded (log
    offsets, alerting) by the same RoundRecorder as each round of `checkrun watch`."""
    from checkrunner.runner import run_plan
    from checkrunner.serve.rounds import RoundRecorder
    from checkrunner.transport import Transports

    plan = config.plan
    if cmd.list_hosts:
        return _print_hosts(plan)
    if cmd.list_checks:
        return _print_checks(plan)
    # The run's connections, opened as hosts need them. Each transport the plan needs is
    # built now (no connection yet), so that a bad ssh config stops the run (exit 5).
    transports = Transports(ssh_options)
    transports.prepare(hp.host for hp in plan.hosts)
    db = _state_db(cmd, plan)
    recorder = RoundRecorder(db, config, deliver=not cmd.no_notify)
    recorder.prepare(plan.hosts)
    options = run_options(
        cmd, config, observe=recorder.log_state.observe, baselines=recorder.lookup_baseline
    )
    recorder.remediate = _remediator(cmd, db, lambda cfg: options, ssh_options)
    try:
        with transports:  # every connection closed as soon as the run is over
            result = run_plan(plan, options, reporters, transports)
            # Handlers run over the run's own connections, before the reports: they show
            # what was done. A crash in between re-reads the logs; the audit (intent first)
            # and the guard rails keep a handler from running twice.
            healed = recorder.heal(result, transports)
        _hand_history(reporters, db)
        for reporter in reporters:
            reporter.finish(result)
    finally:
        for reporter in reporters:
            reporter.close()
    # Only now, with the results reported: a crash before this re-reads, never skips.
    recorded = recorder.record(result, healed)
    if recorded.outcome is not None and config.receivers is not None:
        print_alerting(recorded, deliver=not cmd.no_notify)
    for line in recorded.remediation:
        print(printable(line, newlines=False), file=sys.stderr)
    if cmd.push is not None and db is not None and not result.interrupted:
        _push(db, cmd, result, config.masker)
    return result.exit_code


def remediation_mode(cmd: RunCommand):
    """--no-remediate: off; --remediate=dry-run; --wait (deploy gating) remediates only when
    --remediate is given; otherwise on."""
    from checkrunner.remediation.guard import Mode

    if cmd.no_remediate:
        return Mode.OFF
    if cmd.remediate == "dry-run":
        return Mode.DRY_RUN
    if cmd.wait > 0 and cmd.remediate is None:
        return Mode.OFF
    return Mode.ON


def _remediator(
    cmd: RunCommand, db, options: Callable[[LoadedConfig], RunOptions], ssh_options: SSHOptions
):
    """The RoundRecorder's remediate hook: the handlers a round's firing alerts notify,
    behind the guard rails, run with `options(config)` over the round's open connections or
    new ones made with the run's SSH options; what they did is attached to the round's
    results; one masked line per decision."""
    mode = remediation_mode(cmd)

    def remediate(config: LoadedConfig, preview, run, transports, verifier) -> list[str]:
        import contextlib

        from checkrunner.remediation.rounds import attach, describe, remediate_round
        from checkrunner.transport import Transports

        done = remediate_round(
            config.plan,
            preview,
            db,
            config.masker.text,
            options(config),
            mode,
            transports=(
                (lambda: contextlib.nullcontext(transports))
                if transports is not None
                else (lambda: Transports(ssh_options))
            ),
            verifier=verifier,
        )
        attach(run, done, config.masker.text)
        return [config.masker.text(line) for line in describe(done)]

    return remediate


def _hand_history(reporters: list, db) -> None:
    """The reporters that chart the past read it from the run's state database (the run's
    own results are not in it yet: they are recorded after the reports)."""
    from checkrunner.state.history import HistoryStore

    for reporter in reporters:
        if reporter.uses_history:
            reporter.history = HistoryStore(db.connection) if db is not None else None


def watch(cmd: WatchCommand) -> int:
    """`checkrun watch`: run the playbook's checks as they fall due, until SIGTERM/SIGINT."""
    from checkrunner.masking import errors_masked
    from checkrunner.serve.events import EventLog
    from checkrunner.serve.http import StatusServer
    from checkrunner.serve.rounds import RoundRecorder
    from checkrunner.serve.status import WatchStatus
    from checkrunner.serve.watch import Watch, WatchSettings

    ssh_options = make_ssh_options(cmd)
    events = EventLog(cmd.log_format)  # the config's warnings are events too (masked already)
    config = load_config(cmd, warn=lambda warning: events.emit("warning", warning))
    events.mask = config.masker.text
    status = WatchStatus(cmd.playbook)
    with errors_masked(lambda: config.masker.secrets):
        transports = _kept_transports(ssh_options, status, events)
        transports.prepare(hp.host for hp in config.plan.hosts)
        db = _state_db(cmd, config.plan)  # --no-state with alerting or --push: exit 5
        server = StatusServer(cmd.listen, status, cmd.web_config, state=db)
        worker = _delivery_worker(cmd, db, config, events)
        pusher = _push_worker(cmd, db, config, status, events)
        leadership = _leadership(cmd, db, events)
        recorder = RoundRecorder(
            db,
            config,
            deliver=not cmd.no_notify,
            group_waits=True,
            status=status,
            worker=worker,
            remediate=_remediator(cmd, db, lambda cfg: run_options(cmd, cfg), ssh_options),
            fence=leadership.fence if leadership is not None else None,
        )
        loop = Watch(
            config,
            load=lambda: _reload_config(cmd, events),
            options=lambda cfg, rec: run_options(
                cmd, cfg, observe=_observer(rec), baselines=rec.lookup_baseline
            ),
            transports=transports,
            recorder=recorder,
            status=status,
            events=events,
            settings=WatchSettings(backoff_max=cmd.backoff_max, stop_grace=cmd.stop_grace),
            pusher=pusher,
            leadership=leadership,
        )
        server.start()
        address = cmd.listen.rpartition(":")[0]
        events.emit("listening", f"http://{address}:{server.port}/metrics")
        try:
            code = loop.run()
        finally:
            server.close()
            if db is not None:
                db.close()
            events.close()
    return code


def _delivery_worker(cmd: WatchCommand, db, config: LoadedConfig, events):
    """Watch mode's DeliveryWorker (started: it also sends what earlier runs left queued), or
    None without alerting, without a state database or with --no-notify (a dry run sends
    nothing). A reload that adds alerting to a playbook without it delivers in the round."""
    if db is None or cmd.no_notify or config.receivers is None:
        return None
    from checkrunner.alerting.worker import DeliveryWorker

    worker = DeliveryWorker(
        db,
        config.receivers.receivers,
        config.masker.text,
        on_event=lambda kind, detail: events.emit(kind.replace(" ", "-"), detail),
    )
    worker.start()
    return worker


def _leadership(cmd: WatchCommand, db, events):
    """--ha's Leadership (serve/ha.py), named after the playbook and its shard (the replicas
    of one shard share a lease; each shard has its own); None without --ha."""
    if not cmd.ha:
        return None
    if db is None:
        raise ConfigError(
            "--ha: the replicas agree on who leads through the state database",
            hint="drop --no-state; give every replica the same --state (postgresql://...)",
        )
    from checkrunner.serve.ha import Leadership

    def changed(leading: bool, detail: str) -> None:
        events.emit("leading" if leading else "standby", detail)

    name = f"watch {Path(cmd.playbook).name}" + (f" shard {cmd.shard}" if cmd.shard else "")
    return Leadership(db, name, cmd.ha_ttl, on_change=changed)


def _push_worker(cmd: WatchCommand, db, config: LoadedConfig, status, events):
    """Watch mode's --push: every host's latest results to the Pushgateway after each round
    (serve/pusher.py), started; None without --push."""
    if cmd.push is None:
        return None
    from prometheus_client import generate_latest

    from checkrunner.report.push import grouping_key
    from checkrunner.serve.pusher import PushWorker
    from checkrunner.serve.status import status_registry

    registry = status_registry(status)
    pusher = PushWorker(
        db,
        _push_gateway(cmd),
        grouping_key(cmd.playbook, cmd.push_job),
        lambda: generate_latest(registry),
        config.masker.text,
        on_event=events.emit,
    )
    pusher.start()
    return pusher


def _reload_config(cmd: WatchCommand, events) -> LoadedConfig:
    """SIGHUP: the playbook, inventory and alerting read again (ConfigError when broken)."""
    from checkrunner.masking import errors_masked

    config = load_config(cmd, warn=lambda warning: events.emit("warning", warning))
    with errors_masked(lambda: config.masker.secrets):
        make_ssh_options(cmd)
    return config


def _observer(recorder):
    """The runner's observe hook, through the recorder's current log state (replaced on
    reload)."""
    return lambda check, raw: recorder.log_state.observe(check, raw)


def _kept_transports(ssh_options: SSHOptions, status, events):
    """Transports that keep one connection per host across rounds, with their connection
    events logged and reconnects counted."""
    from checkrunner.transport import Transports

    def on_event(event) -> None:
        events.emit(event.kind, event.detail, host=event.host)
        if event.kind == "reconnected":
            status.count_reconnect(events.mask(event.host))

    return Transports(ssh_options, keep_alive=True, on_event=on_event)


def _push_gateway(cmd: RunCommand):
    """--push's Gateway (ConfigError for a URL that is none: exit 5 before the run)."""
    from checkrunner.report.push import parse_gateway

    return parse_gateway(cmd.push or "")


def _push(db, cmd: RunCommand, result, masker: Masker) -> None:
    """The run's metrics to the Pushgateway (after what the outbox still holds for it);
    a gateway that is down is a warning, the push kept for the next run."""
    from checkrunner.report.push import push_run

    report = push_run(db, _push_gateway(cmd), cmd.push_job, result)
    for refusal in report.refused:
        _warn(f"--push: the Pushgateway refused a push, not retried: {masker.text(refusal)}")
    if report.pending:
        _warn(
            f"--push: {report.pending} push(es) kept in the state database for the next run "
            f"({masker.text(report.error or '')})"
        )
    if report.elsewhere:
        _warn(f"--push: {report.elsewhere} push(es) wait for another Pushgateway URL")


def _state_db(cmd: RunCommand, plan: Plan):
    """The state database (history, log offsets, alerting), None with --no-state."""
    if plan.alerting is not None and cmd.no_state and not cmd.no_notify:
        raise ConfigError(
            "--no-state: alerting keeps its state (for:, repeat_interval, the outbox) in the "
            "state database",
            hint="drop --no-state, or add --no-notify for a run without alerting",
        )
    if cmd.push is not None and cmd.no_state:
        raise ConfigError(
            "--no-state: --push keeps the pushes a Pushgateway did not take in the state "
            "database, for the next run",
            hint="drop --no-state, or write the metrics to a file: -r prometheus:PATH",
        )
    if cmd.no_state:
        return None
    return _open_state(cmd)


def _open_state(cmd: RunCommand):
    """--state PATH, else $CHECKRUN_STATE, else ~/.local/state/checkrunner/state.db."""
    from checkrunner.state.db import default_state_path, open_state

    return open_state(cmd.state or default_state_path())


def _receivers(plan: Plan):
    if plan.alerting is None:
        return None
    from checkrunner.alerting.runtime import render_receivers

    return render_receivers(plan.alerting)


def print_alerting(recorded: Recorded, deliver: bool) -> None:
    """What alerting did in a one-shot run; problems are warnings, never a lost result."""
    from checkrunner.alerting.engine import summarize

    for line in summarize(recorded.outcome):
        line = printable(line, newlines=False)
        print(line if deliver else f"{line} (--no-notify: nothing sent or kept)", file=sys.stderr)
    report = recorded.report
    if report is None:
        return
    for failure in report.failed:
        _warn(f"notification refused, not retried: {failure}")
    if report.deferred:
        detail = f" (last error: {report.errors[-1]})" if report.errors else ""
        _warn(
            f"{report.deferred} notification(s) kept in the outbox for the next run "
            f"or `checkrun notify --flush`{detail}"
        )


def notify(cmd: RunCommand, flush: bool, test_receiver: str | None) -> int:
    """`checkrun notify PLAYBOOK --flush | --test RECEIVER`."""
    from checkrunner.alerting.runtime import flush as flush_outbox
    from checkrunner.alerting.runtime import render_receivers, send_test
    from checkrunner.masking import Masker

    playbook = load_playbook(cmd.playbook, schema_check=False)
    if playbook.alerting is None:
        raise ConfigError(
            f"{cmd.playbook} has no alerting (receivers and route)",
            hint="add receivers: and route: to the playbook, or alerting: FILE",
        )
    receivers = render_receivers(playbook.alerting)
    masker = Masker(list(receivers.secrets))
    db = _open_state(cmd)
    if test_receiver:
        report = send_test(db, receivers, test_receiver, masker.text)
    else:
        report = flush_outbox(db, receivers, masker.text)
    print(
        f"delivered {report.delivered}, refused {len(report.failed)}, "
        f"left in the outbox {report.deferred}"
    )
    for line in [*report.failed, *report.errors]:
        print(f"  {printable(line, newlines=False)}")
    return EXIT_OK if not report.failed and not report.deferred else 1


def alerts(cmd: RunCommand) -> int:
    """`checkrun alerts`: what is firing, failing towards `for`, undelivered, and which hosts
    watch mode is backing off from."""
    from checkrunner.alerting.runtime import alert_listing

    db = _open_state(cmd)
    lines = [*alert_listing(db), *_backoff_listing(db)]
    print("\n".join(printable(line, newlines=False) for line in lines))
    return EXIT_OK


def _backoff_listing(db) -> list[str]:
    """Hosts whose circuit breaker a watch process holds open, and until when."""
    import time

    from checkrunner.state.breakers import BackoffStore

    backoffs = BackoffStore(db).all()
    lines = [f"backing off ({len(backoffs)}):"]
    for backoff in backoffs:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(backoff.next_attempt_at))
        lines.append(
            f"  {backoff.host}: {backoff.failures} failed attempt(s) in a row, next attempt at "
            f"{at}: {backoff.reason}: {backoff.message}"
        )
    return lines


def _inventory_secrets(plan: Plan) -> list[str]:
    """Passwords set in the inventory: masked like the environment's secrets."""
    return [
        secret
        for hp in plan.hosts
        for secret in (hp.host.password, hp.host.become_password)
        if secret
    ]


def _become_password(cmd: RunCommand) -> str | None:
    if not cmd.become_password_env:
        return None
    value = os.environ.get(cmd.become_password_env)
    if value is None:
        raise ConfigError(
            f"--become-password-env: environment variable {cmd.become_password_env} is not set",
            hint=f"export {cmd.become_password_env}=... (from a secret store) before running",
        )
    return value


def validate(cmd: RunCommand) -> int:
    """Check the playbook (and inventory, when given) without touching any host."""
    plan = load_plan(cmd)
    checks = plan.total_checks
    hosts = len(plan.hosts)
    print(
        f"{one_line(cmd.playbook)}: OK ({checks} check{'s' * (checks != 1)} "
        f"on {hosts} host{'s' * (hosts != 1)})"
    )
    return EXIT_OK


def _print_hosts(plan: Plan) -> int:
    print(f"hosts ({len(plan.hosts)}):")
    for hp in plan.hosts:
        print(f"  {one_line(hp.host.name)}")
    return EXIT_OK


def _print_checks(plan: Plan) -> int:
    seen: set[str] = set()
    for hp in plan.hosts:
        for check in hp.checks:
            key = check.identity.check_id
            if key in seen:
                continue
            seen.add(key)
            identity = check.identity
            tags = f"  tags: {', '.join(identity.tags)}" if identity.tags else ""
            print(f"  {one_line(f'[{identity.play}] {identity.name} ({identity.module}){tags}')}")
    return EXIT_OK


def schema() -> int:
    print(json.dumps(playbook_schema(), indent=2))
    return EXIT_OK


def doc(name: str | None) -> int:
    """`checkrun doc [NAME]`: the lists of modules and receivers, or one's documentation."""
    from checkrunner.alerting.receivers import RECEIVERS

    if name is None:
        print(render_module_list())
        print(render_receiver_list(RECEIVERS))
        return EXIT_OK
    if name in RECEIVERS:
        print(render_receiver_doc(RECEIVERS[name]))
        return EXIT_OK
    try:
        info = catalog.get(name)
    except KeyError:
        known = [*catalog.module_names(), *RECEIVERS]
        raise ConfigError(
            f"unknown module or receiver '{name}'",
            hint=did_you_mean(name, known)
            or f"modules: {', '.join(catalog.module_names())}; receivers: {', '.join(RECEIVERS)}",
        ) from None
    print(render_module_doc(info))
    return EXIT_OK
