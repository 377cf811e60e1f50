"""Executable inventory scripts (Ansible's `--list` / `--host` JSON protocol) and the JSON and
YAML `ansible-inventory --list` prints, as `-i` sources: real scripts written here, read by
checkrunner and by the real ansible-inventory, which must agree; failing, hanging, lying
scripts are exit 5 naming the script."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import run_checkrun
from test_ansible_compat import _ansible, _ansible_listing, _listing_of

from checkrunner.errors import ConfigError
from checkrunner.inventory import load_inventories

LISTING = {
    "web": {"hosts": ["web1", "web2"], "vars": {"http_port": 8080}},
    "db": {"hosts": ["db1"], "children": ["replicas"]},
    "replicas": {"hosts": ["db2"]},
    "prod": {"children": ["web", "db"], "vars": {"env": "prod", "tier": 1}},
}
HOSTVARS = {
    "web1": {"ansible_host": "10.0.0.1", "rack": "a"},
    "web2": {"ansible_port": 2222},
    "db1": {"ansible_user": "postgres", "shards": [1, 2]},
    "db2": {},
}


def write_script(directory: Path, body: str, name: str = "inventory.py") -> Path:
    """An executable Python inventory script; `body` sees `sys.argv` and the data above."""
    script = directory / name
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys, time\n"
        f"LISTING = {json.dumps(LISTING)!r}\nHOSTVARS = {json.dumps(HOSTVARS)!r}\n"
        + textwrap.dedent(body)
    )
    script.chmod(0o755)
    return script


WITH_META = """
    if sys.argv[1:] == ["--list"]:
        listing = json.loads(LISTING)
        listing["_meta"] = {"hostvars": json.loads(HOSTVARS)}
        print(json.dumps(listing))
    else:
        sys.exit("called with " + " ".join(sys.argv[1:]))
"""

WITHOUT_META = """
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log"), "a") as log:
        log.write(" ".join(sys.argv[1:]) + "\\n")
    if sys.argv[1:] == ["--list"]:
        print(LISTING)
    elif sys.argv[1] == "--host":
        print(json.dumps(json.loads(HOSTVARS)[sys.argv[2]]))
"""


@pytest.mark.parametrize("body", [WITH_META, WITHOUT_META], ids=["with-_meta", "without-_meta"])
def test_a_script_gives_what_ansible_reads_from_it(tmp_path, body):
    script = write_script(tmp_path, body)
    inventory = load_inventories([str(script)])
    calls = (tmp_path / "calls.log").read_text().splitlines() if body is WITHOUT_META else []
    assert _listing_of(inventory) == _ansible_listing([script], tmp_path)
    assert inventory.hosts["web1"].vars["http_port"] == 8080
    assert inventory.hosts["db1"].vars == {"env": "prod", "tier": 1, **HOSTVARS["db1"]}
    assert [h.name for h in inventory.select("prod:!web")] == ["db1", "db2"]
    assert inventory.hosts["web2"].port == 2222
    if body is WITHOUT_META:
        assert calls[0] == "--list"
        assert sorted(calls[1:]) == sorted(f"--host {host}" for host in HOSTVARS)


def test_a_run_with_a_script_checks_its_hosts(tmp_path):
    script = write_script(
        tmp_path,
        """
        print(json.dumps({"local": {"hosts": ["a", "b"], "vars": {"ansible_connection": "local",
                          "limit": 7}}, "_meta": {"hostvars": {"b": {"limit": 0}}}}))
        """,
    )
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- name: p\n  hosts: local\n  checks:\n"
        "    - {name: n, command: {cmd: 'echo 3', shell: true}, crit: '{{ limit }}'}\n"
    )
    done = run_checkrun(playbook, "-i", script, "--no-state", "-r", "json")
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    assert [(h["host"], h["status"]) for h in report["hosts"]] == [("a", "OK"), ("b", "CRITICAL")]


def _refused(script: Path, phrase: str, env: dict | None = None) -> str:
    playbook = script.parent / "p.yml"
    playbook.write_text("- name: p\n  hosts: all\n  checks: [{name: m, memory: {}}]\n")
    done = run_checkrun(playbook, "-i", script, "-r", "json:-", env=env, timeout=60)
    assert done.returncode == 5, done.stdout + done.stderr
    assert phrase in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    return done.stderr


def test_a_failing_script_is_exit_5_with_its_status_and_last_error_line(tmp_path):
    script = write_script(
        tmp_path, "print('starting', file=sys.stderr)\nsys.exit('boom: token expired')\n"
    )
    _refused(
        script,
        f"{script}: inventory script `{script} --list` failed with exit status 1: "
        "boom: token expired",
    )


def test_a_hanging_script_is_stopped_at_its_deadline(tmp_path):
    script = write_script(
        tmp_path,
        """
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pid"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)
        """,
    )
    _refused(
        script,
        f"inventory script `{script} --list` did not finish within 1.5s",
        env={"CHECKRUN_INVENTORY_SCRIPT_TIMEOUT": "1.5"},
    )
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):  # killed, not left running
        os.kill(pid, 0)


def test_a_script_whose_output_is_not_json_is_exit_5_at_the_output_line(tmp_path):
    script = write_script(tmp_path, 'print(\'{"web": {"hosts": ["a"]},\\n "db": oops}\')\n')
    _refused(script, f"{script} --list (its output):2:8: `{script} --list` printed no valid JSON")


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        ("print('[1, 2]')", "printed a list, not a JSON object of groups"),
        (
            "print(json.dumps({'web': {'hosts': ['a']}}) if sys.argv[1] == '--list' else '[]')",
            "--host a` printed a list, not a JSON object of the host's variables",
        ),
        (
            "print(json.dumps({'web': {'hosts': 'a'}, '_meta': {'hostvars': {}}}))",
            "hosts of group 'web' must be a list of names",
        ),
    ],
)
def test_a_script_that_breaks_the_protocol_is_exit_5(tmp_path, body, phrase):
    _refused(write_script(tmp_path, body + "\n"), phrase)


def test_a_host_name_from_a_script_gets_the_checks_of_any_host_name(tmp_path):
    """What a script prints is untrusted: a name ssh would run as a command is refused
    before anything runs, as in a YAML inventory."""
    script = write_script(
        tmp_path,
        "print(json.dumps({'web': {'hosts': ['ok1', 'x$(touch${IFS}pwned)']}, '_meta': {'hostvars': {}}}))\n",
    )
    _refused(script, "the host name contains '$'")
    assert not (tmp_path / "pwned").exists()


def test_an_executable_yaml_file_is_still_read_as_yaml(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    web1: {}\n")
    inventory.chmod(0o755)  # checked out with its execute bit, as happens
    assert list(load_inventories([str(inventory)]).hosts) == ["web1"]


def test_a_bad_timeout_setting_is_exit_5(tmp_path):
    script = write_script(tmp_path, WITH_META)
    _refused(
        script,
        "CHECKRUN_INVENTORY_SCRIPT_TIMEOUT='soon': not a number of seconds",
        env={"CHECKRUN_INVENTORY_SCRIPT_TIMEOUT": "soon"},
    )


# ------------------------------------------------- what `ansible-inventory --list` prints


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_the_listing_ansible_inventory_prints_is_an_inventory(tmp_path, form):
    source = tmp_path / "hosts.ini"
    source.write_text(
        "[web]\nweb[1:3] http_port=80\n[db]\ndb1 ansible_port=2200\n"
        "[prod:children]\nweb\ndb\n[prod:vars]\nenv=prod\n"
    )
    args = ["-m", "ansible.cli.inventory", "-i", str(source), "--list"]
    printed = _ansible(*args, *(["--yaml"] if form == "yaml" else []), cwd=tmp_path)
    listing = tmp_path / "exported" / f"inventory.{form}"
    listing.parent.mkdir()
    listing.write_text(printed)
    original, exported = load_inventories([str(source)]), load_inventories([str(listing)])
    assert {n: h.vars for n, h in exported.hosts.items()} == {
        n: h.vars for n, h in original.hosts.items()
    }
    for pattern in ("web", "prod:!db", "db"):
        assert [h.name for h in exported.select(pattern)] == [
            h.name for h in original.select(pattern)
        ]
    assert exported.hosts["db1"].port == 2200


def test_a_script_with_an_error_in_a_listing_is_named_in_the_error(tmp_path):
    script = write_script(
        tmp_path,
        "print(json.dumps({'web': {'hosts': ['a'], 'children': 'x'}, '_meta': {'hostvars': {}}}))\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_inventories([str(script)])
    assert (
        f"{script} --list (json.tool --indent 1):6:15: "
    )  # `"children": "x"` in str(caught.value)
    assert "children of group 'web' must be a list of names" in str(caught.value)
