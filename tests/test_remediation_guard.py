"""Issue 14, the guard rails: which notified handlers run, and which guard stops the others.

Decisions read the audit of a real state database, so max_runs and cooldown are tested across
runs as a cron of one-shot runs meets them."""

from __future__ import annotations

import pytest

from checkrunner.config.model import HandlerSpec
from checkrunner.errors import Location
from checkrunner.remediation.guard import (
    DRY_RUN,
    RUN,
    SUPPRESSED,
    Mode,
    Notified,
    decide,
)
from checkrunner.state.actions import ActionIntent, ActionLog, ActionOutcome
from checkrunner.state.db import open_state


def handler(name: str = "restart app", **settings) -> HandlerSpec:
    return HandlerSpec(
        name=name,
        action="service",
        location=Location("p.yml", 3, 7),
        play_index=0,
        index=0,
        service="app.service",
        **settings,
    )


@pytest.fixture
def log(tmp_path):
    return ActionLog(open_state(str(tmp_path / "state.db")))


def ran(log: ActionLog, host: str, at: float, name: str = "restart app") -> None:
    """A run of the handler, recorded as the executor records one."""
    intent = ActionIntent(host, "web", name, ["app health"], "service", "systemctl restart app")
    log.run(intent, lambda: ActionOutcome(0, ""), at, lambda: at + 1)


def test_a_handler_notified_by_several_checks_of_a_host_runs_once(log):
    handlers = {"web": {"restart app": handler()}}
    notified = [
        Notified("web1", "web", "app health", ["restart app"]),
        Notified("web1", "web", "app port", ["restart app"]),
        Notified("web2", "web", "app health", ["restart app"]),
    ]
    decisions = decide(notified, handlers, {"web": 20}, log, now=10_000.0)
    assert [(d.host, d.triggers, d.verdict) for d in decisions] == [
        ("web1", ["app health", "app port"], RUN),
        ("web2", ["app health"], RUN),
    ]


def test_max_runs_and_cooldown_hold_across_runs(log):
    handlers = {"web": {"restart app": handler(max_runs=3, cooldown=600.0)}}
    alert = [Notified("web1", "web", "app health", ["restart app"])]

    def verdict(now: float):
        (decision,) = decide(alert, handlers, {"web": 1}, log, now)
        return decision.verdict, decision.reason

    assert verdict(0.0) == (RUN, None)
    ran(log, "web1", 0.0)
    state, reason = verdict(300.0)
    assert state == SUPPRESSED and reason.startswith("cooldown: ran 300s ago")
    for at in (700.0, 1400.0):
        assert verdict(at)[0] == RUN
        ran(log, "web1", at)
    state, reason = verdict(2100.0)  # a fourth within the hour: past max_runs
    assert state == SUPPRESSED and reason.startswith("max_runs: ran 3 times")
    assert verdict(3601.0) == (RUN, None)  # the first run left the window
    # an intent whose process died before finishing counts as a run too
    log.begin(ActionIntent("web1", "web", "restart app", ["x"], "service", "s"), 3700.0)
    assert verdict(3800.0)[0] == SUPPRESSED


def test_max_hosts_pages_instead_of_acting_on_the_fleet(log):
    handlers = {
        "web": {
            "restart app": handler(),
            "two at most": handler("two at most", max_hosts=2, max_hosts_is_fraction=False),
        }
    }
    notified = [Notified(f"web{n}", "web", "app health", ["restart app"]) for n in range(16)]
    decisions = decide(notified, handlers, {"web": 16}, log, now=0.0)
    assert {d.verdict for d in decisions} == {SUPPRESSED}
    assert "max_hosts: 16 of the play's 16 hosts need it, at most 1" in decisions[0].reason
    one = decide(notified[:1], handlers, {"web": 16}, log, now=0.0)
    assert [d.verdict for d in one] == [RUN]
    two = [Notified(f"web{n}", "web", "app health", ["two at most"]) for n in range(3)]
    assert {d.verdict for d in decide(two[:2], handlers, {"web": 16}, log, 0.0)} == {RUN}
    assert {d.verdict for d in decide(two, handlers, {"web": 16}, log, 0.0)} == {SUPPRESSED}


def test_a_muted_alert_an_off_switch_and_no_state_stop_the_handler(log):
    handlers = {"web": {"restart app": handler()}}
    muted = [Notified("web1", "web", "app health", ["restart app"], muted_by="depends_on: db port")]
    (decision,) = decide(muted, handlers, {"web": 10}, log, 0.0)
    assert decision.verdict == SUPPRESSED and "depends_on: db port" in decision.reason
    mixed = [*muted, Notified("web1", "web", "app port", ["restart app"])]
    assert decide(mixed, handlers, {"web": 10}, log, 0.0)[0].verdict == RUN  # one active alert
    active = [Notified("web1", "web", "app health", ["restart app"])]
    (off,) = decide(active, handlers, {"web": 10}, log, 0.0, Mode.OFF)
    assert off.verdict == SUPPRESSED and "--no-remediate" in off.reason
    (stateless,) = decide(active, handlers, {"web": 10}, None, 0.0)
    assert stateless.verdict == SUPPRESSED and "state database" in stateless.reason


def test_dry_run_decides_and_records_nothing(log):
    handlers = {"web": {"restart app": handler()}}
    active = [Notified("web1", "web", "app health", ["restart app"])]
    (decision,) = decide(active, handlers, {"web": 10}, log, 0.0, Mode.DRY_RUN)
    assert decision.verdict == DRY_RUN and decision.reason is None
    assert log.listing(0.0) == []
    ran(log, "web1", 0.0)  # a guard still says what a real run would meet
    (held,) = decide(active, handlers, {"web": 10}, log, 10.0, Mode.DRY_RUN)
    assert held.verdict == SUPPRESSED and held.reason.startswith("cooldown")
