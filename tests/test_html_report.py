"""The HTML report (-r html:PATH and watch's /), opened in real headless Chromium.

The fleet: two local hosts (one named with markup) and one that refuses SSH, two plays (one
named with a </script>), a check named with markup and U+2028, a command whose stderr is a
script, tags with markup. Three real runs write a real state database; their values climb
through the static thresholds so the history has a line to draw.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from chromium import CHROMIUM, Chromium, png_colours
from helpers import run_checkrun, wait_for
from helpers_net import make_pki
from prometheus_servers import get
from watching import WatchProcess

from checkrunner.report.html import embed_json, render_page
from checkrunner.results import (
    BaselineBound,
    CheckResult,
    HostResult,
    RunResult,
    Status,
    Thresholds,
)
from checkrunner.serve.http import StatusServer
from checkrunner.serve.status import WatchStatus
from checkrunner.state.db import open_state
from checkrunner.state.history import (
    _FIRST_RAW,
    _HOURLY_IN_WINDOW,
    _STATEMENTS,
    HistoryStore,
    Retention,
    SeriesKey,
)
from checkrunner.state.keys import CheckKey

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs chromium")

HOSTILE_PLAY = "web </script><script>window.pwned=1</script>"
HOSTILE_CHECK = "<img src=x onerror=window.pwned=2> disk\u2028x"
HOSTILE_HOST = "<svg/onload=window.pwned=4>"
HOSTILE_TAG = "<b>t</b>"
HOSTILE_STDERR = "</script><script>window.pwned=3</script><!--"

PLAYBOOK = f"""
- name: {json.dumps(HOSTILE_PLAY)}
  hosts: all
  score: {{weights: {{queue depth: 0.5, memory used: 0.5}}, warn: 70, crit: 90}}
  checks:
    - name: queue depth
      command: {{cmd: "cat {{{{ value_file }}}}"}}
      warn: 50
      crit: 80
      tags: [queue]
    - name: {json.dumps(HOSTILE_CHECK)}
      disk: /
      warn: 99.9
      tags: [{json.dumps(HOSTILE_TAG)}, disk]
    - name: memory used
      memory: {{}}
      crit: 0.01
- name: batch
  hosts: all
  checks:
    - name: hostile stderr
      command: {{cmd: {json.dumps(f"echo '{HOSTILE_STDERR}' >&2; exit 3")}, shell: true}}
"""

VALUES = {"alpha": (10, 60, 90), "beta": (5, 30, 45)}  # queue depth, run by run


def inventory(tmp: Path, lost_port: int) -> str:
    return f"""
all:
  hosts:
    alpha: {{ansible_connection: local, value_file: {tmp / "alpha"}}}
    {json.dumps(HOSTILE_HOST)}: {{ansible_connection: local, value_file: {tmp / "beta"}}}
    lost: {{ansible_host: 127.0.0.1, ansible_port: {lost_port}, ansible_connection: ssh,
            value_file: /nonexistent}}
"""


def free_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("html")
    (tmp / "pb.yml").write_text(PLAYBOOK)
    (tmp / "inv.yml").write_text(inventory(tmp, free_closed_port()))
    state = tmp / "state.db"
    for run in range(3):
        (tmp / "alpha").write_text(f"{VALUES['alpha'][run]}\n")
        (tmp / "beta").write_text(f"{VALUES['beta'][run]}\n")
        done = run_checkrun(
            tmp / "pb.yml",
            "-i",
            tmp / "inv.yml",
            "--state",
            state,
            "-r",
            f"html:{tmp / 'report.html'}",
            "-r",
            f"json:{tmp / 'report.json'}",
        )
        assert done.returncode == 2, done.stderr
    done = run_checkrun(
        tmp / "pb.yml", "-i", tmp / "inv.yml", "--no-state", "-r", f"html:{tmp / 'bare.html'}"
    )
    assert done.returncode == 2, done.stderr
    return {"dir": tmp, "json": json.loads((tmp / "report.json").read_text())}


@pytest.fixture(scope="module")
def page(fleet) -> Chromium:
    with Chromium() as browser:
        browser.open((fleet["dir"] / "report.html").as_uri())
        browser.wait_for("document.body.getAttribute('data-complete')")
        yield browser


def js(value: str) -> str:
    return json.dumps(value)


def cell_button(host: str, check: str) -> str:
    """A JS expression for the grid cell of `check` on `host`."""
    return (
        f"(function(){{var row=[...document.querySelectorAll('#grid tr.host-row')]"
        f".find(r=>r.getAttribute('data-host')==={js(host)});"
        f"var i=[...document.querySelectorAll('#grid thead th')]"
        f".findIndex(th=>th.querySelector('.check')&&th.querySelector('.check').textContent==={js(check)});"
        f"return row.children[i].querySelector('button');}})()"
    )


def reset_filters(page: Chromium) -> None:
    page.evaluate(
        "(() => {document.querySelectorAll('#status-filter input').forEach(b=>{if(!b.checked){b.click();}});"
        "for (const id of ['play-filter','tag-filter']) {const s=document.getElementById(id);"
        "s.value='';s.dispatchEvent(new Event('change'));}"
        "const h=document.getElementById('host-filter');h.value='';"
        "h.dispatchEvent(new Event('input'));})()"
    )
    page.wait_for("document.querySelectorAll('#grid tr.host-row').length === 3")


def test_grid_shows_every_status_as_text_and_icon(fleet, page):
    report = fleet["json"]
    shown = page.evaluate(
        "[...document.querySelectorAll('#grid tr.host-row')].map(r => ["
        "r.getAttribute('data-host'), [...r.querySelectorAll('td')].map(td => "
        "[td.getAttribute('data-status'), td.textContent])])"
    )
    columns = page.evaluate(
        "[...document.querySelectorAll('#grid thead th .check')].map(e => e.textContent)"
    )
    assert [host for host, _ in shown] == ["alpha", HOSTILE_HOST, "lost"]
    assert HOSTILE_CHECK in columns and "host score" in columns
    for (host, cells), expected in zip(shown, report["hosts"]):
        assert host == expected["host"]
        if not expected["reachable"]:
            assert cells[0][0] == "UNREACHABLE"
            assert "refused" in cells[0][1] and "UNREACHABLE" in cells[0][1]
            continue
        by_name = {c["name"]: c["status"] for c in expected["checks"]}
        for name, (status, text) in zip(columns, cells):
            assert status == by_name[name], (host, name)
            word = {"CRITICAL": "CRIT", "WARNING": "WARN", "OK": "OK"}[status]
            icon = {"CRITICAL": "\u2716", "WARNING": "\u25b2", "OK": "\u2713"}[status]
            assert word in text and icon in text, (host, name, text)
    # alpha's queue depth went 10, 60, 90 over the three runs: CRITICAL now, with its value
    assert shown[0][1][columns.index("queue depth")] == ["CRITICAL", "\u2716 CRIT90"]


def test_unreachable_host_listed_with_its_reason(page):
    rows = page.evaluate(
        "[...document.querySelectorAll('#unreachable tbody tr')].map(r => r.textContent)"
    )
    assert len(rows) == 1 and rows[0].startswith("lost") and "refused" in rows[0]


def test_hosts_ranked_by_score(fleet, page):
    ranking = page.evaluate(
        "[...document.querySelectorAll('#score-table tbody tr')].map(r => "
        "[...r.children].map(c => c.textContent))"
    )
    scores = {
        h["host"]: c["value"]
        for h in fleet["json"]["hosts"]
        for c in h["checks"]
        if c["module"] == "score"
    }
    assert [row[1] for row in ranking] == sorted(scores, key=lambda h: -scores[h])
    assert [row[0] for row in ranking] == ["1", "2"]
    assert ranking[0][2] == HOSTILE_PLAY and ranking[0][4].endswith("OK")


def test_hostile_strings_are_text_never_markup(fleet, page):
    html = (fleet["dir"] / "report.html").read_text()
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.querySelectorAll('img, #grid svg, b, script').length") == 3
    assert page.evaluate("document.querySelectorAll('script:not([type])').length") == 1
    # the strings are shown as they are, in text
    body = page.evaluate("document.body.textContent")
    for hostile in (HOSTILE_PLAY, HOSTILE_CHECK, HOSTILE_HOST):
        assert hostile in body
    assert HOSTILE_TAG in page.evaluate("document.getElementById('tag-filter').textContent")
    # nothing in the file can close the data blocks or start a comment
    for data in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S):
        assert "<" not in data and "\u2028" not in data
    assert html.count("</script>") == 3
    page.evaluate(f"{cell_button('alpha', 'hostile stderr')}.click()")
    message = page.wait_for("document.querySelector('figure.chart p.message')?.textContent")
    assert HOSTILE_STDERR in message
    assert page.evaluate("window.pwned") is None
    page.evaluate(f"{cell_button('alpha', 'hostile stderr')}.click()")  # closed again


def test_a_chart_is_drawn_when_a_cell_is_opened_with_history_and_thresholds(page):
    assert page.evaluate("document.querySelectorAll('figure.chart').length") == 0
    page.evaluate(f"{cell_button('alpha', 'queue depth')}.click()")
    figure = page.wait_for(
        "(f => f && {host: f.getAttribute('data-host'), check: f.getAttribute('data-check'),"
        " thresholds: [...f.querySelectorAll('line.threshold')].map(l => "
        "[l.getAttribute('class'), +l.getAttribute('data-value')]),"
        " series: f.querySelector('path.series')?.getAttribute('d'),"
        " current: !!f.querySelector('circle.current.s-CRITICAL'),"
        " ticks: [...f.querySelectorAll('rect.tick')].map(t => t.getAttribute('class')),"
        " noHistory: !!f.querySelector('.no-history')})"
        "(document.querySelector('figure.chart'))"
    )
    assert figure["host"] == "alpha" and figure["check"] == "queue depth"
    assert sorted(figure["thresholds"]) == [["threshold crit", 80], ["threshold warn", 50]]
    # the two earlier runs from the state database (10 then 60) and the current value (90)
    assert len(figure["series"].split("L")) == 3
    assert figure["current"] and not figure["noHistory"]
    assert figure["ticks"] == ["tick s-OK", "tick s-WARNING"]
    assert page.evaluate("document.querySelectorAll('figure.chart svg').length") == 1
    # the points climb: y of 10 is below (larger) than y of 60, which is below y of 90
    ys = [float(point.split(",")[1]) for point in figure["series"].lstrip("M").split("L")]
    assert ys[0] > ys[1] > ys[2]
    expanded = f"{cell_button('alpha', 'queue depth')}.getAttribute('aria-expanded')"
    assert page.evaluate(expanded) == "true"
    page.evaluate("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}))")
    assert page.evaluate("document.querySelectorAll('figure.chart').length") == 0
    assert page.evaluate(expanded) == "false"


def test_opening_a_host_draws_a_chart_per_check(page, fleet):
    checks = len(fleet["json"]["hosts"][0]["checks"])
    page.evaluate("document.querySelector('#grid tr.host-row[data-host=alpha] th button').click()")
    charts = page.wait_for("document.querySelectorAll('figure.chart svg.plot').length")
    assert charts == checks == 5
    png = page.screenshot()
    assert len(png_colours(png)) > 8, "the screenshot is (nearly) blank"
    page.evaluate("document.querySelector('#grid tr.host-row[data-host=alpha] th button').click()")
    assert page.evaluate("document.querySelectorAll('figure.chart').length") == 0


def test_filters_by_status_play_host_and_tag(page):
    def rows() -> list[str]:
        return page.evaluate(
            "[...document.querySelectorAll('#grid tr.host-row')].map(r => r.getAttribute('data-host'))"
        )

    def columns() -> list[str]:
        return page.evaluate(
            "[...document.querySelectorAll('#grid thead th .check')].map(e => e.textContent)"
        )

    def choose(select: str, value: str) -> None:
        page.evaluate(
            f"(s => {{s.value = {js(value)}; s.dispatchEvent(new Event('change'));}})"
            f"(document.getElementById({js(select)}))"
        )

    try:
        choose("play-filter", "batch")
        assert columns() == ["hostile stderr"]
        assert rows() == ["alpha", HOSTILE_HOST, "lost"]
        page.evaluate(
            "document.querySelectorAll('#status-filter input').forEach(b => "
            "{if (b.value !== 'OK') b.click();})"
        )
        assert rows() == []  # hostile stderr is CRITICAL everywhere; lost is UNREACHABLE
        choose("play-filter", "")
        choose("tag-filter", HOSTILE_TAG)
        assert columns() == [HOSTILE_CHECK]
        assert rows() == ["alpha", HOSTILE_HOST]
        reset_filters(page)
        choose("tag-filter", "queue")
        page.evaluate(
            "document.querySelectorAll('#status-filter input').forEach(b => "
            "{if (b.value !== 'CRITICAL') b.click();})"
        )
        assert columns() == ["queue depth"] and rows() == ["alpha"]
        reset_filters(page)
        page.evaluate(
            "(h => {h.value = 'SVG/'; h.dispatchEvent(new Event('input'));})"
            "(document.getElementById('host-filter'))"
        )
        page.wait_for("document.querySelectorAll('#grid tr.host-row').length === 1")
        assert rows() == [HOSTILE_HOST]
    finally:
        reset_filters(page)


def test_no_console_errors_and_no_network_request(fleet, page):
    own = (fleet["dir"] / "report.html").as_uri()
    assert page.log.errors == []
    assert [url for url in page.log.requests if url != own] == []
    html = (fleet["dir"] / "report.html").read_text()
    # the only URL in the file is the SVG namespace (an identifier, never fetched)
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}


def test_without_a_state_database_the_chart_says_there_is_no_history(fleet):
    with Chromium() as browser:
        browser.open((fleet["dir"] / "bare.html").as_uri())
        browser.wait_for("document.body.getAttribute('data-complete')")
        browser.evaluate(f"{cell_button('alpha', 'queue depth')}.click()")
        figure = browser.wait_for(
            "(f => f && {note: f.querySelector('.no-history')?.textContent,"
            " series: f.querySelector('path.series')?.getAttribute('d'),"
            " current: !!f.querySelector('circle.current'),"
            " lines: f.querySelectorAll('line.threshold').length})"
            "(document.querySelector('figure.chart'))"
        )
        assert browser.log.errors == []
    assert "No history" in figure["note"] and "--no-state" in figure["note"]
    assert figure.get("series") is None and figure["current"] and figure["lines"] == 2


def bound(level: str, lower: float | None, upper: float | None, warming: bool = False):
    return BaselineBound(
        metric="used_percent",
        level=level,
        method="factor",
        window=604800.0,
        seasonal=None,
        direction="above",
        samples=0 if warming else 2016,
        center=None if warming else 20.0,
        spread=None,
        lower=lower,
        upper=upper,
        warming_up=warming,
        text="1.8 × 7-day mean 20%" if not warming else "",
    )


def test_a_dynamic_baseline_is_drawn_as_a_band(tmp_path):
    now = time.time()
    check = CheckResult(
        host="web1",
        play="p",
        name="memory used",
        module="memory",
        status=Status.WARNING,
        message="12.3% > 11.1%",
        metric="used_percent",
        value=40.0,
        unit="%",
        measurements={"used_percent": 40.0},
        thresholds=Thresholds(warn="90", crit="95"),
    )
    check.baselines = [bound("warn", None, 36.0), bound("crit", 5.0, 50.0)]
    young = CheckResult(
        host="web1",
        play="p",
        name="cpu busy",
        module="cpu",
        status=Status.OK,
        metric="busy",
        value=3.0,
        unit="%",
        measurements={"busy": 3.0},
    )
    young.baselines = [bound("warn", None, None, warming=True)]
    run = RunResult("pb.yml", now - 1, now, [HostResult("web1", checks=[check, young])])
    db = open_state(str(tmp_path / "state.db"))
    for minutes in (50, 40, 30, 20, 10):
        check.value = check.measurements["used_percent"] = 20.0 + minutes / 10
        with db.transaction() as connection:
            HistoryStore(connection).record(run, now - minutes * 60)
    check.value = check.measurements["used_percent"] = 40.0
    page_file = tmp_path / "report.html"
    page_file.write_text(render_page(run, HistoryStore(db.connection), now))
    with Chromium() as browser:
        browser.open(page_file.as_uri())
        browser.evaluate(f"{cell_button('web1', 'memory used')}.click()")
        bands = browser.wait_for(
            "[...document.querySelectorAll('figure.chart rect.band')].map(b => "
            "[b.getAttribute('class'), b.getAttribute('data-lower'), b.getAttribute('data-upper'),"
            " +b.getAttribute('height')])"
        )
        texts = browser.evaluate(
            "[...document.querySelectorAll('figure.chart .band-text')].map(p => p.textContent)"
        )
        points = browser.evaluate(
            "document.querySelector('figure.chart path.series').getAttribute('d').split('L').length"
        )
        browser.evaluate(f"{cell_button('web1', 'memory used')}.click()")
        browser.evaluate(f"{cell_button('web1', 'cpu busy')}.click()")
        warming = browser.wait_for("document.querySelector('figure.chart .band-text')?.textContent")
        no_band = browser.evaluate("document.querySelectorAll('figure.chart rect.band').length")
        assert browser.log.errors == []
    assert [b[:3] for b in bands] == [["band warn", "", "36"], ["band crit", "5", "50"]]
    assert all(b[3] > 1 for b in bands)
    assert texts == ["warn baseline: 1.8 × 7-day mean 20%", "crit baseline: 1.8 × 7-day mean 20%"]
    assert points == 6  # five samples from the database and the current value
    assert "baseline warming up" in warming and no_band == 0


def test_embedded_json_cannot_close_its_script_block():
    hostile = "</script><!--<script>\u2028\u2029\ud800&>"
    text = embed_json({"k": hostile, hostile: [1]})
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text and "\ud800" not in text
    assert json.loads(text) == {"k": hostile, hostile: [1]}


def test_history_is_read_in_bounded_buckets(tmp_path):
    """A day of 10-second samples: at most HISTORY_POINTS buckets, min/avg/max exact; the
    part older than the raw retention comes from the hourly rows."""
    db = open_state(str(tmp_path / "state.db"))
    retention = Retention(raw=6 * 3600.0, hourly=90 * 86400.0)
    check = CheckResult(
        host="h",
        play="p",
        name="c",
        module="command",
        status=Status.OK,
        metric="value",
        measurements={"value": 0.0},
    )
    run = RunResult("pb.yml", 0, 0, [HostResult("h", checks=[check])])
    start = 1_800_000_000.0 // 3600 * 3600
    with db.transaction() as connection:
        store = HistoryStore(connection, retention)
        for step in range(8640):
            check.measurements["value"] = float(step % 100)
            store.record(run, start + step * 10)
    now = start + 86400
    with db.transaction() as connection:
        HistoryStore(connection, retention).upkeep(now)
    hourly = db.connection.execute("SELECT COUNT(*) FROM samples_hourly").fetchone()[0]
    assert hourly >= 17  # what is older than 6 hours is folded into hours
    key = SeriesKey(CheckKey("h", "p", "c"), "value")
    found = HistoryStore(db.connection).buckets([key], now - 86400, now, 48)[key]
    # Half-hour buckets would be finer than the hourly rows: the buckets are whole hours,
    # 18 whose raw samples are pruned and 6 whose raw samples are kept, all hourly rows.
    assert len(found) == 24 and [b.count for b in found] == [360] * 24
    assert sum(b.count for b in found) == 8640
    assert min(b.minimum for b in found) == 0 and max(b.maximum for b in found) == 99
    assert all(abs(b.average - 49.5) < 5 for b in found)
    assert [b.at for b in found] == sorted(b.at for b in found)
    # each statement reads one primary-key range of the series, never a scan
    for sql, params in (
        (_HOURLY_IN_WINDOW, (1, now - 86400, now)),
        (_FIRST_RAW, (1, now - 86400, now)),
        (_STATEMENTS["sqlite"].raw_slots, (1, now - 86400, 1800.0, 48, now)),
    ):
        plan = " ".join(
            row[-1] for row in db.connection.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        )
        assert re.search(r"USING PRIMARY KEY \(series=\? AND (at|hour)>\? AND", plan), plan
        assert not re.search(r"SCAN (samples|series)", plan), plan


def test_watch_serves_the_report_of_the_current_round_at_root(tmp_path):
    (tmp_path / "value").write_text("7\n")
    (tmp_path / "pb.yml").write_text(
        f"""
- name: live
  hosts: localhost
  checks:
    - name: queue depth
      command: {{cmd: "cat {tmp_path / "value"}"}}
      interval: 1s
      warn: 50
      crit: 80
"""
    )
    watch = WatchProcess(tmp_path / "pb.yml", "--state", tmp_path / "state.db")
    try:
        base = watch.wait_event("listening")["message"].rsplit("/", 1)[0]

        def page_text() -> str:
            with urllib.request.urlopen(base + "/", timeout=10) as answer:
                assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
                return answer.read().decode()

        wait_for(lambda: '"value":"7"' in page_text(), "the first round on /")
        (tmp_path / "value").write_text("90\n")
        wait_for(lambda: '"value":"90"' in page_text(), "the new round on /", timeout=60)
        with Chromium() as browser:
            browser.open(base + "/")
            browser.evaluate(f"{cell_button('localhost', 'queue depth')}.click()")
            figure = browser.wait_for(
                "(f => f && {status: document.querySelector('#grid td.cell').getAttribute('data-status'),"
                " points: f.querySelector('path.series')?.getAttribute('d').split('L').length,"
                " lines: f.querySelectorAll('line.threshold').length,"
                " summary: document.getElementById('summary').textContent})"
                "(document.querySelector('figure.chart'))"
            )
            assert browser.log.errors == []
            assert [url for url in browser.log.requests if url != base + "/"] == []
        assert figure["status"] == "CRITICAL" and figure["lines"] == 2
        assert figure["points"] >= 3  # earlier rounds from the history, and this one
        assert "live, as of" in figure["summary"]
    finally:
        assert watch.stop() == 0


def test_root_is_behind_the_web_configs_tls_and_basic_auth(tmp_path):
    pki = make_pki(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret pass", bcrypt.gensalt(rounds=10)).decode()
    config = tmp_path / "web.yml"
    config.write_text(
        f"tls_server_config:\n  cert_file: {pki.server_cert.name}\n"
        f"  key_file: {pki.server_key.name}\nbasic_auth_users:\n  ops: {hashed}\n"
    )
    now = time.time()
    check = CheckResult(
        host="db1", play="p", name="memory used", module="memory", status=Status.OK,
        metric="used_percent", value=41.0, unit="%", measurements={"used_percent": 41.0},
    )  # fmt: skip
    db = open_state(str(tmp_path / "state.db"))
    with db.transaction() as connection:
        HistoryStore(connection).record(
            RunResult("pb.yml", now - 60, now - 60, [HostResult("db1", checks=[check])]), now - 60
        )
    status = WatchStatus("pb.yml")
    status.record_host(HostResult("db1", checks=[check]))
    server = StatusServer("127.0.0.1:0", status, str(config), state=db)
    server.start()
    try:
        url = f"https://127.0.0.1:{server.port}/"
        client = ssl.create_default_context(cafile=str(pki.ca_cert))
        assert get(url, context=client)[0] == 401
        assert get(url, auth=("ops", "wrong"), context=client)[0] == 401
        code, page = get(url, auth=("ops", "s3cret pass"), context=client)
        # built once per change of the results: the same page until a host has a new result
        assert get(url, auth=("ops", "s3cret pass"), context=client) == (200, page)
        status.record_host(HostResult("db1", checks=[check]))
        assert get(url, auth=("ops", "s3cret pass"), context=client)[1] != page
    finally:
        server.close()
        db.close()
    assert code == 200
    data = re.search(r'<script type="application/json" id="results-data">(.*?)</script>', page)
    history = re.search(r'<script type="application/json" id="history-data">(.*?)</script>', page)
    results = json.loads(data.group(1))
    assert results["live"] is True and results["hosts"][0]["host"] == "db1"
    assert list(json.loads(history.group(1))) == ["db1\0p\0memory used"]


def test_a_thousand_hosts_keep_only_the_rows_in_view_in_the_page(tmp_path):
    now = time.time()
    hosts = []
    for h in range(1000):
        checks = [
            CheckResult(
                host=f"node{h:04d}", play="p", name=f"check {c:02d}", module="command",
                status=Status.CRITICAL if (h, c) == (999, 7) else Status.OK, metric="value",
                value=float(c), measurements={"value": float(c)}, thresholds=Thresholds(warn="50"),
            )
            for c in range(19)
        ]  # fmt: skip
        checks.append(
            CheckResult(
                host=f"node{h:04d}",
                play="p",
                name="host score",
                module="score",
                status=Status.OK,
                metric="score",
                value=h / 10,
                unit="%",
            )
        )
        hosts.append(HostResult(f"node{h:04d}", checks=checks))
    page_file = tmp_path / "big.html"
    page_file.write_text(render_page(RunResult("pb.yml", now - 5, now, hosts), None, now))
    with Chromium() as browser:
        browser.open(page_file.as_uri())
        state = browser.evaluate(
            "({rows: document.querySelectorAll('#grid tr.host-row').length,"
            " count: document.getElementById('grid').getAttribute('aria-rowcount'),"
            " ranked: document.querySelectorAll('#score-table tbody tr').length,"
            " top: document.querySelector('#score-table tbody td:nth-child(2)').textContent})"
        )
        browser.evaluate(
            "(s => { s.scrollTop = s.scrollHeight; s.dispatchEvent(new Event('scroll')); })"
            "(document.getElementById('grid-scroll'))"
        )
        last = browser.wait_for(
            "[...document.querySelectorAll('#grid tr.host-row')].map(r => r.getAttribute('data-host'))"
            ".includes('node0999') && document.querySelectorAll('#grid tr.host-row').length"
        )
        browser.evaluate(f"{cell_button('node0999', 'check 07')}.click()")
        chart = browser.wait_for(
            "document.querySelector('#detail figure.chart')?.getAttribute('data-host')"
        )
        browser.evaluate("document.getElementById('ranking-more').click()")
        ranked = browser.evaluate("document.querySelectorAll('#score-table tbody tr').length")
        assert browser.log.errors == []
    assert state == {"rows": state["rows"], "count": "1001", "ranked": 25, "top": "node0999"}
    assert state["rows"] < 100 and last < 100  # a window of rows, not 1000
    assert chart == "node0999" and ranked == 1000
