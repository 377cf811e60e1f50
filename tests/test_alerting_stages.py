"""The alerting pipeline's stages, each on its own over small values (no run, no database),
and the engine over a real state store with the time passed in."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from helpers import receiver_config

from checkrunner.alerting import receivers as registry
from checkrunner.alerting import stages
from checkrunner.alerting.config import AlertingSpec
from checkrunner.alerting.engine import AlertEngine, keeps_alerts
from checkrunner.alerting.matchers import parse_matchers
from checkrunner.alerting.model import Alert, Notification
from checkrunner.alerting.route import InhibitRule, build_route
from checkrunner.alerting.timeinterval import NamedInterval, parse_interval
from checkrunner.errors import RenderError
from checkrunner.results import CheckResult, HostResult, RunResult, Status
from checkrunner.state.alerts import AlertStore, LogEntry, RunTimes, StoredAlert
from checkrunner.state.db import open_state
from checkrunner.state.keys import CheckKey

DISK = CheckKey("web1", "base", "disk")
LOAD = CheckKey("web1", "base", "load")


def _alert(name: str, host: str = "web1", severity: str = "critical", **kw) -> Alert:
    labels = {"alertname": name, "host": host, "play": "base", "severity": severity}
    return Alert(labels, {"message": name}, **kw)


def _observation(key: CheckKey, failing: bool, for_runs: int = 1, depends_on=(), at=0.0):
    alert = _alert(key.check, key.host, starts_at=at) if failing else None
    return stages.Observation(key, failing, alert, for_runs, tuple(depends_on))


# -- observe_run ---------------------------------------------------------------------------


def test_observe_run_turns_results_into_observations():
    run = RunResult(
        playbook="p.yml",
        started_at=0.0,
        hosts=[
            HostResult(
                "web1",
                checks=[
                    CheckResult("web1", "base", "disk", "disk", Status.CRITICAL, "97% used"),
                    CheckResult("web1", "base", "load", "load", Status.OK, "fine"),
                    CheckResult("web1", "base", "skipped", "load", Status.SKIPPED),
                ],
            ),
            HostResult("db1", reachable=False, reason="timeout", message="no answer"),
        ],
    )
    db_disk = CheckKey("db1", "base", "disk")
    settings = {DISK: (3, ("load",)), db_disk: (1, ())}
    observed = stages.observe_run(run, settings, now=100.0)

    assert [(o.ref, o.failing, o.for_runs, o.depends_on) for o in observed.checks] == [
        (DISK, True, 3, ("load",)),
        (LOAD, False, 1, ()),
    ]
    disk_alert = observed.checks[0].alert
    assert disk_alert.labels["severity"] == "critical"
    assert disk_alert.annotations == {"message": "97% used"}
    assert disk_alert.starts_at == 100.0
    assert observed.checks[1].alert is None
    unreachable = observed.unreachable["db1"]
    assert unreachable.labels == {
        "alertname": stages.UNREACHABLE_ALERT,
        "host": "db1",
        "severity": "critical",
    }
    assert unreachable.annotations["message"] == "timeout: no answer"
    # The checks planned on the host that could not be reached count as run (run times).
    assert observed.ran == [DISK, LOAD, db_disk]
    assert observed.hosts_seen == {"web1"}


# -- run times and streaks -----------------------------------------------------------------


def test_next_run_times_first_run_has_no_interval():
    after, interval = stages.next_run_times({}, [DISK], now=50.0)
    assert after == {DISK: RunTimes(50.0, ())}
    assert interval is None


def test_next_run_times_keeps_the_last_gaps_and_reports_the_largest():
    before = {DISK: RunTimes(100.0, (10.0, 20.0, 30.0, 40.0, 500.0)), LOAD: RunTimes(90.0, ())}
    after, interval = stages.next_run_times(before, [DISK, LOAD], now=160.0)
    assert after[DISK] == RunTimes(160.0, (20.0, 30.0, 40.0, 500.0, 60.0))
    assert after[LOAD] == RunTimes(160.0, (70.0,))
    assert interval == 500.0


def test_next_run_times_caps_the_interval_and_ignores_a_clock_that_went_back():
    day = stages.MAX_OBSERVED_INTERVAL
    after, interval = stages.next_run_times({DISK: RunTimes(0.0, ())}, [DISK], now=3 * day)
    assert interval == day
    assert after[DISK].gaps == (3 * day,)  # stored as measured, capped only when used
    after, interval = stages.next_run_times({DISK: RunTimes(500.0, (7.0,))}, [DISK], now=400.0)
    assert after[DISK] == RunTimes(400.0, (7.0,))
    assert interval == 7.0


def test_next_streaks_count_failing_runs_and_reset_on_success():
    before = {DISK: 2, LOAD: 5}
    checks = [_observation(DISK, True), _observation(LOAD, False)]
    new = CheckKey("web2", "base", "disk")
    assert stages.next_streaks(before, [*checks, _observation(new, True)]) == {
        DISK: 3,
        LOAD: 0,
        new: 1,
    }


# -- alert state ---------------------------------------------------------------------------


def _observations(*checks, unreachable=()) -> stages.RunObservations:
    observed = stages.RunObservations(checks=list(checks), ran=[c.ref for c in checks])
    for host in unreachable:
        observed.unreachable[host] = Alert(
            {"alertname": stages.UNREACHABLE_ALERT, "host": host, "severity": "critical"}
        )
    return observed


def test_update_alerts_pending_until_for_runs():
    obs = _observations(_observation(DISK, True, for_runs=3))
    state = stages.update_alerts([], obs, {DISK: 2}, now=10.0)
    assert state.raised == [] and state.firing == []
    assert [(a.name, runs, needed) for a, runs, needed in state.pending] == [("disk", 2, 3)]
    state = stages.update_alerts([], obs, {DISK: 3}, now=10.0)
    assert [a.name for a in state.raised] == ["disk"] and state.pending == []


def test_update_alerts_keeps_the_start_of_an_incident_and_resolves_answered_checks():
    old_disk = stages.to_stored(_alert("disk", starts_at=1.0))
    old_load = stages.to_stored(_alert("load", starts_at=2.0))
    other_play = stages.to_stored(
        Alert({"alertname": "x", "host": "web1", "play": "other"}, starts_at=3.0)
    )
    obs = _observations(_observation(DISK, True), _observation(LOAD, False))
    state = stages.update_alerts([old_disk, old_load, other_play], obs, {DISK: 4}, now=20.0)

    assert [(a.name, a.starts_at, a.ends_at) for a in state.raised] == [("disk", 1.0, None)]
    assert [(a.name, a.starts_at, a.ends_at) for a in state.resolved] == [("load", 2.0, 20.0)]
    # A check this run did not run (another play) is left as it is.
    assert [a.name for a in state.firing] == ["disk"]
    # The observation itself is not changed: stages do not write into their inputs.
    assert obs.checks[0].alert.starts_at == 0.0


def _remediated(key: CheckKey, escalation: str | None, at: float = 0.0) -> stages.Observation:
    observation = _observation(key, True, at=at)
    if escalation is not None:
        observation.alert.labels[stages.REMEDIATION_LABEL] = escalation
    return observation


def test_an_escalated_alert_keeps_its_first_label_until_its_check_passes():
    """failed -> suppressed (the next run's handler held by its cooldown) and failed -> no
    label (a handler that verified while the check still fails) are the same incident; no
    label -> failed (healed before, now a human is needed) is a new one."""
    failed = stages.to_stored(_remediated(DISK, "failed", at=1.0).alert)
    for later in ("suppressed", None):
        state = stages.update_alerts(
            [failed], _observations(_remediated(DISK, later)), {DISK: 2}, 5.0
        )
        assert [(a.labels.get("remediation"), a.starts_at) for a in state.raised] == [
            ("failed", 1.0)
        ]
        assert [a.fingerprint for a in state.raised] == [failed.fingerprint]
        assert state.resolved == []
    healed = stages.to_stored(_remediated(DISK, None, at=1.0).alert)
    state = stages.update_alerts(
        [healed], _observations(_remediated(DISK, "failed")), {DISK: 2}, 5.0
    )
    assert [a.labels.get("remediation") for a in state.raised] == ["failed"]
    assert [a.fingerprint for a in state.resolved] == [healed.fingerprint]
    # Once the check passes, the escalated alert resolves as any other.
    state = stages.update_alerts([failed], _observations(_observation(DISK, False)), {DISK: 0}, 9.0)
    assert [a.fingerprint for a in state.resolved] == [failed.fingerprint]


def test_update_alerts_no_result_from_an_unreachable_host_is_not_a_recovery():
    old_disk = stages.to_stored(_alert("disk", starts_at=1.0))
    state = stages.update_alerts([old_disk], _observations(unreachable=["web1"]), {}, now=30.0)
    assert state.resolved == []
    assert sorted(a.name for a in state.firing) == ["disk", stages.UNREACHABLE_ALERT]
    assert [a.name for a in state.raised] == [stages.UNREACHABLE_ALERT]


def test_update_alerts_resolves_unreachable_once_the_host_answers():
    down = stages.to_stored(
        Alert({"alertname": stages.UNREACHABLE_ALERT, "host": "web1"}, starts_at=5.0)
    )
    elsewhere = stages.to_stored(
        Alert({"alertname": stages.UNREACHABLE_ALERT, "host": "db1"}, starts_at=5.0)
    )
    state = stages.update_alerts(
        [down, elsewhere], _observations(_observation(LOAD, False)), {LOAD: 0}, 40.0
    )
    assert [(a.labels["host"], a.ends_at) for a in state.resolved] == [("web1", 40.0)]


# -- muting --------------------------------------------------------------------------------


def test_unreachable_muter_mutes_the_hosts_checks_not_its_own_alert():
    muter = stages.unreachable_muter({"web1"})
    assert muter(_alert("disk").labels) == stages.UNREACHABLE_ALERT
    assert muter(_alert(stages.UNREACHABLE_ALERT).labels) is None
    assert muter(_alert("disk", host="web2").labels) is None


def test_depends_on_muter_needs_the_dependency_failing_on_the_same_host():
    checks = [
        _observation(CheckKey("web1", "base", "http"), True, depends_on=["nginx"]),
        _observation(CheckKey("web1", "base", "nginx"), True),
        _observation(CheckKey("web2", "base", "http"), True, depends_on=["nginx"]),
        _observation(CheckKey("web2", "base", "nginx"), False),
    ]
    muter = stages.depends_on_muter(checks)
    assert muter(_alert("http", host="web1").labels) == "depends_on: nginx"
    assert muter(_alert("http", host="web2").labels) is None
    assert muter(_alert("nginx", host="web1").labels) is None


def test_inhibit_muter_uses_the_firing_alerts_as_sources():
    rule = InhibitRule(
        source=parse_matchers('severity="critical"'),
        target=parse_matchers('severity="warning"'),
        equal=("host",),
    )
    warning = _alert("load", severity="warning")
    muter = stages.inhibit_muter([rule], [_alert("disk"), warning])
    assert muter(warning.labels) == "inhibit_rules"
    assert muter(_alert("load", host="web2", severity="warning").labels) is None
    assert stages.inhibit_muter([rule], [warning])(warning.labels) is None


def test_mute_splits_alerts_and_the_first_reason_wins():
    disk, load, ok = _alert("disk"), _alert("load"), _alert("cpu")
    muted = stages.mute(
        [disk, load, ok],
        [
            lambda labels: "first" if labels["alertname"] == "disk" else None,
            lambda labels: "second" if labels["alertname"] in ("disk", "load") else None,
        ],
    )
    assert muted.active == [ok]
    assert muted.inhibited == [disk, load]
    assert [a.annotations[stages.MUTED_ANNOTATION] for a in muted.muted] == ["first", "second"]
    assert stages.MUTED_ANNOTATION not in disk.annotations  # the copy says why, not the alert


# -- routing, time intervals, the notification log -----------------------------------------


def _route(**kw):
    root = build_route("ops", (), ("alertname",), 3600.0, False, [], None)
    child = build_route(
        "pager", parse_matchers('severity="critical"'), None, None, True, [], root, **kw
    )
    root.routes.append(child)
    return root


def test_group_by_receiver_and_group_key():
    disk, disk2, load = (
        _alert("disk"),
        _alert("disk", host="web2"),
        _alert("load", severity="warning"),
    )
    groups = stages.group([disk, disk2, load], _route())
    assert {key: g.alerts for key, g in groups.items()} == {
        ("pager", '{}/{severity="critical"}:{alertname="disk"}'): [disk, disk2],
        ("ops", '{}:{alertname="load"}'): [load],
    }
    group = groups[("pager", '{}/{severity="critical"}:{alertname="disk"}')]
    notification = group.notification("pager", "k", [disk2], run_interval=60.0)
    assert notification.group_labels == {"alertname": "disk"}
    assert notification.alerts == [disk2] and notification.run_interval == 60.0


def test_time_muted_holds_a_route_inside_its_mute_interval():
    nights = NamedInterval(
        "nights", [parse_interval({"times": [{"start_time": "00:00", "end_time": "06:00"}]})]
    )
    route = _route(mute_time_intervals=("nights",)).routes[0]
    night = dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.timezone.utc).timestamp()
    day = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    assert stages.time_muted(route, night, {"nights": nights}) is True
    assert stages.time_muted(route, day, {"nights": nights}) is False


def test_dedup_notifies_new_alerts_once_then_on_repeat_interval():
    disk = _alert("disk")
    first = stages.dedup(None, [disk], repeat_interval=100.0, now=0.0, held=False)
    assert first.notify and first.alerts == [disk] and first.firing == [disk.fingerprint]
    entry = LogEntry(frozenset(first.firing), sent_at=0.0)
    assert not stages.dedup(entry, [disk], 100.0, now=99.0, held=False).notify
    assert stages.dedup(entry, [disk], 100.0, now=100.0, held=False).notify
    load = _alert("load")
    assert stages.dedup(entry, [disk, load], 100.0, now=1.0, held=False).notify


def test_dedup_tells_resolved_only_what_was_told_firing():
    told = dataclasses.replace(_alert("disk"), ends_at=5.0)
    untold = dataclasses.replace(_alert("load"), ends_at=5.0)
    entry = LogEntry(frozenset({told.fingerprint}), sent_at=0.0)
    verdict = stages.dedup(entry, [told, untold], 100.0, now=6.0, held=False)
    assert verdict.notify and verdict.alerts == [told] and verdict.firing == []
    quiet = stages.dedup(LogEntry(frozenset(), 0.0), [untold], 100.0, now=6.0, held=False)
    assert not quiet.notify and quiet.alerts == []


def test_dedup_holds_everything_while_a_time_interval_mutes_the_route():
    assert not stages.dedup(None, [_alert("disk")], 100.0, now=0.0, held=True).notify


# -- per receiver --------------------------------------------------------------------------


def test_for_receiver_drops_resolved_alerts_without_send_resolved():
    firing, resolved = _alert("disk"), dataclasses.replace(_alert("load"), ends_at=1.0)
    notification = Notification("ops", "k", {}, [firing, resolved])
    assert stages.for_receiver(notification, {"send_resolved": True}).alerts == [firing, resolved]
    assert stages.for_receiver(notification, {"send_resolved": False}).alerts == [firing]
    only_resolved = Notification("ops", "k", {}, [resolved])
    assert stages.for_receiver(only_resolved, {"send_resolved": False}) is None


def test_render_messages_one_destination_per_alertmanager_replica():
    config = receiver_config("alertmanager", urls=["http://127.0.0.1:1", "http://127.0.0.1:2"])
    module = registry.get("alertmanager")
    notification = Notification("ops", "k", {}, [_alert("disk")])
    messages = stages.render_messages(config, module, config.options, notification)
    destinations = [m.destination for m in messages]
    assert len(destinations) == 2 and len(set(destinations)) == 2
    assert all(d.startswith(module.destination(config.options) + ":") for d in destinations)
    assert {(m.receiver, m.kind, m.config_index, m.group_key) for m in messages} == {
        ("ops", "alertmanager", 0, "k")
    }


def test_render_messages_raises_what_cannot_be_rendered():
    broken = receiver_config("alertmanager", urls=["http://127.0.0.1:1"])
    broken.options["urls"] = []
    with pytest.raises(RenderError):
        stages.render_messages(
            broken, registry.get("alertmanager"), broken.options, Notification("o", "k", {}, [])
        )


def test_every_receiver_declares_whether_it_keeps_alerts():
    declared = {kind: registry.get(kind).KEEPS_ALERTS for kind in registry.kinds()}
    assert declared.pop("alertmanager") is True
    assert set(declared.values()) == {False}
    assert keeps_alerts(receiver_config("alertmanager", urls=["http://127.0.0.1:1"]))
    assert not keeps_alerts(receiver_config("webhook", url="http://127.0.0.1:1/hook"))


# -- the engine over a real store, the time passed in --------------------------------------


def test_engine_runs_the_stages_over_the_store_it_is_given(state_target):
    route = build_route("ops", (), ("alertname",), 3600.0, False, [], None)
    hook = receiver_config("webhook", url="http://127.0.0.1:1/hook")
    keeper = receiver_config("alertmanager", urls=["http://127.0.0.1:1"])
    spec = AlertingSpec(receivers={"ops": [hook, keeper]}, route=route)
    engine = AlertEngine(spec, spec.receivers)
    db = open_state(state_target)

    def run(now: float, failing: bool):
        with db.transaction() as connection:
            store = AlertStore(connection)
            observed = _observations(_observation(DISK, failing, at=now))
            outcome = engine.process(store, observed, now)
            return outcome, store.undelivered(), store.log_entry("ops", '{}:{alertname="disk"}')

    outcome, queued, entry = run(1000.0, True)
    assert [a.starts_at for a in outcome.firing] == [1000.0]
    assert [(m.kind, m.created_at) for m in queued] == [
        ("webhook", 1000.0),
        ("alertmanager", 1000.0),
    ]
    assert entry.sent_at == 1000.0

    # Next run, still failing: the notification log keeps the webhook quiet; the receiver
    # that keeps alerts gets it again, with the interval between the runs.
    outcome, queued, entry = run(1060.0, True)
    assert [m.kind for m in queued[2:]] == ["alertmanager"]
    assert outcome.notifications[-1].run_interval == 60.0
    assert entry.sent_at == 1000.0
    assert [a.starts_at for a in outcome.firing] == [1000.0]  # the same incident

    outcome, queued, _ = run(1120.0, False)
    assert [(a.name, a.ends_at) for a in outcome.resolved] == [("disk", 1120.0)]
    assert [m.kind for m in queued[3:]] == ["webhook", "alertmanager"]
    assert AlertStore(db.connection).firing() == []
    assert AlertStore(db.connection).streaks() == {DISK: 0}
    db.close()


def test_many_groups_in_one_round_are_told_once_each_and_kept_in_order(state_target):
    """A round's notification log entries, groups and messages are written together (one
    statement per table on PostgreSQL, however many groups): 30 hosts' groups are each told
    once, in the routing order, the next round reads every group's entry back and tells
    none again, and a host that recovers has its group told resolved and removed."""
    route = build_route("ops", (), ("host",), 3600.0, False, [], None)
    hook = receiver_config("webhook", url="http://127.0.0.1:1/hook", send_resolved=True)
    spec = AlertingSpec(receivers={"ops": [hook]}, route=route)
    engine = AlertEngine(spec, spec.receivers)
    db = open_state(state_target)
    hosts = [f"web{n:02d}" for n in range(30)]

    def run(now: float, failing: set[str]):
        with db.transaction() as connection:
            observed = _observations(
                *(_observation(CheckKey(h, "base", "disk"), h in failing, at=now) for h in hosts)
            )
            return engine.process(AlertStore(connection), observed, now)

    told = run(1000.0, set(hosts))
    store = AlertStore(db.connection)
    keys = [n.group_key for n in told.notifications]
    assert sorted(keys) == sorted(f'{{}}:{{host="{h}"}}' for h in hosts)
    outbox = db.connection.execute("SELECT group_key FROM outbox ORDER BY id").fetchall()
    assert [row[0] for row in outbox] == keys
    assert all(store.log_entry("ops", key).sent_at == 1000.0 for key in keys)
    assert len(store.groups()) == 30

    assert run(1060.0, set(hosts)).notifications == []  # every entry read back: nothing new
    recovered = run(1120.0, set(hosts) - {"web07"})
    assert [n.group_key for n in recovered.notifications] == ['{}:{host="web07"}']
    assert '{}:{host="web07"}' not in {g.group_key for g in store.groups()}
    assert len(store.groups()) == 29
    assert db.connection.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 31
    db.close()


def test_stored_alert_round_trip(state_target):
    db = open_state(state_target)
    alert = StoredAlert("f1", {"alertname": "disk"}, {"message": "full"}, 3.0)
    with db.transaction() as connection:
        AlertStore(connection).save_firing([alert], now=4.0)
    assert AlertStore(db.connection).firing() == [alert]
    with db.transaction() as connection:
        AlertStore(connection).save_resolved(["f1"], now=5.0)
    assert AlertStore(db.connection).firing() == []
    db.close()
