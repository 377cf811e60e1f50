"""The ssh transport against a real OpenSSH sshd on loopback addresses (tests/sshd.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sshd import SSHServer, generate_key, public_key_line, running_sshd, sshd_available

from checkrunner import catalog
from checkrunner.config import normalize_args
from checkrunner.errors import ConfigError, Location
from checkrunner.inventory.model import Host
from checkrunner.results import UnreachableReason
from checkrunner.transport import Batch, BatchCheck, ExecResult, Unreachable, build_payload
from checkrunner.transport import parse_output as parse_batch_output
from checkrunner.transport.ssh import SSHOptions, SSHTransport, remote_command, target_failure
from checkrunner.transport.ssh_known_hosts import fingerprint

if not sshd_available() and os.geteuid() != 0:
    pytest.skip(
        "needs /usr/sbin/sshd (scripts/test.sh installs it as root)", allow_module_level=True
    )

TARGETS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
NO_FORWARDING = "127.0.0.6"  # sshd refuses TCP forwarding there (the ProxyJump negative case)
MEMORY_BATCH = Batch(checks=[BatchCheck("0.0", "memory", {}, 10)])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    extra = f"Match LocalAddress {NO_FORWARDING}\n    AllowTcpForwarding no\n"
    with running_sshd(tmp_path_factory.mktemp("sshd"), [*TARGETS, NO_FORWARDING], extra) as sshd:
        yield sshd


@pytest.fixture
def known_hosts(tmp_path: Path, server: SSHServer) -> Path:
    return server.write_known_hosts(tmp_path / "known_hosts")


@dataclass
class Rig:
    """One test's view of the server: options and hosts that use its key and known_hosts."""

    server: SSHServer
    tmp: Path
    known_hosts: Path

    def options(self, **overrides) -> SSHOptions:
        settings = {
            "known_hosts": (str(self.known_hosts),),
            "accept_new_file": str(self.tmp / "accepted_known_hosts"),
            "ssh_config": "none",
            "private_key": str(self.server.client_key),
            "allow_agent": False,  # the developer's own agent and keys stay out of the tests
            "look_for_keys": False,
            "connect_timeout": 5.0,
            "global_known_hosts": (),
            **overrides,
        }
        return SSHOptions(**settings)

    def host(self, address: str = TARGETS[0], name: str | None = None, **variables) -> Host:
        base = {
            "ansible_host": address,
            "ansible_port": self.server.port,
            "ansible_user": self.server.user,
            "ansible_python_interpreter": sys.executable,
        }
        return Host(name or f"host-{address}", vars={**base, **variables})

    def run(
        self, host: Host | None = None, batch: Batch = MEMORY_BATCH, timeout: float = 30.0, **opts
    ):
        transport = SSHTransport(self.options(**opts))
        try:
            return transport.run_batch(host or self.host(), build_payload(batch), timeout)
        finally:
            transport.close()

    def unreachable(self, host: Host | None = None, **kwargs) -> Unreachable:
        with pytest.raises(Unreachable) as info:
            self.run(host, **kwargs)
        return info.value

    def log_mark(self) -> int:
        return len(self.server.log_text())

    def connections_since(self, mark: int, address: str) -> int:
        text = self.server.log_text()[mark:]
        return text.count(f" on {address} port {self.server.port}")


@pytest.fixture
def rig(server: SSHServer, tmp_path: Path, known_hosts: Path) -> Rig:
    return Rig(server, tmp_path, known_hosts)


def memory_of(result: ExecResult) -> dict:
    output = parse_batch_output(result.stdout)
    (entry,) = output["results"]
    return entry["result"]["measurements"]


def command_batch(argv: list[str], check_timeout: float) -> Batch:
    args = normalize_args(catalog.get("command"), {"cmd": argv}, Location("test"))
    return Batch(checks=[BatchCheck("0.0", "command", args, check_timeout)])


def host_fingerprint(server: SSHServer) -> str:
    return fingerprint(public_key_line(server.host_key).split()[1])


def _watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "checkrun-ssh-watchdog" and t.is_alive()]


def test_the_watchdog_thread_belongs_to_its_transport_and_ends_when_it_is_closed(rig: Rig):
    before = len(_watchdogs())
    transport = SSHTransport(rig.options())
    payload = build_payload(MEMORY_BATCH)
    transport.run_batch(rig.host(), payload, 30)
    assert len(_watchdogs()) == before + 1
    transport.close()
    assert len(_watchdogs()) == before
    # closed is not dead: the next batch starts a watchdog of its own again
    result = transport.run_batch(rig.host(), payload, 30)
    assert memory_of(result)["total"] > 0
    transport.close()
    assert len(_watchdogs()) == before


# --- a real batch ---------------------------------------------------------------------------


def test_batch_runs_on_several_hosts_at_once_over_one_transport(rig: Rig):
    transport = SSHTransport(rig.options())
    payload = build_payload(MEMORY_BATCH)
    mark = rig.log_mark()
    try:
        with ThreadPoolExecutor(max_workers=len(TARGETS)) as pool:
            results = list(
                pool.map(lambda a: transport.run_batch(rig.host(a), payload, 30), TARGETS)
            )
    finally:
        transport.close()
    for result in results:
        assert result.exit_status == 0, result.stderr
        measurements = memory_of(result)
        assert measurements["total"] > 0
        assert 0 < measurements["used_percent"] <= 100
    for address in TARGETS:
        assert rig.connections_since(mark, address) == 1  # one connection per host per run


def test_interpreter_given_as_a_command_line_works(rig: Rig):
    host = rig.host(ansible_python_interpreter=f"/usr/bin/env {sys.executable}")
    assert memory_of(rig.run(host))["total"] > 0


def test_become_as_the_login_user_runs_without_sudo(rig: Rig):
    host = rig.host(ansible_become=True, ansible_become_user=rig.server.user)
    assert memory_of(rig.run(host))["total"] > 0


# --- connection failures ----------------------------------------------------------------------


def test_closed_port_is_refused(rig: Rig):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    failure = rig.unreachable(rig.host("127.0.0.1", ansible_port=port))
    assert failure.reason == UnreachableReason.REFUSED
    assert f"127.0.0.1:{port}" in failure.message


def test_a_name_that_cannot_resolve_is_dns(rig: Rig):
    failure = rig.unreachable(rig.host("bad..name"))  # rejected before any query leaves the host
    assert failure.reason == UnreachableReason.DNS
    assert "'bad..name'" in failure.message


def test_silent_listener_times_out_at_the_connect_timeout(rig: Rig):
    with socket.socket() as silent:  # completes TCP handshakes, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        started = time.monotonic()
        failure = rig.unreachable(
            rig.host("127.0.0.1", ansible_port=silent.getsockname()[1]), connect_timeout=0.5
        )
        elapsed = time.monotonic() - started
    assert failure.reason == UnreachableReason.TIMEOUT
    assert "banner" in failure.message
    assert elapsed < 8.0  # the silent listener would hold us forever


def test_wrong_key_is_auth_and_says_what_was_tried(rig: Rig):
    wrong = generate_key(rig.tmp / "wrong_key")
    failure = rig.unreachable(private_key=str(wrong))
    assert failure.reason == UnreachableReason.AUTH
    assert f"user '{rig.server.user}'" in failure.message
    assert str(wrong) in failure.message
    assert fingerprint(public_key_line(wrong).split()[1]) in failure.message


def test_password_the_server_does_not_accept_is_reported(rig: Rig):
    wrong = generate_key(rig.tmp / "wrong_key")
    failure = rig.unreachable(rig.host(ansible_password="secret"), private_key=str(wrong))
    assert failure.reason == UnreachableReason.AUTH
    assert "the server accepts only: publickey" in failure.message
    assert "secret" not in failure.message


def test_unusable_key_file_is_named(rig: Rig):
    failure = rig.unreachable(private_key=str(rig.tmp / "no_such_key"))
    assert failure.reason == UnreachableReason.AUTH
    assert "no_such_key (missing)" in failure.message


def test_missing_interpreter_is_no_python(rig: Rig):
    failure = rig.unreachable(rig.host(ansible_python_interpreter="/nonexistent/bin/python3"))
    assert failure.reason == UnreachableReason.NO_PYTHON
    assert "/nonexistent/bin/python3" in failure.message
    assert "ansible_python_interpreter" in failure.message


def test_hung_check_is_cut_at_the_host_deadline(rig: Rig):
    started = time.monotonic()
    failure = rig.unreachable(batch=command_batch(["sleep", "20"], check_timeout=3.0), timeout=1.5)
    elapsed = time.monotonic() - started
    assert failure.reason == UnreachableReason.TIMEOUT
    assert "1.5s" in failure.message
    assert elapsed < 4.0


def test_abort_interrupts_a_running_batch(rig: Rig):
    transport = SSHTransport(rig.options())
    payload = build_payload(command_batch(["sleep", "20"], check_timeout=3.0))
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            transport.run_batch(rig.host(), payload, 60)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.0)
    started = time.monotonic()
    transport.abort()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3.0
    assert isinstance(outcome[0], Unreachable)
    assert outcome[0].message == "interrupted"


# --- host keys --------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_in_strict_mode(rig: Rig):
    rig.known_hosts.write_text("")
    failure = rig.unreachable()
    assert failure.reason == UnreachableReason.HOST_KEY_UNKNOWN
    assert host_fingerprint(rig.server) in failure.message
    assert f"ssh-keyscan -p {rig.server.port} {TARGETS[0]}" in failure.message
    assert "--host-key-checking accept-new" in failure.message


def test_accept_new_records_the_key_and_strict_then_trusts_it(rig: Rig):
    rig.known_hosts.write_text("")
    accepted = rig.tmp / "state" / "known_hosts"
    rig.run(host_key_checking="accept-new", accept_new_file=str(accepted))
    assert accepted.read_text() == rig.server.known_hosts_line(TARGETS[0]) + "\n"
    assert accepted.stat().st_mode & 0o777 == 0o600
    assert memory_of(rig.run(accept_new_file=str(accepted)))["total"] > 0  # strict, from the record
    failure = rig.unreachable()  # strict without that record: unknown again
    assert failure.reason == UnreachableReason.HOST_KEY_UNKNOWN


def test_changed_host_key_is_refused_in_strict_and_accept_new(rig: Rig):
    impostor = generate_key(rig.tmp / "other_host_key")
    name = f"[{TARGETS[0]}]:{rig.server.port}"
    rig.known_hosts.write_text(f"{name} {public_key_line(impostor)}\n")
    accepted = rig.tmp / "accepted_known_hosts"
    for mode in ("strict", "accept-new"):
        failure = rig.unreachable(host_key_checking=mode)
        assert failure.reason == UnreachableReason.HOST_KEY_CHANGED
        assert host_fingerprint(rig.server) in failure.message  # the new key
        assert fingerprint(public_key_line(impostor).split()[1]) in failure.message  # the old one
        assert "ssh-keygen -R" in failure.message
    assert not accepted.exists()  # accept-new never records over a changed key
    assert memory_of(rig.run(host_key_checking="off"))["total"] > 0


@pytest.mark.parametrize(
    "variables",
    [
        {"ansible_host_key_checking": False},
        {"ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"},
    ],
)
def test_inventory_can_turn_host_key_checking_off(rig: Rig, variables: dict):
    rig.known_hosts.write_text("")
    assert memory_of(rig.run(rig.host(**variables)))["total"] > 0
    assert rig.unreachable(host_key_checking="strict", host=rig.host(**variables)).reason == (
        UnreachableReason.HOST_KEY_UNKNOWN  # --host-key-checking on the command line wins
    )


def test_hashed_and_wildcard_known_hosts_entries_match(rig: Rig):
    keygen = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
    subprocess.run(
        [keygen, "-q", "-H", "-f", str(rig.known_hosts)], check=True, capture_output=True
    )
    assert "|1|" in rig.known_hosts.read_text()
    assert memory_of(rig.run())["total"] > 0
    pattern = (
        f"[127.0.0.*]:{rig.server.port},!nothing.example {public_key_line(rig.server.host_key)}"
    )
    rig.known_hosts.write_text(pattern + "\n")
    assert memory_of(rig.run(rig.host(TARGETS[1])))["total"] > 0


def test_a_known_key_type_is_negotiated_in_preference(rig: Rig):
    # The server also has an ed25519 key (what paramiko would pick); known_hosts has only ECDSA.
    line = rig.server.known_hosts_line(TARGETS[0], rig.server.ecdsa_host_key)
    rig.known_hosts.write_text(line + "\n")
    assert memory_of(rig.run())["total"] > 0


def test_revoked_host_key_is_refused(rig: Rig):
    with rig.known_hosts.open("a") as handle:
        handle.write(f"@revoked * {public_key_line(rig.server.host_key)}\n")
    failure = rig.unreachable()
    assert failure.reason == UnreachableReason.HOST_KEY_CHANGED
    assert "@revoked" in failure.message


def test_known_hosts_files_are_read_once_per_transport(rig: Rig):
    transport = SSHTransport(rig.options(host_key_checking="strict"))
    payload = build_payload(MEMORY_BATCH)
    try:
        assert memory_of(transport.run_batch(rig.host(TARGETS[0]), payload, 30))["total"] > 0
        rig.known_hosts.write_text("")  # not read again: the run keeps the keys it loaded
        assert memory_of(transport.run_batch(rig.host(TARGETS[1]), payload, 30))["total"] > 0
    finally:
        transport.close()
    # a transport that reads the emptied file knows no key: strict checking refuses the host
    failure = rig.unreachable(host=rig.host(TARGETS[1]), host_key_checking="strict")
    assert failure.reason == UnreachableReason.HOST_KEY_UNKNOWN


# --- ~/.ssh/config, ProxyJump, ProxyCommand ---------------------------------------------------


def test_ssh_config_supplies_hostname_port_user_and_key(rig: Rig):
    config = rig.tmp / "ssh_config"
    config.write_text(
        f"Host web-alias\n  HostName {TARGETS[2]}\n  Port {rig.server.port}\n"
        f"  User {rig.server.user}\n  IdentityFile {rig.server.client_key}\n"
    )
    host = Host("web-alias", vars={"ansible_python_interpreter": sys.executable})
    mark = rig.log_mark()
    result = rig.run(host, ssh_config=str(config), private_key=None)
    assert memory_of(result)["total"] > 0
    assert rig.connections_since(mark, TARGETS[2]) == 1


def test_proxy_jump_shares_one_connection_per_jump_host(rig: Rig):
    jump = f"-J {rig.server.user}@{TARGETS[0]}:{rig.server.port}"
    hosts = [rig.host(address, ansible_ssh_common_args=jump) for address in TARGETS[1:]]
    transport = SSHTransport(rig.options())
    payload = build_payload(MEMORY_BATCH)
    mark = rig.log_mark()
    try:
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            results = list(pool.map(lambda h: transport.run_batch(h, payload, 30), hosts))
    finally:
        transport.close()
    assert all(memory_of(r)["total"] > 0 for r in results)
    assert rig.connections_since(mark, TARGETS[0]) == 1
    for address in TARGETS[1:]:
        assert rig.connections_since(mark, address) == 1


def test_proxy_jump_through_a_host_that_forbids_forwarding_fails_clearly(rig: Rig):
    config = rig.tmp / "ssh_config"
    config.write_text(f"Host *\n  ProxyJump {rig.server.user}@{NO_FORWARDING}:{rig.server.port}\n")
    failure = rig.unreachable(ssh_config=str(config))
    assert failure.reason == UnreachableReason.ERROR
    assert f"jump host {NO_FORWARDING}:{rig.server.port}" in failure.message
    assert "AllowTcpForwarding" in failure.message


def test_proxy_command_from_ansible_ssh_common_args(rig: Rig):
    ssh = shutil.which("ssh") or "/usr/bin/ssh"
    proxy = (
        f"{ssh} -F /dev/null -W %h:%p -p {rig.server.port} -i {rig.server.client_key} "
        f"-o BatchMode=yes -o UserKnownHostsFile={rig.known_hosts} "
        f"-o StrictHostKeyChecking=yes {rig.server.user}@{TARGETS[0]}"
    )
    host = rig.host(TARGETS[3], ansible_ssh_common_args=f"-o ProxyCommand='{proxy}'")
    mark = rig.log_mark()
    assert memory_of(rig.run(host))["total"] > 0
    assert rig.connections_since(mark, TARGETS[0]) == 1  # the proxy's own ssh
    assert rig.connections_since(mark, TARGETS[3]) == 1


def test_failing_proxy_command_reports_its_error(rig: Rig):
    host = rig.host(ansible_ssh_common_args="-o ProxyCommand='sh -c \"echo no route >&2; exit 3\"'")
    failure = rig.unreachable(host)
    assert failure.reason == UnreachableReason.ERROR
    assert "exited with status 3" in failure.message
    assert "no route" in failure.message


# --- what the remote command is, and how its failures read --------------------------------------


def test_remote_command_quotes_every_word_and_uses_sudo_only_when_needed():
    plain = remote_command("python3", False, "root", "sudo", "deploy")
    assert plain.startswith("python3 -c 'import sys,zlib;")
    become = remote_command("'/opt/my py/bin/python3' -E", True, "root", "sudo", "deploy")
    assert become.startswith("sudo -n -u root -- '/opt/my py/bin/python3' -E -c 'import sys,")
    assert remote_command("python3", True, "root", "sudo", "root") == plain
    with pytest.raises(Unreachable) as info:
        remote_command("python3", True, "root", "su", "deploy")
    assert info.value.reason == UnreachableReason.SUDO


@pytest.mark.parametrize(
    ("status", "stderr", "reason"),
    [
        (1, "sudo: a password is required\n", UnreachableReason.SUDO),
        (1, "sudo: sorry, you must have a tty to run sudo\n", UnreachableReason.SUDO),
        (127, "bash: line 1: sudo: command not found\n", UnreachableReason.SUDO),
        (1, "sudo: python3: command not found\n", UnreachableReason.NO_PYTHON),
        (127, "sh: 1: python3: not found\n", UnreachableReason.NO_PYTHON),
        (
            1,
            "AttributeError: 'file' object has no attribute 'buffer'\n",
            UnreachableReason.NO_PYTHON,
        ),
    ],
)
def test_target_failures_are_classified(
    rig: Rig, status: int, stderr: str, reason: UnreachableReason
):
    endpoint = SSHTransport(rig.options()).endpoint(rig.host())
    failure = target_failure(ExecResult(status, b"", stderr.encode()), "python3", endpoint)
    assert failure is not None and failure.reason == reason
    assert stderr.strip() in failure.message
    ok = ExecResult(0, b'__CHECKRUN_RESULT__{"version": 1, "results": []}\n', stderr.encode())
    assert target_failure(ok, "python3", endpoint) is None


def test_a_missing_ssh_config_given_explicitly_is_an_input_error(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        SSHTransport(SSHOptions(ssh_config=str(tmp_path / "missing_config")))
    assert "missing_config" in info.value.message
    assert "--ssh-config" in (info.value.hint or "")
