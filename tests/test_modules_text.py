"""How modules read text from commands and plugins: lines as Nagios splits them, ASCII numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkrunner import catalog
from checkrunner.config.normalize import normalize_args
from checkrunner.errors import Location
from checkrunner.modules import command, nagios
from checkrunner.modules._batch import CheckContext
from checkrunner.modules._utils import processes

# Characters str.splitlines() breaks at, but Nagios and Icinga do not.
NOT_NEWLINES = ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
NON_ASCII_DIGITS = ["١٢", "１２", "۱۲", "१२", "¹²"]


def run(module, **given):
    name = module.__name__.rsplit(".", 1)[-1]
    args = normalize_args(catalog.get(name), given, Location("test_modules_text.py"))
    return module.run(args, CheckContext("0.1", 10.0, None))


def plugin(directory: Path, output: str) -> Path:
    (directory / "output.txt").write_text(output, encoding="utf-8")
    path = directory / "check_fixture"
    path.write_text(f"#!/bin/sh\ncat '{directory / 'output.txt'}'\n")
    path.chmod(0o755)
    return path


# ------------------------------------------------------------------ nagios: lines (point 16)


@pytest.mark.parametrize("separator", NOT_NEWLINES)
def test_plugin_output_is_split_at_newlines_only(separator):
    text = f"OK - a{separator}b | x=1{separator}y=2\nlong one\nlong two | z=3\n"
    message, long_output, perf_text = nagios.split_plugin_output(text)
    assert message == f"OK - a{separator}b"
    assert long_output == "long one\nlong two"
    labels = [item["label"] for item in nagios.parse_perfdata(perf_text)]
    assert labels == ["x", "y", "z"]


@pytest.mark.parametrize("separator", NOT_NEWLINES)
def test_perfdata_on_the_first_line_after_a_separator_is_kept(tmp_path, separator):
    result = run(nagios, plugin=str(plugin(tmp_path, f"OK | a=1{separator}b=2s\n")))
    assert result["measurements"]["a"] == 1.0 and result["measurements"]["b"] == 2.0
    assert result["units"]["b"] == "s"
    assert result["message"] == "OK"


def test_crlf_ends_a_line_and_a_lone_cr_stays_in_it():
    text = "DISK OK - fine\r\nline\rtwo\r\n| a=1;2;3\r\nb=4\r\n"
    message, long_output, perf_text = nagios.split_plugin_output(text)
    assert message == "DISK OK - fine"
    assert long_output == "line\rtwo"  # Nagios keeps a \r inside a line
    assert [(i["label"], i["value"], i["crit"]) for i in nagios.parse_perfdata(perf_text)] == [
        ("a", 1.0, "3"),
        ("b", 4.0, None),
    ]


# ------------------------------------------------------------ ASCII-only numbers (point 17)


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS)
def test_a_plugin_printing_non_ascii_digits_gives_no_measurement(tmp_path, digits):
    result = run(nagios, plugin=str(plugin(tmp_path, f"OK | users={digits}\n")))
    assert "users" not in result["measurements"]


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS)
def test_command_output_of_non_ascii_digits_is_not_a_number(digits):
    result = run(command, cmd=["printf", "%s", digits])
    assert result["facts"]["stdout"] == digits
    assert "value" not in result["measurements"]


def test_command_output_numbers_stay_numbers():
    # which texts are numbers, and of which type: tests/fixtures/parsers/command.parse_number
    value = run(command, cmd=["echo", "42"])["measurements"]["value"]
    assert value == 42 and type(value) is int


@pytest.mark.parametrize("uid", ["١", "０", "²"])
def test_a_uid_needs_ascii_digits(uid):
    with pytest.raises(RuntimeError, match="no user"):  # a name, and no such user
        processes.resolve_user(uid)
    assert processes.resolve_user("0") == (0, None)
