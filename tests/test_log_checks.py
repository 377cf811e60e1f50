"""Log checks through the real `checkrun`: per-pattern thresholds, rates, anomalies,
state handling and the input errors of the patterns list."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from helpers import run_checkrun


def _playbook(tmp_path: Path, log: Path, extra: str = "", patterns: str | None = None) -> Path:
    patterns = patterns or (
        "          - {name: errors, regex: ' ERROR ', warn: 1, crit: 3}\n"
        "          - {name: timeouts, keyword: timed out, ignore_case: true}\n"
    )
    playbook = tmp_path / "logs.yml"
    playbook.write_text(
        "- name: logs\n"
        "  hosts: localhost\n"
        "  checks:\n"
        "    - name: app log\n"
        "      log:\n"
        f"        path: {log}\n"
        "        start: beginning\n"
        f"{extra}"
        "        patterns:\n"
        f"{patterns}"
    )
    return playbook


def _run(playbook: Path, state: Path | None, *args: str) -> dict:
    report = playbook.with_name(f"r{time.monotonic_ns()}.json")
    state_args = ["--state", str(state)] if state else []
    done = run_checkrun(playbook, *state_args, "-r", f"json:{report}", *args)
    assert report.exists(), done.stderr
    return json.loads(report.read_text())["hosts"][0]["checks"][0]


def _append(log: Path, errors: int = 0, timeouts: int = 0, info: int = 0) -> None:
    with log.open("a") as f:
        for n in range(errors):
            f.write(f"2026-11-29 12:00:{n:02d} ERROR db: connection lost\n")
        for _ in range(timeouts):
            f.write("2026-11-29 12:00:00 WARN upstream Timed Out after 5s\n")
        for _ in range(info):
            f.write("2026-11-29 12:00:00 INFO request ok\n")


def test_each_pattern_has_its_own_thresholds(tmp_path):
    log = tmp_path / "app.log"
    _append(log, info=5)
    playbook = _playbook(tmp_path, log)
    state = tmp_path / "state.db"
    check = _run(playbook, state)
    assert check["status"] == "OK"
    assert check["measurements"]["errors"] == 0
    assert check["measurements"]["lines"] == 5

    _append(log, errors=2, timeouts=4)
    check = _run(playbook, state)
    assert check["status"] == "WARNING"
    assert check["measurements"]["errors"] == 2
    assert check["measurements"]["timeouts"] == 4  # ignore_case keyword
    assert check["measurements"]["matches"] == 6
    assert "errors=2 above warn 1" in check["message"]

    _append(log, errors=4)
    check = _run(playbook, state)
    assert check["status"] == "CRITICAL"  # crit: 3 alerts above 3
    assert check["measurements"]["errors"] == 4  # only the new lines

    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_samples_carry_named_groups(tmp_path):
    log = tmp_path / "app.log"
    _append(log, errors=4)
    patterns = "          - {name: errors, regex: ' ERROR (?P<component>\\w+): ', crit: 100}\n"
    playbook = _playbook(tmp_path, log, "        samples: 1\n", patterns)
    check = _run(playbook, tmp_path / "state.db")
    samples = check["facts"]["samples"]["errors"]
    assert len(samples["first"]) == 1 and len(samples["last"]) == 1
    assert samples["first"][0]["fields"] == {"component": "db"}
    assert samples["last"][0]["line"].startswith("2026-11-29 12:00:03 ERROR")


def test_per_turns_counts_into_rates(tmp_path):
    log = tmp_path / "app.log"
    _append(log, errors=1)
    playbook = _playbook(tmp_path, log, "        per: 1m\n")
    state = tmp_path / "state.db"
    first_started = time.monotonic()
    first = _run(playbook, state)
    first_ended = time.monotonic()
    assert "rates start next run" in first["message"]
    assert first["measurements"]["errors_count"] == 1

    time.sleep(1.0)
    _append(log, errors=2)
    second_started = time.monotonic()
    second = _run(playbook, state)
    second_ended = time.monotonic()
    assert second["measurements"]["errors_count"] == 2
    rate = second["measurements"]["errors"]
    # the two scans happened inside the two runs, so the time between them is bracketed by
    # the gap between the runs and the span of both, however slow a loaded machine makes them
    assert (
        2 * 60 / (second_ended - first_started) <= rate <= 2 * 60 / (second_started - first_ended)
    )
    assert second["units"]["errors"] == "/min"
    assert second["status"] == "CRITICAL"  # crit: 3 applies to the rate


def test_anomaly_flags_a_count_far_above_its_history(tmp_path):
    log = tmp_path / "app.log"
    patterns = "          - {name: errors, regex: ' ERROR '}\n"
    extra = "        anomaly: {k: 3, window: 10, min_runs: 4, min_increase: 2}\n"
    playbook = _playbook(tmp_path, log, extra, patterns)
    state = tmp_path / "state.db"
    log.write_text("")
    for count in (1, 2, 1, 2, 1):
        _append(log, errors=count)
        check = _run(playbook, state)
        assert check["status"] == "OK", check["message"]
    _append(log, errors=20)
    check = _run(playbook, state)
    assert check["status"] == "WARNING"
    assert "errors=20 is far above its recent history" in check["message"]


def test_two_checks_on_one_file_keep_their_own_offsets(tmp_path):
    log = tmp_path / "app.log"
    _append(log, errors=2)
    playbook = tmp_path / "two.yml"
    playbook.write_text(
        "- name: logs\n  hosts: localhost\n  checks:\n"
        + "".join(
            f"    - name: {name}\n      tags: [{name}]\n      log: {{path: {log}, "
            "start: beginning, patterns: [{name: errors, regex: ' ERROR ', crit: 100}]}\n"
            for name in ("first", "second")
        )
    )
    state = tmp_path / "state.db"
    report = tmp_path / "r.json"
    run_checkrun(playbook, "--state", state, "-t", "first", "-r", f"json:{report}")
    _append(log, errors=1)
    run_checkrun(playbook, "--state", state, "-r", f"json:{report}")
    checks = json.loads(report.read_text())["hosts"][0]["checks"]
    # the first check had read 2 lines already; the second sees the file for the first time
    assert [c["measurements"]["errors"] for c in checks] == [1, 3]


def test_no_state_starts_afresh_every_run(tmp_path):
    log = tmp_path / "app.log"
    _append(log, errors=2)
    playbook = _playbook(tmp_path, log)
    state = tmp_path / "state.db"
    report = tmp_path / "r.json"
    for _ in range(2):
        run_checkrun(
            playbook, "--no-state", "-r", f"json:{report}", env={"CHECKRUN_STATE": str(state)}
        )
        check = json.loads(report.read_text())["hosts"][0]["checks"][0]
        assert check["measurements"]["errors"] == 2  # start: beginning, nothing remembered
    assert not state.exists()
    run_checkrun(playbook, "-r", f"json:{report}", env={"CHECKRUN_STATE": str(state)})
    assert state.exists()  # without --no-state, $CHECKRUN_STATE is where state goes


def test_a_missing_file_is_unknown_with_the_reason(tmp_path):
    playbook = _playbook(tmp_path, tmp_path / "nope.log")
    check = _run(playbook, tmp_path / "state.db")
    assert check["status"] == "UNKNOWN"
    assert "nope.log" in check["message"]


@pytest.mark.parametrize(
    ("patterns", "line", "message"),
    [
        ("          - {name: lines, regex: x}\n", 9, "'lines' is one of log's own measurements"),
        (
            "          - {name: a, regex: x}\n          - {name: a, keyword: y}\n",
            10,
            "the name 'a' is used twice",
        ),
        ("          - {name: a, regex: x, keyword: y}\n", 9, "cannot be used together"),
        ("          - {regex: x}\n", 9, "needs the option 'name'"),
        ("          - {name: a}\n", 9, "needs one of the options regex, keyword"),
        ("          - {name: a, regex: x, warn: lots}\n", 9, "warn"),
        ("          - {name: a, regx: x}\n", 9, "did you mean 'regex'"),
    ],
)
def test_pattern_mistakes_are_exit_5_at_their_line(tmp_path, patterns, line, message):
    playbook = _playbook(tmp_path, tmp_path / "app.log", patterns=patterns)
    done = run_checkrun(playbook, "--state", tmp_path / "state.db")
    assert done.returncode == 5, done.stderr
    assert f"logs.yml:{line}:" in done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
