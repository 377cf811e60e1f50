"""A target that answers with crafted output: only that host's checks become UNKNOWN.

Each hostile host's `ansible_python_interpreter` is a script that reads the batch program
like the real bootstrap does, takes the check ids out of it, and prints a crafted answer
after the result marker. Healthy hosts run in the same `checkrun` and must be reported as
usual; the run must never end in a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from helpers import run_checkrun
from hostile import fake_interpreter

from checkrunner.transport import ProtocolError, parse_output
from checkrunner.transport.base import MAX_OUTPUT_BYTES

# Python expressions for the text printed after the marker; `ids` are the batch's check ids.
ANSWERS = {
    "list": "'[1]'",
    "no_id": "json.dumps({'version': 1, 'results': [{'module': 'memory', 'result': {}}]})",
    "measurements_list": "json.dumps(answer(ids, {'measurements': [1, 2]}))",
    "huge_int": "json.dumps(answer(ids, {})).replace('\"duration\": 0', '\"duration\": ' + '9' * 5000)",
    "deep_nesting": "'[' * 100000 + ']' * 100000",
    "deep_facts": "json.dumps(answer(ids, {})).replace('{}', '{\"facts\": ' + '{\"a\": ' * 300 + '1' + '}' * 301)",
    "marker_at_end": "''",
    "nan": "json.dumps(answer(ids, {'measurements': {'used': float('nan')}}))",
    "infinity": "json.dumps(answer(ids, {'measurements': {'used': 1}})).replace('\"used\": 1', '\"used\": 1e999')",
    "unknown_id": "json.dumps(answer(['9.9'], {}))",
    "duplicate_id": "json.dumps(answer(ids + ids, {}))",
    "message_dict": "json.dumps(answer(ids, {'message': {'a': 1}}))",
    "huge_message": "json.dumps(answer(ids, {'message': 'x' * 200000}))",
    "units_number": "json.dumps(answer(ids, {'measurements': {'used': 1}, 'units': {'used': 5}}))",
    "result_string": "json.dumps({'version': 1, 'results': [{'id': i, 'result': 'x'} for i in ids]})",
    "results_dict": "json.dumps({'version': 1, 'results': {'a': 1}})",
    "huge_output": "'x' * (MAX + 1024)",
}
# What each host's remote-crash message must say.
REASONS = {
    "list": "not a JSON object",
    "no_id": "no string 'id'",
    "measurements_list": "measurements is not an object",
    "huge_int": "integer of 5000 digits",
    "deep_nesting": "nested too deeply",
    "deep_facts": "facts nested too deeply",
    "marker_at_end": "followed by nothing",
    "nan": "NaN, which is not a number",
    "infinity": "out-of-range number 1e999",
    "unknown_id": "'9.9' was never asked for",
    "duplicate_id": "appears twice",
    "message_dict": "message is not a string",
    "huge_message": "200000 characters long",
    "units_number": "unit of 'used' is not a string",
    "result_string": "neither 'result' nor 'error'",
    "results_dict": "'results' is not a list",
    "huge_output": f"more than {MAX_OUTPUT_BYTES // 1024**2} MiB",
}


def hostile_scripts(directory: Path) -> dict[str, Path]:
    return {
        case: fake_interpreter(directory / f"python_{case}", expression)
        for case, expression in ANSWERS.items()
    }


def run_fleet(tmp_path: Path, inventory_lines: list[str], *args: str):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("\n".join(inventory_lines) + "\n")
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- name: m\n  hosts: all\n  checks:\n"
        "    - {name: memory, memory: {}}\n    - {name: load, load: {}}\n"
    )
    report = tmp_path / "report.json"
    done = run_checkrun(playbook, "-i", inventory, "-r", f"json:{report}", "-r", "terminal", *args)
    return done, json.loads(report.read_text())


def assert_only_hostile_hosts_unknown(done, report) -> None:
    assert "Traceback" not in done.stderr
    assert done.returncode == 3, done.stderr
    hosts = {h["host"]: h for h in report["hosts"]}
    assert hosts["healthy"]["status"] == "OK"
    assert [c["status"] for c in hosts["healthy"]["checks"]] == ["OK", "OK"]
    for case, reason in REASONS.items():
        host = hosts[case]
        assert host["reason"] == "remote-crash", case
        assert reason in host["message"], (case, host["message"])
        assert len(host["message"]) < 400, case
        assert [c["status"] for c in host["checks"]] == ["UNKNOWN", "UNKNOWN"], case
    assert "Result: UNKNOWN" in done.stdout


def test_hostile_local_targets_are_unknown_and_the_healthy_one_is_reported(tmp_path):
    scripts = hostile_scripts(tmp_path)
    lines = [f"healthy ansible_connection=local ansible_python_interpreter={sys.executable}"]
    lines += [
        f"{case} ansible_connection=local ansible_python_interpreter={path}"
        for case, path in scripts.items()
    ]
    done, report = run_fleet(tmp_path, lines)
    assert_only_hostile_hosts_unknown(done, report)


def test_hostile_ssh_targets_are_unknown_and_the_healthy_one_is_reported(tmp_path):
    from sshd import running_sshd, sshd_available

    if not sshd_available() and os.geteuid() != 0:
        pytest.skip("needs /usr/sbin/sshd (scripts/test.sh installs it as root)")
    scripts = hostile_scripts(tmp_path)
    with running_sshd(tmp_path / "sshd", ["127.0.31.1"]) as server:
        common = (
            f"ansible_host=127.0.31.1 ansible_port={server.port} ansible_user={server.user} "
            f"ansible_ssh_private_key_file={server.client_key}"
        )
        lines = [f"healthy {common} ansible_python_interpreter={sys.executable}"]
        lines += [
            f"{case} {common} ansible_python_interpreter={path}" for case, path in scripts.items()
        ]
        known = server.write_known_hosts(tmp_path / "known_hosts")
        done, report = run_fleet(tmp_path, lines, "--known-hosts", str(known))
    assert_only_hostile_hosts_unknown(done, report)


@pytest.mark.parametrize(
    "answer",
    [
        '{"version": 1, "results": [{"id": "0.0", "result": {"measurements": {"a": 1}}}]}',
        '{"version": 1, "results": [{"id": "0.0", "error": "boom", "error_type": "exception"}]}',
    ],
)
def test_well_formed_answers_pass(answer):
    stdout = f"banner\n__CHECKRUN_RESULT__{answer}\n".encode()
    assert parse_output(stdout, ["0.0"])["results"][0]["id"] == "0.0"


def test_only_a_newline_ends_the_answer():
    """A \\x1c or U+2028 inside a string is data, not the end of the result line."""
    answer = {"version": 1, "results": [{"id": "0.0", "result": {"message": "a\x1cb\u2028c"}}]}
    stdout = ("__CHECKRUN_RESULT__" + json.dumps(answer, ensure_ascii=False) + "\n").encode()
    assert parse_output(stdout, ["0.0"])["results"][0]["result"]["message"] == "a\x1cb\u2028c"


def test_a_shorter_integer_is_a_number_and_a_longer_one_is_rejected():
    def stdout(digits: int) -> bytes:
        return (
            b'__CHECKRUN_RESULT__{"version": 1, "duration": ' + b"1" * digits + b', "results": []}'
        )

    assert parse_output(stdout(40))["duration"] == int("1" * 40)
    with pytest.raises(ProtocolError, match="41 digits"):
        parse_output(stdout(41))


def test_protocol_version_must_be_the_integer_one():
    with pytest.raises(ProtocolError, match="version mismatch: True"):
        parse_output(b'__CHECKRUN_RESULT__{"version": true, "results": []}')


def test_a_module_measuring_nan_gets_an_error_not_a_rejected_batch():
    """Our own batch never sends NaN (the control node would reject the whole answer): a
    module that measures one fails alone, with its measurement named."""
    from checkrunner.modules import _batch

    entry = {"id": "0.0", "module": "x"}
    _batch._call(entry, lambda: {"measurements": {"ratio": float("nan"), "n": 1}})
    assert entry["error"] == "measurement 'ratio' is not a finite number (nan)"
    assert "result" not in entry
