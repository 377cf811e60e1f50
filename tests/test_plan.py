"""build_plan, directly: which checks reach which hosts, with what, and what is refused first."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import plan_from_text

from checkrunner.errors import ConfigError
from checkrunner.plan import Plan

INVENTORY = """\
all:
  vars:
    port: 8080
  children:
    web:
      hosts:
        web1: {ansible_connection: local}
        web2: {ansible_connection: local, port: 9090}
    db:
      hosts:
        db1: {ansible_host: 127.0.0.9, ansible_become: yes}
"""


def make_plan(tmp_path: Path, playbook: str, inventory: str = INVENTORY, **options) -> Plan:
    return plan_from_text(tmp_path, playbook, inventory, **options)


def checks_by_host(plan: Plan) -> dict[str, list[str]]:
    return {hp.host.name: [c.identity.name for c in hp.checks] for hp in plan.hosts}


TWO_PLAYS = """\
- name: web
  hosts: web
  tags: [web]
  checks:
    - name: "port {{ port }} on {{ inventory_hostname }}"
      tcp: {host: 127.0.0.1, port: "{{ port }}"}
      tags: [net]
      retries: 2
      delay: 3s
      timeout: 4s
    - name: disk
      disk: /
      crit: "90%"
- name: everything
  hosts: all
  checks:
    - name: load
      load: {}
      crit: 4
"""


def test_hosts_get_their_plays_checks_rendered_with_their_own_variables(tmp_path):
    plan = make_plan(tmp_path, TWO_PLAYS)
    assert checks_by_host(plan) == {
        "web1": ["port 8080 on web1", "disk", "load"],
        "web2": ["port 9090 on web2", "disk", "load"],
        "db1": ["load"],
    }
    port_check = plan.hosts[1].checks[0]
    assert port_check.batch.args["port"] == 9090
    assert (port_check.retries, port_check.delay, port_check.batch.timeout) == (2, 3.0, 4.0)
    assert port_check.name_template == "port {{ port }} on {{ inventory_hostname }}"
    # check ids are "<play>.<check>", the same on every host
    assert [c.identity.check_id for c in plan.hosts[0].checks] == ["0.0", "0.1", "1.0"]
    assert plan.total_checks == 7


def test_thresholds_are_parsed_once_per_check(tmp_path):
    plan = make_plan(tmp_path, TWO_PLAYS)
    disk = plan.hosts[0].checks[1].identity
    (thresholds,) = disk.thresholds
    assert thresholds.crit_text == "90%" and thresholds.warn is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"tags": ["net"]}, {"web1": ["port 8080 on web1"], "web2": ["port 9090 on web2"]}),
        (
            {"tags": ["web"]},
            {"web1": ["port 8080 on web1", "disk"], "web2": ["port 9090 on web2", "disk"]},
        ),
        ({"skip_tags": ["web"]}, {"web1": ["load"], "web2": ["load"], "db1": ["load"]}),
        ({"limit": "web2"}, {"web2": ["port 9090 on web2", "disk", "load"]}),
        ({"tags": ["net"], "skip_tags": ["net"]}, {}),
    ],
)
def test_tags_and_limit_choose_checks_and_hosts(tmp_path, options, expected):
    plan = make_plan(tmp_path, TWO_PLAYS, **options)
    assert {name: checks for name, checks in checks_by_host(plan).items() if checks} == expected


def test_when_false_plans_a_skipped_check_with_the_condition_as_reason(tmp_path):
    plan = make_plan(
        tmp_path,
        """\
- hosts: web
  checks:
    - name: only on the 9090 host
      tcp: {host: 127.0.0.1, port: "{{ port }}"}
      when: port == 9090
""",
    )
    web1, web2 = (hp.checks[0] for hp in plan.hosts)
    assert web1.batch is None and web1.skip_reason == "when: port == 9090"
    assert web2.batch is not None and web2.skip_reason is None
    assert plan.hosts[0].runnable == [] and plan.hosts[1].runnable == [web2]


BECOME = """\
- hosts: all
  become: no
  checks:
    - name: play says no
      load: {}
    - name: check says yes
      load: {}
      become: yes
- hosts: all
  checks:
    - name: inventory decides
      load: {}
"""


@pytest.mark.parametrize(
    ("command_line", "expected"),
    [
        (False, {"web1": [False, True, False], "db1": [False, True, True]}),
        (True, {"web1": [True, True, True], "db1": [True, True, True]}),
    ],
)
def test_become_is_the_command_line_else_the_check_else_the_play_else_the_inventory(
    tmp_path, command_line, expected
):
    plan = make_plan(tmp_path, BECOME, become=command_line)
    become = {hp.host.name: [c.become for c in hp.checks] for hp in plan.hosts}
    assert {name: become[name] for name in expected} == expected


def test_a_pattern_matching_nothing_and_an_unsupported_connection_are_warnings(tmp_path):
    inventory = INVENTORY + "    other:\n      hosts:\n        win1: {ansible_connection: winrm}\n"
    plan = make_plan(
        tmp_path,
        "- hosts: nosuchgroup\n  checks: [{load: {}}]\n- hosts: other\n  checks: [{load: {}}]\n",
        inventory,
    )
    assert any("host pattern 'nosuchgroup' matched no hosts" in w for w in plan.warnings)
    assert any("win1" in w and "unsupported-connection" in w for w in plan.warnings)
    assert [hp.host.name for hp in plan.hosts] == ["win1"]  # planned, reported unreachable


def test_templated_connection_variables_are_rendered_and_their_secrets_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKRUN_TEST_SUDO", "pa55word")
    inventory = (
        "all:\n  hosts:\n    web1:\n      ansible_connection: local\n"
        '      ansible_become_password: "{{ env.CHECKRUN_TEST_SUDO }}"\n'
    )
    plan = make_plan(tmp_path, "- hosts: all\n  checks: [{load: {}}]\n", inventory)
    assert plan.hosts[0].host.become_password == "pa55word"
    assert "pa55word" in plan.secrets


def test_bad_input_is_refused_at_its_line_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError) as info:
        make_plan(
            tmp_path,
            "- hosts: all\n  checks:\n    - name: bad\n      load: {}\n      crit: \"{{ 'x' }}y\"\n",
        )
    assert "threshold 'xy' is not a number or range" in info.value.message
    assert info.value.location is not None and info.value.location.line == 5
    inventory = "all:\n  hosts:\n    h1: {ansible_host: 'evil;host', ansible_port: 22}\n"
    with pytest.raises(ConfigError) as info:
        make_plan(tmp_path, "- hosts: all\n  checks: [{load: {}}]\n", inventory)
    assert "h1" in info.value.message and info.value.location.line == 3
