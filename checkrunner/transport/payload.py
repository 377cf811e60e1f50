"""The one program a target runs per run: batch runner + module sources + the batch, compressed."""

from __future__ import annotations

import functools
import json
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from checkrunner import catalog, settings
from checkrunner.transport.answer import PROTOCOL_VERSION

# What the target executes; the compressed program arrives on its stdin. A become password
# line may precede it (for `sudo -S`); when sudo did not read it, it is skipped here: the
# program itself always starts with zlib's header.
BOOTSTRAP = (
    "import sys,zlib;d=sys.stdin.buffer.read();"
    "exec(zlib.decompress(d if d[:2]==b'x\\x9c' else d[d.find(b'\\n')+1:]))"
)


def with_become_password(payload: bytes, password: str | None) -> bytes:
    """The stdin of a `sudo -S` batch: the password line, then the program."""
    return payload if password is None else password.encode("utf-8") + b"\n" + payload


@dataclass
class BatchCheck:
    id: str
    module: str
    args: dict[str, Any]
    timeout: float

    @property
    def window(self) -> float | None:
        """Seconds of shared sampling window the check asks for: the value of its module's
        `window_option`; 0 when its `window_if` option is off; None when the module declares
        none or the arguments lack it."""
        info = catalog.get(self.module)
        if info.window_if and not self.args.get(info.window_if):
            return 0.0
        option = info.window_option
        value = self.args.get(option) if option else None
        return None if value is None else float(value)

    def to_wire(self) -> dict[str, Any]:
        wire = {"id": self.id, "module": self.module, "args": self.args, "timeout": self.timeout}
        if self.window is not None:
            wire["window"] = self.window
        return wire


@dataclass
class BatchOptions:
    psutil: bool = True
    max_parallel: int = 16
    # the batch runs at lower CPU priority so a check never hurts its host
    nice: int = settings.TARGET_NICE.default
    memory_limit: int = settings.TARGET_MEMORY_LIMIT.default  # RLIMIT_DATA bytes; 0: none

    def to_wire(self) -> dict[str, Any]:
        return {
            "psutil": self.psutil,
            "max_parallel": self.max_parallel,
            "nice": self.nice,
            "memory_limit": self.memory_limit,
        }


@dataclass
class Batch:
    checks: list[BatchCheck]
    options: BatchOptions = field(default_factory=BatchOptions)

    def to_wire(self) -> dict[str, Any]:
        return {
            "version": PROTOCOL_VERSION,
            "options": self.options.to_wire(),
            "checks": [c.to_wire() for c in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_wire())


def build_payload(batch: Batch) -> bytes:
    """Compressed Python source that runs `batch` on the target and prints the results."""
    batch_json = batch.to_json()
    # The hosts' threads all ask at once when a run starts: one builds, the others wait for
    # its result instead of each building (and compressing) the same program again.
    with _BUILD_LOCK:
        return _payload_for(batch_json)


_BUILD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=256)
def _payload_for(batch_json: str) -> bytes:
    # Hosts of one play usually get the very same batch: compress it once, not once per host.
    sources = catalog.batch_sources({check["module"] for check in json.loads(batch_json)["checks"]})
    program = "\n".join([catalog.batch_runner_source(), f"_main({sources!r}, {batch_json!r})", ""])
    return zlib.compress(program.encode("utf-8"), 6)
