"""Alert identity against the real Alertmanager 0.25: the fingerprint of an alert (labels
with empty values dropped) and the groupKey of its group (route matchers sorted and
escaped, group labels quoted as Go does) must be what Alertmanager itself computes."""

from __future__ import annotations

import time

import pytest
from alertmanager import (
    HOOK_ROUTE,
    active_alerts,
    alert_groups,
    alertmanager_binary,
    running_alertmanager,
)
from helpers import wait_for
from recorder import Recorder

from checkrunner.alerting.config import parse_alerting_file
from checkrunner.alerting.model import Alert, Notification
from checkrunner.alerting.receivers import alertmanager as am_receiver
from checkrunner.errors import Location

CONFIG = (
    HOOK_ROUTE
    + r"""  routes:
    - matchers: ['path="C:\\Temp \"x\""', 'b=~"x|y"', "a!='q'"]
      match: {zone: eu}
      receiver: hook
      group_by: [alertname, a0, a, msg]
    - matchers: ['{msg="l1\nl2",}']
      receiver: hook
      group_by: ['...']
receivers:
  - name: hook
    webhook_configs: [{url: 'HOOK', send_resolved: true}]
"""
)

ALERTS = [
    {
        "alertname": "first",
        "path": 'C:\\Temp "x"',
        "b": "x",
        "a": "1",
        "a0": "2",
        "zone": "eu",
        "msg": "tab\there é\u00a0\x01",
        "empty": "",
    },
    {"alertname": "second", "msg": "l1\nl2", "quote": 'say "hi"', "empty": ""},
    {"alertname": "third", "host": "h1", "empty": ""},
]


def test_fingerprints_and_group_keys_are_alertmanagers(tmp_path):
    if alertmanager_binary() is None:
        pytest.fail("prometheus-alertmanager is missing: scripts/test.sh installs it")
    with Recorder() as hook:
        config = CONFIG.replace("HOOK", hook.url("/am"))
        with running_alertmanager(tmp_path / "am", config) as url:
            alerts = [Alert(labels=dict(labels), starts_at=time.time()) for labels in ALERTS]
            notification = Notification("am", "test", {}, alerts)
            options = {"urls": [url]}
            [payload] = am_receiver.render(options, notification)
            delivery = am_receiver.send(options, payload, timeout=10)
            assert delivery.ok, delivery.detail

            theirs = {
                a["labels"]["alertname"]: a
                for a in wait_for(
                    lambda: len(active_alerts(url)) == 3 and active_alerts(url), "Alertmanager"
                )
            }
            messages = wait_for(
                lambda: len(hook.requests("/am")) >= 3 and hook.requests("/am"), "Alertmanager"
            )
            groups = alert_groups(url)

    spec, problems = parse_alerting_file(
        str(tmp_path / "am" / "alertmanager.yml"), Location("am", 1, 1)
    )
    assert not problems, problems
    group_keys = {
        m.json()["alerts"][0]["labels"]["alertname"]: m.json()["groupKey"] for m in messages
    }
    for alert in alerts:
        name = alert.labels["alertname"]
        assert "empty" not in alert.labels  # dropped, as Alertmanager drops it
        assert alert.fingerprint == theirs[name]["fingerprint"]
        assert alert.labels == theirs[name]["labels"]
        [route] = spec.route.match(alert.labels)
        assert route.group_key(alert.labels) == group_keys[name]
        assert any(g["labels"] == route.group_labels(alert.labels) for g in groups)
    # The escaping is really exercised: a sorted, escaped matcher path and Go-quoted labels.
    assert group_keys["first"].startswith(
        '{}/{a!="\'q\'",b=~"x|y",path="C:\\\\Temp \\"x\\"",zone="eu"}:'
    )
    assert "\\n" in group_keys["second"] and "\\x01" in group_keys["first"]
