"""Shared fixtures: the installed `checkrun` as a subprocess, real local HTTP and TCP servers
(helpers that are no fixtures are in helpers.py)."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from helpers import run_checkrun
from supervised import Supervised, supervised_service


@pytest.fixture(autouse=True)
def own_state_directory(tmp_path_factory, monkeypatch) -> None:
    """Each test's runs without --state write a state database of their own, never the
    user's ~/.local/state one (which another checkout's schema may have migrated)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))


@pytest.fixture
def checkrun():
    return run_checkrun


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str]] = {}

    def do_GET(self):  # noqa: N802 - http.server's naming
        status, body = self.server.routes.get(self.path, (404, "not found"))  # type: ignore[attr-defined]
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output clean
        pass


@dataclass
class HTTPServer:
    port: int
    routes: dict[str, tuple[int, str]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.routes = {"/health": (200, "ok"), "/broken": (500, "database down")}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HTTPServer(port=server.server_address[1], routes=server.routes)  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tcp_listener() -> Iterator[int]:
    """A real listening TCP port on 127.0.0.1 that accepts and closes connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    stop = threading.Event()

    def accept_loop():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        sock.close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def python_exe() -> str:
    return sys.executable


@pytest.fixture
def service(tmp_path) -> Iterator[Supervised]:
    """A real HTTP service under a supervisor script (supervised.py), for self-healing tests."""
    yield from supervised_service(tmp_path)
