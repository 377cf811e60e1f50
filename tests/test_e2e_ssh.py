"""`checkrun` over real OpenSSH: a 32-host fan-out with every module, and failing hosts mixed in."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from helpers import run_checkrun
from sshd import SSHServer, running_sshd, sshd_available

if not sshd_available() and os.geteuid() != 0:
    pytest.skip(
        "needs /usr/sbin/sshd (scripts/test.sh installs it as root)", allow_module_level=True
    )

GROUPS = [
    [f"127.0.{block}.{i}" for i in range(1, 17)] for block in (21, 22)
]  # 2 sshd x 16 addresses


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[list[SSHServer]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                running_sshd(
                    tmp_path_factory.mktemp(f"sshd{n}"), addresses, "MaxStartups 200:30:400\n"
                )
            )
            for n, addresses in enumerate(GROUPS)
        ]


def inventory_line(name: str, server: SSHServer, address: str, **extra: str) -> str:
    settings = {
        "ansible_host": address,
        "ansible_port": str(server.port),
        "ansible_user": server.user,
        "ansible_ssh_private_key_file": str(server.client_key),
        **extra,
    }
    return name + " " + " ".join(f"{k}={v}" for k, v in settings.items())


def known_hosts(tmp_path: Path, servers: list[SSHServer]) -> Path:
    lines = [s.known_hosts_line(a) for s in servers for a in s.addresses]
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_32_hosts_all_modules(tmp_path, servers, http_server):
    hosts = [
        inventory_line(f"web{n:02d}", server, address)
        for n, (server, address) in enumerate((s, a) for s in servers for a in s.addresses)
    ]
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[fleet]\n" + "\n".join(hosts) + "\n")
    plugin = tmp_path / "check_dummy"
    plugin.write_text("#!/bin/sh\necho 'DUMMY OK - fine | temp=21.5C;30;40'\nexit 0\n")
    plugin.chmod(0o755)
    playbook = tmp_path / "fleet.yml"
    playbook.write_text(
        f"""
- name: fleet
  hosts: fleet
  checks:
    - {{name: cpu, cpu: {{sample: 200ms}}, crit: 101}}
    - {{name: memory, memory: {{}}, crit: 99.9}}
    - {{name: disk, disk: /, crit: 99.9}}
    - {{name: load, load: {{}}}}
    - {{name: sshd running, process: {{name: sshd}}, crit: "1:"}}
    - {{name: ssh port, tcp: {{host: "{{{{ ansible_host }}}}", port: "{{{{ ansible_port }}}}"}}}}
    - {{name: health, http: {{url: "{http_server.url}/health", body: ok}}}}
    - {{name: uname, command: {{cmd: "uname -s", stdout: Linux}}}}
    - {{name: tmp, file: {{path: /tmp, type: directory}}}}
    - {{name: plugin, nagios: {{plugin: "{plugin}"}}}}
"""
    )
    out = tmp_path / "report.json"
    done = run_checkrun(
        playbook,
        "-i",
        inventory,
        "--known-hosts",
        known_hosts(tmp_path, servers),
        "-f",
        "32",
        "-r",
        f"json:{out}",
        "-r",
        "terminal",
    )
    report = json.loads(out.read_text())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert len(report["hosts"]) == 32
    for host in report["hosts"]:
        assert host["reachable"], host
        assert {c["name"]: c["status"] for c in host["checks"]} == dict.fromkeys(
            [
                "cpu",
                "memory",
                "disk",
                "load",
                "sshd running",
                "ssh port",
                "health",
                "uname",
                "tmp",
                "plugin",
            ],
            "OK",
        ), host["host"]
    plugin_result = next(c for c in report["hosts"][0]["checks"] if c["name"] == "plugin")
    assert plugin_result["measurements"]["temp"] == 21.5


def test_mixed_healthy_and_failing_hosts(tmp_path, servers, closed_port):
    server = servers[0]
    good, other = server.addresses[0], server.addresses[1]
    lines = [
        inventory_line("good", server, good),
        inventory_line("refused", server, good, ansible_port=str(closed_port)),
        inventory_line("nopython", server, good, ansible_python_interpreter="/nonexistent/python3"),
        inventory_line("unknownkey", server, other),
        inventory_line("good2", server, server.addresses[2]),
    ]
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("\n".join(lines) + "\n")
    known = tmp_path / "known_hosts"
    known.write_text(
        "\n".join(server.known_hosts_line(a) for a in (good, server.addresses[2])) + "\n"
    )
    playbook = tmp_path / "p.yml"
    playbook.write_text("- name: m\n  hosts: all\n  checks: [{name: memory, memory: {}}]\n")
    done = run_checkrun(
        playbook, "-i", inventory, "--known-hosts", known, "-r", "json:-", "-T", "3s"
    )
    report = json.loads(done.stdout)
    got = {h["host"]: (h["status"], h["reason"]) for h in report["hosts"]}
    assert got == {
        "good": ("OK", None),
        "refused": ("UNREACHABLE", "refused"),
        "nopython": ("UNREACHABLE", "no-python"),
        "unknownkey": ("UNREACHABLE", "host-key-unknown"),
        "good2": ("OK", None),
    }
    assert done.returncode == 4


def test_keys_from_ssh_agent_and_a_large_fork_count(tmp_path, servers):
    """No key file anywhere in the inventory: the key comes from a real ssh-agent."""
    import shutil
    import signal
    import subprocess

    if not shutil.which("ssh-agent"):
        pytest.fail(
            "ssh-agent missing: scripts/test.sh installs openssh-client with openssh-server"
        )
    server = servers[1]
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            time.sleep(0.05)
        env = {"SSH_AUTH_SOCK": str(socket_path), "HOME": str(tmp_path)}  # no ~/.ssh/id_* either
        subprocess.run(
            ["ssh-add", str(server.client_key)],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        lines = [
            f"a{n:02d} ansible_host={address} ansible_port={server.port} ansible_user={server.user}"
            for n, address in enumerate(server.addresses)
        ]
        inventory = tmp_path / "hosts.ini"
        inventory.write_text("\n".join(lines) + "\n")
        playbook = tmp_path / "p.yml"
        playbook.write_text("- name: m\n  hosts: all\n  checks: [{name: memory, memory: {}}]\n")
        known = server.write_known_hosts(tmp_path / "known_hosts")
        done = run_checkrun(
            playbook, "-i", inventory, "--known-hosts", known, "-f", "200", "-r", "json:-", env=env
        )
        report = json.loads(done.stdout)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        assert len(report["hosts"]) == 16
        assert all(h["status"] == "OK" for h in report["hosts"])
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)
