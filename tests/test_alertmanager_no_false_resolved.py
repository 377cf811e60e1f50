"""The `alertmanager` receiver never makes Alertmanager announce a false "resolved"
(issue 9, point 14): firing alerts are posted on every run with an endsAt well past the next
run, muted ones too (inhibit_rules, an unreachable host), so runs further apart than
Alertmanager's resolve_timeout keep them firing; a real recovery resolves them.

Against the real Alertmanager (resolve_timeout 2s) with a recording webhook behind it; the
endsAt arithmetic is checked on what checkrun posts to a recording HTTP server.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alertmanager import HOOK_ROUTE, active_alerts, alertmanager_binary, running_alertmanager
from helpers import run_checkrun, wait_for
from recorder import Recorder

RESOLVE_TIMEOUT = 2.0
# Long enough for Alertmanager to expire an alert that was not re-sent and to notify it.
BEYOND_RESOLVE_TIMEOUT = RESOLVE_TIMEOUT + 3.0

AM_CONFIG = (
    """
global:
  resolve_timeout: 2s
"""
    + HOOK_ROUTE
    + """receivers:
  - name: hook
    webhook_configs:
      - url: '{hook}'
        send_resolved: true
inhibit_rules:
  - source_matchers: ['alertname="database up"']
    target_matchers: ['alertname="app healthy"']
    equal: [host]
  - source_matchers: ['alertname="host unreachable"']
    target_matchers: ['alertname!="host unreachable"']
    equal: [host]
"""
)


class AM:
    def __init__(self, url: str, hook: Recorder):
        self.url = url
        self.hook = hook

    def notified(self, status: str) -> list[str]:
        """alertname of every alert that Alertmanager notified with this status."""
        return [
            alert["labels"]["alertname"]
            for request in self.hook.requests("/am")
            for alert in request.json()["alerts"]
            if alert["status"] == status
        ]

    def active(self) -> dict[str, dict]:
        return {a["labels"]["alertname"]: a for a in active_alerts(self.url)}


@pytest.fixture
def am(tmp_path) -> Iterator[AM]:
    if alertmanager_binary() is None:
        pytest.fail("prometheus-alertmanager is missing: scripts/test.sh installs it")
    with Recorder() as hook:
        config = AM_CONFIG.format(hook=hook.url("/am"))
        with running_alertmanager(tmp_path / "am", config) as url:
            yield AM(url, hook)


def _playbook(tmp_path: Path, checks: str, receiver: str, hosts: str = "localhost") -> Path:
    playbook = tmp_path / "site.yml"
    playbook.write_text(
        f"plays:\n  - name: app\n    hosts: {hosts}\n    checks:\n{checks}"
        f"receivers:\n  - {{name: am, alertmanager_configs: [{receiver}]}}\n"
        "route: {receiver: am, group_by: [alertname]}\n"
        "inhibit_rules:\n"
        "  - source_matchers: ['alertname=\"database up\"']\n"
        "    target_matchers: ['alertname=\"app healthy\"']\n"
        "    equal: [host]\n"
    )
    return playbook


def _check(flag: Path, name: str) -> str:
    return f"      - name: {name}\n        file: {{path: {flag}}}\n"


def _ends_at(alert: dict) -> float:
    return dt.datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()


def _still_firing_after_resolve_timeout(am: AM, names: list[str]) -> None:
    time.sleep(BEYOND_RESOLVE_TIMEOUT)
    assert am.notified("resolved") == [], "a false resolved while the checks still fail"
    active = am.active()
    for name in names:
        assert name in active, f"{name} expired in Alertmanager"
        assert _ends_at(active[name]) > time.time() + 180  # the 4m floor at the least


def test_runs_further_apart_than_resolve_timeout_stay_firing(tmp_path, am):
    flag = tmp_path / "flag"
    playbook = _playbook(tmp_path, _check(flag, "flag present"), f"{{urls: ['{am.url}']}}")
    state = tmp_path / "state.db"
    for _ in range(2):
        assert run_checkrun(playbook, "--state", state).returncode == 2
        wait_for(lambda: am.notified("firing"), "the firing notification")
        _still_firing_after_resolve_timeout(am, ["flag present"])
    assert am.notified("firing") == ["flag present"]  # once: Alertmanager saw no change

    flag.write_text("x")  # a real recovery resolves at once
    assert run_checkrun(playbook, "--state", state).returncode == 0
    wait_for(lambda: am.notified("resolved") == ["flag present"], "the resolved notification")
    assert am.active() == {}


def test_alerts_muted_by_inhibit_rules_or_depends_on_are_not_resolved(tmp_path, am):
    database, app, queue = tmp_path / "database", tmp_path / "app", tmp_path / "queue"
    database.write_text("x")
    checks = (
        _check(database, "database up")
        + _check(app, "app healthy")
        + _check(queue, "queue up")
        + "        depends_on: [database up]\n"
    )
    playbook = _playbook(tmp_path, checks, f"{{urls: ['{am.url}']}}")
    state = tmp_path / "state.db"
    run_checkrun(playbook, "--state", state)
    both = ["app healthy", "queue up"]
    wait_for(lambda: sorted(am.notified("firing")) == both, "app healthy and queue up firing")

    database.unlink()  # now checkrun's inhibit rule and depends_on mute the other two
    for _ in range(2):
        done = run_checkrun(playbook, "--state", state)
        assert "2 inhibited" in done.stderr
        wait_for(lambda: "database up" in am.notified("firing"), "database up firing")
        _still_firing_after_resolve_timeout(am, ["database up", *both])
    active = am.active()
    assert active["app healthy"]["annotations"]["muted_by"] == "inhibit_rules"
    assert active["app healthy"]["status"]["inhibitedBy"]  # Alertmanager's own rule mutes it
    assert active["queue up"]["annotations"]["muted_by"] == "depends_on: database up"
    assert sorted(am.notified("firing")) == ["app healthy", "database up", "queue up"]

    for flag in (database, app, queue):
        flag.write_text("x")
    run_checkrun(playbook, "--state", state)
    wait_for(
        lambda: sorted(am.notified("resolved")) == ["app healthy", "database up", "queue up"],
        "all three resolved",
    )


def test_check_alerts_of_an_unreachable_host_are_not_resolved(tmp_path, am, closed_port):
    inventory = tmp_path / "hosts.ini"
    reachable = "web ansible_connection=local\n"
    unreachable = f"web ansible_host=127.0.0.1 ansible_port={closed_port} ansible_connection=ssh\n"
    flag = tmp_path / "flag"
    playbook = _playbook(tmp_path, _check(flag, "flag present"), f"{{urls: ['{am.url}']}}", "web")
    state = tmp_path / "state.db"

    def run() -> int:
        args = ("-i", inventory, "--host-key-checking", "off", "--state", state)
        return run_checkrun(playbook, *args).returncode

    inventory.write_text(reachable)
    assert run() == 2
    wait_for(lambda: am.notified("firing") == ["flag present"], "flag present firing")

    inventory.write_text(unreachable)
    for _ in range(2):
        assert run() == 4
        wait_for(lambda: "host unreachable" in am.notified("firing"), "host unreachable firing")
        _still_firing_after_resolve_timeout(am, ["flag present", "host unreachable"])
    assert am.active()["flag present"]["annotations"]["muted_by"] == "host unreachable"

    inventory.write_text(reachable)  # back, and fixed
    flag.write_text("x")
    assert run() == 0
    wait_for(
        lambda: sorted(am.notified("resolved")) == ["flag present", "host unreachable"],
        "both resolved",
    )


def _posted_window(recorder: Recorder, run) -> tuple[float, float, float]:
    """(endsAt - the time before the run, endsAt - the time after it) of the firing alert the
    run posted, and the time before it."""
    before = time.time()
    run()
    after = time.time()
    alert = recorder.requests("/api/v2/alerts")[-1].json()[0]
    ends_at = _ends_at(alert)
    return ends_at - before, ends_at - after, before


def test_ends_at_follows_the_observed_interval_between_runs(tmp_path):
    with Recorder() as recorder:
        state = tmp_path / "state.db"
        checks = _check(tmp_path / "flag", "flag present")

        def run(receiver: str = f"{{urls: ['{recorder.url('')}']}}"):
            return lambda: run_checkrun(_playbook(tmp_path, checks, receiver), "--state", state)

        # The first run knows no interval yet: 4 x 15 minutes.
        late, early, first = _posted_window(recorder, run())
        assert early <= 4 * 900 <= late

        # A second run moments later: the interval is floored at 1 minute.
        late, early, _ = _posted_window(recorder, run())
        assert early <= 4 * 60 <= late

        # The check last ran 10 minutes ago (as cron would run it): 4 x 10 minutes ahead.
        with sqlite3.connect(state) as connection:
            connection.execute("UPDATE check_runs SET ran_at = ran_at - 600")
        late, early, _ = _posted_window(recorder, run())
        assert early >= 4 * 600 and late <= 4 * (600 + time.time() - first)

        # A manual run in between does not shrink it: the largest recent interval counts.
        late, early, _ = _posted_window(recorder, run())
        assert early >= 4 * 600

        # run_interval sets it (the observed interval still counts when longer).
        late, early, _ = _posted_window(
            recorder, run(f"{{urls: ['{recorder.url('')}'], run_interval: 1h}}")
        )
        assert early <= 4 * 3600 <= late
