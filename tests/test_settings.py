"""Settings declared once (checkrunner/settings.py): the command line, app, the runner and the
transports all take a setting's default from its one declaration, and the help shows it;
the --report help comes from the report registry."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from checkrunner import app, report, settings
from checkrunner.cli import _run_parser
from checkrunner.runner import RunOptions
from checkrunner.state.db import default_state_path
from checkrunner.transport import BatchOptions
from checkrunner.transport.ssh_known_hosts import default_accept_new_file

# command-line destination -> its setting; RunCommand has a field of the same name
RUN_SETTINGS = {
    "forks": settings.FORKS,
    "host_timeout": settings.HOST_TIMEOUT,
    "wait": settings.WAIT,
    "wait_interval": settings.WAIT_INTERVAL,
    "fail_on": settings.FAIL_ON,
    "target_nice": settings.TARGET_NICE,
    "target_memory_limit": settings.TARGET_MEMORY_LIMIT,
    "state": settings.STATE,
}


def parser_actions() -> dict[str, object]:
    return {action.dest: action for action in _run_parser("checkrun")._actions}


def test_the_command_line_app_and_runner_share_each_default():
    actions = parser_actions()
    command = app.RunCommand(playbook="p.yml")
    for dest, setting in RUN_SETTINGS.items():
        assert actions[dest].default == setting.default, dest
        assert getattr(command, dest) == setting.default, dest
    options = RunOptions()
    for field in ("forks", "host_timeout", "wait", "wait_interval", "fail_on"):
        assert getattr(options, field) == RUN_SETTINGS[field].default, field
    batch = BatchOptions()
    assert (batch.nice, batch.memory_limit) == (
        settings.TARGET_NICE.default,
        settings.TARGET_MEMORY_LIMIT.default,
    )


def test_a_parsed_command_line_without_options_is_the_declared_defaults():
    namespace = _run_parser("checkrun").parse_args(["p.yml"])
    for dest, setting in RUN_SETTINGS.items():
        assert getattr(namespace, dest) == setting.default, dest


def test_the_help_shows_each_setting_with_its_default():
    actions = parser_actions()
    assert actions["forks"].help == "hosts checked at once (default: 50)"
    assert actions["wait_interval"].help == "pause between --wait rounds (default: 2s)"
    assert actions["timeout"].help == settings.CONNECT_TIMEOUT.help_text
    assert actions["host_timeout"].help.endswith(
        f"+ sample window + {settings.HOST_DEADLINE_SLACK:g}s)"
    )
    for dest, setting in RUN_SETTINGS.items():
        if dest != "wait":  # 0, no waiting: its help says what it does instead
            assert actions[dest].help == setting.help_text, dest


def test_the_report_help_is_generated_from_the_registry(monkeypatch):
    assert parser_actions()["report"].help == (
        "terminal (default), json, junit, markdown, html, nagios, prometheus; PATH or stdout; "
        "repeatable"
    )
    monkeypatch.setitem(report.FORMATS, "sarif", "checkrunner.report.markdown:MarkdownReporter")
    assert parser_actions()["report"].help.startswith(
        "terminal (default), json, junit, markdown, html, nagios, prometheus, sarif;"
    )


def test_the_registry_names_each_reporter_by_its_own_name():
    for name in report.FORMATS:
        assert report.reporter_class(name).name == name
    assert report.REPORTERS["json"] is report.JsonReporter
    with pytest.raises(AttributeError):
        report.NoSuchReporter  # noqa: B018 - the attribute access is the test


def test_listing_the_report_formats_imports_no_reporter():
    code = (
        "import sys\n"
        "from checkrunner.cli import _run_parser\n"
        "_run_parser('checkrun').format_help()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('rich', 'checkrunner.report.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['checkrunner.report.base']"


@pytest.mark.parametrize("xdg", [None, "/srv/xdg-state"])
def test_the_state_directory_is_declared_once_for_the_database_and_accepted_keys(
    monkeypatch, tmp_path, xdg
):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(settings.STATE.env, raising=False)
    if xdg is None:
        monkeypatch.delenv(settings.STATE_HOME.env, raising=False)
        directory = str(tmp_path / ".local" / "state" / "checkrunner")
    else:
        monkeypatch.setenv(settings.STATE_HOME.env, xdg)
        directory = f"{xdg}/checkrunner"
    assert settings.state_directory() == directory
    assert default_state_path() == f"{directory}/state.db"
    assert default_accept_new_file() == f"{directory}/known_hosts"
    monkeypatch.setenv(settings.STATE.env, str(tmp_path / "elsewhere.db"))
    assert default_state_path() == str(tmp_path / "elsewhere.db")
    assert default_accept_new_file() == f"{directory}/known_hosts"  # the database alone moves


def test_a_setting_is_one_frozen_declaration():
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.FORKS.default = 10  # type: ignore[misc]


def test_the_default_interpreter_is_the_same_for_the_inventory_and_the_ssh_transport():
    from checkrunner.inventory.model import Host
    from checkrunner.transport.ssh import remote_command

    assert Host("h").python_interpreter == settings.PYTHON_INTERPRETER.default
    command = remote_command(
        "", become=False, become_user="root", become_method="sudo", login_user="u"
    )
    assert command.startswith(f"{settings.PYTHON_INTERPRETER.default} -c ")
