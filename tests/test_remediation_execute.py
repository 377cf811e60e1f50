"""Issue 14, acting and verifying: a real HTTP service on this machine under a supervisor
script the test writes; the test kills the service, the check fails, the handler restarts it
through the local transport, and the check run again sees it healthy. Webhook actions call a
real HTTP server on loopback. Everything is audited.

The tests of execute() alone let the failing checks of a real run stand for their firing
alerts; those through `checkrun` and `checkrun watch` go through the alerting outcome."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path

from helpers import run_checkrun
from recorder import Recorder
from supervised import kill_service

from checkrunner.app import RunCommand, load_plan
from checkrunner.remediation.execute import Executor, service_script
from checkrunner.remediation.guard import RUN, Notified, decide
from checkrunner.results import REMEDIATED, REMEDIATION_FAILED, Status
from checkrunner.runner import RunOptions, run_plan
from checkrunner.state.actions import ActionLog
from checkrunner.state.db import open_state


def playbook(tmp_path: Path, port: int, handler: str) -> str:
    path = tmp_path / "heal.yml"
    path.write_text(
        "- name: app\n  hosts: localhost\n  connection: local\n  handlers:\n"
        + textwrap.indent(handler, "    ")
        + "\n  checks:\n    - name: app health\n"
        + f"      http: {{url: 'http://127.0.0.1:{port}/health', status: [200], body: ok, "
        + "timeout: 2s}\n      notify: [restart app]\n"
    )
    return str(path)


def failing_alerts(plan) -> list[Notified]:
    run = run_plan(plan, RunOptions())
    checks = [c for h in run.hosts for c in h.checks]
    assert [c.status for c in checks] == [Status.CRITICAL], [c.message for c in checks]
    return [Notified(c.host, c.play, c.name, ["restart app"]) for c in checks]


def remediate(path: str, log: ActionLog):
    plan = load_plan(RunCommand(playbook=path))
    handlers = {"app": {h.name: h for h in _handlers(path)}}
    (decision,) = decide(failing_alerts(plan), handlers, {"app": 1}, log, now=0.0)
    assert decision.verdict == RUN
    return Executor(plan, RunOptions(), None, log, sleep=lambda s: None).remediate(decision)


def _handlers(path: str):
    from checkrunner.playbook import load_playbook

    return load_playbook(path).plays[0].handlers


def test_the_handler_restarts_the_killed_service_and_verify_sees_it_healthy(tmp_path, service):
    folder, port, script = service
    path = playbook(
        tmp_path,
        port,
        f"- name: restart app\n  command: [sh, {script}, restart, {folder}, '{port}']\n  settle: 0s",
    )
    kill_service(folder)
    log = ActionLog(open_state(str(tmp_path / "state.db")))
    done = remediate(path, log)
    assert done.outcome.exit_status == 0 and f"started on {port}" in done.outcome.output
    assert done.verify == REMEDIATED
    (record,) = log.listing(0.0)
    assert (record.state, record.exit_status, record.verify) == ("done", 0, REMEDIATED)
    assert record.triggers == ["app health"] and "restart" in record.target


def test_a_failing_handler_is_remediation_failed_and_verify_does_not_pass(tmp_path, service):
    folder, port, _ = service
    path = playbook(
        tmp_path,
        port,
        "- name: restart app\n  command: {cmd: 'echo no such unit >&2; exit 4', shell: true}",
    )
    kill_service(folder)
    log = ActionLog(open_state(str(tmp_path / "state.db")))
    done = remediate(path, log)
    assert done.outcome.exit_status == 4 and "no such unit" in done.outcome.output
    assert done.verify == REMEDIATION_FAILED
    assert [r.verify for r in log.listing(0.0)] == [REMEDIATION_FAILED]


def test_a_webhook_handler_calls_the_url_with_its_method_headers_and_body(tmp_path, service):
    folder, port, script = service
    with Recorder() as hook:
        hook.respond("/scale", status=202, body={"accepted": True})
        path = playbook(
            tmp_path,
            port,
            f"- name: restart app\n  settle: 0s\n  webhook: {{url: '{hook.url('/scale')}', "
            "method: PUT, headers: {X-Runbook: restart}, body: {replicas: 3}}",
        )
        kill_service(folder)
        log = ActionLog(open_state(str(tmp_path / "state.db")))
        done = remediate(path, log)
        (request,) = hook.requests("/scale")
    assert request.method == "PUT" and request.json() == {"replicas": 3}
    assert request.header("X-Runbook") == "restart"
    assert done.outcome.exit_status == 202
    assert done.verify == REMEDIATION_FAILED  # the webhook did not bring the service back
    (record,) = log.listing(0.0)
    assert record.target.startswith("PUT http://127.0.0.1:")


def test_a_handler_that_raises_is_its_own_failure_and_the_others_go_on(tmp_path, service):
    """The audit's database goes away under a handler (closed here; a full disk or a lock
    in real life): that handler's result is "remediation failed" with the error, and the
    round's other decisions are still made."""
    folder, port, script = service
    path = playbook(
        tmp_path,
        port,
        f"- name: restart app\n  command: [sh, {script}, restart, {folder}, '{port}']",
    )
    kill_service(folder)
    db = open_state(str(tmp_path / "state.db"))
    log = ActionLog(db)
    plan = load_plan(RunCommand(playbook=path))
    handlers = {"app": {h.name: h for h in _handlers(path)}}
    (decision,) = decide(failing_alerts(plan), handlers, {"app": 1}, log, now=0.0)
    db.close()
    executor = Executor(plan, RunOptions(), None, log, sleep=lambda s: None)
    done = executor.remediate_all([decision, decision])
    assert [d.verify for d in done] == [REMEDIATION_FAILED, REMEDIATION_FAILED]
    assert "closed database" in done[0].outcome.output, done[0].outcome
    assert done[0].outcome.exit_status == -1


def test_the_service_action_restarts_with_systemctl_else_service(tmp_path):
    """The init system found on the target: systemctl when it is on PATH, else service."""
    script = service_script("my app.service")
    with_service, with_both = tmp_path / "sysv", tmp_path / "systemd"
    for folder, tools in ((with_service, ["service"]), (with_both, ["service", "systemctl"])):
        folder.mkdir()
        for tool in tools:
            (folder / tool).write_text(f'#!/bin/sh\necho "{tool} $*"\n')
            (folder / tool).chmod(0o755)

    def restart(path: Path) -> str:
        done = subprocess.run(
            ["/bin/sh", "-c", script], env={"PATH": str(path)}, capture_output=True, text=True
        )
        return done.stdout

    assert restart(with_service) == "service my app.service restart\n"
    assert restart(with_both) == "systemctl restart my app.service\n"


# -- one-shot runs: `checkrun PLAYBOOK` remediates from the recorded alert outcome ------------


def alerting_playbook(tmp_path: Path, port: int, handler: str, hook_url: str) -> Path:
    plays = Path(playbook(tmp_path, port, handler)).read_text()
    path = tmp_path / "heal_alerting.yml"
    path.write_text(
        "receivers:\n  - name: ops\n    webhook_configs:\n"
        f"      - url: '{hook_url}'\n"
        "route: {receiver: ops}\nplays:\n" + textwrap.indent(plays, "  ")
    )
    return path


def test_a_one_shot_run_restarts_the_service_its_firing_alert_notifies(tmp_path, service):
    folder, port, script = service
    restart = (
        f"- name: restart app\n  command: [sh, {script}, restart, {folder}, '{port}']\n  settle: 0s"
    )
    state = tmp_path / "state.db"
    with Recorder() as hook:
        path = alerting_playbook(tmp_path, port, restart, hook.url("/alerts"))
        healthy = run_checkrun(path, "--state", state)
        assert healthy.returncode == 0 and "remediation:" not in healthy.stderr
        kill_service(folder)
        dry = run_checkrun(path, "--state", state, "--remediate=dry-run")
        assert dry.returncode == 2
        assert "restart app" in dry.stderr and "would run" in dry.stderr, dry.stderr
        off = run_checkrun(path, "--state", state, "--no-remediate")
        assert "suppressed by remediation is off" in off.stderr, off.stderr
        gated = run_checkrun(path, "--state", state, "--wait", "1s", "--wait-interval", "500ms")
        assert "suppressed by remediation is off" in gated.stderr, gated.stderr
        listed = run_checkrun("actions", "--state", state, "--json")
        assert json.loads(listed.stdout)["actions"] == []  # none of these ran anything
        healed = run_checkrun(path, "--state", state)
        assert healed.returncode == 2  # the run's own result; the handler fixed it after
        assert "app health -> restart app" in healed.stderr
        assert "exit 0, remediated" in healed.stderr, healed.stderr
        assert run_checkrun(path, "--state", state).returncode == 0  # healthy again
        kill_service(folder)
        cooled = run_checkrun(path, "--state", state)
        assert "suppressed by cooldown: ran" in cooled.stderr, cooled.stderr
    (record,) = json.loads(run_checkrun("actions", "--state", state, "--json").stdout)["actions"]
    assert (record["handler"], record["verify"], record["exit_status"]) == (
        "restart app",
        REMEDIATED,
        0,
    )


def test_a_run_killed_between_the_action_and_its_record_never_repeats_it_unrecorded(
    tmp_path, service
):
    """CHECKRUN_FAILPOINT=after-action SIGKILLs the run after the handler ran and before its
    completion was committed: the service was restarted once, the audit holds the intent,
    and the next run does not run the handler again (the unfinished intent counts)."""
    folder, port, script = service
    log_file = tmp_path / "restarts.log"
    restart = (
        "- name: restart app\n  command: {cmd: 'echo restart >> "
        f"{log_file}; sh {script} restart {folder} {port}', shell: true}}\n  settle: 0s"
    )
    state = tmp_path / "state.db"
    with Recorder() as hook:
        path = alerting_playbook(tmp_path, port, restart, hook.url("/alerts"))
        kill_service(folder)
        killed = run_checkrun(path, "--state", state, env={"CHECKRUN_FAILPOINT": "after-action"})
        assert killed.returncode == -9, killed.stderr
        assert log_file.read_text() == "restart\n"
        kill_service(folder)
        again = run_checkrun(path, "--state", state)
        assert "suppressed by cooldown" in again.stderr, again.stderr
    assert log_file.read_text() == "restart\n"
    (record,) = json.loads(run_checkrun("actions", "--state", state, "--json").stdout)["actions"]
    assert (record["state"], record["exit_status"], record["verify"]) == ("unfinished", None, None)


def test_handler_templates_are_rendered_per_host_and_secrets_masked(tmp_path, service):
    folder, port, script = service
    restart = (
        "- name: restart app\n  command: [sh, "
        f"{script}, restart, '{{{{ svc_dir }}}}', '{{{{ svc_port }}}}', '{{{{ env.SVC_TOKEN }}}}']"
    )
    token = "tok-1234567890"
    with Recorder() as hook:
        path = alerting_playbook(tmp_path, port, restart, hook.url("/alerts"))
        kill_service(folder)
        args = ("-e", f"svc_dir={folder}", "-e", f"svc_port={port}", "--state", tmp_path / "s.db")
        dry = run_checkrun(path, *args, "--remediate=dry-run", env={"SVC_TOKEN": token})
        assert f"restart {folder} {port} ***): would run" in dry.stderr, dry.stderr
        assert token not in dry.stderr
        healed = run_checkrun(path, *args, env={"SVC_TOKEN": token})
        assert "exit 0, remediated" in healed.stderr, healed.stderr
    (record,) = json.loads(run_checkrun("actions", "--state", tmp_path / "s.db", "--json").stdout)[
        "actions"
    ]
    assert record["target"].endswith(f"restart {folder} {port} ***"), record["target"]


def test_watch_mode_remediates_after_for_runs_and_says_so(tmp_path, service):
    """`checkrun watch` with interval 1s and for: 2: the handler runs once the alert fires
    (not on the first failing sample), verify sees the service healthy, an event says so."""
    from watching import WatchProcess

    folder, port, script = service
    restart = (
        f"- name: restart app\n  command: [sh, {script}, restart, {folder}, '{port}']\n  settle: 0s"
    )
    with Recorder() as hook:
        path = alerting_playbook(tmp_path, port, restart, hook.url("/alerts"))
        text = path.read_text().replace(
            "        notify:", "        interval: 1s\n        for: 2\n        notify:"
        )
        path.write_text(text)
        watch = WatchProcess(path, "--state", tmp_path / "state.db")
        try:
            watch.wait_event("listening")
            killed_at = time.monotonic()
            kill_service(folder)
            event = watch.wait_event("remediation", timeout=60)
            seconds = time.monotonic() - killed_at
            assert "app health -> restart app" in event["message"]
            assert "exit 0, remediated" in event["message"], event
        finally:
            assert watch.stop() == 0
    print(f"watch mode, interval 1s, for: 2: failure to remediated in {seconds:.1f}s")
    records = json.loads(run_checkrun("actions", "--state", tmp_path / "state.db", "--json").stdout)
    assert [a["verify"] for a in records["actions"]] == [REMEDIATED]


def test_a_handler_rendered_into_a_bad_command_fails_without_stopping_the_run(tmp_path, service):
    """A template that renders into no command for this host: the action is recorded as not
    run (exit -1, the reason in its output) and the run ends normally."""
    folder, port, _ = service
    restart = "- name: restart app\n  command: '{{ fix_cmd }}'"
    with Recorder() as hook:
        path = alerting_playbook(tmp_path, port, restart, hook.url("/alerts"))
        kill_service(folder)
        state = tmp_path / "state.db"
        done = run_checkrun(path, "-e", "fix_cmd=", "--state", state)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "exit -1, remediation failed" in done.stderr, done.stderr
    (record,) = json.loads(run_checkrun("actions", "--state", state, "--json").stdout)["actions"]
    assert record["exit_status"] == -1 and "expected a command" in record["output"]


def test_a_round_acts_on_every_handler_first_then_waits_one_settle_and_verifies(tmp_path):
    """Two checks of a host notify two handlers, each with settle 2s: both act, then the
    round waits once and verifies both (the order of what ran, from the events they log),
    rather than act, settle, verify, act, settle, verify."""
    events = tmp_path / "events"
    checks, handlers = [], []
    for name in ("a", "b"):
        fixed = tmp_path / f"fixed-{name}"
        checks.append(
            f"    - name: check {name}\n"
            f"      command: {{cmd: 'echo check-{name} >> {events}; test -f {fixed}', shell: true}}\n"
            f"      notify: [fix {name}]\n"
        )
        handlers.append(
            f"    - name: fix {name}\n"
            f"      command: {{cmd: 'echo act-{name} >> {events}; touch {fixed}', shell: true}}\n"
            "      settle: 2s\n"
        )
    path = tmp_path / "two.yml"
    path.write_text(
        "- name: app\n  hosts: localhost\n  connection: local\n  handlers:\n"
        + "".join(handlers)
        + "  checks:\n"
        + "".join(checks)
    )
    done = run_checkrun(path, "--state", tmp_path / "state.db")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("exit 0, remediated") == 2, done.stderr
    lines = events.read_text().split()
    assert sorted(lines[:2]) == ["check-a", "check-b"]  # the run
    assert lines[2:4] == ["act-a", "act-b"]  # both handlers act before any verify
    assert sorted(lines[4:]) == ["check-a", "check-b"]  # then one verify of both


def test_a_log_check_verifies_on_the_lines_after_the_round_and_counts_each_once(tmp_path):
    """A log pattern notifies a handler: verify reads on from where the round's read ended
    (not the round's own lines again, which would never show a fix); it keeps nothing, so
    the next run counts the lines after the round exactly once."""
    log = tmp_path / "app.log"
    log.write_text("start\n")
    marker = tmp_path / "noisy"
    path = tmp_path / "log.yml"
    path.write_text(
        "- name: app\n  hosts: localhost\n  connection: local\n  handlers:\n"
        "    - name: restart app\n"
        f"      command: {{cmd: 'test ! -f {marker} || echo \" ERROR again\" >> {log}', "
        "shell: true}\n      settle: 0s\n      cooldown: 0s\n"
        "  checks:\n    - name: app errors\n"
        f"      log: {{path: {log}, patterns: [{{name: errors, regex: ' ERROR ', crit: 0}}]}}\n"
        "      notify: [restart app]\n"
    )
    state = ("--state", tmp_path / "state.db")
    assert run_checkrun(path, *state).returncode == 0  # the first run reads from the end
    with log.open("a") as out:
        out.write(" ERROR boom\n")
    healed = run_checkrun(path, *state)
    assert "exit 0, remediated" in healed.stderr, healed.stderr  # no new ERROR after it
    marker.touch()  # now the handler itself logs an ERROR: verify sees it
    with log.open("a") as out:
        out.write(" ERROR boom\n")
    failed = run_checkrun(path, *state, "-r", "json")
    assert "exit 0, remediation failed" in failed.stderr, failed.stderr
    (check,) = json.loads(failed.stdout)["hosts"][0]["checks"]
    assert check["measurements"]["errors"] == 1  # the round's own line, once
    assert check["remediation"]["verify_status"] == "CRITICAL"
    again = run_checkrun(path, *state, "-r", "json", "--no-remediate")
    (check,) = json.loads(again.stdout)["hosts"][0]["checks"]
    assert check["measurements"]["errors"] == 1  # the handler's line: read by verify, counted now
