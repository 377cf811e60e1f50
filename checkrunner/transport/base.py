"""What every transport does: run one batch program on one host and hand back its stdout."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

# Host key checking policies (--host-key-checking). Here rather than in ssh_known_hosts so
# that the command line can offer them without importing hashlib and hmac.
STRICT = "strict"
ACCEPT_NEW = "accept-new"
OFF = "off"
CHECKING_MODES = (STRICT, ACCEPT_NEW, OFF)

# The most stdout read from one batch: a target that sends more is cut off (and its
# answer rejected) instead of filling the control node's memory.
MAX_OUTPUT_BYTES = 64 * 1024**2
MAX_STDERR_BYTES = 1024**2  # kept of stderr; a crash's traceback is far shorter
# Kept connections: a live target process that gets no request for this long exits.
LIVE_IDLE_TIMEOUT = 15 * 60.0


@dataclass
class ExecResult:
    exit_status: int
    stdout: bytes
    stderr: bytes
    overflow: bool = False  # stdout passed MAX_OUTPUT_BYTES and the batch was stopped
    sent_bytes: int = 0  # what went to the target for this batch (program, request)
    received_bytes: int = 0  # what came back (stdout and stderr)


# TransportEvent kinds: a kept connection opened for the first time, opened again after one
# was lost or closed, and lost (its detail says why).
EVENT_KINDS = ("connected", "reconnected", "lost")


@dataclass(frozen=True)
class TransportEvent:
    """What happened to a host's kept connection; handed to Transports' on_event from the
    host's worker thread."""

    kind: str  # one of EVENT_KINDS
    host: str
    detail: str = ""


class Transport(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def run_batch(self, host, payload: bytes, timeout: float) -> ExecResult:
        """Run the compressed batch program on `host` within `timeout` seconds.

        Raises Unreachable when the host or its interpreter cannot be reached.
        """

    def run_kept(self, host: Any, batch: Any, timeout: float) -> ExecResult:
        """Run `batch` (a payload.Batch) through `host`'s kept connection and live process.

        Transports that keep nothing run the one-shot program."""
        from checkrunner.transport.payload import build_payload

        return self.run_batch(host, build_payload(batch), timeout)

    def configure_kept(self, on_event: Any, idle_timeout: float) -> None:  # noqa: B027
        """Kept connections: report what happens to them to `on_event(TransportEvent)` (or
        None), and let a live process that gets no request for `idle_timeout` seconds leave.
        An optional hook; no-op by default."""

    def forget(self, host_name: str) -> None:  # noqa: B027 - optional hook; no-op by default
        """Close the kept connections of `host_name` now."""

    def abort(self) -> None:  # noqa: B027 - optional hook; no-op by default
        """Stop every batch still running (Ctrl-C); their hosts end as interrupted."""

    def close(self) -> None:  # noqa: B027 - optional hook; no-op by default
        """Release connections; called once when the run ends."""
