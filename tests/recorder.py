"""A recording HTTP server on loopback for receiver tests: it keeps every request and answers
as told, per path.

    with Recorder() as rec:
        rec.respond("/hook", status=200, body={"errcode": 45009, "errmsg": "api freq out of limit"})
        rec.respond("/hook", status=500, times=2)      # the next two requests, then as before
        send_something(rec.url("/hook?key=abc"))
        [request] = rec.requests("/hook")
        request.json(), request.query["key"], request.headers["Content-Type"]
        rec.down()   # connections refused until rec.up()

A rule with `times=N` answers the next N requests to its path, then the path answers as
its persistent rule says (the last `respond` without times), or by default 200 with
`default_body`. Rules can also delay the answer (`delay=` seconds) or drop the connection
without an answer (`drop=True`). No pytest fixture is needed: any test file can use it.
"""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import struct
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, str]  # the last value of each parameter
    headers: dict[str, str]  # names as sent; use header() for case-insensitive lookup
    body: bytes
    raw_path: str = ""  # the path with the query string, as sent

    def header(self, name: str, default: str | None = None) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class _Rule:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    times: int | None = None  # None: until replaced


def _as_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request = Request(
            self.command, parts.path, query, dict(self.headers.items()), body, self.path
        )
        recorder = self.server.recorder
        rule = recorder._record_and_pick(request)
        if rule.delay and recorder._stopping.wait(rule.delay):
            return
        if rule.drop:  # close at once with a reset (SO_LINGER 0), without an answer
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return
        self.send_response(rule.status)
        headers = {"Content-Type": "application/json", **rule.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(rule.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(rule.body)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 - http.server's naming


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    recorder: Recorder

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (timeouts in tests) is not an error here


class Recorder:
    """See the module docstring."""

    def __init__(
        self,
        *,
        default_status: int = 200,
        default_body: Any = b"",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._default = _Rule(default_status, _as_bytes(default_body))
        self._tls = tls
        self._rules: dict[str, list[_Rule]] = {}
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Recorder:
        self.up()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def up(self) -> None:
        """Listen (again, on the same port after down())."""
        if self._server is not None:
            return
        self._stopping.clear()
        server = _Server((LOOPBACK, self.port), _Handler)
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        server.recorder = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until up()."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    close = down

    # ------------------------------------------------------------------ use

    @property
    def base_url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}"

    def url(self, path: str = "/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return self.base_url + path

    def respond(
        self,
        path: str,
        status: int = 200,
        body: Any = b"",
        headers: dict[str, str] | None = None,
        *,
        delay: float = 0.0,
        drop: bool = False,
        times: int | None = None,
    ) -> None:
        """How to answer requests to `path` (without query; "*" for any path): the next
        `times` of them, or from now on when times is None. A dict body is sent as JSON."""
        rule = _Rule(status, _as_bytes(body), dict(headers or {}), delay, drop, times)
        with self._lock:
            rules = self._rules.setdefault(path, [])
            if times is None:
                rules[:] = [r for r in rules if r.times is not None]
            rules.append(rule)

    def requests(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self._requests if path is None or r.path == path]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record_and_pick(self, request: Request) -> _Rule:
        with self._lock:
            self._requests.append(request)
            for key in (request.path, "*"):
                rules = self._rules.get(key) or []
                for rule in rules:
                    if rule.times is not None and rule.times > 0:
                        rule.times -= 1
                        if rule.times == 0:
                            rules.remove(rule)
                        return rule
                persistent = [r for r in rules if r.times is None]
                if persistent:
                    return persistent[-1]
            return self._default
