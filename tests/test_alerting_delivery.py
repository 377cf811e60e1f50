"""The outbox dispatcher against a recording receiver: Retry-After, backoff, 4xx, order, rate limits."""

from __future__ import annotations

import time

from recorder import Recorder

from checkrunner.alerting.config import ReceiverConfig
from checkrunner.alerting.delivery import Dispatcher
from checkrunner.alerting.engine import enqueue
from checkrunner.alerting.model import Alert, Notification
from checkrunner.alerting.receivers import get
from checkrunner.config.normalize import OptionSet, check_option_set
from checkrunner.errors import Location
from checkrunner.state.alerts import AlertStore
from checkrunner.state.db import open_state


def _config(kind: str, **options) -> ReceiverConfig:
    module = get(kind)
    owner = OptionSet(f"{kind} test", module.OPTIONS)
    values, problems = check_option_set(owner, options, Location("t.yml"), keep_templates=False)
    assert problems == []
    return ReceiverConfig("ops", kind, 0, values, Location("t.yml"))


def _queue(db, config: ReceiverConfig, count: int) -> None:
    with db.transaction() as connection:
        for n in range(count):
            alert = Alert({"alertname": f"a{n}", "host": "h", "severity": "critical"}, {}, 1.0)
            notification = Notification("ops", f'{{}}:{{alertname="a{n}"}}', {}, [alert])
            enqueue(AlertStore(connection), config, config.options, notification, time.time())


def _states(db) -> list[str]:
    return [row[0] for row in db.connection.execute("SELECT state FROM outbox ORDER BY id")]


def test_retry_after_is_honoured_and_order_kept(tmp_path):
    db = open_state(str(tmp_path / "state.db"))
    with Recorder() as rec:
        config = _config("webhook", url=rec.url("/hook"))
        _queue(db, config, 3)
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
    assert _states(db) == ["delivered"] * 3


def test_a_4xx_is_not_retried_and_a_5xx_holds_back_the_rest(tmp_path):
    db = open_state(str(tmp_path / "state.db"))
    with Recorder() as rec:
        config = _config("webhook", url=rec.url("/hook"))
        _queue(db, config, 3)
        rec.respond("/hook", status=400, times=1)
        rec.respond("/hook", status=503)  # from the second request on
        report = Dispatcher(db, {"ops": [config]}, sleep=lambda s: None, budget=5).deliver()
        assert len(report.failed) == 1 and report.delivered == 0
        assert report.deferred == 2  # the second kept failing; the third waits behind it
        assert _states(db) == ["failed", "pending", "pending"]
        assert len(rec.requests("/hook")) == 1 + 5  # one 400, then five tries of the second
        rec.respond("/hook", status=200)
        report = Dispatcher(db, {"ops": [config]}, sleep=lambda s: None).deliver()
        assert report.delivered == 2
        later = [r.json()["groupKey"] for r in rec.requests("/hook")][-2:]
        assert later == ['{}:{alertname="a1"}', '{}:{alertname="a2"}']


def test_rate_limit_defers_past_the_budget(tmp_path):
    db = open_state(str(tmp_path / "state.db"))
    with Recorder() as rec:
        rec.respond("/robot", status=200, body={"errcode": 0, "errmsg": "ok"})
        config = _config("wecom", url=rec.url("/robot?key=k"))
        _queue(db, config, 22)
        report = Dispatcher(db, {"ops": [config]}, sleep=lambda s: None, budget=2).deliver()
        assert report.delivered == 20  # WeCom allows 20 a minute per robot
        assert report.deferred == 2
        assert len(rec.requests("/robot")) == 20
        # a later run within the same minute still may not send
        report = Dispatcher(db, {"ops": [config]}, sleep=lambda s: None, budget=2).deliver()
        assert report.delivered == 0
        assert len(rec.requests("/robot")) == 20
