# An HTTP(S) client for the modules that fetch a URL from the target (http, prometheus): one
# exchange that follows redirects, with TLS options, basic auth, a deadline and a cap on the
# body it reads.
#
# Built on http.client rather than urllib so that redirects are counted, any status is a
# result rather than an exception, and the server certificate can be read even when it is
# not verified. Standard library only, Python 3.6 syntax.
import base64
import http.client
import socket
import ssl
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from . import netprobe, timing

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


def unverified_peer_cert(host, port, timeout):
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


class LazyTLSContext(object):
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


def check_url(url):
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


def without_credentials(url):
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
    headers = {"User-Agent": args.get("user_agent") or USER_AGENT}
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
    target = without_credentials(urljoin(response.url, response.headers["Location"]))
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


def exchange(args, context, deadline):
    """Every response on the way, the final one last."""
    url = without_credentials(args["url"])
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


def describe_error(exc, budget):
    if isinstance(exc, http.client.HTTPException):
        detail = str(exc)
        return "invalid HTTP response (%s%s)" % (
            type(exc).__name__,
            ": " + detail if detail else "",
        )
    return netprobe.describe_error(exc, budget)
