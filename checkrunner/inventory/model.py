"""Hosts and groups as the rest of checkrunner sees them, with Ansible's connection variables resolved."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from checkrunner import settings
from checkrunner.errors import ConfigError, Location, quote
from checkrunner.inventory.hostnames import hostname_problem, is_ascii_number, user_problem
from checkrunner.units import parse_duration

T = TypeVar("T")

# Names Ansible resolves to the implicit localhost when the inventory does not define them.
LOCALHOST_NAMES = ("localhost", "127.0.0.1", "::1")
IMPLICIT_LOCALHOST_ADDRESS = "127.0.0.1"
DEFAULT_PYTHON = settings.PYTHON_INTERPRETER.default

# ansible_connection values checkrunner can honour, mapped to its two transports.
CONNECTION_ALIASES = {
    "local": "local",
    "ssh": "ssh",
    "smart": "ssh",
    "paramiko": "ssh",
    "paramiko_ssh": "ssh",
}
_UNSAFE_NAME_HINT = (
    "OpenSSH refuses such names since 9.6 (CVE-2023-51385): a ProxyCommand would pass them to a "
    "shell; write the real address in ansible_host and keep any label as the inventory name"
)
_CONNECTION_PREFIXES = ("ansible.builtin.", "ansible.legacy.")

# Ansible's interpreter discovery modes; checkrunner always starts the target's `python3`.
_AUTO_INTERPRETERS = {"auto", "auto_silent", "auto_legacy", "auto_legacy_silent"}

# Ansible's `boolean()` filter vocabulary.
_TRUE_WORDS = {"yes", "y", "on", "true", "t", "1"}
_FALSE_WORDS = {"no", "n", "off", "false", "f", "0"}


@dataclass
class InventoryWarning:
    """Something suspicious that does not stop a run (a duplicate key, a vars file for no group)."""

    message: str
    location: Location | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    @staticmethod
    def collector(warnings: list[InventoryWarning]) -> Callable[[str, Location], None]:
        """A `warn(message, location)` for yamlio's YamlDocument that adds to `warnings`."""
        return lambda message, location: warnings.append(InventoryWarning(message, location))


@dataclass
class Group:
    name: str
    hosts: list[str] = field(default_factory=list)  # direct members, in definition order
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)  # inventory file, then group_vars/ files
    depth: int = 0  # longest distance from 'all'; deeper groups win variable ties
    priority: int = 1  # ansible_group_priority; higher wins between groups of equal depth
    location: Location | None = None
    var_locations: dict[str, Location] = field(default_factory=dict, repr=False)


@dataclass
class Host:
    """One inventory host: its fully merged variables and the connection settings they imply."""

    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(
        default_factory=list
    )  # sorted; every group but 'all' (Ansible's group_names)
    location: Location | None = field(default=None, compare=False)
    var_locations: dict[str, Location] = field(default_factory=dict, repr=False, compare=False)
    source: str | None = field(default=None, compare=False)  # inventory file that first defined it
    implicit: bool = False  # the implicit localhost, created when a pattern names it

    @property
    def address(self) -> str:
        found = self._lookup("ansible_host", "ansible_ssh_host")
        if found is None:
            return IMPLICIT_LOCALHOST_ADDRESS if self.implicit else self.name
        return self._text(*found)

    @property
    def port(self) -> int | None:
        return self._parsed(
            ("ansible_port", "ansible_ssh_port"), _port, "a port number between 1 and 65535"
        )

    @property
    def user(self) -> str | None:
        return self._optional_text("ansible_user", "ansible_ssh_user")

    @property
    def password(self) -> str | None:
        return self._optional_text("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")

    @property
    def connection(self) -> str:
        """'local' or 'ssh' ('paramiko' and 'smart' mean ssh here), else the connection as
        written (winrm, network_cli ...): such hosts load, and are reported unreachable
        (unsupported-connection) when a play selects them, so a mixed fleet's inventory works."""
        found = self._lookup("ansible_connection")
        if found is None:
            return "local" if self.implicit else "ssh"
        name = self._text(*found).strip()
        short = name.lower()
        for prefix in _CONNECTION_PREFIXES:
            short = short.removeprefix(prefix)
        return CONNECTION_ALIASES.get(short, name)

    @property
    def python_interpreter(self) -> str:
        found = self._lookup("ansible_python_interpreter")
        if found is None:
            return DEFAULT_PYTHON
        interpreter = self._text(*found).strip()
        return DEFAULT_PYTHON if interpreter in _AUTO_INTERPRETERS else interpreter

    @property
    def become(self) -> bool:
        found = self._lookup("ansible_become")
        return False if found is None else self._bool(*found)

    @property
    def become_user(self) -> str:
        return self._optional_text("ansible_become_user") or "root"

    @property
    def become_method(self) -> str:
        return self._optional_text("ansible_become_method") or "sudo"

    @property
    def become_password(self) -> str | None:
        return self._optional_text("ansible_become_password", "ansible_become_pass")

    @property
    def private_key_file(self) -> str | None:
        path = self._optional_text("ansible_ssh_private_key_file", "ansible_private_key_file")
        return os.path.expanduser(path) if path else None

    @property
    def ssh_common_args(self) -> str | None:
        return self._optional_text("ansible_ssh_common_args")

    @property
    def ssh_extra_args(self) -> str | None:
        return self._optional_text("ansible_ssh_extra_args")

    @property
    def host_key_checking(self) -> bool | None:
        """None when the inventory leaves it to checkrunner's own (strict) default."""
        found = self._lookup("ansible_host_key_checking", "ansible_ssh_host_key_checking")
        return None if found is None else self._bool(*found)

    @property
    def timeout(self) -> float | None:
        """Connection timeout in seconds (ansible_timeout), or None for the default."""
        return self._parsed(
            ("ansible_timeout", "ansible_ssh_timeout"),
            parse_duration,
            "a number of seconds or a duration like 10s",
        )

    def check_ssh_settings(self) -> None:
        """ConfigError at the inventory line for what ssh must not be given: a host name or user
        that OpenSSH refuses (it would reach a shell through %h/%r in a ProxyCommand), a bad port
        or another unusable connection variable. Called for every ssh host before any runs."""
        found = self._lookup("ansible_host", "ansible_ssh_host")
        address = self.address
        problem = hostname_problem(address)
        if problem is not None:
            what = f"{found[0]} {address!r}" if found else "the host name"
            raise ConfigError(
                f"host '{self.name}': {what} {problem}, which ssh refuses in a host name",
                self.var_locations.get(found[0]) if found else self.location,
                _UNSAFE_NAME_HINT,
            )
        user = self.user
        problem = None if user is None else user_problem(user)
        if problem is not None:
            key = self._lookup("ansible_user", "ansible_ssh_user")[0]  # type: ignore[index]
            raise self._invalid(
                key, user, f"a user name ssh accepts; it {problem}", _UNSAFE_NAME_HINT
            )
        for setting in ("port", "timeout", "host_key_checking", "private_key_file", "become"):
            getattr(self, setting)  # each raises ConfigError for a value it cannot use

    def _lookup(self, *keys: str) -> tuple[str, Any] | None:
        for key in keys:
            value = self.vars.get(key)
            if value is not None:
                return key, value
        return None

    def _optional_text(self, *keys: str) -> str | None:
        found = self._lookup(*keys)
        return None if found is None else self._text(*found)

    def _text(self, key: str, value: Any) -> str:
        if isinstance(value, (dict, list, bool)):
            raise self._invalid(key, value, "a string")
        return str(value)

    def _bool(self, key: str, value: Any) -> bool:
        parsed = parse_bool(value)
        if parsed is None:
            raise self._invalid(key, value, "a boolean (yes/no, true/false, 1/0)")
        return parsed

    def _parsed(self, keys: tuple[str, ...], parse: Callable[[Any], T], expected: str) -> T | None:
        """parse() of the first of `keys` that is set (None when none is); ConfigError saying
        it must be `expected` when parse raises ValueError."""
        found = self._lookup(*keys)
        if found is None:
            return None
        key, value = found
        try:
            return parse(value)
        except ValueError:
            raise self._invalid(key, value, expected) from None

    def _invalid(self, key: str, value: Any, expected: str, hint: str | None = None) -> ConfigError:
        message = f"host '{self.name}': {key} must be {expected}, got {quote(value)}"
        if isinstance(value, str) and "{{" in value:
            hint = hint or "connection variables are read after templating; render host vars first"
        return ConfigError(message, self.var_locations.get(key) or self.location, hint)


def parse_bool(value: Any) -> bool | None:
    """Ansible's boolean(): True/False for the words it accepts, None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    return None


def _port(value: Any) -> int:
    port = _as_int(value)
    if port is None or not 1 <= port <= 65535:
        raise ValueError(f"not a port number: {value!r}")
    return port


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and is_ascii_number(value.strip()):
        return int(value.strip())
    return None
