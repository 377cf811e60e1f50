"""Alerting end to end: real `checkrun` runs, a recording HTTP receiver, exact message counts.

A check is made to fail or pass between runs by removing or creating a flag file (the
`file` module). Every scenario counts what the receiver got.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import run_checkrun
from recorder import Recorder


@pytest.fixture
def receiver():
    with Recorder() as rec:
        yield rec


class Setup:
    def __init__(
        self,
        tmp_path: Path,
        recorder: Recorder,
        checks: str,
        alerting: str,
        hosts="localhost",
        state: str | None = None,
    ):
        self.tmp = tmp_path
        self.recorder = recorder
        self.state = state or tmp_path / "state.db"
        self.playbook = tmp_path / "alerts.yml"
        self.playbook.write_text(
            f"plays:\n  - name: app\n    hosts: {hosts}\n    checks:\n{checks}{alerting}"
        )

    def flag(self, name: str = "flag") -> Path:
        return self.tmp / name

    def run(self, *args: str, env: dict | None = None):
        return run_checkrun(self.playbook, "--state", self.state, *args, env=env)

    def messages(self, path: str = "/hook") -> list[dict]:
        return [r.json() for r in self.recorder.requests(path)]


def _webhook(url: str, extra_route: str = "") -> str:
    return (
        "receivers:\n"
        "  - name: hook\n"
        f"    webhook_configs: [{{url: '{url}'}}]\n"
        "route:\n"
        "  receiver: hook\n"
        "  group_by: [alertname]\n"
        f"{extra_route}"
    )


def _flag_check(flag: Path, extra: str = "", name: str = "flag present") -> str:
    return f"      - name: {name}\n        file: {{path: {flag}}}\n{extra}"


def test_for_3_fires_on_the_third_failing_run_then_resolves_once(tmp_path, receiver, state_target):
    flag = tmp_path / "flag"
    check, hook = _flag_check(flag, "        for: 3\n"), _webhook(receiver.url("/hook"))
    setup = Setup(tmp_path, receiver, check, hook, state=state_target)
    for run in range(1, 4):
        done = setup.run()
        assert done.returncode == 2, done.stderr
        assert len(setup.messages()) == (1 if run == 3 else 0), f"after run {run}"
    [firing] = setup.messages()
    assert firing["status"] == "firing" and firing["version"] == "4"
    assert firing["groupLabels"] == {"alertname": "flag present"}
    [alert] = firing["alerts"]
    assert alert["labels"]["host"] == "localhost"
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["module"] == "file"

    setup.run()  # still failing: nothing new inside repeat_interval
    assert len(setup.messages()) == 1

    flag.write_text("back")
    assert setup.run().returncode == 0
    messages = setup.messages()
    assert len(messages) == 2
    assert messages[1]["status"] == "resolved"
    assert messages[1]["alerts"][0]["fingerprint"] == alert["fingerprint"]
    setup.run()
    assert len(setup.messages()) == 2  # told once


def test_repeat_interval_reminds_while_it_stays_broken(tmp_path, receiver):
    flag = tmp_path / "flag"
    setup = Setup(
        tmp_path,
        receiver,
        _flag_check(flag),
        _webhook(receiver.url("/hook"), "  repeat_interval: 4s\n"),
    )
    first_started = time.monotonic()
    setup.run()
    first_ended = time.monotonic()
    setup.run()
    # the first message was sent during the first run: a second run that ended within the
    # interval of the first one's start must stay quiet (a loaded machine may be slower)
    if time.monotonic() - first_started < 4:
        assert len(setup.messages()) == 1
    time.sleep(max(0.0, first_ended + 4.2 - time.monotonic()))
    setup.run()
    assert len(setup.messages()) == 2
    assert setup.messages()[1]["status"] == "firing"


def test_a_receiver_down_for_two_runs_gets_everything_once_in_order(tmp_path, receiver):
    flag = tmp_path / "flag"
    other = tmp_path / "other"
    checks = _flag_check(flag) + _flag_check(other, name="other present")
    setup = Setup(tmp_path, receiver, checks, _webhook(receiver.url("/hook")))
    receiver.down()
    first = setup.run()
    assert "kept in the outbox" in first.stderr
    flag.write_text("x")  # "flag present" resolves while the receiver is down
    setup.run()
    listing = run_checkrun("alerts", "--state", setup.state).stdout
    assert "undelivered (3)" in listing  # two firing groups, then one resolved
    receiver.up()
    started = time.monotonic()
    done = run_checkrun("notify", setup.playbook, "--flush", "--state", setup.state)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "delivered 3" in done.stdout
    messages = setup.messages()
    summary = [(m["groupLabels"]["alertname"], m["status"]) for m in messages]
    assert summary == [
        ("flag present", "firing"),
        ("other present", "firing"),
        ("flag present", "resolved"),
    ]
    setup.run()  # nothing left, nothing new
    assert len(setup.messages()) == 3
    assert elapsed < 10


def test_a_crash_after_sending_resends_but_never_renotifies(tmp_path, receiver, state_target):
    flag = tmp_path / "flag"
    hook = _webhook(receiver.url("/hook"))
    setup = Setup(tmp_path, receiver, _flag_check(flag), hook, state=state_target)
    crashed = setup.run(env={"CHECKRUN_FAILPOINT": "after-send"})
    assert crashed.returncode == -9
    assert len(setup.messages()) == 1  # accepted, but the outbox never heard
    setup.run()
    messages = setup.messages()
    assert len(messages) == 2  # at least once: the same message again, from the outbox
    assert messages[0] == messages[1]
    setup.run()
    assert len(setup.messages()) == 2  # the notification log kept the engine from a third


def test_an_unreachable_host_mutes_its_own_check_alerts(tmp_path, receiver, closed_port):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"down ansible_host=127.0.0.1 ansible_port={closed_port} ansible_connection=ssh\n"
        "up ansible_connection=local\n"
    )
    flag = tmp_path / "flag"
    setup = Setup(
        tmp_path, receiver, _flag_check(flag), _webhook(receiver.url("/hook")), hosts="all"
    )
    setup.run("-i", inventory, "--host-key-checking", "off")
    names = sorted(
        (m["groupLabels"]["alertname"], tuple(sorted(a["labels"]["host"] for a in m["alerts"])))
        for m in setup.messages()
    )
    assert names == [("flag present", ("up",)), ("host unreachable", ("down",))]


def test_depends_on_pages_the_root_cause_only(tmp_path, receiver):
    database = tmp_path / "database"
    checks = _flag_check(database, name="database up") + _flag_check(
        tmp_path / "app", "        depends_on: [database up]\n", name="app healthy"
    )
    setup = Setup(tmp_path, receiver, checks, _webhook(receiver.url("/hook")))
    setup.run()
    assert [m["groupLabels"]["alertname"] for m in setup.messages()] == ["database up"]
    database.write_text("x")  # the root cause is fixed; the app is still broken: now it pages
    setup.run()
    messages = setup.messages()
    first = (messages[0]["groupLabels"]["alertname"], messages[0]["status"])
    assert first == ("database up", "firing")
    later = sorted((m["groupLabels"]["alertname"], m["status"]) for m in messages[1:])
    assert later == [("app healthy", "firing"), ("database up", "resolved")]


def test_routing_with_continue_reaches_both_receivers(tmp_path, receiver):
    flag = tmp_path / "flag"
    alerting = (
        "receivers:\n"
        f"  - {{name: default, webhook_configs: [{{url: '{receiver.url('/default')}'}}]}}\n"
        f"  - {{name: team, webhook_configs: [{{url: '{receiver.url('/team')}'}}]}}\n"
        f"  - {{name: pager, webhook_configs: [{{url: '{receiver.url('/pager')}'}}]}}\n"
        "route:\n"
        "  receiver: default\n"
        "  group_by: [alertname]\n"
        "  routes:\n"
        "    - {matchers: ['team=\"db\"'], receiver: team, continue: true}\n"
        "    - {matchers: ['severity=~\"critical|unknown\"'], receiver: pager}\n"
        "    - {matchers: ['severity=\"warning\"'], receiver: team}\n"
    )
    checks = _flag_check(flag, "        labels: {team: db}\n")
    setup = Setup(tmp_path, receiver, checks, alerting)
    setup.run()
    assert len(setup.messages("/team")) == 1
    assert len(setup.messages("/pager")) == 1
    assert setup.messages("/default") == []


def test_inhibit_rules_mute_the_target(tmp_path, receiver):
    alerting = _webhook(receiver.url("/hook")) + (
        "inhibit_rules:\n"
        "  - source_matchers: ['alertname=\"database up\"']\n"
        "    target_matchers: ['alertname=\"app healthy\"']\n"
        "    equal: [host]\n"
    )
    checks = _flag_check(tmp_path / "db", name="database up") + _flag_check(
        tmp_path / "app", name="app healthy"
    )
    setup = Setup(tmp_path, receiver, checks, alerting)
    setup.run()
    assert [m["groupLabels"]["alertname"] for m in setup.messages()] == ["database up"]


def test_64_hosts_failing_the_same_check_make_one_message(tmp_path, receiver):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[fleet]\n" + "".join(f"h{n:02d} ansible_connection=local\n" for n in range(64))
    )
    flag = tmp_path / "flag"
    setup = Setup(
        tmp_path, receiver, _flag_check(flag), _webhook(receiver.url("/hook")), hosts="fleet"
    )
    done = setup.run("-i", inventory)
    assert done.returncode == 2
    [message] = setup.messages()
    assert len(message["alerts"]) == 64
    assert len({a["fingerprint"] for a in message["alerts"]}) == 64


def test_no_notify_queues_nothing_and_notify_test_sends(tmp_path, receiver):
    flag = tmp_path / "flag"
    setup = Setup(tmp_path, receiver, _flag_check(flag), _webhook(receiver.url("/hook")))
    setup.run("--no-notify")
    assert setup.messages() == []
    done = run_checkrun("notify", setup.playbook, "--test", "hook", "--state", setup.state)
    assert done.returncode == 0, done.stdout + done.stderr
    [message] = setup.messages()
    assert "test" in json.dumps(message).lower()
    missing = run_checkrun("notify", setup.playbook, "--test", "nobody", "--state", setup.state)
    assert missing.returncode == 5
    assert "no receiver named 'nobody'" in missing.stderr


def test_secrets_in_receivers_are_masked_everywhere(tmp_path, receiver):
    flag = tmp_path / "flag"
    url = receiver.url("/hook") + "?key={{ env.HOOK_KEY }}"
    setup = Setup(tmp_path, receiver, _flag_check(flag), _webhook(url))
    receiver.respond("/hook", status=400, body="bad key s3cr3t-hook-key")
    report = tmp_path / "r.json"
    done = setup.run("-r", f"json:{report}", "-vv", env={"HOOK_KEY": "s3cr3t-hook-key"})
    assert receiver.requests("/hook")[0].query["key"] == "s3cr3t-hook-key"
    assert "refused" in done.stderr
    for text in (done.stdout, done.stderr, report.read_text()):
        assert "s3cr3t-hook-key" not in text
    listing = run_checkrun("alerts", "--state", setup.state).stdout
    assert "s3cr3t-hook-key" not in listing


def test_many_playbooks_share_one_alerting_file(tmp_path, receiver):
    shared = tmp_path / "alerting.yml"
    shared.write_text(_webhook(receiver.url("/hook")))
    flag = tmp_path / "flag"
    playbook = tmp_path / "site.yml"
    playbook.write_text(
        "alerting: alerting.yml\nplays:\n  - name: app\n    hosts: localhost\n    checks:\n"
        + _flag_check(flag)
    )
    done = run_checkrun(playbook, "--state", tmp_path / "state.db")
    assert done.returncode == 2
    [message] = [r.json() for r in receiver.requests("/hook")]
    assert message["groupLabels"] == {"alertname": "flag present"}


@pytest.mark.parametrize(
    ("alerting", "where", "message"),
    [
        ("route: {receiver: hook}\n", "receivers", "receivers: expected a list of receivers"),
        (
            "receivers: [{name: hook, webhook_configs: [{url: 'http://127.0.0.1:1/'}]}]\n"
            "route: {receiver: hoook}\n",
            ":9:",
            "no receiver named 'hoook' — did you mean 'hook'?",
        ),
        (
            "receivers: [{name: hook, webhok_configs: [{url: 'http://127.0.0.1:1/'}]}]\n"
            "route: {receiver: hook}\n",
            ":8:",
            "did you mean 'webhook_configs'?",
        ),
        (
            "receivers: [{name: hook, webhook_configs: [{url: 'http://127.0.0.1:1/'}]}]\n"
            "route: {receiver: hook, routes: [{matchers: ['severity=~\"(\"'], receiver: hook}]}\n",
            ":9:",
            "invalid regular expression (Go RE2 syntax): missing closing )",
        ),
        (
            "receivers: [{name: hook, webhook_configs: [{ur: 'http://127.0.0.1:1/'}]}]\n"
            "route: {receiver: hook}\n",
            ":8:",
            "did you mean 'url'?",
        ),
        (
            "receivers: [{name: hook, webhook_configs: [{url: 'http://127.0.0.1:1/'}]}]\n"
            "route: {receiver: hook, repeat_interval: often}\n",
            ":9:",
            "repeat_interval",
        ),
    ],
)
def test_alerting_mistakes_are_exit_5_with_their_place(tmp_path, alerting, where, message):
    playbook = tmp_path / "bad.yml"
    playbook.write_text(
        "plays:\n  - name: app\n    hosts: localhost\n    checks:\n"
        + _flag_check(tmp_path / "flag")
        + "        for: 2\n"
        + alerting
    )
    done = run_checkrun(playbook, "--state", tmp_path / "state.db")
    assert done.returncode == 5, done.stderr
    assert message in done.stderr
    if where.startswith(":"):
        assert f"bad.yml{where}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state.db").exists()  # nothing ran


def test_alerts_of_checks_outside_this_run_are_left_alone(tmp_path, receiver):
    flag, other = tmp_path / "flag", tmp_path / "other"
    checks = _flag_check(flag, "        tags: [one]\n") + _flag_check(
        other, "        tags: [two]\n", name="other present"
    )
    setup = Setup(tmp_path, receiver, checks, _webhook(receiver.url("/hook")))
    setup.run("-t", "one")
    setup.run("-t", "two")  # "flag present" did not run: it is neither resolved nor repeated
    summary = [(m["groupLabels"]["alertname"], m["status"]) for m in setup.messages()]
    assert summary == [("flag present", "firing"), ("other present", "firing")]
    flag.write_text("x")
    setup.run("-t", "one")
    summary = [(m["groupLabels"]["alertname"], m["status"]) for m in setup.messages()]
    assert summary[-1] == ("flag present", "resolved")
    assert len(summary) == 3
