"""Transports: local and ssh. A transport knows nothing about checks."""

from __future__ import annotations

import threading

from checkrunner.transport.answer import ProtocolError, parse_output, read_answer
from checkrunner.transport.base import ExecResult, Transport, Unreachable
from checkrunner.transport.local import LocalTransport
from checkrunner.transport.payload import Batch, BatchCheck, BatchOptions, build_payload

__all__ = [
    "Batch",
    "BatchCheck",
    "BatchOptions",
    "ExecResult",
    "LocalTransport",
    "ProtocolError",
    "Transport",
    "Unreachable",
    "abort_transports",
    "build_payload",
    "check_connection",
    "close_transports",
    "configure_ssh",
    "get_transport",
    "parse_output",
    "read_answer",
]

_LOCAL = LocalTransport()
SUPPORTED_CONNECTIONS = ("local", "ssh")  # Host maps smart/paramiko/paramiko_ssh to "ssh"
_ssh: Transport | None = None
_ssh_options = None  # SSHOptions of this run; defaults when never configured
_ssh_lock = threading.Lock()


def check_connection(host) -> None:
    """ConfigError unless checkrunner can reach `host` with its connection type (cheap: no I/O)."""
    if host.connection in SUPPORTED_CONNECTIONS:
        return
    from checkrunner.errors import ConfigError

    raise ConfigError(
        f"host '{host.name}' uses connection '{host.connection}', which checkrunner cannot run",
        hint="use ansible_connection=ssh (the default) or local",
    )


def configure_ssh(options) -> None:
    """The ssh settings of this run (command line); call before build_plan."""
    global _ssh, _ssh_options
    with _ssh_lock:
        if _ssh is not None:
            _ssh.close()
        _ssh, _ssh_options = None, options


def get_transport(host) -> Transport:
    """The transport for `host`; the SSH one is built on first use (ConfigError if misconfigured)."""
    global _ssh
    check_connection(host)
    if host.connection == "local":
        return _LOCAL
    with _ssh_lock:
        if _ssh is None:
            # paramiko is heavy to import: only runs that reach SSH hosts pay for it, and
            # they skip the parts of its start-up that checkrunner never uses
            from checkrunner.transport.paramiko_import import import_paramiko

            import_paramiko(getattr(_ssh_options, "ssh_config", None))
            from checkrunner.transport.ssh import SSHTransport

            _ssh = SSHTransport(_ssh_options)
        return _ssh


def abort_transports() -> None:
    """Stop every batch still running, on any transport (Ctrl-C)."""
    _LOCAL.abort()
    with _ssh_lock:
        if _ssh is not None:
            _ssh.abort()


def close_transports() -> None:
    """Close every connection this run opened (shared jump hosts included)."""
    with _ssh_lock:
        if _ssh is not None:
            _ssh.close()
