"""Watch mode's HTTP face: /, /metrics, /healthz, /-/ready and /api/v1/results.

    /                 the HTML report (report/html.py) of the latest result of every host,
                      its charts from the state database's history (read in the build's
                      own connection)
    /metrics          prometheus_client's exposition (text or OpenMetrics, as the scraper
                      asks) of the StatusCollector: only the hosts and checks of the config
    /healthz          200 while the process serves
    /-/ready          503 until the watch loop says it is ready (every host's first round done), then 200;
                      with --ha, 503 "standby: REPLICA leads" on a replica that does not lead
    /api/v1/results   the latest result of every host, in the JSON report's schema

/, /metrics and /api/v1/results are built once per change of what they show, off the request
path (serve/rendered.py): an answer waits at most FRESH_WAIT for a newer body and is otherwise
the last complete one, so a scrape is answered in time while a busy control node takes tens of
seconds to build a 1,000-host exposition.

Listens on 127.0.0.1 unless told otherwise (`--listen ADDR:PORT`; 0.0.0.0 only when asked).
A `--web-config` file (Prometheus' own form, serve/webconfig.py) adds TLS and basic auth.

Bounded: a ThreadingHTTPServer whose every connection has a deadline for the TLS handshake
and each read and write (REQUEST_TIMEOUT) and one for its whole life (CONNECTION_DEADLINE:
a client that sends a byte every few seconds is cut off too), and at most MAX_CONNECTIONS at
once (the others are closed at once), so a slow or stuck client holds one thread for a
while, never the server.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.server
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

from prometheus_client.exposition import choose_encoder

from checkrunner.errors import ConfigError, NotBuilt
from checkrunner.report.json_report import JsonReporter
from checkrunner.serve.rendered import Rendered
from checkrunner.serve.status import WatchStatus, status_registry
from checkrunner.serve.webconfig import WebConfig, load_web_config

if TYPE_CHECKING:
    from checkrunner.state.db import StateDB

DEFAULT_ADDRESS = "127.0.0.1"
REQUEST_TIMEOUT = 10.0  # seconds for the TLS handshake and each read or write of a request
CONNECTION_DEADLINE = 60.0  # seconds a connection may last, however slowly it trickles in
MAX_CONNECTIONS = 64


def parse_listen(listen: str) -> tuple[str, int]:
    """ "ADDR:PORT", "[v6]:PORT", ":PORT" or "PORT" -> (address, port); an empty address is
    loopback (listening everywhere is said explicitly: 0.0.0.0:PORT or [::]:PORT)."""
    text = listen.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError(
            f"--listen {listen!r}: not ADDR:PORT",
            hint="e.g. --listen 127.0.0.1:9464 (0.0.0.0:9464 to listen on every interface)",
        )
    return host or DEFAULT_ADDRESS, port


class StatusServer:
    def __init__(
        self,
        listen: str,
        status: WatchStatus,
        web_config: str | None = None,
        state: StateDB | None = None,
    ):
        self.listen = listen
        self.status = status
        self.web_config_path = web_config
        self.state = state  # the history that / charts (None: --no-state)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (address, port)."""
        if self._server is None:
            raise RuntimeError("the status server is not started")
        return self._server.server_address[:2]

    @property
    def port(self) -> int:
        return self.address[1]

    def start(self) -> None:
        """Bind and serve in a thread; ConfigError (exit 5) for a bad address, a port in use
        or a bad web config file."""
        host, port = parse_listen(self.listen)
        web = load_web_config(self.web_config_path) if self.web_config_path else WebConfig()
        try:
            server = _Server(
                (host, port), self.status, web, status_registry(self.status), self.state
            )
        except OSError as exc:
            raise ConfigError(
                f"--listen {self.listen!r}: cannot listen there: {exc.strerror or exc}",
                hint="pick a free port and an address of this machine, e.g. 127.0.0.1:9464",
            ) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="status-http",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = MAX_CONNECTIONS

    def __init__(
        self,
        address: tuple[str, int],
        status: WatchStatus,
        web: WebConfig,
        registry,
        state: StateDB | None = None,
    ):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.status = status
        self.state = state
        # Bodies built off the request path (rendered.py): / and /api/v1/results once per
        # change of the results, /metrics once per change of anything it shows.
        self.by_results = Rendered(lambda: status.version)
        self.by_changes = Rendered(lambda: status.changes)
        self.web = web
        self.registry = registry
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def build_page(self) -> bytes:
        """The HTML report of the latest results, charted from the history."""
        from checkrunner.report.html import render_page
        from checkrunner.state.history import HistoryStore

        run = self.status.results()
        if self.state is None:
            return _utf8(render_page(run, None, time.time(), live=True))
        db = self.state.reopen()  # a connection is its thread's: the build opens its own
        try:
            return _utf8(render_page(run, HistoryStore(db.connection), time.time(), live=True))
        finally:
            db.close()

    def build_results(self) -> bytes:
        return _utf8(JsonReporter(None).render(self.status.results()))

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # too many at once: this one is turned away
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the connection's own thread: the TLS handshake happens here, with a deadline,
        never in the accepting thread where a silent client would stall everyone."""
        request.settimeout(REQUEST_TIMEOUT)
        deadline = threading.Timer(CONNECTION_DEADLINE, _cut_off, (request,))
        deadline.daemon = True
        deadline.start()
        try:
            if self.web.tls is not None:
                try:
                    request = self.web.tls.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError):
                    return
            self.RequestHandlerClass(request, client_address, self)
        finally:
            deadline.cancel()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up or times out is no server error worth a traceback."""


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")


def _cut_off(connection: socket.socket) -> None:
    """The connection's deadline passed: its blocked read or write fails at once."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.1"
    server_version = "checkrun"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._authorized():
            self._send(
                401, b"Unauthorized\n", headers={"WWW-Authenticate": 'Basic realm="checkrun"'}
            )
            return
        path = self.path.split("?", 1)[0]
        try:
            self._answer(path)
        except NotBuilt:
            self._send(
                503, b"still building the first answer: retry\n", headers={"Retry-After": "5"}
            )

    def _answer(self, path: str) -> None:
        server = self.server
        if path == "/":
            body = server.by_results.get("/", server.build_page)
            headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
            self._send(200, body, "text/html; charset=utf-8", headers)
        elif path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            body = server.by_changes.get(content_type, lambda: encoder(server.registry))
            self._send(200, body, content_type)
        elif path == "/healthz":
            self._send(200, b"ok\n")
        elif path == "/-/ready":
            ready, leader = self.server.status.ready, self.server.status.leader
            if leader is not None and not leader[0]:
                self._send(503, f"standby: {leader[1] or 'no replica'} leads\n".encode())
            elif leader is not None:
                self._send(200 if ready else 503, b"ready (leader)\n" if ready else b"not ready\n")
            else:
                self._send(200 if ready else 503, b"ready\n" if ready else b"not ready\n")
        elif path == "/api/v1/results":
            body = server.by_results.get(path, server.build_results)
            self._send(200, body, "application/json")
        else:
            self._send(404, b"not found\n")

    def _authorized(self) -> bool:
        web = self.server.web
        if not web.needs_auth:
            return True
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return bool(sep) and web.authorized(user, password)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        """No access log on stderr: the events log says what matters."""
