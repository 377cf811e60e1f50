"""The exception tree (issue 10): one documented tree in checkrunner/errors.py. Its picture
is the specification: the classes and their bases are checked against it, an AST scan finds
every exception class in the package outside errors.py (only the documented ones may be),
and the real command line ends with each public class's exit code."""

from __future__ import annotations

import ast
import builtins
import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import CHECKRUN, run_checkrun
from helpers_net import closed_port
from hostile import fake_interpreter

import checkrunner
from checkrunner import errors
from checkrunner.results import (
    EXIT_BAD_INPUT,
    EXIT_CRITICAL,
    EXIT_INTERRUPTED,
    EXIT_UNKNOWN,
    EXIT_UNREACHABLE,
)

PACKAGE = Path(checkrunner.__file__).parent
# code that runs on targets is standard library only: it cannot use this tree. An installed
# wheel holds it inside the package (checkrunner/modules); an editable install does not.
TARGET_MODULES = PACKAGE / "modules"
_TREE_LINE = re.compile(
    r"^(?P<indent>[ │]*)[├└]── (?P<name>\w+)(?P<also> \(also (?P<mixin>\w+)\))?"
)


@dataclass(frozen=True)
class Node:
    name: str
    parent: str
    mixin: str | None


def documented_tree() -> list[Node]:
    """The picture in errors.py's docstring: each class with its parent (by indentation)."""
    nodes: list[Node] = []
    stack: list[tuple[int, str]] = [(-1, "Exception")]
    for line in errors.__doc__.splitlines():
        line = line.strip("\n")[4:] if line.startswith("    ") else line
        match = _TREE_LINE.match(line)
        if match is None:
            if line.strip() == "Exception":
                stack = [(-1, "Exception")]
            continue
        depth = len(match["indent"])
        while stack[-1][0] >= depth:
            stack.pop()
        nodes.append(Node(match["name"], stack[-1][1], match["mixin"]))
        stack.append((depth, match["name"]))
    return nodes


def documented_exceptions_elsewhere() -> set[str]:
    """`package.module.Class` names the docstring lists as defined outside errors.py."""
    section = errors.__doc__.split("Exceptions defined elsewhere", 1)[1]
    return set(re.findall(r"`((?:\w+\.)+[A-Z_]\w*)`", section))


def test_the_picture_is_the_tree():
    nodes = documented_tree()
    assert len(nodes) >= 15
    for node in nodes:
        cls = getattr(errors, node.name)
        parent = getattr(builtins, node.parent, None) or getattr(errors, node.parent)
        assert cls.__bases__[0] is parent, f"{node.name} should derive from {node.parent}"
        mixins = [getattr(builtins, node.mixin)] if node.mixin else []
        assert list(cls.__bases__[1:]) == mixins, f"{node.name}: bases {cls.__bases__}"


def test_every_exception_of_errors_py_is_in_the_picture_and_documented():
    pictured = {node.name for node in documented_tree()}
    defined = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    }
    assert defined == pictured
    for name in defined:
        doc = getattr(errors, name).__doc__ or ""
        assert len(doc.split()) >= 8, f"{name} needs a docstring: what raises it, what follows"


def _exception_classes(tree: ast.AST, known: set[str]) -> set[str]:
    """Classes whose base (as written) is an exception: a builtin one, one of `known`, or a
    library's (named ...Error or ...Exception)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for base in node.bases:
            name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
            builtin = getattr(builtins, name, None)
            if (
                (isinstance(builtin, type) and issubclass(builtin, BaseException))
                or name in known
                or name.endswith(("Error", "Exception"))
            ):
                found.add(node.name)
    return found


def exceptions_outside_errors_py() -> set[str]:
    trees = {
        path: ast.parse(path.read_text(), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "errors.py" and not path.is_relative_to(TARGET_MODULES)
    }
    known = {node.name for node in documented_tree()}
    found: set[str] = set()
    while True:  # a class deriving from one found in another file is found on the next pass
        more = set()
        for path, tree in trees.items():
            module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
            more |= {f"{module}.{name}" for name in _exception_classes(tree, known)}
        if more <= found:
            return found
        found |= more
        known |= {name.rsplit(".", 1)[1] for name in more}


def test_every_exception_class_lives_in_errors_py_except_the_documented_ones():
    assert exceptions_outside_errors_py() == documented_exceptions_elsewhere()


def test_the_scan_finds_an_exception_class_wherever_it_is_written():
    source = "class A(ValueError): ...\nclass B(A): ...\nclass C(yaml.YAMLError): ...\nclass D: ..."
    assert _exception_classes(ast.parse(source), {"A"}) == {"A", "B", "C"}


def test_the_documented_exit_codes():
    """TargetError is abstract: its subclasses say what a host failure makes of the run."""
    expected = dict.fromkeys(
        ["CheckrunError", "ConfigError", "MultipleConfigErrors", "VariableLoop"], EXIT_BAD_INPUT
    )
    expected |= dict.fromkeys(
        ["InvalidValue", "OptionValueError", "HostEntryError", "BaselineError"], EXIT_BAD_INPUT
    )
    expected |= {"RE2Error": EXIT_BAD_INPUT, "TargetError": EXIT_BAD_INPUT}
    expected |= {"Unreachable": EXIT_UNREACHABLE, "ProtocolError": EXIT_UNKNOWN}
    expected |= {"RemoteCrash": EXIT_UNKNOWN, "AlertingError": None, "RenderError": None}
    expected |= {"Cancelled": EXIT_INTERRUPTED, "LeaseLost": None, "CommandFailed": None}
    expected |= {"NotBuilt": None}
    assert {
        node.name: getattr(errors, node.name).exit_code for node in documented_tree()
    } == expected


# --- the command line: each public class, raised for real, ends the run with its code ----

PLAY = "- name: p\n  hosts: all\n  checks:\n{checks}"
FILE_CHECK = "    - {{name: flag, file: {{path: {path}}}}}\n"


def _files(tmp_path: Path, playbook: str, inventory: str) -> tuple[Path, Path]:
    (tmp_path / "p.yml").write_text(playbook)
    (tmp_path / "inv.ini").write_text(inventory)
    return tmp_path / "p.yml", tmp_path / "inv.ini"


def _local_play(tmp_path: Path, checks: str = "") -> str:
    return PLAY.format(checks=checks or FILE_CHECK.format(path=tmp_path / "flag"))


def scenario_config_error(tmp_path: Path) -> tuple[list, str]:
    play = PLAY.format(checks="    - {name: web, htp: {url: 'http://127.0.0.1:1/'}}\n")
    playbook, inventory = _files(tmp_path, play, "h ansible_connection=local\n")
    return [playbook, "-i", inventory], "did you mean 'http'?"


def scenario_multiple_config_errors(tmp_path: Path) -> tuple[list, str]:
    checks = "    - {name: a, htp: {}}\n    - {name: b, fil: {}}\n"
    playbook, inventory = _files(
        tmp_path, PLAY.format(checks=checks), "h ansible_connection=local\n"
    )
    return [playbook, "-i", inventory], "did you mean 'file'?"


def scenario_variable_loop(tmp_path: Path) -> tuple[list, str]:
    play = "- name: p\n  hosts: all\n  vars: {a: '{{ b }}', b: '{{ a }}'}\n  checks:\n"
    play += "    - {name: flag, file: {path: '{{ a }}'}}\n"
    playbook, inventory = _files(tmp_path, play, "h ansible_connection=local\n")
    return [playbook, "-i", inventory], "refers to itself"


def scenario_option_value_error(tmp_path: Path) -> tuple[list, str]:
    playbook, inventory = _files(tmp_path, _local_play(tmp_path), "h ansible_connection=local\n")
    return [playbook, "-i", inventory, "--forks", "many"], "many"


def scenario_host_entry_error(tmp_path: Path) -> tuple[list, str]:
    playbook, inventory = _files(
        tmp_path, _local_play(tmp_path), "web[3:1] ansible_connection=local\n"
    )
    return [playbook, "-i", inventory], "starts after it ends"


def scenario_baseline_error(tmp_path: Path) -> tuple[list, str]:
    (tmp_path / "p.yml").write_text(
        "- hosts: localhost\n  checks:\n"
        "    - {memory: {}, warn: {baseline: 7d, factor: 2, sigma: 3}}\n"
    )
    return [tmp_path / "p.yml"], "exactly one of factor, sigma and mad"


def scenario_re2_error(tmp_path: Path) -> tuple[list, str]:
    play = (
        "plays:\n  - name: app\n    hosts: localhost\n    checks:\n"
        f"      - name: flag\n        file: {{path: {tmp_path / 'flag'}}}\n"
        "receivers: [{name: hook, webhook_configs: [{url: 'http://127.0.0.1:1/'}]}]\n"
        "route: {receiver: hook, routes: [{matchers: ['severity=~\"(\"'], receiver: hook}]}\n"
    )
    (tmp_path / "p.yml").write_text(play)
    return [tmp_path / "p.yml", "--state", tmp_path / "s.db"], "Go RE2 syntax"


def scenario_unreachable(tmp_path: Path) -> tuple[list, str]:
    host = f"h ansible_host=127.0.0.1 ansible_port={closed_port()} ansible_connection=ssh\n"
    playbook, inventory = _files(tmp_path, _local_play(tmp_path), host)
    return [playbook, "-i", inventory], "refused"


def scenario_remote_crash(tmp_path: Path) -> tuple[list, str]:
    """ProtocolError and RemoteCrash are one case: the runner turns the first into the second."""
    python = fake_interpreter(tmp_path / "garbage", '"not json at all"')
    host = f"h ansible_connection=local ansible_python_interpreter={python}\n"
    playbook, inventory = _files(tmp_path, _local_play(tmp_path), host)
    return [playbook, "-i", inventory], "remote crash"


def scenario_render_error(tmp_path: Path) -> tuple[list, str]:
    """The slack title needs a label these alerts lack: that notification fails, and the run
    ends by its checks' verdict (the missing file: CRITICAL, exit 2)."""
    play = (
        "plays:\n  - name: app\n    hosts: localhost\n    checks:\n"
        f"      - name: flag\n        file: {{path: {tmp_path / 'flag'}}}\n"
        "receivers:\n  - name: ops\n    slack_configs:\n"
        "      - api_url: http://127.0.0.1:1/slack\n"
        "        title: '{{ commonLabels.team }} is down'\n"
        "route: {receiver: ops}\n"
    )
    (tmp_path / "p.yml").write_text(play)
    return [tmp_path / "p.yml", "--state", tmp_path / "s.db"], "cannot render the message"


def scenario_command_failed(tmp_path: Path) -> tuple[list, str]:
    """`checkrun init` on a host whose ssh port refuses: it could not look at it (exit 4)."""
    port = closed_port()
    inventory = tmp_path / "inv.ini"
    inventory.write_text(f"h ansible_host=127.0.0.1 ansible_port={port} ansible_connection=ssh\n")
    return ["init", "-i", inventory, "-l", "h", "--dry-run"], "unreachable"


SCENARIOS = {
    "ConfigError": (scenario_config_error, EXIT_BAD_INPUT),
    "MultipleConfigErrors": (scenario_multiple_config_errors, EXIT_BAD_INPUT),
    "VariableLoop": (scenario_variable_loop, EXIT_BAD_INPUT),
    "OptionValueError": (scenario_option_value_error, EXIT_BAD_INPUT),
    "HostEntryError": (scenario_host_entry_error, EXIT_BAD_INPUT),
    "RE2Error": (scenario_re2_error, EXIT_BAD_INPUT),
    "BaselineError": (scenario_baseline_error, EXIT_BAD_INPUT),
    "Unreachable": (scenario_unreachable, EXIT_UNREACHABLE),
    "ProtocolError": (scenario_remote_crash, EXIT_UNKNOWN),
    "RemoteCrash": (scenario_remote_crash, EXIT_UNKNOWN),
    "RenderError": (scenario_render_error, EXIT_CRITICAL),
    "CommandFailed": (scenario_command_failed, EXIT_UNREACHABLE),
}
# Bases that are never raised themselves; Cancelled has its own test below (a signal);
# LeaseLost never reaches the command line (tests/test_watch_ha.py: a takeover), nor does
# NotBuilt (a 503 of watch's HTTP face: tests/test_rendered.py).
ABSTRACT = {
    "CheckrunError",
    "InvalidValue",
    "TargetError",
    "AlertingError",
    "Cancelled",
    "LeaseLost",
    "NotBuilt",
}


def test_every_public_class_has_a_command_line_scenario():
    public = {node.name for node in documented_tree()}
    assert set(SCENARIOS) == public - ABSTRACT


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_command_line_ends_with_the_exit_code_of_the_error(tmp_path, name):
    scenario, code = SCENARIOS[name]
    args, message = scenario(tmp_path)
    done = run_checkrun(*args)
    assert done.returncode == code, done.stdout + done.stderr
    assert message in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    documented = getattr(errors, name).exit_code
    assert documented in (code, None)  # None: an alerting error leaves the checks' verdict


def test_cancelled_between_attempts_ends_with_130(tmp_path):
    """A failing check with retries sleeps between attempts; Ctrl-C there raises Cancelled in
    the runner (the host stops waiting) and the run ends interrupted, with a report."""
    mark = tmp_path / "attempted"
    checks = (
        "    - name: fails\n"
        f"      command: {{cmd: 'touch {mark}; exit 2', shell: true}}\n"
        "      retries: 100\n      delay: 1h\n"
    )
    playbook, inventory = _files(
        tmp_path, PLAY.format(checks=checks), "h ansible_connection=local\n"
    )
    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [CHECKRUN, str(playbook), "-i", str(inventory), "-r", f"json:{out}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not mark.exists():  # the first attempt ran: the host now sleeps for an hour
        assert time.monotonic() < deadline and proc.poll() is None, "the check never ran"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)  # far less than the hour: the sleep was cut
    assert proc.returncode == errors.Cancelled.exit_code == EXIT_INTERRUPTED, stderr
    assert "Traceback" not in stderr
    assert json.loads(out.read_text())["interrupted"] is True
