"""Transports: local and ssh. A transport knows nothing about checks."""

from __future__ import annotations

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
    "build_payload",
    "get_transport",
    "parse_output",
]

_LOCAL = LocalTransport()


def get_transport(host) -> Transport:
    if host.connection == "local":
        return _LOCAL
    from checkrunner.errors import ConfigError

    raise ConfigError(
        f"host '{host.name}' uses connection '{host.connection}', which this release cannot run yet",
        hint="set ansible_connection=local for hosts this machine should check itself",
    )
