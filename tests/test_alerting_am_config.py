"""Alertmanager configurations as users copy them in, judged by the real `amtool` 0.25:
`check-config` for what is valid, `config routes test` for where alerts go. checkrun must
accept what Alertmanager accepts, reject what it rejects (exit 5 at file:line), and route
every label set to the same receivers."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from amtool import check_config, routes_test
from helpers import validate_text

from checkrunner.alerting.config import parse_alerting_file
from checkrunner.errors import Location

DEBIAN_CONFIG = Path("/etc/prometheus/alertmanager.yml")
RECEIVERS = """
receivers:
  - name: a
    webhook_configs: [{url: 'http://127.0.0.1:9/hook'}]
  - name: b
"""

ACCEPTED = {
    "legacy_match_and_timers": """
route:
  receiver: a
  group_by: [alertname, cluster]
  group_wait: 0
  group_interval: 1h30m
  repeat_interval: 1y
  routes:
    - match: {severity: critical, port: 8080}
      match_re: {service: '^(foo1|foo2|baz)$'}
      receiver: b
      group_wait: 10s
    - matchers: ['{env="prod", team=~"db|infra",}', 'x:y!="1"']
      receiver: b
      continue: true
""",
    "group_by_all": """
route:
  receiver: a
  routes: [{receiver: b, group_by: ['...'], matchers: ['a="1"']}]
""",
    "time_intervals": """
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: '22:00', end_time: '24:00'}, {start_time: '00:00', end_time: '06:00'}]
        weekdays: ['monday:friday', saturday]
        days_of_month: ['1:-1', '-7:-1', 15]
        months: ['january:march', 12]
        years: ['2024:2030']
        location: Europe/Berlin
mute_time_intervals:
  - name: old_style
    time_intervals: [{weekdays: [sunday]}]
route:
  receiver: a
  routes:
    - {receiver: b, matchers: ['a="1"'], mute_time_intervals: [nights, old_style]}
    - {receiver: b, matchers: ['a="2"'], active_time_intervals: [nights]}
""",
    "global_and_http_config": """
global:
  resolve_timeout: 10m
  smtp_smarthost: 'localhost:25'
  smtp_from: 'am@example.org'
  smtp_auth_username: am
  smtp_auth_password: secret
  smtp_require_tls: false
  slack_api_url: 'https://hooks.slack.com/services/T/B/X'
  http_config:
    basic_auth: {username: am, password_file: /etc/am/password}
    tls_config: {insecure_skip_verify: true, server_name: am.example, min_version: TLS12}
route: {receiver: a}
receivers:
  - name: a
    webhook_configs:
      - url: 'http://127.0.0.1:9/hook'
        http_config:
          authorization: {type: Bearer, credentials_file: /etc/am/token}
          proxy_url: 'http://127.0.0.1:3128'
    email_configs: [{to: 'ops@example.org'}]
    slack_configs: [{channel: '#ops'}]
""",
    "inhibit_legacy": """
route: {receiver: a}
inhibit_rules:
  - source_match: {severity: critical}
    target_match_re: {severity: 'warning|info'}
    equal: [alertname, cluster]
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
""",
}

# name -> (config, the line checkrun must point at)
REJECTED = {
    "continue_on_root": ("route: {receiver: a, continue: true}\n", 1),
    "matchers_on_root": ("route:\n  receiver: a\n  matchers: ['a=\"1\"']\n", 3),
    "match_on_root": ("route:\n  receiver: a\n  match: {a: '1'}\n", 3),
    "bad_group_by_label": ("route:\n  receiver: a\n  group_by: [bad-name]\n", 3),
    "duplicate_group_by": ("route:\n  receiver: a\n  group_by: [x, x]\n", 3),
    "group_by_all_and_more": ("route:\n  receiver: a\n  group_by: ['...', x]\n", 3),
    "bad_equal_label": (
        "route: {receiver: a}\ninhibit_rules:\n  - source_matchers: ['a=\"1\"']\n"
        "    equal: [bad-name]\n",
        4,
    ),
    "bare_number_duration": ("route:\n  receiver: a\n  group_wait: 30\n", 3),
    "fractional_duration": ("route:\n  receiver: a\n  repeat_interval: 1.5h\n", 3),
    "zero_repeat_interval": ("route:\n  receiver: a\n  repeat_interval: 0s\n", 3),
    "unknown_receiver": ("route:\n  receiver: a\n  routes: [{receiver: nobody}]\n", 3),
    "bad_match_label": ("route:\n  receiver: a\n  routes: [{receiver: b, match: {bad-x: 1}}]\n", 3),
    "bad_match_re": ("route:\n  receiver: a\n  routes: [{receiver: b, match_re: {a: '('}}]\n", 3),
    "matchers_not_a_list": (
        "route:\n  receiver: a\n  routes: [{receiver: b, matchers: 'a=\"1\"'}]\n",
        3,
    ),
    "undefined_interval": (
        "route:\n  receiver: a\n  routes: [{receiver: b, mute_time_intervals: [nope]}]\n",
        3,
    ),
    "root_interval": (
        "time_intervals: [{name: n, time_intervals: [{weekdays: [monday]}]}]\n"
        "route:\n  receiver: a\n  mute_time_intervals: [n]\n",
        4,
    ),
    "duplicate_interval": (
        "time_intervals:\n  - {name: n, time_intervals: []}\n  - {name: n, time_intervals: []}\n"
        "route: {receiver: a}\n",
        3,
    ),
    "times_backwards": (
        "time_intervals:\n  - name: n\n    time_intervals:\n"
        "      - times: [{start_time: '10:00', end_time: '09:00'}]\nroute: {receiver: a}\n",
        4,
    ),
    "days_mixed_signs": (
        "time_intervals:\n  - name: n\n    time_intervals:\n"
        "      - days_of_month: ['-3:5']\nroute: {receiver: a}\n",
        4,
    ),
    "bad_weekday": (
        "time_intervals:\n  - name: n\n    time_intervals:\n"
        "      - weekdays: [funday]\nroute: {receiver: a}\n",
        4,
    ),
    "months_backwards": (
        "time_intervals:\n  - name: n\n    time_intervals:\n"
        "      - months: ['march:january']\nroute: {receiver: a}\n",
        4,
    ),
    "bad_location": (
        "time_intervals:\n  - name: n\n    time_intervals:\n"
        "      - location: Mars/Olympus\nroute: {receiver: a}\n",
        4,
    ),
    "unknown_global_key": ("global:\n  smtp_fromm: x@example.org\nroute: {receiver: a}\n", 2),
    "misspelt_route_key": ("route:\n  receiver: a\n  group_wiat: 30s\n", 3),
    "two_authorizations": (
        "global:\n  http_config:\n    basic_auth: {username: u, password: p}\n"
        "    bearer_token: t\nroute: {receiver: a}\n",
        4,
    ),
}
DUPLICATE_RECEIVERS = "route: {receiver: a}\nreceivers:\n  - name: a\n  - name: a\n"


def _write(tmp_path: Path, text: str, with_receivers: bool = True) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(textwrap.dedent(text) + (RECEIVERS if with_receivers else ""))
    return path


def _parse(path: Path):
    return parse_alerting_file(str(path), Location(str(path), 1, 1))


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_what_alertmanager_accepts_checkrun_accepts(tmp_path, name):
    text = ACCEPTED[name]
    path = _write(tmp_path, text, with_receivers="receivers:" not in text)
    accepted, output = check_config(path)
    assert accepted, output
    spec, problems = _parse(path)
    assert not problems, "\n".join(str(p) for p in problems)
    assert spec is not None


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_what_alertmanager_rejects_checkrun_rejects_at_its_line(tmp_path, name):
    text, line = REJECTED[name]
    path = _write(tmp_path, text)
    accepted, _ = check_config(path)
    assert not accepted, f"amtool accepts {name}: the case is wrong"
    _, problems = _parse(path)
    assert problems, f"checkrun accepts {name}"
    assert problems[0].location.line == line, str(problems[0])


def test_duplicate_receiver_names_are_rejected(tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(DUPLICATE_RECEIVERS)
    assert not check_config(path)[0]
    _, problems = _parse(path)
    assert any("defined twice" in str(p) and p.location.line == 4 for p in problems)


@pytest.mark.parametrize("name", ["continue_on_root", "bare_number_duration", "bad_group_by_label"])
def test_rejections_are_exit_5_at_file_and_line(tmp_path, name):
    text, line = REJECTED[name]
    _write(tmp_path, text)
    done = validate_text(
        tmp_path,
        "plays:\n  - {name: p, hosts: localhost, checks: [{name: c, disk: {path: /}}]}\n"
        "alerting: alertmanager.yml\n",
        name="playbook.yml",
    )
    assert done.returncode == 5, done.stderr
    assert f"alertmanager.yml:{line}:" in done.stderr
    assert "hint:" in done.stderr and "Traceback" not in done.stderr


def test_debians_shipped_configuration_loads(tmp_path):
    assert DEBIAN_CONFIG.exists(), "prometheus-alertmanager ships /etc/prometheus/alertmanager.yml"
    shutil.copy(DEBIAN_CONFIG, tmp_path / "alertmanager.yml")
    done = validate_text(
        tmp_path,
        "plays:\n  - {name: p, hosts: localhost, checks: [{name: c, disk: {path: /}}]}\n"
        "alerting: alertmanager.yml\n",
        name="playbook.yml",
    )
    assert done.returncode == 0, done.stderr
    # What checkrun does not do is said, with the alternative, at its line.
    assert "alertmanager.yml:12:1: templates: checkrun does not read" in done.stderr
    assert "receiver 'team-X-pager': checkrun does not send to PagerDuty" in done.stderr
    assert "alertmanager_configs" in done.stderr
    spec, problems = _parse(tmp_path / "alertmanager.yml")
    assert not problems
    # global smtp_* fill in the email receivers, as in Alertmanager.
    [email] = spec.receivers["team-X-mails"]
    assert email.options["smarthost"] == "localhost:25"
    assert email.options["from"] == "alertmanager@example.org"
    assert spec.route.repeat_interval == 3 * 3600


ROUTING_CONFIG = """
route:
  receiver: default
  group_by: [alertname]
  routes:
    - match_re: {service: '^(foo1|foo2|baz)$'}
      receiver: team-x
      routes:
        - match: {severity: critical}
          receiver: team-x-pager
    - matchers: ['service="files"', 'env=~"prod|staging"']
      receiver: team-y
      continue: true
    - matchers: ['{team=~"db.*",severity!="info"}']
      receiver: db
      continue: true
      routes:
        - {matchers: ['owner="team-x"'], receiver: team-x-pager}
        - {matchers: ['owner=~"team-\\\\w+"'], receiver: team-y}
    - matchers: ['path="C:\\\\Temp"']
      receiver: windows
    - matchers: ["env='prod'"]
      receiver: quoted
    - matchers: ['instance=~"web-\\\\d+"']
      receiver: web
    - matchers: ['severity=""']
      receiver: no-severity
receivers:
  - {name: default}
  - {name: team-x}
  - {name: team-x-pager}
  - {name: team-y}
  - {name: db}
  - {name: windows}
  - {name: quoted}
  - {name: web}
  - {name: no-severity}
"""
LABEL_SETS = [
    {"service": "foo1", "severity": "critical"},
    {"service": "foo2", "severity": "warning"},
    {"service": "foo12", "severity": "warning"},
    {"service": "files", "env": "prod", "severity": "warning"},
    {"service": "files", "env": "dev", "severity": "warning"},
    {"service": "files", "env": "prod", "team": "dbops", "severity": "critical", "owner": "team-x"},
    {"team": "db", "severity": "info"},
    {"team": "db", "severity": "warning", "owner": "team-q"},
    {"team": "db", "severity": "warning", "owner": "team-é"},
    {"path": "C:\\Temp", "severity": "critical"},
    {"path": "C:Temp", "severity": "critical"},
    {"env": "prod", "severity": "critical"},
    {"env": "'prod'", "severity": "critical"},
    {"instance": "web-12", "severity": "critical"},
    {"instance": "web-d+", "severity": "critical"},
    {"instance": "web-١٢", "severity": "critical"},
    {"alertname": "x"},
    {"alertname": "x", "severity": "warning"},
]


def test_routing_matches_amtool_routes_test(tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(ROUTING_CONFIG)
    assert check_config(path)[0]
    spec, problems = _parse(path)
    assert not problems, problems
    for labels in LABEL_SETS:
        ours = [route.receiver for route in spec.route.match(labels)]
        assert ours == routes_test(path, labels), labels


def test_debian_routing_matches_amtool(tmp_path):
    spec, problems = _parse(DEBIAN_CONFIG)
    assert not problems
    for labels in [
        {"service": "foo1", "severity": "critical"},
        {"service": "baz"},
        {"service": "files", "severity": "critical"},
        {"service": "database", "owner": "team-Y"},
        {"service": "database", "owner": "team-Z"},
        {"service": "other"},
    ]:
        ours = [route.receiver for route in spec.route.match(labels)]
        assert ours == routes_test(DEBIAN_CONFIG, labels), labels
