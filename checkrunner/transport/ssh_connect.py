"""Open an authenticated SSH connection with paramiko, mapping every failure to a reason.

TCP (direct, through a ProxyJump chain, or through a ProxyCommand), then the SSH handshake
within the connect timeout, then the host key check, then public-key (and password)
authentication. Jump hosts are connected once and shared by all the targets behind them.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import paramiko

from checkrunner.errors import Unreachable
from checkrunner.results import UnreachableReason
from checkrunner.transport.ssh_config import Endpoint, SSHOptions
from checkrunner.transport.ssh_keys import KeyRing
from checkrunner.transport.ssh_known_hosts import HostKeyChecker, PresentedKey

JUMP_RETRY_AFTER = 5.0  # a failed jump host is not retried by every target behind it at once
_PROXY_STOP_GRACE = 2.0

# paramiko names the key algorithms it negotiates; known_hosts names key types.
_ALGORITHMS_FOR_TYPE = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}


@dataclass
class Connection:
    """An authenticated SSH transport and what must be released with it."""

    endpoint: Endpoint
    transport: paramiko.Transport
    proxy: ProxyProcess | None = None

    def close(self) -> None:
        self.transport.close()
        if self.proxy is not None:
            self.proxy.stop()


class Connector:
    """Opens Connections; holds the jump-host connections shared across targets."""

    def __init__(self, options: SSHOptions, checker: HostKeyChecker):
        self.keys = KeyRing(options)
        self.checker = checker
        self._jumps = _JumpPool(self)

    def connect(
        self,
        endpoint: Endpoint,
        deadline: float,
        on_transport: Callable[[paramiko.Transport], None] | None = None,
    ) -> Connection:
        """An authenticated connection to `endpoint`, or Unreachable; never past `deadline`."""
        connect_deadline = min(deadline, time.monotonic() + endpoint.connect_timeout)
        connection = _new_connection(endpoint, *self._open_socket(endpoint, connect_deadline))
        transport = connection.transport
        try:
            if on_transport is not None:
                on_transport(transport)
            self._handshake(connection, connect_deadline)
            self.checker.verify(endpoint.host_key_request, _presented_key(transport))
            auth_deadline = min(deadline, time.monotonic() + endpoint.connect_timeout)
            self.keys.authenticate(transport, endpoint, auth_deadline)
        except BaseException:
            connection.close()
            raise
        return connection

    def abort(self) -> None:
        self._jumps.close()

    def close(self) -> None:
        self._jumps.close()

    def _open_socket(self, endpoint: Endpoint, deadline: float) -> tuple[Any, ProxyProcess | None]:
        if endpoint.jumps:
            return self._jumps.channel(endpoint.jumps, endpoint, deadline), None
        if endpoint.proxy_command:
            proxy = ProxyProcess.start(endpoint)
            return proxy.sock, proxy
        return tcp_connect(endpoint.hostname, endpoint.port, _remaining(deadline)), None

    def _handshake(self, connection: Connection, deadline: float) -> None:
        transport, endpoint = connection.transport, connection.endpoint
        _prefer_known_key_types(transport, self.checker.known_types(endpoint.host_key_request))
        budget = _remaining(deadline)
        transport.banner_timeout = budget
        transport.handshake_timeout = budget
        try:
            transport.start_client(timeout=budget)
        except paramiko.SSHException as exc:
            raise _handshake_failure(connection, exc, budget) from None
        except (OSError, EOFError) as exc:
            raise _handshake_failure(connection, exc, budget) from None
        if not transport.initial_kex_done:
            raise _handshake_timeout(connection, budget)


def _new_connection(endpoint: Endpoint, sock: Any, proxy: ProxyProcess | None) -> Connection:
    try:
        transport = paramiko.Transport(sock)
    except BaseException:
        sock.close()
        if proxy is not None:
            proxy.stop()
        raise
    return Connection(endpoint, transport, proxy)


def tcp_connect(hostname: str, port: int, timeout: float) -> socket.socket:
    """A connected TCP socket; DNS, refusal and timeout each become their own reason."""
    where = f"{hostname}:{port}"
    try:
        return socket.create_connection((_ascii_host(hostname), port), timeout=timeout)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: not a valid host name at all
        detail = exc.strerror if isinstance(exc, socket.gaierror) else "not a valid host name"
        raise Unreachable(
            UnreachableReason.DNS,
            f"cannot resolve '{hostname}': {detail or exc}; check ansible_host or the "
            f"HostName in ~/.ssh/config",
        ) from None
    except ConnectionRefusedError:
        raise Unreachable(
            UnreachableReason.REFUSED,
            f"{where} refused the connection: is sshd running there, and on that port "
            f"(ansible_port)?",
        ) from None
    except (socket.timeout, TimeoutError):
        raise Unreachable(
            UnreachableReason.TIMEOUT,
            f"no TCP connection to {where} within {timeout:.3g}s (firewall, or host down?)",
        ) from None
    except OSError as exc:
        raise Unreachable(
            UnreachableReason.ERROR, f"cannot connect to {where}: {exc.strerror or exc}"
        ) from None


def _ascii_host(hostname: str) -> str | bytes:
    """An ASCII host name as the bytes the "idna" codec would make of it (the same bytes,
    the same length checks), so that getaddrinfo skips the codec, whose import (with
    stringprep and unicodedata) costs about 1 ms. Other names go to the codec as before."""
    try:
        encoded = hostname.encode("ascii")
    except UnicodeEncodeError:
        return hostname
    *labels, last = encoded.split(b".")
    if all(0 < len(label) < 64 for label in labels) and len(last) < 64:
        return encoded
    return hostname  # the codec raises its UnicodeError ("label empty or too long")


def _handshake_timeout(connection: Connection, budget: float) -> Unreachable:
    where = _where(connection.endpoint)
    if not getattr(connection.transport, "remote_version", ""):
        return Unreachable(
            UnreachableReason.TIMEOUT,
            f"{where} accepted the connection but sent no SSH banner within {budget:.3g}s",
        )
    return Unreachable(
        UnreachableReason.TIMEOUT, f"{where}: SSH key exchange not finished within {budget:.3g}s"
    )


def _handshake_failure(connection: Connection, exc: BaseException, budget: float) -> Unreachable:
    where = _where(connection.endpoint)
    causes = _exception_chain(exc)
    proxy_error = connection.proxy.error_text() if connection.proxy is not None else ""
    if any(isinstance(c, (socket.timeout, TimeoutError)) for c in causes):
        return _handshake_timeout(connection, budget)
    if proxy_error:
        return Unreachable(UnreachableReason.ERROR, f"{where}: ProxyCommand failed: {proxy_error}")
    if any(isinstance(c, (EOFError, ConnectionResetError, BrokenPipeError)) for c in causes):
        return Unreachable(
            UnreachableReason.ERROR,
            f"{where} closed the connection during the SSH handshake (not an SSH server, "
            f"or sshd refused us: MaxStartups, a firewall ban, AllowUsers?)",
        )
    return Unreachable(UnreachableReason.ERROR, f"SSH handshake with {where} failed: {exc}")


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _prefer_known_key_types(transport: paramiko.Transport, known: list[str]) -> None:
    """Negotiate a host key type already on record, as OpenSSH does, so checks can match."""
    if not known:
        return
    options = transport.get_security_options()
    available = list(options.key_types)
    preferred = [a for t in known for a in _ALGORITHMS_FOR_TYPE.get(t, (t,)) if a in available]
    if preferred:
        options.key_types = tuple(dict.fromkeys([*preferred, *available]))


def _presented_key(transport: paramiko.Transport) -> PresentedKey:
    key = transport.get_remote_server_key()
    return PresentedKey(key.get_name(), key.get_base64())


def _where(endpoint: Endpoint) -> str:
    return f"{endpoint.hostname}:{endpoint.port}"


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Unreachable(UnreachableReason.TIMEOUT, "the host deadline passed while connecting")
    return remaining


@dataclass
class ProxyProcess:
    """A ProxyCommand (run like OpenSSH: `sh -c 'exec CMD'`) wired to a socket pair."""

    command: str
    sock: socket.socket
    process: subprocess.Popen
    stderr: IO[bytes]

    @classmethod
    def start(cls, endpoint: Endpoint) -> ProxyProcess:
        command = endpoint.proxy_command or ""
        ours, theirs = socket.socketpair()
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {command}"],
                stdin=theirs,
                stdout=theirs,
                stderr=stderr,
                start_new_session=True,  # Ctrl-C is ours to handle; we stop it ourselves
            )
        except OSError as exc:
            ours.close()
            stderr.close()
            raise Unreachable(
                UnreachableReason.ERROR, f"cannot start ProxyCommand `{command}`: {exc}"
            ) from None
        finally:
            theirs.close()
        return cls(command, ours, process, stderr)

    def error_text(self) -> str:
        """The command's stderr when it has ended, else ''."""
        try:
            self.process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            return ""
        self.stderr.seek(0)
        text = self.stderr.read(4096).decode("utf-8", errors="replace").strip()
        return (
            f"`{self.command}` exited with status {self.process.returncode}: {text or 'no output'}"
        )

    def stop(self) -> None:
        self.sock.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_PROXY_STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()


@dataclass
class _JumpEntry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    connection: Connection | None = None
    failure: Unreachable | None = None
    failed_at: float = 0.0


class _JumpPool:
    """One connection per jump host (per chain), shared by every target behind it."""

    def __init__(self, connector: Connector):
        self._connector = connector
        self._entries: dict[tuple[Any, ...], _JumpEntry] = {}
        self._lock = threading.Lock()

    def channel(
        self, chain: tuple[Endpoint, ...], target: Endpoint, deadline: float
    ) -> paramiko.Channel:
        """A direct-tcpip channel from the last hop of `chain` to the target's host:port."""
        connection = self._connection(chain, deadline)
        hop = chain[-1]
        try:
            return connection.transport.open_channel(
                "direct-tcpip",
                (target.hostname, target.port),
                ("127.0.0.1", 0),
                timeout=_remaining(deadline),
            )
        except paramiko.ChannelException as exc:
            raise _forward_failure(hop, target, exc) from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(
                UnreachableReason.ERROR,
                f"jump host {_where(hop)} could not open a channel to {_where(target)}: {exc}",
            ) from None

    def close(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            if entry.connection is not None:
                entry.connection.close()

    def _connection(self, chain: tuple[Endpoint, ...], deadline: float) -> Connection:
        key = tuple(hop.pool_key for hop in chain)
        with self._lock:
            entry = self._entries.setdefault(key, _JumpEntry())
        if not entry.lock.acquire(timeout=_remaining(deadline)):
            raise Unreachable(
                UnreachableReason.TIMEOUT, f"jump host {_where(chain[-1])} did not connect in time"
            )
        try:
            return self._connected(entry, chain, deadline)
        finally:
            entry.lock.release()

    def _connected(
        self, entry: _JumpEntry, chain: tuple[Endpoint, ...], deadline: float
    ) -> Connection:
        if entry.connection is not None and entry.connection.transport.is_active():
            return entry.connection
        if entry.failure is not None and time.monotonic() - entry.failed_at < JUMP_RETRY_AFTER:
            raise Unreachable(entry.failure.reason, entry.failure.message)
        hop = dataclasses.replace(chain[-1], jumps=chain[:-1])
        try:
            entry.connection = self._connector.connect(hop, deadline)
        except Unreachable as exc:
            entry.failure = Unreachable(exc.reason, f"jump host {hop.alias}: {exc.message}")
            entry.failed_at = time.monotonic()
            raise Unreachable(entry.failure.reason, entry.failure.message) from None
        entry.failure = None
        return entry.connection


def _forward_failure(
    hop: Endpoint, target: Endpoint, exc: paramiko.ChannelException
) -> Unreachable:
    where = _where(target)
    if exc.code == paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED:
        return Unreachable(
            UnreachableReason.ERROR,
            f"jump host {_where(hop)} refused to forward to {where} ({exc.text}): its sshd needs "
            f"AllowTcpForwarding yes",
        )
    if exc.code == paramiko.OPEN_FAILED_CONNECT_FAILED:
        return Unreachable(
            UnreachableReason.REFUSED,
            f"jump host {_where(hop)} could not connect to {where} ({exc.text}): is sshd running "
            f"there, and is the name resolvable from the jump host?",
        )
    return Unreachable(
        UnreachableReason.ERROR, f"jump host {_where(hop)} could not reach {where}: {exc.text}"
    )
