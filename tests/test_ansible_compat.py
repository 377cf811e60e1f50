"""The inventory against the real peer: ansible-core (the `test` extra installs it) reads the
same files, and its `ansible-inventory --list` and `ansible-playbook --list-hosts` answers are
what checkrunner's groups, merged host vars and pattern selections must equal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import run_checkrun

from checkrunner.inventory import Inventory, load_inventories


@dataclass
class Case:
    files: dict[str, str]  # relative path -> text; the first one is the inventory source
    patterns: list[str] = field(default_factory=list)


CASES = {
    # point 19: [prod:children] before the child sections, as openshift-ansible writes them
    "children_before_their_sections": Case(
        {
            "hosts.ini": "[OSEv3:children]\nnodes\nmasters\netcd\n\n"
            "[OSEv3:vars]\nansible_user=root\n\n"
            "[masters]\nm1.example.com\nm2.example.com\n\n"
            "[etcd]\nm1.example.com\ne1.example.com\n\n"
            "[nodes]\nn1.example.com\nm2.example.com\nn2.example.com\n\n"
            "[prod:children]\ndb\nweb\n\n[web]\nw1\nw2\n\n[db]\nd1\n\n[other]\nd1\nw2\no1\n"
        },
        [
            "OSEv3",
            "OSEv3[0]",
            "OSEv3[-1]",
            "OSEv3[1:3]",
            "prod",
            "prod[0]",
            "prod[1:]",
            "other:&prod",
            "prod:!web",
            "etcd:nodes",
            "*.example.com:!masters",
        ],
    ),  # fmt: skip
    # point 20: an IPv6 host line with a port; a host written as a plain string in YAML
    "ipv6_ports_and_string_hosts": Case(
        {
            "hosts.ini": "[web]\n[2001:db8::10]:2222 role=front\nw1:2201\nw1:2202\n"
            "[2001:db8::11]:2223\n[web:vars]\nhttp_port=8080\n",
            "more.yml": "all:\n  children:\n    single:\n      hosts: only1.example.com\n"
            "    pair:\n      hosts: web[1:2].example.com:2200\n",
        },
        ["web", "single", "pair", "all", "web[0]"],
    ),
    # point 21: hosts Ansible reaches with other connection plugins still load and list
    "mixed_connections": Case(
        {
            "hosts.yml": "all:\n  children:\n    windows:\n      hosts:\n        win1:\n"
            "          ansible_connection: winrm\n          ansible_host: 192.0.2.10\n"
            "    switches:\n      hosts:\n        sw1:\n"
            "          ansible_connection: ansible.netcommon.network_cli\n"
            "    linux:\n      hosts:\n        app1:\n",
        },
        ["all", "windows:switches", "!linux"],
    ),
    # point 22: only the first of NAME, NAME.yml, NAME.yaml, NAME.json is read; priority
    # counts only from the inventory source; a host listed again keeps its first port
    "vars_files_and_priorities": Case(
        {
            "hosts.ini": "[web]\nw1:2201\nw2\nw1:2202\n[db]\nw2\nd1\n"
            "[web:vars]\nx=web\n[db:vars]\nx=db\n[high]\nd1\n[high:vars]\nansible_group_priority=7\n"
            "y=high\n[low]\nd1\n[low:vars]\ny=low\n",
            "group_vars/web/main.yml": "a: from-dir\n",
            "group_vars/web.yml": "a: from-yml\nb: from-yml\n",
            "group_vars/web.json": '{"b": "from-json", "c": "from-json"}',
            "group_vars/db.yml": "ansible_group_priority: 99\nz: db\n",
            "group_vars/db.json": '{"z": "json"}',
            "host_vars/w1.yaml": "h: yaml\n",
            "host_vars/w1.json": '{"h": "json"}',
        },
        ["web", "db", "all", "web:&db", "high:low"],
    ),
    # the docs' examples (intro_inventory.rst): a host directly under all, nested children
    "docs_yaml_example": Case(
        {
            "hosts.yml": "all:\n  hosts:\n    mail.example.com:\n  vars:\n    ntp: a\n"
            "  children:\n    webservers:\n      hosts:\n        foo.example.com:\n"
            "        bar.example.com:\n    dbservers:\n      hosts:\n        one.example.com:\n"
            "        two.example.com:\n        three.example.com:\n    east:\n      hosts:\n"
            "        foo.example.com:\n        one.example.com:\n        two.example.com:\n"
            "    west:\n      hosts:\n        bar.example.com:\n        three.example.com:\n"
            "    prod:\n      children:\n        east:\n    test:\n      children:\n"
            "        west:\n      vars:\n        ntp: b\n"
        },
        ["prod", "test", "prod:test", "webservers:&prod", "dbservers:!east", "webservers[1]"],
    ),
    # variable precedence: depth, ansible_group_priority, name order, group_vars and host_vars
    "precedence": Case(
        {
            "hosts.yml": "all:\n  vars: {v: all-inv, w: all-inv}\n  children:\n    a:\n"
            "      vars: {v: a, ansible_group_priority: 3}\n      hosts:\n        h1: {u: host}\n"
            "        h2:\n      children:\n        a1:\n          vars: {v: a1}\n"
            "          hosts:\n            h3:\n    b:\n      vars: {v: b, x: b}\n      hosts:\n"
            "        h1:\n        h3: {v: host3}\n    c:\n      vars: {v: c, x: c}\n"
            "      hosts:\n        h1:\n        h2:\n",
            "group_vars/all.yml": "w: all-file\n",
            "group_vars/b.yml": "x: b-file\n",
            "host_vars/h2.yml": "v: h2-file\n",
        },
        ["all", "a", "b:c", "a:&b", "!a1", "all[-1]", "a[0:1]"],
    ),
    # point 24 and others: localhost is the implicit host under each of its names; ranges,
    # literals and comments the way ansible-core 2.19 reads them
    "localhost_and_values": Case(
        {
            "hosts.ini": "[app]\napp[01:03] ratio=0.5 on=True items='[1, 2]'\n"
            "[app:vars]\nlabel=hello\nport=8080\n"
        },
        ["localhost", "127.0.0.1:localhost", "localhost,127.0.0.1", "app[1]", "app:localhost"],
    ),
}


# What `ansible PATTERN --list-hosts` prints, for many patterns in one interpreter: the adhoc
# CLI asks InventoryManager.list_hosts(), which is get_hosts() in inventory order. (The
# playbook CLI's --list-hosts puts the hosts in a set: its order means nothing.)
_SELECT = """
import json, sys
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
inventory = InventoryManager(loader=DataLoader(), sources=sys.argv[2:])
print(json.dumps([[h.name for h in inventory.list_hosts(p)] for p in json.loads(sys.argv[1])]))
"""


def _ansible(*args: str, cwd: Path, hash_seed: str | None = None) -> str:
    env = {
        **os.environ,
        **({"PYTHONHASHSEED": hash_seed} if hash_seed is not None else {}),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOME": str(cwd / ".ansible"),
        "ANSIBLE_CONFIG": str(cwd / "no-ansible.cfg"),
    }
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _ansible_listing(sources: list[Path], cwd: Path) -> dict:
    """`ansible-inventory -i ... --list`, without its 'profile' marker."""
    args = [arg for source in sources for arg in ("-i", str(source))]
    listing = json.loads(_ansible("-m", "ansible.cli.inventory", *args, "--list", cwd=cwd))
    listing["_meta"].pop("profile", None)
    return listing


def _ansible_selections(sources: list[Path], patterns: list[str], cwd: Path) -> list[list[str]]:
    """Ansible's hosts per pattern, asked under two string hash seeds. Ansible walks grandchild
    groups out of a set, so a pattern reaching groups two levels down through two parents
    (`all` when two groups have children) has no defined order: the cases avoid those, and
    this makes sure they do."""
    answers = [
        json.loads(
            _ansible(
                "-c", _SELECT, json.dumps(patterns), *map(str, sources), cwd=cwd, hash_seed=seed
            )
        )
        for seed in ("1", "2")
    ]
    for pattern, first, second in zip(patterns, *answers):
        assert first == second, f"Ansible has no defined host order for {pattern!r}"
    return answers[0]


def _write(case: Case, directory: Path) -> list[Path]:
    sources = []
    for relative, text in case.files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not relative.startswith(("group_vars", "host_vars")):
            sources.append(path)
    return sources


def _listing_of(inventory: Inventory) -> dict:
    """checkrunner's inventory in the shape `ansible-inventory --list` prints."""
    listing: dict = {
        "_meta": {"hostvars": {n: h.vars for n, h in inventory.hosts.items() if h.vars}}
    }
    for group in inventory.groups.values():
        entry = {}
        if group.hosts and group.name != "all":  # its --list never shows all's own hosts
            entry["hosts"] = list(group.hosts)
        if group.children:
            entry["children"] = list(group.children)
        if entry:
            listing[group.name] = entry
    return listing


@pytest.mark.parametrize("name", sorted(CASES))
def test_inventory_equals_what_ansible_reads(tmp_path, name):
    case = CASES[name]
    sources = _write(case, tmp_path)
    inventory = load_inventories([str(s) for s in sources])
    theirs = _ansible_listing(sources, tmp_path)
    assert _listing_of(inventory) == theirs
    if case.patterns:
        theirs_selected = _ansible_selections(sources, case.patterns, tmp_path)
        ours = [[h.name for h in inventory.select(p)] for p in case.patterns]
        assert ours == theirs_selected


def test_a_mixed_fleet_inventory_works_and_only_unsupported_hosts_are_unreachable(tmp_path):
    """Point 21: winrm and network_cli hosts load and list; a run reports them UNREACHABLE
    (unsupported-connection) and checks every other host."""
    (sources,) = [_write(CASES["mixed_connections"], tmp_path)]
    inventory = sources[0]
    text = inventory.read_text().replace("    linux:\n      hosts:\n        app1:\n", "")
    inventory.write_text(text + "    mine:\n      hosts:\n        localhost:\n"
                         "          ansible_connection: local\n")  # fmt: skip
    playbook = tmp_path / "p.yml"
    playbook.write_text("- name: p\n  hosts: all\n  checks: [{name: m, memory: {}}]\n")
    listed = run_checkrun(playbook, "-i", inventory, "--list-hosts")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["hosts", "(3):", "win1", "sw1", "localhost"]
    started = time.monotonic()
    done = run_checkrun(playbook, "-i", inventory, "-r", "json:-", "--wait", "90s")
    assert done.returncode == 4, done.stdout + done.stderr
    assert time.monotonic() - started < 60  # --wait does not wait for what can never come
    hosts = {h["host"]: h for h in json.loads(done.stdout)["hosts"]}
    for name, connection in (("win1", "winrm"), ("sw1", "ansible.netcommon.network_cli")):
        assert hosts[name]["reachable"] is False
        assert hosts[name]["reason"] == "unsupported-connection"
        assert f"'{connection}' is not supported" in hosts[name]["message"]
    assert hosts["localhost"]["reachable"] is True
    assert hosts["localhost"]["checks"][0]["status"] == "OK"
