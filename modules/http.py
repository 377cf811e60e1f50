# HTTP(S) probe: one request (following redirects), its status, body, latency and certificate.
#
# Runs on the target: standard library only, Python 3.6 syntax. Built on http.client rather
# than urllib so that redirects are counted, any status is a result rather than an exception,
# and the server certificate can be read even when it is not verified.
import base64
import http.client
import socket
import ssl
import time
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from ._utils import certs, netprobe, patterns, timing

MODULE = {
    "summary": "HTTP(S) probe: status, body patterns, latency, redirects, certificate expiry",
    "description": [
        "Sends one request from the target (so `http://127.0.0.1:8080/health` checks the "
        "service where it runs) and follows redirects. The check fails (CRITICAL) when the "
        "final status is not in `status`, a `body` pattern does not match, a `body_not` "
        "pattern matches, a `response_headers` pattern does not match, or the request "
        "cannot be made at all: connection refused, timeout, DNS or TLS errors mean the "
        "service is down, so they are failures with the reason, not UNKNOWN.",
        "Thresholds apply to `latency` (seconds, the whole exchange including redirects and "
        "reading the body) unless the check names another metric, for example "
        "`metric: cert_days_left` with `warn: '14:'` and `crit: '7:'` to be warned before a "
        "certificate expires. cert_days_left is read even with `verify_tls: false`, and "
        "also when verification fails, so an expired certificate shows how long ago it "
        "expired.",
        "Credentials: `username`/`password` (or `user:pass@` in the URL) send HTTP basic "
        "auth; the Authorization header is dropped when a redirect leads to another host. "
        "Proxy environment variables are not used: the probe talks to the URL directly.",
        "At most `max_body` bytes of the body are read; patterns are matched against that "
        "part (decoded with the response's charset, UTF-8 by default).",
    ],
    "free_form": "url",
    "options": {
        "url": {
            "type": "str",
            "format": "url",
            "required": True,
            "description": "http:// or https:// URL to request.",
        },
        "method": {
            "type": "str",
            "default": "GET",
            "choices": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            "description": "Request method.",
        },
        "headers": {
            "type": "dict",
            "elements": "str",
            "default": {},
            "description": "Request headers, for example {Host: api.example.com}.",
        },
        "request_body": {
            "type": "str",
            "description": "Request body, sent as UTF-8 (set Content-Type in `headers`).",
        },
        "status": {
            "type": "list",
            "min": 100,
            "max": 599,
            "elements": "int",
            "default": [200],
            "description": "Status codes that count as success, for the final response "
            "after redirects (with follow_redirects: false, list the 3xx you expect).",
        },
        "body": {
            "type": "list",
            "format": "regex",
            "elements": "str",
            "default": [],
            "description": "Regular expressions that must all be found in the response body "
            "(re.search, multiline). `body: ok` means the body must contain 'ok'.",
        },
        "body_not": {
            "type": "list",
            "format": "regex",
            "elements": "str",
            "default": [],
            "description": "Regular expressions that must not be found in the response body.",
        },
        "response_headers": {
            "type": "dict",
            "elements": "str",
            "format": "regex",
            "default": {},
            "description": "Response header name -> regular expression its value must match; "
            "a missing header is a failure.",
        },
        "follow_redirects": {
            "type": "bool",
            "default": True,
            "description": "Follow 301/302/303/307/308 responses (303, and 301/302 after a "
            "POST, continue with GET like browsers do).",
        },
        "max_redirects": {
            "type": "int",
            "min": 0,
            "default": 10,
            "description": "More redirects than this is a failure.",
        },
        "verify_tls": {
            "type": "bool",
            "default": True,
            "description": "Verify the server certificate and host name. Turn off for "
            "self-signed certificates you still want to watch the expiry of.",
        },
        "ca_file": {
            "type": "str",
            "description": "PEM file of the CA certificates to trust instead of the system's.",
        },
        "client_cert": {
            "type": "str",
            "description": "PEM client certificate for mutual TLS (may include the key).",
        },
        "client_key": {
            "type": "str",
            "description": "PEM private key of client_cert, when it is a separate file.",
        },
        "username": {"type": "str", "description": "User name for HTTP basic auth."},
        "password": {
            "type": "str",
            "default": "",
            "description": "Password for HTTP basic auth; keep it in a variable from the "
            "environment or a file rather than in the playbook.",
        },
        "max_body": {
            "type": "size",
            "default": "1MB",
            "description": "Read at most this much of the body.",
        },
        "timeout": {
            "type": "duration",
            "min": "1ms",
            "max": "1d",
            "description": "Give up on the request after this long (a failure). It never "
            "exceeds the check's own timeout.",
        },
    },
    "measurements": {
        "latency": {
            "unit": "s",
            "description": "Time for the whole exchange, redirects and body included "
            "(until the failure, when it failed).",
        },
        "success": {
            "unit": "",
            "flag": True,
            "description": "1 when every expectation held, else 0.",
        },
        "status_code": {"unit": "", "description": "Status of the final response."},
        "body_bytes": {"unit": "B", "description": "Bytes of the body read (up to max_body)."},
        "redirects": {"unit": "", "description": "Redirects followed."},
        "cert_days_left": {
            "unit": "d",
            "description": "Days until the earliest expiry among the HTTPS servers' "
            "certificates on the way (negative once expired); https only.",
        },
    },
    "default_metric": "latency",
    # blackbox_exporter's series its results also export (report/prometheus.py): which
    # measurement each is, and the facts naming the probed target (the first one present;
    # of a list, its first item: the URL asked before any redirect)
    "probe": {
        "success": "success",
        "duration": "latency",
        "http_status_code": "status_code",
        "cert_days_left": "cert_days_left",
        "target": ["redirect_chain", "url"],
    },
    "facts": {
        "url": "The URL requested last (after redirects).",
        "http_version": "HTTP/1.0 or HTTP/1.1, of the final response.",
        "reason": "The final response's reason phrase.",
        "content_type": "Its Content-Type header (null without one).",
        "body_truncated": "True when the body was longer than the module read (max_body).",
        "redirect_chain": "When redirected: every URL requested, in order.",
        "body_excerpt": "When the check fails: the first 512 characters of the body.",
    },
}

EXAMPLES = """
- name: app health
  http: {url: "http://127.0.0.1:8080/health", status: [200], body: "ok", timeout: 2s}
  warn: 0.5
  crit: 1.5

- name: login page answers without following the redirect
  http:
    url: "https://127.0.0.1/login"
    follow_redirects: false
    status: [301, 302]
    verify_tls: false

- name: api certificate expiry
  http: {url: "https://api.internal:8443/ping", ca_file: /etc/pki/internal-ca.pem}
  metric: cert_days_left
  warn: "21:"
  crit: "7:"

- name: search answers JSON without errors
  http:
    url: "http://127.0.0.1:9200/_cluster/health"
    username: monitor
    password: "{{ es_monitor_password }}"
    body: ['"status":"(green|yellow)"']
    body_not: ['"timed_out":true']
    response_headers: {Content-Type: "application/json"}

- name: webhook endpoint accepts a POST
  http:
    url: "http://127.0.0.1:8080/hooks/test"
    method: POST
    headers: {Content-Type: application/json}
    request_body: '{"ping": true}'
    status: [200, 202, 204]
"""

REDIRECT_CODES = (301, 302, 303, 307, 308)
READ_CHUNK = 65536
USER_AGENT = "checkrun-http/1"


class Response(object):
    def __init__(self, url, status, reason, version, headers, body, truncated, cert_der):
        self.url = url
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.body = body
        self.truncated = truncated
        self.cert_der = cert_der


def _unverified_peer_cert(host, port, timeout):
    """The server's certificate without verifying it, or None when it cannot be fetched."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                return tls.getpeercert(True)
    except (OSError, ValueError):
        return None


class _LazyTLSContext(object):
    """The TLS context, built on the first https connection only.

    Loading the system CA bundle costs more CPU than a whole plain-http probe.
    """

    def __init__(self, args):
        self.args = args
        self.context = None

    def get(self):
        if self.context is None:
            self.context = _tls_context(self.args)
        return self.context


def _tls_context(args):
    try:
        if args["verify_tls"]:
            context = ssl.create_default_context(cafile=args.get("ca_file"))
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if args.get("client_cert"):
            context.load_cert_chain(args["client_cert"], args.get("client_key") or None)
    except (OSError, ssl.SSLError) as exc:
        raise RuntimeError(
            "cannot load the TLS files (ca_file, client_cert, client_key): %s" % exc
        ) from None
    return context


# ------------------------------------------------------------------------------- requests


def _check_url(url):
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("url: unsupported scheme in %r (use http:// or https://)" % url)
    if not parts.hostname:
        raise ValueError("url: no host in %r" % url)
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("url: invalid port in %r" % url)


def _connection(parts, context, deadline):
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            parts.hostname, parts.port or 443, timeout=timing.left(deadline), context=context.get()
        )
    return http.client.HTTPConnection(
        parts.hostname, parts.port or 80, timeout=timing.left(deadline)
    )


def _read_body(response, sock, deadline, max_body):
    data = bytearray()
    # The response closes itself (and the socket) once it has the whole body.
    while len(data) <= max_body and not response.isclosed():
        sock.settimeout(timing.left(deadline))
        chunk = response.read(min(READ_CHUNK, max_body + 1 - len(data)))
        if not chunk:
            break
        data.extend(chunk)
    return bytes(data[:max_body]), len(data) > max_body


def _request(url, method, headers, body, context, deadline, max_body):
    parts = urlsplit(url)
    conn = _connection(parts, context, deadline)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        conn.request(method, path, body=body, headers=headers)
        # Keep the socket itself: http.client hands it over to the response and may clear
        # conn.sock, but the read timeout still has to be set on it.
        sock = conn.sock
        cert_der = sock.getpeercert(True) if parts.scheme == "https" else None
        sock.settimeout(timing.left(deadline))
        response = conn.getresponse()
        data, truncated = _read_body(response, sock, deadline, max_body)
        version = "HTTP/1.1" if response.version == 11 else "HTTP/1.0"
        return Response(
            url, response.status, response.reason, version, response.msg, data, truncated, cert_der
        )
    finally:
        conn.close()


def _without_credentials(url):
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _origin(url):
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _has_header(headers, name):
    return any(key.lower() == name.lower() for key in headers)


def _drop_headers(headers, names):
    lowered = [name.lower() for name in names]
    return dict((key, value) for key, value in headers.items() if key.lower() not in lowered)


def _initial_headers(args):
    headers = {"User-Agent": USER_AGENT}
    for name, value in (args.get("headers") or {}).items():
        headers[str(name)] = str(value)
    parts = urlsplit(args["url"])
    username = args.get("username")
    password = args.get("password") or ""
    if username is None and parts.username is not None:
        username, password = unquote(parts.username), unquote(parts.password or "")
    if username is not None and not _has_header(headers, "Authorization"):
        token = base64.b64encode(("%s:%s" % (username, password)).encode("utf-8"))
        headers["Authorization"] = "Basic " + token.decode("ascii")
    return headers


def _next_hop(response, method, headers, body):
    """(url, method, headers, body) of the request a redirect response asks for."""
    target = _without_credentials(urljoin(response.url, response.headers["Location"]))
    if urlsplit(target).scheme not in ("http", "https") or not urlsplit(target).hostname:
        raise netprobe.ProbeFailed("redirect to unsupported URL %r" % target)
    if response.status == 303 or (response.status in (301, 302) and method == "POST"):
        method = "HEAD" if method == "HEAD" else "GET"
        body = None
        headers = _drop_headers(headers, ["Content-Type", "Content-Length"])
    if _origin(target)[1:] != _origin(response.url)[1:]:
        # Credentials meant for one server must not be handed to another.
        headers = _drop_headers(headers, ["Authorization", "Cookie"])
    return target, method, headers, body


def _exchange(args, context, deadline):
    """Every response on the way, the final one last."""
    url = _without_credentials(args["url"])
    method = args["method"].upper()
    headers = _initial_headers(args)
    body = args.get("request_body")
    body = body.encode("utf-8") if body is not None else None
    responses = []
    while True:
        try:
            response = _request(url, method, headers, body, context, deadline, args["max_body"])
        except Exception as exc:
            exc.probe_url = url  # the hop that failed, which may be a redirect's target
            raise
        responses.append(response)
        redirect = response.status in REDIRECT_CODES and response.headers.get("Location")
        if not (args["follow_redirects"] and redirect):
            return responses
        if len(responses) > args["max_redirects"]:
            raise netprobe.ProbeFailed("more than %d redirects" % args["max_redirects"])
        url, method, headers, body = _next_hop(response, method, headers, body)


# ----------------------------------------------------------------------------- evaluation


def _decode(response):
    charset = response.headers.get_content_charset() or "utf-8"
    try:
        return response.body.decode(charset, "replace")
    except LookupError:
        return response.body.decode("utf-8", "replace")


def _status_failures(response, expected):
    if response.status in expected:
        return []
    wanted = "/".join(str(code) for code in expected)
    return ["status %d %s, expected %s" % (response.status, response.reason, wanted)]


def _header_failures(headers, expected):
    failures = []
    for name, pattern in expected.items():
        value = headers.get(name)
        if value is None:
            failures.append("response header %s is missing" % name)
        elif not pattern.search(value):
            failures.append(
                "response header %s: %r does not match /%s/" % (name, value, pattern.pattern)
            )
    return failures


def _describe_error(exc, budget):
    if isinstance(exc, http.client.HTTPException):
        detail = str(exc)
        return "invalid HTTP response (%s%s)" % (
            type(exc).__name__,
            ": " + detail if detail else "",
        )
    return netprobe.describe_error(exc, budget)


def _human_bytes(count):
    if count < 1000:
        return "%d B" % count
    if count < 1000000:
        return "%.1f KB" % (count / 1000.0)
    return "%.1f MB" % (count / 1000000.0)


def _cert_days_after_failure(exc, url, budget):
    """cert_days_left when verification failed: fetch the certificate again, unverified."""
    parts = urlsplit(url)
    if not certs.is_cert_error(exc) or parts.scheme != "https":
        return None
    der = _unverified_peer_cert(parts.hostname, parts.port or 443, max(0.05, budget / 4))
    return certs.days_left(der) if der else None


def _failed_result(url, message, latency, cert_days):
    measurements = {"success": 0, "latency": latency}
    if cert_days is not None:
        measurements["cert_days_left"] = round(cert_days, 3)
        if cert_days < 0:
            message += " (the certificate expired %.1f days ago)" % -cert_days
    return {
        "measurements": measurements,
        "facts": {"url": url},
        "failures": [message],
        "message": message,
    }


def _facts(responses, text, failed):
    final = responses[-1]
    facts = {
        "url": final.url,
        "http_version": final.version,
        "reason": final.reason,
        "content_type": final.headers.get("Content-Type"),
        "body_truncated": final.truncated,
    }
    if len(responses) > 1:
        facts["redirect_chain"] = [response.url for response in responses]
    if failed:
        facts["body_excerpt"] = text[:512]
    return facts


def _measurements(responses, latency, failures):
    final = responses[-1]
    measurements = {
        "latency": latency,
        "success": 0 if failures else 1,
        "status_code": final.status,
        "body_bytes": len(final.body),
        "redirects": len(responses) - 1,
    }
    days = [certs.days_left(r.cert_der) for r in responses if r.cert_der]
    days = [d for d in days if d is not None]
    if days:
        measurements["cert_days_left"] = round(min(days), 3)
    return measurements


def run(args, ctx):
    _check_url(args["url"])
    must = [patterns.compile_pattern(p, "body") for p in patterns.as_list(args.get("body"))]
    must_not = [
        patterns.compile_pattern(p, "body_not") for p in patterns.as_list(args.get("body_not"))
    ]
    expected_headers = dict(
        (str(name), patterns.compile_pattern(pattern, "response_headers"))
        for name, pattern in (args.get("response_headers") or {}).items()
    )
    expected_status = [int(code) for code in patterns.as_list(args["status"])]
    context = _LazyTLSContext(args)
    if args["url"].lower().startswith("https:"):
        context.get()  # bad TLS files are the user's error (UNKNOWN), not the probe's failure
    budget = timing.budget(args, ctx)
    started = time.monotonic()
    try:
        responses = _exchange(args, context, started + budget)
    except (netprobe.ProbeFailed, OSError, http.client.HTTPException) + certs.CERT_ERRORS as exc:
        latency = time.monotonic() - started
        url = getattr(exc, "probe_url", None) or _without_credentials(args["url"])
        message = "%s %s: %s" % (args["method"].upper(), url, _describe_error(exc, budget))
        return _failed_result(url, message, latency, _cert_days_after_failure(exc, url, budget))
    latency = time.monotonic() - started
    final = responses[-1]
    text = _decode(final)
    failures = _status_failures(final, expected_status)
    failures += patterns.failures("body", text, must, must_not)
    failures += _header_failures(final.headers, expected_headers)
    summary = "HTTP %d in %s, %s" % (
        final.status,
        timing.milliseconds(latency),
        _human_bytes(len(final.body)),
    )
    return {
        "measurements": _measurements(responses, latency, failures),
        "facts": _facts(responses, text, bool(failures)),
        "failures": failures,
        "message": summary + (": " + "; ".join(failures) if failures else ""),
    }
