"""`checkrun init`: a starter playbook from a live host, this machine (local connection) and
a real sshd host running real services the test starts (an HTTP server, a TCP listener, a
process writing a log). The playbook holds them, validates, runs with exit 0, comes out the
same twice and holds no secret.

The sshd host is an sshd started in PID and mount namespaces of its own (unshare), with its
own /proc and its own /var/log, as a separate machine would be: what it sees running is what
the test started there, not what other tests on this machine run meanwhile."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sshd as sshd_fixtures
import yaml
from helpers import run_checkrun
from sshd import SSHServer, free_port, running_sshd, sshd_available

LOG_WRITER = Path(__file__).resolve().parent / "log_writer.py"
SECRET_ARG = "s3cr3t-argv-7f2a"
SECRET_ENV = "s3cr3t-env-91bc"

TCP_SERVICE = """\
import socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen(16)
while True:
    conn, _ = sock.accept()
    conn.sendall(b"hello\\n")
    conn.close()
"""


def test_init_on_this_machine_validates_runs_green_and_is_stable(tmp_path):
    first = run_checkrun("init", "--dry-run", "--min-age", "10m", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_checkrun("init", "--dry-run", "--min-age", "10m", cwd=tmp_path)
    assert second.stdout == first.stdout
    playbook = tmp_path / "playbook.yml"
    written = run_checkrun("init", "--min-age", "10m", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    checks = yaml.safe_load(playbook.read_text())[0]["checks"]
    names = [check["name"] for check in checks]
    assert "disk /" in names and "memory" in names and "load per core" in names
    assert "# / (" in playbook.read_text()  # the root filesystem's threshold says why
    assert run_checkrun("validate", playbook).returncode == 0
    run = run_checkrun(playbook, "--no-state")
    assert run.returncode == 0, run.stdout + run.stderr
    # an existing file is kept unless --force
    again = run_checkrun("init", cwd=tmp_path)
    assert again.returncode == 5 and "exists" in again.stderr


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[tuple[SSHServer, dict[str, int], Path]]:
    """An sshd 'host' in namespaces of its own running an HTTP server, a TCP service (with a
    secret on its command line and in its environment) and a log writer, started there."""
    if not (sshd_available() or os.geteuid() == 0) or shutil.which("unshare") is None:
        pytest.skip("needs sshd and unshare (root)")
    base = tmp_path_factory.mktemp("inithost")
    varlog = base / "varlog"
    (varlog / "app").mkdir(parents=True)
    www = base / "www"
    www.mkdir()
    (www / "index.html").write_text("hello\n")
    (base / "tcp_service.py").write_text(TCP_SERVICE)
    ports = {"http": free_port(), "tcp": free_port()}
    boot = base / "boot.sh"
    boot.write_text(
        f"mount --bind {varlog} /var/log\n"
        f"cd {www} && setsid python3 -m http.server {ports['http']} --bind 127.0.0.1 "
        ">/dev/null 2>&1 &\n"
        f"SECRET_TOKEN={SECRET_ENV} setsid python3 {base / 'tcp_service.py'} {ports['tcp']} "
        f"--token={SECRET_ARG} >/dev/null 2>&1 &\n"
        f"setsid python3 {LOG_WRITER} /var/log/app/app.log >/dev/null 2>&1 &\n"
        'exec /usr/sbin/sshd "$@"\n'
    )
    wrapper = base / "sshd-in-namespaces"
    wrapper.write_text(
        f'#!/bin/sh\nexec unshare --pid --fork --mount-proc --kill-child /bin/sh {boot} "$@"\n'
    )
    wrapper.chmod(0o755)
    patch = pytest.MonkeyPatch()
    patch.setattr(sshd_fixtures, "SSHD", str(wrapper))
    try:
        with running_sshd(base / "sshd", ["127.0.0.1"]) as server:
            _wait_listening(ports.values())
            yield server, ports, base
    finally:
        patch.undo()


def _wait_listening(ports) -> None:
    deadline = time.monotonic() + 30
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def _inventory(tmp_path: Path, server: SSHServer) -> Path:
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line("127.0.0.1") + "\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[apps]\n"
        f"app-1 ansible_host=127.0.0.1 ansible_port={server.port} ansible_user={server.user} "
        f"ansible_ssh_private_key_file={server.client_key}\n"
        "other ansible_host=192.0.2.1\n"
    )
    return inventory


def test_init_over_ssh_finds_the_hosts_services_and_the_playbook_runs_green(tmp_path, host):
    server, ports, _ = host
    inventory = _inventory(tmp_path, server)
    known = ["--known-hosts", str(tmp_path / "known_hosts")]
    time.sleep(2.5)  # the services have run longer than --min-age
    args = ["init", "-i", inventory, "-l", "app-1", "--min-age", "2s", *known]
    first = run_checkrun(*args, "--dry-run")
    assert first.returncode == 0, first.stderr
    text = first.stdout
    assert run_checkrun(*args, "--dry-run").stdout == text  # same host, same playbook

    plays = yaml.safe_load(text)
    assert plays[0]["hosts"] == "app-1"
    checks = {check["name"]: check for check in plays[0]["checks"]}
    http_port, tcp_port = ports["http"], ports["tcp"]
    assert checks[f"http 127.0.0.1:{http_port} (python3)"]["http"]["status"] == [200]
    assert f"tcp 127.0.0.1:{http_port} (python3)" in checks
    assert f"tcp 127.0.0.1:{tcp_port} (python3)" in checks
    assert f"http 127.0.0.1:{tcp_port} (python3)" not in checks  # it answers, but not HTTP
    assert checks["process python3"]["process"] == {"name": "python3", "sample": "0s"}
    log = checks["log /var/log/app/app.log"]["log"]
    assert log["patterns"][0]["regex"] == "\\bERROR\\b"
    # only the host's own: nothing of this machine's other processes, nothing secret
    assert "process pytest" not in checks
    assert SECRET_ARG not in text and SECRET_ENV not in text and "token" not in text.lower()
    # the threshold comments are there
    assert "# / (" in text and "OOM killer" in text

    playbook = tmp_path / "app.yml"
    written = run_checkrun(*args, "-o", playbook)
    assert written.returncode == 0, written.stderr
    assert playbook.read_text() == text
    assert run_checkrun("validate", playbook, "-i", inventory).returncode == 0
    run = run_checkrun(playbook, "-i", inventory, *known, "--no-state")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "app-1" in run.stdout


def test_init_needs_exactly_one_host_and_says_when_it_cannot_reach_it(tmp_path, host):
    server, _, _ = host
    inventory = _inventory(tmp_path, server)
    several = run_checkrun("init", "-i", inventory, "--dry-run")
    assert several.returncode == 5
    assert "one host; 2 match" in several.stderr and "-l HOST" in several.stderr
    unreachable = run_checkrun("init", "-i", inventory, "-l", "other", "--dry-run", "-T", "1s")
    assert unreachable.returncode == 4, unreachable.stderr
    assert "other: unreachable" in unreachable.stderr


MOUNTINFO = """\
22 1 253:1 / / rw,relatime - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw - proc proc rw
24 22 0:5 / /dev rw - devtmpfs udev rw
25 22 0:25 / /run rw - tmpfs tmpfs rw
26 22 253:2 / /home rw - xfs /dev/vda2 rw
27 22 253:2 / /mnt/home-again rw - xfs /dev/vda2 rw
28 22 253:1 /srv/data /srv/data rw - ext4 /dev/vda1 rw
29 22 7:0 / /snap/core/17 ro - squashfs /dev/loop0 ro
30 22 0:40 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw
31 22 259:1 / /var/lib/docker rw - ext4 /dev/nvme0n1p1 rw
34 31 253:9 / /var/lib/docker/devicemapper/mnt/abc rw - xfs /dev/mapper/docker-abc rw
32 22 8:1 / /boot/efi rw - vfat /dev/sda1 rw
33 22 0:41 / /tmp rw - tmpfs tmpfs rw
"""


def test_only_real_filesystems_once_each():
    from checkrunner.modules.discover import parse_mountinfo, real_filesystems

    found = real_filesystems(parse_mountinfo(MOUNTINFO))
    assert [(fs["mountpoint"], fs["fstype"]) for fs in found] == [
        ("/", "ext4"),
        ("/boot/efi", "vfat"),
        ("/home", "xfs"),  # its second mount point is the same space
        ("/var/lib/docker", "ext4"),  # a disk of its own; the containers' mounts below it are not
    ]


def test_thresholds_step_up_for_a_fuller_disk_and_the_output_is_sorted():
    from checkrunner.init_command import render_playbook

    facts = {
        "filesystems": [
            {"mountpoint": "/var", "fstype": "xfs", "used_percent": 88.0},
            {"mountpoint": "/", "fstype": "ext4", "used_percent": 12.0},
        ],
        "memory_used_percent": 40.0,
        "cores": 4,
        "listeners": [
            {"host": "::1", "port": 9090, "process": "prometheus", "http_status": 302},
            {"host": "127.0.0.1", "port": 22, "process": "sshd", "http_status": None},
        ],
        "services": ["sshd", "prometheus"],
        "logs": [{"path": "/var/log/syslog", "size": 10}],
    }
    text = render_playbook("web-1", facts, 300.0)
    shuffled = {**facts, "services": ["prometheus", "sshd"], "listeners": facts["listeners"][::-1]}
    assert render_playbook("web-1", shuffled, 300.0) == text
    checks = {check["name"]: check for check in yaml.safe_load(text)[0]["checks"]}
    assert list(checks)[:2] == ["disk /", "disk /var"]
    assert (checks["disk /"]["warn"], checks["disk /"]["crit"]) == (80, 90)
    assert (checks["disk /var"]["warn"], checks["disk /var"]["crit"]) == (97, 99)
    assert "already past 85% used" in text
    assert checks["http [::1]:9090 (prometheus)"]["http"]["url"] == "http://[::1]:9090/"
    assert checks["http [::1]:9090 (prometheus)"]["http"]["status"] == [302]
    assert "http 127.0.0.1:22 (sshd)" not in checks
    assert "at least 5m without a terminal" in text
