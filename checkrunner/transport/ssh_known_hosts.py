"""Host key checking for the ssh transport: known_hosts files parsed once, strict/accept-new/off.

paramiko's own HostKeys re-reads and rescans per host, which is quadratic across thousands of
targets. Here each file is read once per transport: plain names go into a dict, hashed names
(`|1|salt|hash`) and wildcard patterns into short lists that a lookup scans.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from checkrunner.errors import Unreachable
from checkrunner.results import UnreachableReason
from checkrunner.settings import state_directory
from checkrunner.transport.base import ACCEPT_NEW, OFF

_HASH_MAGIC = "|1|"
_REVOKED = "@revoked"
_CERT_AUTHORITY = "@cert-authority"


def known_hosts_name(hostname: str, port: int) -> str:
    """The name OpenSSH files a host under: `host`, or `[host]:port` off port 22."""
    hostname = hostname.lower()
    return hostname if port == 22 else f"[{hostname}]:{port}"


def fingerprint(key_base64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob given in base64."""
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


@dataclass(frozen=True)
class KnownKey:
    """One key line of a known_hosts file."""

    keytype: str
    key_base64: str
    origin: str  # "file:line", for messages
    revoked: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key_base64)

    def describe(self) -> str:
        return f"{self.keytype} {self.fingerprint} ({self.origin})"


@dataclass(frozen=True)
class PresentedKey:
    """The key a server showed during the handshake."""

    keytype: str
    key_base64: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key_base64)

    def describe(self) -> str:
        return f"{self.keytype} {self.fingerprint}"


class _HashedName(NamedTuple):
    """`|1|salt|hash`: HMAC-SHA1 of the name keyed with the salt."""

    salt: bytes
    digest: bytes
    key: KnownKey


@dataclass
class _PatternEntry:
    positive: list[str]
    negative: list[str]
    key: KnownKey

    def matches(self, name: str) -> bool:
        if any(_glob(p).fullmatch(name) for p in self.negative):
            return False
        return any(_glob(p).fullmatch(name) for p in self.positive)


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """OpenSSH pattern: `*` and `?` are wildcards, everything else (even `[`) is literal."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


@dataclass
class KnownHostsFile:
    """The keys of one known_hosts file, indexed for lookups by name."""

    path: str
    plain: dict[str, list[KnownKey]] = field(default_factory=dict)
    hashed: list[_HashedName] = field(default_factory=list)
    patterns: list[_PatternEntry] = field(default_factory=list)

    @classmethod
    def load(cls, path: str) -> KnownHostsFile:
        store = cls(path)
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return store
        except OSError:
            return store  # unreadable files are skipped, as OpenSSH does
        for number, line in enumerate(text.splitlines(), start=1):
            store._add_line(line, f"{path}:{number}")
        return store

    def lookup(self, name: str) -> list[KnownKey]:
        found = list(self.plain.get(name, ()))
        if self.hashed:
            encoded = name.encode("utf-8")
            digest = hmac.digest
            found.extend(k for salt, h, k in self.hashed if digest(salt, encoded, "sha1") == h)
        found.extend(p.key for p in self.patterns if p.matches(name))
        return found

    def add(self, name: str, key: KnownKey) -> None:
        self.plain.setdefault(name, []).append(key)

    def _add_line(self, line: str, origin: str) -> None:
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            return
        revoked = False
        if fields[0].startswith("@"):
            if fields[0] != _REVOKED:
                return  # @cert-authority: host certificates are not supported; skip the line
            revoked = True
            fields = fields[1:]
        if len(fields) < 3 or not _valid_base64(fields[2]):
            return
        key = KnownKey(fields[1], fields[2], origin, revoked)
        for host in fields[0].split(","):
            self._index(host, key)

    def _index(self, host: str, key: KnownKey) -> None:
        if host.startswith(_HASH_MAGIC):
            hashed = _parse_hashed(host, key)
            if hashed is not None:
                self.hashed.append(hashed)
        elif any(c in host for c in "*?!"):
            self._index_pattern(host.lower(), key)
        elif host:
            self.plain.setdefault(host.lower(), []).append(key)

    def _index_pattern(self, host: str, key: KnownKey) -> None:
        # One line's comma-separated names form one pattern list; collect them per key.
        if self.patterns and self.patterns[-1].key is key:
            entry = self.patterns[-1]
        else:
            entry = _PatternEntry([], [], key)
            self.patterns.append(entry)
        if host.startswith("!"):
            entry.negative.append(host[1:])
        else:
            entry.positive.append(host)


def _parse_hashed(host: str, key: KnownKey) -> _HashedName | None:
    parts = host[len(_HASH_MAGIC) :].split("|")
    if len(parts) != 2:
        return None
    try:
        return _HashedName(base64.b64decode(parts[0]), base64.b64decode(parts[1]), key)
    except (binascii.Error, ValueError):
        return None


def _valid_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


class KnownHostsStore:
    """Every known_hosts file a transport uses, each read once, plus checkrunner's own record."""

    def __init__(self, accept_new_file: str):
        self.accept_new_file = accept_new_file
        self._files: dict[str, KnownHostsFile] = {}
        # Each host is looked up twice (key types to prefer, then the check): scan hashed names once.
        self._found: dict[tuple[tuple[str, ...], str], tuple[KnownKey, ...]] = {}
        self._load_lock = threading.Lock()
        self._record_lock = threading.Lock()

    def lookup(self, paths: Iterable[str], name: str) -> list[KnownKey]:
        files = tuple(dict.fromkeys([*paths, self.accept_new_file]))
        with self._load_lock:
            cached = self._found.get((files, name))
        if cached is not None:
            return list(cached)
        found: list[KnownKey] = []
        for path in files:
            found.extend(self._file(path).lookup(name))
        with self._load_lock:
            self._found[(files, name)] = tuple(found)
        return found

    def record(self, name: str, key: PresentedKey) -> None:
        """Append the key to checkrunner's own known_hosts file (accept-new), once."""
        with self._record_lock:
            store = self._file(self.accept_new_file)
            if any(k.key_base64 == key.key_base64 for k in store.lookup(name)):
                return
            line = f"{name} {key.keytype} {key.key_base64}\n"
            _append_line(self.accept_new_file, line)
            store.add(name, KnownKey(key.keytype, key.key_base64, self.accept_new_file))
            with self._load_lock:
                self._found = {k: v for k, v in self._found.items() if k[1] != name}

    def _file(self, path: str) -> KnownHostsFile:
        with self._load_lock:
            store = self._files.get(path)
            if store is None:
                store = self._files[path] = KnownHostsFile.load(path)
            return store


def _append_line(path: str, line: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))  # one write with O_APPEND: lines never interleave
    finally:
        os.close(fd)


@dataclass(frozen=True)
class HostKeyRequest:
    """What a host-key decision needs to know about the connection."""

    name: str  # the known_hosts name, e.g. [10.0.0.5]:2222
    hostname: str
    port: int
    mode: str
    files: tuple[str, ...]


class HostKeyChecker:
    """Decide whether a presented host key is acceptable; raise Unreachable when it is not."""

    def __init__(self, store: KnownHostsStore):
        self.store = store

    def known_types(self, request: HostKeyRequest) -> list[str]:
        """Key types already on record for the host, to prefer them in the handshake."""
        if request.mode == OFF:
            return []
        keys = self.store.lookup(request.files, request.name)
        return list(dict.fromkeys(k.keytype for k in keys if not k.revoked))

    def verify(self, request: HostKeyRequest, presented: PresentedKey) -> None:
        if request.mode == OFF:
            return
        keys = self.store.lookup(request.files, request.name)
        revoked = [k for k in keys if k.revoked and k.key_base64 == presented.key_base64]
        if revoked:
            raise Unreachable(
                UnreachableReason.HOST_KEY_CHANGED, _revoked_message(request, revoked[0])
            )
        known = [k for k in keys if not k.revoked]
        if any(k.key_base64 == presented.key_base64 for k in known):
            return
        if known:
            raise Unreachable(
                UnreachableReason.HOST_KEY_CHANGED, _changed_message(request, presented, known)
            )
        if request.mode == ACCEPT_NEW:
            self.store.record(request.name, presented)
            return
        raise Unreachable(UnreachableReason.HOST_KEY_UNKNOWN, _unknown_message(request, presented))


def _unknown_message(request: HostKeyRequest, presented: PresentedKey) -> str:
    port = "" if request.port == 22 else f"-p {request.port} "
    return (
        f"host key for {request.name} is not known: {presented.describe()}. "
        f"Check that fingerprint with the host's owner, then record it with "
        f"`ssh-keyscan {port}{request.hostname} >> ~/.ssh/known_hosts`, "
        f"or run with --host-key-checking accept-new to record new hosts' keys on first contact"
    )


def _changed_message(
    request: HostKeyRequest, presented: PresentedKey, known: list[KnownKey]
) -> str:
    old = "; ".join(k.describe() for k in known)
    origin = known[0].origin.rsplit(":", 1)[0]
    return (
        f"host key for {request.name} has CHANGED: the host presented {presented.describe()}, "
        f"but known_hosts has {old}. Someone may be intercepting the connection, or the host "
        f"was reinstalled; if the change is expected, remove the old key with "
        f"`ssh-keygen -R '{request.name}' -f {origin}` and connect again"
    )


def _revoked_message(request: HostKeyRequest, key: KnownKey) -> str:
    return (
        f"host key for {request.name} is marked @revoked in {key.origin}: {key.keytype} "
        f"{key.fingerprint}; the host must get a new key before checkrunner will connect"
    )


def default_accept_new_file() -> str:
    """checkrunner's own record of keys accepted with accept-new ($XDG_STATE_HOME aware)."""
    return os.path.join(state_directory(), "known_hosts")
