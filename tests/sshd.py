"""A real OpenSSH server for tests: keys made with ssh-keygen, one sshd on several loopback addresses.

    with running_sshd(tmp_path, ["127.0.0.2", "127.0.0.3"]) as server:
        server.port, server.client_key, server.known_hosts_line("127.0.0.2")

Only the sshd process started here is ever stopped (by its pid). The sessions sshd forks for
clients end with their connections.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")
MAX_LISTEN_ADDRESSES = 16  # OpenSSH's MAX_LISTEN_SOCKS
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3


def sshd_available() -> bool:
    return os.access(SSHD, os.X_OK) and os.access(SSH_KEYGEN, os.X_OK)


def generate_key(path: Path, comment: str = "checkrunner-test", keytype: str = "ed25519") -> Path:
    """An unencrypted key pair at `path` and `path`.pub (ed25519 unless `keytype` says)."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", keytype, "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return path


def public_key_line(private_key: Path) -> str:
    """`type base64` of a key pair's public half (no comment)."""
    keytype, blob = Path(f"{private_key}.pub").read_text().split()[:2]
    return f"{keytype} {blob}"


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


@dataclass
class SSHServer:
    """A running sshd and the files it uses."""

    directory: Path
    addresses: list[str]
    port: int
    host_key: Path  # ed25519: what clients negotiate unless they prefer another type
    ecdsa_host_key: Path  # a second host key, for clients that only know this one
    client_key: Path
    user: str
    config: Path
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def known_hosts_line(self, address: str, key: Path | None = None) -> str:
        """The known_hosts line for this server's (ed25519) key at `address`."""
        return f"[{address}]:{self.port} {public_key_line(key or self.host_key)}"

    def write_known_hosts(self, path: Path, addresses: list[str] | None = None) -> Path:
        lines = [self.known_hosts_line(a) for a in (addresses or self.addresses)]
        path.write_text("\n".join(lines) + "\n")
        return path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def crash(self) -> None:
        """The target goes down: the listening sshd and every session it forked (which
        would keep kept connections alive) are killed, by the pids this server started."""
        kill_sessions(self, listener_too=True)
        self.stop()

    def stop(self) -> None:
        """Stop the listening sshd this object started (by pid), and reap it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def sshd_config_text(server: SSHServer, pid_file: Path, authorized_keys: Path, extra: str) -> str:
    listen = "\n".join(f"ListenAddress {a}" for a in server.addresses)
    root_login = "prohibit-password" if os.geteuid() == 0 else "no"
    return f"""\
Port {server.port}
{listen}
HostKey {server.host_key}
HostKey {server.ecdsa_host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
StrictModes no
UsePAM no
PermitRootLogin {root_login}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 200:30:400
MaxSessions 64
MaxAuthTries 6
LoginGraceTime 30
UseDNS no
PrintMotd no
AllowTcpForwarding yes
LogLevel VERBOSE
{extra}
"""


@contextmanager
def running_sshd(
    directory: Path, addresses: list[str], extra_config: str = ""
) -> Iterator[SSHServer]:
    """Start sshd on `addresses` (same port on each), yield it, stop it."""
    if not 1 <= len(addresses) <= MAX_LISTEN_ADDRESSES:
        raise ValueError(f"sshd listens on 1 to {MAX_LISTEN_ADDRESSES} addresses")
    directory.mkdir(parents=True, exist_ok=True)
    server = _prepare(directory, addresses)
    try:
        _start(server, extra_config)
        yield server
    finally:
        server.stop()


def restart_sshd(server: SSHServer) -> None:
    """Start a stopped server again on the same port with the same keys and config (a target
    back after a crash or a reboot)."""
    with server.log.open("ab") as log:
        server.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(server.config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    _wait_until_listening(server)


def _prepare(directory: Path, addresses: list[str]) -> SSHServer:
    server = SSHServer(
        directory=directory,
        addresses=list(addresses),
        port=0,
        host_key=generate_key(directory / "ssh_host_ed25519_key", "test-host-key"),
        ecdsa_host_key=generate_key(directory / "ssh_host_ecdsa_key", "test-host-key", "ecdsa"),
        client_key=generate_key(directory / "client_key", "test-client-key"),
        user=getpass.getuser(),
        config=directory / "sshd_config",
        log=directory / "sshd.log",
    )
    authorized_keys = server.directory / "authorized_keys"
    authorized_keys.write_text(public_key_line(server.client_key) + "\n")
    authorized_keys.chmod(0o600)
    return server


def _write_config(server: SSHServer, extra_config: str) -> None:
    authorized_keys = server.directory / "authorized_keys"
    pid_file = server.directory / "sshd.pid"
    server.config.write_text(sshd_config_text(server, pid_file, authorized_keys, extra_config))


def _start(server: SSHServer, extra_config: str) -> None:
    """Start sshd on a free port; another port if that one was taken in the meantime."""
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    for attempt in range(START_ATTEMPTS):
        server.port = free_port(server.addresses[0])
        _write_config(server, extra_config)
        with server.log.open("ab") as log:
            server.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(server.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        try:
            _wait_until_listening(server)
            return
        except RuntimeError:
            server.stop()
            if "Address already in use" not in server.log_text() or attempt + 1 == START_ATTEMPTS:
                raise


def _wait_until_listening(server: SSHServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    pending = list(server.addresses)
    while pending:
        if server.process is None or server.process.poll() is not None:
            raise RuntimeError(f"sshd exited while starting:\n{server.log_text()}")
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"sshd not listening on {pending} after {START_TIMEOUT}s")
        pending = [a for a in pending if not _accepts(a, server.port)]
        if pending:
            time.sleep(0.02)


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5) as sock:
            sock.settimeout(2.0)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def session_pids(server: SSHServer) -> list[int]:
    """Every process below this server's listening sshd: its sessions and what they run."""
    if server.process is None:
        return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    pending = list(children.get(server.process.pid, []))
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def kill_sessions(server: SSHServer, listener_too: bool = False) -> None:
    """SIGKILL every session of this server (what a host's crash does to its connections),
    and the listening sshd too when `listener_too`.

    A process forked between reading /proc and the kill would be reparented away from the
    listener and escape, keeping a kept connection alive: so the listener and every session
    are first stopped (a stopped process cannot fork), re-reading until no new one appears,
    and only then killed."""
    if server.process is None or server.process.poll() is not None:
        return
    listener = server.process.pid
    os.kill(listener, signal.SIGSTOP)
    stopped: set[int] = set()
    try:
        while new := [pid for pid in session_pids(server) if pid not in stopped]:
            for pid in new:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            stopped.update(new)
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    finally:
        os.kill(listener, signal.SIGKILL if listener_too else signal.SIGCONT)


def restart(server: SSHServer, new_host_key: bool = False) -> None:
    """A reboot: the sessions killed, sshd stopped and started again on the same port (with a
    fresh ed25519 host key when `new_host_key`: the host was replaced)."""
    kill_sessions(server)
    server.stop()
    if new_host_key:
        server.host_key.unlink()
        Path(f"{server.host_key}.pub").unlink()
        generate_key(server.host_key, "test-host-key")
    restart_sshd(server)
