"""Where and how to connect: inventory vars, command-line options and ~/.ssh/config merged.

Precedence follows Ansible with its ssh plugin: inventory (`ansible_user`, `ansible_port`,
`ansible_ssh_private_key_file`, ...) beats the command line (`-u`, `--private-key`), which
beats ~/.ssh/config (HostName, User, Port, IdentityFile, ProxyJump, ...), which beats defaults.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checkrunner import settings
from checkrunner.errors import ConfigError
from checkrunner.inventory.hostnames import hostname_problem, user_problem
from checkrunner.transport.base import CHECKING_MODES, OFF, STRICT
from checkrunner.transport.ssh_known_hosts import (
    HostKeyRequest,
    default_accept_new_file,
    known_hosts_name,
)

if TYPE_CHECKING:  # paramiko is imported when a transport is made, not when options are
    import paramiko

DEFAULT_PORT = 22
DEFAULT_SSH_CONFIG = "~/.ssh/config"
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
# OpenSSH's default identities, in the order it tries them.
DEFAULT_IDENTITIES = ("~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ed25519")

_OPTION = re.compile(r"\s*([A-Za-z]+)\s*(?:=|\s)\s*(.*)", re.DOTALL)  # ssh -o: key, then = or space
_PERCENT_TOKEN = re.compile(r"%(.)", re.DOTALL)
_CONFIG_CHECKING = {"yes": STRICT, "ask": STRICT, "accept-new": "accept-new", "no": OFF, "off": OFF}


@dataclass(frozen=True)
class SSHOptions:
    """Settings of one ssh transport (one run); most come from command-line flags."""

    user: str | None = None  # -u: login user where the inventory sets no ansible_user
    private_key: str | None = None  # --private-key: tried after ansible_ssh_private_key_file
    known_hosts: tuple[str, ...] | None = None  # --known-hosts: replaces ~/.ssh/known_hosts(2)
    host_key_checking: str | None = None  # strict | accept-new | off; None: inventory/config/strict
    accept_new_file: str = field(default_factory=default_accept_new_file)
    ssh_config: str | None = None  # path; "none" disables; None: ~/.ssh/config when it exists
    connect_timeout: float | None = None  # -T: TCP connect + SSH handshake, and authentication
    look_for_keys: bool = True  # try ~/.ssh/id_rsa, id_ecdsa, id_ed25519
    allow_agent: bool = True  # try the keys of the ssh-agent at $SSH_AUTH_SOCK
    global_known_hosts: tuple[str, ...] = DEFAULT_GLOBAL_KNOWN_HOSTS

    def __post_init__(self) -> None:
        if self.host_key_checking is not None and self.host_key_checking not in CHECKING_MODES:
            raise ValueError(
                f"host key checking must be one of {', '.join(CHECKING_MODES)}, "
                f"got {self.host_key_checking!r}"
            )
        if self.connect_timeout is not None and self.connect_timeout <= 0:
            raise ValueError(f"connect timeout must be positive, got {self.connect_timeout!r}")
        problem = None if self.user is None else user_problem(self.user)
        if problem is not None:
            raise ValueError(f"user name {self.user!r} {problem}, which ssh refuses")


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to reach, fully resolved."""

    alias: str  # the name the inventory (or ProxyJump) used
    hostname: str  # what is actually connected to
    port: int
    user: str
    identity_files: tuple[str, ...]  # explicit keys first (inventory, CLI), then ssh config
    identities_only: bool  # ssh config IdentitiesOnly: no agent or default keys
    host_key_checking: str
    known_hosts_files: tuple[str, ...]
    connect_timeout: float
    jumps: tuple[Endpoint, ...] = ()  # ProxyJump chain, first hop first
    proxy_command: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"

    @property
    def host_key_request(self) -> HostKeyRequest:
        return HostKeyRequest(
            name=known_hosts_name(self.hostname, self.port),
            hostname=self.hostname,
            port=self.port,
            mode=self.host_key_checking,
            files=self.known_hosts_files,
        )

    @property
    def pool_key(self) -> tuple[Any, ...]:
        """Identity of a connection that several targets may share (jump hosts)."""
        return (self.hostname, self.port, self.user, self.jumps, self.proxy_command)


class EndpointResolver:
    """Turns inventory hosts into Endpoints; ~/.ssh/config is parsed once."""

    def __init__(self, options: SSHOptions):
        self.options = options
        self._config = load_ssh_config(options.ssh_config)

    def resolve(self, host: Any) -> Endpoint:
        """The endpoint for an inventory host (or any object with the Host attributes)."""
        name = str(host.address)
        hints = _HostHints.from_host(host)
        _check_names(name, hints.user or self.options.user)  # before ssh config can expand them
        cfg = self._lookup(name)
        args = SSHArgs.parse(hints.ssh_args)
        mode = self._checking_mode(hints.host_key_checking, args, cfg)
        explicit = [hints.private_key_file, self.options.private_key]
        port = hints.port or _config_int(cfg, "port") or DEFAULT_PORT
        user = hints.user or self.options.user or cfg.get("user") or local_user()
        return Endpoint(
            alias=str(getattr(host, "name", name)),
            hostname=cfg.get("hostname", name),
            port=port,
            user=user,
            identity_files=_identity_files(explicit, cfg),
            identities_only=_config_bool(cfg, "identitiesonly"),
            host_key_checking=mode,
            known_hosts_files=self._known_hosts_files(cfg),
            connect_timeout=self._connect_timeout(hints.timeout, cfg),
            jumps=self._jumps(args.proxy_jump or cfg.get("proxyjump"), hints, args),
            proxy_command=_proxy_command(
                args, cfg, _Tokens(cfg.get("hostname", name), name, port, user)
            ),
            password=hints.password,
        )

    def _jumps(self, spec: str | None, hints: _HostHints, args: SSHArgs) -> tuple[Endpoint, ...]:
        if not spec or spec.strip().lower() == "none":
            return ()
        hops = [hop.strip() for hop in spec.split(",") if hop.strip()]
        return tuple(self._jump(hop, hints, args) for hop in hops)

    def _jump(self, hop: str, hints: _HostHints, args: SSHArgs) -> Endpoint:
        """A ProxyJump hop `[user@]host[:port]`; its own ssh config applies, but not its ProxyJump."""
        user, hostname, port = parse_hop(hop)
        _check_names(hostname, user)
        cfg = self._lookup(hostname)
        port = port or _config_int(cfg, "port") or DEFAULT_PORT
        return Endpoint(
            alias=hop,
            hostname=cfg.get("hostname", hostname),
            port=port,
            user=user or cfg.get("user") or local_user(),
            identity_files=_identity_files([hints.private_key_file, self.options.private_key], cfg),
            identities_only=_config_bool(cfg, "identitiesonly"),
            host_key_checking=self._checking_mode(hints.host_key_checking, args, cfg),
            known_hosts_files=self._known_hosts_files(cfg),
            connect_timeout=self._connect_timeout(hints.timeout, cfg),
        )

    def _checking_mode(self, inventory: bool | None, args: SSHArgs, cfg: dict[str, Any]) -> str:
        """--host-key-checking, else ansible_host_key_checking, else StrictHostKeyChecking from
        ansible_ssh_common_args or ~/.ssh/config, else strict."""
        if self.options.host_key_checking:
            return self.options.host_key_checking
        if inventory is not None:
            return STRICT if inventory else OFF
        configured = args.strict_host_key_checking or cfg.get("stricthostkeychecking") or ""
        return _CONFIG_CHECKING.get(str(configured).lower(), STRICT)

    def _known_hosts_files(self, cfg: dict[str, Any]) -> tuple[str, ...]:
        if self.options.known_hosts is not None:
            user_files: list[str] = list(self.options.known_hosts)
        elif cfg.get("userknownhostsfile"):
            user_files = shlex.split(str(cfg["userknownhostsfile"]))
        else:
            user_files = list(DEFAULT_USER_KNOWN_HOSTS)
        global_files = (
            shlex.split(str(cfg["globalknownhostsfile"]))
            if cfg.get("globalknownhostsfile")
            else list(self.options.global_known_hosts)
        )
        paths = [os.path.expanduser(p) for p in [*user_files, *global_files] if p.lower() != "none"]
        return tuple(dict.fromkeys(paths))

    def _connect_timeout(self, inventory: float | None, cfg: dict[str, Any]) -> float:
        for candidate in (
            inventory,
            self.options.connect_timeout,
            _config_float(cfg, "connecttimeout"),
        ):
            if candidate is not None and candidate > 0:
                return float(candidate)
        return settings.CONNECT_TIMEOUT.default

    def _lookup(self, name: str) -> dict[str, Any]:
        return dict(self._config.lookup(name)) if self._config is not None else {}


@dataclass(frozen=True)
class _HostHints:
    """The connection attributes of an inventory host; objects without some get None."""

    port: int | None
    user: str | None
    private_key_file: str | None
    password: str | None
    host_key_checking: bool | None
    timeout: float | None
    ssh_args: tuple[str, ...]

    @classmethod
    def from_host(cls, host: Any) -> _HostHints:
        return cls(
            port=getattr(host, "port", None),
            user=getattr(host, "user", None),
            private_key_file=getattr(host, "private_key_file", None),
            password=getattr(host, "password", None),
            host_key_checking=getattr(host, "host_key_checking", None),
            timeout=getattr(host, "timeout", None),
            ssh_args=tuple(
                a
                for a in (
                    getattr(host, "ssh_common_args", None),
                    getattr(host, "ssh_extra_args", None),
                )
                if a
            ),
        )


@dataclass(frozen=True)
class SSHArgs:
    """The ssh options checkrunner honours in ansible_ssh_common_args / ansible_ssh_extra_args:
    -J / ProxyJump, ProxyCommand and StrictHostKeyChecking (other options are ignored)."""

    proxy_jump: str | None = None
    proxy_command: str | None = None
    strict_host_key_checking: str | None = None

    @classmethod
    def parse(cls, arg_strings: tuple[str, ...]) -> SSHArgs:
        found: dict[str, str] = {}
        for text in arg_strings:
            words = shlex.split(text)
            for index, word in enumerate(words):
                following = words[index + 1] if index + 1 < len(words) else ""
                if word == "-J":
                    found["proxyjump"] = following
                elif word.startswith("-J") and len(word) > 2:
                    found["proxyjump"] = word[2:]
                option = _ssh_option(word, following)
                if option is not None:
                    found[option[0]] = option[1]
        return cls(
            found.get("proxyjump") or None,
            found.get("proxycommand") or None,
            found.get("stricthostkeychecking") or None,
        )


def _ssh_option(word: str, following: str) -> tuple[str, str] | None:
    """`-o Key=Value`, `-oKey=Value` or `-o "Key Value"` as (lowercased key, value)."""
    if word == "-o":
        setting = following
    elif word.startswith("-o") and len(word) > 2:
        setting = word[2:]
    else:
        return None
    match = _OPTION.match(setting)
    return (match.group(1).lower(), match.group(2).strip()) if match else None


@dataclass(frozen=True)
class _Tokens:
    """What OpenSSH substitutes for %h, %n, %p and %r in a ProxyCommand."""

    hostname: str
    original: str
    port: int
    user: str

    def expand(self, command: str) -> str:
        """One pass, as OpenSSH's percent_expand, with every value shell-quoted: a name can
        never add words or commands to the line (nor be expanded again)."""
        values = {"h": self.hostname, "n": self.original, "p": str(self.port), "r": self.user}

        def substitute(match: re.Match) -> str:
            key = match.group(1)
            if key == "%":
                return "%"
            if key == "u":
                return shlex.quote(local_user())
            return shlex.quote(values[key]) if key in values else match.group(0)

        return _PERCENT_TOKEN.sub(substitute, command)


def _check_names(hostname: str, user: str | None) -> None:
    """ValueError for a host or user name OpenSSH would refuse (the inventory checks them
    first, with file:line; this guards every other way in)."""
    problem = hostname_problem(hostname)
    if problem is not None:
        raise ValueError(f"host name {hostname!r} {problem}, which ssh refuses")
    problem = None if user is None else user_problem(user)
    if problem is not None:
        raise ValueError(f"user name {user!r} {problem}, which ssh refuses")


def _proxy_command(args: SSHArgs, cfg: dict[str, Any], tokens: _Tokens) -> str | None:
    if args.proxy_jump:
        return None  # an explicit ProxyJump in the inventory wins over a configured command
    command = args.proxy_command or cfg.get("proxycommand")
    if not command or command.strip().lower() == "none":
        return None
    return tokens.expand(command)


def parse_hop(hop: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` (or ssh://user@host:port, or [v6addr]:port) as (user, host, port)."""
    hop = hop.removeprefix("ssh://")
    user, _, rest = hop.rpartition("@")
    port: int | None = None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":") and tail[1:].isdigit():
            port = int(tail[1:])
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        if not port_text.isdigit():
            raise ValueError(f"bad port in ProxyJump hop {hop!r}")
        port = int(port_text)
    else:
        host = rest
    return (user or None), host, port


def _identity_files(explicit: list[str | None], cfg: dict[str, Any]) -> tuple[str, ...]:
    configured = [str(p) for p in cfg.get("identityfile", [])]
    paths = [os.path.expanduser(p) for p in [*explicit, *configured] if p]
    return tuple(dict.fromkeys(paths))


def _config_int(cfg: dict[str, Any], key: str) -> int | None:
    value = cfg.get(key)
    return int(value) if value is not None and str(value).isdigit() else None


def _config_float(cfg: dict[str, Any], key: str) -> float | None:
    try:
        return float(cfg[key]) if key in cfg else None
    except (TypeError, ValueError):
        return None


def _config_bool(cfg: dict[str, Any], key: str) -> bool:
    return str(cfg.get(key, "no")).lower() in ("yes", "true")


def load_ssh_config(path: str | None) -> paramiko.SSHConfig | None:
    """The parsed ssh config: `path`, or ~/.ssh/config when it exists; "none" for no config."""
    if path is not None and path.lower() == "none":
        return None
    candidate = os.path.expanduser(path or DEFAULT_SSH_CONFIG)
    if path is None and not os.path.isfile(candidate):
        return None
    import paramiko

    class RawProxyCommandConfig(paramiko.SSHConfig):
        """Leaves %h, %p and %r of ProxyCommand alone: the resolver substitutes them, quoted, and
        with the values in force (inventory user and port), where paramiko would paste them raw."""

        TOKENS_BY_CONFIG_KEY = {**paramiko.SSHConfig.TOKENS_BY_CONFIG_KEY, "proxycommand": []}

    try:
        return RawProxyCommandConfig.from_path(candidate)
    except OSError as exc:
        raise ConfigError(
            f"cannot read ssh config {candidate}: {exc.strerror or exc}",
            hint="pass an existing file with --ssh-config, or --ssh-config none",
        ) from None
    except paramiko.ConfigParseError as exc:
        raise ConfigError(
            f"ssh config {candidate}: {exc}", hint="fix the line ssh rejects"
        ) from None


def local_user() -> str:
    """The control node's user name, which ssh uses when nothing says otherwise."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
