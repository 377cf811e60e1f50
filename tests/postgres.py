"""A real PostgreSQL server for the state tests: Debian's `postgresql` package, its cluster
made by initdb and started by pg_ctl as an unprivileged user (initdb refuses root: as root,
the commands run as `nobody` through setpriv), in a temporary directory, listening on
127.0.0.1 on a free port, its unix socket in that directory too.

    server = PostgresServer.start()
    url = server.new_database()     # an empty database of its own: postgresql://...
    server.stop()

One server per test session (conftest.py's `postgres_server`), one database per test:
CREATE DATABASE copies the empty template0, so tests neither see each other's rows nor wait
for each other. Durability is off (fsync, synchronous_commit): the tests are about the
database's locks and transactions, not about surviving a power cut.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "checkrun"
LOOPBACK = "127.0.0.1"


def binaries() -> Path:
    """The newest installed server's bin directory (apt: postgresql)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql")
    return Path(found[-1]).parent


def _version(path: str) -> int:
    return int(Path(path).parent.parent.name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _as_owner(argv: list[str]) -> list[str]:
    """The command run as an unprivileged user: itself when not root, else nobody."""
    if os.geteuid() != 0:
        return argv
    nobody = pwd.getpwnam("nobody")
    return [
        "setpriv",
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
        "--",
        *argv,
    ]


@dataclass
class PostgresServer:
    directory: Path
    port: int
    durable: bool = False
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def start(cls, durable: bool = False) -> PostgresServer:
        """A new cluster in a directory of its own under /tmp (pytest's are private to
        root: nobody could not reach them). `durable`: fsync and synchronous commits as in
        production (benchmarks against SQLite's synchronous=FULL); tests go without."""
        directory = Path(tempfile.mkdtemp(prefix="checkrun-pg-"))
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(directory, nobody.pw_uid, nobody.pw_gid)
        data, bin_dir, port = directory / "data", binaries(), _free_port()
        env = {**os.environ, "LC_ALL": "C.UTF-8", "HOME": str(directory)}
        subprocess.run(
            _as_owner(
                [
                    str(bin_dir / "initdb"),
                    "-D", str(data),
                    "-U", SUPERUSER,
                    "--auth=trust",
                    "-E", "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
            env=env,
            cwd=directory,
        )  # fmt: skip
        server = cls(directory, port, durable)
        server.start_again()
        return server

    def start_again(self) -> None:
        """Start the server of this directory, on its port (after stop(): a restart)."""
        options = (
            f"-c listen_addresses={LOOPBACK} -p {self.port} "
            f"-c unix_socket_directories={self.directory} -c max_connections=200"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        env = {**os.environ, "LC_ALL": "C.UTF-8", "HOME": str(self.directory)}
        subprocess.run(
            _as_owner(
                [
                    str(binaries() / "pg_ctl"),
                    "-D", str(self.directory / "data"),
                    "-o", options,
                    "-l", str(self.directory / "server.log"),
                    "-w", "-t", "120",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            env=env,
            cwd=self.directory,
        )  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    def new_database(self) -> str:
        """An empty database of its own; its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def psql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement as the superuser; its output (unaligned, tuples only)."""
        done = subprocess.run(
            [str(binaries() / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-d", self.url(database), "-c", statement],
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
        return done.stdout.strip()

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.directory, ignore_errors=True)

    def halt(self) -> None:
        """The server stops at once, as a crash would (its data kept: start_again())."""
        subprocess.run(
            _as_owner(
                [str(binaries() / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate",
                 "-w", "stop"]
            ),
            capture_output=True,
            cwd=self.directory,
        )  # fmt: skip
