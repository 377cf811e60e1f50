"""What tests share besides fixtures: run the installed `checkrun` as a subprocess, build a
plan in process from playbook and inventory text, wait for a condition.

Tests import these from here (`from helpers import run_checkrun`); conftest.py holds only
pytest fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkrunner.alerting.config import ReceiverConfig
from checkrunner.inventory import load_inventories
from checkrunner.plan import Plan, PlanOptions, build_plan
from checkrunner.playbook import load_playbook

REPO = Path(__file__).resolve().parent.parent
WRITER = Path(__file__).with_name("log_writer.py")
#: The modules checkrunner ships: a test fails when one goes missing.
BUILTIN_MODULES = (
    "cpu",
    "memory",
    "disk",
    "load",
    "http",
    "tcp",
    "process",
    "command",
    "file",
    "nagios",
    "log",
)
CHECKRUN = shutil.which("checkrun") or "checkrun"


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str

    def json_report(self, path: Path) -> dict:
        return json.loads(path.read_text())


def validate_text(tmp_path: Path, playbook: str, name: str = "p.yml") -> Completed:
    """`checkrun validate` of a playbook written to tmp_path/name."""
    path = tmp_path / name
    path.write_text(playbook)
    return run_checkrun("validate", path)


def plan_from_text(tmp_path: Path, playbook: str, inventory: str, **options: Any) -> Plan:
    """The plan of a playbook and a YAML inventory written to tmp_path, as `checkrun` builds
    it (options: PlanOptions' fields)."""
    (tmp_path / "playbook.yml").write_text(playbook)
    (tmp_path / "inventory.yml").write_text(inventory)
    return build_plan(
        load_playbook(tmp_path / "playbook.yml"),
        load_inventories([str(tmp_path / "inventory.yml")]),
        PlanOptions(**options),
    )


def receiver_config(kind: str, receiver: str = "ops", **options: Any) -> ReceiverConfig:
    """Receiver `receiver`'s first config of `kind` with these options, checked as a
    playbook's are (no problem allowed)."""
    from checkrunner.alerting.receivers import get
    from checkrunner.config.normalize import OptionSet, check_option_set
    from checkrunner.errors import Location

    owner = OptionSet(f"{kind} test", get(kind).OPTIONS)
    values, problems = check_option_set(owner, options, Location("t.yml"), keep_templates=False)
    assert problems == []
    return ReceiverConfig(receiver, kind, 0, values, Location("t.yml"))


def names(count: int) -> list[str]:
    """Alert names a0, a1, ...: one notification each with queue_notifications."""
    return [f"a{n}" for n in range(count)]


def queue_notifications(db: Any, config: ReceiverConfig, alertnames: list[str]) -> None:
    """One notification per alert name, rendered by `config` into the outbox of `db` (a
    StateDB), in this order; each group key reads {}:{alertname="NAME"}."""
    from checkrunner.alerting.engine import enqueue
    from checkrunner.alerting.model import Alert, Notification
    from checkrunner.state.alerts import AlertStore

    with db.transaction() as connection:
        for name in alertnames:
            alert = Alert({"alertname": name, "host": "h", "severity": "critical"}, {}, 1.0)
            notification = Notification("ops", f'{{}}:{{alertname="{name}"}}', {}, [alert])
            enqueue(AlertStore(connection), config, config.options, notification, time.time())


def outbox_states(db: Any) -> list[str]:
    """The state of every outbox message, in the order they were queued."""
    return [row[0] for row in db.connection.execute("SELECT state FROM outbox ORDER BY id")]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll `condition` every 0.1 s until it returns something true, and return that;
    AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_checkrun(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120
) -> Completed:
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    full_env.update(env or {})
    proc = subprocess.run(
        [CHECKRUN, *map(str, args)],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def mount_at(mounts: list[dict[str, Any]], mountpoint: str) -> dict[str, Any] | None:
    """The entry of a mount point in a parsed mount table; the last one wins, since later
    mounts hide earlier ones."""
    found = None
    for mount in mounts:
        if mount["mountpoint"] == mountpoint:
            found = mount
    return found


class Writer:
    """The log_writer.py process: writes, pauses at a line boundary, reopens on HUP."""

    def __init__(self, path: Path):
        self.path = path
        self.process = subprocess.Popen(
            [sys.executable, str(WRITER), str(path)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout.readline().strip() == "ready"

    def pause(self) -> None:
        self.process.send_signal(signal.SIGUSR1)
        assert self.process.stdout.readline().strip() == "paused"

    def resume(self) -> None:
        self.process.send_signal(signal.SIGUSR2)

    def reopen(self) -> None:
        """logrotate's postrotate `kill -HUP`: returns once the writer has reopened PATH."""
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not self.path.exists():
            assert time.monotonic() < deadline, "the writer did not reopen its log"
            time.sleep(0.005)
        time.sleep(0.02)

    def stop(self) -> tuple[int, int]:
        """(lines written, ERROR lines written)."""
        self.process.send_signal(signal.SIGTERM)
        out, _ = self.process.communicate(timeout=10)
        fields = dict(part.split("=") for part in out.split())
        return int(fields["written"]), int(fields["errors"])

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
