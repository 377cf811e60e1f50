# TCP probe: connect (optionally over TLS), optionally send a line and expect a reply.
#
# Runs on the target: standard library only, Python 3.6 syntax.
import re
import socket
import ssl
import time

from ._utils import certs, netprobe, timing

MODULE = {
    "summary": "TCP probe: connect time, optional TLS, send/expect, certificate expiry",
    "description": [
        "Opens a TCP connection from the target to `host:port` (localhost by default, so "
        "`tcp: 5432` checks that the local PostgreSQL listens), optionally completes a TLS "
        "handshake, sends `send` and reads until the reply matches `expect`. A refused "
        "connection, a timeout, a DNS or TLS error, or a reply that never matches is a "
        "failure (CRITICAL) with the reason: the service is down or not answering.",
        "With `expect` and no `send` the probe waits for a banner (SSH, SMTP, FTP, Redis "
        "errors...). The reply is read until the pattern matches, the peer closes, "
        "`max_read` bytes arrived, or the time is up.",
        "Thresholds apply to `connect_time` (seconds) unless the check names another "
        "metric, such as `cert_days_left` for `tls: true` services.",
    ],
    "free_form": "address",
    "options": {
        "address": {
            "type": "raw",
            "format": "address",
            "description": "'host:port', '[ipv6]:port' or just a port (on localhost). "
            "Instead of host and port.",
        },
        "host": {
            "type": "str",
            "description": "Host name or address to connect to (default: localhost).",
        },
        "port": {"type": "int", "min": 1, "max": 65535, "description": "TCP port."},
        "send": {
            "type": "str",
            "description": "Text to send once connected (UTF-8; write '\\r\\n' in a "
            "double-quoted YAML string for line endings).",
        },
        "expect": {
            "type": "str",
            "format": "regex",
            "description": "Regular expression the reply must match (re.search, multiline).",
        },
        "tls": {
            "type": "bool",
            "default": False,
            "description": "Start TLS right after connecting.",
        },
        "verify_tls": {
            "type": "bool",
            "default": True,
            "description": "Verify the server certificate and its name (with tls: true).",
        },
        "ca_file": {
            "type": "str",
            "description": "PEM file of the CA certificates to trust instead of the system's.",
        },
        "server_name": {
            "type": "str",
            "description": "Name sent as SNI and verified in the certificate "
            "(default: host), for example when connecting to 127.0.0.1.",
        },
        "max_read": {
            "type": "size",
            "default": "64KB",
            "description": "Read at most this much while waiting for `expect`.",
        },
        "timeout": {
            "type": "duration",
            "min": "1ms",
            "max": "1d",
            "description": "Give up after this long (a failure). It never exceeds the "
            "check's own timeout.",
        },
    },
    "required_one_of": [["address", "port"]],
    "mutually_exclusive": [["address", "host"], ["address", "port"]],
    "measurements": {
        "connect_time": {"unit": "s", "description": "Time to establish the TCP connection."},
        "duration": {
            "unit": "s",
            "description": "Time for the whole probe: connect, TLS, send and expect.",
        },
        "success": {
            "unit": "",
            "flag": True,
            "description": "1 when every step succeeded, else 0.",
        },
        "cert_days_left": {
            "unit": "d",
            "description": "Days until the server certificate expires (negative once "
            "expired); tls: true only.",
        },
    },
    "default_metric": "connect_time",
    # blackbox_exporter's series its results also export (report/prometheus.py): which
    # measurement each is, and the fact naming the probed target
    "probe": {
        "success": "success",
        "duration": "duration",
        "cert_days_left": "cert_days_left",
        "target": ["address"],
    },
    "facts": {
        "address": "host:port connected to.",
        "peer": "The address the connection reached.",
        "tls_version": "With tls: the protocol version negotiated, e.g. TLSv1.3.",
        "reply": "With expect: an excerpt of what the service sent.",
    },
}

EXAMPLES = """
- name: postgres listens
  tcp: 5432
  warn: 0.2

- name: ssh answers with its banner
  tcp: {port: 22, expect: "^SSH-2\\\\.0-"}

- name: redis answers PING
  tcp: {host: 127.0.0.1, port: 6379, send: "PING\\r\\n", expect: "^\\\\+PONG", timeout: 2s}

- name: smtps certificate
  tcp: {address: "mail.internal:465", tls: true, ca_file: /etc/pki/internal-ca.pem}
  metric: cert_days_left
  warn: "21:"
  crit: "7:"
"""

DEFAULT_HOST = "localhost"
READ_CHUNK = 4096


# ---------------------------------------------------------------------------- certificates


def _tls_context(args, verify):
    try:
        context = ssl.create_default_context(cafile=args.get("ca_file") if verify else None)
    except (OSError, ssl.SSLError) as exc:
        raise RuntimeError("cannot load ca_file %s: %s" % (args.get("ca_file"), exc)) from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# --------------------------------------------------------------------------------- target


def parse_address(text):
    """(host, port) from 'host:port', '[ipv6]:port' or a bare port (on localhost)."""
    text = str(text).strip()
    if text.isdigit():
        return DEFAULT_HOST, _port(text)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError("address %r: write an IPv6 address as [addr]:port" % text)
        return host, _port(rest[1:])
    host, sep, port = text.rpartition(":")
    if not sep or not host or ":" in host:
        raise ValueError("address %r: write it as host:port, [ipv6]:port or a port" % text)
    return host, _port(port)


def _port(text):
    # ASCII digits only: int() would also take "８０", "٨٠" or "8_0"
    digits = str(text) if isinstance(text, (int, str)) else ""
    port = int(digits) if re.match(r"^[0-9]{1,5}$", digits) else -1
    if not 0 < port < 65536:
        raise ValueError("invalid TCP port %r" % (text,))
    return port


def _target(args):
    if args.get("address") not in (None, ""):
        return parse_address(args["address"])
    if args.get("port") is None:
        raise ValueError("give `port` (or `address: host:port`)")
    return args.get("host") or DEFAULT_HOST, _port(args["port"])


# ---------------------------------------------------------------------------------- probe


def _excerpt(data):
    return data[:256].decode("utf-8", "replace")


def _await_reply(sock, pattern, deadline, max_read):
    """Read until the reply matches pattern; return what was read."""
    data = b""
    while True:
        try:
            sock.settimeout(timing.left(deadline))
            chunk = sock.recv(READ_CHUNK)
        except socket.timeout:
            raise netprobe.ProbeFailed(
                "no reply matching /%s/ in time (got %r)" % (pattern.pattern, _excerpt(data))
            ) from None
        if not chunk:
            raise netprobe.ProbeFailed(
                "connection closed before a reply matched /%s/ (got %r)"
                % (pattern.pattern, _excerpt(data))
            )
        data += chunk
        if pattern.search(data[:max_read].decode("utf-8", "replace")):
            return data
        if len(data) >= max_read:
            raise netprobe.ProbeFailed(
                "no reply matching /%s/ in the first %d bytes (got %r)"
                % (pattern.pattern, max_read, _excerpt(data))
            )


class Probe(object):
    """One connection attempt; collects what it measured even when a step fails."""

    def __init__(self, host, port, deadline):
        self.host = host
        self.port = port
        self.deadline = deadline
        self.measurements = {}
        self.facts = {"address": "%s:%d" % (host, port)}

    def connect(self):
        started = time.monotonic()
        sock = socket.create_connection((self.host, self.port), timeout=timing.left(self.deadline))
        self.measurements["connect_time"] = time.monotonic() - started
        self.facts["peer"] = sock.getpeername()[0]
        return sock

    def start_tls(self, sock, context, server_name):
        sock.settimeout(timing.left(self.deadline))
        tls = context.wrap_socket(sock, server_hostname=server_name)
        self.facts["tls_version"] = tls.version()
        self.record_cert(tls.getpeercert(True))
        return tls

    def record_cert(self, der):
        days = certs.days_left(der) if der else None
        if days is not None:
            self.measurements["cert_days_left"] = round(days, 3)

    def fetch_unverified_cert(self, server_name):
        """After a verification failure: the certificate, to tell how long it has left."""
        try:
            sock = socket.create_connection(
                (self.host, self.port), timeout=timing.left(self.deadline)
            )
            with _tls_context({}, verify=False).wrap_socket(
                sock, server_hostname=server_name
            ) as tls:
                self.record_cert(tls.getpeercert(True))
        except (OSError, ValueError):
            pass


def _converse(probe, args):
    sock = probe.connect()
    try:
        server_name = args.get("server_name") or probe.host
        if args["tls"]:
            sock = probe.start_tls(sock, _tls_context(args, args["verify_tls"]), server_name)
        if args.get("send"):
            sock.settimeout(timing.left(probe.deadline))
            sock.sendall(str(args["send"]).encode("utf-8"))
        if args.get("expect"):
            pattern = _compile(args["expect"])
            reply = _await_reply(sock, pattern, probe.deadline, args["max_read"])
            probe.facts["reply"] = _excerpt(reply)
    finally:
        sock.close()


def _compile(pattern):
    try:
        return re.compile(str(pattern), re.MULTILINE)
    except re.error as exc:
        raise ValueError("expect: invalid regular expression %r: %s" % (pattern, exc)) from None


def _expiry_note(measurements):
    days = measurements.get("cert_days_left")
    if days is None or days >= 0:
        return ""
    return " (the certificate expired %.1f days ago)" % -days


def _message(host, port, measurements, failures):
    if failures:
        return failures[0]
    days = measurements.get("cert_days_left")
    message = "%s:%d connected in %s" % (
        host,
        port,
        timing.milliseconds(measurements["connect_time"]),
    )
    if days is not None:
        message += ", certificate expires in %.0f days" % days
    return message


def run(args, ctx):
    host, port = _target(args)
    if args.get("expect"):
        _compile(args["expect"])
    if args["tls"]:
        _tls_context(args, args["verify_tls"])  # bad TLS settings: UNKNOWN before probing
    budget = timing.budget(args, ctx)
    started = time.monotonic()
    probe = Probe(host, port, started + budget)
    failures = []
    try:
        _converse(probe, args)
    except (netprobe.ProbeFailed, OSError) + certs.CERT_ERRORS as exc:
        if certs.is_cert_error(exc):
            probe.fetch_unverified_cert(args.get("server_name") or host)
        failures.append(
            "%s:%d: %s%s"
            % (host, port, netprobe.describe_error(exc, budget), _expiry_note(probe.measurements))
        )
    measurements = probe.measurements
    measurements["duration"] = time.monotonic() - started
    measurements["success"] = 0 if failures else 1
    return {
        "measurements": measurements,
        "facts": probe.facts,
        "failures": failures,
        "message": _message(host, port, measurements, failures),
    }
