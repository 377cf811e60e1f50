#!/usr/bin/env python3
"""The pressure and cgroup modules' target CPU per sample, against node_exporter's pressure
collector and against reading the same cgroup files with `cat`, in one run.

- pressure: the module (host-wide PSI: cpu, memory, io) run as the target runs it, and
  Debian's prometheus-node-exporter with only its pressure collector (no exporter metrics)
  scraped as often. The two also read the same counters over the same window: the
  deviation of the stall seconds is printed.
- cgroup: the module reading a real cgroup v1 made here (memory, cpu, cpuacct, pids, blkio
  and the v2 `unified` one, with a busy process in it) against the floor of a shell script
  that reads the same files: one `cat` of them per reading, two readings per sample (the
  window's ends), and the same reads in Python without parsing. node_exporter has no per-cgroup
  collector (its `cgroups` collector counts /proc/cgroups) and cAdvisor is not packaged
  here: there is no exporter to compare with.

Two ways the target runs a module, both measured:
- kept: in a process that stays (watch mode's kept connections): the batch runner's
  run_checks() on the shipped sources, in this process; CPU = this process's CPU time
  per sample (both readings of the window and run(); the window's sleep costs none);
- one-shot: a fresh `python3` per run, as `checkrun` over SSH starts it: the children's
  CPU per run, and beside it the same for a batch with no checks (the interpreter and the
  runner alone), so the module's own share shows.
node_exporter's CPU per scrape is its process's CPU time (psutil) over all scrapes.

Run by hand, as root, with the project's venv:
  .venv/bin/python bench/cgroup_psi.py [--samples 200] [--one-shot-runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from prometheus_servers import running_node_exporter  # noqa: E402 - the tests' real servers
from real_cgroups import made_cgroup  # noqa: E402 - the tests' real cgroups

from checkrunner import catalog  # noqa: E402
from checkrunner.modules import _batch  # noqa: E402

BOOTSTRAP = "import sys,zlib;exec(zlib.decompress(sys.stdin.buffer.read()))"
PSI_RESOURCES = ("cpu", "memory", "io")
READINGS = 2  # a sample of a rate is two readings, at both ends of its window
WINDOW = 2.0  # seconds, for the agreement of the stall times


def _check(module: str, args: dict) -> dict:
    return {"id": "1", "module": module, "args": {**args, "sample": 0}, "window": 0}


def _batch_of(checks: list[dict]) -> dict:
    return {"version": 1, "options": {"psutil": False, "nice": 0}, "checks": checks}


def kept_cpu_per_sample(module: str, args: dict, samples: int) -> float:
    """Seconds of this process's CPU per sample, the modules loaded once (a kept target)."""
    modules = _batch.load_modules(catalog.batch_sources([module]))
    batch = _batch_of([_check(module, args)])
    entries = _batch.run_checks(modules, batch, None)  # warm-up, and proof it works
    assert "result" in entries[0], entries[0]
    started = time.process_time()
    for _ in range(samples):
        _batch.run_checks(modules, batch, None)
    return (time.process_time() - started) / samples


def one_shot_cpu(checks: list[dict], runs: int) -> float:
    """Median seconds of CPU of a fresh python3 running the batch (a one-shot run's cost)."""
    names = sorted({check["module"] for check in checks})
    sources = catalog.batch_sources(names)
    batch = json.dumps(_batch_of(checks))
    program = f"{catalog.batch_runner_source()}\n_main({sources!r}, {batch!r})\n"
    payload = zlib.compress(program.encode())
    costs = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            ["python3", "-c", BOOTSTRAP], input=payload, capture_output=True, timeout=60
        )
        assert done.returncode == 0 and b"__CHECKRUN_RESULT__" in done.stdout, done.stderr
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        costs.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(costs)


def node_exporter_cpu_per_scrape(url: str, scrapes: int) -> float:
    process = next(
        child for child in psutil.Process().children() if child.name().startswith("prometheus-node")
    )
    _scrape(url)
    before = sum(process.cpu_times()[:2])
    for _ in range(scrapes):
        _scrape(url)
    return (sum(process.cpu_times()[:2]) - before) / scrapes


def _scrape(url: str) -> dict[tuple[str, str], float]:
    """node_pressure_*_seconds_total by (series name, resource) -> value."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("node_pressure_"):
                values[(sample.name, sample.labels.get("resource", ""))] = sample.value
    return values


def stall_agreement(url: str) -> list[tuple[str, float, float]]:
    """(series, node_exporter's seconds, the module's) over the same WINDOW: node_exporter
    scraped just outside the module's two readings."""
    from checkrunner.modules import pressure

    ctx = _batch.CheckContext("1", 30.0, None)
    first = _scrape(url)
    ctx.before = pressure.sample({}, ctx)
    time.sleep(WINDOW)
    ctx.after = pressure.sample({}, ctx)
    last = _scrape(url)
    ours = pressure.run({}, ctx)["measurements"]
    rows = []
    for resource_name in PSI_RESOURCES:
        for kind, word in (("some", "waiting"), ("full", "stalled")):
            key = (f"node_pressure_{resource_name}_{word}_seconds_total", "")
            if key in last and f"{resource_name}_{kind}_stall" in ours:
                theirs = last[key] - first[key]
                rows.append(
                    (f"{resource_name} {kind}", theirs, ours[f"{resource_name}_{kind}_stall"])
                )
    return rows


@contextmanager
def busy_cgroup(name: str) -> Iterator[list[Path]]:
    """A cgroup in every hierarchy mounted here, a 0.5-core quota, a busy process in it:
    its directories."""
    with made_cgroup(name) as made:
        made.set("cpu", "cpu.cfs_quota_us", "50000")
        made.start(
            "held = bytearray(32 << 20)\nprint('ready', flush=True)\nwhile True:\n    pass\n"
        )
        yield made.dirs


def cgroup_files(dirs: list[Path]) -> list[str]:
    """The files the cgroup module reads in this cgroup (read_counters' v1 + hybrid path)."""
    wanted = {
        "memory": [
            "memory.usage_in_bytes",
            "memory.limit_in_bytes",
            "memory.stat",
            "memory.oom_control",
        ],
        "cpu": ["cpu.stat", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
        "cpuacct": ["cpuacct.usage"],
        "pids": ["pids.current", "pids.max"],
        "blkio": ["blkio.throttle.io_service_bytes_recursive"],
    }
    return [str(d / f) for d in dirs for f in wanted.get(d.parent.name, [])]


def cat_cpu_per_sample(files: list[str], samples: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(samples):
        for _ in range(READINGS):
            subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True, timeout=10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / samples


def read_cpu_per_sample(files: list[str], samples: int) -> float:
    """The floor of any reader in Python: open and read the same files, parse nothing."""
    started = time.process_time()
    for _ in range(samples * READINGS):
        for path in files:
            with open(path, "rb") as handle:
                handle.read()
    return (time.process_time() - started) / samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--one-shot-runs", type=int, default=31)
    options = parser.parse_args()
    us = 1e6

    empty = one_shot_cpu([], options.one_shot_runs)
    print(f"one-shot python3 with an empty batch: {empty * 1e3:.1f} ms CPU per run")

    with tempfile.TemporaryDirectory() as scratch:
        textfiles = Path(scratch) / "textfile"
        textfiles.mkdir()
        with running_node_exporter(
            Path(scratch) / "ne", textfiles, collectors=("pressure",), exporter_metrics=False
        ) as url:
            ne = node_exporter_cpu_per_scrape(url, options.samples)
            ours = kept_cpu_per_sample("pressure", {}, options.samples)
            shot = one_shot_cpu([_check("pressure", {})], options.one_shot_runs)
            agreement = stall_agreement(url)
    print("\npressure (host PSI: cpu, memory, io)")
    print(f"  node_exporter --collector.pressure: {ne * us:8.0f} µs CPU per scrape")
    print(
        f"  pressure module, kept process:      {ours * us:8.0f} µs CPU per sample"
        f"  (ratio to node_exporter {ours / ne:.2f})"
    )
    print(
        f"  pressure module, one-shot python3:  {shot * 1e3:8.1f} ms CPU per run"
        f"  ({(shot - empty) * 1e3:.1f} ms above the empty batch)"
    )
    for series, theirs, mine in agreement:
        print(
            f"  stall over {WINDOW:.0f}s, {series}: node_exporter {theirs:.6f}s, module "
            f"{mine:.6f}s, deviation {abs(theirs - mine):.6f}s"
        )

    name = f"checkrun-bench-{os.getpid()}"
    with busy_cgroup(name) as dirs:
        time.sleep(0.5)
        files = cgroup_files(dirs)
        args = {"path": f"/{name}"}
        ours = kept_cpu_per_sample("cgroup", args, options.samples)
        shot = one_shot_cpu([_check("cgroup", args)], options.one_shot_runs)
        cat = cat_cpu_per_sample(files, options.samples)
        read = read_cpu_per_sample(files, options.samples)
    print(f"\ncgroup (v1 memory, cpu, cpuacct, pids, blkio + v2 unified; {len(files)} files)")
    print(f"  cat of the same files per sample:   {cat * us:8.0f} µs CPU per sample (floor)")
    print(f"  Python open+read of the same files: {read * us:8.0f} µs CPU per sample (floor)")
    print(
        f"  cgroup module, kept process:        {ours * us:8.0f} µs CPU per sample"
        f"  (ratio to cat {ours / cat:.2f})"
    )
    print(
        f"  cgroup module, one-shot python3:    {shot * 1e3:8.1f} ms CPU per run"
        f"  ({(shot - empty) * 1e3:.1f} ms above the empty batch)"
    )
    print("  cAdvisor: not packaged here, not measured; node_exporter has no per-cgroup collector")
    return 0


if __name__ == "__main__":
    sys.exit(main())
