"""`--web-config FILE`: Prometheus' exporter-toolkit web configuration, read as the project
reads every YAML file (config.load_yaml_file: file:line:column in every error, exit 5).

    tls_server_config:
      cert_file: server.pem          # relative paths: to the web config file's folder
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # with client_ca_file
      client_ca_file: ca.pem
      min_version: TLS12             # TLS10 .. TLS13 (default TLS12)
    basic_auth_users:
      alice: $2y$10$...              # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\\n')

Unknown keys are errors, as exporter-toolkit's strict YAML decoding makes them.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

import bcrypt

from checkrunner.config import load_yaml_file
from checkrunner.errors import ConfigError, Location, did_you_mean
from checkrunner.yamlio.marked import key_location, value_location

TOP_KEYS = ("tls_server_config", "basic_auth_users", "http_server_config")
TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version")
# exporter-toolkit's client_auth_type -> (ssl verify mode, whether a CA file is needed)
CLIENT_AUTH = {
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_OPTIONAL, False),
    # Go's RequireAnyClientCert takes any certificate; Python's TLS cannot require one without
    # verifying it, so here it is verified against client_ca_file (README says so)
    "RequireAnyClientCert": (ssl.CERT_REQUIRED, True),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    _accepted: set[tuple[str, bytes]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def needs_auth(self) -> bool:
        return bool(self.users)

    def authorized(self, user: str, password: str) -> bool:
        """bcrypt costs tens of milliseconds by design: a pair that was right once is
        remembered (as a digest), as exporter-toolkit caches it, so a 1 s scrape stays cheap."""
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = (user, hashlib.sha256(password.encode("utf-8", "surrogateescape")).digest())
        with self._lock:
            if key in self._accepted:
                return True
        try:
            good = bcrypt.checkpw(password.encode("utf-8", "surrogateescape"), hashed)
        except ValueError:
            return False
        if good:
            with self._lock:
                self._accepted.add(key)
        return good


def load_web_config(path: str) -> WebConfig:
    data = load_yaml_file(path, "web config file")
    where = Location(path, 1, 1)
    if data is None:
        return WebConfig()
    _mapping(data, "web config", where)
    _known_keys(data, TOP_KEYS, "web config", where)
    config = WebConfig()
    if data.get("basic_auth_users") is not None:
        config.users = _users(data, where)
    if data.get("tls_server_config") is not None:
        config.tls = _tls(data, os.path.dirname(os.path.abspath(path)), where)
    return config


def _mapping(value: Any, what: str, where: Location) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping", where, "see `checkrun watch --help`")


def _known_keys(mapping: dict, known: tuple[str, ...], what: str, where: Location) -> None:
    for key in mapping:
        if key not in known:
            raise ConfigError(
                f"{what}: unknown key {key!r}",
                key_location(mapping, key, where),
                did_you_mean(str(key), known) or f"known keys: {', '.join(known)}",
            )


def _users(data: dict, where: Location) -> dict[str, bytes]:
    users = data["basic_auth_users"]
    at = value_location(data, "basic_auth_users", where)
    _mapping(users, "basic_auth_users", at)
    hashes: dict[str, bytes] = {}
    for user, hashed in users.items():
        spot = value_location(users, user, at)
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(
                f"basic_auth_users: the password of {str(user)!r} is not a bcrypt hash",
                spot,
                "store a bcrypt hash, never the password: htpasswd -nBC 10 USER",
            )
        hashes[str(user)] = hashed.encode()
    return hashes


def _tls(data: dict, folder: str, where: Location) -> ssl.SSLContext:
    tls = data["tls_server_config"]
    at = value_location(data, "tls_server_config", where)
    _mapping(tls, "tls_server_config", at)
    _known_keys(tls, TLS_KEYS, "tls_server_config", at)
    for required in ("cert_file", "key_file"):
        if not tls.get(required):
            raise ConfigError(f"tls_server_config: {required} is required", at, "name the PEM file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    version = str(tls.get("min_version") or "TLS12")
    if version not in TLS_VERSIONS:
        raise ConfigError(
            f"tls_server_config: unknown min_version {version!r}",
            value_location(tls, "min_version", at),
            f"one of {', '.join(TLS_VERSIONS)}",
        )
    context.minimum_version = TLS_VERSIONS[version]
    context.verify_mode = _client_auth_mode(tls, at)
    try:
        context.load_cert_chain(_path(tls, "cert_file", folder), _path(tls, "key_file", folder))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"tls_server_config: cannot load cert_file/key_file: {exc}",
            value_location(tls, "cert_file", at),
            "give a PEM certificate and its private key",
        ) from None
    if tls.get("client_ca_file"):
        _load_client_ca(context, tls, folder, at)
    return context


def _client_auth_mode(tls: dict, at: Location) -> ssl.VerifyMode:
    kind = str(tls.get("client_auth_type") or "NoClientCert")
    if kind not in CLIENT_AUTH:
        raise ConfigError(
            f"tls_server_config: unknown client_auth_type {kind!r}",
            value_location(tls, "client_auth_type", at),
            did_you_mean(kind, CLIENT_AUTH) or f"one of {', '.join(CLIENT_AUTH)}",
        )
    mode, needs_ca = CLIENT_AUTH[kind]
    if needs_ca and not tls.get("client_ca_file"):
        raise ConfigError(
            f"tls_server_config: client_auth_type {kind} needs client_ca_file",
            value_location(tls, "client_auth_type", at),
            "add client_ca_file: the CA that signs the clients' certificates",
        )
    return mode


def _load_client_ca(context: ssl.SSLContext, tls: dict, folder: str, at: Location) -> None:
    try:
        context.load_verify_locations(_path(tls, "client_ca_file", folder))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"tls_server_config: cannot load client_ca_file: {exc}",
            value_location(tls, "client_ca_file", at),
            "give the PEM file of the CA that signs the clients' certificates",
        ) from None


def _path(tls: dict, key: str, folder: str) -> str:
    return os.path.join(folder, os.path.expanduser(str(tls[key])))
