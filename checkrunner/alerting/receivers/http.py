"""One HTTP POST with the standard library, and the verdict on its reply.

No redirects are followed (a webhook that redirects is misconfigured, and a POST body
must not silently become a GET), no proxy is taken from the environment unless the
receiver sets `proxy_url`, and every detail names the URL by redact_url only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from checkrunner import __version__
from checkrunner.alerting.receivers.base import (
    TIMEOUT_OPTION,
    TLS_CONFIG_OPTION,
    Delivery,
    describe_network_error,
    parse_retry_after,
    redact_url,
    scrubbed,
    send_resolved_option,
    short_body,
    ssl_context,
    template_option,
    with_defaults,
)
from checkrunner.errors import RenderError

USER_AGENT = f"checkrunner/{__version__}"
JSON_TYPE = "application/json; charset=utf-8"

_PROXY_URL_OPTION: dict[str, Any] = {
    "type": "str",
    "description": "HTTP proxy to send through, e.g. http://proxy:3128 (the environment's "
    "proxy variables are not used, as in Alertmanager).",
}


def _secret_or_file(name: str) -> dict[str, dict[str, Any]]:
    """A secret option and its `_file` twin, which names a file read at each send."""
    return {
        name: {"type": "str", "secret": True, "description": f"{name.capitalize()}."},
        f"{name}_file": {
            "type": "str",
            "description": f"File holding the {name} (read at each send).",
        },
    }


#: Alertmanager's (Prometheus common's) http_config, as far as a POST needs it. Secrets may
#: sit in files (`password_file`, `credentials_file`, `bearer_token_file`), read at each send.
HTTP_CONFIG_OPTION: dict[str, Any] = {
    "type": "dict",
    "default": {},
    "description": "HTTP client settings, as Alertmanager's http_config: basic_auth, "
    "authorization, bearer_token(_file), tls_config, proxy_url. Without it the receiver "
    "uses global.http_config.",
    "options": {
        "basic_auth": {
            "type": "dict",
            "description": "{username, password | password_file}: HTTP basic authentication.",
            "options": {
                "username": {"type": "str", "description": "User name."},
                **_secret_or_file("password"),
            },
            "mutually_exclusive": [["password", "password_file"]],
        },
        "authorization": {
            "type": "dict",
            "description": "{type (default Bearer), credentials | credentials_file}: the "
            "Authorization header.",
            "options": {
                "type": {"type": "str", "default": "Bearer", "description": "Scheme."},
                **_secret_or_file("credentials"),
            },
            "mutually_exclusive": [["credentials", "credentials_file"]],
        },
        "bearer_token": {
            "type": "str",
            "secret": True,
            "description": "Legacy form of authorization: {credentials: TOKEN}.",
        },
        "bearer_token_file": {
            "type": "str",
            "description": "Legacy form of authorization: {credentials_file: FILE}.",
        },
        "tls_config": {**TLS_CONFIG_OPTION, "default": None},  # None: the receiver's own
        "proxy_url": _PROXY_URL_OPTION,
    },
    "mutually_exclusive": [["basic_auth", "authorization", "bearer_token", "bearer_token_file"]],
}

#: Options of every receiver that speaks HTTP, beside its own.
HTTP_OPTIONS: dict[str, dict[str, Any]] = {
    "tls_config": TLS_CONFIG_OPTION,
    "proxy_url": _PROXY_URL_OPTION,
    "http_config": HTTP_CONFIG_OPTION,
}


@dataclass
class Response:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None


@functools.lru_cache(maxsize=1)
def _no_redirect_handler() -> Any:
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            return None  # urllib then raises HTTPError with the 3xx

    return NoRedirect


def encode_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON (CJK as itself, not \\u escapes: the platforms' limits are bytes)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def post(
    url: str,
    body: bytes,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
    content_type: str = JSON_TYPE,
    shown: str | None = None,
    method: str = "POST",
) -> Response | Delivery:
    """POST (or `method`) `body` to `url`: the Response, whatever its status, or a retryable
    Delivery when no reply came (refused, timed out, reset, DNS, TLS). `user:password@` in
    the URL is sent as basic auth. `config` gives tls_config and proxy_url; `shown` is how the URL
    appears in details (redact_url(url) by default)."""
    import http.client  # here, not at the top: only sending needs them
    import socket
    import urllib.error
    import urllib.request

    config = config or {}
    http_config = config.get("http_config") or {}
    shown = shown or redact_url(url)
    url, authorization = _split_userinfo(url)
    try:
        authorization = http_authorization(http_config) or authorization
    except OSError as exc:
        return Delivery.fail(f"{method} {shown}: {exc}")
    request = urllib.request.Request(url, data=body, method=method)
    if authorization:
        request.add_header("Authorization", authorization)
    request.add_header("Content-Type", content_type)
    request.add_header("User-Agent", USER_AGENT)
    for name, value in (headers or {}).items():
        request.add_header(str(name), str(value))
    proxy = http_config.get("proxy_url") or config.get("proxy_url")
    handlers: list[Any] = [
        urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {}),
        _no_redirect_handler()(),
    ]
    if url.lower().startswith("https:"):
        try:
            context = ssl_context(http_config.get("tls_config") or config.get("tls_config"))
        except (OSError, ValueError) as exc:
            return Delivery.fail(
                f"{method} {shown}: bad tls_config ({describe_network_error(exc)})"
            )
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as reply:
            return Response(reply.status, _headers(reply.headers), reply.read())
    except urllib.error.HTTPError as exc:
        try:
            data = exc.read()
        except (OSError, http.client.HTTPException):
            data = b""
        finally:
            exc.close()
        return Response(exc.code, _headers(exc.headers), data)
    except urllib.error.URLError as exc:
        reason = exc.reason if isinstance(exc.reason, BaseException) else OSError(str(exc.reason))
        return Delivery.retry(f"{method} {shown}: {describe_network_error(reason)}")
    except (OSError, http.client.HTTPException, socket.timeout) as exc:
        return Delivery.retry(f"{method} {shown}: {describe_network_error(exc)}")
    except ValueError as exc:  # a malformed URL
        return Delivery.fail(f"{method} {shown}: invalid URL ({type(exc).__name__})")


def http_authorization(http_config: Mapping[str, Any]) -> str | None:
    """The Authorization header an http_config asks for (None: none); secrets in files are
    read now, so that a rotated token is used at once. OSError naming the file option."""
    import base64

    basic = http_config.get("basic_auth") or {}
    if basic:
        password = basic.get("password") or ""
        if basic.get("password_file"):
            password = _read_secret(basic["password_file"], "basic_auth.password_file")
        credentials = f"{basic.get('username') or ''}:{password}".encode()
        return "Basic " + base64.b64encode(credentials).decode("ascii")
    authorization = dict(http_config.get("authorization") or {})
    if http_config.get("bearer_token"):
        authorization = {"type": "Bearer", "credentials": http_config["bearer_token"]}
    if http_config.get("bearer_token_file"):
        authorization = {"type": "Bearer", "credentials_file": http_config["bearer_token_file"]}
    if not authorization:
        return None
    credentials = authorization.get("credentials") or ""
    if authorization.get("credentials_file"):
        credentials = _read_secret(
            authorization["credentials_file"], "authorization.credentials_file"
        )
    return f"{authorization.get('type') or 'Bearer'} {credentials}"


def _read_secret(path: str, option: str) -> str:
    """A secret from a file, without its trailing newline (as Prometheus common reads it)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise OSError(f"cannot read http_config {option} {path}: {exc.strerror or exc}") from None


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """(the URL without user:password@, the basic Authorization header they make)."""
    import base64
    from urllib.parse import unquote, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.username is None:
            return url, None
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port is not None else "")
    except ValueError:
        return url, None
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    token = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    return urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def _headers(message: Any) -> dict[str, str]:
    if message is None:
        return {}
    return {name.lower(): value for name, value in message.items()}


def classify(response: Response, shown: str) -> Delivery:
    """The verdict by HTTP status alone: 2xx ok; 429 and 5xx retryable (with Retry-After);
    anything else (3xx, other 4xx) not retryable."""
    status = response.status
    if 200 <= status < 300:
        return Delivery.success(f"POST {shown}: {status}")
    reason = f"POST {shown}: HTTP {status}"
    body = short_body(response.body)
    if body:
        reason += f": {body}"
    if status == 429 or status >= 500:
        return Delivery.retry(reason, parse_retry_after(response.headers.get("retry-after")))
    if 300 <= status < 400:
        reason += " (redirects are not followed: use the final URL)"
    return Delivery.fail(reason)


def post_json(
    url: str,
    payload: Any,
    *,
    timeout: float,
    config: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    shown: str | None = None,
) -> tuple[Response | None, Delivery]:
    """POST a JSON payload: (the response if one came, the verdict by status)."""
    shown = shown or redact_url(url)
    result = post(
        url, encode_json(payload), timeout=timeout, headers=headers, config=config, shown=shown
    )
    if isinstance(result, Delivery):
        return None, result
    return result, classify(result, shown)


@dataclass(frozen=True)
class ReplyCodes:
    """How an IM platform answers HTTP 200 with a code in the body: the keys that hold the
    code and its message, the codes that mean "rate limited" (retry after the given
    seconds) and those that mean "busy" (retry)."""

    code_keys: tuple[str, ...]
    message_keys: tuple[str, ...]
    rate_limited: Mapping[int, float]
    busy: tuple[int, ...] = ()

    @classmethod
    def errcode(cls, rate_limited: Mapping[int, float]) -> ReplyCodes:
        """The replies of DingTalk and WeCom: {"errcode": N, "errmsg": ...}, -1 when busy."""
        return cls(("errcode",), ("errmsg",), rate_limited, busy=(-1,))


def errcode_verdict(response: Response, shown: str, codes: ReplyCodes) -> Delivery:
    """The verdict by the code in the body: 0 is success; a rate-limit code is retryable
    after the given seconds; a busy code is retryable; anything else is a failure reported
    as "errcode N: errmsg"."""
    data = response.json()
    if not isinstance(data, dict):
        return Delivery.fail(f"POST {shown}: unexpected reply: {short_body(response.body)}")
    key = next((k for k in codes.code_keys if k in data), None)
    if key is None:
        return Delivery.fail(
            f"POST {shown}: reply without {codes.code_keys[0]}: {short_body(response.body)}"
        )
    try:
        code = int(data[key])
    except (TypeError, ValueError):
        return Delivery.fail(f"POST {shown}: unexpected {key}: {short_body(str(data[key]))}")
    message = next((str(data[k]) for k in codes.message_keys if data.get(k) not in (None, "")), "")
    if code == 0:
        return Delivery.success(f"POST {shown}: {key} 0")
    text = f"POST {shown}: {key} {code}: {short_body(message)}"
    if code in codes.rate_limited:
        return Delivery.retry(text + " (rate limited)", codes.rate_limited[code])
    if code in codes.busy:
        return Delivery.retry(text)
    return Delivery.fail(text)


def im_verdict(
    response: Response | None, verdict: Delivery, shown: str, codes: ReplyCodes
) -> Delivery:
    """The verdict of an IM platform: a 2xx must also carry code 0 in its body; a 4xx whose
    body holds a rate-limit code is retryable like a 429."""
    if response is None:
        return verdict
    if verdict.ok or (400 <= response.status < 500 and response.status != 429):
        by_code = errcode_verdict(response, shown, codes)
        if verdict.ok or by_code.retryable:
            return by_code
    return verdict


def post_im(
    url: str,
    payload: Any,
    *,
    timeout: float,
    config: Mapping[str, Any],
    shown: str,
    codes: ReplyCodes,
) -> Delivery:
    """POST a JSON message to an IM platform: the verdict by status and by the reply's code."""
    response, verdict = post_json(url, payload, timeout=timeout, config=config, shown=shown)
    return im_verdict(response, verdict, shown, codes)


def robot_sender(
    options: Mapping[str, Mapping[str, Any]],
    robot_url: Callable[[Mapping[str, Any]], str],
    codes: ReplyCodes,
    signed_url: Callable[[str, str], str] | None = None,
) -> Callable[[Mapping[str, Any], Mapping[str, Any], float], Delivery]:
    """The `send` of an IM robot receiver: one message to the robot addressed by `url` or
    its token (robot_url), the URL signed by `signed_url(url, secret)` when the platform
    signs it and a secret is set."""

    def send(config: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> Delivery:
        config = with_defaults(options, config)
        try:
            url = robot_url(config)
        except RenderError as exc:
            return Delivery.fail(str(exc))
        shown = redact_url(url)
        if signed_url is not None and config.get("secret"):
            url = signed_url(url, config["secret"])
        verdict = post_im(url, payload, timeout=timeout, config=config, shown=shown, codes=codes)
        return scrubbed(verdict, options, config)

    return send


def im_message_options(
    title_description: str, send_resolved_default: bool
) -> dict[str, dict[str, Any]]:
    """The options every IM robot has after its own: the title and message templates,
    send_resolved, timeout and the HTTP client's."""
    return {
        "title": template_option(title_description),
        "message": template_option(
            "Jinja2 template of the lines after the title; default a line per alert."
        ),
        "send_resolved": send_resolved_option(send_resolved_default),
        "timeout": TIMEOUT_OPTION,
        **HTTP_OPTIONS,
    }
