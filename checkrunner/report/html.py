"""The HTML report (`-r html:PATH`, and `/` of `checkrun watch`): one self-contained page.

What it shows: the overall status and counts, a hosts × checks grid (each cell's status as an
icon and a word as well as a colour, and its value), filters by status, play, host and tag,
the hosts ranked by their `host score`, the unreachable hosts with their reason, and, for
the check a cell opens, a chart of its measurement over the history window with its static
thresholds (warn/crit lines) and its dynamic baseline band.

How it is built, and why:
- One file that works offline: the CSS and the script ship inside the package
  (report/html_assets/) and are inlined; the page loads nothing. A Content-Security-Policy
  allows only those two inline blocks (by hash), so even a string that escaped escaping
  could neither run a script nor fetch anything.
- The data is JSON in two `<script type="application/json">` blocks: the results (parsed at
  load) and the history (parsed the first time a chart is opened). Every string in it comes
  from a target or a playbook and is hostile: `<`, `>`, `&`, U+2028/U+2029 and the other
  unprintable characters are \\u escapes, so nothing in it can close the block, and the
  script puts text in the page with textContent only, never as markup.
- Charts are hand-written inline SVG, drawn by the script when a cell or a host is opened,
  never all at load (1000 hosts × 20 checks would be 20,000 charts). An SVG line, an
  envelope, a few threshold lines and a band need about a hundred lines of script; the
  chart libraries that could do it are not installable from the Python package index and
  would add hundreds of kilobytes to every report. Server-side SVG for every check would
  make the file grow with the fleet times the chart size, drawn or not.
- The grid is virtualised: only the rows in view (and a few either side) are in the page,
  with one row height and a fixed table layout, so 1000 hosts lay out as fast as 40; the
  ranking shows the most loaded hosts and the rest when asked.
- History is bounded in the page: each series is read from its hourly rows (kept up to date
  as samples are written; only the window's cut edges from raw samples: HistoryStore.buckets)
  into at most HISTORY_POINTS buckets of min/avg/max, quantised to 12 bits of its own range
  (two characters per number), so a day of 10-second samples costs the same few hundred
  bytes per check, and about the same read, as a day of 5-minute ones (bench/README.md).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import time
from collections.abc import Callable
from importlib import resources
from typing import Any, ClassVar

from checkrunner.config.ranges import parse_range
from checkrunner.report.base import Reporter
from checkrunner.report.formatting import (
    check_message,
    format_value,
    hosts_by_score,
    humanize_seconds,
    overall_status,
    plural,
    summary_counts,
    unreachable_reason,
)
from checkrunner.results import BaselineBound, CheckResult, HostResult, RunResult, Status
from checkrunner.safe_text import escape_unprintable_json
from checkrunner.state.history import NO_METRIC, Bucket, HistoryStore, SeriesKey
from checkrunner.state.keys import CheckKey

HISTORY_WINDOW = 24 * 3600.0  # seconds of history a chart shows
HISTORY_POINTS = 48  # at most this many buckets per series
# Two characters of this alphabet per number: 4096 levels between a series' min and max.
_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_LEVELS = len(_DIGITS) ** 2 - 1
_CODES = [high + low for high in _DIGITS for low in _DIGITS]  # level -> its two characters
_NO_VALUE = "!!"
STATUS_CODES = {status.value: status.name[0] for status in Status}  # O W C U S U(nreachable)
STATUS_CODES[Status.UNREACHABLE.value] = "R"
_ASSETS = "html_assets"


class HtmlReporter(Reporter):
    name = "html"
    uses_history: ClassVar[bool] = True

    def __init__(
        self,
        path: str | None,
        *,
        verbose: int = 0,
        color: bool | None = None,
        stream: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(path, verbose=verbose, color=color, stream=stream)
        self.clock = clock

    def render(self, run: RunResult) -> str:
        return render_page(run, self.history, self.clock())


def render_page(
    run: RunResult, history: HistoryStore | None, now: float, live: bool = False
) -> str:
    """The whole page for `run`, with each check's history from `history` (None: none)."""
    columns = check_columns(run)
    results = results_document(run, columns, history is not None, now, live)
    series = history_document(run, history, now) if history is not None else {}
    css = _asset("report.css")
    script = _asset("report.js")
    status = overall_status(run)
    title = f"checkrun: {status.value} — {run.playbook}"
    return _PAGE.format(
        csp=_csp(css, script),
        title=html.escape(title),
        css=css,
        script=script,
        results=embed_json(results),
        history=embed_json(series),
        headline=html.escape(title),
    )


def check_columns(run: RunResult) -> list[tuple[str, str]]:
    """(play, check name) of every check in the run, in the order they first appear."""
    seen: dict[tuple[str, str], None] = {}
    for check in run.all_checks():
        seen.setdefault((check.play, check.name), None)
    return list(seen)


def results_document(
    run: RunResult, columns: list[tuple[str, str]], has_state: bool, now: float, live: bool
) -> dict[str, Any]:
    index = {column: i for i, column in enumerate(columns)}
    kinds = Kinds()
    tags: list[set[str]] = [set() for _ in columns]
    for check in run.all_checks():
        tags[index[(check.play, check.name)]].update(check.tags)
    counts = summary_counts(run)
    return {
        "playbook": run.playbook,
        "status": overall_status(run).value,
        "generated": now,
        "live": live,
        "interrupted": run.interrupted,
        "history": has_state,
        "window": HISTORY_WINDOW,
        "summary": summary_text(run, live),
        "counts": [[s.value, n] for s, n in counts],
        "columns": [
            {"play": play, "check": name, "tags": sorted(tags[i])}
            for i, (play, name) in enumerate(columns)
        ],
        "hosts": [host_document(host, index, kinds) for host in run.hosts],
        "kinds": kinds.table,
        "score": [
            [check.host, check.play, format_value(check.value, check.unit), check.status.value]
            for check in hosts_by_score(run)
        ],
    }


def summary_text(run: RunResult, live: bool) -> str:
    scope = f"{plural(len(run.all_checks()), 'check')} on {plural(len(run.hosts), 'host')}"
    if live:
        return f"{scope}, the latest result of each"
    return f"{scope} in {humanize_seconds(run.duration)}"


class Kinds:
    """What the cells of a check share on every host (measurement, unit, thresholds), kept
    once in the page and named by index in each cell: a fifth of the grid's bytes."""

    def __init__(self) -> None:
        self.table: list[dict[str, Any]] = []
        self._index: dict[str, int] = {}

    def of(self, check: CheckResult) -> int:
        kind = {
            "metric": series_metric(check),
            "unit": check.unit,
            "thresholds": threshold_lines(check),
        }
        key = json.dumps(kind, sort_keys=True)
        if key not in self._index:
            self._index[key] = len(self.table)
            self.table.append(kind)
        return self._index[key]


def host_document(
    host: HostResult, index: dict[tuple[str, str], int], kinds: Kinds
) -> dict[str, Any]:
    cells: dict[int, dict[str, Any]] = {}
    for check in host.checks:
        cells[index[(check.play, check.name)]] = cell_document(check, kinds)
    document: dict[str, Any] = {"host": host.host, "status": host.status.value, "cells": cells}
    if not host.reachable:
        document["reason"] = unreachable_reason(host)
    return document


def cell_document(check: CheckResult, kinds: Kinds) -> dict[str, Any]:
    document: dict[str, Any] = {
        "status": check.status.value,
        "value": format_value(check.value, check.unit),
        "message": check_message(check),
        "kind": kinds.of(check),
    }
    bands = [band_document(b) for b in check.baselines]
    if bands:
        document["bands"] = bands
    if check.value is not None and math.isfinite(check.value):
        document["current"] = check.value
    return document


def series_metric(check: CheckResult) -> str:
    """The measurement whose history the chart draws: the one the thresholds apply to, as
    HistoryStore.record keys it."""
    return check.metric or next(iter(check.measurements), NO_METRIC)


def threshold_lines(check: CheckResult) -> list[dict[str, Any]]:
    """The static thresholds as lines: the finite bounds of each Nagios range, in the
    measurement's unit, and whether it alerts inside or outside them."""
    lines = []
    for level, text in (("warn", check.thresholds.warn), ("crit", check.thresholds.crit)):
        if text is None or str(text).strip() == "":
            continue
        try:
            limits = parse_range(str(text), check.unit or None)
        except ValueError:
            continue  # validated when the playbook loaded; a unit it cannot convert draws no line
        lines.append(
            {
                "level": level,
                "text": str(text),
                "low": limits.start if math.isfinite(limits.start) else None,
                "high": limits.end if math.isfinite(limits.end) else None,
                "inside": limits.inside,
            }
        )
    return lines


def band_document(bound: BaselineBound) -> dict[str, Any]:
    return {
        "level": bound.level,
        "lower": _finite(bound.lower),
        "upper": _finite(bound.upper),
        "center": _finite(bound.center),
        "warming": bool(bound.warming_up),
        "text": bound.text,
    }


def history_document(run: RunResult, history: HistoryStore, now: float) -> dict[str, Any]:
    """Each check's series, keyed "host\\u0000play\\u0000check": its window and points."""
    keys = {
        SeriesKey(CheckKey(check.host, check.play, check.name), series_metric(check)): check
        for check in run.all_checks()
    }
    found = history.buckets(keys, now - HISTORY_WINDOW, now + 1.0, HISTORY_POINTS)
    return {
        "\0".join((key.check.host, key.check.play, key.check.check)): encode_series(buckets, now)
        for key, buckets in found.items()
        if buckets
    }


def encode_series(buckets: list[Bucket], now: float) -> dict[str, Any]:
    """A series as its time span, value range and a string of points: per bucket its time,
    min, avg and max (two characters each, 12 bits of the span or the range) and its worst
    status (one character)."""
    start = buckets[0].at
    end = max(now, buckets[-1].at)
    values = [
        v for b in buckets for v in (b.minimum, b.maximum) if v is not None and math.isfinite(v)
    ]
    low, high = (min(values), max(values)) if values else (0.0, 0.0)
    at, value = _quantiser(start, end), _quantiser(low, high)
    points = "".join(
        at(b.at) + value(b.minimum) + value(b.average) + value(b.maximum)
        + STATUS_CODES.get(b.worst, "-")
        for b in buckets
    )  # fmt: skip
    return {"start": start, "end": end, "low": low, "high": high, "points": points}


def _quantiser(low: float, high: float) -> Callable[[float | None], str]:
    """A number between low and high -> its level's two characters (None, NaN: _NO_VALUE)."""
    scale = _LEVELS / (high - low) if high > low else 0.0

    def code(value: float | None) -> str:
        if value is None or value != value or value in (math.inf, -math.inf):
            return _NO_VALUE
        return _CODES[min(max(round((value - low) * scale), 0), _LEVELS)]

    return code


def embed_json(document: Any) -> str:
    """JSON that is safe inside a <script> block: no `<` (so no `</script>` or `<!--`), no
    `>` or `&`, no raw line separators or other unprintable characters."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return escape_unprintable_json(text)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _asset(name: str) -> str:
    return resources.files("checkrunner.report").joinpath(_ASSETS, name).read_text("utf-8")


def _csp(css: str, script: str) -> str:
    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()

    return (
        "default-src 'none'; img-src data:; "
        f"style-src 'sha256-{digest(css)}'; script-src 'sha256-{digest(script)}'; "
        "base-uri 'none'; form-action 'none'"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header>
<h1 id="headline">{headline}</h1>
<p id="summary"></p>
</header>
<noscript><p>This report draws its grid and charts with JavaScript; the JSON report
(-r json) has the same results.</p></noscript>
<main>
<section id="filters" aria-label="Filters"></section>
<section id="unreachable" aria-label="Unreachable hosts" hidden></section>
<section id="grid-section" aria-label="Hosts and checks"><p id="grid-note" aria-live="polite"></p>
<div id="grid-scroll" tabindex="0" aria-label="Grid (scrolls)"><table id="grid"><thead></thead><tbody></tbody></table></div></section>
<section id="detail" aria-label="Charts" aria-live="polite" hidden></section>
<section id="ranking" aria-label="Hosts by score" hidden></section>
</main>
<script type="application/json" id="results-data">{results}</script>
<script type="application/json" id="history-data">{history}</script>
<script>{script}</script>
</body>
</html>
"""
