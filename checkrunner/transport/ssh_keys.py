"""Authentication for the ssh transport: which keys to offer, in OpenSSH's order, and why it failed.

Order: explicit identity files (inventory, --private-key, ssh config IdentityFile), then the
ssh-agent's keys, then the default ~/.ssh/id_* files, then a password if the inventory has
one. Key files are read once per transport; the agent is asked once per connection (its
socket is not shared between threads).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import paramiko

from checkrunner.errors import Unreachable
from checkrunner.results import UnreachableReason
from checkrunner.transport.ssh_config import DEFAULT_IDENTITIES, Endpoint, SSHOptions
from checkrunner.transport.ssh_known_hosts import fingerprint


@dataclass(frozen=True)
class Identity:
    label: str  # where the key came from, for messages
    key: paramiko.PKey

    def describe(self) -> str:
        return f"{self.label} ({self.key.get_name()} {fingerprint(self.key.get_base64())})"


@dataclass
class _Offer:
    """The keys to try for one connection, and the files that could not be used."""

    identities: list[Identity] = field(default_factory=list)
    unusable: list[str] = field(default_factory=list)
    agent: paramiko.Agent | None = None

    def add(self, identity: Identity) -> None:
        blob = identity.key.asbytes()
        if all(i.key.asbytes() != blob for i in self.identities):
            self.identities.append(identity)

    def close(self) -> None:
        if self.agent is not None:
            self.agent.close()


@dataclass
class _Attempts:
    """What happened while authenticating, for the failure message."""

    rejected: list[str] = field(default_factory=list)
    allowed: list[str] | None = None
    closed: str | None = None
    timed_out: bool = False
    partial: bool = False


class KeyRing:
    def __init__(self, options: SSHOptions):
        self.options = options
        self._files: dict[str, paramiko.PKey | str] = {}  # path -> key, or why it is unusable
        self._lock = threading.Lock()

    def authenticate(
        self, transport: paramiko.Transport, endpoint: Endpoint, deadline: float
    ) -> None:
        """Authenticate `transport` as endpoint.user, or raise Unreachable(AUTH or TIMEOUT)."""
        offer = self._offer(endpoint)
        try:
            attempts = _Attempts()
            if self._try_keys(transport, endpoint, offer.identities, deadline, attempts):
                return
            if self._try_password(transport, endpoint, deadline, attempts):
                return
        finally:
            offer.close()
        raise _failure(endpoint, offer, attempts)

    def _offer(self, endpoint: Endpoint) -> _Offer:
        offer = _Offer()
        for path in endpoint.identity_files:
            self._offer_file(offer, path, explicit=True)
        if self.options.allow_agent and not endpoint.identities_only:
            _offer_agent(offer)
        if self.options.look_for_keys and not endpoint.identities_only:
            for path in DEFAULT_IDENTITIES:
                self._offer_file(offer, os.path.expanduser(path), explicit=False)
        return offer

    def _offer_file(self, offer: _Offer, path: str, explicit: bool) -> None:
        loaded = self._load(path)
        if isinstance(loaded, paramiko.PKey):
            offer.add(Identity(path, loaded))
        elif explicit:
            offer.unusable.append(f"{path} ({loaded})")

    def _load(self, path: str) -> paramiko.PKey | str:
        with self._lock:
            if path not in self._files:
                self._files[path] = _read_key(path)
            return self._files[path]

    def _try_keys(
        self,
        transport: paramiko.Transport,
        endpoint: Endpoint,
        identities: list[Identity],
        deadline: float,
        attempts: _Attempts,
    ) -> bool:
        for identity in identities:
            outcome = _attempt(
                transport,
                deadline,
                attempts,
                identity.describe(),
                functools.partial(transport.auth_publickey, endpoint.user, identity.key),
            )
            if outcome == "stop":
                return False
            if outcome == "rejected":
                continue
            if transport.is_authenticated():
                return True
            attempts.partial = True  # the server wants a second factor as well
        return False

    def _try_password(
        self,
        transport: paramiko.Transport,
        endpoint: Endpoint,
        deadline: float,
        attempts: _Attempts,
    ) -> bool:
        if endpoint.password is None or attempts.closed or not transport.is_active():
            return False
        outcome = _attempt(
            transport,
            deadline,
            attempts,
            "the inventory password (ansible_password)",
            functools.partial(transport.auth_password, endpoint.user, endpoint.password),
        )
        return outcome == "answered" and transport.is_authenticated()


def _read_key(path: str) -> paramiko.PKey | str:
    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        return "missing"
    except PermissionError:
        return "not readable by this user"
    except (paramiko.PasswordRequiredException, TypeError) as exc:
        if isinstance(exc, TypeError) and "password" not in str(exc).lower():
            return f"not a usable private key: {exc}"
        return "encrypted with a passphrase: add it to ssh-agent (ssh-add) instead"
    except (paramiko.SSHException, paramiko.UnknownKeyType, ValueError, OSError) as exc:
        return f"not a usable private key: {exc}"


def _offer_agent(offer: _Offer) -> None:
    if not os.environ.get("SSH_AUTH_SOCK"):
        return
    try:
        agent = paramiko.Agent()
        keys = agent.get_keys()
    except (paramiko.SSHException, OSError):
        return  # a dead agent socket is the same as no agent
    offer.agent = agent
    for key in keys:
        comment = getattr(key, "comment", "") or ""
        offer.add(Identity(f"ssh-agent key {comment}".strip(), key))


def _set_auth_timeout(transport: paramiko.Transport, deadline: float, attempts: _Attempts) -> bool:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        attempts.timed_out = True
        return False
    transport.auth_timeout = remaining
    return True


def _attempt(
    transport: paramiko.Transport,
    deadline: float,
    attempts: _Attempts,
    what: str,
    authenticate: Callable[[], object],
) -> Literal["answered", "rejected", "stop"]:
    """One authentication call within the deadline, recorded in `attempts`: "answered" when
    the server took it (fully, or wanting a second factor), "rejected" when another attempt
    may follow, "stop" when none can."""
    if not _set_auth_timeout(transport, deadline, attempts):
        return "stop"
    try:
        authenticate()
    except paramiko.BadAuthenticationType as exc:
        attempts.allowed = list(exc.allowed_types)
        return "stop"
    except paramiko.AuthenticationException as exc:
        return "rejected" if _note_rejection(transport, attempts, what, exc) else "stop"
    except (paramiko.SSHException, EOFError, OSError) as exc:
        attempts.closed = str(exc) or type(exc).__name__
        return "stop"
    return "answered"


def _note_rejection(
    transport: paramiko.Transport, attempts: _Attempts, what: str, exc: Exception
) -> bool:
    """Record a failed attempt; False when no further attempt can be made."""
    if "timeout" in str(exc).lower():
        attempts.timed_out = True
        return False
    attempts.rejected.append(what)
    if not transport.is_active():
        attempts.closed = "the server closed the connection (its MaxAuthTries?)"
        return False
    return True


def _failure(endpoint: Endpoint, offer: _Offer, attempts: _Attempts) -> Unreachable:
    where = f"{endpoint.user}@{endpoint.hostname}:{endpoint.port}"
    if attempts.timed_out:
        return Unreachable(
            UnreachableReason.TIMEOUT, f"{where}: authentication did not finish in time"
        )
    parts = [f"authentication failed for user '{endpoint.user}' on {where}"]
    if attempts.rejected:
        parts.append("rejected: " + ", ".join(attempts.rejected))
    elif not offer.identities and endpoint.password is None:
        parts.append(
            "no key to offer (no ansible_ssh_private_key_file or --private-key, "
            "no ssh-agent keys, no ~/.ssh/id_* files)"
        )
    if offer.unusable:
        parts.append("could not use: " + ", ".join(offer.unusable))
    if attempts.allowed is not None:
        parts.append("the server accepts only: " + (", ".join(attempts.allowed) or "nothing"))
    if attempts.partial:
        parts.append("the server asked for a second authentication factor")
    if attempts.closed:
        parts.append(attempts.closed)
    fix = (
        "fix: put the matching public key in that user's ~/.ssh/authorized_keys on the host, "
        "or point ansible_ssh_private_key_file / --private-key at the right key, "
        "or set ansible_user / -u to the right user"
    )
    return Unreachable(UnreachableReason.AUTH, "; ".join(parts) + "; " + fix)
