"""The prometheus module: its exposition parser against recorded outputs of real exporters
(cross-checked with prometheus_client's own parsers), selectors, PromQL functions, hostile
bodies, and real endpoints (Alertmanager, node_exporter, Pushgateway, counters served by the
test) scraped by the module itself, locally and over SSH through `checkrun`."""

from __future__ import annotations

import gzip
import http.server
import json
import math
import subprocess
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from alertmanager import HOOK_ROUTE, running_alertmanager
from helpers import run_checkrun
from helpers_net import closed_port as closed_port_number
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_servers import running_node_exporter, running_pushgateway
from sshd import SSHServer, running_sshd, sshd_available

from checkrunner import catalog
from checkrunner.config.normalize import normalize_args
from checkrunner.errors import Location
from checkrunner.modules import prometheus
from checkrunner.modules._batch import CheckContext
from checkrunner.modules._utils import exposition
from checkrunner.playbook import load_playbook

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "prometheus"
SSH_ADDRESS = "127.0.41.1"
OPENMETRICS_FIXTURES = {"openmetrics_exemplars.txt", "prometheus_client_openmetrics.txt"}


def make_args(**given):
    return normalize_args(catalog.get("prometheus"), given, Location("test_prometheus_module.py"))


def run(check_timeout: float = 10.0, **given) -> dict:
    return prometheus.run(make_args(**given), CheckContext("0.1", check_timeout, None))


# ------------------------------------------------------------------ the parser on recordings


def fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.txt"))


def _comparable(value: float) -> object:
    return "NaN" if math.isnan(value) else value


def reference_samples(text: str, openmetrics: bool) -> list[tuple]:
    """The samples prometheus_client's own parser reads: (name, labels, value, timestamp)."""
    families = openmetrics_families(text) if openmetrics else text_string_to_metric_families(text)
    out = []
    for family in families:
        for sample in family.samples:
            stamp = sample.timestamp
            if stamp is not None and not isinstance(stamp, float):
                stamp = float(stamp.sec) + stamp.nsec / 1e9  # openmetrics' Timestamp
            out.append((sample.name, sample.labels, _comparable(sample.value), stamp))
    return out


@pytest.mark.parametrize("name", fixture_names())
def test_parser_agrees_with_prometheus_client_on_every_fixture(name):
    text = (FIXTURES / name).read_text(encoding="utf-8")
    openmetrics = name in OPENMETRICS_FIXTURES
    ours = exposition.parse_exposition(text, openmetrics=openmetrics)
    theirs = reference_samples(text, openmetrics)
    mine = [(s[0], s[1], _comparable(s[2]), s[3]) for s in ours["samples"]]
    assert len(mine) == ours["count"] == len(theirs) > 0
    key = lambda sample: (sample[0], sorted(sample[1].items()))  # noqa: E731
    for got, want in zip(sorted(mine, key=key), sorted(theirs, key=key)):
        assert got[:3] == want[:3]
        assert (got[3] is None and want[3] is None) or got[3] == pytest.approx(want[3])


def test_recorded_real_outputs_hold_what_was_pushed_and_served():
    pushed = exposition.parse_exposition((FIXTURES / "pushgateway_1.5.1.txt").read_text())
    values = {(s[0], s[1].get("kind")): s[2] for s in pushed["samples"]}
    assert values[("backup_bytes", "full")] == 1.5e9
    assert values[("backup_runs_total", None)] == 42.0
    assert pushed["types"]["go_gc_duration_seconds"] == "summary"
    goroutines = [s for s in pushed["samples"] if s[0] == "go_goroutines"]
    assert len(goroutines) == 1 and goroutines[0][2] >= 1
    textfile = exposition.parse_exposition(
        (FIXTURES / "node_exporter_1.5.0_textfile.txt").read_text()
    )
    jobs = [s for s in textfile["samples"] if s[0] == "app_jobs_total"]
    assert jobs == [["app_jobs_total", {"queue": 'a\\b "q" \n'}, 3.0, None]]
    assert exposition.family_type("app_jobs_total", textfile["types"]) == "counter"


def test_special_values_and_timestamps():
    parsed = exposition.parse_exposition((FIXTURES / "special_values.txt").read_text())
    by_label = {s[1]["v"]: s for s in parsed["samples"]}
    assert math.isnan(by_label["nan"][2])
    assert by_label["pinf"][2] == math.inf == by_label["inf"][2]
    assert by_label["minf"][2] == -math.inf
    assert by_label["ts"][3] == -1.0  # milliseconds in the text format, seconds here


def test_openmetrics_needs_its_eof_and_nothing_after_it():
    text = (FIXTURES / "openmetrics_exemplars.txt").read_text()
    with pytest.raises(ValueError, match="no '# EOF'"):
        exposition.parse_exposition(text.replace("# EOF\n", ""), openmetrics=True)
    with pytest.raises(ValueError, match="content after # EOF"):
        exposition.parse_exposition(text + "late 1\n", openmetrics=True)
    # the text format takes `# EOF` as the comment it is there
    assert exposition.parse_exposition("a 1\n# EOF\n")["count"] == 1


@pytest.mark.parametrize(
    "line, reason",
    [
        ('x{a="1" 1', "expected ',' or '}'"),
        ("x{a=1} 1", "invalid label set"),
        ("x 1 2 3", "expected a value"),
        ("x one", "not a number"),
        ("x 1_000", "not a number"),
        ('x{a="1",a="2"} 1', "given twice"),
        ("{} 1", "no metric name"),
        ("# TYPE x bogus", "unknown metric type"),
        ("<html><body>502 Bad Gateway</body></html>", "no metric name"),
    ],
)
def test_a_bad_line_is_named(line, reason):
    with pytest.raises(ValueError, match="line 2: .*" + reason if "TYPE" not in line else reason):
        exposition.parse_exposition("ok 1\n" + line + "\n")


# ------------------------------------------------------------------- selectors and PromQL


def series(*samples: tuple[str, dict]) -> list[list]:
    return [[name, labels, 1.0, None] for name, labels in samples]


@pytest.mark.parametrize(
    "selector, picked",
    [
        ('http_requests_total{code=~"5.."}', ["500 /a", "503 /b"]),
        ('http_requests_total{code=~"5"}', []),  # anchored: 5 is not 500
        ('http_requests_total{code!~"5.*"}', ["200 /a", "200 -"]),
        ('http_requests_total{handler=""}', ["200 -"]),  # a missing label reads as ""
        ('http_requests_total{handler!=""}', ["200 /a", "500 /a", "503 /b"]),
        ('{__name__=~"http_.*_total", handler="/a"}', ["200 /a", "500 /a"]),
        ("http_requests_total{code='200', handler=`/a`,}", ["200 /a"]),
    ],
)
def test_selector_matches_as_promql_does(selector, picked):
    samples = series(
        ("http_requests_total", {"code": "200", "handler": "/a"}),
        ("http_requests_total", {"code": "500", "handler": "/a"}),
        ("http_requests_total", {"code": "503", "handler": "/b"}),
        ("http_requests_total", {"code": "200"}),
        ("http_requests_created", {"code": "500", "handler": "/a"}),
    )
    compiled = exposition.Selector(selector)
    found = [
        f"{s[1]['code']} {s[1].get('handler', '-')}"
        for s in samples
        if compiled.matches(s[0], s[1])
    ]
    assert found == picked


@pytest.mark.parametrize(
    "selector, message",
    [
        ('{job=~".*"}', "would match every series"),
        ('x{job=~"("}', "invalid regular expression"),
        ("x{job}", "cannot read the label matcher"),
        ("rate(x[5m])", "not a series selector"),
        ('x{a="1" b="2"}', "expected ','"),
    ],
)
def test_bad_selectors_say_why(selector, message):
    with pytest.raises(ValueError, match=message):
        exposition.Selector(selector)


def test_aggregations_follow_promql():
    assert exposition.aggregate([1.0, 2.0, 6.0], "sum") == 9.0
    assert exposition.aggregate([1.0, 2.0, 6.0], "avg") == 3.0
    assert exposition.aggregate([1.0, math.nan, 6.0], "max") == 6.0  # max skips NaN
    assert exposition.aggregate([1.0, math.nan, 6.0], "min") == 1.0
    assert math.isnan(exposition.aggregate([1.0, math.nan], "sum"))
    assert exposition.aggregate([], "count") == 0.0
    assert exposition.aggregate([], "sum") is None


def test_rates_treat_a_decrease_as_a_reset():
    before = [["c", {"s": "steady"}, 100.0, None], ["c", {"s": "reset"}, 500.0, None]]
    after = [
        ["c", {"s": "steady"}, 130.0, None],
        ["c", {"s": "reset"}, 20.0, None],
        ["c", {"s": "new"}, 5.0, None],
    ]
    rated, new = exposition.rates(before, after, 10.0)
    assert sorted((labels["s"], rate) for _, labels, rate in rated) == [
        ("reset", 2.0),
        ("steady", 3.0),
    ]
    assert new == 1


def test_histogram_quantile_interpolates_as_prometheus():
    buckets = [(0.05, 1.0), (0.1, 3.0), (0.5, 5.0), (1.0, 6.0), (math.inf, 7.0)]
    assert exposition.histogram_quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * 0.25)
    assert exposition.histogram_quantile(0.99, buckets) == 1.0  # in +Inf: the highest bound
    assert exposition.histogram_quantile(0.1, buckets) == pytest.approx(0.05 * 0.7)
    assert math.isnan(exposition.histogram_quantile(0.5, buckets[:-1]))  # no +Inf bucket
    assert math.isnan(exposition.histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))


# --------------------------------------------------------------------------- hostile bodies


def test_a_megabytes_long_line_is_read_in_linear_time():
    huge = "x" * 8_000_000
    text = f'big{{v="{huge}\\"\\\\"}} 1\nsmall 2\n'
    started = time.process_time()
    parsed = exposition.parse_exposition(text)
    assert parsed["samples"][0][1]["v"] == huge + '"\\'
    skipped = exposition.select(text, exposition.Selector("small"))
    assert [s[0] for s in skipped["samples"]] == ["small"]
    # a backtracking regex would take minutes here; linear takes well under a second per MB
    assert time.process_time() - started < 30


def test_millions_of_series_stop_at_max_series():
    text = "".join(f's{{i="{i}"}} 1\n' for i in range(2_000_000))
    with pytest.raises(ValueError, match="more than 1000000 samples"):
        exposition.select(text, exposition.Selector("other"), max_samples=1_000_000)
    kept = exposition.select(text, exposition.Selector('s{i="7"}'), max_samples=3_000_000)
    assert kept["count"] == 2_000_000 and len(kept["samples"]) == 1


# ------------------------------------------------------------------------- real endpoints


class Endpoint:
    """A loopback HTTP server whose GET /metrics answers what `respond()` returns:
    (status, headers, body bytes). Every answer is kept in `served`."""

    def __init__(self, respond: Callable[[], tuple[int, dict, bytes]]):
        self.respond = respond
        self.served: list[bytes] = []
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                status, headers, body = endpoint.respond()
                endpoint.served.append(body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"


@contextmanager
def endpoint(respond: Callable[[], tuple[int, dict, bytes]]) -> Iterator[Endpoint]:
    served = Endpoint(respond)
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()
        thread.join()


TEXT = {"Content-Type": "text/plain; version=0.0.4"}


def counter_body(values: dict[str, float]) -> bytes:
    lines = ["# TYPE jobs_total counter"]
    lines += [f'jobs_total{{queue="{queue}"}} {value!r}' for queue, value in values.items()]
    return ("\n".join(lines) + "\n").encode()


def test_counter_rate_over_the_window_is_the_served_increase(tmp_path):
    """Each scrape sees the counters grown by a known step: the rate must be that step over
    the window the module measured (both scrapes' midpoints), exactly."""
    steps = {"a": 40.0, "b": 7.0}
    scrapes = iter(range(100))

    def respond():
        n = next(scrapes)
        return 200, TEXT, counter_body({q: 1000 + n * step for q, step in steps.items()})

    with endpoint(respond) as served:
        result = run(url=served.url, select="jobs_total", rate=True, sample="300ms", by=["queue"])
    assert len(served.served) == 2
    window = result["facts"]["window"]
    assert window >= 0.3
    measured = result["measurements"]
    assert measured["value_a"] == pytest.approx(40.0 / window, rel=1e-2)
    assert measured["value_b"] == pytest.approx(7.0 / window, rel=1e-2)
    assert measured["value"] == pytest.approx(47.0 / window, rel=1e-2)
    assert result["facts"]["groups"] == {"value_a": {"queue": "a"}, "value_b": {"queue": "b"}}
    assert result["facts"]["promql"] == "sum by (queue) (rate(jobs_total[0.3s]))"


def test_counter_reset_mid_window_counts_from_zero():
    answers = iter([{"a": 5000.0, "b": 10.0}, {"a": 12.0, "b": 25.0}])
    with endpoint(lambda: (200, TEXT, counter_body(next(answers)))) as served:
        result = run(url=served.url, select="jobs_total", rate=True, sample="200ms", by=["queue"])
    window = result["facts"]["window"]
    assert result["measurements"]["value_a"] == pytest.approx(12.0 / window, rel=1e-2)
    assert result["measurements"]["value_b"] == pytest.approx(15.0 / window, rel=1e-2)
    assert result["facts"]["resets"] == 1


def test_gzip_and_openmetrics_answers():
    body = (FIXTURES / "prometheus_client_openmetrics.txt").read_bytes()
    headers = {
        "Content-Type": "application/openmetrics-text; version=1.0.0; charset=utf-8",
        "Content-Encoding": "gzip",
    }
    with endpoint(lambda: (200, headers, gzip.compress(body))) as served:
        result = run(
            url=served.url,
            select='http_request_duration_seconds_bucket{handler="/api"}',
            quantile=0.5,
            sample="0s",
        )
        total = run(url=served.url, select='http_requests_total{code=~"2..|5.."}', sample="0s")
    assert result["facts"]["format"] == "openmetrics"
    assert result["measurements"]["value"] == pytest.approx(0.2)
    assert total["measurements"]["value"] == 1030.0 and total["measurements"]["series"] == 2


def test_a_gzip_bomb_stops_at_max_body():
    bomb = gzip.compress(b"a 1\n" * 5_000_000)  # 20 MB unpacked from a few KB
    with endpoint(lambda: (200, {**TEXT, "Content-Encoding": "gzip"}, bomb)) as served:
        result = run(url=served.url, select="a", max_body="1MB", sample="0s")
    assert result["measurements"]["success"] == 0
    assert "unpacks to more than max_body" in result["failures"][0]


def test_bad_utf8_is_read_with_replacement_characters():
    body = b'app_up{name="caf\xe9"} 1\nother 2\n'
    with endpoint(lambda: (200, TEXT, body)) as served:
        result = run(url=served.url, select='app_up{name=~"caf.*"}', sample="0s")
    assert result["measurements"]["value"] == 1.0


@pytest.mark.parametrize(
    "respond, reason",
    [
        (lambda: (500, TEXT, b"boom"), "server returned HTTP status 500"),
        (
            lambda: (200, TEXT, b"<html>\n<h1>hello</h1>\n"),
            "invalid exposition: line 1: no metric name",
        ),
        (lambda: (200, TEXT, b"x 1\n" * 300_000), "the body is larger than max_body"),
    ],
)
def test_a_failed_scrape_is_a_failure_with_the_reason(respond, reason):
    with endpoint(respond) as served:
        result = run(url=served.url, select="x", sample="0s", max_body="1MB")
    assert result["measurements"]["success"] == 0
    assert reason in result["failures"][0]


def test_an_endpoint_that_is_down_is_a_failure():
    url = f"http://127.0.0.1:{closed_port_number()}/metrics"
    result = run(url=url, select="up", sample="0s")
    assert result["failures"] == [f"GET {url}: connection refused"]


def test_no_matching_series_is_unknown_but_count_is_zero():
    with endpoint(lambda: (200, TEXT, b"present 1\n")) as served:
        with pytest.raises(RuntimeError, match="absent at .* matches no series"):
            run(url=served.url, select="absent", sample="0s")
        counted = run(url=served.url, select="absent", aggregate="count", sample="0s")
    assert counted["measurements"]["value"] == 0.0


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory) -> Iterator[str]:
    with running_pushgateway(tmp_path_factory.mktemp("pushgateway")) as url:
        for instance, values in {"i1": (3, 10), "i2": (5, 20), "i3": (9, 30)}.items():
            body = (
                "# TYPE queue_depth gauge\n"
                f'queue_depth{{queue="mail"}} {values[0]}\n'
                f'queue_depth{{queue="sms"}} {values[1]}\n'
            )
            request = urllib.request.Request(
                f"{url}/metrics/job/worker/instance/{instance}", data=body.encode(), method="PUT"
            )
            urllib.request.urlopen(request, timeout=10).read()
        yield url + "/metrics"


@pytest.mark.parametrize(
    "aggregate, by, value, groups",
    [
        ("sum", [], 77.0, {}),
        ("avg", [], 77.0 / 6, {}),
        ("max", ["queue"], 30.0, {"value_mail": 9.0, "value_sms": 30.0}),
        ("min", ["instance"], 3.0, {"value_i1": 3.0, "value_i2": 5.0, "value_i3": 9.0}),
        ("count", ["queue"], 6.0, {"value_mail": 3.0, "value_sms": 3.0}),
    ],
)
def test_pushed_values_read_back_aggregated(pushgateway, aggregate, by, value, groups):
    result = run(
        url=pushgateway, select='queue_depth{job="worker"}', aggregate=aggregate, by=by, sample="0s"
    )
    measured = result["measurements"]
    assert measured["value"] == pytest.approx(value)
    assert {k: v for k, v in measured.items() if k.startswith("value_")} == groups
    mail = run(url=pushgateway, select='queue_depth{queue="mail", instance!~"i[12]"}', sample="0s")
    assert mail["measurements"]["value"] == 9.0 and mail["measurements"]["series"] == 1


def test_node_exporter_and_alertmanager_metrics(tmp_path):
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    (textfiles / "app.prom").write_text(
        'app_ready{component="db"} 1\napp_ready{component="web"} 0\n'
    )
    with running_node_exporter(tmp_path / "ne", textfiles) as url:
        ready = run(url=url + "/metrics", select="app_ready", aggregate="min", sample="0s")
        scrapes = run(url=url + "/metrics", select="go_goroutines", sample="0s")
    assert ready["measurements"]["value"] == 0.0 and ready["measurements"]["series"] == 2
    assert scrapes["measurements"]["value"] >= 1
    with running_alertmanager(tmp_path / "am", HOOK_ROUTE + "receivers:\n- name: hook\n") as url:
        result = run(
            url=url + "/metrics", select="alertmanager_build_info", aggregate="count", sample="0s"
        )
        sent = run(
            url=url + "/metrics",
            select="alertmanager_http_requests_in_flight",
            sample="0s",
        )
    assert result["measurements"]["value"] == 1.0
    assert sent["measurements"]["success"] == 1


# ------------------------------------------------------------------- through checkrun, SSH


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[SSHServer]:
    if not sshd_available():
        pytest.fail("sshd is missing: scripts/test.sh installs openssh-server")
    with running_sshd(tmp_path_factory.mktemp("sshd-prometheus"), [SSH_ADDRESS]) as server:
        yield server


def _playbook(tmp_path: Path, host: str, counter_url: str, pushgateway: str, down: str) -> Path:
    checks = [
        {
            "name": "jobs per second",
            "prometheus": {
                "url": counter_url,
                "select": "jobs_total",
                "rate": True,
                "sample": "500ms",
            },
            "warn": 1000000,
        },
        {
            "name": "mail queue",
            "prometheus": {
                "url": pushgateway,
                "select": 'queue_depth{queue="mail"}',
                "aggregate": "max",
            },
            "crit": 5,
        },
        {"name": "down", "prometheus": {"url": down, "select": "up"}},
        {"name": "absent", "prometheus": {"url": pushgateway, "select": "no_such_metric"}},
    ]
    path = tmp_path / "p.yml"
    path.write_text(json.dumps([{"name": "prom", "hosts": host, "checks": checks}]))
    return path


@pytest.mark.parametrize("transport", ["local", "ssh"])
def test_checkrun_runs_the_module(tmp_path, pushgateway, transport, request):
    scrapes = iter(range(100))
    with endpoint(lambda: (200, TEXT, counter_body({"a": 10.0 * next(scrapes)}))) as served:
        down = f"http://127.0.0.1:{closed_port_number()}/metrics"
        extra: list[str] = []
        host = "localhost"
        if transport == "ssh":
            sshd = request.getfixturevalue("sshd")
            inventory = tmp_path / "hosts.ini"
            inventory.write_text(
                f"target ansible_host={SSH_ADDRESS} ansible_port={sshd.port} ansible_user={sshd.user} "
                f"ansible_ssh_private_key_file={sshd.client_key}\n"
            )
            known = sshd.write_known_hosts(tmp_path / "known_hosts")
            extra = ["-i", str(inventory), "--known-hosts", str(known)]
            host = "target"
        report = tmp_path / "report.json"
        done = run_checkrun(
            _playbook(tmp_path, host, served.url, pushgateway, down), *extra, "-r", f"json:{report}"
        )
    assert report.exists(), done.stderr
    checks = {c["name"]: c for c in json.loads(report.read_text())["hosts"][0]["checks"]}
    rate = checks["jobs per second"]
    assert rate["status"] == "OK", rate
    assert rate["measurements"]["value"] == pytest.approx(10.0 / rate["facts"]["window"], rel=1e-2)
    assert (
        checks["mail queue"]["status"] == "CRITICAL"
        and checks["mail queue"]["measurements"]["value"] == 9
    )
    assert checks["down"]["status"] == "CRITICAL"
    assert "connection refused" in checks["down"]["message"]
    assert checks["absent"]["status"] == "UNKNOWN"
    assert "no_such_metric" in checks["absent"]["message"]
    assert done.returncode == 2


def test_examples_load_as_a_playbook(tmp_path):
    examples = yaml.safe_load(catalog.get("prometheus").examples)
    playbook = tmp_path / "examples.yml"
    playbook.write_text(yaml.safe_dump([{"name": "x", "hosts": "localhost", "checks": examples}]))
    checks = load_playbook(str(playbook)).plays[0].checks
    assert [check.module for check in checks] == ["prometheus"] * len(examples) and len(checks) >= 4


def test_a_selector_that_reaches_the_target_unchecked_is_unknown_not_a_failure():
    """The control node refuses it (test_a_bad_selector_is_bad_input_with_its_place); a
    batch built elsewhere still gets an error (UNKNOWN) before any scrape, not a failure."""
    args = dict(make_args(url="http://127.0.0.1:1/metrics", select="up", sample="0s"))
    args["select"] = '{a=~".*"}'
    with pytest.raises(ValueError, match="would match every series"):
        prometheus.run(args, CheckContext("0.1", 10.0, None))


PYTHON36 = next(iter(sorted(Path.home().glob(".pyenv/versions/3.6.*/bin/python3"))), None)
BOOTSTRAP = "import sys,zlib;exec(zlib.decompress(sys.stdin.buffer.read()))"


@pytest.mark.skipif(PYTHON36 is None, reason="no Python 3.6 interpreter on this machine")
def test_the_shipped_batch_runs_on_python36():
    """The module as a batch ships it, on an old interpreter: a counter rated over the shared
    window, and a gzip OpenMetrics histogram read as a quantile."""
    scrapes = iter(range(100))
    body = gzip.compress((FIXTURES / "prometheus_client_openmetrics.txt").read_bytes())
    om = {"Content-Type": "application/openmetrics-text; version=1.0.0", "Content-Encoding": "gzip"}
    rising = endpoint(lambda: (200, TEXT, counter_body({"a": 3.0 * next(scrapes)})))
    with rising as counter, endpoint(lambda: (200, om, body)) as histogram:
        checks = [
            {"url": counter.url, "select": "jobs_total", "rate": True, "sample": 0.3},
            {
                "url": histogram.url,
                "select": "http_request_duration_seconds_bucket",
                "quantile": 0.5,
            },
        ]
        batch = {
            "version": 1,
            "options": {"psutil": False, "nice": 0},
            "checks": [
                {"id": str(n), "module": "prometheus", "args": make_args(**given), "window": 0.3}
                for n, given in enumerate(checks)
            ],
        }
        sources = catalog.batch_sources(["prometheus"])
        program = f"{catalog.batch_runner_source()}\n_main({sources!r}, {json.dumps(batch)!r})\n"
        done = subprocess.run(
            [str(PYTHON36), "-c", BOOTSTRAP],
            input=zlib.compress(program.encode()),
            capture_output=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    line = next(x for x in done.stdout.decode().splitlines() if x.startswith("__CHECKRUN_RESULT__"))
    report = json.loads(line[len("__CHECKRUN_RESULT__") :])
    assert report["python"].startswith("3.6.")
    rated, quantile = (entry["result"] for entry in report["results"])
    assert rated["measurements"]["value"] == pytest.approx(3.0 / rated["facts"]["window"], rel=1e-2)
    assert quantile["measurements"]["value"] == pytest.approx(0.2)


def test_quantile_per_group_and_one_scrape_without_rate():
    body = (FIXTURES / "prometheus_client_openmetrics.txt").read_bytes()
    om = {"Content-Type": "application/openmetrics-text; version=1.0.0"}
    with endpoint(lambda: (200, om, body)) as served:
        result = run(
            url=served.url,
            select="http_request_duration_seconds_bucket",
            quantile=0.5,
            by=["handler"],
        )
    assert len(served.served) == 1  # a gauge reading scrapes once, at the window's end
    assert result["facts"]["groups"] == {"value__api": {"handler": "/api"}}
    assert result["measurements"]["value__api"] == pytest.approx(0.2)
    assert result["facts"]["promql"] == (
        "histogram_quantile(0.5, sum by (handler, le) (http_request_duration_seconds_bucket))"
    )


def test_basic_auth_reaches_the_endpoint():
    from helpers_net import BASIC_PASSWORD, BASIC_USER, http_server

    with http_server() as server:
        url = server.url("/auth")
        refused = run(url=url, select="welcome", sample="0s")
        # the server answers "welcome" without a value: the parser names what is missing
        let_in = run(
            url=url, select="welcome", sample="0s", username=BASIC_USER, password=BASIC_PASSWORD
        )
    assert "server returned HTTP status 401" in refused["failures"][0]
    assert "invalid exposition: line 1: expected a value" in let_in["failures"][0]


def test_https_with_a_private_ca(tmp_path):
    from helpers_net import http_server, make_pki, server_tls_context

    pki = make_pki(tmp_path)
    with http_server(server_tls_context(pki.server_cert, pki.server_key)) as server:
        url = server.url("/metrics")
        trusted = run(url=url, select="jobs_total", sample="0s", ca_file=str(pki.ca_cert))
        untrusted = run(url=url, select="jobs_total", sample="0s")
    assert trusted["measurements"]["value"] > 0 and trusted["measurements"]["success"] == 1
    assert "TLS certificate verification failed" in untrusted["failures"][0]


def test_a_bad_selector_is_bad_input_with_its_place(tmp_path):
    from helpers import validate_text

    done = validate_text(
        tmp_path,
        "- name: p\n"
        "  hosts: localhost\n"
        "  checks:\n"
        "    - name: s\n"
        "      prometheus: {url: 'http://127.0.0.1:9/metrics', select: 'rate(up[5m])'}\n"
        "    - name: r\n"
        "      prometheus: {url: 'http://127.0.0.1:9/metrics', select: 'up{job=~\"(a\"}'}\n",
    )
    assert done.returncode == 5
    assert "p.yml:5:" in done.stderr and "is not a series selector" in done.stderr
    assert "p.yml:7:" in done.stderr and "not a valid regular expression" in done.stderr
    assert "Traceback" not in done.stderr


def test_only_a_rate_check_asks_for_a_sampling_window():
    """A gauge is read in one scrape at the window's end: it must not make the batch wait."""
    from checkrunner.transport.payload import BatchCheck

    gauge = make_args(url="http://127.0.0.1:9/metrics", select="up", sample="5s")
    counter = make_args(url="http://127.0.0.1:9/metrics", select="c", rate=True, sample="5s")
    assert BatchCheck("1", "prometheus", gauge, 10.0).window == 0.0
    assert BatchCheck("2", "prometheus", counter, 10.0).window == 5.0
    assert BatchCheck("3", "cpu", {"sample": 2.0}, 10.0).window == 2.0


HISTOGRAM_BODY = b"""# TYPE lat_seconds histogram
lat_seconds_bucket{handler="/a",le="0.01"} 3
lat_seconds_bucket{handler="/a",le="0.1"} 17
lat_seconds_bucket{handler="/a",le="0.5"} 40
lat_seconds_bucket{handler="/a",le="2.5"} 44
lat_seconds_bucket{handler="/a",le="+Inf"} 45
lat_seconds_bucket{handler="/b",le="0.01"} 0
lat_seconds_bucket{handler="/b",le="0.1"} 9
lat_seconds_bucket{handler="/b",le="0.5"} 9
lat_seconds_bucket{handler="/b",le="2.5"} 30
lat_seconds_bucket{handler="/b",le="+Inf"} 31
# TYPE reqs gauge
reqs{code="200",handler="/a"} 120
reqs{code="500",handler="/a"} 7
reqs{code="503",handler="/b"} 2.5
reqs{code="200",handler="/b"} 64
"""


def test_results_equal_a_real_prometheus_servers_on_the_same_endpoint(tmp_path):
    """The real Prometheus scrapes the endpoint the module reads; the PromQL the module says
    its value equals (facts.promql) gives the same number on the server."""
    from prometheus_servers import query, running_prometheus

    with endpoint(lambda: (200, TEXT, HISTOGRAM_BODY)) as served:
        target = served.url.split("/")[2]
        scrape = f"  - job_name: fixture\n    static_configs:\n      - targets: ['{target}']\n"
        with running_prometheus(tmp_path / "prometheus", scrape) as server:
            deadline = time.monotonic() + 60
            while not query(server, "lat_seconds_bucket") and time.monotonic() < deadline:
                time.sleep(0.2)
            cases = [
                {"select": "lat_seconds_bucket", "quantile": q} for q in (0.05, 0.5, 0.8, 0.99)
            ]
            cases += [
                {"select": 'lat_seconds_bucket{handler="/b"}', "quantile": 0.5},
                {"select": 'reqs{code=~"5.."}', "by": ["handler"]},
                {"select": 'reqs{handler!~"/b"}', "aggregate": "count"},
                {"select": "reqs", "aggregate": "avg"},
                {"select": 'reqs{code!="200"}', "aggregate": "max", "by": ["code"]},
            ]
            for given in cases:
                result = run(url=served.url, **given)
                answer = query(server, result["facts"]["promql"])
                theirs = {
                    tuple(v for k, v in sorted(a["metric"].items())): float(a["value"][1])
                    for a in answer
                }
                ours = {
                    tuple(labels.values()): result["measurements"][name]
                    for name, labels in result["facts"].get("groups", {}).items()
                } or {(): result["measurements"]["value"]}
                assert ours.keys() == theirs.keys(), (given, answer)
                for key, value in ours.items():
                    assert value == pytest.approx(theirs[key], rel=1e-9), (given, answer)
