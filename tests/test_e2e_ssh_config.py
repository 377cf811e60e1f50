"""`checkrun` with an ssh config file: aliases, and ProxyJump through a second sshd as bastion."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from conftest import run_checkrun
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
