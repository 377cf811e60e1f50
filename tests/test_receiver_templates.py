"""Receiver templates (issue 9, point 12): checked by `checkrun validate` at their file:line,
with a hint for Alertmanager's Go template syntax; a template that fails on real alerts at
run time fails that one receiver's delivery, never the others' and never the run."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_checkrun
from recorder import Recorder

CHECKS = """plays:
  - name: app
    hosts: localhost
    checks:
      - name: flag present
        file: {{path: {flag}}}
"""


def _playbook(tmp_path: Path, receivers: str, route: str = "route: {receiver: ops}\n") -> Path:
    playbook = tmp_path / "alerts.yml"
    playbook.write_text(CHECKS.format(flag=tmp_path / "flag") + "receivers:\n" + receivers + route)
    return playbook


@pytest.mark.parametrize(
    ("receiver", "line", "message", "hint"),
    [
        (  # Alertmanager's Go template syntax
            "  - name: ops\n"
            "    slack_configs:\n"
            "      - api_url: http://127.0.0.1:1/slack\n"
            "        title: '{{ .CommonLabels.alertname }}'\n",
            11,
            "template option 'title' of slack_configs item 1 is not a valid template",
            "`.CommonLabels.alertname` is Go template syntax; write `{{ commonLabels.alertname }}`",
        ),
        (  # an unfinished expression
            "  - name: ops\n"
            "    webhook_configs:\n"
            "      - url: http://127.0.0.1:1/hook\n"
            "        payload: '{{ status '\n",
            11,
            "template option 'payload' of webhook_configs item 1 is not a valid template",
            None,
        ),
        (  # Go's range ... end
            "  - name: ops\n"
            "    wecom_configs:\n"
            "      - key: abc\n"
            "        message: '{{ range .Alerts }}{{ .Labels.instance }}{{ end }}'\n",
            11,
            "is not a valid template",
            "`{% for alert in alerts %}{{ alert.labels.instance }}{% endfor %}`",
        ),
        (  # a misspelt variable compiles but can never render
            "  - name: ops\n"
            "    dingtalk_configs:\n"
            "      - access_token: abc\n"
            "        title: '{{ stauts }}'\n",
            11,
            "reads 'stauts', which a receiver template does not get — did you mean 'status'?",
            "a receiver template gets: alerts, commonAnnotations, commonLabels",
        ),
        (  # Go's field names with Jinja2's braces
            "  - name: ops\n"
            "    feishu_configs:\n"
            "      - url: http://127.0.0.1:1/feishu\n"
            "        title: '{{ CommonLabels.alertname }}'\n",
            11,
            "reads 'CommonLabels'",
            "write `{{ commonLabels.alertname }}`",
        ),
        (  # a field that alerts do not have
            "  - name: ops\n"
            "    email_configs:\n"
            "      - {to: a@example.com, from: b@example.com, smarthost: '127.0.0.1:25',\n"
            "         text: '{% for a in firing %}{{ a.Labels.host }}{% endfor %}'}\n",
            11,
            "reads the field 'Labels' of an alert",
            "write `alert.labels`",
        ),
    ],
)
def test_bad_receiver_templates_are_exit_5_at_their_place(tmp_path, receiver, line, message, hint):
    playbook = _playbook(tmp_path, receiver)
    for command in (("validate", playbook), (playbook, "--state", tmp_path / "state.db")):
        done = run_checkrun(*command)
        assert done.returncode == 5, done.stdout + done.stderr
        assert f"alerts.yml:{line}:" in done.stderr
        assert message in done.stderr
        if hint:
            assert hint in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "state.db").exists()  # nothing ran


def test_good_receiver_templates_pass_validate(tmp_path):
    receivers = (
        "  - name: ops\n"
        "    webhook_configs:\n"
        "      - url: http://127.0.0.1:1/hook\n"
        "        payload: |\n"
        "          {% set n = namespace(count=0) %}\n"
        "          {% for alert in alerts|sort(attribute='startsAt') %}{% set n.count = n.count + 1 %}"
        "{{ alert.labels.host }} {{ alert.annotations.get('value', '') }} {{ alert.status }}"
        "{% for name, value in alert.labels.items() %}{{ name }}={{ value }}{% endfor %}"
        "{% endfor %}\n"
        "          {{ n.count }} {{ commonLabels.alertname }} {{ default_title }} {{ groupKey }}\n"
        "          {{ firing[0].labels.host if firing else resolved|length }}\n"
    )
    done = run_checkrun("validate", _playbook(tmp_path, receivers))
    assert done.returncode == 0, done.stderr


def test_a_template_failing_at_run_time_fails_only_its_receiver(tmp_path):
    """`commonLabels.team` compiles, but these alerts have no team label: the slack
    receiver's message cannot be made. The webhook on the same route still gets its message,
    the run exits by its checks (2), and the alert state is kept: the next run resolves."""
    with Recorder() as recorder:
        receivers = (
            "  - name: ops\n"
            "    slack_configs:\n"
            f"      - api_url: {recorder.url('/slack')}\n"
            "        title: '{{ commonLabels.team }} is down'\n"
            f"    webhook_configs: [{{url: '{recorder.url('/hook')}'}}]\n"
        )
        playbook = _playbook(tmp_path, receivers, "route: {receiver: ops, group_by: [alertname]}\n")
        state = tmp_path / "state.db"
        assert run_checkrun("validate", playbook).returncode == 0

        done = run_checkrun(playbook, "--state", state)
        assert done.returncode == 2, done.stderr  # the checks' verdict, not a crash
        assert "Traceback" not in done.stderr
        assert "ops (slack)" in done.stderr and "'team'" in done.stderr
        [firing] = [r.json() for r in recorder.requests("/hook")]
        assert firing["status"] == "firing"
        assert recorder.requests("/slack") == []

        listing = run_checkrun("alerts", "--state", state)
        assert "firing (1):" in listing.stdout
        [failed] = [line for line in listing.stdout.splitlines() if "ops (slack) failed" in line]
        assert "cannot render the message" in failed and "'team'" in failed

        (tmp_path / "flag").write_text("x")
        done = run_checkrun(playbook, "--state", state)
        assert done.returncode == 0, done.stderr
        statuses = [r.json()["status"] for r in recorder.requests("/hook")]
        assert statuses == ["firing", "resolved"]  # the state of the first run was kept
        assert recorder.requests("/slack") == []


def test_notify_test_reports_a_template_that_cannot_render(tmp_path):
    with Recorder() as recorder:
        receivers = (
            "  - name: ops\n"
            "    webhook_configs:\n"
            f"      - url: {recorder.url('/bad')}\n"
            "        payload: '{{ alerts[0].labels.team }}'\n"
            f"      - url: {recorder.url('/good')}\n"
        )
        playbook = _playbook(tmp_path, receivers)
        done = run_checkrun("notify", playbook, "--test", "ops", "--state", tmp_path / "s.db")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        assert "refused 1" in done.stdout and "cannot render the message" in done.stdout
        assert len(recorder.requests("/good")) == 1
        assert recorder.requests("/bad") == []
