"""Ansible's executable inventory scripts: `SCRIPT --list` prints the groups as JSON
(`{"web": {"hosts": [...], "vars": {...}, "children": [...]}, "_meta": {"hostvars":
{HOST: {...}}}}`), and when `_meta.hostvars` is absent `SCRIPT --host HOST` prints each
host's variables. The answer is untrusted input: each run has a deadline and an output
cap, and what it prints is read as strict JSON, then by the same listing parser as
`ansible-inventory --list` output (`yaml_format`), whose host names go through the same
checks as any inventory's.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from checkrunner import settings
from checkrunner.errors import ConfigError, Location
from checkrunner.subprocesses import kill_group, read_bounded

MAX_SCRIPT_OUTPUT = 64 * 1024**2  # the same cap as an inventory file (yamlio's MAX_FILE_BYTES)
MAX_STDERR_SHOWN = 300  # characters of the script's stderr quoted in an error
HOST_QUERIES_AT_ONCE = 8  # `--host` runs in parallel when a script has no _meta
_EXECUTABLE_MAGIC = (b"#!", b"\x7fELF")


def is_inventory_script(path: str) -> bool:
    """An executable file that starts as a program does (`#!` or an ELF header): Ansible's
    script plugin takes any executable; a YAML or INI file checked out with its execute bit
    set stays a file here."""
    if not os.access(path, os.X_OK):
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError:
        return False
    return head.startswith(_EXECUTABLE_MAGIC)


def script_listing(path: str) -> str:
    """The script's inventory as `ansible-inventory --list` JSON text, `_meta.hostvars`
    filled from `--host` answers when the script gave none. ConfigError naming the script
    for a failure, a timeout, too much output or an answer that is not what the protocol
    says."""
    listing = _json_answer(path, "--list")
    if not isinstance(listing, dict):
        raise ConfigError(
            f"`{_command(path, '--list')}` printed {_kind(listing)}, not a JSON object of groups",
            Location(path),
            'an inventory script prints {"GROUP": {"hosts": [...]}, "_meta": {"hostvars": {}}}',
        )
    meta = listing.get("_meta")
    if not isinstance(meta, dict) or "hostvars" not in meta:
        hostvars = _host_answers(path, listed_hosts(listing))
        listing["_meta"] = {**(meta if isinstance(meta, dict) else {}), "hostvars": hostvars}
    return json.dumps(listing, indent=1, ensure_ascii=False)


def listed_hosts(listing: dict[str, Any]) -> list[str]:
    """Every host name the groups of a `--list` answer name, once, in order (names that are
    not strings are left to the listing parser to refuse)."""
    names: dict[str, None] = {}
    for group, body in listing.items():
        if group == "_meta":
            continue
        hosts = (
            body
            if isinstance(body, list)
            else (body or {}).get("hosts")
            if isinstance(body, dict)
            else None
        )
        if isinstance(hosts, list):
            names.update(dict.fromkeys(name for name in hosts if isinstance(name, str)))
    return list(names)


def _host_answers(path: str, hosts: list[str]) -> dict[str, Any]:
    with ThreadPoolExecutor(HOST_QUERIES_AT_ONCE) as pool:
        answers = list(pool.map(lambda host: _host_vars(path, host), hosts))
    return dict(zip(hosts, answers))


def _host_vars(path: str, host: str) -> dict[str, Any]:
    answer = _json_answer(path, "--host", host)
    if not isinstance(answer, dict):
        raise ConfigError(
            f"`{_command(path, '--host', host)}` printed {_kind(answer)}, not a JSON object "
            "of the host's variables",
            Location(path),
            "print {} for a host without variables, or add _meta.hostvars to --list",
        )
    return answer


@dataclass
class _Ran:
    status: int
    stdout: bytes
    stderr: bytes


def _json_answer(path: str, *args: str) -> Any:
    command = _command(path, *args)
    ran = _run(path, list(args), command)
    if ran.status != 0:
        raise ConfigError(
            f"inventory script `{command}` failed with exit status {ran.status}"
            + _stderr_tail(ran.stderr),
            Location(path),
            f"run it by hand to see why: {command}",
        )
    try:
        return json.loads(ran.stdout.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"`{command}` printed text that is not UTF-8 (byte {exc.start})",
            Location(path),
            "an inventory script prints JSON, in UTF-8",
        ) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"`{command}` printed no valid JSON: {exc.msg}" + _stderr_tail(ran.stderr),
            Location(f"{path} {' '.join(args)} (its output)", exc.lineno, exc.colno),
            "an inventory script prints one JSON object on stdout (messages go to stderr)",
        ) from None
    except RecursionError:
        raise ConfigError(
            f"`{command}` printed JSON nested too deeply", Location(path), "is it the right script?"
        ) from None


def _run(path: str, args: list[str], command: str) -> _Ran:
    """The script run with a deadline and an output cap; stdin is /dev/null; it and what it
    started are killed when either is passed."""
    timeout = script_timeout()
    try:
        proc = subprocess.Popen(
            [os.path.abspath(path), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot run the inventory script: {exc.strerror or exc}",
            Location(path),
            "check its #! line (the interpreter must exist) and its permissions",
        ) from None
    deadline = time.monotonic() + timeout
    try:
        stdout, stderr, overflow = read_bounded(proc, deadline, MAX_SCRIPT_OUTPUT, 4096)
        if overflow:
            raise ConfigError(
                f"inventory script `{command}` printed more than "
                f"{MAX_SCRIPT_OUTPUT // 1024**2} MiB",
                Location(path),
                "is it the right script? split the inventory",
            )
        status = proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:  # past its deadline, reading or waiting
        kill_group(proc)
        raise _timed_out(command, path) from None
    except BaseException:
        kill_group(proc)
        raise
    return _Ran(status, stdout, stderr)


def _timed_out(command: str, path: str) -> ConfigError:
    return ConfigError(
        f"inventory script `{command}` did not finish within {script_timeout():g}s",
        Location(path),
        f"make it answer faster (cache its data), or raise {settings.INVENTORY_SCRIPT_TIMEOUT.env}",
    )


def script_timeout() -> float:
    """How long one run of a script may take: $CHECKRUN_INVENTORY_SCRIPT_TIMEOUT seconds."""
    setting = settings.INVENTORY_SCRIPT_TIMEOUT
    text = setting.from_environment()
    if text is None:
        return setting.default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 86400:
        raise ConfigError(
            f"{setting.env}={text!r}: not a number of seconds between 0 and 86400",
            hint=f"e.g. {setting.env}=120",
        )
    return value


def _stderr_tail(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return f": {lines[-1][:MAX_STDERR_SHOWN]}" if lines else ""


def _command(path: str, *args: str) -> str:
    return " ".join([path, *args])


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"
