"""Matchers, the routing tree and inhibition: Alertmanager's semantics, as pure functions."""

from __future__ import annotations

import pytest

from checkrunner.alerting.config import parse_am_duration
from checkrunner.alerting.matchers import parse_matcher, parse_matchers
from checkrunner.alerting.model import Alert, Notification, fingerprint
from checkrunner.alerting.route import InhibitRule, build_route


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ("severity=critical", {"severity": "critical"}, True),
        ('severity!="critical"', {"severity": "warning"}, True),
        ('team=~"db|infra"', {"team": "db"}, True),
        ('team=~"db|infra"', {"team": "dbx"}, False),  # anchored at both ends
        ('team!~"db|infra"', {"team": "web"}, True),
        ('team=""', {}, True),  # a missing label matches as empty
        ('host=~"web.*"', {"host": "web01"}, True),
    ],
)
def test_matchers(text, labels, expected):
    try:
        matcher = parse_matcher(text)
    except ValueError:
        assert expected is False
        return
    assert matcher.matches(labels) is expected


@pytest.mark.parametrize("bad", ["severity", "=x", 'a=~"("', "1a=b", ""])
def test_bad_matchers_say_what_is_wrong(bad):
    with pytest.raises(ValueError):
        parse_matcher(bad)


def _tree():
    root = build_route("default", (), ("alertname",), 3600.0, False, [], None)
    db = build_route("db", parse_matchers(['team="db"']), None, None, True, [], root)
    critical = build_route(
        "pager", parse_matchers(['severity="critical"']), ("...",), 300.0, False, [], root
    )
    web = build_route(None, parse_matchers(['team=~"web|api"']), None, None, False, [], root)
    root.routes = [db, critical, web]
    return root, db, critical, web


def test_first_match_wins_unless_continue():
    root, db, critical, web = _tree()
    assert root.match({"team": "db", "severity": "critical"}) == [db, critical]  # db continues
    assert root.match({"team": "web", "severity": "critical"}) == [critical]
    assert root.match({"team": "web"}) == [web]
    assert root.match({"team": "other"}) == [root]  # no child: the node itself


def test_children_inherit_and_keys_read_like_alertmanager():
    root, db, critical, web = _tree()
    assert web.receiver == "default" and web.group_by == ("alertname",)
    assert web.repeat_interval == 3600.0
    assert critical.repeat_interval == 300.0
    labels = {"alertname": "disk", "host": "h1", "team": "db"}
    assert db.group_key(labels) == '{}/{team="db"}:{alertname="disk"}'
    assert critical.group_labels(labels) == labels  # group_by: ['...'] is every label


def test_inhibition_needs_equal_labels_and_never_mutes_itself():
    rule = InhibitRule(
        parse_matchers(['severity="critical"']), parse_matchers(['severity="warning"']), ("host",)
    )
    critical = {"alertname": "down", "severity": "critical", "host": "h1"}
    warning_same_host = {"alertname": "slow", "severity": "warning", "host": "h1"}
    warning_other_host = {"alertname": "slow", "severity": "warning", "host": "h2"}
    sources = [critical, warning_same_host, warning_other_host]
    assert rule.inhibits(warning_same_host, sources)
    assert not rule.inhibits(warning_other_host, sources)
    assert not rule.inhibits(critical, sources)
    both = InhibitRule(parse_matchers(['a="1"']), parse_matchers(['a="1"']), ())
    one, two = {"a": "1", "n": "x"}, {"a": "1", "n": "y"}
    assert not both.inhibits(one, [one, two])  # matches both sides: not muted by its peers


def test_fingerprint_is_stable_and_order_free():
    a = fingerprint({"alertname": "x", "host": "h"})
    assert a == fingerprint({"host": "h", "alertname": "x"})
    assert a != fingerprint({"alertname": "x", "host": "h2"})
    assert len(a) == 16 and int(a, 16) >= 0
    assert fingerprint({}) == "cbf29ce484222325"  # FNV-1a 64 offset basis: an empty set


def test_webhook_payload_is_version_4():
    firing = Alert({"alertname": "x", "host": "a", "severity": "critical"}, {"message": "m"}, 0.0)
    gone = Alert({"alertname": "x", "host": "b", "severity": "critical"}, {}, 0.0, ends_at=60.0)
    payload = Notification("ops", "{}:{}", {"alertname": "x"}, [firing, gone]).to_webhook()
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["commonLabels"] == {"alertname": "x", "severity": "critical"}
    assert [a["status"] for a in payload["alerts"]] == ["firing", "resolved"]
    assert payload["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert payload["alerts"][1]["endsAt"] == "1970-01-01T00:01:00.000Z"
    assert payload["alerts"][0]["fingerprint"] == firing.fingerprint


def test_empty_labels_are_no_labels():
    alert = Alert({"alertname": "x", "team": "", "host": "h"})
    assert alert.labels == {"alertname": "x", "host": "h"}
    assert alert.fingerprint == fingerprint({"alertname": "x", "host": "h"})


def test_group_key_sorts_matchers_and_quotes_labels_as_go():
    root = build_route("r", (), ("a", "a0", "msg"), None, False, [], None)
    child = build_route(
        None,
        parse_matchers(['z="1"', 'b=~"x|y"', 'p="C:\\\\T\\"q\\"\\n"']),
        None,
        None,
        False,
        [],
        root,
    )
    labels = {"a": "1", "a0": "2", "msg": "tab\there\u00a0é", "z": "1"}
    # Go sorts the `name="value"` texts, so a0= comes before a=.
    assert child.group_key(labels) == (
        '{}/{b=~"x|y",p="C:\\\\T\\"q\\"\\n",z="1"}:{a0="2", a="1", msg="tab\\there\\u00a0é"}'
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1y", 365 * 86400.0), ("2w", 14 * 86400.0), ("1h30m", 5400.0), ("0", 0.0), ("500ms", 0.5)],
)
def test_alertmanager_durations(text, seconds):
    assert parse_am_duration(text) == seconds


@pytest.mark.parametrize("bad", ["30", 30, "1.5h", "1m1h", "", "5 m", "-1s", True])
def test_alertmanager_durations_need_units(bad):
    with pytest.raises(ValueError):
        parse_am_duration(bad)
