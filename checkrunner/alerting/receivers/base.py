"""What every receiver shares: the Delivery verdict, option defaults, and keeping secrets out
of what is shown.

A receiver module (one per kind, see __init__.py) renders a notification into payloads
without I/O, and sends one payload per call, returning a Delivery that says whether it
arrived and, if not, whether trying again later can help.
"""

from __future__ import annotations

import copy
import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from checkrunner.config.coerce import coerce_value
from checkrunner.errors import OptionValueError, RenderError

#: Shown in place of anything secret.
REDACTED = "<redacted>"

#: How much of a reply body a detail string may quote.
DETAIL_BODY_CHARS = 200

# Options every receiver has (their defaults differ by kind for send_resolved).
TIMEOUT_OPTION: dict[str, Any] = {
    "type": "duration",
    "default": "10s",
    "description": "How long one delivery attempt may take (connect, send, read the reply).",
}

TLS_VERSIONS = ("TLS10", "TLS11", "TLS12", "TLS13")  # Alertmanager's min_version names

TLS_CONFIG_OPTION: dict[str, Any] = {
    "type": "dict",
    "default": {},
    "description": "TLS settings, as Alertmanager's tls_config.",
    "options": {
        "ca_file": {
            "type": "str",
            "description": "PEM file of the CA certificates to trust instead of the system's.",
        },
        "cert_file": {
            "type": "str",
            "description": "PEM client certificate for mutual TLS (may include the key).",
        },
        "key_file": {"type": "str", "description": "PEM private key of cert_file."},
        "insecure_skip_verify": {
            "type": "bool",
            "default": False,
            "description": "Do not verify the server certificate or host name.",
        },
        "server_name": {
            "type": "str",
            "description": "Host name to send (SNI) and to verify the certificate against, "
            "instead of the URL's.",
        },
        "min_version": {
            "type": "str",
            "choices": list(TLS_VERSIONS),
            "description": "Oldest TLS version to accept (default: Python's, TLS 1.2).",
        },
    },
}


def template_option(description: str) -> dict[str, Any]:
    """An option holding a Jinja2 template the receiver renders for each notification (the
    run renders other options once, with the environment; these it leaves alone)."""
    return {"type": "str", "template": True, "description": description}


def send_resolved_option(default: bool) -> dict[str, Any]:
    return {
        "type": "bool",
        "default": default,
        "description": "Also tell this receiver when alerts resolve.",
    }


@dataclass
class Delivery:
    """The verdict on one attempt to deliver one payload."""

    ok: bool
    retryable: bool = False
    retry_after: float | None = None  # seconds the destination asked us to wait
    detail: str = ""

    @classmethod
    def success(cls, detail: str = "") -> Delivery:
        return cls(ok=True, detail=detail)

    @classmethod
    def retry(cls, detail: str, retry_after: float | None = None) -> Delivery:
        return cls(ok=False, retryable=True, retry_after=retry_after, detail=detail)

    @classmethod
    def fail(cls, detail: str) -> Delivery:
        return cls(ok=False, retryable=False, detail=detail)


# ----------------------------------------------------------------------------- options


def with_defaults(options: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any]) -> dict:
    """`config` with every option it leaves out (or sets to None) at its default.

    Defaults are coerced like written values (durations to float seconds); values that are
    given are coerced too, which leaves values the loader already coerced as they are
    (RenderError for a value of the wrong type). Dict options with suboptions get their
    suboptions' defaults. Unknown keys are kept.
    """
    result = dict(config)
    for name, spec in options.items():
        value = config.get(name)
        try:
            if value is None:
                default = spec.get("default")
                value = None if default is None else coerce_value(copy.deepcopy(default), spec)
            elif spec.get("type") not in (None, "raw"):
                value = coerce_value(value, spec)
        except OptionValueError as exc:
            raise RenderError(f"option '{name}': {exc.message}") from None
        if spec.get("type") == "dict" and spec.get("options") and isinstance(value, Mapping):
            value = with_defaults(spec["options"], value)
        result[name] = value
    return result


def secret_values(options: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any]) -> list[str]:
    """Every value of the options marked `secret` (header values too), longest first; of a
    URL, its secret parts."""
    found: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                collect(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)

    def collect_options(specs: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]) -> None:
        for name, spec in specs.items():
            value = values.get(name)
            if value is None:
                continue
            if spec.get("secret"):
                collect(value)
            elif spec.get("options") and isinstance(value, Mapping):
                collect_options(spec["options"], value)  # http_config.basic_auth.password

    collect_options(options, config)
    # A secret URL is shown by redact_url, so what must go is its secret parts: query
    # values, the password, token-like path segments (the whole URL contains them).
    for value in [v for v in found if "://" in v]:
        try:
            parts = urlsplit(value)
            password = parts.password
        except ValueError:
            continue
        found.remove(value)
        for pair in parts.query.split("&"):
            raw = pair.partition("=")[2]
            found.extend((raw, unquote(raw)))
        found.extend(s for s in parts.path.split("/") if _TOKEN_SEGMENT.match(s))
        if password:
            found.extend((password, unquote(password)))
    # "Bearer TOKEN", "Basic ...": the credential alone too.
    found.extend(word for v in list(found) if " " in v for word in v.split() if len(word) >= 8)
    return sorted({v for v in found if len(v) >= 4}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of the secrets replaced by REDACTED."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def scrubbed(delivery: Delivery, options: Mapping[str, Any], config: Mapping[str, Any]) -> Delivery:
    """The delivery with any secret option value taken out of its detail (a last guard)."""
    delivery.detail = scrub(delivery.detail, secret_values(options, config))
    return delivery


# ----------------------------------------------------------------------------- showing


_TOKEN_SEGMENT = re.compile(r"^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9_\-]{16,}$|^[A-Za-z0-9_\-]{32,}$")


def redact_url(url: str, *, keep_path: bool = True) -> str:
    """scheme://host[:port]/path of a URL, without user info, query or fragment.

    Path segments that look like tokens (16+ characters mixing letters and digits, or 32+
    token characters: Slack's and Feishu's hook URLs carry their secret there) are shown as
    REDACTED; with keep_path=False the path is left out altogether.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    if not keep_path:
        return shown + ("/…" if parts.path not in ("", "/") else "")
    segments = [REDACTED if _TOKEN_SEGMENT.match(s) else s for s in parts.path.split("/")]
    return shown + "/".join(segments)


def short_body(body: bytes | str, limit: int = DETAIL_BODY_CHARS) -> str:
    """A reply body as one short line for a detail string."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def digest(*parts: str) -> str:
    """A stable, non-reversible key for a destination: sha256 of its parts, 16 hex digits."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode("utf-8"))
        hasher.update(b"\0")
    return hasher.hexdigest()[:16]


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    import email.utils

    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def ssl_context(tls_config: Mapping[str, Any] | None) -> Any:
    """A client TLS context from a tls_config mapping (ca_file, cert_file, key_file,
    insecure_skip_verify, server_name, min_version)."""
    import ssl

    tls_config = tls_config or {}
    cafile = tls_config.get("ca_file") or None
    if tls_config.get("server_name"):
        context = _server_name_context(str(tls_config["server_name"]))
        if cafile:
            context.load_verify_locations(cafile)
        else:
            context.load_default_certs()
    else:
        context = ssl.create_default_context(cafile=cafile)
    if tls_config.get("min_version"):
        names = dict(zip(TLS_VERSIONS, ("TLSv1", "TLSv1_1", "TLSv1_2", "TLSv1_3")))
        context.minimum_version = ssl.TLSVersion[names[str(tls_config["min_version"])]]
    if tls_config.get("insecure_skip_verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls_config.get("cert_file"):
        context.load_cert_chain(tls_config["cert_file"], tls_config.get("key_file") or None)
    return context


def _server_name_context(server_name: str) -> Any:
    """A verifying client context that always names `server_name` (SNI and the host name
    its certificate must match), whatever host the connection goes to."""
    import ssl

    class ServerNameContext(ssl.SSLContext):
        def wrap_socket(self, sock, *args: Any, **kwargs: Any) -> Any:
            kwargs["server_hostname"] = server_name
            return super().wrap_socket(sock, *args, **kwargs)

    return ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)


def describe_network_error(exc: BaseException) -> str:
    """A short reason for a failed connection, without addresses or secrets."""
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or type(exc).__name__})"
    if isinstance(exc, (TimeoutError,)) or "timed out" in str(exc):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, ConnectionAbortedError):
        return "connection aborted"
    name = type(exc).__name__
    if name == "RemoteDisconnected":
        return "connection closed without a reply"
    if name == "gaierror":
        return f"cannot resolve the host name ({getattr(exc, 'strerror', '') or exc})"
    strerror = getattr(exc, "strerror", None)
    return f"{name}: {strerror}" if strerror else name


def url_or_file_destination(kind: str, config: Mapping[str, Any], option: str) -> str:
    """One destination per URL given in `option`, or per file named in `option`_file."""
    if config.get(option):
        return digest(kind, config[option])
    return digest(kind, "file", str(config.get(f"{option}_file") or ""))


def url_or_file(kind: str, config: Mapping[str, Any], option: str) -> str | Delivery:
    """The URL in `option`, else the one in the file named by `option`_file, read now so that
    a rotated URL is used at once; a failed Delivery when neither gives one."""
    url = config.get(option)
    file_option = f"{option}_file"
    if not url and config.get(file_option):
        try:
            url = Path(config[file_option]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            return Delivery.fail(f"cannot read {file_option}: {exc.strerror or exc}")
    if not url:
        return Delivery.fail(f"the {kind} receiver needs `{option}` or `{file_option}`")
    return str(url)


@dataclass(frozen=True)
class RobotAddress:
    """How an IM robot is addressed: its whole webhook `url`, or its `token` alone, appended
    to the platform's `api_url` (one of the two, never both)."""

    kind: str
    api_url: str
    token: str

    def options(self, url_example: str, token_noun: str) -> dict[str, dict[str, Any]]:
        """The two options that address the robot: `url`, or the token."""
        return {
            "url": {
                "type": "str",
                "format": "url",
                "secret": True,
                "description": f"The robot's webhook URL, {url_example}.",
            },
            self.token: {
                "type": "str",
                "secret": True,
                "description": f"The robot's {token_noun}, instead of `url`.",
            },
        }

    @property
    def one_of(self) -> list[list[str]]:
        """REQUIRED_ONE_OF and MUTUALLY_EXCLUSIVE: the URL or the token, not both."""
        return [["url", self.token]]

    def url(self, config: Mapping[str, Any]) -> str:
        """The webhook: `url` as given, else `api_url?<token>=<config[token]>`."""
        if config.get("url"):
            return str(config["url"])
        if config.get(self.token):
            return f"{self.api_url}?{self.token}={quote(str(config[self.token]), safe='')}"
        raise RenderError(f"the {self.kind} receiver needs `url` or `{self.token}`")

    def destination(self, config: Mapping[str, Any]) -> str:
        """One destination per robot (its token), whichever way the URL was written."""
        url = self.url(config)
        found = parse_qs(urlsplit(url).query).get(self.token, [""])[0]
        return digest(self.kind, found or url)
