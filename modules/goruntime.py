# A Go service's runtime (heap, Sys, GC, goroutines) from expvar or its go_* metrics, lined up
# with the cgroup it runs in over one window: is the container near its memory limit because
# of the heap, is its CPU spent collecting garbage.
#
# Runs on the target: standard library only, Python 3.6 syntax. A rate module: sample()
# fetches the endpoint and reads the cgroup's counters at both ends of the batch's shared
# window.
import json
import os
import socket
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from ._utils import cgroups, exposition, processes, procfs, timing, window

MODULE = {
    "summary": "A Go service's heap, Sys, GC CPU and goroutines against its cgroup's memory and CPU",
    "window_option": "sample",  # the batch's shared sampling window is at least this long
    "description": [
        "Fetches a Go program's runtime numbers from the target's side: its `expvar` page "
        "(`/debug/vars`: memstats HeapAlloc, HeapInuse, Sys, NumGC, PauseTotalNs, "
        "GCCPUFraction, LastGC, and `goroutines` when the program publishes it: expvar "
        "does not) or its Prometheus `go_*` metrics (go_memstats_heap_alloc_bytes, "
        "go_memstats_heap_inuse_bytes, go_memstats_sys_bytes, go_gc_duration_seconds, "
        "go_goroutines, and when exported go_memstats_gc_cpu_fraction, "
        "go_memstats_last_gc_time_seconds, go_sched_gomaxprocs_threads, "
        "process_start_time_seconds, go_cpu_classes_gc_total_cpu_seconds_total). "
        "`format: auto` tells them apart by the body (JSON or text).",
        "With a cgroup (`cgroup: PATH`, `unit`, `container`, found as the cgroup module "
        "finds them, or the cgroup of the process given by `pid` or `pattern`), both ends "
        "of the one sampling window read the runtime and the cgroup together: heap "
        "(HeapInuse) and Sys as a share of the cgroup's memory usage and of its limit "
        "(`sys_limit_percent` is the headroom question: Sys is what the runtime holds from "
        "the OS), the cgroup's CPU in cores and as a share of its quota, and GC CPU as a "
        "share of that CPU.",
        "GC CPU over the window, best source first: the runtime/metrics counter "
        "go_cpu_classes_gc_total_cpu_seconds_total (Go 1.20+, when exported); else from "
        "GCCPUFraction, which is the GC's share of GOMAXPROCS x the time since the program "
        "started, as of the last GC's end: GC CPU seconds so far = GCCPUFraction x "
        "GOMAXPROCS x (LastGC - start), and its difference between the window's two ends "
        "is the CPU of the collections that ended in the window (not the fraction itself, "
        "which averages over the whole life). That needs the start time "
        "(process_start_time_seconds, or /proc/PID/stat of the `pid`/`pattern` process) "
        "and GOMAXPROCS (the `gomaxprocs` option, go_sched_gomaxprocs_threads, the "
        "process's GOMAXPROCS environment variable, else its allowed CPUs: Go's default "
        "before 1.25). Its limits: it moves only when a collection ends, so a window "
        "should span several collections; a collection running across the window's end "
        "counts in the next; mark work done by idle-priority workers counts (the cgroup "
        "pays for it too). The runtime counts GC time as wall time on a P (its "
        "denominator being GOMAXPROCS x the time), not as CPU time: a P whose thread is "
        "throttled by the quota, or waits for a core, keeps counting. So gc_cpu_percent "
        "divides GC time by the time the cgroup's tasks were busy, estimated as its CPU "
        "time plus its throttled time over the window (at most GOMAXPROCS x the window): "
        "time spent waiting for a core behind other cgroups is not in it, so on a "
        "contended host the share still overstates, and it is capped at 100 "
        "(facts.gc_cpu_capped). gc_window_fraction (GC time / GOMAXPROCS x the window, "
        "the runtime's own fraction over the window) understates when Ps sit idle. "
        "Without either, GC CPU is not reported (facts.gc_cpu_method "
        "says why) and only the stop-the-world pause time is: PauseTotalNs or "
        "go_gc_duration_seconds_sum, a lower bound of GC's cost.",
        "The message states the diagnosis when there is one: `CPU 92% of quota, of which "
        "GC 61%: GC pressure` (CPU at 80% of the quota or more, half of it or more GC), "
        "`Sys at 88% of the memory limit` (80% or more). An endpoint that is down, answers "
        "an error status or a body that is neither makes the check UNKNOWN with the reason.",
    ],
    "free_form": "url",
    "options": {
        "url": {
            "type": "str",
            "format": "url",
            "required": True,
            "description": "http:// URL of /debug/vars or /metrics, as seen from the target.",
        },
        "format": {
            "type": "str",
            "default": "auto",
            "choices": ["auto", "expvar", "prometheus"],
            "description": "What the URL serves; auto decides from the body.",
        },
        "cgroup": {
            "type": "str",
            "description": "The cgroup's path (/system.slice/app.service) or its directory.",
        },
        "unit": {"type": "str", "description": "Or the cgroup of a systemd unit."},
        "container": {
            "type": "str",
            "description": "Or a container's cgroup: its id (12 or more characters) or its "
            "directory name as in /proc/PID/cgroup.",
        },
        "pid": {
            "type": "int",
            "description": "The Go process: its start time and GOMAXPROCS for GC CPU, and its "
            "cgroup when no cgroup is named.",
        },
        "pattern": {
            "type": "str",
            "format": "regex",
            "description": "Or the Go process by a regular expression searched in command "
            "lines (exactly one process must match).",
        },
        "gomaxprocs": {
            "type": "int",
            "min": 1,
            "description": "The program's GOMAXPROCS, when it sets it in code.",
        },
        "cgroup_root": {
            "type": "str",
            "default": "/sys/fs/cgroup",
            "description": "Where the cgroup filesystems are mounted.",
        },
        "max_body": {
            "type": "size",
            "default": "4MB",
            "description": "Read at most this much of the page; a longer one is an error.",
        },
        "timeout": {
            "type": "duration",
            "min": "1ms",
            "max": "1d",
            "description": "Give up on each fetch after this long (within the check's timeout).",
        },
        "sample": {
            "type": "duration",
            "max": "1h",
            "default": "1s",
            "description": "Window over which CPU and GC are measured (shared with the other "
            "rate checks of the batch).",
        },
    },
    "mutually_exclusive": [["cgroup", "unit", "container"], ["pid", "pattern"]],
    "measurements": {
        "heap_alloc": {"unit": "B", "description": "HeapAlloc: bytes of live and unswept objects."},
        "heap_inuse": {"unit": "B", "description": "HeapInuse: bytes in in-use heap spans."},
        "sys": {"unit": "B", "description": "Sys: bytes the runtime obtained from the OS."},
        "goroutines": {"unit": "", "description": "Goroutines (when exposed)."},
        "gc_cycles": {"unit": "", "description": "Collections completed in the window."},
        "gc_pause": {"unit": "s", "description": "Stop-the-world pause time in the window."},
        "gc_pause_percent": {"unit": "%", "description": "gc_pause as a share of the window."},
        "gc_cpu_fraction": {
            "unit": "%",
            "description": "The runtime's GCCPUFraction: the GC's CPU share since the start.",
        },
        "gc_cpu_cores": {
            "unit": "",
            "description": "GC time over the window, in cores (the runtime's P-time).",
        },
        "gc_window_fraction": {
            "unit": "%",
            "description": "GCCPUFraction over the window: gc_cpu_cores / GOMAXPROCS.",
        },
        "memory_usage": {"unit": "B", "description": "The cgroup's memory usage."},
        "memory_limit": {"unit": "B", "description": "Its limit (not when none)."},
        "memory_percent": {"unit": "%", "description": "Usage as a share of the limit."},
        "heap_usage_percent": {"unit": "%", "description": "heap_inuse as a share of usage."},
        "heap_limit_percent": {"unit": "%", "description": "heap_inuse as a share of the limit."},
        "sys_usage_percent": {"unit": "%", "description": "sys as a share of usage."},
        "sys_limit_percent": {"unit": "%", "description": "sys as a share of the limit."},
        "cpu_cores": {"unit": "", "description": "The cgroup's CPU over the window, in cores."},
        "cpu_quota_cores": {"unit": "", "description": "Its CPU quota in cores (not when none)."},
        "cpu_quota_percent": {"unit": "%", "description": "cpu_cores as a share of the quota."},
        "gc_cpu_percent": {
            "unit": "%",
            "description": "GC time as a share of the cgroup's busy time (CPU + throttled) "
            "over the window.",
        },
    },
    "default_metric": "sys_limit_percent",
    "facts": {
        "source": "expvar or prometheus.",
        "cgroup": "The cgroup's path (when one is read).",
        "memory_limit": "`unlimited` when no limit applies.",
        "gc_cpu_method": "runtime_metrics, gc_cpu_fraction, or why GC CPU is not reported.",
        "gomaxprocs": "The GOMAXPROCS used, and where it came from.",
        "diagnosis": "The diagnoses the message states.",
        "gc_cpu_capped": "True when GC time exceeded the cgroup's busy time (contention).",
        "window": "Seconds between the two readings.",
    },
}

EXAMPLES = """
- name: api heap headroom
  goruntime: {url: "http://127.0.0.1:6060/debug/vars", unit: api.service}
  warn: 80
  crit: 90

- name: api GC share of its CPU
  goruntime:
    url: "http://127.0.0.1:9100/metrics"
    pattern: '^/usr/bin/api '
    sample: 10s
  metric: gc_cpu_percent
  warn: 30
  crit: 50

- name: worker goroutines
  goruntime: {url: "http://127.0.0.1:6060/debug/vars", container: 3f4e5d6c7b8a}
  metric: goroutines
  warn: 10000
"""

MIB = 1048576.0
READ_CHUNK = 65536
MAX_HEADERS = 65536
USER_AGENT = "checkrun-goruntime/1"
# The diagnoses the message states, per the examples.
HIGH_QUOTA_PERCENT = 80.0
GC_PRESSURE_PERCENT = 50.0
HIGH_LIMIT_PERCENT = 80.0
# go_* names read from a Prometheus exposition, and the runtime figure each one is
GO_METRICS = {
    "go_memstats_heap_alloc_bytes": "heap_alloc",
    "go_memstats_heap_inuse_bytes": "heap_inuse",
    "go_memstats_sys_bytes": "sys",
    "go_goroutines": "goroutines",
    "go_gc_duration_seconds_count": "num_gc",
    "go_gc_duration_seconds_sum": "pause_total",
    "go_memstats_gc_cpu_fraction": "gc_cpu_fraction",
    "go_memstats_last_gc_time_seconds": "last_gc",
    "go_sched_gomaxprocs_threads": "gomaxprocs",
    "process_start_time_seconds": "start_time",
    "go_cpu_classes_gc_total_cpu_seconds_total": "gc_cpu_seconds",
}
EXPVAR_MEMSTATS = {
    "HeapAlloc": "heap_alloc",
    "HeapInuse": "heap_inuse",
    "Sys": "sys",
    "NumGC": "num_gc",
    "PauseTotalNs": "pause_total",
    "GCCPUFraction": "gc_cpu_fraction",
    "LastGC": "last_gc",
}
NS = 1e9


# ---------------------------------------------------------------- parsers (pure)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("%s is %r, not a number" % (where, value))
    return value


def parse_expvar(text: str) -> Dict[str, float]:
    """/debug/vars: the runtime figures of its memstats (times in seconds), and goroutines
    when the program published them (expvar itself does not)."""
    try:
        page = json.loads(text)
    except ValueError as exc:
        raise ValueError("not JSON (%s)" % exc) from None
    memstats = page.get("memstats") if isinstance(page, dict) else None
    if not isinstance(memstats, dict):
        raise ValueError("no memstats object: not a Go program's expvar page")
    runtime: Dict[str, float] = {}
    for key, name in EXPVAR_MEMSTATS.items():
        if key in memstats:
            runtime[name] = _number(memstats[key], "memstats." + key)
    for key in ("heap_alloc", "sys"):
        if key not in runtime:
            raise ValueError("memstats has no %s" % key)
    runtime["pause_total"] = runtime.get("pause_total", 0) / NS
    runtime["last_gc"] = runtime.get("last_gc", 0) / NS
    for key in ("goroutines", "gomaxprocs"):
        if isinstance(page.get(key), int) and not isinstance(page.get(key), bool):
            runtime[key] = page[key]
    return runtime


MAX_SAMPLES = 100000  # a body with more is no Go runtime's page: the scrape fails


def parse_go_metrics(text: str) -> Dict[str, float]:
    """A Prometheus exposition's go_* (and process_start_time_seconds) samples as the same
    runtime figures parse_expvar gives."""
    runtime: Dict[str, float] = {}
    try:
        scanned = exposition.scan(text, GO_METRICS.__contains__, MAX_SAMPLES)
    except ValueError as exc:
        raise ValueError("not a Go program's metrics: %s" % exc) from None
    for name, labels, value, _ in scanned["samples"]:
        if not labels:
            runtime[GO_METRICS[name]] = value
    for key in ("heap_alloc", "sys"):
        if key not in runtime:
            raise ValueError("no %s sample: not a Go program's metrics" % _go_name(key))
    return runtime


def _go_name(key: str) -> str:
    return next(name for name, figure in GO_METRICS.items() if figure == key)


def parse_runtime(text: str, form: str) -> Tuple[str, Dict[str, float]]:
    """(source, figures) of a fetched page; `auto` takes a JSON object for expvar."""
    if form == "auto":
        form = "expvar" if text.lstrip().startswith("{") else "prometheus"
    if form == "expvar":
        return form, parse_expvar(text)
    return form, parse_go_metrics(text)


# ---------------------------------------------------------------- fetching
#
# One HTTP/1.0 GET on a socket rather than http.client: importing http.client (and the
# email package under it) costs a one-shot run more CPU than the whole fetch. HTTP/1.0 with
# Connection: close means the body ends when the server closes the connection (a Go
# server sends no chunked encoding to a 1.0 client; a chunked body is decoded anyway).


class FetchFailed(ValueError):
    """The endpoint answered, but not with a page: the reason is the message."""


def parse_http_response(data: bytes) -> Tuple[int, str, Dict[str, str], str]:
    """(status, reason, headers with lower-case names, body as UTF-8 text) of a whole
    HTTP/1.x response."""
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError("invalid HTTP response (no end of its headers)")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or not status[1].isdigit():
        raise ValueError("invalid HTTP response (status line %r)" % lines[0][:80])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _unchunked(body)
    elif headers.get("content-length", "").isdigit():
        body = body[: int(headers["content-length"])]
    reason = status[2] if len(status) > 2 else ""
    return int(status[1]), reason, headers, body.decode("utf-8", "replace")


def _unchunked(body: bytes) -> bytes:
    parts = []
    position = 0
    while True:
        line_end = body.find(b"\r\n", position)
        size_text = body[position:line_end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ValueError("invalid HTTP response (chunk size %r)" % size_text[:20]) from None
        if line_end < 0 or size == 0:
            return b"".join(parts)
        parts.append(body[line_end + 2 : line_end + 2 + size])
        position = line_end + 2 + size + 2


def fetch(url: str, deadline: float, max_body: int) -> str:
    """The page's text; FetchFailed or OSError (refused, timed out) when it cannot be had."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise FetchFailed("not an http:// URL")
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    host = parts.netloc.rpartition("@")[2]
    request = "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: %s\r\nConnection: close\r\n\r\n" % (
        path,
        host,
        USER_AGENT,
    )
    sock = socket.create_connection((parts.hostname, parts.port or 80), timing.left(deadline))
    data = bytearray()
    try:
        sock.sendall(request.encode("latin-1"))
        while True:
            sock.settimeout(timing.left(deadline))
            try:
                chunk = sock.recv(READ_CHUNK)
            except ConnectionResetError:
                if not data:
                    raise
                break  # it answered and closed without reading the request: judge the answer
            if not chunk:
                break
            data.extend(chunk)
            _check_size(data, max_body)
    finally:
        sock.close()
    status, reason, _, body = parse_http_response(bytes(data))
    if status != 200:
        raise FetchFailed("HTTP %d %s" % (status, reason))
    return body


def _check_size(data: bytearray, max_body: int) -> None:
    """A hostile or broken endpoint must not fill the target's memory."""
    header_end = data.find(b"\r\n\r\n")
    if header_end < 0:
        if len(data) > MAX_HEADERS:
            raise FetchFailed("the response's headers are longer than %d bytes" % MAX_HEADERS)
    elif len(data) - header_end - 4 > max_body:
        raise FetchFailed("the page is longer than max_body (%d bytes)" % max_body)


def _fetch_runtime(args: Dict[str, Any], ctx: Any) -> Tuple[str, Dict[str, float]]:
    budget = timing.budget(args, ctx)
    url = str(args["url"])
    try:
        text = fetch(url, time.monotonic() + budget, int(args.get("max_body") or 4000000))
    except ValueError as exc:  # FetchFailed, or a response that is not HTTP
        raise RuntimeError("GET %s: %s" % (url, exc)) from None
    except OSError as exc:
        from ._utils import netprobe  # its ssl import is paid only when a fetch fails

        raise RuntimeError("GET %s: %s" % (url, netprobe.describe_error(exc, budget))) from None
    try:
        return parse_runtime(text, str(args.get("format") or "auto"))
    except ValueError as exc:
        raise RuntimeError("GET %s: %s" % (url, exc)) from None


# ---------------------------------------------------------------- the process and its cgroup


def _process(args: Dict[str, Any], ctx: Any) -> Optional[int]:
    """The Go process's pid, when the check names it."""
    if args.get("pid") not in (None, ""):
        return int(args["pid"])
    if not args.get("pattern"):
        return None
    selector = processes.Selector({"pattern": args["pattern"]})
    if ctx.psutil is not None:
        found = processes.psutil_processes(ctx.psutil, selector)
    else:
        found = processes.procfs_processes(ctx.proc_root, selector)
    pids = sorted(pid for pid, proc in found.items() if not proc["zombie"])
    if len(pids) != 1:
        raise RuntimeError(
            "%d processes match %s: give one Go process (a narrower pattern, or pid)"
            % (len(pids), selector.describe())
        )
    return pids[0]


def _cgroup(args: Dict[str, Any], ctx: Any, pid: Optional[int]) -> Any:
    selection = {"cgroup_root": args.get("cgroup_root")}
    if args.get("cgroup"):
        selection["path"] = args["cgroup"]
    elif args.get("unit"):
        selection["unit"] = args["unit"]
    elif args.get("container"):
        selection["container"] = args["container"]
    elif pid is not None:
        selection["pid"] = pid
    else:
        return None
    return cgroups.find(selection, ctx.proc_root, ctx.psutil)


def _start_time(proc_root: str, pid: int) -> float:
    """The process's start, in seconds since the epoch (boot time + its start in ticks)."""
    stat = processes.parse_proc_stat(procfs.read_text(os.path.join(proc_root, str(pid), "stat")))
    boot = parse_btime(procfs.read_text(os.path.join(proc_root, "stat")))
    return boot + stat["starttime"] / float(procfs.user_hz())


def parse_btime(text: str) -> int:
    """/proc/stat's btime: the boot time in seconds since the epoch."""
    for line in text.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise ValueError("no btime line")


def parse_cpu_list(text: str) -> int:
    """How many CPUs a list such as `0-3,8,10-11` (Cpus_allowed_list) names."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def _gomaxprocs(proc_root: str, pid: int) -> Tuple[Optional[int], str]:
    """The process's GOMAXPROCS from its environment, else its allowed CPUs (Go's default
    before 1.25, which also caps it by the cgroup's CPU quota)."""
    base = os.path.join(proc_root, str(pid))
    try:
        environ = procfs.read_text(os.path.join(base, "environ")).split("\0")
    except OSError:
        environ = []
    for entry in environ:
        if entry.startswith("GOMAXPROCS="):
            try:
                return int(entry.split("=", 1)[1]), "the GOMAXPROCS environment variable"
            except ValueError:
                break
    try:
        status = processes.parse_proc_status(procfs.read_text(os.path.join(base, "status")))
    except OSError:
        return None, "unknown"
    if "Cpus_allowed_list" in status:
        return parse_cpu_list(status["Cpus_allowed_list"]), "its allowed CPUs"
    return None, "unknown"


def sample(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    """The runtime's figures and the cgroup's counters now; the window's second reading
    keeps the process and cgroup its first one found."""
    before = getattr(ctx, "before", None)
    if before:
        pid, cgroup, process = before["pid"], before["cgroup"], before["process"]
    else:
        pid = _process(args, ctx)
        cgroup = _cgroup(args, ctx, pid)
        process = _process_facts(args, ctx, pid)
    started = time.monotonic()
    counters = cgroups.read_counters(cgroup) if cgroup is not None else {}
    source, runtime = _fetch_runtime(args, ctx)
    return {
        "pid": pid,
        "cgroup": cgroup,
        "process": process,
        "source": source,
        "runtime": runtime,
        "counters": counters,
        "taken": (started + time.monotonic()) / 2,
    }


def _process_facts(args: Dict[str, Any], ctx: Any, pid: Optional[int]) -> Dict[str, Any]:
    """What the GC CPU estimate needs of the process: start time and GOMAXPROCS."""
    facts: Dict[str, Any] = {}
    if args.get("gomaxprocs"):
        facts["gomaxprocs"], facts["gomaxprocs_from"] = int(args["gomaxprocs"]), "the option"
    if pid is None:
        return facts
    try:
        facts["start_time"] = _start_time(ctx.proc_root, pid)
    except (OSError, ValueError) as exc:
        raise RuntimeError("cannot read process %d: %s" % (pid, exc)) from None
    if "gomaxprocs" not in facts:
        facts["gomaxprocs"], facts["gomaxprocs_from"] = _gomaxprocs(ctx.proc_root, pid)
    return facts


# ---------------------------------------------------------------- over the window


def _percent(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 6)


def gc_cpu_seconds(
    runtime: Dict[str, float], start: Optional[float], procs: Optional[int]
) -> Optional[float]:
    """GC CPU seconds from the start to the last collection's end: GCCPUFraction is
    work.totaltime / (GOMAXPROCS x (LastGC - start)) in the runtime (mgc.go)."""
    if not runtime.get("last_gc") or runtime.get("num_gc") == 0:
        return 0.0 if "gc_cpu_fraction" in runtime else None
    if "gc_cpu_fraction" not in runtime or start is None or not procs:
        return None
    return runtime["gc_cpu_fraction"] * procs * max(0.0, runtime["last_gc"] - start)


def gc_values(
    then: Dict[str, float], now: Dict[str, float], process: Dict[str, Any], elapsed: float
) -> Tuple[Dict[str, float], str]:
    """Collections, pause time and GC CPU over the window, and how GC CPU was had."""
    values: Dict[str, float] = {}
    if "num_gc" in now and "num_gc" in then:
        values["gc_cycles"] = max(0, now["num_gc"] - then["num_gc"])
    if "pause_total" in now and "pause_total" in then and elapsed > 0:
        values["gc_pause"] = round(max(0.0, now["pause_total"] - then["pause_total"]), 9)
        values["gc_pause_percent"] = _percent(values["gc_pause"], elapsed)
    if "gc_cpu_fraction" in now:
        values["gc_cpu_fraction"] = round(100.0 * now["gc_cpu_fraction"], 6)
    if elapsed <= 0:
        return values, "no window"
    if (
        "gc_cpu_seconds" in now
        and "gc_cpu_seconds" in then
        and now["gc_cpu_seconds"] >= then["gc_cpu_seconds"]
    ):
        used = max(0.0, now["gc_cpu_seconds"] - then["gc_cpu_seconds"])
        values["gc_cpu_cores"] = round(used / elapsed, 6)
        return values, "runtime_metrics"
    if then.get("start_time") != now.get("start_time") or now.get("num_gc", 0) < then.get(
        "num_gc", 0
    ):
        return values, "the program restarted during the window"
    start = now.get("start_time", process.get("start_time"))
    procs = now.get("gomaxprocs", process.get("gomaxprocs"))
    before, after = gc_cpu_seconds(then, start, procs), gc_cpu_seconds(now, start, procs)
    if before is None or after is None:
        if "gc_cpu_fraction" not in now:
            return values, "not exposed (no GCCPUFraction nor GC CPU counter)"
        return values, "needs the process's start time and GOMAXPROCS: give pid or pattern"
    values["gc_cpu_cores"] = round(max(0.0, after - before) / elapsed, 6)
    if procs:  # the runtime's own fraction, over the window instead of the whole life
        values["gc_window_fraction"] = _percent(values["gc_cpu_cores"], procs)
    return values, "gc_cpu_fraction"


def correlation(runtime: Dict[str, float], memory: Dict[str, float]) -> Dict[str, float]:
    """Heap (in use) and Sys as shares of the cgroup's usage and of its limit."""
    values: Dict[str, float] = {}
    heap = runtime.get("heap_inuse", runtime["heap_alloc"])
    usage, limit = memory.get("memory_usage"), memory.get("memory_limit")
    if usage:
        values["heap_usage_percent"] = _percent(heap, usage)
        values["sys_usage_percent"] = _percent(runtime["sys"], usage)
    if limit:
        values["heap_limit_percent"] = _percent(heap, limit)
        values["sys_limit_percent"] = _percent(runtime["sys"], limit)
    return values


def gc_share(
    gc_cores: float, cpu: Dict[str, float], procs: Optional[float], elapsed: float
) -> float:
    """GC's share (%) of the time the program's Ps were busy in the window, that time
    estimated as the cgroup's CPU time plus its throttled time (at most GOMAXPROCS x the
    window). The runtime counts GC time as wall time on a P: a P whose thread is throttled
    by the quota keeps counting, so dividing by CPU time alone would overstate the share
    by the throttling (and can pass 100%)."""
    busy = (cpu["cpu_cores"] + cpu.get("throttled_time", 0.0) / elapsed) if elapsed > 0 else 0.0
    if procs:
        busy = min(busy, float(procs))
    busy = max(busy, cpu["cpu_cores"])
    return _percent(gc_cores, busy) if busy > 0 else 0.0


def diagnoses(values: Dict[str, float]) -> List[str]:
    found = []
    quota, gc = values.get("cpu_quota_percent"), values.get("gc_cpu_percent")
    if quota is not None and gc is not None and quota >= HIGH_QUOTA_PERCENT:
        if gc >= GC_PRESSURE_PERCENT:
            found.append("CPU %.0f%% of quota, of which GC %.0f%%: GC pressure" % (quota, gc))
        else:
            found.append("CPU %.0f%% of quota, of which GC %.0f%%: not GC" % (quota, gc))
    if values.get("sys_limit_percent", 0) >= HIGH_LIMIT_PERCENT:
        note = "Sys at %.0f%% of the memory limit" % values["sys_limit_percent"]
        if values.get("heap_limit_percent") is not None:
            note += " (heap in use %.0f%%)" % values["heap_limit_percent"]
        found.append(note)
    return found


def _runtime_values(runtime: Dict[str, float]) -> Dict[str, float]:
    values = {"heap_alloc": runtime["heap_alloc"], "sys": runtime["sys"]}
    for key in ("heap_inuse", "goroutines"):
        if key in runtime:
            values[key] = runtime[key]
    return values


def _message(values: Dict[str, float], facts: Dict[str, Any]) -> str:
    parts = ["heap %.1f MiB in use" % (values.get("heap_inuse", values["heap_alloc"]) / MIB)]
    parts.append("Sys %.1f MiB" % (values["sys"] / MIB))
    if "goroutines" in values:
        parts.append("%d goroutines" % values["goroutines"])
    if "gc_cycles" in values:
        gc = "%d GCs in %.1fs" % (values["gc_cycles"], facts["window"])
        if "gc_cpu_cores" in values:
            gc += " using %.2f cores" % values["gc_cpu_cores"]
        parts.append(gc)
    text = "go runtime (%s): %s" % (facts["source"], ", ".join(parts))
    if "cgroup" in facts:
        text += "; cgroup %s: %s" % (facts["cgroup"], _cgroup_message(values))
    if facts["diagnosis"]:
        text += ": " + "; ".join(facts["diagnosis"])
    return text


def _cgroup_message(values: Dict[str, float]) -> str:
    parts = []
    if "memory_usage" in values:
        if "memory_limit" in values:
            parts.append(
                "memory %.1f MiB of %.1f MiB (%.1f%%), heap %.0f%% of usage, Sys %.0f%% of limit"
                % (
                    values["memory_usage"] / MIB,
                    values["memory_limit"] / MIB,
                    values["memory_percent"],
                    values.get("heap_usage_percent", 0.0),
                    values["sys_limit_percent"],
                )
            )
        else:
            parts.append(
                "memory %.1f MiB, unlimited, heap %.0f%% of usage"
                % (values["memory_usage"] / MIB, values.get("heap_usage_percent", 0.0))
            )
    if "cpu_cores" in values:
        cpu = "CPU %.2f cores" % values["cpu_cores"]
        if "cpu_quota_percent" in values:
            cpu += " (%.0f%% of quota)" % values["cpu_quota_percent"]
        if "gc_cpu_percent" in values:
            cpu += ", GC %.0f%% of it" % values["gc_cpu_percent"]
        parts.append(cpu)
    return ", ".join(parts) or "no counters"


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    before, after, _ = window.snapshots(sample, args, ctx)
    elapsed = after["taken"] - before["taken"]
    values = _runtime_values(after["runtime"])
    gc, method = gc_values(before["runtime"], after["runtime"], after["process"], elapsed)
    values.update(gc)
    facts: Dict[str, Any] = {
        "source": after["source"],
        "gc_cpu_method": method,
        "window": round(elapsed, 3),
    }
    process = after["process"]
    if "gomaxprocs" in after["runtime"]:
        facts["gomaxprocs"] = "%d (go_sched_gomaxprocs_threads)" % after["runtime"]["gomaxprocs"]
    elif process.get("gomaxprocs"):
        facts["gomaxprocs"] = "%d (%s)" % (process["gomaxprocs"], process["gomaxprocs_from"])
    cgroup = after["cgroup"]
    if cgroup is not None:
        procs = after["runtime"].get("gomaxprocs", process.get("gomaxprocs"))
        _add_cgroup(values, facts, cgroup, before["counters"], after, elapsed, procs)
    facts["diagnosis"] = diagnoses(values)
    return {
        "measurements": values,
        "facts": facts,
        "failures": [],
        "message": _message(values, facts),
    }


def _add_cgroup(
    values: Dict[str, float],
    facts: Dict[str, Any],
    cgroup: Any,
    then: Dict[str, Any],
    after: Dict[str, Any],
    elapsed: float,
    procs: Optional[float],
) -> None:
    if not all(os.path.isdir(directory) for directory in cgroup.dirs.values()):
        raise RuntimeError("cgroup %s was removed during the sampling window" % cgroup.path)
    now = after["counters"]
    memory = cgroups.memory_values(now)
    for key in ("memory_usage", "memory_limit", "memory_percent"):
        if key in memory:
            values[key] = memory[key]
    cpu = cgroups.cpu_values(then, now, elapsed)
    for key in ("cpu_cores", "cpu_quota_cores", "cpu_quota_percent"):
        if key in cpu:
            values[key] = cpu[key]
    values.update(correlation(after["runtime"], memory))
    if "gc_cpu_cores" in values and cpu.get("cpu_cores"):
        share = gc_share(values["gc_cpu_cores"], cpu, procs, elapsed)
        facts["gc_cpu_capped"] = share > 100.0
        values["gc_cpu_percent"] = min(100.0, share)
    facts["cgroup"] = cgroup.path
    if "memory_usage" in now and now.get("memory_limit") is None:
        facts["memory_limit"] = "unlimited"
