"""The outbox dispatcher against a recording receiver: Retry-After, backoff, 4xx, order, rate limits."""

from __future__ import annotations

from helpers import names, outbox_states, queue_notifications, receiver_config
from recorder import Recorder

from checkrunner.alerting.delivery import Dispatcher
from checkrunner.state.db import open_state


def test_retry_after_is_honoured_and_order_kept(state_target):
    db = open_state(state_target)
    with Recorder() as rec:
        config = receiver_config("webhook", url=rec.url("/hook"))
        queue_notifications(db, config, names(3))
        rec.respond("/hook", status=429, headers={"Retry-After": "1"}, times=1)
        pauses: list[float] = []
        report = Dispatcher(db, {"ops": [config]}, sleep=pauses.append).deliver()
        assert report.delivered == 3
        assert pauses == [1.0]
        bodies = [r.json() for r in rec.requests("/hook")]
        assert [b["groupKey"] for b in bodies] == [
            '{}:{alertname="a0"}',  # refused with 429
            '{}:{alertname="a0"}',
            '{}:{alertname="a1"}',
            '{}:{alertname="a2"}',
        ]
    assert outbox_states(db) == ["delivered"] * 3


def test_a_4xx_is_not_retried_and_a_5xx_holds_back_the_rest(state_target):
    db = open_state(state_target)
    with Recorder() as rec:
        config = receiver_config("webhook", url=rec.url("/hook"))
        queue_notifications(db, config, names(3))
        rec.respond("/hook", status=400, times=1)
        rec.respond("/hook", status=503)  # from the second request on
        report = Dispatcher(db, {"ops": [config]}, sleep=lambda s: None, budget=5).deliver()
        assert len(report.failed) == 1 and report.delivered == 0
        assert report.deferred == 2  # the second kept failing; the third waits behind it
        assert outbox_states(db) == ["failed", "pending", "pending"]
        assert len(rec.requests("/hook")) == 1 + 5  # one 400, then five tries of the second
        rec.respond("/hook", status=200)
        report = Dispatcher(db, {"ops": [config]}, sleep=lambda s: None).deliver()
        assert report.delivered == 2
        later = [r.json()["groupKey"] for r in rec.requests("/hook")][-2:]
        assert later == ['{}:{alertname="a1"}', '{}:{alertname="a2"}']


def test_a_receiver_that_stays_down_gets_five_attempts_and_four_pauses(tmp_path):
    """Nothing follows the last attempt in a run: pausing after it only delayed the run."""
    db = open_state(str(tmp_path / "state.db"))
    with Recorder() as rec:
        config = receiver_config("webhook", url=rec.url("/hook"))
        queue_notifications(db, config, names(1))
        rec.respond("/hook", status=503)
        pauses: list[float] = []
        report = Dispatcher(db, {"ops": [config]}, sleep=pauses.append).deliver()
        assert report.deferred == 1
        assert len(rec.requests("/hook")) == 5
        assert pauses == [0.5, 1.0, 2.0, 4.0]


def test_rate_limit_defers_past_the_budget(state_target):
    db = open_state(state_target)
    with Recorder() as rec:
        rec.respond("/robot", status=200, body={"errcode": 0, "errmsg": "ok"})
        config = receiver_config("wecom", url=rec.url("/robot?key=k"))
        queue_notifications(db, config, names(22))
        report = Dispatcher(db, {"ops": [config]}, sleep=lambda s: None, budget=2).deliver()
        assert report.delivered == 20  # WeCom allows 20 a minute per robot
        assert report.deferred == 2
        assert len(rec.requests("/robot")) == 20
        # a later run within the same minute still may not send
        report = Dispatcher(db, {"ops": [config]}, sleep=lambda s: None, budget=2).deliver()
        assert report.delivered == 0
        assert len(rec.requests("/robot")) == 20
