"""Alerting against real peers: Prometheus Alertmanager (Debian's package) and an SMTP
server (aiosmtpd), both started by the tests on loopback."""

from __future__ import annotations

import time
from email import message_from_bytes
from pathlib import Path

import pytest
from alertmanager import (
    HOOK_ROUTE,
    active_alerts,
    alert_groups,
    alertmanager_binary,
    running_alertmanager,
)
from helpers import run_checkrun, wait_for
from recorder import Recorder
from sshd import free_port

PLAYBOOK = """plays:
  - name: app
    hosts: localhost
    checks:
      - {{name: flag present, file: {{path: {flag}}}, labels: {{team: db}}}}
      - {{name: other present, file: {{path: {other}}}, labels: {{team: db}}}}
{alerting}"""


@pytest.fixture
def alertmanager(tmp_path):
    if alertmanager_binary() is None:
        pytest.fail("prometheus-alertmanager is missing: scripts/test.sh installs it")
    with Recorder() as hook:
        config = f"""
{HOOK_ROUTE}receivers:
  - name: hook
    webhook_configs:
      - url: '{hook.url("/am")}'
        send_resolved: true
"""
        with running_alertmanager(tmp_path / "am", config) as url:
            yield url, hook


def test_alertmanager_receives_groups_and_resolves(tmp_path, alertmanager):
    url, hook = alertmanager
    flag, other = tmp_path / "flag", tmp_path / "other"
    down_replica = f"http://127.0.0.1:{free_port()}"  # a second replica that is down
    playbook = tmp_path / "am.yml"
    playbook.write_text(
        PLAYBOOK.format(
            flag=flag,
            other=other,
            alerting=(
                "receivers:\n"
                f"  - {{name: am, alertmanager_configs: [{{urls: ['{url}', '{down_replica}']}}]}}\n"
                "route: {receiver: am, group_by: [alertname]}\n"
            ),
        )
    )
    state = tmp_path / "state.db"
    done = run_checkrun(playbook, "--state", state)
    assert done.returncode == 2
    alerts = wait_for(
        lambda: len(active_alerts(url)) == 2 and active_alerts(url), what="alerts in Alertmanager"
    )
    names = sorted(a["labels"]["alertname"] for a in alerts)
    assert names == ["flag present", "other present"]
    assert all(a["labels"]["team"] == "db" and a["labels"]["host"] == "localhost" for a in alerts)
    # Alertmanager computes the same fingerprint from the labels as checkrunner does
    from checkrunner.alerting.model import fingerprint

    assert {a["fingerprint"] for a in alerts} == {fingerprint(a["labels"]) for a in alerts}
    groups = alert_groups(url)
    assert sorted(len(g["alerts"]) for g in groups) == [1, 1]
    wait_for(lambda: len(hook.requests("/am")) >= 2, what="Alertmanager's notifications")
    assert "kept in the outbox" in done.stderr  # the down replica keeps its copy

    flag.write_text("x")
    other.write_text("x")
    run_checkrun(playbook, "--state", state)
    wait_for(lambda: not active_alerts(url), what="Alertmanager to resolve the alerts")

    def resolved_messages():
        found = [r.json() for r in hook.requests("/am") if r.json()["status"] == "resolved"]
        return found if len(found) >= 2 else None

    resolved = wait_for(resolved_messages, what="resolved notifications from Alertmanager")
    assert sorted(m["groupLabels"]["alertname"] for m in resolved) == [
        "flag present",
        "other present",
    ]


class _Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.rcpt_tos, envelope.content))
        return "250 OK"


def test_email_receiver_over_a_real_smtp_server(tmp_path):
    from aiosmtpd.controller import Controller

    mailbox = _Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        flag = tmp_path / "flag"
        playbook = tmp_path / "mail.yml"
        playbook.write_text(
            PLAYBOOK.format(
                flag=flag,
                other=tmp_path / "other-never",
                alerting=(
                    "receivers:\n"
                    "  - name: mail\n"
                    "    email_configs:\n"
                    f"      - {{to: oncall@example.test, from: checkrun@example.test, "
                    f"smarthost: '127.0.0.1:{port}', require_tls: false, send_resolved: true}}\n"
                    "route: {receiver: mail, group_by: [alertname]}\n"
                ),
            )
        )
        state = tmp_path / "state.db"
        run_checkrun(playbook, "--state", state)
        assert len(mailbox.messages) == 2  # one per group
        recipients, content = mailbox.messages[0]
        assert recipients == ["oncall@example.test"]
        message = message_from_bytes(content)
        assert "FIRING" in message["Subject"]
        kinds = sorted(
            part.get_content_type() for part in message.walk() if not part.is_multipart()
        )
        assert kinds == ["text/html", "text/plain"]
        flag.write_text("x")
        run_checkrun(playbook, "--state", state)
        assert len(mailbox.messages) == 3
        assert "RESOLVED" in message_from_bytes(mailbox.messages[2][1])["Subject"]
    finally:
        controller.stop()


def test_outbox_delivery_time_after_the_receiver_comes_back(tmp_path):
    """Measured, not timed: prints how long the outbox takes to drain once the receiver is up."""
    with Recorder() as hook:
        flags = [tmp_path / f"f{n}" for n in range(2)]
        playbook = tmp_path / "p.yml"
        playbook.write_text(
            PLAYBOOK.format(
                flag=flags[0],
                other=flags[1],
                alerting=(
                    f"receivers:\n  - {{name: hook, webhook_configs: [{{url: '{hook.url('/h')}'}}]}}\n"
                    "route: {receiver: hook, group_by: [alertname]}\n"
                ),
            )
        )
        state = tmp_path / "state.db"
        hook.down()
        run_checkrun(playbook, "--state", state)
        hook.up()
        started = time.monotonic()
        done = run_checkrun("notify", playbook, "--flush", "--state", state)
        elapsed = time.monotonic() - started
        assert "delivered 2" in done.stdout
        assert len(hook.requests("/h")) == 2
        print(f"outbox of 2 messages delivered {elapsed:.2f} s after the receiver came back")
        Path(tmp_path / "elapsed").write_text(str(elapsed))
