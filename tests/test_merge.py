"""`checkrun merge`: real shards of one run (local hosts, and an ssh host whose port is
closed) joined into every report format, equal to the unsharded run's; a missing, empty,
broken or interrupted shard is shown as such, never dropped."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest
from helpers import CHECKRUN, run_checkrun

from checkrunner.shards import shard_of

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "docs" / "json-report.schema.json").read_text())
FORMATS = ("json", "junit", "markdown", "nagios", "prometheus", "terminal", "html")
LOCAL_HOSTS = [f"h{index:02d}" for index in range(1, 10)] + ["w1", "w2", "c1"]
PLAYBOOK = """\
- name: levels
  hosts: all
  checks:
    - name: level
      command: {cmd: "echo {{ level }}", shell: true}
      warn: 5
      crit: 10
    - name: hostname file
      file: {path: /etc/hostname}
"""


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_fleet(directory: Path) -> tuple[Path, Path]:
    inventory = directory / "inv.yml"
    inventory.write_text(
        "all:\n  vars: {ansible_connection: local, level: 1}\n  hosts:\n"
        "    h[01:09]: {}\n    w1: {level: 6}\n    w2: {level: 6}\n    c1: {level: 12}\n"
        "    down: {ansible_connection: ssh, ansible_host: 127.0.0.1, "
        f"ansible_port: {closed_port()}}}\n"
    )
    playbook = directory / "levels.yml"
    playbook.write_text(PLAYBOOK)
    return playbook, inventory


def report_options(prefix: Path) -> list[str]:
    return [option for name in FORMATS for option in ("-r", f"{name}:{prefix}.{name}")]


def run_fleet(playbook: Path, inventory: Path, *options: str):
    return run_checkrun(
        playbook,
        "-i",
        inventory,
        "--no-state",
        "--ssh-config",
        "none",
        *options,
        cwd=playbook.parent,
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Path:
    """The unsharded run's reports (all.FORMAT) and the three shards' JSON reports."""
    directory = tmp_path_factory.mktemp("fleet")
    playbook, inventory = write_fleet(directory)
    single = run_fleet(playbook, inventory, *report_options(directory / "all"))
    assert single.returncode == 2, single.stderr
    for k in (1, 2, 3):
        shard = run_fleet(playbook, inventory, "--shard", f"{k}/3", "-r", f"json:shard-{k}.json")
        assert shard.returncode in (0, 2, 4), shard.stderr
    return directory


def merge(directory: Path, *inputs: str, prefix: str = "merged"):
    return run_checkrun(
        "merge", *inputs, *report_options(directory / prefix), cwd=directory, timeout=60
    )


# humanize_seconds' forms: 500ms, 5s, 1m05s, 1h01m, 1d1h; and a file's age: "modified 8h ago"
TIMES = re.compile(r"\b\d+(?:\.\d+)?(?:ms|s|m|h|d)(?:\d+(?:ms|s|m|h))?\b")


def comparable(name: str, text: str) -> object:
    """A report without what differs between two runs of the same checks: times, durations,
    file ages; and without what only a merge or a shard adds (the `merge` field)."""
    if name == "json":
        document = json.loads(text)
        document.pop("merge", None)
        for key in ("started_at", "finished_at", "duration"):
            document.pop(key)
        for host in document["hosts"]:
            host.pop("duration"), host.pop("started_at")
            for check in host["checks"]:
                check.pop("duration")
                check["message"] = TIMES.sub("T", check["message"])
                for timed in ("duration", "age", "mtime"):
                    check["measurements"].pop(timed, None)
                if check["metric"] == "age":
                    check["value"] = None
        return document
    if name == "junit":
        text = re.sub(r' (time|timestamp)="[^"]*"', "", text)
    if name == "prometheus":
        lines = text.splitlines()
        text = "\n".join(
            line
            for line in lines
            if not re.search(r'metric="(duration|age|mtime)"|duration|timestamp|_seconds', line)
        )
    if name == "nagios":
        text = re.sub(r"'duration'=\S+|'[^']*(duration|age|mtime)'=\S+", "", text)
    return TIMES.sub("T", text)


def test_three_shards_merged_are_the_single_run_in_every_format(fleet):
    done = merge(fleet, "shard-1.json", "shard-2.json", "shard-3.json")
    assert done.returncode == 2, done.stderr  # the single run's: c1 is CRITICAL
    assert done.stderr == ""
    merged = json.loads((fleet / "merged.json").read_text())
    jsonschema.validate(merged, SCHEMA)
    assert merged["merge"]["complete"] is True and merged["merge"]["missing"] == []
    assert [r["shard"] for r in merged["merge"]["reports"]] == [1, 2, 3]
    for name in FORMATS:
        if name == "html":
            continue  # its embedded document carries times; its data is the JSON's
        single = (fleet / f"all.{name}").read_text()
        joined = (fleet / f"merged.{name}").read_text()
        assert comparable(name, joined) == comparable(name, single), name
    single = json.loads((fleet / "all.json").read_text())
    assert merged["exit_code"] == single["exit_code"] == 2
    assert [h["host"] for h in merged["hosts"]] == [*LOCAL_HOSTS, "down"]
    assert "c1" in (fleet / "merged.html").read_text()


def test_the_order_of_the_inputs_does_not_matter(fleet):
    done = merge(fleet, "shard-3.json", "shard-1.json", "shard-2.json", prefix="reordered")
    assert done.returncode == 2, done.stderr
    first = json.loads((fleet / "merged.json").read_text())
    second = json.loads((fleet / "reordered.json").read_text())
    assert first["hosts"] == second["hosts"] and first["summary"] == second["summary"]


def _missing_hosts(index: int) -> list[str]:
    return [host for host in [*LOCAL_HOSTS, "down"] if shard_of(host, 3) == index]


def _expected_exit(merged: dict) -> int:
    return 2 if merged["summary"]["CRITICAL"] else 3


@pytest.mark.parametrize("absent", [1, 2, 3])
def test_a_missing_shard_makes_its_hosts_unknown_in_every_format(fleet, absent):
    inputs = [f"shard-{k}.json" for k in (1, 2, 3) if k != absent]
    done = merge(fleet, *inputs, prefix=f"without-{absent}")
    merged = json.loads((fleet / f"without-{absent}.json").read_text())
    jsonschema.validate(merged, SCHEMA)
    assert done.returncode == merged["exit_code"] == _expected_exit(merged), done.stderr
    assert merged["merge"]["missing"] == [absent] and merged["merge"]["complete"] is False
    lost = _missing_hosts(absent)
    assert f"shard {absent}/3 has no report" in done.stderr
    for host in merged["hosts"]:
        if host["host"] in lost:
            (check,) = host["checks"]
            assert (check["name"], check["status"]) == ("shard report", "UNKNOWN")
            assert f"shard {absent}/3 has no report" in check["message"]
    assert [h["host"] for h in merged["hosts"]] == [*LOCAL_HOSTS, "down"]
    assert merged["summary"]["UNKNOWN"] == len(lost)
    junit = (fleet / f"without-{absent}.junit").read_text()
    terminal = (fleet / f"without-{absent}.terminal").read_text()
    nagios = (fleet / f"without-{absent}.nagios").read_text()
    for host in lost:
        assert f'classname="{host}" name="shard report"' in junit
        assert re.search(rf"^ {host} +\| shard report +\| UNKNOWN", terminal, re.M), terminal
    assert f"{len(lost)} unknown" in nagios.splitlines()[0]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (None, "cannot read it: No such file or directory"),
        ("", "empty: the shard wrote no report"),
        ('{"schema_version": 1, "hosts": [', ":1:33: not JSON: Expecting value"),
    ],
)
def test_a_failed_shard_is_reported_with_its_file(fleet, content, error):
    crashed = fleet / "crashed.json"
    crashed.unlink(missing_ok=True)
    if content is not None:
        crashed.write_text(content)
    done = merge(fleet, "shard-1.json", "crashed.json", "shard-3.json", prefix="with-crashed")
    merged = json.loads((fleet / "with-crashed.json").read_text())
    jsonschema.validate(merged, SCHEMA)
    assert done.returncode == merged["exit_code"] == _expected_exit(merged), done.stderr
    assert f"crashed.json{error}" in done.stderr or f"crashed.json: {error}" in done.stderr
    reports = merged["merge"]["reports"]
    assert [r["shard"] for r in reports] == [1, None, 3] and merged["merge"]["missing"] == [2]
    assert error in reports[1]["error"] and reports[1]["file"] == "crashed.json"
    for host in merged["hosts"]:
        if host["host"] in _missing_hosts(2):
            assert error in host["checks"][0]["message"]


def _kill_naps(nap: str) -> None:
    """The `sleep` this test's check started: an interrupted local run leaves a command
    check's children to finish on their own (they run in a session of their own)."""
    found = subprocess.run(["pgrep", "-f", f"sleep {nap}"], capture_output=True, text=True)
    for pid in found.stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def test_an_interrupted_shard_makes_the_merge_interrupted(tmp_path):
    """A real shard stopped by SIGINT while one of its hosts still runs a check: its report
    is partial, and so is the merge (130), as the single run's would be."""
    playbook, inventory = write_fleet(tmp_path)
    nap = f"87.{random.randrange(10**6):06d}"  # this run's own: no other sleep matches
    slow = next(host for host in LOCAL_HOSTS if shard_of(host, 3) == 1)
    inventory.write_text(
        inventory.read_text().replace(
            "hosts:\n", f"hosts:\n    {slow}: {{level: 1, nap: '{nap}'}}\n", 1
        )
    )
    playbook.write_text(
        PLAYBOOK.replace(
            "checks:\n",
            "checks:\n    - name: nap\n      command: {cmd: 'sleep {{ nap | default(0) }}', shell: true, timeout: 2m}\n",
            1,
        )
    )
    for k in (2, 3):
        assert run_fleet(
            playbook, inventory, "--shard", f"{k}/3", "-r", f"json:shard-{k}.json"
        ).returncode in (0, 2, 4)
    shard = subprocess.Popen(
        [
            CHECKRUN,
            playbook,
            "-i",
            inventory,
            "--no-state",
            "--ssh-config",
            "none",
            "--shard",
            "1/3",
            "-r",
            "json:shard-1.json",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["pgrep", "-f", f"sleep {nap}"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline and shard.poll() is None, (
                "the slow check never started"
            )
            time.sleep(0.1)
        shard.send_signal(signal.SIGINT)
        assert shard.wait(timeout=60) == 130, shard.stderr.read()
    finally:
        if shard.poll() is None:
            shard.kill()
            shard.wait()
        _kill_naps(nap)
    done = merge(tmp_path, "shard-1.json", "shard-2.json", "shard-3.json")
    merged = json.loads((tmp_path / "merged.json").read_text())
    jsonschema.validate(merged, SCHEMA)
    assert done.returncode == merged["exit_code"] == 130, done.stderr
    assert merged["interrupted"] is True and merged["merge"]["complete"] is False
    assert merged["merge"]["reports"][0]["interrupted"] is True
    assert "shard 1/3 was interrupted" in done.stderr
    assert slow not in [host["host"] for host in merged["hosts"]]


def test_a_host_name_holding_a_secret_is_masked_alike_in_every_shard(tmp_path):
    """Each shard masks the inventory passwords of every planned host, not only its own:
    the host lists of the shards agree, and no shard's report shows the secret."""
    secret = "Zq8Xw2kT7mR5vN3pL0"
    hosts = ["a1", "a2", "a3", "a4", f"host-{secret}"]
    inventory = tmp_path / "inv.yml"
    inventory.write_text(
        "all:\n  vars: {ansible_connection: local}\n  hosts:\n"
        + "".join(f"    {host}: {{}}\n" for host in hosts[:-1])
        + f"    {hosts[-1]}: {{ansible_password: {secret}}}\n"
    )
    playbook = tmp_path / "p.yml"
    playbook.write_text("- name: p\n  hosts: all\n  checks: [{name: m, memory: {}}]\n")
    assert len({shard_of(host, 2) for host in hosts}) == 2  # both shards have hosts
    for k in (1, 2):
        done = run_fleet(playbook, inventory, "--shard", f"{k}/2", "-r", f"json:shard-{k}.json")
        assert done.returncode == 0, done.stderr
        assert secret not in (tmp_path / f"shard-{k}.json").read_text()
    done = merge(tmp_path, "shard-1.json", "shard-2.json")
    assert done.returncode == 0, done.stderr
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert [host["host"] for host in merged["hosts"]] == [*hosts[:-1], "host-***"]
