"""An in-process transport for runner tests: the Transport interface, no target process.

It reads the batch a run sends (the compressed program's `_main(sources, batch_json)` line)
and answers through a `respond` function the test gives it, per call: an ExecResult built by
`answer`, `crash` or `garbage`, or HANG (no answer until the host deadline or an abort), or
by raising Unreachable. Every call is recorded, so a test asserts what the runner asked for.
"""

from __future__ import annotations

import ast
import json
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from checkrunner.results import UnreachableReason
from checkrunner.transport import ExecResult, Transport, Unreachable
from checkrunner.transport.answer import PROTOCOL_VERSION, RESULT_MARKER

HANG = ExecResult(-1, b"", b"")  # a sentinel: the target never answers


@dataclass
class Call:
    """One run_batch: the host as the transport saw it and the batch it was sent."""

    host: str
    become: bool
    become_password: str | None
    check_ids: list[str]
    timeout: float
    options: dict[str, Any] = field(default_factory=dict)
    number: int = 1  # this host's first, second ... call


Respond = Callable[[Call], ExecResult]


class InProcessTransport(Transport):
    name = "in-process"

    def __init__(self, respond: Respond):
        self.respond = respond
        self.calls: list[Call] = []
        self.aborted = threading.Event()
        self.closed = 0
        self._lock = threading.Lock()

    def run_batch(self, host: Any, payload: bytes, timeout: float) -> ExecResult:
        batch = decode_batch(payload)
        with self._lock:
            number = 1 + sum(1 for c in self.calls if c.host == host.name)
            call = Call(
                host=host.name,
                become=host.become,
                become_password=host.become_password,
                check_ids=[check["id"] for check in batch["checks"]],
                timeout=timeout,
                options=batch["options"],
                number=number,
            )
            self.calls.append(call)
        result = self.respond(call)
        if result is HANG:
            if self.aborted.wait(timeout):
                raise Unreachable(UnreachableReason.ERROR, "interrupted")
            raise Unreachable(
                UnreachableReason.TIMEOUT, f"no answer within the host deadline of {timeout:g}s"
            )
        return result

    def abort(self) -> None:
        self.aborted.set()

    def close(self) -> None:
        self.closed += 1

    def calls_for(self, host: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.host == host]


def decode_batch(payload: bytes) -> dict[str, Any]:
    """The batch (version, options, checks) inside the program a target would run."""
    program = zlib.decompress(payload).decode("utf-8")
    main_line = next(line for line in reversed(program.splitlines()) if line.startswith("_main("))
    call = ast.parse(main_line, mode="eval").body
    assert isinstance(call, ast.Call)
    return json.loads(ast.literal_eval(call.args[1]))


def answer(call: Call, results: dict[str, dict[str, Any]] | None = None, **body: Any) -> ExecResult:
    """A valid answer to `call`: `results` by check id, and `body` for every other check."""
    results = results or {}
    entries = [
        {"id": check_id, "duration": 0.01, "result": results.get(check_id, body)}
        for check_id in call.check_ids
    ]
    line = json.dumps({"version": PROTOCOL_VERSION, "hostname": call.host, "results": entries})
    return ExecResult(0, f"motd noise\n{RESULT_MARKER}{line}\n".encode(), b"")


def crash(stderr: str) -> ExecResult:
    """The batch died on the target before printing results (a traceback on stderr)."""
    return ExecResult(1, b"", stderr.encode())


def garbage(after_marker: str) -> ExecResult:
    """Something after the result marker that is not a valid answer."""
    return ExecResult(0, f"{RESULT_MARKER}{after_marker}\n".encode(), b"")
