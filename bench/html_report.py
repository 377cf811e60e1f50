#!/usr/bin/env python3
"""HTML report benchmark: 1000 hosts × 20 checks with a day of history, in real Chromium.

In one run it:
- writes a state database with `--hours` (24) of history for every check of every host, one
  sample every `--every` seconds (300: a cron run every 5 minutes; the report folds each
  series into at most HISTORY_POINTS buckets, so a denser history only costs SQL time),
  through HistoryStore.record for the first run (the real series rows) and the same rows'
  INSERT for the rest, folded into their hourly rows as record's rollup keeps them (the
  fixture, not what is measured);
- times building the page (report.html.render_page: the history read and the JSON), median
  of `--runs`, and its history read alone (HistoryStore.buckets over every series);
- opens the page in headless Chromium (the tests' DevTools pipe client) `--runs` times and
  takes the time from navigation start to the grid's first rows painted (the report's own
  performance mark "checkrun-grid-painted", set in the frame after they are in the DOM),
  to the whole grid built (every chunk), and to a chart drawn after a click;
- the floor, in the same browser in the same run: a trivial page of the same size (the same
  bytes inert in a comment, one line of text, the same performance mark after a frame), so
  the ratio says what the report costs over Chromium loading that many bytes.

Run by hand with the project's venv (needs Debian's chromium):
  .venv/bin/python bench/html_report.py [--hosts 1000] [--checks 20] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # chromium.py

from chromium import Chromium  # noqa: E402 - the tests' headless Chromium client

from checkrunner.report.html import render_page  # noqa: E402
from checkrunner.results import (  # noqa: E402
    CheckResult,
    HostResult,
    RunResult,
    Status,
    Thresholds,
)
from checkrunner.state.db import open_state  # noqa: E402
from checkrunner.state.history import FOLD_RAW_INTO_HOURS_SQL, HistoryStore, SeriesKey  # noqa: E402
from checkrunner.state.keys import CheckKey  # noqa: E402

GOAL_FIRST_RENDER = 1.0  # seconds, issue 12
PLAYS = ("system", "services")
UNREACHABLE_EVERY = 97  # one host in 97 refuses SSH
STATUS_WEIGHTS = ((Status.OK, 90), (Status.WARNING, 6), (Status.CRITICAL, 3), (Status.UNKNOWN, 1))


def fleet(hosts: int, checks: int, now: float, rng: random.Random) -> RunResult:
    """The latest run: `hosts` hosts of `checks` checks, statuses mostly OK."""
    run = RunResult("bench/fleet.yml", now - 12.0, now)
    for h in range(hosts):
        name = f"web-{h:04d}.dc{h % 3}.example.org"
        if h % UNREACHABLE_EVERY == UNREACHABLE_EVERY - 1:
            run.hosts.append(
                HostResult(
                    name, reachable=False, reason="timeout", message="connect timed out after 10s"
                )
            )
            continue
        host = HostResult(name)
        for c in range(checks - 1):
            status = rng.choices([s for s, _ in STATUS_WEIGHTS], [w for _, w in STATUS_WEIGHTS])[0]
            value = round(rng.uniform(5, 95), 2)
            host.checks.append(
                CheckResult(
                    host=name,
                    play=PLAYS[c % 2],
                    name=f"check {c:02d}",
                    module="command",
                    status=status,
                    message=f"value={value}",
                    metric="value",
                    value=value,
                    unit="%",
                    measurements={"value": value},
                    thresholds=Thresholds(warn="80", crit="90"),
                    tags=[f"tier{c % 4}"],
                    check_id=f"{c % 2}.{c}",
                )
            )
        score = round(rng.uniform(0, 100), 2)
        host.checks.append(
            CheckResult(
                host=name, play=PLAYS[0], name="host score", module="score",
                status=Status.OK if score < 70 else Status.WARNING, message=f"score {score}%",
                metric="score", value=score, unit="%", measurements={"score": score},
                thresholds=Thresholds(warn="70", crit="90"), check_id="0.score",
            )
        )  # fmt: skip
        run.hosts.append(host)
    return run


def write_history(path: str, run: RunResult, hours: float, every: float, now: float) -> int:
    """`hours` of samples, one per `every` seconds, for every measurement of `run`."""
    db = open_state(path)
    start = now - hours * 3600
    with db.transaction() as connection:
        HistoryStore(connection).record(run, start)
    ids = {
        (host, play, name): ident
        for ident, host, play, name in db.connection.execute(
            "SELECT id, host, play, check_name FROM series"
        )
    }
    series = [(ids[(c.host, c.play, c.name)], c.value or 0.0) for c in run.all_checks()]
    steps = int(hours * 3600 / every)
    # Series by series (each one's rows are adjacent in the primary key): a fast load.
    with db.transaction() as connection:
        for ident, base in series:
            connection.executemany(
                "INSERT OR REPLACE INTO samples (series, at, value, status) VALUES (?, ?, ?, 'OK')",
                [
                    (ident, start + step * every, base + 5 * ((step + ident) % 7))
                    for step in range(1, steps)
                ],
            )
        # The hourly rows that record keeps as it writes, for the samples inserted here.
        connection.execute(FOLD_RAW_INTO_HOURS_SQL)
    written = len(series) * steps
    db.close()
    return written


def median_time(action, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def floor_page(size: int) -> str:
    """A trivial page of `size` bytes: one line of text, the bytes inert in a comment."""
    head = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>floor</title></head><body>"
        "<p>floor</p><script>requestAnimationFrame(function () { setTimeout(function () {"
        " performance.mark('checkrun-grid-painted'); }, 0); });"
        "document.body.setAttribute('data-complete', '1');</script><!--"
    )
    tail = "--></body></html>"
    return head + "x" * max(0, size - len(head) - len(tail)) + tail


PAINTED = (
    "new Promise(done => { const look = () => { const m = performance.getEntriesByName("
    "'checkrun-grid-painted'); if (m.length) done(m[0].startTime); else setTimeout(look, 5); };"
    " look(); })"
)


def first_render(browser: Chromium, url: str) -> tuple[float, float]:
    """Seconds from navigation start to the painted mark and to the whole grid built."""
    browser.open(url)
    painted = browser.evaluate(PAINTED) / 1000
    browser.wait_for("document.body.getAttribute('data-complete')", timeout=120)
    complete = browser.evaluate("performance.now()") / 1000
    return painted, complete


def chart_time(browser: Chromium) -> float:
    return (
        browser.evaluate(
            "(() => { const t = performance.now();"
            " document.querySelector('#grid td.cell button').click();"
            " document.querySelector('figure.chart svg path.series').getAttribute('d');"
            " return performance.now() - t; })()"
        )
        / 1000
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--every", type=float, default=300.0, help="seconds between samples")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    rng = random.Random(12)
    now = time.time()
    run = fleet(args.hosts, args.checks, now, rng)
    with tempfile.TemporaryDirectory(prefix="checkrun-html-bench-") as tmp:
        state = str(Path(tmp) / "state.db")
        started = time.perf_counter()
        samples = write_history(state, run, args.hours, args.every, now)
        print(
            f"history: {samples} samples ({args.hours:g} h every {args.every:g} s) for "
            f"{len(run.all_checks())} checks, written in {time.perf_counter() - started:.1f}s, "
            f"{Path(state).stat().st_size / 1e6:.0f} MB"
        )
        db = open_state(state)
        store = HistoryStore(db.connection)
        keys = [
            SeriesKey(CheckKey(c.host, c.play, c.name), c.metric or "") for c in run.all_checks()
        ]
        store.buckets(keys, now - 86400, now + 1, 48)  # warm-up: the file into the page cache
        read, _ = median_time(lambda: store.buckets(keys, now - 86400, now + 1, 48), args.runs)
        build, page = median_time(lambda: render_page(run, store, now), args.runs)
        db.close()
        report = Path(tmp) / "report.html"
        report.write_text(page, encoding="utf-8")
        size = report.stat().st_size
        floor = Path(tmp) / "floor.html"
        floor.write_text(floor_page(size), encoding="utf-8")
        print(f"page: {size / 1e6:.2f} MB for {len(run.hosts)} hosts x {args.checks} checks")
        print(f"build (render_page):   {build:.3f}s  of which the history read {read:.3f}s")

        painted, complete, floors, charts = [], [], [], []
        with Chromium() as browser:
            first_render(browser, floor.as_uri())  # warm-up: the browser's own first load
            for _ in range(args.runs):
                floors.append(first_render(browser, floor.as_uri())[0])
                shown, built = first_render(browser, report.as_uri())
                painted.append(shown)
                complete.append(built)
                charts.append(chart_time(browser))
            errors = browser.log.errors
        first, base = statistics.median(painted), statistics.median(floors)
        verdict = "met" if first <= GOAL_FIRST_RENDER else "MISSED"
        print(f"chromium, median of {args.runs}:")
        print(
            f"  first render (grid painted):  {first:.3f}s  goal <= {GOAL_FIRST_RENDER}s  {verdict}"
        )
        print(f"  floor (same size, trivial):   {base:.3f}s")
        print(f"  ratio report / floor:         {first / base:.2f}x")
        print(f"  whole grid built:             {statistics.median(complete):.3f}s")
        print(f"  a chart drawn after a click:  {statistics.median(charts) * 1000:.1f}ms")
        if errors:
            print(f"console errors: {errors}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
