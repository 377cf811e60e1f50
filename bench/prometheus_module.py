#!/usr/bin/env python3
"""Target CPU per scrape: the prometheus module against `curl -s` of the same URL.

A real prometheus-node-exporter (Debian's, default collectors) listens on a free loopback
port. In the same run, each leg scrapes its /metrics --scrapes times, and the CPU time it
used (user + system) is divided by the number of scrapes; the median of --runs is printed:

1. curl: `curl -s -o /dev/null URL` in a loop, the CPU of the curl processes (rusage of
   the children): the floor, fetching the body without reading it.
2. module, one series: modules/prometheus.py run() in this process, as a live target
   process runs it, with `select: node_load1` (the name test skips the other lines).
3. module, all series: `select: '{__name__=~"node_.+"}'`, `aggregate: count`: every line's
   labels parsed and matched.
4. module, rate by label: `select: node_cpu_seconds_total`, `rate: true`, `by: [mode]`
   (two scrapes per result; counted per scrape).
5. module, one-shot batch: the shipped batch (one check, `select: node_load1`) run by a
   fresh `python3` per scrape, as a one-shot `checkrun` run starts it over SSH: interpreter
   start included, like curl's process start in the floor. The same for the load module
   (which reads one /proc file) shows what the interpreter's start alone costs.

Also printed: node_exporter's own CPU per scrape (from /proc/PID/stat over all legs), the
body size and its sample count, and the ratios of the module's legs to curl.
Run by hand: python3 bench/prometheus_module.py [--runs 5] [--scrapes 50]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from modules import prometheus  # noqa: E402  (the module as it runs on targets)
from modules._batch import CheckContext  # noqa: E402
from modules._utils import exposition  # noqa: E402

NODE_EXPORTER = "prometheus-node-exporter"
DEFAULT_ARGS = {
    "aggregate": "sum",
    "by": [],
    "rate": False,
    "sample": 0.0,
    "headers": {},
    "password": "",
    "verify_tls": True,
    "max_body": 16 * 1024 * 1024,
    "max_series": 1000000,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("node_exporter exited")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def curl_leg(curl: str, url: str, scrapes: int) -> float:
    before = children_cpu()
    for _ in range(scrapes):
        subprocess.run([curl, "-s", "-o", "/dev/null", url], check=True, timeout=30)
    return (children_cpu() - before) / scrapes


BOOTSTRAP = "import sys,zlib;exec(zlib.decompress(sys.stdin.buffer.read()))"


def batch_leg(module: str, args: dict, scrapes: int) -> float:
    import json
    import zlib

    from checkrunner import catalog

    batch = {
        "version": 1,
        "options": {"psutil": False, "nice": 0},
        "checks": [{"id": "1", "module": module, "args": args, "window": 0.0}],
    }
    sources = catalog.batch_sources([module])
    program = f"{catalog.batch_runner_source()}\n_main({sources!r}, {json.dumps(batch)!r})\n"
    payload = zlib.compress(program.encode())
    before = children_cpu()
    for _ in range(scrapes):
        done = subprocess.run(
            ["python3", "-c", BOOTSTRAP], input=payload, capture_output=True, timeout=30
        )
        assert b'"result"' in done.stdout, done.stdout[-500:] + done.stderr[-500:]
    return (children_cpu() - before) / scrapes


def module_leg(url: str, scrapes: int, **given) -> tuple[float, dict]:
    args = dict(DEFAULT_ARGS, url=url, **given)
    per_result = 2 if args["rate"] else 1
    results = max(1, scrapes // per_result)
    started = time.process_time()
    for _ in range(results):
        ctx = CheckContext("bench", 30.0, None)
        if args["rate"]:
            ctx.before = prometheus.sample(args, ctx)
            ctx.after = prometheus.sample(args, ctx)
        result = prometheus.run(args, ctx)
    return (time.process_time() - started) / (results * per_result), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scrapes", type=int, default=50)
    options = parser.parse_args()
    binary = shutil.which(NODE_EXPORTER) or f"/usr/bin/{NODE_EXPORTER}"
    curl = shutil.which("curl")
    if not Path(binary).exists() or curl is None:
        raise SystemExit("needs prometheus-node-exporter and curl (apt-get install them)")
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with (
        tempfile.TemporaryDirectory() as directory,
        open(Path(directory) / "node_exporter.log", "w") as log,
    ):
        server = subprocess.Popen(
            [binary, f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=log
        )
        try:
            wait_ready(url, server)
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
            samples = exposition.parse_exposition(body.decode())["count"]
            one_series = dict(DEFAULT_ARGS, url=url, select="node_load1")
            legs = {
                "curl -s (floor)": lambda: (curl_leg(curl, url, options.scrapes), None),
                "module, one series": lambda: module_leg(url, options.scrapes, select="node_load1"),
                "module, all series (count)": lambda: module_leg(
                    url, options.scrapes, select='{__name__=~"node_.+"}', aggregate="count"
                ),
                "module, rate by mode": lambda: module_leg(
                    url, options.scrapes, select="node_cpu_seconds_total", rate=True, by=["mode"]
                ),
                "module, one-shot batch": lambda: (
                    batch_leg("prometheus", one_series, options.scrapes),
                    None,
                ),
                "(python3 start: load batch)": lambda: (
                    batch_leg("load", {}, options.scrapes),
                    None,
                ),
            }
            figures: dict[str, list[float]] = {name: [] for name in legs}
            server_before = process_cpu(server.pid)
            total_scrapes = 0
            for _ in range(options.runs):
                for name, leg in legs.items():
                    cpu, result = leg()
                    figures[name].append(cpu)
                    total_scrapes += options.scrapes
                    if result is not None:
                        assert result["measurements"]["success"] == 1, result
            server_cpu = (process_cpu(server.pid) - server_before) / total_scrapes
        finally:
            server.terminate()
            server.wait(timeout=15)
    print(f"node_exporter /metrics: {len(body)} bytes, {samples} samples")
    floor = statistics.median(figures["curl -s (floor)"])
    for name, values in figures.items():
        median = statistics.median(values)
        ratio = "" if name.startswith("curl") else f"  ({median / floor:.2f}x curl)"
        print(f"{name:28s} {median * 1000:7.2f} ms CPU per scrape{ratio}")
    print(f"{'node_exporter serving':28s} {server_cpu * 1000:7.2f} ms CPU per scrape")


if __name__ == "__main__":
    main()
