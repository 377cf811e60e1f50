"""What every transport does: run one batch program on one host and hand back its stdout."""

from __future__ import annotations

import abc
from dataclasses import dataclass

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


@dataclass
class ExecResult:
    exit_status: int
    stdout: bytes
    stderr: bytes
    overflow: bool = False  # stdout passed MAX_OUTPUT_BYTES and the batch was stopped


class Transport(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def run_batch(self, host, payload: bytes, timeout: float) -> ExecResult:
        """Run the compressed batch program on `host` within `timeout` seconds.

        Raises Unreachable when the host or its interpreter cannot be reached.
        """

    def abort(self) -> None:  # noqa: B027 - optional hook; no-op by default
        """Stop every batch still running (Ctrl-C); their hosts end as interrupted."""

    def close(self) -> None:  # noqa: B027 - optional hook; no-op by default
        """Release connections; called once when the run ends."""
