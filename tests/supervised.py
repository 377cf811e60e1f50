"""A real service on this machine for the self-healing tests (issue 14): a python3
http.server under a supervisor shell script, as systemd or an init script would keep it.
`service` (conftest.py) starts one; the test SIGKILLs it, a handler restarts it through the
script (directly, or through a `systemctl` stand-in on PATH that calls the script).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sshd import free_port


@dataclass
class Supervised:
    folder: Path  # DIR: www/ is served, pid holds the server's pid
    port: int
    script: Path  # sh SCRIPT start|stop|restart DIR PORT

    def __iter__(self):  # folder, port, script = service
        return iter((self.folder, self.port, self.script))

    def start(self) -> None:
        command = ["sh", str(self.script), "start", str(self.folder), str(self.port)]
        subprocess.run(command, check=True, capture_output=True)

    def kill(self) -> None:
        kill_service(self.folder)

    def fake_systemctl(self, bin_dir: Path) -> Path:
        """A `systemctl` for bin_dir (put first on PATH): `systemctl restart ANY` restarts
        this service through the supervisor script, as systemd would; anything else fails."""
        bin_dir.mkdir(parents=True, exist_ok=True)
        tool = bin_dir / "systemctl"
        tool.write_text(
            "#!/bin/sh\n"
            f'[ "$1" = restart ] && exec sh {self.script} restart {self.folder} {self.port}\n'
            'echo "systemctl stand-in: $*" >&2; exit 1\n'
        )
        tool.chmod(0o755)
        return bin_dir


# start/stop/restart a python3 http.server kept in DIR, its pid in DIR/pid; restart returns
# once the port answers (as systemctl restart returns once the unit is started).
SUPERVISOR = textwrap.dedent(
    """\
    #!/bin/sh
    action=$1; dir=$2; port=$3
    stop() { if [ -f "$dir/pid" ]; then kill "$(cat "$dir/pid")" 2>/dev/null; rm -f "$dir/pid"; fi; }
    start() {
        python3 -m http.server "$port" --bind 127.0.0.1 --directory "$dir/www" \\
            >/dev/null 2>&1 </dev/null &
        echo $! > "$dir/pid"
        for _ in $(seq 1 200); do
            python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" \\
                2>/dev/null && echo "started on $port" && return 0
            sleep 0.1
        done
        echo "not listening on $port" >&2; return 1
    }
    case "$action" in
        start) start ;;
        stop) stop ;;
        restart) stop; start ;;
    esac
    """
)


def supervised_service(tmp_path: Path) -> Iterator[Supervised]:
    """A supervised service, started; stopped afterwards."""
    folder = tmp_path / "svc"
    (folder / "www").mkdir(parents=True)
    (folder / "www" / "health").write_text("ok\n")
    script = tmp_path / "supervisor.sh"
    script.write_text(SUPERVISOR)
    supervised = Supervised(folder, free_port(), script)
    supervised.start()
    yield supervised
    pid_file = folder / "pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):  # killed by the test, and reaped
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def kill_service(folder: Path) -> None:
    pid = int((folder / "pid").read_text())
    os.kill(pid, signal.SIGKILL)
