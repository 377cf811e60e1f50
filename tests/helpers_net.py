"""Real loopback servers for the probe tests: HTTP(S) with test routes, TCP services, and
certificates made on the fly (a private CA, server and client certificates)."""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"
BASIC_USER = "monitor"
BASIC_PASSWORD = "s3cret pass"
BIG_BODY_BYTES = 3_000_000
SLOW_SECONDS = 1.5


# ----------------------------------------------------------------------------- certificates


@dataclass
class Pki:
    """PEM files of a private CA and the certificates it signed, in one directory."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    expired_cert: Path
    expired_key: Path
    client_cert: Path
    client_key: Path
    server_days: int


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_certificate(
    subject: str,
    issuer_key,
    issuer_name: x509.Name,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    *,
    is_ca: bool = False,
    client: bool = False,
):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name if issuer_key is not None else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    elif client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    cert = builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())
    return key, cert


def make_pki(directory: Path, server_days: int = 30) -> Pki:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, ca_cert = make_certificate(
        "checkrun test CA",
        None,
        None,
        now - datetime.timedelta(days=1),
        now + datetime.timedelta(days=3650),
        is_ca=True,
    )
    server_key, server_cert = make_certificate(
        "localhost",
        ca_key,
        ca_cert.subject,
        now - datetime.timedelta(days=1),
        now + datetime.timedelta(days=server_days),
    )
    expired_key, expired_cert = make_certificate(
        "localhost",
        ca_key,
        ca_cert.subject,
        now - datetime.timedelta(days=40),
        now - datetime.timedelta(days=3),
    )
    client_key, client_cert = make_certificate(
        "probe client",
        ca_key,
        ca_cert.subject,
        now - datetime.timedelta(days=1),
        now + datetime.timedelta(days=30),
        client=True,
    )
    return Pki(
        ca_cert=_write_cert(directory / "ca.pem", ca_cert),
        server_cert=_write_cert(directory / "server.pem", server_cert),
        server_key=_write_key(directory / "server.key", server_key),
        expired_cert=_write_cert(directory / "expired.pem", expired_cert),
        expired_key=_write_key(directory / "expired.key", expired_key),
        client_cert=_write_cert(directory / "client.pem", client_cert),
        client_key=_write_key(directory / "client.key", client_key),
        server_days=server_days,
    )


def server_tls_context(
    cert: Path, key: Path, require_client_ca: Path | None = None
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    if require_client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(require_client_ca))
    return context


# -------------------------------------------------------------------------------------- HTTP


class ProbeHandler(http.server.BaseHTTPRequestHandler):
    """Routes the http module's tests need. HTTP/1.0: one response per connection."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._dispatch()

    def do_HEAD(self):  # noqa: N802
        self._dispatch()

    def do_POST(self):  # noqa: N802
        self._dispatch()

    def log_message(self, *args):
        pass

    def _dispatch(self):
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        route = getattr(self, "route_" + parts[0].replace("-", "_"), None)
        if route is None:
            self._send(404, b"no such route\n")
        else:
            route(*parts[1:])

    def _send(self, status, body=b"", content_type="text/plain; charset=utf-8", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route_ok(self):
        self._send(200, b"status: ok\nversion: 1.4.2\n", headers={"X-App": "checkrun-test"})

    def route_status(self, code):
        self._send(int(code), f"status {code}\n".encode())

    def route_redirect(self, hops):
        remaining = int(hops)
        target = "/ok" if remaining <= 1 else f"/redirect/{remaining - 1}"
        self._send(302, b"", headers={"Location": target})

    def route_see_other(self):
        self._send(303, b"", headers={"Location": "/echo"})

    def route_to_other_host(self):
        port = self.server.server_address[1]
        self._send(302, b"", headers={"Location": f"http://localhost:{port}/echo"})

    def route_to_port(self, port):
        self._send(302, b"", headers={"Location": f"http://{LOOPBACK}:{port}/ok"})

    def route_slow(self):
        time.sleep(SLOW_SECONDS)
        self._send(200, b"finally\n")

    def route_big(self):
        self._send(200, b"x" * BIG_BODY_BYTES)

    def route_latin1(self):
        self._send(
            200, "caf\xe9 ouvert\n".encode("latin-1"), content_type="text/plain; charset=iso-8859-1"
        )

    def route_json(self):
        self._send(200, b'{"status":"green","timed_out":false}', content_type="application/json")

    def route_echo(self):
        length = int(self.headers.get("Content-Length") or 0)
        request_body = self.rfile.read(length).decode() if length else ""
        reply = {
            "method": self.command,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": request_body,
        }
        self._send(200, json.dumps(reply).encode(), content_type="application/json")

    metrics_scrapes = 0

    def route_metrics(self):
        """A Prometheus exposition whose counter grows by 5 at every scrape."""
        ProbeHandler.metrics_scrapes += 1
        count = 5 * ProbeHandler.metrics_scrapes
        body = f'# TYPE jobs_total counter\njobs_total{{queue="a"}} {count}\n'
        self._send(200, body.encode(), content_type="text/plain; version=0.0.4")

    def route_auth(self):
        token = base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") == "Basic " + token:
            self._send(200, b"welcome\n")
        else:
            self._send(401, b"who are you?\n", headers={"WWW-Authenticate": 'Basic realm="t"'})


class ProbeHTTPServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # Probes that time out or stop at max_body hang up on purpose.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class RunningHTTP:
    port: int
    scheme: str

    def url(self, path: str, host: str = LOOPBACK) -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


@contextmanager
def http_server(tls: ssl.SSLContext | None = None) -> Iterator[RunningHTTP]:
    server = ProbeHTTPServer((LOOPBACK, 0), ProbeHandler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield RunningHTTP(server.server_address[1], "https" if tls is not None else "http")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------------------- TCP


@contextmanager
def tcp_service(
    handle: Callable[[socket.socket, threading.Event], None] | None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[int]:
    """A listener on 127.0.0.1 that runs handle(conn, stop) for every connection in its
    own thread; handle=None accepts nothing at all (connections wait in the backlog)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(16)
    listener.settimeout(0.05)
    stop = threading.Event()
    connections: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        try:
            if tls is not None:
                conn = tls.wrap_socket(conn, server_side=True)
            connections.append(conn)
            handle(conn, stop)
        except OSError:
            pass
        finally:
            conn.close()

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            conn.settimeout(5)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    if handle is not None:
        thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        if handle is not None:
            thread.join()
        for conn in connections:
            with suppress(OSError):
                conn.close()
        listener.close()


def ping_pong(conn: socket.socket, stop: threading.Event) -> None:
    """A Redis-like service: answers '+PONG' to 'PING', '-ERR' to anything else."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(1024)
        if not chunk:
            return
        data += chunk
    conn.sendall(b"+PONG\r\n" if data.strip() == b"PING" else b"-ERR unknown command\r\n")


def banner(conn: socket.socket, stop: threading.Event) -> None:
    """An SSH-like service: greets first, then waits for the client to leave."""
    conn.sendall(b"SSH-2.0-OpenSSH_9.6 checkrun-test\r\n")
    stop.wait(2)


def silent(conn: socket.socket, stop: threading.Event) -> None:
    """Accepts and never says a word."""
    stop.wait(5)


def closed_port() -> int:
    """A loopback port nothing listens on: bound once, then released."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
