"""Real cgroups for tests and benches: made in every v1 hierarchy this machine mounts (and
its v2 `unified` one), with the processes started in them, and removed afterwards."""

from __future__ import annotations

import errno
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from helpers import wait_for

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "blkio", "unified")


@dataclass
class RealCgroup:
    """A cgroup made in every v1 hierarchy this machine mounts (and its v2 `unified` one)."""

    name: str
    dirs: list[Path] = field(default_factory=list)
    children: list[subprocess.Popen] = field(default_factory=list)

    def dir(self, controller: str) -> Path:
        return CGROUP_ROOT / controller / self.name

    def set(self, controller: str, file: str, value: str) -> None:
        (self.dir(controller) / file).write_text(value)

    def start(self, program: str) -> subprocess.Popen:
        """A Python child that joins this cgroup first, then runs `program`; returned once it
        printed "ready"."""
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        code = (
            "import os, sys\n"
            f"for f in {procs!r}:\n"
            "    open(f, 'w').write(str(os.getpid()))\n" + program
        )
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        self.children.append(child)
        assert child.stdout.readline().strip() == "ready"
        return child

    def remove(self) -> None:
        stop(self.children)
        for directory in self.dirs:
            wait_for(lambda d=directory: _rmdir(d), f"rmdir {directory}")


@contextmanager
def made_cgroup(name: str) -> Iterator[RealCgroup]:
    """A RealCgroup named `name` in every hierarchy mounted here, removed on leaving (its
    children killed first)."""
    made = RealCgroup(name)
    try:
        for controller in CONTROLLERS:
            if (CGROUP_ROOT / controller).is_dir():
                made.dir(controller).mkdir()
                made.dirs.append(made.dir(controller))
        yield made
    finally:
        made.remove()


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait(10)


def _rmdir(directory: Path) -> bool:
    try:
        directory.rmdir()
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return False  # the killed child is still being torn down
        raise
    return True
