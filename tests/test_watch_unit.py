"""The systemd unit in contrib/: its command line is one `checkrun watch` accepts, it bounds
what the monitor may use of its host, stops within the grace, and systemd itself accepts it."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
from helpers import CHECKRUN, REPO

from checkrunner.cli import _watch_parser

UNIT = REPO / "contrib" / "systemd" / "checkrun-watch.service"


def _settings() -> dict[str, str]:
    text = UNIT.read_text().replace("\\\n", " ")
    pairs = [line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"]
    return {key.strip(): value.strip() for key, value in pairs}


def _seconds(text: str) -> float:
    from checkrunner.config.coerce import coerce_value

    return coerce_value(text, {"type": "duration"})


def test_the_unit_runs_watch_with_options_it_accepts_and_stops_within_the_grace():
    unit = _settings()
    program, command, *args = shlex.split(unit["ExecStart"])
    assert program.endswith("/checkrun") and command == "watch"
    options = _watch_parser("checkrun watch").parse_args(args)
    assert options.listen.startswith("127.0.0.1:")  # loopback unless asked otherwise
    assert _seconds(unit["TimeoutStopSec"]) > options.stop_grace + 5
    assert unit["KillSignal"] == "SIGTERM"
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["Environment"] == "CHECKRUN_STATE=/var/lib/checkrun/state.db"
    assert unit["StateDirectory"] == "checkrun"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",
        "PrivateTmp": "yes",
    }.items():
        assert unit[key] == value, key
    assert unit["MemoryMax"] and unit["CPUQuota"].endswith("%")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze missing")
def test_systemd_accepts_the_unit(tmp_path):
    installed = shutil.which(CHECKRUN) or CHECKRUN
    text = UNIT.read_text().replace("/usr/local/bin/checkrun", installed)
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in done.stderr.splitlines() if UNIT.name in line]
    assert done.returncode == 0 and not problems, done.stderr
