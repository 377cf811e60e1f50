"""Log checks across real rotations: a real writer, real renames, gzip, copytruncate,
truncation, delete and recreate, inode reuse, between runs of the real `checkrun`.

Every scenario ends with the exact total: the lines counted over all runs equal the lines
the writer wrote, no more and no less. The same matrix runs locally and over SSH.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import Writer, run_checkrun
from sshd import SSHServer, running_sshd, sshd_available

SSH_ADDRESS = "127.0.31.1"


@dataclass
class Runner:
    """Runs `checkrun` on the log directory and adds up what each run counted."""

    playbook: Path
    state: Path
    extra: list[str] = field(default_factory=list)
    errors: int = 0
    info: int = 0
    runs: int = 0

    def run(self, *, expect: str = "OK") -> dict:
        report = self.playbook.with_name(f"report{self.runs}.json")
        done = run_checkrun(
            self.playbook, *self.extra, "--state", self.state, "-r", f"json:{report}"
        )
        self.runs += 1
        assert report.exists(), done.stderr
        check = json.loads(report.read_text())["hosts"][0]["checks"][0]
        assert check["status"] == expect, check
        if check["status"] == "OK":
            self.errors += int(check["measurements"]["errors"])
            self.info += int(check["measurements"]["info"])
        return check


def _shift(directory: Path) -> None:
    """app.log.1 -> app.log.2 (logrotate's numbering), so .1 is free for the next rotation."""
    for n in range(8, 0, -1):
        for suffix in ("", ".gz"):
            older = directory / f"app.log.{n}{suffix}"
            if older.exists():
                older.rename(directory / f"app.log.{n + 1}{suffix}")


def _gzip(path: Path) -> None:
    with path.open("rb") as src, gzip.open(f"{path}.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    path.unlink()


def rotation_matrix(log: Path, runner: Runner, writer: Writer) -> None:
    directory = log.parent
    settle = 0.15  # lets the writer add lines (some half-written) between steps

    runner.run()  # first sight, start: beginning
    time.sleep(settle)
    runner.run()  # appended

    # rename + create, with late writes into the renamed file before the HUP
    _shift(directory)
    log.rename(directory / "app.log.1")
    time.sleep(settle)
    writer.reopen()
    time.sleep(settle)
    runner.run()

    # the file disappears (renamed, not yet recreated): UNKNOWN, offset kept
    _shift(directory)
    log.rename(directory / "app.log.1")
    time.sleep(settle)
    missing = runner.run(expect="UNKNOWN")
    assert "app.log" in missing["message"]
    writer.reopen()
    time.sleep(settle)
    runner.run()

    # rename, then gzip of the rotated file
    _shift(directory)
    log.rename(directory / "app.log.1")
    writer.reopen()
    _gzip(directory / "app.log.1")
    time.sleep(settle)
    runner.run()

    # dateext naming
    log.rename(directory / "app.log-20261127")
    writer.reopen()
    time.sleep(settle)
    runner.run()

    # two rotations between runs
    for _ in range(2):
        _shift(directory)
        log.rename(directory / "app.log.1")
        writer.reopen()
        time.sleep(settle)
    runner.run()

    # copytruncate (the writer paused at a line boundary: logrotate's own copy/truncate
    # race would otherwise lose lines before checkrun ever sees them)
    writer.pause()
    _shift(directory)
    shutil.copyfile(log, directory / "app.log.1")
    os.truncate(log, 0)
    writer.resume()
    time.sleep(settle)
    runner.run()

    # truncation in place: read up to now, truncate, go on
    writer.pause()
    runner.run()
    os.truncate(log, 0)
    writer.resume()
    time.sleep(settle)
    runner.run()

    # delete + recreate under a new inode (the old one is held until the writer lets go)
    writer.pause()
    runner.run()
    old_inode = log.stat().st_ino
    log.rename(directory / "zz-held")
    writer.process.send_signal(signal.SIGHUP)  # before resuming: no line goes to the old file
    writer.resume()
    writer.reopen()
    (directory / "zz-held").unlink()
    assert log.stat().st_ino != old_inode
    time.sleep(settle)
    runner.run()

    # delete + recreate, where the filesystem usually hands the freed inode to the new file
    # (ext4 does unless another process takes it first; the counts must be exact either way)
    writer.pause()
    runner.run()
    log.unlink()
    writer.process.send_signal(signal.SIGHUP)
    writer.resume()
    writer.reopen()
    time.sleep(settle)
    runner.run()

    time.sleep(settle)
    runner.run()


PLAYBOOK = """
- name: logs
  hosts: {hosts}
  checks:
    - name: app log
      log:
        path: {log}
        start: beginning
        patterns:
          - {{name: errors, regex: '^\\d+ ERROR '}}
          - {{name: info, keyword: ' INFO '}}
"""


def _matrix(tmp_path: Path, hosts: str, extra: list[str]) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    playbook = tmp_path / "logs.yml"
    playbook.write_text(PLAYBOOK.format(hosts=hosts, log=log))
    runner = Runner(playbook=playbook, state=tmp_path / "state.db", extra=extra)
    writer = Writer(log)
    try:
        rotation_matrix(log, runner, writer)
        written, errors = writer.stop()
    finally:
        writer.kill()
    runner.run()  # everything the writer wrote, its last line complete
    assert (runner.errors, runner.info) == (errors, written - errors)
    assert written > 500  # the writer really ran through the matrix


def test_rotation_matrix_local(tmp_path):
    _matrix(tmp_path, "localhost", [])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[SSHServer]:
    if not sshd_available():
        pytest.fail("sshd is missing: scripts/test.sh installs openssh-server")
    with running_sshd(tmp_path_factory.mktemp("sshd-logs"), [SSH_ADDRESS]) as server:
        yield server


def test_rotation_matrix_over_ssh(tmp_path, sshd):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"target ansible_host={SSH_ADDRESS} ansible_port={sshd.port} ansible_user={sshd.user} "
        f"ansible_ssh_private_key_file={sshd.client_key}\n"
    )
    known_hosts = sshd.write_known_hosts(tmp_path / "known_hosts")
    _matrix(tmp_path, "target", ["-i", str(inventory), "--known-hosts", str(known_hosts)])


def test_a_crash_before_the_commit_skips_nothing(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("".join(f"{n} ERROR first\n" for n in range(3)))
    playbook = tmp_path / "logs.yml"
    playbook.write_text(PLAYBOOK.format(hosts="localhost", log=log))
    runner = Runner(playbook=playbook, state=tmp_path / "state.db")
    runner.run()
    assert runner.errors == 3

    with log.open("a") as f:
        f.write("".join(f"{n} ERROR second\n" for n in range(4)))
    report = tmp_path / "crashed.json"
    crashed = run_checkrun(
        playbook,
        "--state",
        runner.state,
        "-r",
        f"json:{report}",
        env={"CHECKRUN_FAILPOINT": "before-state-commit"},
    )
    assert crashed.returncode == -signal.SIGKILL  # killed after the scan, before the commit
    counted = json.loads(report.read_text())["hosts"][0]["checks"][0]["measurements"]
    assert counted["errors"] == 4  # the report was written before the crash

    with log.open("a") as f:
        f.write("".join(f"{n} ERROR third\n" for n in range(5)))
    check = runner.run()  # the 4 lines of the crashed run are read again, with the 5 new
    assert check["measurements"]["errors"] == 9
    check = runner.run()
    assert check["measurements"]["errors"] == 0
