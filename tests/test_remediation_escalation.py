"""Issue 14, what a remediation says: in the reports, the alert (its `remediation` label and
annotation) and the notification, through real `checkrun` runs against a real supervised
service (supervised.py) and real webhook receivers (recorder.py).

The route sends every alert to `chat` and the escalated ones (`remediation="failed"` or
`"suppressed"`: a human is needed) to `pager` only, as an SRE team would wire it."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import jsonschema
from helpers import run_checkrun
from recorder import Recorder

from checkrunner.results import REMEDIATED, REMEDIATION_FAILED, REMEDIATION_SUPPRESSED

SCHEMA = json.loads((Path(__file__).parent.parent / "docs" / "json-report.schema.json").read_text())


def healing_playbook(
    tmp_path: Path, port: int, handler: str, receivers: Recorder | None, for_runs: int = 1
) -> Path:
    alerting = ""
    if receivers is not None:
        alerting = textwrap.dedent(
            f"""\
            receivers:
              - name: chat
                webhook_configs: [{{url: '{receivers.url("/chat")}', send_resolved: true}}]
              - name: pager
                webhook_configs: [{{url: '{receivers.url("/pager")}'}}]
            route:
              receiver: chat
              routes:
                - matchers: ['remediation=~"failed|suppressed"']
                  receiver: pager
            """
        )
    plays = (
        "- name: app\n  hosts: localhost\n  connection: local\n  handlers:\n"
        + textwrap.indent(handler, "    ")
        + "\n  checks:\n    - name: app health\n"
        + f"      http: {{url: 'http://127.0.0.1:{port}/health', status: [200], body: ok, "
        + f"timeout: 2s}}\n      for: {for_runs}\n      notify: [restart app]\n"
    )
    path = tmp_path / "heal.yml"
    path.write_text(alerting + "plays:\n" + textwrap.indent(plays, "  "))
    return path


def report_of(run_dir: Path) -> dict:
    report = json.loads((run_dir / "r.json").read_text())
    jsonschema.validate(report, SCHEMA)
    return report


def checkrun_healing(path: Path, tmp_path: Path, *args, env=None):
    done = run_checkrun(
        path, "--state", tmp_path / "state.db", "-r", "json:" + str(tmp_path / "r.json"),
        "-r", "junit:" + str(tmp_path / "r.xml"), "-r", "terminal", *args, env=env,
    )  # fmt: skip
    (check,) = report_of(tmp_path)["hosts"][0]["checks"]
    return done, check


def alerts_sent(receivers: Recorder, path: str) -> list[dict]:
    return [alert for request in receivers.requests(path) for alert in request.json()["alerts"]]


def test_a_restarted_service_is_one_notification_saying_so_in_every_report(tmp_path, service):
    """The issue's case: `service: app.service` (systemctl on the target), the check fails,
    the handler restarts it, verify sees it healthy: the run's reports say "remediated",
    the alert's annotation and the one notification "app health CRITICAL → restarted
    app.service → OK after N s"; no page. The next run resolves it."""
    bin_dir = service.fake_systemctl(tmp_path / "bin")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    handler = "- name: restart app\n  service: app.service\n  settle: 0s"
    with Recorder() as receivers:
        path = healing_playbook(tmp_path, service.port, handler, receivers)
        service.kill()
        done, check = checkrun_healing(path, tmp_path, env=env)
        assert done.returncode == 2, done.stderr  # the check failed: its result stays so
        remediation = check["remediation"]
        assert check["status"] == "CRITICAL"
        assert (remediation["result"], remediation["verify_status"]) == (REMEDIATED, "OK")
        assert remediation["action"] == "restart app.service"
        assert remediation["text"].startswith(
            "app health CRITICAL → restarted app.service → OK after "
        )
        assert "remediation: restarted app.service → OK after" in done.stdout  # terminal
        junit = (tmp_path / "r.xml").read_text()
        assert "remediation: restarted app.service → OK after" in junit
        (alert,) = alerts_sent(receivers, "/chat")
        assert alert["annotations"]["remediation"] == remediation["text"]
        assert "remediation" not in alert["labels"]  # healed: nothing to escalate
        assert receivers.requests("/pager") == []
        healthy, check = checkrun_healing(path, tmp_path, env=env)
        assert healthy.returncode == 0 and check["remediation"] is None
        assert [a["status"] for a in alerts_sent(receivers, "/chat")] == ["firing", "resolved"]
        assert receivers.requests("/pager") == []


def test_a_failing_handler_escalates_to_the_second_receiver_and_stays_one_incident(
    tmp_path, service
):
    """The handler fails: the alert carries remediation="failed" and the route pages; the
    next run's handler is held by its cooldown ("suppressed") but the incident is the same
    alert, so nothing is resolved or paged twice; once the check passes it resolves."""
    handler = (
        "- name: restart app\n"
        "  command: {cmd: 'echo unit app.service not found >&2; exit 4', shell: true}"
    )
    with Recorder() as receivers:
        path = healing_playbook(tmp_path, service.port, handler, receivers)
        service.kill()
        done, check = checkrun_healing(path, tmp_path)
        remediation = check["remediation"]
        assert remediation["result"] == REMEDIATION_FAILED, remediation
        assert remediation["exit_status"] == 4 and remediation["verify_status"] is None
        assert remediation["reason"] == "exit 4: unit app.service not found"
        assert "failed (exit 4: unit app.service not found)" in remediation["text"]
        (page,) = alerts_sent(receivers, "/pager")
        assert page["labels"]["remediation"] == "failed"
        assert page["annotations"]["remediation"] == remediation["text"]
        assert receivers.requests("/chat") == []  # the escalation route does not continue

        again, check = checkrun_healing(path, tmp_path)
        assert check["remediation"]["result"] == REMEDIATION_SUPPRESSED
        assert check["remediation"]["reason"].startswith("cooldown: ran ")
        assert len(receivers.requests("/pager")) == 1  # the same incident: no second page
        assert receivers.requests("/chat") == []
        firing = run_checkrun("alerts", "--state", tmp_path / "state.db")
        assert "firing (1):" in firing.stdout, firing.stdout
        assert "    remediation failed: app health CRITICAL → " in firing.stdout

        service.start()
        healthy, check = checkrun_healing(path, tmp_path)
        assert healthy.returncode == 0
    assert [a["status"] for a in alerts_sent(receivers, "/chat")] == []
    assert "Traceback" not in done.stderr + again.stderr


def test_a_handler_suppressed_by_a_guard_pages_with_the_reason(tmp_path, service):
    """--no-remediate: the alert is labelled remediation="suppressed" and its annotation
    says which guard held the handler back."""
    handler = "- name: restart app\n  command: [sh, -c, 'exit 0']"
    with Recorder() as receivers:
        path = healing_playbook(tmp_path, service.port, handler, receivers)
        service.kill()
        done, check = checkrun_healing(path, tmp_path, "--no-remediate")
        assert check["remediation"]["result"] == REMEDIATION_SUPPRESSED
        (page,) = alerts_sent(receivers, "/pager")
    assert page["labels"]["remediation"] == "suppressed"
    assert "suppressed by remediation is off" in page["annotations"]["remediation"]


def test_handlers_in_a_playbook_without_receivers_run_when_the_alert_fires(tmp_path, service):
    """No receivers and no route: the alert state (for: 2) is still kept for the handlers;
    the first failing run does nothing, the second restarts the service."""
    folder, port, script = service
    handler = f"- name: restart app\n  command: [sh, {script}, restart, {folder}, '{port}']"
    path = healing_playbook(tmp_path, port, handler, None, for_runs=2)
    service.kill()
    first, check = checkrun_healing(path, tmp_path)
    assert first.returncode == 2 and check["remediation"] is None, first.stderr
    assert "alerts:" not in first.stderr  # no receivers: nothing about notifications
    second, check = checkrun_healing(path, tmp_path)
    assert check["remediation"]["result"] == REMEDIATED, check["remediation"]
    assert "exit 0, remediated" in second.stderr
    healthy, check = checkrun_healing(path, tmp_path)
    assert healthy.returncode == 0 and check["remediation"] is None
