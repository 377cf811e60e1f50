"""Issue 14, the remediation audit: state/actions.py and `checkrun actions`.

The audit row is written before the action runs (intent) and completed after; a process
killed for real between the two (failpoint `after-action`) leaves the record of the first
run, which the guard rails count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import run_checkrun

from checkrunner.masking import Masker
from checkrunner.results import REMEDIATED
from checkrunner.state.actions import (
    DONE,
    UNFINISHED,
    ActionIntent,
    ActionLog,
    ActionOutcome,
)
from checkrunner.state.db import open_state

TOKEN = "s3cr3t-token-value"


def intent(host: str = "web1", handler: str = "restart app", target: str = "systemctl restart app"):
    return ActionIntent(host, "web", handler, ["app health"], "command", target)


def test_an_action_is_recorded_before_it_runs_and_completed_after(tmp_path):
    log = ActionLog(open_state(str(tmp_path / "state.db")))
    seen_during_action: list[str] = []

    def act() -> ActionOutcome:
        seen_during_action.extend(r.state for r in log.listing(0.0))
        return ActionOutcome(0, "restarted\n")

    action_id, outcome = log.run(intent(), act, now=1000.0, clock=lambda: 1004.0)
    assert seen_during_action == [UNFINISHED]  # the intent was committed first
    assert outcome.ok
    log.verified(action_id, REMEDIATED)
    (record,) = log.listing(0.0)
    assert (record.state, record.exit_status, record.output, record.verify) == (
        DONE,
        0,
        "restarted\n",
        REMEDIATED,
    )
    assert (record.started_at, record.finished_at) == (1000.0, 1004.0)
    assert (record.host, record.handler, record.triggers) == ("web1", "restart app", ["app health"])


def test_secrets_are_masked_before_they_reach_the_database(tmp_path):
    path = tmp_path / "state.db"
    log = ActionLog(open_state(str(path)), mask=Masker([TOKEN]).text)
    target = f"POST https://scaler.example/api?token={TOKEN}"
    log.run(
        intent(target=target),
        lambda: ActionOutcome(500, f"denied for {TOKEN}"),
        now=time.time(),
        clock=time.time,
    )
    (record,) = log.listing(0.0)
    assert TOKEN not in record.target and "***" in record.target
    assert TOKEN not in record.output and record.exit_status == 500
    log.db.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for file in tmp_path.iterdir():
        assert TOKEN.encode() not in file.read_bytes(), file
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_runs_and_the_last_start_count_per_host_and_handler(tmp_path):
    log = ActionLog(open_state(str(tmp_path / "state.db")))
    for at in (100.0, 200.0, 300.0):
        log.run(intent(), lambda: ActionOutcome(1, "failed"), now=at, clock=lambda at=at: at + 1)
    log.begin(intent(handler="scale out"), 400.0)  # an intent nobody finished still counts
    log.begin(intent(host="web2"), 500.0)
    assert log.runs_since("web1", "web", "restart app", 150.0) == 2
    assert log.runs_since("web1", "web", "scale out", 0.0) == 1
    assert log.last_started("web1", "web", "restart app") == 300.0
    assert log.last_started("web3", "web", "restart app") is None
    assert [r.host for r in log.listing(0.0, "web2")] == ["web2"]
    assert [r.started_at for r in log.listing(250.0)] == [300.0, 400.0, 500.0]


CRASHING_ACTION = textwrap.dedent(
    """
    import subprocess, sys, time
    from checkrunner.state.actions import ActionIntent, ActionLog, ActionOutcome
    from checkrunner.state.db import open_state

    state, marker = sys.argv[1], sys.argv[2]
    log = ActionLog(open_state(state))
    if log.runs_since("web1", "web", "restart app", time.time() - 3600) >= 1:
        sys.exit(3)  # the guard: it ran (or may have) within the window
    def act():
        done = subprocess.run(["sh", "-c", 'echo ran >> "$0"', marker])
        return ActionOutcome(done.returncode, "")
    log.run(ActionIntent("web1", "web", "restart app", ["app health"], "command",
                         "sh -c 'echo ran'"), act, time.time(), time.time)
    """
)


def test_a_crash_between_the_action_and_its_record_never_runs_it_twice_unrecorded(tmp_path):
    state, marker = tmp_path / "state.db", tmp_path / "ran.txt"
    script = tmp_path / "act.py"
    script.write_text(CRASHING_ACTION)
    env = {**os.environ, "CHECKRUN_FAILPOINT": "after-action"}
    killed = subprocess.run([sys.executable, str(script), str(state), str(marker)], env=env)
    assert killed.returncode == -9  # SIGKILL, after the action and before its completion
    assert marker.read_text() == "ran\n"
    listed = run_checkrun("actions", "--state", state, "--json")
    assert listed.returncode == 0, listed.stderr
    (record,) = json.loads(listed.stdout)["actions"]
    assert (record["state"], record["exit_status"], record["handler"]) == (
        UNFINISHED,
        None,
        "restart app",
    )
    again = subprocess.run([sys.executable, str(script), str(state), str(marker)])
    assert again.returncode == 3  # the unfinished record counts as a run
    assert marker.read_text() == "ran\n"


def test_checkrun_actions_lists_filters_and_reports_bad_input(tmp_path):
    state = tmp_path / "state.db"
    log = ActionLog(open_state(str(state)))
    now = time.time()
    first, _ = log.run(
        intent(), lambda: ActionOutcome(0, "ok\nrestarted app"), now - 7200, time.time
    )
    log.verified(first, REMEDIATED)
    log.run(intent(host="web2"), lambda: ActionOutcome(1, "unit not found"), now - 60, time.time)
    shown = run_checkrun("actions", "--state", state)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["time", "host", "handler", "trigger", "action", "exit", "verify"]
    assert any("web1" in line and "remediated" in line for line in lines)
    assert any("web2" in line and "command: systemctl restart app" in line for line in lines)
    assert "restarted app" in shown.stdout and "unit not found" in shown.stdout
    recent = run_checkrun("actions", "--state", state, "--since", "1h", "--json")
    assert [a["host"] for a in json.loads(recent.stdout)["actions"]] == ["web2"]
    one = run_checkrun("actions", "--state", state, "--host", "web1", "--json")
    assert [a["verify"] for a in json.loads(one.stdout)["actions"]] == [REMEDIATED]
    typo = run_checkrun("actions", "--state", state, "--host", "web3")
    assert (
        typo.returncode == 5 and "no host 'web3'" in typo.stderr and "Traceback" not in typo.stderr
    )
    missing = run_checkrun("actions", "--state", tmp_path / "none.db")
    assert missing.returncode == 5 and "no state database" in missing.stderr
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("heavy", ["checkrunner.app", "jinja2", "yaml", "paramiko"])
def test_checkrun_actions_starts_without_the_run_layers(tmp_path, heavy):
    state = tmp_path / "state.db"
    ActionLog(open_state(str(state)))
    probe = (
        "import sys; from checkrunner.cli import main; "
        f"code = main(['actions', '--state', {str(state)!r}]); "
        f"print(code, {heavy!r} in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "0 False", done.stdout + done.stderr
