"""The goruntime module against real parts: a real Go service (tests/fixtures/goruntime/
gcservice, built here with Debian's golang-go) run inside a real cgroup v1 made by the test
with a memory limit and a CPU quota, checked through checkrun locally and over SSH; its
heap against the cgroup's usage, Sys against the limit, and its GC share when it churns
against the same cgroup when it idles. Endpoints that are down or not Go are UNKNOWN with
the reason. The parsers' cases are data: tests/fixtures/parsers/goruntime.* and
_utils.exposition.scan (test_parsers.py)."""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import socket
import subprocess
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import goservice
import pytest
import test_modules_cgroup as cgroup_tests
from real_cgroups import RealCgroup
from test_modules_cgroup import BOOTSTRAP, PYTHON36, run_checks

from checkrunner import catalog
from checkrunner.modules import goruntime

MIB = 1024 * 1024
# the cgroup tests' fixtures: a real cgroup v1 made here, and the local and SSH targets
real_cgroup = cgroup_tests.real_cgroup
sshd = cgroup_tests.sshd
target = cgroup_tests.target


# ---------------------------------------------------------------- window arithmetic


def test_gc_cpu_seconds_from_the_fraction_and_its_difference_over_the_window():
    """GCCPUFraction is GC time / (GOMAXPROCS x (LastGC - start)): 2% of 4 Ps over the
    100 s to the last GC is 8 s; 10 s later and 30 collections on, 2.5% of 4 Ps over 110 s
    is 11 s: 3 s of GC in a 10 s window, 0.3 cores, 7.5% of the 4 Ps' time."""
    then = {"gc_cpu_fraction": 0.02, "last_gc": 1100.0, "num_gc": 10, "pause_total": 0.5}
    now = {"gc_cpu_fraction": 0.025, "last_gc": 1110.0, "num_gc": 40, "pause_total": 0.6}
    assert goruntime.gc_cpu_seconds(then, 1000.0, 4) == pytest.approx(8.0)
    assert goruntime.gc_cpu_seconds(now, 1000.0, 4) == pytest.approx(11.0)
    values, method = goruntime.gc_values(then, now, {"start_time": 1000.0, "gomaxprocs": 4}, 10.0)
    assert method == "gc_cpu_fraction"
    assert values["gc_cpu_cores"] == pytest.approx(0.3)
    assert values["gc_window_fraction"] == pytest.approx(7.5)
    assert values["gc_cycles"] == 30
    assert values["gc_pause"] == pytest.approx(0.1) and values["gc_pause_percent"] == pytest.approx(
        1.0
    )
    # without the process, only the pause time: GC CPU is not made up
    values, method = goruntime.gc_values(then, now, {}, 10.0)
    assert "gc_cpu_cores" not in values and "give pid or pattern" in method
    # nor across a restart of the program (its counters start again)
    restarted = {**now, "num_gc": 3}
    values, method = goruntime.gc_values(
        then, restarted, {"start_time": 1000.0, "gomaxprocs": 4}, 10.0
    )
    assert "gc_cpu_cores" not in values and method == "the program restarted during the window"
    values, method = goruntime.gc_values(
        {**then, "start_time": 1000.0}, {**now, "start_time": 1105.0, "gomaxprocs": 4}, {}, 10.0
    )
    assert "gc_cpu_cores" not in values and method == "the program restarted during the window"
    # nor before the first collection, when there is nothing to divide
    idle = {"gc_cpu_fraction": 0.0, "last_gc": 0.0, "num_gc": 0, "pause_total": 0.0}
    values, method = goruntime.gc_values(idle, idle, {}, 10.0)
    assert values["gc_cpu_cores"] == 0.0 and "gc_window_fraction" not in values
    # no collection yet: nothing spent, whatever the fraction says
    assert (
        goruntime.gc_cpu_seconds({"gc_cpu_fraction": 0.0, "last_gc": 0, "num_gc": 0}, None, None)
        == 0.0
    )


def test_gc_cpu_from_the_runtime_metrics_counter_is_preferred():
    """go_cpu_classes_gc_total_cpu_seconds_total (Go 1.20+ via client_golang's runtime
    metrics) is GC time itself: its difference over the window, no start time needed."""
    then = {"gc_cpu_seconds": 12.0, "gc_cpu_fraction": 0.5, "last_gc": 10.0, "num_gc": 5}
    now = {"gc_cpu_seconds": 13.5, "gc_cpu_fraction": 0.5, "last_gc": 12.0, "num_gc": 9}
    values, method = goruntime.gc_values(then, now, {}, 3.0)
    assert method == "runtime_metrics"
    assert values["gc_cpu_cores"] == 0.5


def test_the_cgroup_is_named_or_found_from_the_process():
    tree = cgroup_tests.TREES / "v2_systemd_k8s"
    ctx = cgroup_tests.context(tree / "proc")
    root = str(tree / "sys")
    by_unit = goruntime._cgroup({"unit": "nginx", "cgroup_root": root}, ctx, None)
    by_pid = goruntime._cgroup({"cgroup_root": root}, ctx, 800)
    by_path = goruntime._cgroup(
        {"cgroup": "/system.slice/nginx.service", "cgroup_root": root}, ctx, 1
    )
    assert by_unit.path == by_pid.path == by_path.path == "/system.slice/nginx.service"
    assert goruntime._cgroup({"cgroup_root": root}, ctx, None) is None  # nothing named


def test_gc_share_counts_throttled_time_as_busy_and_is_capped():
    # 0.3 cores of GC time; the cgroup used 0.5 cores and was throttled 0.1 s per second
    cpu = {"cpu_cores": 0.5, "throttled_time": 1.0}
    assert goruntime.gc_share(0.3, cpu, 4, 10.0) == pytest.approx(50.0)
    # never more busy time than GOMAXPROCS x the window
    assert goruntime.gc_share(0.3, {"cpu_cores": 0.5, "throttled_time": 50.0}, 1, 10.0) == 30.0
    # GC time beyond the busy time (waiting for a core behind others) passes 100: run caps it
    assert goruntime.gc_share(0.9, {"cpu_cores": 0.5}, None, 10.0) == pytest.approx(180.0)


def test_the_diagnoses_the_message_states():
    assert goruntime.diagnoses(
        {
            "cpu_quota_percent": 92.0,
            "gc_cpu_percent": 61.0,
            "sys_limit_percent": 88.0,
            "heap_limit_percent": 70.0,
        }
    ) == [
        "CPU 92% of quota, of which GC 61%: GC pressure",
        "Sys at 88% of the memory limit (heap in use 70%)",
    ]
    assert goruntime.diagnoses({"cpu_quota_percent": 95.0, "gc_cpu_percent": 10.0}) == [
        "CPU 95% of quota, of which GC 10%: not GC"
    ]
    assert goruntime.diagnoses({"cpu_quota_percent": 40.0, "gc_cpu_percent": 90.0}) == []


# ---------------------------------------------------------------- real parts


def _in_cgroup(cgroup: RealCgroup, marker: str, env: dict[str, str] | None = None):
    service = goservice.start(marker, [d / "cgroup.procs" for d in cgroup.dirs], env)
    cgroup.children.append(service.process)  # killed before the cgroup is removed
    return service


def _check(name: str, options: str) -> str:
    return f"    - name: {name}\n      goruntime: {{{options}}}\n"


def test_heap_and_sys_against_the_usage_and_limit_of_a_real_cgroup(tmp_path, target, real_cgroup):
    """The service holds 128 MiB under a 160 MiB limit: its heap is most of the cgroup's
    usage, and Sys (what the runtime holds from the OS) is past 80% of the limit, which
    the message says. The same figures whether the endpoint is expvar or go_* metrics and
    whether the cgroup is named or found from the process."""
    limit = 160 * MIB
    held = 128 * MIB
    real_cgroup.set("memory", "memory.limit_in_bytes", str(limit))
    real_cgroup.set("cpu", "cpu.cfs_quota_us", "50000")
    real_cgroup.set("cpu", "cpu.cfs_period_us", "100000")
    marker = f"gcservice-{real_cgroup.name}"
    service = _in_cgroup(real_cgroup, marker)
    service.get(f"/ctl/hold?mib={held // MIB}")
    checks = (
        _check("expvar by pid", f"url: '{service.url('/debug/vars')}', pid: {service.pid}")
        + _check(
            "metrics by cgroup", f"url: '{service.url('/metrics')}', cgroup: /{real_cgroup.name}"
        )
        + _check(
            "expvar by pattern",
            f"url: '{service.url('/debug/vars')}', pattern: '{re.escape(marker)}'",
        )
    )
    found = run_checks(tmp_path, target, checks)
    for name in ("expvar by pid", "metrics by cgroup", "expvar by pattern"):
        check = found[name]
        values = check["measurements"]
        assert check["status"] == "OK", check
        assert check["facts"]["cgroup"] == f"/{real_cgroup.name}", check
        assert check["facts"]["source"] == ("prometheus" if "metrics" in name else "expvar")
        assert values["memory_limit"] == limit, check
        # the held chunks are live heap, and live heap is charged to the cgroup: the rest of
        # the usage is the runtime's other memory and the binary's pages, a few MiB
        assert held <= values["heap_inuse"] <= values["memory_usage"], check
        assert values["memory_usage"] - values["heap_inuse"] <= 24 * MIB, check
        assert values["heap_usage_percent"] == pytest.approx(
            100 * values["heap_inuse"] / values["memory_usage"], rel=1e-6
        )
        assert values["heap_limit_percent"] == pytest.approx(100 * values["heap_inuse"] / limit)
        assert values["sys"] >= values["heap_inuse"], check
        assert values["sys_limit_percent"] == pytest.approx(100 * values["sys"] / limit)
        assert values["sys_limit_percent"] >= 80, check  # Sys >= the 128 MiB of heap it holds
        assert f"Sys at {values['sys_limit_percent']:.0f}% of the memory limit" in check["message"]
        assert values["cpu_quota_cores"] == 0.5, check
        assert values["goroutines"] >= 3, check  # main, the churner, the HTTP server's
    # GC CPU needs the start time and GOMAXPROCS: the process (pid, pattern) or the metrics
    assert found["expvar by pid"]["facts"]["gc_cpu_method"] == "gc_cpu_fraction"
    assert found["metrics by cgroup"]["facts"]["gc_cpu_method"] == "gc_cpu_fraction"
    assert "go_sched_gomaxprocs_threads" in found["metrics by cgroup"]["facts"]["gomaxprocs"]


def test_gc_share_when_churning_against_the_same_cgroup_idle(tmp_path, target, real_cgroup):
    """A live heap of a million linked nodes (costly to mark) and GOGC=10: churning makes
    the collector run continuously; idle, it does not run at all. Both windows are measured
    in the same cgroup under the same 0.5-core quota, one after the other."""
    real_cgroup.set("memory", "memory.limit_in_bytes", str(512 * MIB))
    real_cgroup.set("cpu", "cpu.cfs_quota_us", "50000")
    real_cgroup.set("cpu", "cpu.cfs_period_us", "100000")
    service = _in_cgroup(
        real_cgroup, f"gcservice-{real_cgroup.name}", {"GOGC": "10", "GOMAXPROCS": "2"}
    )
    service.get("/ctl/nodes?n=1000000")
    checks = (
        _check("gc", f"url: '{service.url('/debug/vars')}', pid: {service.pid}, sample: 2s")
        + "      metric: gc_cpu_percent\n"
    )
    idle = run_checks(tmp_path, target, checks)["gc"]
    service.get("/ctl/churn?on=1")
    churning = run_checks(tmp_path, target, checks)["gc"]
    service.get("/ctl/churn?on=0")
    for check in (idle, churning):
        assert check["status"] == "OK", check
        assert check["facts"]["gc_cpu_method"] == "gc_cpu_fraction", check
        assert check["facts"]["gomaxprocs"] == "2 (the GOMAXPROCS environment variable)"
    quiet, busy = idle["measurements"], churning["measurements"]
    assert quiet["gc_cycles"] == 0 and quiet["gc_cpu_cores"] == 0, idle
    assert quiet["gc_cpu_percent"] == 0, idle
    assert busy["gc_cycles"] > 0 and busy["gc_pause"] > 0, churning
    assert busy["cpu_cores"] > quiet["cpu_cores"], (idle, churning)
    # the collector's time grows with the cycles; most of what the churning service does
    # is marking the million nodes again
    assert busy["gc_cpu_cores"] > 0, churning
    assert busy["gc_window_fraction"] == pytest.approx(100 * busy["gc_cpu_cores"] / 2)
    assert busy["gc_cpu_percent"] >= 50, churning
    if busy["cpu_quota_percent"] >= goruntime.HIGH_QUOTA_PERCENT:
        expected = (
            f"CPU {busy['cpu_quota_percent']:.0f}% of quota, of which GC "
            f"{busy['gc_cpu_percent']:.0f}%: GC pressure"
        )
        assert expected in churning["message"], churning
    assert "GC pressure" not in idle["message"], idle


# ---------------------------------------------------------------- endpoints that fail


class Hostile(http.server.BaseHTTPRequestHandler):
    """Answers that are not a Go runtime's: garbage, an error status, an endless body."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            chunk = b'{"memstats": {"PauseNs": [' + b"1," * 32768
            try:
                while True:
                    self.wfile.write(chunk)
            except OSError:
                return  # the client stopped reading
        body = {
            "/garbage": b'{"memstats": {"HeapAlloc": 12,',
            "/html": b"<html>not metrics</html>\n",
        }.get(self.path)
        self.send_response(200 if body else 500)
        self.end_headers()
        self.wfile.write(body or b"internal error\n")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def raw_server(answer: bytes | None) -> Iterator[int]:
    """A TCP server on loopback that sends `answer` and closes, or (None) says nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            if answer is not None:
                conn.sendall(answer)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for conn in held:
            conn.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_endpoints_that_are_down_or_not_go_are_unknown_with_the_reason(tmp_path, target, hostile):
    with contextlib.ExitStack() as stack:
        silent = stack.enter_context(raw_server(None))
        ssh_like = stack.enter_context(raw_server(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"))
        endless_headers = stack.enter_context(
            raw_server(b"HTTP/1.0 200 OK\r\n" + b"X: y\r\n" * 20000)
        )
        found = _unknown_checks(tmp_path, target, hostile, silent, ssh_like, endless_headers)
    reasons = {
        "down": "connection refused",
        "garbage": "not JSON",
        "not go": "not a Go program's metrics: line 1: no metric name",
        "error status": "HTTP 500",
        "endless": r"longer than max_body \(1000000 bytes\)",
        "silent": r"timed out after 1\.0s",
        "not http": r"invalid HTTP response \(status line 'SSH-2\.0-OpenSSH_9\.2'\)",
        "endless headers": "headers are longer than 65536 bytes",
    }
    for name, reason in reasons.items():
        check = found[name]
        assert check["status"] == "UNKNOWN", check
        assert re.search(r"GET http://127\.0\.0\.1:\d+/\S*: .*" + reason, check["message"]), check


def _unknown_checks(tmp_path, target, hostile, silent, ssh_like, endless_headers) -> dict:
    checks = (
        _check("down", f"url: 'http://127.0.0.1:{_closed_port()}/debug/vars'")
        + _check("garbage", f"url: '{hostile}/garbage'")
        + _check("not go", f"url: '{hostile}/html'")
        + _check("error status", f"url: '{hostile}/errors'")
        + _check("endless", f"url: '{hostile}/endless', max_body: 1MB")
        + _check("silent", f"url: 'http://127.0.0.1:{silent}/debug/vars', timeout: 1s")
        + _check("not http", f"url: 'http://127.0.0.1:{ssh_like}/'")
        + _check("endless headers", f"url: 'http://127.0.0.1:{endless_headers}/'")
    )
    return run_checks(tmp_path, target, checks)


def test_runs_on_python36():
    """Targets may run Python 3.6: the shipped program, with its helpers, runs there."""
    assert PYTHON36 is not None, "no Python 3.6 under ~/.pyenv/versions"
    service = goservice.start("gcservice-py36")
    try:
        url = service.url("/debug/vars")
        batch = {
            "version": 1,
            "options": {"psutil": False, "nice": 0},
            "checks": [
                {
                    "id": "1",
                    "module": "goruntime",
                    "args": {
                        "url": url,
                        "pid": service.pid,
                        "sample": 0.2,
                        "format": "auto",
                        "max_body": 4000000,
                        "cgroup_root": "/sys/fs/cgroup",
                    },
                    "window": 0.2,
                },
                {
                    "id": "2",
                    "module": "goruntime",
                    "args": {
                        "url": service.url("/metrics"),
                        "sample": 0.2,
                        "format": "auto",
                        "max_body": 4000000,
                    },
                    "window": 0.2,
                },
            ],
        }
        sources = catalog.batch_sources(["goruntime"])
        program = f"{catalog.batch_runner_source()}\n_main({sources!r}, {json.dumps(batch)!r})\n"
        done = subprocess.run(
            [str(PYTHON36), "-c", BOOTSTRAP],
            input=zlib.compress(program.encode()),
            capture_output=True,
            timeout=60,
        )
    finally:
        service.stop()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    line = next(x for x in done.stdout.decode().splitlines() if x.startswith("__CHECKRUN_RESULT__"))
    report = json.loads(line[len("__CHECKRUN_RESULT__") :])
    assert report["python"].startswith("3.6.")
    entries = {entry["id"]: entry for entry in report["results"]}
    assert [entries[i].get("error") for i in "12"] == [None, None], entries
    first, second = entries["1"]["result"]["measurements"], entries["2"]["result"]["measurements"]
    assert first["heap_alloc"] > 0 and second["heap_alloc"] > 0
    assert "memory_usage" in first  # the process's own cgroup
    assert "memory_usage" not in second  # no cgroup named, no process given
