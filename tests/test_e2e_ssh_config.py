"""`checkrun` with an ssh config file: aliases, and ProxyJump through a second sshd as bastion."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator

import pytest
from helpers import run_checkrun
from sshd import SSHServer, running_sshd, sshd_available

if not sshd_available() and os.geteuid() != 0:
    pytest.skip(
        "needs /usr/sbin/sshd (scripts/test.sh installs it as root)", allow_module_level=True
    )

BASTION = "127.0.0.41"
TARGETS = ["127.0.0.42", "127.0.0.43", "127.0.0.44", "127.0.0.45"]


@pytest.fixture(scope="module")
def bastion(tmp_path_factory) -> Iterator[SSHServer]:
    with running_sshd(tmp_path_factory.mktemp("bastion"), [BASTION]) as server:
        yield server


@pytest.fixture(scope="module")
def targets(tmp_path_factory) -> Iterator[SSHServer]:
    with running_sshd(tmp_path_factory.mktemp("targets"), TARGETS) as server:
        yield server


def test_aliases_and_proxy_jump_through_a_bastion(tmp_path, bastion, targets):
    aliases = [f"app-{n}" for n in range(1, len(TARGETS) + 1)]
    config = [
        "Host bastion",
        f"  HostName {BASTION}",
        f"  Port {bastion.port}",
        f"  User {bastion.user}",
        f"  IdentityFile {bastion.client_key}",
        "Host app-*",
        f"  User {targets.user}",
        f"  Port {targets.port}",
        f"  IdentityFile {targets.client_key}",
        "  ProxyJump bastion",
    ]
    for alias, address in zip(aliases, TARGETS):
        config += [f"Host {alias}", f"  HostName {address}"]
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("\n".join(config) + "\n")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        "\n".join(
            [bastion.known_hosts_line(BASTION), *(targets.known_hosts_line(a) for a in TARGETS)]
        )
        + "\n"
    )
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- name: behind the bastion\n  hosts: all\n  checks:\n"
        "    - {name: hostname, command: {cmd: hostname}}\n"
        "    - {name: memory, memory: {}}\n"
    )
    accepted_before = bastion.log_text().count("Accepted publickey")
    done = run_checkrun(
        playbook,
        "-i",
        ",".join(aliases) + ",",
        "--ssh-config",
        ssh_config,
        "--known-hosts",
        known_hosts,
        "-r",
        "json:-",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    report = json.loads(done.stdout)
    assert [h["host"] for h in report["hosts"]] == aliases
    assert all(c["status"] == "OK" for h in report["hosts"] for c in h["checks"])
    # every target went through the bastion, over one shared connection to it
    assert bastion.log_text().count("Accepted publickey") - accepted_before == 1
    assert targets.log_text().count("Accepted publickey") >= len(TARGETS)


# --- hostile names never reach a shell (CVE-2023-51385's class, issue 9 point 1) ------------------

BRIDGE = """\
import json, os, socket, sys, threading
record, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(record, "a") as handle:
    handle.write(json.dumps(sys.argv[4:]) + "\\n")
sock = socket.create_connection((address, port))
def upstream():
    while True:
        data = os.read(0, 65536)
        if not data:
            sock.shutdown(socket.SHUT_WR)
            return
        sock.sendall(data)
threading.Thread(target=upstream, daemon=True).start()
while True:
    data = sock.recv(65536)
    if not data:
        break
    os.write(1, data)
"""


def _proxy_command(tmp_path, record) -> str:
    """A ProxyCommand that records the words it got (%h %p %r %n) and bridges to the target sshd."""
    bridge = tmp_path / "bridge.py"
    bridge.write_text(BRIDGE)
    return f"{sys.executable} {bridge} {record} {TARGETS[0]} %p %h %p %r %n"


def _memory_playbook(tmp_path):
    playbook = tmp_path / "p.yml"
    playbook.write_text("- name: m\n  hosts: all\n  checks:\n    - {name: memory, memory: {}}\n")
    return playbook


def test_proxy_command_from_ssh_config_gets_quoted_values_in_force(tmp_path, targets):
    """%h, %p and %r are the inventory's values (not the ssh config's), each one shell word:
    '~root' reaches the command as written, where an unquoted %h would have become /root."""
    record = tmp_path / "argv.jsonl"
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host *\n  User nobody-from-config\n  Port 1\n  IdentityFile {targets.client_key}\n"
        f"  ProxyCommand {_proxy_command(tmp_path, record)}\n"
    )
    inventory = tmp_path / "inv.ini"
    inventory.write_text(
        f"~root ansible_port={targets.port} ansible_user={targets.user}\n"
        f"app%p.example ansible_port={targets.port} ansible_user={targets.user}\n"
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        targets.known_hosts_line("~root") + "\n" + targets.known_hosts_line("app%p.example") + "\n"
    )
    done = run_checkrun(
        _memory_playbook(tmp_path), "-i", inventory, "--ssh-config", config,
        "--known-hosts", known_hosts, "-r", "json:-",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    recorded = sorted(json.loads(line) for line in record.read_text().splitlines())
    port = str(targets.port)
    assert recorded == [
        ["app%p.example", port, targets.user, "app%p.example"],  # expanded once, never again
        ["~root", port, targets.user, "~root"],
    ]


HOSTILE = "x$(touch${IFS}%s)"


@pytest.mark.parametrize("where", ["ssh_config", "ansible_ssh_common_args"])
def test_a_hostile_host_name_is_refused_at_its_inventory_line_and_runs_nothing(
    tmp_path, targets, where
):
    marker = tmp_path / "PWNED"
    record = tmp_path / "argv.jsonl"
    proxy = _proxy_command(tmp_path, record)
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n  ProxyCommand {proxy}\n" if where == "ssh_config" else "")
    common = (
        "" if where == "ssh_config" else f" ansible_ssh_common_args=\"-o ProxyCommand='{proxy}'\""
    )
    inventory = tmp_path / "inv.ini"
    inventory.write_text(f"[web]\nweb1 ansible_port={targets.port}\n{HOSTILE % marker}{common}\n")
    done = run_checkrun(_memory_playbook(tmp_path), "-i", inventory, "--ssh-config", config)
    assert done.returncode == 5, done.stdout + done.stderr
    assert f"{inventory}:3:1: host 'x$(touch" in done.stderr
    assert "contains '$'" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists() and not record.exists()  # nothing ran, not even for web1


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ansible_host", HOSTILE, "ansible_host 'x$(touch${IFS}"),
        (
            "ansible_user",
            "u;touch${IFS}%s",
            "ansible_user must be a user name ssh accepts; it contains ';'",
        ),
        ("ansible_user", "-oProxyCommand=touch${IFS}%s", "starts with '-'"),
        (
            "ansible_port",
            "ssh",
            "ansible_port must be a port number between 1 and 65535, got 'ssh'",
        ),
        ("ansible_port", "70000", "ansible_port must be a port number"),
    ],
)
def test_hostile_or_bad_connection_variables_are_refused_at_their_line(
    tmp_path, targets, variable, value, message
):
    marker = tmp_path / "PWNED"
    record = tmp_path / "argv.jsonl"
    proxy = _proxy_command(tmp_path, record)
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  hosts:\n    web1:\n"
        f"      ansible_ssh_common_args: \"-o ProxyCommand='{proxy}'\"\n"
        f"      {variable}: '{value.replace('%s', str(marker))}'\n"
    )
    done = run_checkrun(_memory_playbook(tmp_path), "-i", inventory, "--ssh-config", "none")
    assert done.returncode == 5, done.stdout + done.stderr
    assert f"{inventory}:5:7: host 'web1': " in done.stderr and message in done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists() and not record.exists()
