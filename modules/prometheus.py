# A Prometheus (or OpenMetrics) endpoint scraped from the target: series picked by a PromQL
# selector, aggregated, counters as per-second rates over the batch's sampling window.
#
# Runs on the target: standard library only, Python 3.6 syntax. The HTTP exchange is the
# http module's (httpfetch); the format and the PromQL functions are in exposition.
import http.client
import math
import re
import time
import zlib

from ._utils import certs, exposition, httpfetch, netprobe, timing, window

MODULE = {
    "summary": "Prometheus/OpenMetrics endpoint: select series, aggregate, rate counters",
    "window_option": "sample",
    "window_if": "rate",  # a gauge is read in one scrape: it does not lengthen the window
    "description": [
        "Scrapes a /metrics endpoint from the target (so `http://127.0.0.1:9093/metrics` "
        "reads the service where it runs), keeps the series a PromQL selector picks "
        '(`select: \'http_requests_total{code=~"5..", job!="test"}\'`: =, !=, =~, !~, '
        'regexes anchored at both ends and a missing label reading as "", as in PromQL) '
        "and reports their `aggregate` (sum, avg, max, min, count) as `value`. With `by: "
        "[label]` every group is also reported on its own, as value_<label values> (letters, "
        "digits and _; the facts map each name to its labels), while `value` stays the "
        "aggregate over all of them.",
        "`rate: true` turns every selected series into its per-second rate before "
        "aggregating, like sum(rate(x[window])): the endpoint is scraped at the start and at "
        "the end of the batch's shared sampling window (at least `sample`), a value lower "
        "at the end means the counter was reset and counts from 0 (Prometheus' rule), and a "
        "series seen only at the end has no rate yet. The rate divides by the time between "
        "the two scrapes (each stamped halfway through its request); timestamps written in "
        "the exposition are not used. Without `rate` one scrape at the end "
        "of the batch's window is read, and `sample` is not used: such a check does not "
        "make the window longer.",
        "`quantile: 0.99` reads a histogram: select its _bucket series; buckets are summed "
        "per `le` (per group with `by`), rated first with `rate: true`, and the quantile is "
        "interpolated as histogram_quantile() does. Summaries and the _sum/_count series "
        "are selected by name like any other.",
        "A scrape that fails is CRITICAL with the reason, as a blackbox probe or an `up == "
        "0` alert would say: connection refused, timeout, a status other than 200, a body "
        "larger than `max_body` (compressed or not: gzip answers are unpacked up to that "
        "size), more samples than `max_series`, or a body that is not a valid exposition "
        "(the first bad line is named). A selector that matches no series is UNKNOWN (there "
        "is no value to compare), except with `aggregate: count`, which is then 0. A value "
        "that is NaN or infinite (sum of a NaN series, a histogram without observations) is "
        "UNKNOWN too, since it cannot be compared with a threshold.",
        "The text format 0.0.4 and OpenMetrics 1.0 are read (chosen by Content-Type; "
        "OpenMetrics must end with # EOF, its exemplars are skipped). Label values that are "
        "not valid UTF-8 are read with U+FFFD in place of the bad bytes. TLS, basic auth "
        "and headers work as in the http module.",
    ],
    "free_form": "url",
    "options": {
        "url": {
            "type": "str",
            "format": "url",
            "required": True,
            "description": "http:// or https:// URL of the metrics endpoint.",
        },
        "select": {
            "type": "str",
            "format": "selector",
            "required": True,
            "description": "PromQL series selector: a metric name, label matchers in braces, "
            'or both (`up{job="node"}`, `{__name__=~"go_memstats_.*_bytes"}`).',
        },
        "aggregate": {
            "type": "str",
            "default": "sum",
            "choices": list(exposition.AGGREGATIONS),
            "description": "How the selected series (or their rates) make one value.",
        },
        "by": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": "Labels to group by: each group is also measured as "
            "value_<label values>.",
        },
        "rate": {
            "type": "bool",
            "default": False,
            "description": "Per-second rate of each series over the sampling window "
            "(counters), before aggregating.",
        },
        "sample": {
            "type": "duration",
            "max": "1h",
            "default": "1s",
            "description": "With rate: the shortest sampling window the counters' increase "
            "is measured over.",
        },
        "quantile": {
            "type": "float",
            "min": 0,
            "max": 1,
            "description": "Read the selected _bucket series as a histogram and report "
            "this quantile (0.99 for p99) as histogram_quantile() computes it.",
        },
        "headers": {
            "type": "dict",
            "elements": "str",
            "default": {},
            "description": "Request headers, for example {Authorization: 'Bearer ...'}.",
        },
        "username": {"type": "str", "description": "User name for HTTP basic auth."},
        "password": {
            "type": "str",
            "default": "",
            "description": "Password for HTTP basic auth (from a variable, not the playbook).",
        },
        "verify_tls": {
            "type": "bool",
            "default": True,
            "description": "Verify the server certificate and host name.",
        },
        "ca_file": {"type": "str", "description": "PEM file of the CA certificates to trust."},
        "client_cert": {"type": "str", "description": "PEM client certificate for mutual TLS."},
        "client_key": {"type": "str", "description": "PEM private key of client_cert."},
        "max_body": {
            "type": "size",
            "default": "16MB",
            "description": "A body larger than this (as sent, and once unpacked) fails the "
            "scrape rather than being read in part.",
        },
        "max_series": {
            "type": "int",
            "min": 1,
            "default": 1000000,
            "description": "A body with more samples than this fails the scrape "
            "(Prometheus' sample_limit).",
        },
        "timeout": {
            "type": "duration",
            "min": "1ms",
            "max": "1d",
            "description": "Give up on each scrape after this long (a failure).",
        },
    },
    "measurements": {
        "value": {
            "unit": "",
            "description": "The aggregate of the selected series (rates "
            "with rate: per second; with quantile: the quantile).",
        },
        "value_*": {
            "unit": "",
            "description": "With by: the aggregate of one group "
            "(value_500 for by: [code]; several labels joined by _).",
        },
        "series": {
            "unit": "",
            "description": "Series the selector matched (with rate: "
            "those present in both scrapes).",
        },
        "success": {
            "unit": "",
            "flag": True,
            "description": "1 when the endpoint was scraped and parsed, else 0.",
        },
        "scrape_duration": {"unit": "s", "description": "Time of the last scrape."},
        "samples_scraped": {"unit": "", "description": "Samples in the whole body."},
    },
    "default_metric": "value",
    "probe": {
        "success": "success",
        "duration": "scrape_duration",
        "target": ["url"],
    },
    "facts": {
        "url": "The URL scraped (after redirects).",
        "promql": "The PromQL expression the value equals, for a Prometheus server.",
        "format": "text (0.0.4) or openmetrics.",
        "groups": "With by: measurement name -> the label values of its group.",
        "window": "With rate: seconds between the two scrapes.",
        "new_series": "With rate: series seen only at the end of the window (no rate yet).",
        "resets": "With rate: series whose counter went down during the window (reset).",
    },
}

EXAMPLES = """
- name: alertmanager delivers its notifications
  prometheus:
    url: "http://127.0.0.1:9093/metrics"
    select: 'alertmanager_notifications_failed_total'
    rate: true
    sample: 10s
  crit: 0

- name: 5xx per second by handler
  prometheus:
    url: "http://127.0.0.1:8080/metrics"
    select: 'http_requests_total{code=~"5.."}'
    rate: true
    sample: 5s
    by: [handler]
  warn: 1
  crit: 5

- name: no filesystem nearly read-only
  prometheus:
    url: "http://127.0.0.1:9100/metrics"
    select: 'node_filesystem_readonly{fstype!~"tmpfs|overlay"}'
    aggregate: max
  crit: 0

- name: p99 request latency
  prometheus:
    url: "http://127.0.0.1:8080/metrics"
    select: 'http_request_duration_seconds_bucket{handler="/api"}'
    rate: true
    sample: 10s
    quantile: 0.99
  warn: 0.5
  crit: 2

- name: goroutines of the Go service
  prometheus: {url: "http://127.0.0.1:9091/metrics", select: go_goroutines}
  warn: 5000
"""

USER_AGENT = "checkrun-prometheus/1"
# What Prometheus itself sends, minus the protobuf it prefers: the text format first.
ACCEPT = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"
GZIP_WINDOW = 16 + zlib.MAX_WBITS
SCRAPE_ERRORS = (netprobe.ProbeFailed, OSError, http.client.HTTPException) + certs.CERT_ERRORS


class ScrapeFailed(Exception):
    """The endpoint could not be scraped: the reason is the check's failure."""


def _request_args(args):
    return {
        "url": args["url"],
        "method": "GET",
        "headers": dict(
            [("Accept", ACCEPT), ("Accept-Encoding", "gzip")]
            + [(str(k), str(v)) for k, v in (args.get("headers") or {}).items()]
        ),
        "request_body": None,
        "follow_redirects": True,
        "max_redirects": 10,
        "max_body": int(args["max_body"]),
        "username": args.get("username"),
        "password": args.get("password") or "",
        "user_agent": USER_AGENT,
        "verify_tls": args.get("verify_tls", True),
        "ca_file": args.get("ca_file"),
        "client_cert": args.get("client_cert"),
        "client_key": args.get("client_key"),
    }


def _unpacked(response, max_body):
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding in ("identity", ""):
        return response.body
    if encoding != "gzip":
        raise ScrapeFailed("unsupported Content-Encoding %r" % encoding)
    unpacker = zlib.decompressobj(GZIP_WINDOW)
    try:
        # max_length bounds the memory a small gzip bomb could otherwise claim
        data = unpacker.decompress(response.body, max_body + 1)
    except zlib.error as exc:
        raise ScrapeFailed("the gzip body is corrupt: %s" % exc) from None
    if len(data) > max_body or unpacker.unconsumed_tail:
        raise ScrapeFailed("the body unpacks to more than max_body (%d bytes)" % max_body)
    return data


def is_openmetrics(content_type):
    return "application/openmetrics-text" in (content_type or "").lower()


def fetch(request, context, budget):
    """One scrape of request (_request_args): {"text", "openmetrics", "url", "duration",
    "taken"}; ScrapeFailed with the reason when the endpoint is down or answers something
    else than a body."""
    started = time.monotonic()
    try:
        responses = httpfetch.exchange(request, context, started + budget)
    except SCRAPE_ERRORS as exc:
        url = getattr(exc, "probe_url", None) or httpfetch.without_credentials(request["url"])
        raise ScrapeFailed("GET %s: %s" % (url, httpfetch.describe_error(exc, budget))) from None
    finished = time.monotonic()
    final = responses[-1]
    if final.status != 200:
        raise ScrapeFailed(
            "GET %s: server returned HTTP status %d %s" % (final.url, final.status, final.reason)
        )
    if final.truncated:
        raise ScrapeFailed(
            "GET %s: the body is larger than max_body (%d bytes)" % (final.url, request["max_body"])
        )
    data = _unpacked(final, request["max_body"])
    return {
        "text": data.decode("utf-8", "replace"),
        "openmetrics": is_openmetrics(final.headers.get("Content-Type")),
        "url": final.url,
        "duration": finished - started,
        "taken": (started + finished) / 2.0,
    }


def scrape(args, ctx, selector):
    """fetch() and select(): {"samples", "types", "count", ...} or {"failed": reason}."""
    httpfetch.check_url(args["url"])
    request = _request_args(args)
    context = httpfetch.LazyTLSContext(request)
    if args["url"].lower().startswith("https:"):
        context.get()  # bad TLS files are the user's error (UNKNOWN), not a failed scrape
    try:
        got = fetch(request, context, timing.budget(args, ctx))
    except ScrapeFailed as exc:
        return {"failed": str(exc), "url": httpfetch.without_credentials(args["url"])}
    try:
        picked = exposition.select(
            got["text"], selector, int(args["max_series"]), got["openmetrics"]
        )
    except ValueError as exc:
        return {
            "failed": "GET %s: invalid exposition: %s" % (got["url"], exc),
            "url": got["url"],
            "duration": got["duration"],
        }
    del got["text"]
    picked.update(got)
    return picked


def sample(args, ctx):
    """The rate collector's snapshot: a scrape, or nothing at the window's start without rate."""
    if ctx.before is None and not args.get("rate"):
        return {"skipped": True, "taken": time.monotonic()}
    snapshot = scrape(args, ctx, exposition.Selector(args["select"]))
    snapshot.setdefault("taken", time.monotonic())
    return snapshot


# ------------------------------------------------------------------------------- results


def _measurement_name(values, taken):
    name = "value_" + "_".join(re.sub(r"[^A-Za-z0-9_]", "_", v) for v in values)
    candidate, number = name, 2
    while candidate in taken:  # "a-b" and "a_b" both read a_b: keep them apart
        candidate, number = "%s_%d" % (name, number), number + 1
    return candidate


def _series_values(args, before, after, facts):
    """[(name, labels, value)] to aggregate: the samples, or their rates."""
    if not args.get("rate"):
        return [(s[0], s[1], s[2]) for s in after["samples"]]
    elapsed = after["taken"] - before["taken"]
    if elapsed <= 0:
        raise RuntimeError("no time elapsed between the two scrapes; give a sample, such as 5s")
    rated, new = exposition.rates(before["samples"], after["samples"], elapsed)
    start = dict((exposition.series_key(s[0], s[1]), s[2]) for s in before["samples"])
    facts["window"] = round(elapsed, 3)
    facts["new_series"] = new
    facts["resets"] = sum(
        1 for s in after["samples"] if start.get(exposition.series_key(s[0], s[1]), s[2]) > s[2]
    )
    return rated


def _quantile_value(series, quantile):
    by_le = {}
    for _, labels, value in series:
        if "le" not in labels:
            raise ValueError(
                "quantile: the series must be a histogram's _bucket series (with an le label)"
            )
        bound = exposition.parse_float(labels["le"])
        by_le[bound] = by_le.get(bound, 0.0) + value
    return exposition.histogram_quantile(quantile, list(by_le.items()))


def _reduce(series, args):
    if args.get("quantile") is not None:
        return _quantile_value(series, float(args["quantile"]))
    return exposition.aggregate([value for _, _, value in series], args["aggregate"])


def _finite(value, what):
    if value is None:
        raise RuntimeError("%s matches no series" % what)
    if math.isnan(value) or math.isinf(value):
        raise RuntimeError("%s is %s: no value to compare with a threshold" % (what, value))
    return value


def promql(args):
    inner = args["select"].strip()
    if args.get("rate"):
        inner = "rate(%s[%gs])" % (inner, float(args["sample"]))
    by = args.get("by") or []
    if args.get("quantile") is not None:
        grouping = " by (%s)" % ", ".join(list(by) + ["le"])
        return "histogram_quantile(%g, sum%s (%s))" % (float(args["quantile"]), grouping, inner)
    grouping = " by (%s)" % ", ".join(by) if by else ""
    return "%s%s (%s)" % (args["aggregate"], grouping, inner)


def _groups(series, args, measurements, facts):
    by = list(args.get("by") or [])
    grouped = {}
    for item in series:
        grouped.setdefault(exposition.group_key(item[1], by), []).append(item)
    names = {}
    for key in sorted(grouped):
        value = _reduce(grouped[key], args)
        if value is None or math.isnan(value) or math.isinf(value):
            continue  # a group without a number is left out, as PromQL leaves NaN unsorted
        name = _measurement_name(key, names)
        names[name] = dict(zip(by, key))
        measurements[name] = value
    facts["groups"] = names


def _failed(snapshot):
    measurements = {"success": 0}
    if snapshot.get("duration") is not None:
        measurements["scrape_duration"] = snapshot["duration"]
    return {
        "measurements": measurements,
        "facts": {"url": snapshot["url"]},
        "failures": [snapshot["failed"]],
        "message": snapshot["failed"],
    }


def run(args, ctx):
    selector = exposition.Selector(args["select"])  # a bad selector is UNKNOWN, before any scrape
    before, after = ctx.before, ctx.after
    if after is None and args.get("rate"):  # run() outside a batch: its own window
        before, after, _ = window.snapshots(sample, args, ctx)
    elif after is None:
        before, after = None, scrape(args, ctx, selector)
    for snapshot in (before, after):
        if snapshot and snapshot.get("failed"):
            return _failed(snapshot)
    facts = {
        "url": after["url"],
        "promql": promql(args),
        "format": "openmetrics" if after["openmetrics"] else "text",
    }
    series = _series_values(args, before, after, facts)
    measurements = {
        "success": 1,
        "series": len(series),
        "scrape_duration": after["duration"],
        "samples_scraped": after["count"],
    }
    counts_nothing = args["aggregate"] == "count" and args.get("quantile") is None
    if not series and not counts_nothing:
        raise RuntimeError(
            "%s at %s matches no series%s"
            % (selector.text, after["url"], " present in both scrapes" if args.get("rate") else "")
        )
    measurements["value"] = _finite(_reduce(series, args), facts["promql"])
    if args.get("by"):
        _groups(series, args, measurements, facts)
    message = "%s = %s (%d series)" % (facts["promql"], _number(measurements["value"]), len(series))
    if facts.get("groups"):
        message += "; " + ", ".join(
            "%s %s" % (name[len("value_") :], _number(measurements[name]))
            for name in list(facts["groups"])[:5]
        )
    return {"measurements": measurements, "facts": facts, "failures": [], "message": message}


def _number(value):
    return ("%d" % value) if value == int(value) and abs(value) < 1e15 else ("%.6g" % value)
