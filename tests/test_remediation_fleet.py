"""Issue 14, the max_hosts guard over real SSH: 16 sshd hosts all failing get no handler
(a fleet-wide failure pages instead), one failing host of the 16 gets it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import run_checkrun
from recorder import Recorder
from sshd import SSHServer, running_sshd, sshd_available

if not sshd_available():
    pytest.skip("needs sshd (scripts/test.sh installs it)", allow_module_level=True)

ADDRESSES = [f"127.0.61.{n}" for n in range(1, 17)]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[SSHServer]:
    with running_sshd(
        tmp_path_factory.mktemp("fleet-sshd"), ADDRESSES, "MaxStartups 100:30:200\n"
    ) as sshd:
        yield sshd


def fleet(tmp_path: Path, server: SSHServer, hook_url: str, markers: Path) -> list[str]:
    hosts = "".join(
        f"    web{n:02d}: {{ansible_host: {address}, ansible_port: {server.port}, "
        f"ansible_user: {server.user}, ansible_ssh_private_key_file: {server.client_key}}}\n"
        for n, address in enumerate(server.addresses)
    )
    (tmp_path / "inventory.yml").write_text(f"all:\n  hosts:\n{hosts}")
    (tmp_path / "fleet.yml").write_text(
        f"""
receivers: [{{name: ops, webhook_configs: [{{url: "{hook_url}"}}]}}]
route: {{receiver: ops}}
plays:
  - name: fleet
    hosts: all
    handlers:
      - name: fix marker
        settle: 0s
        command: {{cmd: "touch {markers}/{{{{ inventory_hostname }}}}", shell: true}}
    checks:
      - name: marker
        command: {{cmd: "test -f {markers}/{{{{ inventory_hostname }}}}"}}
        notify: [fix marker]
"""
    )
    known = server.write_known_hosts(tmp_path / "known_hosts")
    return [
        tmp_path / "fleet.yml",
        "-i",
        tmp_path / "inventory.yml",
        "--known-hosts",
        known,
        "--ssh-config",
        "none",
        "--state",
        tmp_path / "state.db",
    ]


def test_all_16_hosts_failing_get_no_handler_and_one_failing_host_does(tmp_path, server):
    markers = tmp_path / "markers"
    markers.mkdir()
    with Recorder() as hook:
        args = fleet(tmp_path, server, hook.url("/alerts"), markers)
        everywhere = run_checkrun(*args)
        assert everywhere.returncode == 2, everywhere.stderr
        lines = [line for line in everywhere.stderr.splitlines() if "remediation:" in line]
        assert len(lines) == 16, everywhere.stderr
        assert all(
            "suppressed by max_hosts: 16 of the play's 16 hosts need it, at most 1" in line
            for line in lines
        ), lines
        assert list(markers.iterdir()) == []  # nothing was touched anywhere
        for n in range(1, 16):  # all but web00 healthy
            (markers / f"web{n:02d}").touch()
        one = run_checkrun(*args)
    (line,) = [line for line in one.stderr.splitlines() if "remediation:" in line]
    assert line.startswith(
        f"remediation: web00: marker -> fix marker (touch {markers}/web00): exit 0, remediated"
    ), line
    assert (markers / "web00").exists()
    listed = json.loads(run_checkrun("actions", "--state", tmp_path / "state.db", "--json").stdout)
    assert [(a["host"], a["verify"]) for a in listed["actions"]] == [("web00", "remediated")]
