"""Text from a target or an input file cannot drive the terminal: escapes are shown, not run.

A crafted `units` or message must not retitle the window (OSC), clear the screen (CSI 2J),
move the cursor home, reorder the line (bidi override) or start a line of its own that
forges the summary ("Result: OK"). The same holds for playbook keys and play names quoted
in errors and warnings.
"""

from __future__ import annotations

import json
import re
import sys

from helpers import run_checkrun, validate_text
from hostile import fake_interpreter

from checkrunner.safe_text import escape_unprintable_json, one_line, printable

EVIL = "\x1b]0;pwned\x07\x1b[2J\x1b[H\rResult: OK | 0 critical\u202e\x9b2J\u2028\x85end"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e", "\r", "\u2028", "\x85")


def assert_no_raw_controls(text: str) -> None:
    for char in RAW_CONTROLS:
        assert char not in text, repr(char)


def assert_no_forged_result(text: str, real_status: str) -> None:
    results = [line for line in text.splitlines() if line.startswith("Result:")]
    assert len(results) == 1, results
    assert results[0].startswith(f"Result: {real_status} |")


def crafted_target_run(tmp_path, *report_args: str, env: dict | None = None):
    body = {
        "measurements": {"used_percent": 5},
        "units": {"used_percent": EVIL},
        "message": EVIL + "\nResult: OK | all fine",
        "facts": {"note": EVIL},
    }
    python = fake_interpreter(tmp_path / "python", f"json.dumps(answer(ids, {body!r}))")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"target ansible_connection=local ansible_python_interpreter={python}\n")
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- name: m\n  hosts: all\n  checks: [{name: memory, memory: {}, crit: 1}]\n"
    )
    return run_checkrun(playbook, "-i", inventory, *report_args, env=env)


def test_crafted_units_and_message_are_shown_escaped_in_the_plain_table(tmp_path):
    done = crafted_target_run(tmp_path)
    assert done.returncode == 2, done.stderr
    assert_no_raw_controls(done.stdout)
    assert "\x1b" not in done.stdout  # NO_COLOR: not even a colour escape
    assert_no_forged_result(done.stdout, "CRITICAL")
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in done.stdout  # the value column shows the unit
    assert "\\u202e" in done.stdout


def test_crafted_units_cannot_retitle_or_clear_a_colour_terminal(tmp_path):
    done = crafted_target_run(tmp_path, env={"NO_COLOR": "", "FORCE_COLOR": "1"})
    assert done.returncode == 2, done.stderr
    assert "\x1b[" in done.stdout  # colour is on: only rich's own SGR escapes may remain
    assert not re.search(r"\x1b(?!\[[0-9;]*m)", done.stdout), "a non-colour escape got through"
    for char in RAW_CONTROLS[1:]:
        assert char not in done.stdout
    assert_no_forged_result(re.sub(r"\x1b\[[0-9;]*m", "", done.stdout), "CRITICAL")


def test_the_json_report_keeps_the_data_but_no_raw_terminal_controls(tmp_path):
    done = crafted_target_run(tmp_path, "-r", "json")
    assert_no_raw_controls(done.stdout)
    check = json.loads(done.stdout)["hosts"][0]["checks"][0]
    assert check["units"]["used_percent"] == EVIL  # escaped on output, never altered
    assert check["facts"]["note"] == EVIL


def test_escapes_in_playbook_keys_are_shown_escaped_in_errors(tmp_path):
    done = validate_text(
        tmp_path,
        '- name: "play\\e]0;pwned\\a"\n  hosts: all\n'
        '  checks: [{name: m, memory: {}, "oops\\e[2J\\nResult: OK": 1}]\n',
    )
    assert done.returncode == 5
    assert "Traceback" not in done.stderr
    assert_no_raw_controls(done.stderr)
    assert "oops\\x1b[2J" in done.stderr
    assert not any(line.startswith("Result: OK") for line in done.stderr.splitlines())


def test_escapes_in_play_names_are_shown_escaped_in_warnings_and_listings(tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"web ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        '- name: "quiet\\e]0;pwned\\a\\nResult: OK"\n  hosts: nomatch\n'
        "  checks: [{name: m, memory: {}}]\n"
        '- name: "loud\\e[2J"\n  hosts: all\n'
        '  checks: [{name: "mem\\e[H\\u202e", memory: {}}]\n'
    )
    done = run_checkrun(playbook, "-i", inventory, "--list-checks")
    assert done.returncode == 0, done.stderr
    assert "[WARNING]" in done.stderr
    assert "quiet\\x1b]0;pwned\\x07\\nResult: OK" in done.stderr
    assert "loud\\x1b[2J" in done.stdout and "mem\\x1b[H\\u202e" in done.stdout
    for output in (done.stdout, done.stderr):
        assert_no_raw_controls(output)
        assert not any(line.startswith("Result: OK") for line in output.splitlines())


def test_the_sanitiser_escapes_every_class_visibly():
    assert printable("a\x1b[31mb") == "a\\x1b[31mb"
    assert printable("\x9b2J\x85") == "\\x9b2J\\x85"
    assert printable("x\u202ey\u2066z\u200f") == "x\\u202ey\\u2066z\\u200f"
    assert printable("tab\tand\r\nline") == "tab\tand\nline"
    assert printable("a\nb", newlines=False) == "a\\nb"
    assert one_line("a\n\tb\x00") == "a b\\x00"
    assert json.loads(escape_unprintable_json(json.dumps("\x9b\u202e", ensure_ascii=False))) == (
        "\x9b\u202e"
    )
