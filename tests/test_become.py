"""become over real SSH: a non-root login user with a sudoers rule, and one without."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import run_checkrun
from sshd import SSHServer, running_sshd, sshd_available

if os.geteuid() != 0 or not sshd_available() or not shutil.which("sudo"):
    pytest.skip(
        "needs root, sshd and sudo (scripts/test.sh installs them)", allow_module_level=True
    )

SUDO_USER = "crtest-sudo"
PLAIN_USER = "crtest-nosudo"
PASSWORD_USER = "crtest-pw"  # sudo asks this one for its password
PASSWORD = "s3cret-Pw!x"
SUDOERS = Path("/etc/sudoers.d/checkrunner-test")
ADDRESS = "127.0.0.31"


def _add_user(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True)
    # '*' instead of useradd's '!': sshd refuses key logins to locked accounts
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", "-p", "*", name], check=True)


@pytest.fixture(scope="module")
def users() -> Iterator[None]:
    for name in (SUDO_USER, PLAIN_USER, PASSWORD_USER):
        _add_user(name)
    subprocess.run(["chpasswd"], input=f"{PASSWORD_USER}:{PASSWORD}\n", text=True, check=True)
    SUDOERS.write_text(
        f"{SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n"
        f"{PASSWORD_USER} ALL=(ALL) ALL\n"
        f"Defaults:{PASSWORD_USER} !lecture, passwd_tries=1\n"
    )
    SUDOERS.chmod(0o440)
    try:
        yield
    finally:
        SUDOERS.unlink(missing_ok=True)
        for name in (SUDO_USER, PLAIN_USER, PASSWORD_USER):
            subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture(scope="module")
def server(users) -> Iterator[SSHServer]:
    # Not under pytest's tmp_path: its parents are 0700, and sshd reads authorized_keys as
    # the (non-root) login user.
    directory = Path(tempfile.mkdtemp(prefix="checkrunner-become-"))
    directory.chmod(0o755)
    try:
        with running_sshd(directory, [ADDRESS]) as sshd:
            (directory / "authorized_keys").chmod(0o644)
            yield sshd
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _inventory(tmp_path: Path, server: SSHServer) -> Path:
    common = (
        f"ansible_host={ADDRESS} ansible_port={server.port} "
        f"ansible_ssh_private_key_file={server.client_key} ansible_python_interpreter=/usr/bin/python3"
    )
    path = tmp_path / "hosts.ini"
    path.write_text(
        f"withsudo ansible_user={SUDO_USER} {common}\n"
        f"nosudo ansible_user={PLAIN_USER} {common}\n"
        f"password ansible_user={PASSWORD_USER} {common}\n"
    )
    return path


def _playbook(tmp_path: Path, become: bool) -> Path:
    path = tmp_path / f"become-{become}.yml"
    path.write_text(
        f"""
- name: root only
  hosts: all
  become: {str(become).lower()}
  checks:
    - name: shadow readable
      file: {{path: /etc/shadow, contains: "^root:"}}
    - name: who am i
      command: {{cmd: id -un, stdout: "^root$"}}
"""
    )
    return path


def _run(tmp_path: Path, server: SSHServer, playbook: Path, *options: str, env=None):
    """checkrun on the test inventory with a JSON report on stdout."""
    return run_checkrun(
        playbook,
        "-i",
        _inventory(tmp_path, server),
        *options,
        "--known-hosts",
        server.write_known_hosts(tmp_path / "kh"),
        "-r",
        "json:-",
        env=env,
    )


def test_become_runs_the_batch_as_root_through_sudo(tmp_path, server):
    done = _run(tmp_path, server, _playbook(tmp_path, become=True))
    hosts = {h["host"]: h for h in json.loads(done.stdout)["hosts"]}
    assert hosts["withsudo"]["reachable"], hosts["withsudo"]["message"]
    assert {c["name"]: c["status"] for c in hosts["withsudo"]["checks"]} == {
        "shadow readable": "OK",
        "who am i": "OK",
    }
    assert (hosts["nosudo"]["status"], hosts["nosudo"]["reason"]) == ("UNREACHABLE", "sudo")
    assert "password" in hosts["nosudo"]["message"] or "sudoers" in hosts["nosudo"]["message"]
    assert done.returncode == 4


def test_without_become_the_check_says_how_to_fix_it(tmp_path, server):
    done = _run(tmp_path, server, _playbook(tmp_path, become=False), "--limit", "withsudo")
    checks = {c["name"]: c for c in json.loads(done.stdout)["hosts"][0]["checks"]}
    assert checks["shadow readable"]["status"] == "UNKNOWN"
    assert "become" in checks["shadow readable"]["message"]
    assert checks["who am i"]["status"] == "CRITICAL"  # runs as crtest-sudo, not root
    assert done.returncode == 2


@pytest.mark.parametrize(
    ("password", "status", "reason"),
    [
        (PASSWORD, "OK", None),
        ("wrong-password", "UNREACHABLE", "sudo"),
        (None, "UNREACHABLE", "sudo"),
    ],
)
def test_become_password_from_the_environment(tmp_path, server, password, status, reason):
    env = {"CHECKRUN_TEST_SUDO_PW": password} if password else {}
    args = ["--become-password-env", "CHECKRUN_TEST_SUDO_PW"] if password else []
    done = _run(
        tmp_path,
        server,
        _playbook(tmp_path, become=True),
        "--limit",
        "password,withsudo",
        *args,
        env=env,
    )
    assert done.stdout, done.stderr
    hosts = {h["host"]: h for h in json.loads(done.stdout)["hosts"]}
    assert (hosts["password"]["status"], hosts["password"]["reason"]) == (status, reason), hosts
    # a NOPASSWD host given a password too still works: the unread line is skipped
    assert hosts["withsudo"]["status"] == "OK"
    assert PASSWORD not in done.stdout and PASSWORD not in done.stderr


def test_unset_password_variable_is_an_input_error(tmp_path, server):
    done = run_checkrun(
        _playbook(tmp_path, become=True),
        "-i",
        _inventory(tmp_path, server),
        "--become-password-env",
        "CHECKRUN_TEST_UNSET_VARIABLE",
    )
    assert done.returncode == 5
    assert "CHECKRUN_TEST_UNSET_VARIABLE" in done.stderr


def test_only_the_checks_that_ask_for_become_run_as_root(tmp_path, server):
    playbook = tmp_path / "mixed.yml"
    playbook.write_text(
        """
- name: mixed
  hosts: withsudo
  checks:
    - name: as root
      become: true
      command: {cmd: id -un, stdout: "^root$"}
    - name: as the login user
      command: {cmd: id -un, stdout: "^crtest-sudo$"}
"""
    )
    done = _run(tmp_path, server, playbook)
    checks = {c["name"]: c["status"] for c in json.loads(done.stdout)["hosts"][0]["checks"]}
    assert checks == {"as root": "OK", "as the login user": "OK"}
    assert done.returncode == 0


def test_kept_connections_become_through_sudo_with_and_without_a_password(tmp_path, server):
    """The live process of a kept connection runs as root after `sudo -S`; a password line
    that a NOPASSWD sudo never reads is skipped by the live bootstrap as by the one-shot one."""
    from checkrunner.inventory import load_inventories
    from checkrunner.plan import PlanOptions, build_plan
    from checkrunner.playbook import load_playbook
    from checkrunner.runner import RunOptions, run_plan
    from checkrunner.transport import Transports
    from checkrunner.transport.ssh_config import SSHOptions

    plan = build_plan(
        load_playbook(_playbook(tmp_path, become=True)),
        load_inventories([str(_inventory(tmp_path, server))]),
        PlanOptions(limit="password,withsudo"),
    )
    options = SSHOptions(
        known_hosts=(str(server.write_known_hosts(tmp_path / "kh")),),
        accept_new_file=str(tmp_path / "accepted"),
        ssh_config="none",
        allow_agent=False,
        look_for_keys=False,
        global_known_hosts=(),
    )
    events = []
    with Transports(options, keep_alive=True, on_event=events.append) as transports:
        for _ in range(2):
            run = run_plan(plan, RunOptions(become_password=PASSWORD), (), transports)
            statuses = {(h.host, c.name): c.status.value for h in run.hosts for c in h.checks}
            assert set(statuses.values()) == {"OK"}, run.hosts
    assert sorted((e.kind, e.host) for e in events) == [
        ("connected", "password"),
        ("connected", "withsudo"),
    ]
    with Transports(options, keep_alive=True) as transports:
        run = run_plan(plan, RunOptions(become_password="wrong-password"), (), transports)
    hosts = {h.host: h for h in run.hosts}
    assert (hosts["password"].reachable, hosts["password"].reason) == (False, "sudo")
    assert "rejected the become password" in hosts["password"].message
    assert hosts["withsudo"].status.value == "OK"  # the unread password line is skipped


def test_a_handler_with_become_runs_through_sudo_over_ssh(tmp_path, server):
    """Issue 14: a handler's `become: true` runs its command as root on the SSH target (as
    checks do), and the notifying check run again after it sees the fix."""
    from recorder import Recorder

    shared = Path(tempfile.mkdtemp(prefix="checkrunner-heal-"))
    shared.chmod(0o755)  # the login user checks it; only root (the handler) writes in it
    healed = shared / "healed"
    try:
        with Recorder() as hook:
            playbook = tmp_path / "heal.yml"
            playbook.write_text(
                f"""
receivers: [{{name: ops, webhook_configs: [{{url: "{hook.url("/alerts")}"}}]}}]
route: {{receiver: ops}}
plays:
  - name: heal
    hosts: withsudo
    handlers:
      - name: fix as root
        become: true
        settle: 0s
        command: {{cmd: "id -un > {healed}", shell: true}}
    checks:
      - name: healed marker
        command: {{cmd: "test -f {healed}"}}
        notify: [fix as root]
"""
            )
            done = _run(tmp_path, server, playbook, "--state", tmp_path / "state.db")
        assert "healed marker -> fix as root" in done.stderr, done.stderr
        assert "exit 0, remediated" in done.stderr, done.stderr
        assert healed.read_text() == "root\n"
        assert healed.stat().st_uid == 0
    finally:
        shutil.rmtree(shared, ignore_errors=True)
