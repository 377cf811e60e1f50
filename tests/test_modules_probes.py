"""The probe and execution modules (http, tcp, command, file, nagios) against real loopback
servers, real subprocesses and real files; recorded plugin outputs split and parsed. The
parsers' input-to-output cases are data: tests/fixtures/parsers/ (test_parsers.py)."""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from helpers_net import (
    BASIC_PASSWORD,
    BASIC_USER,
    LOOPBACK,
    banner,
    closed_port,
    http_server,
    make_certificate,
    make_pki,
    ping_pong,
    server_tls_context,
    silent,
    tcp_service,
)

from checkrunner import catalog
from checkrunner.config.normalize import normalize_args
from checkrunner.errors import ConfigError, Location
from checkrunner.modules import command, file, http, nagios, tcp
from checkrunner.modules._batch import CheckContext
from checkrunner.modules._utils import certs
from checkrunner.playbook import load_playbook

MODULES = {"http": http, "tcp": tcp, "command": command, "file": file, "nagios": nagios}
PERFDATA = Path(__file__).resolve().parent / "fixtures" / "perfdata"


def make_args(module, **given):
    """The arguments as the control node sends them: normalised by the config layer, with
    every default applied."""
    name = module.__name__.rsplit(".", 1)[-1]
    return normalize_args(catalog.get(name), given, Location("test_modules_probes.py"))


def ctx(timeout=10.0):
    return CheckContext("0.1", timeout, None)


def run(module, check_timeout=10.0, **given):
    """module.run with the given arguments (the module's own `timeout` among them) inside
    a check whose timeout is check_timeout."""
    return module.run(make_args(module, **given), ctx(check_timeout))


# ----------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("name", sorted(MODULES))
def test_examples_load_as_a_playbook(name, tmp_path):
    """Every EXAMPLES check passes the real playbook loader: known options, valid values,
    metrics the module measures."""
    info = catalog.get(name)
    examples = yaml.safe_load(info.examples)
    assert isinstance(examples, list) and len(examples) >= 2
    playbook = tmp_path / "examples.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "examples",
                    "hosts": "localhost",
                    "vars": {"es_monitor_password": "x"},
                    "checks": examples,
                }
            ]
        )
    )
    checks = load_playbook(str(playbook)).plays[0].checks
    assert [check.module for check in checks] == [name] * len(examples)
    for check in checks:
        assert check.metric is None or any(
            fnmatch.fnmatchcase(check.metric, declared) for declared in info.measurements
        )


# ------------------------------------------------------------------------------------ HTTP


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"), server_days=30)


@pytest.fixture(scope="module")
def web():
    with http_server() as server:
        yield server


@pytest.fixture(scope="module")
def secure_web(pki):
    with http_server(server_tls_context(pki.server_cert, pki.server_key)) as server:
        yield server


def test_http_ok_measures_latency_and_matches_body(web):
    result = run(http, url=web.url("/ok"), body="ok", timeout=2.0)
    assert result["failures"] == []
    m = result["measurements"]
    assert m["success"] == 1 and m["status_code"] == 200 and m["redirects"] == 0
    assert m["body_bytes"] == len("status: ok\nversion: 1.4.2\n")
    assert 0 < m["latency"] < 2
    assert "cert_days_left" not in m
    assert result["message"].startswith("HTTP 200 in ")
    assert result["facts"]["content_type"].startswith("text/plain")


def test_http_unexpected_status_is_a_failure(web):
    result = run(http, url=web.url("/status/500"))
    assert result["measurements"]["status_code"] == 500
    assert result["measurements"]["success"] == 0
    assert result["failures"] == ["status 500 Internal Server Error, expected 200"]
    assert result["facts"]["body_excerpt"] == "status 500\n"


def test_http_status_list_decides_success(web):
    result = run(http, url=web.url("/status/503"), status=[200, 503])
    assert result["failures"] == []
    assert result["measurements"]["success"] == 1


def test_http_body_patterns_must_and_must_not_match(web):
    assert run(http, url=web.url("/ok"), body=[r"^version: 1\.4"])["failures"] == []
    result = run(http, url=web.url("/ok"), body=[r"version: 2\."], body_not=["status: (ok|up)"])
    assert result["failures"] == [
        r"body does not match /version: 2\./",
        "body matches /status: (ok|up)/ ('status: ok')",
    ]
    assert result["measurements"]["success"] == 0


def test_http_body_uses_the_response_charset(web):
    assert run(http, url=web.url("/latin1"), body=["café"])["failures"] == []


def test_http_follows_redirects_and_counts_them(web):
    result = run(http, url=web.url("/redirect/3"), body="ok")
    assert result["failures"] == []
    assert result["measurements"]["redirects"] == 3
    assert result["facts"]["redirect_chain"][-1] == web.url("/ok")
    assert len(result["facts"]["redirect_chain"]) == 4


def test_http_without_following_redirects_sees_the_3xx(web):
    result = run(http, url=web.url("/redirect/1"), follow_redirects=False)
    assert result["measurements"]["status_code"] == 302
    assert result["failures"] == ["status 302 Found, expected 200"]
    ok = run(http, url=web.url("/redirect/1"), follow_redirects=False, status=[301, 302])
    assert ok["failures"] == []


def test_http_too_many_redirects_is_a_failure(web):
    result = run(http, url=web.url("/redirect/5"), max_redirects=2)
    assert result["measurements"]["success"] == 0
    assert "more than 2 redirects" in result["failures"][0]


def test_http_post_sends_body_and_headers(web):
    result = run(
        http,
        url=web.url("/echo"),
        method="POST",
        headers={"X-Check": "yes", "Content-Type": "text/plain"},
        request_body="payload-123",
        body=['"method": "POST"', '"body": "payload-123"', '"x-check": "yes"', '"checkrun-http/'],
    )
    assert result["failures"] == []


def test_http_303_after_post_continues_with_get(web):
    result = run(
        http,
        url=web.url("/see-other"),
        method="POST",
        request_body="x",
        body=['"method": "GET"', '"body": ""'],
    )
    assert result["failures"] == []
    assert result["measurements"]["redirects"] == 1


def test_http_basic_auth_from_options_or_url(web):
    denied = run(http, url=web.url("/auth"))
    assert denied["measurements"]["status_code"] == 401
    allowed = run(http, url=web.url("/auth"), username=BASIC_USER, password=BASIC_PASSWORD)
    assert allowed["failures"] == []
    userinfo = BASIC_USER + ":" + BASIC_PASSWORD.replace(" ", "%20") + "@"
    from_url = run(http, url=f"http://{userinfo}{LOOPBACK}:{web.port}/auth")
    assert from_url["failures"] == []
    assert from_url["facts"]["url"] == web.url("/auth")
    assert BASIC_PASSWORD.replace(" ", "%20") not in from_url["message"]


def test_http_credentials_are_not_sent_to_another_host(web):
    result = run(
        http,
        url=web.url("/to-other-host"),
        username=BASIC_USER,
        password="x",
        body=['"method": "GET"'],
        body_not=['"authorization"'],
    )
    assert result["failures"] == []
    assert result["facts"]["url"].startswith("http://localhost:")
    same_host = run(
        http, url=web.url("/redirect/1"), username=BASIC_USER, password="x", follow_redirects=True
    )
    assert same_host["failures"] == []


def test_http_response_header_patterns(web):
    assert run(http, url=web.url("/ok"), response_headers={"X-App": "^checkrun"})["failures"] == []
    result = run(
        http, url=web.url("/ok"), response_headers={"X-Missing": ".", "Content-Type": "json"}
    )
    assert result["failures"] == [
        "response header X-Missing is missing",
        "response header Content-Type: 'text/plain; charset=utf-8' does not match /json/",
    ]


def test_http_reads_at_most_max_body(web):
    result = run(http, url=web.url("/big"), max_body=1000)
    assert result["measurements"]["body_bytes"] == 1000
    assert result["facts"]["body_truncated"] is True


def test_http_head_request(web):
    result = run(http, url=web.url("/ok"), method="HEAD")
    assert result["measurements"]["status_code"] == 200
    assert result["measurements"]["body_bytes"] == 0


def test_http_module_timeout_is_a_failure_not_a_hang(web):
    started = time.monotonic()
    result = run(http, url=web.url("/slow"), timeout=0.3)
    assert time.monotonic() - started < 1.0
    assert result["measurements"]["success"] == 0
    assert "timed out after 0.3s" in result["failures"][0]
    assert "status_code" not in result["measurements"]


def test_http_check_timeout_caps_the_request(web):
    started = time.monotonic()
    result = run(http, check_timeout=0.5, url=web.url("/slow"))
    assert time.monotonic() - started < 1.0  # the route answers after 1.5 s
    assert "timed out" in result["failures"][0]


def test_http_connection_refused_is_a_failure(web):
    url = f"http://{LOOPBACK}:{closed_port()}/health"
    result = run(http, url=url)
    assert result["failures"] == [f"GET {url}: connection refused"]
    assert result["measurements"]["success"] == 0


def test_http_failure_names_the_redirect_hop_that_failed(web):
    port = closed_port()
    result = run(http, url=web.url(f"/to-port/{port}"))
    assert result["failures"] == [f"GET http://{LOOPBACK}:{port}/ok: connection refused"]


def test_http_bad_arguments_raise(web):
    # The control node refuses them before anything runs; the module still checks them.
    for bad in ({"url": "ftp://127.0.0.1/file"}, {"url": web.url("/ok"), "body": ["(unclosed"]}):
        with pytest.raises(ConfigError):
            make_args(http, **bad)
    args = make_args(http, url=web.url("/ok"))
    with pytest.raises(ValueError, match="unsupported scheme"):
        http.run({**args, "url": "ftp://127.0.0.1/file"}, ctx())
    with pytest.raises(ValueError, match="invalid regular expression"):
        http.run({**args, "body": ["(unclosed"]}, ctx())


def test_https_with_private_ca_reports_certificate_days(secure_web, pki):
    result = run(http, url=secure_web.url("/ok"), ca_file=str(pki.ca_cert))
    assert result["failures"] == []
    assert 29.9 < result["measurements"]["cert_days_left"] <= 30.0
    assert (
        run(http, url=secure_web.url("/ok", host="localhost"), ca_file=str(pki.ca_cert))["failures"]
        == []
    )


def test_https_untrusted_certificate_fails_but_still_reports_expiry(secure_web):
    result = run(http, url=secure_web.url("/ok"))
    assert result["measurements"]["success"] == 0
    assert "TLS certificate verification failed" in result["failures"][0]
    assert 29.9 < result["measurements"]["cert_days_left"] <= 30.0


def test_https_without_verification_still_reads_the_certificate(secure_web):
    result = run(http, url=secure_web.url("/ok"), verify_tls=False)
    assert result["failures"] == []
    assert 29.9 < result["measurements"]["cert_days_left"] <= 30.0


def test_https_expired_certificate(pki):
    with http_server(server_tls_context(pki.expired_cert, pki.expired_key)) as expired:
        result = run(http, url=expired.url("/ok"), ca_file=str(pki.ca_cert))
        insecure = run(http, url=expired.url("/ok"), verify_tls=False)
    assert "expired" in result["failures"][0]
    assert -3.1 < result["measurements"]["cert_days_left"] < -2.9
    assert insecure["failures"] == []
    assert insecure["measurements"]["cert_days_left"] < 0


def test_https_client_certificate(pki):
    context = server_tls_context(pki.server_cert, pki.server_key, require_client_ca=pki.ca_cert)
    with http_server(context) as mtls:
        anonymous = run(http, url=mtls.url("/ok"), ca_file=str(pki.ca_cert))
        with_cert = run(
            http,
            url=mtls.url("/ok"),
            ca_file=str(pki.ca_cert),
            client_cert=str(pki.client_cert),
            client_key=str(pki.client_key),
        )
    assert anonymous["measurements"]["success"] == 0
    assert with_cert["failures"] == []


def test_https_unreadable_ca_file_makes_the_check_unknown(secure_web, tmp_path):
    with pytest.raises(RuntimeError, match="cannot load the TLS files"):
        run(http, url=secure_web.url("/ok"), ca_file=str(tmp_path / "missing.pem"))


@pytest.mark.parametrize("years", [1, 40], ids=["utctime", "generalizedtime"])
def test_parse_cert_not_after_reads_der(years):
    """The helper http and tcp share (modules/_utils/certs.py)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    not_after = now + datetime.timedelta(days=365 * years)
    ca_key, ca_cert = make_certificate(
        "ca",
        None,
        None,
        now - datetime.timedelta(days=1),
        now + datetime.timedelta(days=365 * 50),
        is_ca=True,
    )
    _, cert = make_certificate("svc", ca_key, ca_cert.subject, now, not_after)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert certs.parse_cert_not_after(der) == int(not_after.timestamp())
    assert x509.load_der_x509_certificate(der).not_valid_after_utc == not_after


# ------------------------------------------------------------------------------------- TCP


def test_tcp_connect_measures_connect_time():
    with tcp_service(banner) as port:
        result = run(tcp, host=LOOPBACK, port=port)
        by_address = run(tcp, address=f"{LOOPBACK}:{port}")
    assert result["failures"] == [] and by_address["failures"] == []
    m = result["measurements"]
    assert m["success"] == 1
    assert 0 < m["connect_time"] <= m["duration"] < 1
    assert result["facts"]["peer"] == LOOPBACK


def test_tcp_send_and_expect():
    with tcp_service(ping_pong) as port:
        good = run(tcp, host=LOOPBACK, port=port, send="PING\r\n", expect=r"^\+PONG")
        bad = run(tcp, host=LOOPBACK, port=port, send="HELLO\r\n", expect=r"^\+PONG")
    assert good["failures"] == []
    assert good["facts"]["reply"] == "+PONG\r\n"
    assert bad["measurements"]["success"] == 0
    assert "connection closed before a reply matched" in bad["failures"][0]
    assert "-ERR unknown command" in bad["failures"][0]


def test_tcp_expects_a_banner_without_sending():
    with tcp_service(banner) as port:
        result = run(tcp, host=LOOPBACK, port=port, expect=r"^SSH-2\.0-")
    assert result["failures"] == []
    assert result["facts"]["reply"].startswith("SSH-2.0-OpenSSH")


def test_tcp_connection_refused_is_a_failure():
    port = closed_port()
    result = run(tcp, host=LOOPBACK, port=port)
    assert result["failures"] == [f"{LOOPBACK}:{port}: connection refused"]
    assert result["measurements"]["success"] == 0
    assert "connect_time" not in result["measurements"]


def test_tcp_silent_service_times_out():
    with tcp_service(silent) as port:
        started = time.monotonic()
        result = run(tcp, host=LOOPBACK, port=port, expect="READY", timeout=0.3)
        elapsed = time.monotonic() - started
    assert elapsed < 5.0  # the silent service would hold us forever; slack for a loaded CI
    assert "no reply matching /READY/ in time" in result["failures"][0]
    assert result["measurements"]["connect_time"] < 0.3


def test_tcp_listener_that_never_accepts_honours_the_check_timeout():
    with tcp_service(None) as port:
        started = time.monotonic()
        result = run(tcp, check_timeout=0.4, host=LOOPBACK, port=port, send="hi\n", expect="x")
        assert time.monotonic() - started < 1.0  # it never answers at all
    assert result["measurements"]["success"] == 0


def test_tcp_tls_reports_certificate_days(pki):
    context = server_tls_context(pki.server_cert, pki.server_key)
    with tcp_service(banner, tls=context) as port:
        trusted = run(
            tcp, host=LOOPBACK, port=port, tls=True, ca_file=str(pki.ca_cert), expect="^SSH"
        )
        untrusted = run(tcp, host=LOOPBACK, port=port, tls=True)
        unverified = run(tcp, host=LOOPBACK, port=port, tls=True, verify_tls=False)
    assert trusted["failures"] == []
    assert trusted["facts"]["tls_version"].startswith("TLS")
    assert 29.9 < trusted["measurements"]["cert_days_left"] <= 30.0
    assert "certificate verification failed" in untrusted["failures"][0]
    assert 29.9 < untrusted["measurements"]["cert_days_left"] <= 30.0
    assert unverified["failures"] == []


def test_tcp_tls_expired_certificate(pki):
    context = server_tls_context(pki.expired_cert, pki.expired_key)
    with tcp_service(banner, tls=context) as port:
        result = run(tcp, host=LOOPBACK, port=port, tls=True, ca_file=str(pki.ca_cert))
    assert "certificate verification failed" in result["failures"][0]
    assert result["failures"][0].endswith("(the certificate expired 3.0 days ago)")
    assert -3.1 < result["measurements"]["cert_days_left"] < -2.9


def test_tcp_needs_a_port():
    args = dict(make_args(tcp, port=1), port=None)
    with pytest.raises(ValueError, match="port"):
        tcp.run(args, ctx())


# --------------------------------------------------------------------------------- command


def _process_gone(pid: int, wait: float = 2.0) -> bool:
    """True once pid no longer runs (a zombie nobody reaped counts as gone)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_command_single_number_becomes_value():
    result = run(command, cmd="echo 42")
    assert result["failures"] == []
    m = result["measurements"]
    assert m["value"] == 42 and m["exit_code"] == 0 and m["stdout_lines"] == 1
    assert result["facts"]["argv"] == ["echo", "42"]
    assert result["message"].endswith(": 42")


def test_command_string_never_goes_through_a_shell(tmp_path):
    marker = tmp_path / "pwned"
    result = run(command, cmd=f"echo hi; touch {marker} $(id) `id`")
    assert not marker.exists()
    assert result["facts"]["stdout"] == f"hi; touch {marker} $(id) `id`\n"
    assert result["facts"]["argv"][:3] == ["echo", "hi;", "touch"]


def test_command_shell_true_allows_pipes_and_redirections(tmp_path):
    queue = tmp_path / "queue"
    queue.write_text("a\nb\nc\n")
    result = run(command, cmd=f"wc -l < {queue}", shell=True)
    assert result["measurements"]["value"] == 3
    assert result["facts"]["shell_command"] == f"wc -l < {queue}"


def test_command_exit_codes():
    failing = run(command, cmd=["sh", "-c", "echo 'disk full' >&2; exit 3"])
    assert failing["measurements"]["exit_code"] == 3
    assert failing["failures"] == ["exit code 3, expected 0 (stderr: 'disk full')"]
    allowed = run(command, cmd=["sh", "-c", "exit 3"], exit_codes=[0, 3])
    assert allowed["failures"] == []


def test_command_shell_not_found_hints(tmp_path):
    result = run(command, cmd="no-such-command-xyz", shell=True)
    assert result["measurements"]["exit_code"] == 127
    assert "(command not found?)" in result["failures"][0]


def test_command_output_patterns():
    script = "import sys; print('ready'); print('warn: disk 91%', file=sys.stderr)"
    result = run(
        command,
        cmd=[sys.executable, "-c", script],
        stdout=["^ready$"],
        stdout_not=["(?i)error"],
        stderr=["disk"],
        stderr_not=["^warn"],
    )
    assert result["failures"] == ["stderr matches /^warn/ ('warn')"]
    assert result["facts"]["stderr"] == "warn: disk 91%\n"
    assert "value" not in result["measurements"]


def test_command_stdin_env_and_chdir(tmp_path):
    result = run(
        command,
        cmd=["sh", "-c", 'cat; echo "$GREETING"; pwd'],
        stdin="from stdin\n",
        env={"GREETING": "hello", "UNUSED": 1},
        chdir=str(tmp_path),
    )
    assert result["facts"]["stdout"] == f"from stdin\nhello\n{tmp_path}\n"


def test_command_large_stdin_and_output_do_not_deadlock():
    data = "x" * 2_000_000
    result = run(command, cmd=["sh", "-c", "tee /dev/stderr | wc -c"], stdin=data)
    assert result["measurements"]["value"] == 2_000_000
    assert result["facts"]["stderr_truncated"] is True
    assert len(result["facts"]["stderr"]) == 4096


def test_command_output_is_capped_but_counted():
    result = run(command, cmd=["seq", "1", "100000"], max_output=1000)
    m = result["measurements"]
    assert m["stdout_lines"] == 100000
    assert m["stdout_bytes"] == len("".join(f"{i}\n" for i in range(1, 100001)))
    assert result["facts"]["stdout_truncated"] is True
    assert len(result["facts"]["stdout"]) == 1000


def test_command_not_found_is_unknown(tmp_path):
    with pytest.raises(RuntimeError, match="command not found: no-such-command-xyz"):
        run(command, cmd="no-such-command-xyz --version")
    with pytest.raises(RuntimeError, match="chdir: no such directory"):
        run(command, cmd="true", chdir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="one string"):
        run(command, cmd=["echo", "x"], shell=True)


def test_command_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="timed out after 0.4s; killed"):
        run(command, cmd=f"sleep 30 & echo $! > {pidfile}; wait", shell=True, timeout=0.4)
    assert time.monotonic() - started < 10  # far below the 30 s the child would take
    assert _process_gone(int(pidfile.read_text()))


def test_command_background_child_holding_the_pipe_does_not_block():
    started = time.monotonic()
    result = run(command, cmd="sleep 5 & echo $!", shell=True)
    elapsed = time.monotonic() - started
    pid = result["measurements"]["value"]
    try:
        assert elapsed < 4.0  # below the 5 s the background child holds the pipe
        assert result["measurements"]["exit_code"] == 0
    finally:
        os.kill(pid, signal.SIGKILL)


# ------------------------------------------------------------------------------------ file


def test_file_measures_size_age_and_describes_it(tmp_path):
    path = tmp_path / "latest.sql.gz"
    path.write_bytes(b"x" * 1234)
    two_hours_ago = time.time() - 7200
    os.utime(path, (two_hours_ago, two_hours_ago))
    result = run(file, path=str(path))
    assert result["failures"] == []
    m = result["measurements"]
    assert m["exists"] == 1 and m["size"] == 1234
    assert 7199 < m["age"] < 7210
    facts = result["facts"]
    assert facts["type"] == "file"
    assert facts["uid"] == os.getuid()
    assert "modified 2h ago" in result["message"]


def test_file_missing_is_a_failure_unless_it_must_not_exist(tmp_path):
    missing = str(tmp_path / "nope")
    result = run(file, path=missing)
    assert result["failures"] == [f"{missing} does not exist"]
    assert result["measurements"] == {"exists": 0}
    assert run(file, path=missing, exists=False)["failures"] == []
    present = run(file, path=str(tmp_path), exists=False)
    assert present["failures"] == [f"{tmp_path} exists but must not"]
    assert run(file, path=str(tmp_path / "nope" / "deeper"))["measurements"] == {"exists": 0}


def test_file_type_expectations_and_links(tmp_path):
    target = tmp_path / "real.conf"
    target.write_text("x")
    link = tmp_path / "current.conf"
    link.symlink_to(target)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone")
    assert run(file, path=str(tmp_path), type="file")["failures"] == [
        "is a directory, expected a file"
    ]
    assert run(file, path=str(link), type="link")["failures"] == []
    followed = run(file, path=str(link), type="file")
    assert followed["failures"] == []
    assert followed["facts"]["link_target"] == str(target)
    assert followed["measurements"]["size"] == 1
    assert run(file, path=str(target), type="link")["failures"] == ["is a file, expected a link"]
    broken = run(file, path=str(dangling), type="file")
    assert broken["failures"] == ["is a dangling link, expected a file"]
    assert broken["facts"]["dangling"] is True


def test_file_mode(tmp_path):
    path = tmp_path / "secret"
    path.write_text("x")
    path.chmod(0o640)
    assert run(file, path=str(path), mode="0640")["failures"] == []
    assert run(file, path=str(path), mode=0o640)["failures"] == []
    assert run(file, path=str(path), mode="0644")["failures"] == ["mode is 0640, expected 0644"]
    with pytest.raises(ConfigError, match="not a permission mode"):
        make_args(file, path=str(path), mode="rw-r-----")  # refused before any host is touched
    args = make_args(file, path=str(path))
    with pytest.raises(ValueError, match="octal"):
        file.run({**args, "mode": "rw-r-----"}, ctx())


def test_file_owner_and_group(tmp_path):
    path = tmp_path / "owned"
    path.write_text("x")
    import grp
    import pwd

    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    assert run(file, path=str(path), owner=user, group=group)["failures"] == []
    assert run(file, path=str(path), owner=str(os.getuid()))["failures"] == []
    result = run(file, path=str(path), owner="no-such-user", group="no-such-group")
    assert result["failures"] == [
        f"owner is {user}, expected no-such-user",
        f"group is {group}, expected no-such-group",
    ]


def test_file_contents_patterns(tmp_path):
    path = tmp_path / "sshd_config"
    path.write_text("Port 22\nPasswordAuthentication no\nPermitRootLogin yes\n" + "#\n" * 600)
    ok = run(file, path=str(path), contains=[r"^PasswordAuthentication\s+no$"])
    assert ok["failures"] == []
    assert ok["facts"]["contents_truncated"] is False
    bad = run(
        file, path=str(path), not_contains=[r"^PermitRootLogin\s+yes"], contains=["^Port 2222$"]
    )
    assert bad["failures"] == [
        "contents do not match /^Port 2222$/",
        r"contents match /^PermitRootLogin\s+yes/ ('PermitRootLogin yes')",
    ]
    capped = run(file, path=str(path), contains=["PermitRootLogin"], max_read=20)
    assert capped["failures"] == ["contents do not match /PermitRootLogin/"]
    assert capped["facts"]["contents_truncated"] is True
    on_dir = run(file, path=str(tmp_path), contains=["x"])
    assert on_dir["failures"] == ["contents cannot be checked: not a regular file"]


def test_file_sha256(tmp_path):
    path = tmp_path / "release.tar"
    path.write_bytes(b"release" * 1000)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert run(file, path=str(path), sha256=digest.upper())["failures"] == []
    result = run(file, path=str(path), sha256="0" * 64)
    assert result["failures"] == [f"sha256 is {digest}, expected {'0' * 64}"]


def test_file_directory_entries(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text(name)
    result = run(file, path=str(tmp_path), type="directory")
    assert result["failures"] == []
    assert result["measurements"]["entries"] == 3


NOBODY_RUNNER = """
import json, sys
shipped = json.loads(sys.stdin.read())  # the batch runner and the sources a batch sends
runner = {}
exec(compile(shipped["runner"], "_batch.py", "exec"), runner)
module = runner["load_modules"](shipped["sources"])["file"]
class Context(object):
    def remaining(self):
        return 5.0
outcome = {}
for name, args in json.loads(sys.argv[1]).items():
    try:
        module.run(args, Context())
        outcome[name] = "no error"
    except RuntimeError as exc:
        outcome[name] = str(exc)
print(json.dumps(outcome))
"""


def _run_file_module_as_nobody(cases: dict) -> dict:
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 that an unprivileged user can run")
    proc = subprocess.run(
        [python, "-c", NOBODY_RUNNER, json.dumps(cases)],
        input=json.dumps(
            {"runner": catalog.batch_runner_source(), "sources": catalog.batch_sources(["file"])}
        ),
        capture_output=True,
        text=True,
        user=65534,
        group=65534,
        extra_groups=[],
        cwd="/",
        timeout=20,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_file_unreadable_contents_ask_for_become():
    base = Path(tempfile.mkdtemp(prefix="checkrun-perm-"))
    try:
        base.chmod(0o755)
        secret = base / "shadow"
        secret.write_text("root:*:19000:0:99999:7:::\n")
        secret.chmod(0o600)
        private = base / "private"
        private.mkdir(mode=0o700)
        (private / "inner").write_text("x")
        full = make_args(file, path=str(secret), contains=["root"])
        cases = {
            "contents": full,
            "stat_only": make_args(file, path=str(secret)),
            "hidden": make_args(file, path=str(private / "inner")),
        }
        if os.getuid() == 0:
            outcome = _run_file_module_as_nobody(cases)
        else:
            secret.chmod(0)
            private.chmod(0)
            outcome = {}
            for name, args in cases.items():
                try:
                    file.run(args, ctx())
                    outcome[name] = "no error"
                except RuntimeError as exc:
                    outcome[name] = str(exc)
        assert outcome["contents"].startswith(f"cannot read {secret}: permission denied")
        assert "become: true" in outcome["contents"]
        assert outcome["stat_only"] == "no error"
        assert outcome["hidden"].startswith("cannot look at")
        assert "become: true" in outcome["hidden"]
    finally:
        for path in (base, base / "private"):
            if path.exists():
                path.chmod(stat.S_IRWXU)
        shutil.rmtree(base)


# ---------------------------------------------------------------------------------- nagios

EXPECTED_PERFDATA = {
    "check_disk.txt": {
        "/": (2643.0, "MB", "5948", "5958", 0.0, 5968.0),
        "/boot": (68.0, "MB", "182", "191", 0.0, 192.0),
    },
    "check_load.txt": {
        "load1": (0.07, "", "15.000", "30.000", 0.0, None),
        "load5": (0.05, "", "10.000", "25.000", 0.0, None),
        "load15": (0.01, "", "5.000", "20.000", 0.0, None),
    },
    "check_http.txt": {
        "time": (0.00114, "s", None, None, 0.0, 10.0),
        "size": (612.0, "B", None, None, 0.0, None),
    },
    "check_ping.txt": {
        "rta": (187.23, "ms", "100.000000", "500.000000", 0.0, None),
        "pl": (40.0, "%", "20", "60", 0.0, None),
    },
    "check_disk_multiline.txt": {
        "/": (2643.0, "MB", "5948", "5958", 0.0, 5968.0),
        "/boot": (68.0, "MB", "88", "93", 0.0, 98.0),
        "/home": (69357.0, "MB", "253404", "253409", 0.0, 253414.0),
        "/var/log": (818.0, "MB", "970", "975", 0.0, 980.0),
    },
    "check_nt_quoted.txt": {
        "c:\\ Used Space": (27.45, "Gb", "79.61", "89.56", 0.0, 99.51),
        "c:\\ Used %": (28.0, "%", "80", "90", 0.0, 100.0),
        "O'Brien share": (1.5, "TB", "2", "2.5", 0.0, 3.0),
    },
    "check_snmp_counters.txt": {
        "ifInOctets": (3892712553.0, "c", None, None, None, None),
        "ifOutOctets": (1289045521.0, "c", None, None, None, None),
        "ifSpeed": (None, "", None, None, 0.0, None),
        "queue wait": (350.0, "us", "1000", "5000", None, None),
        "backup size": (512.0, "KB", None, None, 0.0, None),
        "archive": (2.5, "GB", None, None, None, None),
    },
    "garbage.txt": {
        "good": (1.0, "", "2", "3", None, None),
        "load": (0.5, "", "1", "2", None, None),
        "trailing": (7.0, "", None, None, None, None),
        "ratio": (1.5, "%", "80", "90", None, None),
        "tail": (-350.0, "s", None, None, None, None),
    },
}


def _perfdata_of(fixture: str) -> dict:
    _, _, perf_text = nagios.split_plugin_output((PERFDATA / fixture).read_text())
    items = nagios.parse_perfdata(perf_text)
    return {
        i["label"]: (i["value"], i["uom"], i["warn"], i["crit"], i["min"], i["max"]) for i in items
    }


def test_every_perfdata_fixture_has_expectations():
    assert sorted(p.name for p in PERFDATA.glob("*.txt")) == sorted(EXPECTED_PERFDATA)


@pytest.mark.parametrize("fixture", sorted(EXPECTED_PERFDATA))
def test_parse_perfdata_recorded_outputs(fixture):
    assert _perfdata_of(fixture) == EXPECTED_PERFDATA[fixture]


def test_split_plugin_output_long_output():
    message, long_output, perf_text = nagios.split_plugin_output(
        (PERFDATA / "check_disk_multiline.txt").read_text()
    )
    assert message == "DISK OK - free space: / 3326 MB (56%);"
    assert long_output.splitlines() == [
        "/ 15272 MB (77%);",
        "/boot 68 MB (69%);",
        "/home 69357 MB (27%);",
        "/var/log 819 MB (84%);",
    ]
    assert perf_text.startswith("/=2643MB") and perf_text.endswith("/var/log=818MB;970;975;0;980")


def perfdata_values(result: dict) -> dict:
    """The measurements that came from the plugin's perfdata."""
    own = set(catalog.get("nagios").measurements)
    return {k: v for k, v in result["measurements"].items() if k not in own}


def _plugin(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(
    "code,status",
    [(0, "OK"), (1, "WARNING"), (2, "CRITICAL"), (3, "UNKNOWN"), (4, "UNKNOWN")],
)
def test_nagios_exit_code_is_the_status(tmp_path, code, status):
    plugin = _plugin(tmp_path, "check_fixture", f"cat '{PERFDATA / 'check_ping.txt'}'; exit {code}")
    result = run(nagios, plugin=str(plugin))
    assert result["status"] == status
    assert result["failures"] == []
    assert perfdata_values(result) == {"rta": 187.23, "pl": 40.0}
    assert result["measurements"]["exit_code"] == code
    assert 0 < result["measurements"]["execution_time"] < 2
    assert result["units"] == {"rta": "ms", "pl": "%"}
    assert result["facts"]["perfdata"]["pl"] == {
        "value": 40.0,
        "uom": "%",
        "warn": "20",
        "crit": "60",
        "min": 0.0,
        "max": None,
    }
    first_line = "PING WARNING - Packet loss = 40%, RTA = 187.23 ms"
    if code == 4:
        assert result["message"] == f"plugin exited with code 4: {first_line}"
    else:
        assert result["message"] == first_line


def test_nagios_long_output_and_multiline_perfdata(tmp_path):
    plugin = _plugin(tmp_path, "check_disks", f"cat '{PERFDATA / 'check_disk_multiline.txt'}'")
    result = run(nagios, plugin=[str(plugin)])
    assert result["status"] == "OK"
    assert set(perfdata_values(result)) == {"/", "/boot", "/home", "/var/log"}
    assert result["facts"]["long_output"].startswith("/ 15272 MB (77%);\n/boot")


def test_nagios_arguments_are_not_shell_interpreted(tmp_path):
    marker = tmp_path / "pwned"
    plugin = _plugin(tmp_path, "check_args", 'echo "ARGS OK - $1 | n=$#"')
    result = run(nagios, plugin=f"{plugin} -w", args=[f"x; touch {marker}"])
    assert not marker.exists()
    assert result["message"] == "ARGS OK - -w"
    assert perfdata_values(result) == {"n": 2.0}
    shelled = run(
        nagios, plugin=f"{plugin} first", args=["two words", f"$(touch {marker})"], shell=True
    )
    assert not marker.exists()
    assert shelled["message"] == "ARGS OK - first"
    assert perfdata_values(shelled) == {"n": 3.0}
    piped = run(nagios, plugin=f"{plugin} one | sed s/OK/WARNING/", shell=True)
    assert piped["message"] == "ARGS WARNING - one"


def test_nagios_finds_plugins_by_name_in_plugin_dirs(tmp_path):
    _plugin(tmp_path, "check_custom_xyz", "echo 'CUSTOM OK'; exit 0")
    result = run(nagios, plugin="check_custom_xyz", plugin_dirs=[str(tmp_path)])
    assert (result["status"], result["message"]) == ("OK", "CUSTOM OK")
    with pytest.raises(RuntimeError, match="plugin not found: check_custom_xyz"):
        run(nagios, plugin="check_custom_xyz", plugin_dirs=[])


def test_nagios_stderr_only_and_signals(tmp_path):
    quiet = _plugin(tmp_path, "check_quiet", "echo 'cannot open /dev/foo' >&2; exit 2")
    result = run(nagios, plugin=str(quiet))
    assert result["status"] == "CRITICAL"
    assert result["message"] == "(no output on stdout) stderr: cannot open /dev/foo"
    assert perfdata_values(result) == {}
    killed = _plugin(tmp_path, "check_killed", "echo 'half'; kill -9 $$")
    result = run(nagios, plugin=str(killed))
    assert result["status"] == "UNKNOWN"
    assert result["message"] == "plugin killed by signal 9: half"


def test_nagios_timeout_kills_the_plugin(tmp_path):
    pidfile = tmp_path / "child.pid"
    hung = _plugin(tmp_path, "check_hung", f"sleep 30 & echo $! > '{pidfile}'; wait")
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="plugin timed out after 0.3s"):
        run(nagios, plugin=str(hung), timeout=0.3)
    assert time.monotonic() - started < 10  # far below the 30 s the child would take
    assert _process_gone(int(pidfile.read_text()))


def test_nagios_duplicate_labels_keep_the_first(tmp_path):
    plugin = _plugin(tmp_path, "check_dup", "echo 'OK | a=1 a=2 b=3'")
    assert perfdata_values(run(nagios, plugin=str(plugin))) == {"a": 1.0, "b": 3.0}


def test_nagios_perfdata_label_replaces_a_module_measurement(tmp_path):
    plugin = _plugin(tmp_path, "check_clash", "echo 'OK | exit_code=5;;;'")
    result = run(nagios, plugin=str(plugin))
    assert result["status"] == "OK"
    assert result["measurements"]["exit_code"] == 5.0


# ------------------------------------------------------------------- through the real batch


def _oldest_python() -> str | None:
    """A working Python 3.6 interpreter, the oldest targets have, when this machine has one."""
    candidates = [str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.6*/bin/python3.6"))]
    candidates += [p for p in [shutil.which("python3.6")] if p]  # may be a pyenv shim
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 6))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return None


@pytest.mark.parametrize("interpreter", ["current", "python3.6"])
def test_probe_modules_run_as_a_shipped_batch(web, secure_web, pki, tmp_path, interpreter):
    """The way a target runs them: sources exec'd by _batch.py in a fresh python3, results
    as JSON on stdout, on this Python and on the oldest one targets may have. A check
    without its own timeout still ends with its reason before the batch's deadline."""
    python = sys.executable if interpreter == "current" else _oldest_python()
    if python is None:
        pytest.skip("no Python 3.6 interpreter on this machine")
    from checkrunner.transport.answer import RESULT_MARKER
    from checkrunner.transport.payload import BOOTSTRAP, Batch, BatchCheck, build_payload

    plugin = _plugin(tmp_path, "check_fixture", f"cat '{PERFDATA / 'check_load.txt'}'; exit 1")
    watched = tmp_path / "watched"
    watched.write_text("ready\n")
    checks = [
        ("http", make_args(http, url=web.url("/ok"), body=["ok"], timeout=4.0), 5.0),
        ("tcp", make_args(tcp, host=LOOPBACK, port=closed_port()), 5.0),
        ("command", make_args(command, cmd="echo 7"), 5.0),
        # 3 s: the module stops 0.25 s before it and reports why; with 1 s (0.1 s ahead) a
        # loaded machine can reach the batch's own deadline first
        ("command", make_args(command, cmd="sleep 30"), 3.0),
        ("file", make_args(file, path=str(watched), contains=["^ready$"]), 5.0),
        ("nagios", make_args(nagios, plugin=str(plugin)), 5.0),
        ("http", make_args(http, url=secure_web.url("/ok"), ca_file=str(pki.ca_cert)), 5.0),
        ("http", make_args(http, url=secure_web.url("/ok")), 5.0),
    ]
    batch = Batch(
        [
            BatchCheck(f"0.{i}", name, args, timeout)
            for i, (name, args, timeout) in enumerate(checks)
        ]
    )
    proc = subprocess.run(
        [python, "-c", BOOTSTRAP],
        input=build_payload(batch),
        capture_output=True,
        timeout=30,
    )
    lines = [x for x in proc.stdout.decode().splitlines() if x.startswith(RESULT_MARKER)]
    assert lines, proc.stderr.decode()[-3000:]
    line = lines[0]
    results = {r["id"]: r for r in json.loads(line[len(RESULT_MARKER) :])["results"]}

    # a plain GET on loopback: its 4 s are for a loaded CI machine, not for the server
    assert results["0.0"]["result"]["measurements"].get("status_code") == 200, results["0.0"]
    assert results["0.1"]["result"]["failures"][0].endswith("connection refused")
    assert results["0.2"]["result"]["measurements"]["value"] == 7
    assert results["0.3"]["error_type"] == "exception"
    # the module stops a little before the 3 s check timeout; how much depends on the load
    assert re.match(r"timed out after 2\.\d+s; killed", results["0.3"]["error"])
    assert results["0.4"]["result"]["failures"] == []
    assert results["0.5"]["result"]["status"] == "WARNING"
    assert results["0.5"]["result"]["measurements"]["load1"] == 0.07
    assert results["0.6"]["result"]["failures"] == []
    assert 29.9 < results["0.6"]["result"]["measurements"]["cert_days_left"] <= 30
    assert "certificate verification failed" in results["0.7"]["result"]["failures"][0]
    assert 29.9 < results["0.7"]["result"]["measurements"]["cert_days_left"] <= 30
