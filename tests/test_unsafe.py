"""Ansible's `!unsafe`: values that hold Alertmanager/Prometheus templates are data, never Jinja2."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_checkrun
from recorder import Recorder

from checkrunner.alerting.receivers.format import render_template
from checkrunner.config import Templater
from checkrunner.errors import Location
from checkrunner.inventory import load_inventories
from checkrunner.unsafe import UnsafeText
from checkrunner.yamlio.marked import MarkedSeq, parse_yaml

ALERT_TEMPLATE = "{{ $labels.instance }} down"  # Go template syntax: a Jinja2 syntax error


def test_the_tag_marks_every_string_under_it_and_keeps_the_marks():
    data, problems = parse_yaml(
        "a: !unsafe '{{ $labels.instance }} down'\n"
        "b: !unsafe\n  - '{{ x'\n  - {c: '{% if %}', n: 3}\n"
        "c: '{{ plain }}'\n",
        "p.yml",
    )
    assert problems == []
    assert data["a"] == ALERT_TEMPLATE and isinstance(data["a"], UnsafeText)
    assert isinstance(data["b"], MarkedSeq) and data["b"].item_locations[1].line == 4
    assert isinstance(data["b"][0], UnsafeText) and isinstance(data["b"][1]["c"], UnsafeText)
    assert data["b"][1]["n"] == 3
    assert not isinstance(data["c"], UnsafeText)


def test_unsafe_values_are_never_rendered_even_through_other_variables():
    templater = Templater(environ={})
    variables = {"summary": UnsafeText(ALERT_TEMPLATE), "line": "alert: {{ summary }}!"}
    where = Location("p.yml", 1, 1)
    assert templater.render(UnsafeText(ALERT_TEMPLATE), variables, where) == ALERT_TEMPLATE
    assert templater.render("{{ summary }}", variables, where) == ALERT_TEMPLATE
    assert templater.render("{{ line }}", variables, where) == f"alert: {ALERT_TEMPLATE}!"


def test_a_receiver_option_written_unsafe_is_sent_as_written():
    raw = UnsafeText("{{ .CommonLabels.alertname }} fired")
    assert render_template(raw, {}, "title") == "{{ .CommonLabels.alertname }} fired"


def test_unsafe_in_inventories_is_never_templated(tmp_path: Path):
    (tmp_path / "hosts.yml").write_text(
        f"all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      alert_text: !unsafe '{ALERT_TEMPLATE}'\n"
    )
    host = load_inventories([str(tmp_path / "hosts.yml")]).get_host("localhost")
    assert isinstance(host.vars["alert_text"], UnsafeText)


def test_a_run_and_validate_keep_unsafe_values_as_written(tmp_path: Path):
    """Before: 'template syntax error' and exit 5 for each of these checks."""
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        f"from_inventory: !unsafe '{ALERT_TEMPLATE}'\n"
    )
    (tmp_path / "hosts.ini").write_text("localhost ansible_connection=local\n")
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- name: unsafe\n  hosts: localhost\n  vars:\n"
        f"    summary: !unsafe '{ALERT_TEMPLATE}'\n"
        "  checks:\n"
        "    - {name: from play vars, command: {cmd: [echo, '{{ summary }}']}}\n"
        "    - {name: written in place, command: {cmd: !unsafe [echo, '{{ .Status }}']}}\n"
        "    - {name: from inventory, command: {cmd: [echo, '{{ from_inventory }}']}}\n"
    )
    inventory = tmp_path / "hosts.ini"
    validated = run_checkrun("validate", playbook, "-i", inventory)
    assert validated.returncode == 0, validated.stderr
    done = run_checkrun(playbook, "-i", inventory, "-r", "json:-")
    assert done.returncode == 0, done.stdout + done.stderr
    (host,) = json.loads(done.stdout)["hosts"]
    printed = {check["name"]: check["facts"]["stdout"].strip() for check in host["checks"]}
    assert printed == {
        "from play vars": ALERT_TEMPLATE,
        "written in place": "{{ .Status }}",
        "from inventory": ALERT_TEMPLATE,
    }


def test_a_receiver_template_written_unsafe_passes_validate_and_is_sent_as_written(tmp_path):
    """Point 12 refuses Go template syntax in receiver options; under `!unsafe` it is the
    user's deliberate text (for a system that reads it later): checked by nothing, sent as is."""
    raw = "{{ .CommonLabels.alertname }} fired"
    with Recorder() as recorder:
        playbook = tmp_path / "alerts.yml"
        playbook.write_text(
            "plays:\n  - name: app\n    hosts: localhost\n"
            "    checks: [{name: m, memory: {}}]\n"
            "receivers:\n  - name: ops\n    webhook_configs:\n"
            f"      - url: {recorder.url('/hook')}\n"
            f"        payload: !unsafe '{raw}'\n"
            "route: {receiver: ops}\n"
        )
        validated = run_checkrun("validate", playbook)
        assert validated.returncode == 0, validated.stderr
        done = run_checkrun("notify", playbook, "--test", "ops", "--state", tmp_path / "s.db")
        assert done.returncode == 0, done.stdout + done.stderr
        [request] = recorder.requests("/hook")
        assert request.body.decode() == raw
