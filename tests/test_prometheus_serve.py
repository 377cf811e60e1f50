"""Watch mode's HTTP face (serve/status.py, serve/http.py) with real parts: a WatchStatus fed
by a real local run, scraped by the real Prometheus server (assertions through its query
API), basic auth with bcrypt and TLS with a certificate made here, a slow client, and the
web config file's errors."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from pathlib import Path

import bcrypt
import jsonschema
import pytest
from helpers import REPO, plan_from_text, wait_for
from helpers_net import make_pki
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_servers import get, query, running_prometheus, scrape, targets

from checkrunner.errors import ConfigError
from checkrunner.results import CheckResult, HostResult, Status
from checkrunner.runner import RunOptions, run_plan
from checkrunner.serve import http as serve_http
from checkrunner.serve.http import StatusServer
from checkrunner.serve.status import StatusCollector, WatchStatus

SCHEMA = json.loads((REPO / "docs" / "json-report.schema.json").read_text())
USER, PASSWORD = "prometheus", "correct horse battery"


def _real_run(tmp_path: Path, port: int, closed: int):
    playbook = f"""
- name: edge
  hosts: all
  checks:
    - name: health
      http: {{url: "http://127.0.0.1:{port}/health"}}
    - name: closed port
      tcp: {{host: 127.0.0.1, port: {closed}}}
    - name: memory
      memory: {{}}
"""
    inventory = "all:\n  hosts:\n    box:\n      ansible_connection: local\n"
    plan = plan_from_text(tmp_path, playbook, inventory)
    return run_plan(plan, RunOptions(), [])


@pytest.fixture
def fed_status(tmp_path, http_server, closed_port) -> WatchStatus:
    status = WatchStatus("edge.yml")
    for host in _real_run(tmp_path, http_server.port, closed_port).hosts:
        status.record_host(host)
    status.set_interval("box", "edge", "health", 5.0)
    status.count_reconnect("box")
    status.record_round(0.3)
    status.set_backoff("box", None, 0)
    return status


@pytest.fixture
def served(fed_status):
    server = StatusServer("127.0.0.1:0", fed_status)
    server.start()
    try:
        yield server
    finally:
        server.close()


def _values(url: str, promql: str) -> dict[str, float]:
    return {r["metric"].get("check", ""): float(r["value"][1]) for r in query(url, promql)}


def test_prometheus_scrapes_the_status_server_and_gone_series_vanish(tmp_path, fed_status, served):
    scrape_config = f"""  - job_name: checkrun
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{served.port}"]
"""
    with running_prometheus(tmp_path / "prom", scrape_config) as url:
        status = wait_for(
            lambda: (v := _values(url, "checkrun_check_status")) and len(v) == 3 and v,
            "Prometheus to scrape checkrun_check_status",
            timeout=90,
        )
        assert status == {"health": 0.0, "closed port": 2.0, "memory": 0.0}
        probes = _values(url, 'probe_success{host="box"}')
        assert probes == {"health": 1.0, "closed port": 0.0}
        (health,) = query(url, 'probe_http_status_code{check="health"}')
        assert health["value"][1] == "200"
        assert health["metric"]["instance"].startswith("http://127.0.0.1:")  # honor_labels
        assert _values(url, "checkrun_round_duration_seconds_count") == {"": 1.0}
        assert _values(url, 'checkrun_reconnects_total{host="box"}') == {"": 1.0}
        assert _values(url, "checkrun_check_interval_seconds") == {"health": 5.0}
        assert _values(url, 'checkrun_host_up{host="box"}') == {"": 1.0}
        assert _values(url, "checkrun_config_last_reload_successful") == {"": 1.0}

        # A reload dropped the memory check: Prometheus sees its series end (stale marker).
        fed_status.keep_only({"box"}, {("box", "edge", "health"), ("box", "edge", "closed port")})
        fed_status.set_reload(False, time.time())
        wait_for(
            lambda: set(_values(url, "checkrun_check_status")) == {"health", "closed port"},
            "the dropped check's series to vanish",
            timeout=60,
        )
        wait_for(
            lambda: _values(url, "checkrun_config_last_reload_successful") == {"": 0.0},
            "the failed reload",
            timeout=60,
        )


def test_health_readiness_and_results_endpoints(fed_status, served):
    base = f"http://127.0.0.1:{served.port}"
    assert get(f"{base}/healthz") == (200, "ok\n")
    assert get(f"{base}/-/ready")[0] == 503
    fed_status.set_ready(True)
    assert get(f"{base}/-/ready")[0] == 200
    assert get(f"{base}/nothing")[0] == 404

    status, body = get(f"{base}/api/v1/results")
    assert status == 200
    document = json.loads(body)
    jsonschema.validate(document, SCHEMA)
    (host,) = document["hosts"]
    assert host["host"] == "box"
    assert {c["name"]: c["status"] for c in host["checks"]} == {
        "health": "OK",
        "closed port": "CRITICAL",
        "memory": "OK",
    }


def test_record_host_merges_by_check_and_keep_only_forgets():
    status = WatchStatus("p.yml")

    def check(name: str, state: Status) -> CheckResult:
        return CheckResult(host="h", play="p", name=name, module="memory", status=state)

    status.record_host(HostResult("h", checks=[check("a", Status.OK), check("b", Status.OK)]))
    status.record_host(HostResult("h", checks=[check("b", Status.CRITICAL), check("c", Status.OK)]))
    (host,) = status.results().hosts
    assert [(c.name, c.status) for c in host.checks] == [
        ("a", Status.OK),
        ("b", Status.CRITICAL),
        ("c", Status.OK),
    ]
    status.record_host(HostResult("h", reachable=False, reason="refused"))
    (host,) = status.results().hosts
    assert not host.reachable and len(host.checks) == 3  # unreachable: last results kept
    status.record_host(HostResult("gone", checks=[]))
    status.count_skipped("gone")
    status.keep_only({"h"}, {("h", "p", "a")})
    assert [(h.host, [c.name for c in h.checks]) for h in status.results().hosts] == [("h", ["a"])]


def _collected(status: WatchStatus) -> dict:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_a_certificate_expiry_stays_dated_by_the_round_that_measured_it():
    """A check not due this round keeps its result, and its days-left still count from the
    round that measured them, not from the latest one."""
    status = WatchStatus("p.yml")
    probe = CheckResult(
        host="h",
        play="p",
        name="tls",
        module="tcp",
        status=Status.OK,
        measurements={"success": 1.0, "duration": 0.1, "cert_days_left": 2.0},
        facts={"address": "h:443"},
    )
    other = CheckResult(host="h", play="p", name="mem", module="memory", status=Status.OK)
    status.record_host(HostResult("h", started_at=1000.0, checks=[probe]))
    status.record_host(HostResult("h", started_at=5000.0, checks=[other]))
    (expiry,) = _collected(status)["probe_ssl_earliest_cert_expiry"].samples
    assert expiry.value == 1000.0 + 2 * 86400


def test_an_unreachable_hosts_checks_have_no_series_but_keep_their_results():
    """While a host cannot be reached, the status of its checks is unknown: their series end
    (as a target's when Prometheus cannot scrape it) instead of showing the last round's
    OK; /api/v1/results still has the last results, and a new answer brings them back."""
    status = WatchStatus("p.yml")
    probe = CheckResult(
        host="h",
        play="p",
        name="health",
        module="http",
        status=Status.OK,
        measurements={"success": 1.0, "latency": 0.1},
        facts={"url": "http://127.0.0.1:1/"},
    )
    status.record_host(HostResult("h", checks=[probe]))
    status.record_host(HostResult("h", reachable=False, reason="refused"))
    families = _collected(status)
    assert [s.value for s in families["checkrun_host_up"].samples] == [0.0]
    for name in ("checkrun_check_status", "checkrun_check_value", "probe_success"):
        assert not families[name].samples, name
    (host,) = status.results().hosts
    assert [c.name for c in host.checks] == ["health"]
    status.record_host(HostResult("h", checks=[probe]))
    assert [s.value for s in _collected(status)["checkrun_check_status"].samples] == [0.0]


def _web_config(tmp_path: Path, pki, password_hash: bytes) -> Path:
    config = tmp_path / "web.yml"
    config.write_text(
        f"""tls_server_config:
  cert_file: {pki.server_cert.name}
  key_file: {pki.server_key.name}
basic_auth_users:
  {USER}: {password_hash.decode()}
"""
    )
    return config


def test_basic_auth_over_tls_with_a_real_prometheus(tmp_path, fed_status):
    pki = make_pki(tmp_path)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10))
    server = StatusServer("127.0.0.1:0", fed_status, str(_web_config(tmp_path, pki, hashed)))
    server.start()
    try:
        base = f"https://127.0.0.1:{server.port}"
        client = ssl.create_default_context(cafile=str(pki.ca_cert))
        assert get(f"{base}/metrics", context=client)[0] == 401
        assert get(f"{base}/metrics", auth=(USER, "wrong"), context=client)[0] == 401
        assert get(f"{base}/metrics", auth=("nobody", PASSWORD), context=client)[0] == 401
        families = scrape(f"{base}/metrics", auth=(USER, PASSWORD), context=client)
        assert "checkrun_check_status" in families
        with pytest.raises((OSError, http.client.HTTPException)):  # TLS only: no plain HTTP
            get(f"http://127.0.0.1:{server.port}/metrics", auth=(USER, PASSWORD))

        scrape_configs = "".join(
            f"""  - job_name: {job}
    scheme: https
    honor_labels: true
    tls_config: {{ca_file: {pki.ca_cert}}}
    basic_auth: {{username: {USER}, password: "{password}"}}
    static_configs:
      - targets: ["127.0.0.1:{server.port}"]
"""
            for job, password in (("right", PASSWORD), ("wrong", "not it"))
        )
        with running_prometheus(tmp_path / "prom", scrape_configs) as url:
            wait_for(
                lambda: (
                    _values(url, 'up{job="right"}') == {"": 1.0}
                    and _values(url, 'up{job="wrong"}') == {"": 0.0}
                ),
                "one scrape to succeed and the other to be refused",
                timeout=90,
            )
            assert _values(url, 'checkrun_check_status{job="right"}') == {
                "health": 0.0,
                "closed port": 2.0,
                "memory": 0.0,
            }
            assert _values(url, 'checkrun_check_status{job="wrong"}') == {}
            (wrong,) = [t for t in targets(url) if t["labels"]["job"] == "wrong"]
            assert "401" in wrong["lastError"]
    finally:
        server.close()


def test_client_certificates_when_the_web_config_requires_them(tmp_path, fed_status):
    pki = make_pki(tmp_path)
    config = tmp_path / "mtls.yml"
    config.write_text(
        f"""tls_server_config:
  cert_file: {pki.server_cert}
  key_file: {pki.server_key}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {pki.ca_cert}
"""
    )
    server = StatusServer("127.0.0.1:0", fed_status, str(config))
    server.start()
    try:
        url = f"https://127.0.0.1:{server.port}/healthz"
        anonymous = ssl.create_default_context(cafile=str(pki.ca_cert))
        with pytest.raises(OSError):  # no client certificate: the handshake fails
            get(url, context=anonymous)
        known = ssl.create_default_context(cafile=str(pki.ca_cert))
        known.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        assert get(url, context=known) == (200, "ok\n")
    finally:
        server.close()


def test_a_silent_client_does_not_hold_up_the_others(tmp_path, fed_status):
    pki = make_pki(tmp_path)
    config = tmp_path / "tls.yml"
    config.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
    )
    for web_config in (None, str(config)):
        server = StatusServer("127.0.0.1:0", fed_status, web_config)
        server.start()
        try:
            silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
            scheme = "https" if web_config else "http"
            context = ssl.create_default_context(cafile=str(pki.ca_cert)) if web_config else None
            started = time.monotonic()
            assert get(f"{scheme}://127.0.0.1:{server.port}/healthz", context=context)[0] == 200
            # A server that waited for them would take their timeouts, one after the other.
            assert time.monotonic() - started < len(silent) * serve_http.REQUEST_TIMEOUT - 5
            for sock in silent:
                sock.close()
        finally:
            server.close()


def test_a_trickling_client_is_cut_off_at_the_connection_deadline(fed_status, monkeypatch):
    monkeypatch.setattr(serve_http, "CONNECTION_DEADLINE", 1.0)
    server = StatusServer("127.0.0.1:0", fed_status)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            started = time.monotonic()
            closed = False
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 200:
                try:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.2)  # one byte well inside every read timeout
                except OSError:
                    closed = True
                    break
                if time.monotonic() - started > 30:
                    break
            closed = closed or _peer_closed(sock)
            assert closed, "the server still listens to a client that never finishes"
            assert time.monotonic() - started < 30
    finally:
        server.close()


def _peer_closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except TimeoutError:  # still open, waiting for the rest of the request
        return False
    except OSError:  # reset
        return True


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("basic_auth_users:\n  bob: plain-password\n", ":2:8", "is not a bcrypt hash"),
        (
            "tls_server_config:\n  cert_file: a.pem\n  keyfile: a.key\n",
            ":3:3",
            "unknown key 'keyfile'",
        ),
        ("basic_auth_user:\n  bob: x\n", ":1:1", "unknown key 'basic_auth_user'"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n"
            "  client_auth_type: RequireAndVerifyClientCert\n",
            ":4:21",
            "needs client_ca_file",
        ),
        (
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n",
            ":2:14",
            "cannot load",
        ),
        ("basic_auth_users: [\n", ":2:1", "invalid YAML"),
    ],
)
def test_a_bad_web_config_names_file_and_line(tmp_path, fed_status, text, where, message):
    config = tmp_path / "web.yml"
    config.write_text(text)
    server = StatusServer("127.0.0.1:0", fed_status, str(config))
    with pytest.raises(ConfigError) as caught:
        server.start()
    error = caught.value
    assert error.exit_code == 5
    assert str(error.location) == f"{config}{where}"
    assert message in str(error)


def test_a_port_in_use_or_a_bad_address_is_a_config_error(fed_status, served):
    for listen in (f"127.0.0.1:{served.port}", "127.0.0.1:http", "256.1.1.1:80"):
        with pytest.raises(ConfigError) as caught:
            StatusServer(listen, fed_status).start()
        assert caught.value.exit_code == 5 and "--listen" in str(caught.value)


def test_listen_defaults_to_loopback(fed_status):
    server = StatusServer("0", fed_status)
    server.start()
    try:
        assert server.address[0] == "127.0.0.1"
    finally:
        server.close()
