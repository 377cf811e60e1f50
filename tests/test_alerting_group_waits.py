"""Alertmanager's group_wait and group_interval (watch mode): the group timer as a pure
stage with the time passed in, then the engine over a real state store, round by round,
with explicit times. One-shot runs (group_waits=False) wait for nothing, as before."""

from __future__ import annotations

import dataclasses
import time

import pytest

from checkrunner.alerting import receivers as registry
from checkrunner.alerting import stages
from checkrunner.alerting.config import AlertingSpec, ReceiverConfig
from checkrunner.alerting.engine import AlertEngine
from checkrunner.alerting.model import Alert
from checkrunner.alerting.route import build_route
from checkrunner.alerting.runtime import alert_listing
from checkrunner.config.normalize import OptionSet, check_option_set
from checkrunner.errors import Location
from checkrunner.state.alerts import AlertStore, StoredAlert, StoredGroup
from checkrunner.state.db import open_state
from checkrunner.state.keys import CheckKey

GROUP_WAIT, GROUP_INTERVAL = 30.0, 60.0


def _route(group_wait=GROUP_WAIT, group_interval=GROUP_INTERVAL, repeat=3600.0):
    from checkrunner.alerting.route import RouteTimers

    timers = RouteTimers(group_wait, group_interval, repeat)
    return build_route("ops", (), ("alertname",), repeat, False, [], None, timers=timers)


def _alert(name: str = "svc", host: str = "web1", starts_at: float = 0.0, **kw) -> Alert:
    labels = {"alertname": name, "host": host, "play": "p", "severity": "critical"}
    return Alert(labels, {"message": name}, starts_at, **kw)


def _stored(created=0.0, flushed=None, next_flush=30.0) -> StoredGroup:
    return StoredGroup("ops", "k", ("f",), created, flushed, next_flush)


# -- the group timer -----------------------------------------------------------------------


def test_a_new_group_waits_group_wait_before_its_first_flush():
    timing = stages.group_timing(None, [_alert(starts_at=100.0)], _route(), 100.0, waits=True)
    assert timing == stages.GroupTiming(False, created_at=100.0, next_flush_at=130.0)
    # Still waiting a little before (beyond the slack), due at the time.
    early = stages.group_timing(_stored(100.0, None, 130.0), [], _route(), 126.0, True)
    assert not early.due and early.next_flush_at == 130.0
    due = stages.group_timing(_stored(100.0, None, 130.0), [], _route(), 130.0, True)
    assert due == stages.GroupTiming(True, created_at=100.0, next_flush_at=190.0)


def test_a_group_whose_oldest_alert_is_older_than_group_wait_is_flushed_at_once():
    # dispatch.go: "Alert is old enough for immediate flush, resetting timer to zero".
    timing = stages.group_timing(None, [_alert(starts_at=10.0)], _route(), 100.0, True)
    assert timing == stages.GroupTiming(True, created_at=100.0, next_flush_at=160.0)
    zero_wait = _route(group_wait=0.0)
    timing = stages.group_timing(None, [_alert(starts_at=100.0)], zero_wait, 100.0, True)
    assert timing.due and timing.next_flush_at == 160.0


def test_after_a_flush_the_group_keeps_its_group_interval_cadence():
    flushed = _stored(100.0, 130.0, 190.0)
    assert not stages.group_timing(flushed, [], _route(), 180.0, True).due
    # A round a moment late does not shift the cadence; one several intervals late skips
    # the flushes it missed instead of making them all now.
    assert stages.group_timing(flushed, [], _route(), 191.0, True).next_flush_at == 250.0
    assert stages.group_timing(flushed, [], _route(), 400.0, True).next_flush_at == 430.0


def test_a_flush_due_just_after_a_round_is_made_in_that_round():
    flushed = _stored(0.0, 0.0, 5.0)
    five = _route(group_interval=5.0)
    assert stages.flush_reached(4.6, 5.0, 5.0)  # a tenth of the wait early
    assert not stages.flush_reached(4.4, 5.0, 5.0)
    assert stages.flush_reached(599.5, 600.0, 600.0)  # at most a second early
    assert not stages.flush_reached(598.9, 600.0, 600.0)
    timing = stages.group_timing(flushed, [], five, 4.7, True)
    assert timing.due and timing.next_flush_at == 10.0
    # A round that brought the group nothing (a watch tick) is not let in early...
    assert not stages.flush_reached(4.7, 5.0, 5.0, early=False)
    assert not stages.group_timing(flushed, [], five, 4.7, True, arrived=False).due
    # ...only on time.
    assert stages.group_timing(flushed, [], five, 5.0, True, arrived=False).due


def test_without_group_waits_every_group_is_flushed_on_every_run():
    timing = stages.group_timing(None, [_alert(starts_at=100.0)], _route(), 100.0, waits=False)
    assert timing == stages.GroupTiming(True, created_at=100.0, next_flush_at=100.0)
    timing = stages.group_timing(_stored(50.0, 60.0, 1000.0), [], _route(), 70.0, waits=False)
    assert timing == stages.GroupTiming(True, created_at=50.0, next_flush_at=70.0)


def test_group_members_keep_what_this_run_did_not_decide():
    # a: decided and routed here again; b: not decided (its check did not run): kept;
    # c: decided, not routed here (muted now): leaves; d: new.
    members = stages.group_members(("a", "b", "c"), decided={"a", "c", "d"}, routed=["d", "a"])
    assert members == ("a", "b", "d")


def test_member_alerts_come_from_this_run_then_from_the_store():
    fresh = _alert("a", starts_at=5.0)
    stored = {
        "b": StoredAlert("b", {"alertname": "b"}, {}, 1.0),
        "c": StoredAlert("c", {"alertname": "c"}, {}, 2.0, ends_at=4.0),
    }
    alerts = stages.member_alerts(("a", "b", "c", "gone"), {"a": fresh}, stored)
    assert [(a.name, a.status) for a in alerts] == [
        ("a", "firing"),
        ("b", "firing"),
        ("c", "resolved"),
    ]
    assert alerts[0] is fresh and alerts[2].ends_at == 4.0


# -- the engine over a real store, round by round ------------------------------------------


def _webhook() -> ReceiverConfig:
    module = registry.get("webhook")
    values, problems = check_option_set(
        OptionSet("webhook test", module.OPTIONS),
        {"url": "http://127.0.0.1:1/hook"},
        Location("t.yml"),
        keep_templates=False,
    )
    assert problems == []
    return ReceiverConfig("ops", "webhook", 0, values, Location("t.yml"))


class Rounds:
    """The engine run by hand: each round says which checks failed (True), passed (False);
    a check not named did not run. Notifications are kept as (status, [(host, status)])."""

    def __init__(self, tmp_path, route=None, group_waits=True, state: str | None = None):
        spec = AlertingSpec(receivers={"ops": [_webhook()]}, route=route or _route())
        self.engine = AlertEngine(spec, spec.receivers)
        self.db = open_state(state or str(tmp_path / "state.db"))
        self.group_waits = group_waits
        self.told: list[tuple[float, str, list[tuple[str, str]]]] = []

    def round(self, now: float, **hosts: bool) -> list[tuple[str, list[tuple[str, str]]]]:
        checks = []
        for host, failing in hosts.items():
            key = CheckKey(host, "p", "svc")
            checks.append(
                stages.Observation(key, failing, _alert("svc", host, now) if failing else None)
            )
        observed = stages.RunObservations(checks=checks, ran=[c.ref for c in checks])
        with self.db.transaction() as connection:
            outcome = self.engine.process(AlertStore(connection), observed, now, self.group_waits)
        told = [
            (n.status, [(a.labels["host"], a.status) for a in n.alerts])
            for n in outcome.notifications
        ]
        self.told += [(now, *t) for t in told]
        return told

    def groups(self) -> list[StoredGroup]:
        return AlertStore(self.db.connection).groups()


@pytest.fixture
def rounds(tmp_path, state_target):
    """Rounds on each backend: groups, their timers and the notification log."""
    made = Rounds(tmp_path, state=state_target)
    yield made
    made.db.close()


def test_new_group_waits_group_wait_collecting_alerts_and_empty_rounds_flush_it(rounds):
    assert rounds.round(1000.0, web1=True) == []
    assert rounds.round(1010.0, web2=True) == []  # joins the waiting group
    assert rounds.round(1020.0) == []  # a round in which nothing ran
    [group] = rounds.groups()
    assert (group.created_at, group.flushed_at, group.next_flush_at) == (1000.0, None, 1030.0)
    assert rounds.round(1030.0) == [("firing", [("web1", "firing"), ("web2", "firing")])]
    [group] = rounds.groups()
    assert (group.flushed_at, group.next_flush_at) == (1030.0, 1090.0)


def test_changes_within_group_interval_are_held_then_told_at_the_next_flush(rounds):
    rounds.round(1000.0, web1=True)
    assert rounds.round(1030.0) == [("firing", [("web1", "firing")])]
    assert rounds.round(1040.0, web1=True, web2=True) == []  # new alert: held
    assert rounds.round(1080.0, web1=True) == []  # web2 did not run: still in the group
    assert rounds.round(1090.0) == [("firing", [("web1", "firing"), ("web2", "firing")])]
    assert rounds.round(1150.0, web1=True, web2=True) == []  # nothing changed: quiet


def test_resolved_is_told_at_the_next_flush_then_the_group_is_gone(rounds):
    rounds.round(1000.0, web1=True, web2=True)
    rounds.round(1030.0)
    assert rounds.round(1050.0, web1=False, web2=True) == []  # recovered, held
    assert rounds.round(1090.0) == [("firing", [("web2", "firing"), ("web1", "resolved")])]
    assert rounds.round(1100.0, web2=False) == []
    assert rounds.round(1150.0) == [("resolved", [("web2", "resolved")])]
    assert rounds.groups() == []
    # A new incident is a new group: group_wait again.
    assert rounds.round(1160.0, web1=True) == []
    assert rounds.round(1190.0) == [("firing", [("web1", "firing")])]


def test_an_alert_that_resolves_within_group_wait_is_never_told(rounds):
    rounds.round(1000.0, web1=True)
    rounds.round(1010.0, web1=False)
    assert rounds.round(1030.0) == []
    assert rounds.groups() == []
    assert rounds.told == []


def test_an_alert_that_fires_and_resolves_between_flushes_is_not_told(rounds):
    # Deliberate difference (README): Alertmanager would tell web2 resolved at 1090.
    rounds.round(1000.0, web1=True)
    rounds.round(1030.0)
    rounds.round(1040.0, web1=True, web2=True)
    rounds.round(1050.0, web1=True, web2=False)
    assert rounds.round(1090.0) == []
    [group] = rounds.groups()
    assert len(group.alerts) == 1  # web2 left the group at the flush


def test_repeat_interval_is_counted_from_the_last_notification_at_group_interval_flushes(
    tmp_path,
):
    rounds = Rounds(tmp_path, _route(repeat=100.0))
    rounds.round(1000.0, web1=True)
    rounds.round(1030.0)  # told
    for now in range(1040, 1300, 10):
        rounds.round(float(now), web1=True)
    # Flushes at 1090, 1150, 1210, 1270: 100s after 1030 is first reached at 1150.
    assert [t[0] for t in rounds.told] == [1030.0, 1150.0, 1270.0]
    rounds.db.close()


def test_group_interval_equal_to_the_check_interval_tells_the_recovery_in_that_round(tmp_path):
    # A heartbeat route: group_wait 0s, group_interval 5s, rounds every 5s that end a
    # little later each time (how long the hosts took): the page goes out in the round the
    # alert fires, the recovery in the round it comes back.
    rounds = Rounds(tmp_path, _route(group_wait=0.0, group_interval=5.0))
    assert rounds.round(1000.3, web1=True) == [("firing", [("web1", "firing")])]
    assert rounds.round(1005.1, web1=True) == []
    assert rounds.round(1009.9, web1=True) == []
    assert rounds.round(1015.2, web1=False) == [("resolved", [("web1", "resolved")])]
    rounds.db.close()


def test_watch_ticks_just_before_the_heartbeat_round_leave_the_flush_to_that_round(tmp_path):
    # Watch mode also records a round at every tick, in which nothing of the group ran: the
    # tick that starts the next beat comes a moment before the flush is due. Were it let in
    # early, it would make the flush with nothing new, and the recovery that the beat
    # brings a moment later would wait a whole group_interval more.
    rounds = Rounds(tmp_path, _route(group_wait=0.0, group_interval=5.0))
    assert rounds.round(1000.3, web1=True) == [("firing", [("web1", "firing")])]
    assert rounds.round(1005.0) == []  # the tick that starts the next beat
    assert rounds.round(1005.3, web1=True) == []
    assert rounds.round(1010.0) == []
    assert rounds.round(1010.2, web1=False) == [("resolved", [("web1", "resolved")])]
    rounds.db.close()


def test_one_shot_runs_wait_for_nothing(tmp_path):
    rounds = Rounds(tmp_path, group_waits=False)
    assert rounds.round(1000.0, web1=True) == [("firing", [("web1", "firing")])]
    assert rounds.round(1001.0, web1=True, web2=True) == [
        ("firing", [("web1", "firing"), ("web2", "firing")])
    ]
    assert rounds.round(1002.0, web1=False) == [
        ("firing", [("web2", "firing"), ("web1", "resolved")])
    ]
    assert rounds.round(1003.0, web2=False) == [("resolved", [("web2", "resolved")])]
    assert rounds.groups() == []
    rounds.db.close()


def test_alerts_listing_shows_the_groups_waiting_and_when_they_are_due(rounds):
    rounds.round(1000.0, web1=True)
    listing = alert_listing(rounds.db, clock=lambda: 1010.0)
    [line] = [line for line in listing if "group_wait" in line]
    assert line.startswith('  ops {}:{alertname="svc"}: 1 firing, 0 resolved; next flush at ')
    assert "(in 20s, group_wait)" in line
    assert "waiting groups (1):" in listing
    rounds.round(1030.0)
    rounds.round(1040.0, web1=False)
    listing = alert_listing(rounds.db, clock=lambda: 1045.0)
    assert any(
        "0 firing, 1 resolved" in line and "(in 45s, group_interval)" in line for line in listing
    )
    rounds.round(1090.0)
    assert "waiting groups (0):" in alert_listing(rounds.db, clock=lambda: 1091.0)


def test_a_stored_group_whose_route_is_gone_is_dropped(tmp_path):
    rounds = Rounds(tmp_path)
    rounds.round(1000.0, web1=True)
    # The routing tree changed (a reload): the group's receiver no longer gets these alerts.
    other = build_route("other", (), ("alertname",), 3600.0, False, [], None)
    rounds.engine.spec = dataclasses.replace(rounds.engine.spec, route=other)
    rounds.round(1030.0)
    assert [g.receiver for g in rounds.groups()] == []
    rounds.db.close()


# -- against the real Alertmanager ---------------------------------------------------------

ROUTE_TIMINGS = (
    "  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n"
)
HOSTS = ("web1", "web2", "web3")


class Twins:
    """The same alert sequence told to a real Alertmanager (POST /api/v2/alerts) and to our
    engine (one process_run per round, group_waits=True, from a real plan), both routes with
    the same timings and webhook receivers on one recorder: /am and /ours."""

    def __init__(self, tmp_path, am_url: str, hook):
        from helpers import plan_from_text

        from checkrunner.alerting.runtime import render_receivers

        self.am_url, self.hook = am_url, hook
        checks = "".join(
            f"      - {{name: {name}, file: {{path: /nonexistent}}}}\n" for name in ("svc", "flap")
        )
        playbook = (
            f"plays:\n  - name: app\n    hosts: all\n    checks:\n{checks}"
            f"receivers:\n  - name: hook\n    webhook_configs: [{{url: '{hook.url('/ours')}'}}]\n"
            f"route:\n  receiver: hook\n{ROUTE_TIMINGS}"
        )
        inventory = "all:\n  hosts:\n" + "".join(
            f"    {h}: {{ansible_connection: local}}\n" for h in HOSTS
        )
        self.plan = plan_from_text(tmp_path, playbook, inventory)
        self.receivers = render_receivers(self.plan.alerting)
        self.db = open_state(str(tmp_path / "state.db"))
        self.failing: dict[tuple[str, str], bool] = {}  # (host, check) -> failing
        self.arrivals: dict[str, list[float]] = {"/am": [], "/ours": []}

    def labels(self, host: str, check: str) -> dict[str, str]:
        return {
            "alertname": check,
            "host": host,
            "play": "app",
            "severity": "critical",
            "module": "file",
        }

    def change(self, **changes: bool) -> float:
        """Checks that start (True) or stop (False) failing, e.g. web1_svc=True; told to
        Alertmanager at once, to our engine in this round. Returns when."""
        import json
        import urllib.request

        from checkrunner.alerting.model import rfc3339

        now = time.time()
        posted = []
        for name, failing in changes.items():
            host, check = name.split("_")
            self.failing[(host, check)] = failing
            alert = {"labels": self.labels(host, check), "startsAt": rfc3339(now)}
            if not failing:
                alert["endsAt"] = rfc3339(now)
            posted.append(alert)
        request = urllib.request.Request(
            f"{self.am_url}/api/v2/alerts",
            data=json.dumps(posted).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        self.round()
        return now

    def round(self, empty: bool = False) -> None:
        """One watch round: every check that has started reports its status (`empty`: a
        round in which nothing finished, which still flushes the groups that are due)."""
        from checkrunner.alerting.runtime import process_run
        from checkrunner.results import CheckResult, HostResult, RunResult, Status

        hosts: dict[str, list[CheckResult]] = {}
        for (host, check), failing in ({} if empty else self.failing).items():
            status = Status.CRITICAL if failing else Status.OK
            result = CheckResult(host, "app", check, "file", status, "missing" if failing else "")
            hosts.setdefault(host, []).append(result)
        run = RunResult(
            "playbook.yml", time.time(), hosts=[HostResult(h, checks=c) for h, c in hosts.items()]
        )
        process_run(
            self.db, self.plan.alerting, self.receivers, self.plan, run, str, group_waits=True
        )
        self.note_arrivals()

    def note_arrivals(self) -> None:
        for path, times in self.arrivals.items():
            times += [time.monotonic()] * (len(self.hook.requests(path)) - len(times))

    def rounds_until(self, count: int, at_least: float = 0.0) -> None:
        """Rounds every 0.1 s until both sides were told `count` notifications, for at least
        `at_least` seconds (generous bound: 60 s)."""
        start = time.monotonic()
        deadline = start + 60
        rounds = 0
        while time.monotonic() < deadline:
            rounds += 1
            self.round(empty=rounds % 2 == 0)
            if time.monotonic() - start >= at_least and all(
                len(t) >= count for t in self.arrivals.values()
            ):
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {count} notifications: {self.arrivals}")

    def told(self, path: str) -> list[tuple]:
        return [
            (
                m["status"],
                m["groupKey"],
                m["groupLabels"],
                sorted((a["labels"]["host"], a["status"], a["fingerprint"]) for a in m["alerts"]),
            )
            for m in (r.json() for r in self.hook.requests(path))
        ]


@pytest.fixture
def twins(tmp_path):
    from alertmanager import alertmanager_binary, running_alertmanager
    from recorder import Recorder

    if alertmanager_binary() is None:
        pytest.fail("prometheus-alertmanager is missing: scripts/test.sh installs it")
    with Recorder() as hook:
        config = (
            f"route:\n  receiver: hook\n{ROUTE_TIMINGS}receivers:\n  - name: hook\n"
            f"    webhook_configs: [{{url: '{hook.url('/am')}', send_resolved: true}}]\n"
        )
        with running_alertmanager(tmp_path / "am", config) as url:
            made = Twins(tmp_path, url, hook)
            yield made
            made.db.close()


def test_the_same_notifications_in_the_same_order_as_the_real_alertmanager(twins):
    group_wait, group_interval = 1.0, 2.0
    started = time.monotonic()
    twins.change(web1_svc=True, web2_svc=True)  # a new group: told after group_wait
    twins.rounds_until(1)
    for path in ("/am", "/ours"):
        assert twins.arrivals[path][0] - started >= group_wait * 0.9, path
    twins.change(web3_svc=True)  # a change after a flush: held until group_interval
    twins.rounds_until(2)
    twins.change(web1_svc=False)  # a recovery: told resolved at the next flush
    twins.rounds_until(3)
    twins.change(web2_svc=False, web3_svc=False)  # all resolved: told, the group is gone
    twins.rounds_until(4)
    for path in ("/am", "/ours"):
        gaps = [b - a for a, b in zip(twins.arrivals[path], twins.arrivals[path][1:])]
        assert min(gaps) >= group_interval * 0.5, (path, gaps)  # told at once: ~0.1 s
    # An alert that fires and resolves within group_wait is told by neither.
    twins.change(web1_flap=True)
    twins.change(web1_flap=False)
    twins.rounds_until(4, at_least=group_wait + 2 * group_interval + 1)

    ours, theirs = twins.told("/ours"), twins.told("/am")
    assert ours == theirs
    assert [(status, len(alerts)) for status, _, _, alerts in ours] == [
        ("firing", 2),
        ("firing", 3),
        ("firing", 3),
        ("resolved", 2),
    ]
    assert AlertStore(twins.db.connection).groups() == []


# -- configuration -------------------------------------------------------------------------

ALERTING = (
    "plays: [{name: app, hosts: localhost, checks: [{name: svc, file: {path: /x}}]}]\n"
    "receivers: [{name: hook, webhook_configs: [{url: 'http://127.0.0.1:1/'}]}]\n"
    "route:\n  receiver: hook\n"
)


def test_short_timings_load_and_children_inherit_them(tmp_path):
    from checkrunner.playbook import load_playbook

    playbook = tmp_path / "p.yml"
    playbook.write_text(
        ALERTING + "  group_wait: 0s\n  group_interval: 500ms\n"
        "  routes: [{receiver: hook, matchers: ['severity=\"critical\"'], group_interval: 1s}]\n"
    )
    route = load_playbook(playbook).alerting.route
    assert (route.group_wait, route.group_interval) == (0.0, 0.5)
    assert (route.routes[0].group_wait, route.routes[0].group_interval) == (0.0, 1.0)


def test_a_zero_group_interval_is_refused_with_the_heartbeat_hint(tmp_path):
    from helpers import run_checkrun

    playbook = tmp_path / "p.yml"
    playbook.write_text(ALERTING + "  group_interval: 0s\n")
    done = run_checkrun(playbook, "--state", tmp_path / "state.db")
    assert done.returncode == 5, done.stderr
    assert "p.yml:5:" in done.stderr
    assert "group_interval cannot be zero (Alertmanager refuses it too)" in done.stderr
    assert "write the check interval (e.g. group_interval: 5s)" in done.stderr
    assert "Traceback" not in done.stderr
