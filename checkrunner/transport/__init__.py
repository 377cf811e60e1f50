"""Transports: local and ssh. A transport knows nothing about checks."""

from __future__ import annotations

import os
import sys
import threading

from checkrunner.transport.base import ExecResult, Transport, Unreachable
from checkrunner.transport.local import LocalTransport
from checkrunner.transport.payload import (
    Batch,
    BatchCheck,
    BatchOptions,
    ProtocolError,
    build_payload,
    parse_output,
)

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
            # paramiko takes ~90 ms to import: only runs that reach SSH hosts pay for it
            _skip_invoke_unless_needed(_ssh_options)
            from checkrunner.transport.ssh import SSHTransport

            _ssh = SSHTransport(_ssh_options)
        return _ssh


def _skip_invoke_unless_needed(options) -> None:
    """Keep paramiko from importing `invoke` (~30 ms: asyncio, unittest.mock) when unused.

    paramiko needs invoke only to evaluate `Match exec` in an ssh config. When the config
    file has none and includes no other file, paramiko is told invoke is absent.
    """
    if "invoke" in sys.modules or "paramiko" in sys.modules:
        return
    path = getattr(options, "ssh_config", None) if options is not None else None
    if path is not None and path.lower() == "none":
        sys.modules["invoke"] = None  # type: ignore[assignment]
        return
    candidate = os.path.expanduser(path or "~/.ssh/config")
    try:
        with open(candidate, encoding="utf-8", errors="replace") as config:
            text = config.read().lower()
    except OSError:
        text = ""
    if "exec" not in text and "include" not in text:
        sys.modules["invoke"] = None  # type: ignore[assignment]


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
