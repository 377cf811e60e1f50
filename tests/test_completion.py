"""Shell completion: the scripts `checkrun completion SHELL` prints, loaded by the real
shells and asked for candidates the way each shell asks (bash: COMP_WORDS/COMP_CWORD and
the function `complete -p` names; zsh: words/CURRENT and the function compdef registered;
fish: `complete -C`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import run_checkrun

from checkrunner import catalog
from checkrunner.cli import command_parsers
from checkrunner.report import FORMATS

INVENTORY = """\
all:
  children:
    web:
      hosts:
        web-1.example.com: {}
        web-2.example.com: {}
    db:
      hosts:
        db-1.example.com: {}
"""


def _script(shell: str, tmp_path: Path) -> Path:
    result = run_checkrun("completion", shell)
    assert result.returncode == 0, result.stderr
    path = tmp_path / f"checkrun.{shell}"
    path.write_text(result.stdout)
    return path


def _shell(argv: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


BASH_DRIVER = r"""
source "$SCRIPT"
function_name=$(complete -p checkrun | sed -E 's/.*-F ([^ ]+) .*/\1/')
line="$LINE"
COMP_LINE="$line"
COMP_POINT=${#line}
read -ra COMP_WORDS <<< "$line"
[[ $line == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
"$function_name" checkrun "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def bash_complete(script: Path, line: str, cwd: Path) -> list[str]:
    driver = cwd / "driver.bash"
    driver.write_text(BASH_DRIVER)
    proc = subprocess.run(
        ["bash", str(driver)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SCRIPT": str(script), "LINE": line},
    )
    assert proc.returncode == 0, proc.stderr
    return [value for value in proc.stdout.splitlines() if value]


def test_bash_completes_commands_options_choices_formats_modules_and_hosts(tmp_path):
    script = _script("bash", tmp_path)
    (tmp_path / "inv.yml").write_text(INVENTORY)
    (tmp_path / "site.yml").write_text("[]\n")

    def ask(line: str) -> list[str]:
        return bash_complete(script, line, tmp_path)

    assert "validate" in ask("checkrun va") and ask("checkrun va") == ["validate"]
    assert ask("checkrun --fail") == ["--fail-on"]
    assert ask("checkrun site.yml --fail-on ") == ["critical", "never", "warning"]
    assert ask("checkrun site.yml -r ju") == ["junit", "junit:"]
    assert ask("checkrun doc ht") == ["http"]
    assert ask("checkrun -i inv.yml site.yml -l web") == [
        "web",
        "web-1.example.com",
        "web-2.example.com",
    ]
    # --inventory=FILE and a later -i both count; the hosts of both inventories
    (tmp_path / "more.ini").write_text("[cache]\nredis-1\n")
    assert ask("checkrun --inventory=inv.yml -i more.ini site.yml --limit re") == ["redis-1"]
    # a playbook position completes file names
    assert ask("checkrun si") == ["site.yml"]
    assert ask("checkrun watch --log-format ") == ["json", "text"]
    assert ask("checkrun completion ") == ["bash", "fish", "zsh"]


def test_bash_value_after_a_colon_replaces_only_the_part_bash_splits_off(tmp_path):
    """bash splits `--report=jso` at '=' (COMP_WORDBREAKS): the candidate is the rest."""
    script = _script("bash", tmp_path)
    driver = tmp_path / "d.bash"
    driver.write_text(
        'source "$SCRIPT"\n'
        'COMP_LINE="checkrun --report=jso"; COMP_POINT=${#COMP_LINE}\n'
        "COMP_WORDS=(checkrun --report = jso); COMP_CWORD=3\n"
        "_checkrun_complete\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(
        ["bash", str(driver)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SCRIPT": str(script)},
        cwd=tmp_path,
    )
    assert out.stdout.split() == ["json", "json:"]
    # FORMAT:PATH: bash splits at ':' too; the path after it is completed
    (tmp_path / "reports").mkdir()
    driver.write_text(
        'source "$SCRIPT"\n'
        'COMP_LINE="checkrun p.yml -r junit:rep"; COMP_POINT=${#COMP_LINE}\n'
        "COMP_WORDS=(checkrun p.yml -r junit : rep); COMP_CWORD=5\n"
        "_checkrun_complete\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    out = subprocess.run(
        ["bash", str(driver)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SCRIPT": str(script)},
        cwd=tmp_path,
    )
    assert out.stdout.split() == ["reports"]


def test_every_option_of_every_command_is_offered(tmp_path):
    """Generated from the parsers: nothing to keep in step by hand."""
    for command, parser in command_parsers().items():
        flags = sorted(flag for action in parser._actions for flag in action.option_strings)
        prefix = [] if command == "run" else [command]
        result = run_checkrun("__complete", "--", *prefix, "-")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == flags, command


def test_doc_offers_every_catalog_module_and_report_offers_every_format():
    doc = run_checkrun("__complete", "--", "doc", "").stdout.split()
    assert set(catalog.module_names()) <= set(doc)
    report = run_checkrun("__complete", "--", "p.yml", "--report", "").stdout.split()
    assert set(FORMATS) <= set(report)


def test_an_unreadable_inventory_completes_nothing_and_prints_no_error(tmp_path):
    (tmp_path / "bad.yml").write_text("all: [\n")
    result = run_checkrun("__complete", "--", "-i", "bad.yml", "p.yml", "-l", "", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == "" and result.stderr == ""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed (scripts/test.sh)")
def test_zsh_loads_the_script_and_completes(tmp_path):
    """Real zsh runs the script and the function compdef registered; compadd and _files,
    which exist only inside a completion widget, are replaced by functions that print
    what they were given."""
    script = _script("zsh", tmp_path)
    (tmp_path / "inv.yml").write_text(INVENTORY)
    driver = tmp_path / "driver.zsh"
    driver.write_text(
        "compdef() { registered=$1 }\n"
        'compadd() { print -r -- "compadd $*" }\n'
        '_files() { print -r -- "files" }\n'
        f"source {script}\n"
        'words=(checkrun site.yml --fail-on ""); CURRENT=4; $registered\n'
        "words=(checkrun -i inv.yml site.yml -l db); CURRENT=6; $registered\n"
        "words=(checkrun doc cp); CURRENT=3; $registered\n"
        "words=(checkrun si); CURRENT=2; $registered\n"
        'compset() { print -r -- "compset $*" }\n'
        "words=(checkrun si -r json:re); CURRENT=4; $registered\n"
    )
    out = _shell(["zsh", "-f", str(driver)], tmp_path).splitlines()
    assert out == [
        "compadd -Q -- critical never warning",
        "compadd -Q -- db db-1.example.com",
        "compadd -Q -- cpu",
        "files",
        "compset -P *:",
        "files",
    ]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed (scripts/test.sh)")
def test_fish_loads_the_script_and_completes(tmp_path):
    script = _script("fish", tmp_path)
    (tmp_path / "inv.yml").write_text(INVENTORY)
    (tmp_path / "site.yml").write_text("[]\n")

    def ask(line: str) -> list[str]:
        out = _shell(
            ["fish", "--no-config", "-c", f"source {script}; complete -C '{line}'"], tmp_path
        )
        return [value.split("\t")[0] for value in out.splitlines()]

    assert ask("checkrun site.yml --fail-on ") == ["critical", "never", "warning"]
    assert ask("checkrun -i inv.yml site.yml -l web-") == [
        "web-1.example.com",
        "web-2.example.com",
    ]
    assert ask("checkrun doc memo") == ["memory"]
    assert ask("checkrun si") == ["site.yml"]
    (tmp_path / "reports").mkdir()
    assert ask("checkrun site.yml -r json:rep") == ["json:reports/"]
