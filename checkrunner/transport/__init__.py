"""Transports: local and ssh. A transport knows nothing about checks.

A run's transports and their connections belong to one Transports object (pool.py), made by
the caller and handed to the runner; nothing here keeps connection state in module globals.
"""

from __future__ import annotations

from checkrunner.errors import ProtocolError, Unreachable
from checkrunner.transport.answer import parse_output, read_answer
from checkrunner.transport.base import ExecResult, Transport, TransportEvent
from checkrunner.transport.local import LocalTransport
from checkrunner.transport.payload import Batch, BatchCheck, BatchOptions, build_payload
from checkrunner.transport.pool import (
    SUPPORTED_CONNECTIONS,
    Transports,
    check_connection,
    unsupported_connection,
)

__all__ = [
    "SUPPORTED_CONNECTIONS",
    "Batch",
    "BatchCheck",
    "BatchOptions",
    "ExecResult",
    "LocalTransport",
    "ProtocolError",
    "Transport",
    "TransportEvent",
    "Transports",
    "Unreachable",
    "build_payload",
    "check_connection",
    "parse_output",
    "read_answer",
    "unsupported_connection",
]
