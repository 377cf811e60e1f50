"""Transports: the one owner of a run's transports and every connection they hold.

Like httpx's Client owning its transport and connection pool, a Transports object is made by
the caller (checkrunner.app), handed to the runner, and lives as long as the caller wants:
one run today, a watch process later. It builds each transport on first use (paramiko is
imported only when an ssh host is reached), shares it between all hosts of that connection
type (jump hosts, the known_hosts cache and the deadline watchdog live in the ssh one),
aborts every batch on Ctrl-C and closes every connection once, at the end.

With keep_alive (watch mode) each (host, become) keeps one connection and one live target
process across calls (transport/live.py); without it every call is one exec of the one-shot
program, exactly as a run has always done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from checkrunner.errors import Unreachable
from checkrunner.transport.base import LIVE_IDLE_TIMEOUT, ExecResult, Transport, TransportEvent
from checkrunner.transport.payload import Batch, build_payload

SUPPORTED_CONNECTIONS = ("local", "ssh")  # Host maps smart/paramiko/paramiko_ssh to "ssh"


class Transports:
    """The run's transports by connection type ("local", "ssh").

    `ssh_options` (an SSHOptions) configures the ssh transport when it is built. `local` and
    `ssh` replace the transport built for that connection type: tests hand in an in-process
    one, a caller may share one between runs. `keep_alive` keeps connections and live target
    processes between calls; `on_event` hears of them (TransportEvent, from worker threads);
    a live process that gets no request for `idle_timeout` seconds exits on its own (make it
    longer than the longest pause between two rounds of a host).
    """

    def __init__(
        self,
        ssh_options: Any = None,
        *,
        local: Transport | None = None,
        ssh: Transport | None = None,
        keep_alive: bool = False,
        on_event: Callable[[TransportEvent], None] | None = None,
        idle_timeout: float = LIVE_IDLE_TIMEOUT,
    ):
        self.ssh_options = ssh_options
        self.keep_alive = keep_alive
        self.on_event = on_event
        self.idle_timeout = idle_timeout  # a live process without a request this long leaves
        self._given = {name: t for name, t in (("local", local), ("ssh", ssh)) if t is not None}
        self._built: dict[str, Transport] = {}
        self._lock = threading.Lock()

    def run_batch(self, host: Any, batch: Batch, timeout: float) -> ExecResult:
        """Run `batch` on `host` within `timeout` seconds: one exec of the one-shot program, or
        with keep_alive a request to the host's live process. Unreachable, ProtocolError."""
        transport = self.for_host(host)
        if self.keep_alive:
            return transport.run_kept(host, batch, timeout)
        return transport.run_batch(host, build_payload(batch), timeout)

    def forget(self, host_name: str) -> None:
        """Close `host_name`'s kept connections now; its next call connects again."""
        for transport in self._transports():
            transport.forget(host_name)

    def for_host(self, host: Any) -> Transport:
        """The transport for `host`, built on first use: Unreachable for an unsupported
        connection type, ConfigError for unusable connection settings."""
        unsupported = unsupported_connection(host)
        if unsupported is not None:
            raise unsupported
        check_connection(host)
        with self._lock:
            transport = self._built.get(host.connection)
            if transport is None:
                transport = self._given.get(host.connection) or self._build(host.connection)
                if self.keep_alive:
                    transport.configure_kept(self.on_event, self.idle_timeout)
                self._built[host.connection] = transport
            return transport

    def prepare(self, hosts: Iterable[Any]) -> None:
        """Build now each transport these hosts need, so that a bad ssh config stops the run
        before anything runs (exit 5); hosts of unsupported connection types are skipped
        (they are reported unreachable)."""
        first_host_per_connection = {host.connection: host for host in reversed(list(hosts))}
        for host in first_host_per_connection.values():
            if unsupported_connection(host) is None:
                self.for_host(host)

    def abort(self) -> None:
        """Stop every batch still running, on every transport (Ctrl-C)."""
        for transport in self._transports():
            transport.abort()

    def close(self) -> None:
        """Close every connection opened so far (shared jump hosts included) and stop the
        transports' helper threads; the transports may be used again afterwards."""
        for transport in self._transports():
            transport.close()

    def __enter__(self) -> Transports:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _transports(self) -> list[Transport]:
        with self._lock:
            return list(self._built.values())

    def _build(self, connection: str) -> Transport:
        if connection == "local":
            from checkrunner.transport.local import LocalTransport

            return LocalTransport()
        # paramiko is heavy to import: only runs that reach SSH hosts pay for it, and they
        # skip the parts of its start-up that checkrunner never uses
        from checkrunner.transport.paramiko_import import import_paramiko

        import_paramiko(getattr(self.ssh_options, "ssh_config", None))
        from checkrunner.transport.ssh import SSHTransport

        return SSHTransport(self.ssh_options)


def check_connection(host: Any) -> None:
    """ConfigError unless `host`'s connection settings are usable (cheap: no I/O). For ssh
    hosts this refuses, at the inventory line, the host names, users and ports that OpenSSH
    refuses, before any of them can reach a ProxyCommand. An unsupported connection type is
    no input error: see unsupported_connection."""
    check_settings = getattr(host, "check_ssh_settings", None)
    if host.connection == "ssh" and check_settings is not None:
        check_settings()


def unsupported_connection(host: Any) -> Unreachable | None:
    """Why checkrunner cannot run anything on `host` (ansible_connection=winrm ...), or None."""
    if host.connection in SUPPORTED_CONNECTIONS:
        return None
    from checkrunner.errors import did_you_mean
    from checkrunner.results import UnreachableReason

    typo = did_you_mean(host.connection.lower(), ("ssh", "local", "paramiko", "smart"))
    return Unreachable(
        UnreachableReason.UNSUPPORTED_CONNECTION,
        f"ansible_connection '{host.connection}' is not supported: checkrunner runs checks "
        f"over ssh or locally{f' ({typo})' if typo else ''}",
    )
