# HTTP(S) probe: one request (following redirects), its status, body, latency and certificate.
#
# Runs on the target: standard library only, Python 3.6 syntax. Built on http.client rather
# than urllib so that redirects are counted, any status is a result rather than an exception,
# and the server certificate can be read even when it is not verified.
import http.client
import time
from urllib.parse import urlsplit

from ._utils import certs, httpfetch, netprobe, patterns, timing

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
    der = httpfetch.unverified_peer_cert(parts.hostname, parts.port or 443, max(0.05, budget / 4))
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
    httpfetch.check_url(args["url"])
    must = [patterns.compile_pattern(p, "body") for p in patterns.as_list(args.get("body"))]
    must_not = [
        patterns.compile_pattern(p, "body_not") for p in patterns.as_list(args.get("body_not"))
    ]
    expected_headers = dict(
        (str(name), patterns.compile_pattern(pattern, "response_headers"))
        for name, pattern in (args.get("response_headers") or {}).items()
    )
    expected_status = [int(code) for code in patterns.as_list(args["status"])]
    context = httpfetch.LazyTLSContext(args)
    if args["url"].lower().startswith("https:"):
        context.get()  # bad TLS files are the user's error (UNKNOWN), not the probe's failure
    budget = timing.budget(args, ctx)
    started = time.monotonic()
    try:
        responses = httpfetch.exchange(args, context, started + budget)
    except (netprobe.ProbeFailed, OSError, http.client.HTTPException) + certs.CERT_ERRORS as exc:
        latency = time.monotonic() - started
        url = getattr(exc, "probe_url", None) or httpfetch.without_credentials(args["url"])
        message = "%s %s: %s" % (args["method"].upper(), url, httpfetch.describe_error(exc, budget))
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
