"""The Go service of the goruntime tests (tests/fixtures/goruntime/gcservice), built with
Debian's golang-go offline (standard library only; GOCACHE and GOPATH in a temporary
directory) and run on a loopback port, optionally inside a cgroup it joins before it
starts."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "fixtures" / "goruntime" / "gcservice"
LOOPBACK = "127.0.0.1"


def build() -> Path:
    """The built binary, shared by the test runs of one source (keyed by its hash)."""
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("go is missing: scripts/test.sh installs golang-go")
    digest = hashlib.sha256(
        b"".join((SOURCE / name).read_bytes() for name in ("go.mod", "main.go"))
    ).hexdigest()[:16]
    work = Path(tempfile.gettempdir()) / f"checkrun-gcservice-{digest}"
    binary = work / "gcservice"
    if binary.exists():
        return binary
    work.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOCACHE": str(work / "cache"),
        "GOPATH": str(work / "gopath"),
        "CGO_ENABLED": "0",
    }
    partial = work / "gcservice.partial"
    subprocess.run(
        [go, "build", "-o", str(partial), "."], cwd=SOURCE, env=env, check=True, timeout=600
    )
    partial.rename(binary)  # another process may build the same source meanwhile
    return binary


@dataclass
class GoService:
    process: subprocess.Popen
    address: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.url(path), timeout=60) as response:
            return response.read().decode()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.process.stdout.close()


def start(
    marker: str, cgroup_procs: list[Path] | None = None, env: dict[str, str] | None = None
) -> GoService:
    """The service, `marker` on its command line (for `pattern`), after it joined every
    cgroup.procs given: a Python parent writes its own pid there, then execs the service."""
    binary = str(build())
    argv = [binary, f"{LOOPBACK}:0", marker]
    code = (
        "import os, sys\n"
        f"for f in {[str(p) for p in cgroup_procs or []]!r}:\n"
        "    open(f, 'w').write(str(os.getpid()))\n"
        f"os.execve({binary!r}, {argv!r}, dict(os.environ, **{env or {}!r}))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().split()
    if len(line) != 2 or line[0] != "listening":
        process.kill()
        process.wait(10)
        raise RuntimeError(f"the Go service did not start: {line}")
    return GoService(process, line[1])
