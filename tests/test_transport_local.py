"""The remote protocol end to end through the local transport: python3 reading the batch on stdin."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import pytest

from checkrunner import catalog
from checkrunner.config import normalize_args
from checkrunner.errors import Location
from checkrunner.results import UnreachableReason
from checkrunner.transport import (
    Batch,
    BatchCheck,
    LocalTransport,
    ProtocolError,
    Unreachable,
    build_payload,
    parse_output,
)


@dataclass
class FakeHost:  # the transport reads only these attributes of an inventory Host
    name: str = "localhost"
    python_interpreter: str = sys.executable
    become: bool = False


def check(check_id: str, module: str, args: dict, timeout: float) -> BatchCheck:
    """A batch entry with arguments normalised as the plan does (defaults applied)."""
    normalized = normalize_args(catalog.get(module), args, Location("test.yml", 1, 1))
    return BatchCheck(check_id, module, normalized, timeout)


def run(checks, host=None, timeout=30.0):
    transport = LocalTransport()
    result = transport.run_batch(host or FakeHost(), build_payload(Batch(checks=checks)), timeout)
    return {entry["id"]: entry for entry in parse_output(result.stdout)["results"]}


def test_one_round_trip_runs_several_modules():
    results = run(
        [
            check("0.0", "memory", {}, 10),
            check("0.1", "command", {"cmd": ["echo", "7"], "shell": False}, 10),
        ]
    )
    assert results["0.0"]["result"]["measurements"]["used_percent"] > 0
    assert "result" in results["0.1"]


def test_a_hung_check_times_out_on_the_target_without_holding_the_others():
    started = time.monotonic()
    results = run(
        [
            check("0.0", "command", {"cmd": ["sleep", "30"]}, 1.0),
            check("0.1", "memory", {}, 10),
        ]
    )
    assert time.monotonic() - started < 10
    assert results["0.0"]["error_type"] in ("timeout", "exception")
    assert "result" in results["0.1"]


def test_module_exception_becomes_an_error_entry():
    results = run([check("0.0", "disk", {"path": "/nonexistent/path/x"}, 10)])
    assert results["0.0"]["error_type"] == "exception"
    assert "/nonexistent/path/x" in results["0.0"]["error"]


def test_missing_interpreter_is_no_python():
    with pytest.raises(Unreachable) as info:
        run([check("0.0", "memory", {}, 10)], host=FakeHost(python_interpreter="/nope/python3"))
    assert info.value.reason == UnreachableReason.NO_PYTHON


def test_host_deadline_is_enforced_on_the_control_node():
    started = time.monotonic()
    with pytest.raises(Unreachable) as info:
        run([check("0.0", "command", {"cmd": ["sleep", "30"]}, 60)], timeout=1.0)
    assert info.value.reason == UnreachableReason.TIMEOUT
    assert time.monotonic() - started < 5


def test_parse_output_ignores_banners_and_rejects_garbage():
    good = b"Welcome to host\n__CHECKRUN_RESULT__" + b'{"version": 1, "results": []}\n'
    assert parse_output(good)["results"] == []
    with pytest.raises(ProtocolError):
        parse_output(b"Traceback (most recent call last):\n  ...\nSyntaxError: bad\n")
    with pytest.raises(ProtocolError):
        parse_output(b'__CHECKRUN_RESULT__{"version": 99}\n')


def test_payload_ships_only_the_modules_needed():
    import zlib

    program = zlib.decompress(build_payload(Batch(checks=[check("0.0", "memory", {}, 5)])))
    assert b"MemAvailable" in program
    assert b"def parse_perfdata" not in program  # the nagios module is not shipped


def test_open_files_limit_is_raised_to_the_hard_limit():
    import resource
    import subprocess

    code = (
        "import resource; from checkrunner.runner import raise_open_files_limit;"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]));"
        "raise_open_files_limit(); print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    soft, hard = map(
        int,
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split(),
    )
    assert soft == hard or hard == resource.RLIM_INFINITY


@pytest.mark.parametrize(
    ("config", "blocked"),
    [
        ("Host web\n  User deploy\n", True),
        ('Match exec "test -f /etc/vpn"\n  ProxyJump b\n', False),
    ],
)
def test_paramiko_skips_invoke_unless_the_ssh_config_needs_it(tmp_path, config, blocked):
    import subprocess

    path = tmp_path / "ssh_config"
    path.write_text(config)
    code = (
        "import sys\n"
        "from checkrunner.transport import Transports\n"
        "from checkrunner.transport.ssh_config import SSHOptions\n"
        "class Host: connection = 'ssh'; name = 'h'\n"
        f"Transports(SSHOptions(ssh_config={str(path)!r})).for_host(Host())\n"
        "print(sys.modules.get('invoke', 'absent') is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(blocked)
