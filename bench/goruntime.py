#!/usr/bin/env python3
"""The goruntime module's target CPU per sample, against the floor of fetching the same
page with `curl` and reading the same cgroup files with `cat`, in one run.

The Go service of the tests (tests/fixtures/goruntime/gcservice, built with Debian's
golang-go) runs in a real cgroup v1 made here (memory, cpu, cpuacct, pids, blkio and the
v2 `unified` one) holding 64 MiB of heap. A sample of the module is two readings (the
window's ends: the page and the cgroup's counters) and run(); so is a sample of the floors:
- curl + cat: per reading, one `curl -s` of the page and one `cat` of the cgroup files the
  module reads (a shell script doing the same job);
- Python: per reading, urllib's GET of the page and open+read of the same files, parsing
  nothing (the floor of any reader in Python).
Both pages are measured: /debug/vars (expvar, JSON with the 256 recent pauses) and
/metrics (go_* text). The service's own CPU per reading (serving the page, psutil) is
printed beside it: it is paid by the target too, by any scraper. No exporter reads a Go
runtime beside its cgroup; cAdvisor is not packaged here.

Two ways the target runs a module, as bench/cgroup_psi.py measures them: kept (watch
mode's kept process: this process's CPU per sample) and one-shot (a fresh python3 per run:
its CPU, beside an empty batch's).

Run by hand, as root, with the project's venv:
  .venv/bin/python bench/goruntime.py [--samples 200] [--one-shot-runs 31]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import goservice  # noqa: E402 - the tests' Go service
from cgroup_psi import (  # noqa: E402 - the cgroup bench's runners and file list
    READINGS,
    _check,
    cgroup_files,
    kept_cpu_per_sample,
    one_shot_cpu,
)
from real_cgroups import CGROUP_ROOT, made_cgroup  # noqa: E402 - the tests' real cgroups

HELD_MIB = 64


@contextmanager
def service_in_cgroup(name: str):
    """The Go service, holding HELD_MIB of heap, in a cgroup made in every hierarchy."""
    with made_cgroup(name) as made:
        made.set("memory", "memory.limit_in_bytes", str(512 << 20))
        made.set("cpu", "cpu.cfs_quota_us", "50000")
        service = goservice.start(f"bench-{name}", [d / "cgroup.procs" for d in made.dirs])
        try:
            service.get(f"/ctl/hold?mib={HELD_MIB}")
            yield service, made.dirs
        finally:
            service.stop()


def curl_cat_cpu_per_sample(url: str, files: list[str], samples: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for _ in range(samples * READINGS):
        subprocess.run(["curl", "-s", url], stdout=subprocess.DEVNULL, check=True, timeout=10)
        subprocess.run(["cat", *files], stdout=subprocess.DEVNULL, check=True, timeout=10)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / samples


def python_cpu_per_sample(url: str, files: list[str], samples: int) -> float:
    started = time.process_time()
    for _ in range(samples * READINGS):
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
        for path in files:
            with open(path, "rb") as handle:
                handle.read()
    return (time.process_time() - started) / samples


def service_cpu_per_reading(service: goservice.GoService, path: str, readings: int) -> float:
    process = psutil.Process(service.pid)
    before = sum(process.cpu_times()[:2])
    for _ in range(readings):
        service.get(path)
    return (sum(process.cpu_times()[:2]) - before) / readings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--one-shot-runs", type=int, default=31)
    options = parser.parse_args()
    us = 1e6
    empty = one_shot_cpu([], options.one_shot_runs)
    print(f"one-shot python3 with an empty batch: {empty * 1e3:.1f} ms CPU per run")
    name = f"checkrun-bench-go-{os.getpid()}"
    with service_in_cgroup(name) as (service, dirs):
        files = cgroup_files(dirs)
        for page in ("/debug/vars", "/metrics"):
            url = service.url(page)
            args = {"url": url, "pid": service.pid, "format": "auto", "max_body": 4000000}
            args["cgroup_root"] = str(CGROUP_ROOT)
            ours = kept_cpu_per_sample("goruntime", args, options.samples)
            shot = one_shot_cpu([_check("goruntime", args)], options.one_shot_runs)
            floor = curl_cat_cpu_per_sample(url, files, options.samples)
            python = python_cpu_per_sample(url, files, options.samples)
            served = service_cpu_per_reading(service, page, options.samples)
            size = len(service.get(page))
            print(f"\ngoruntime on {page} ({size} bytes) + the cgroup's {len(files)} files")
            print(f"  curl + cat per reading, two readings: {floor * us:8.0f} µs CPU per sample")
            print(f"  Python GET + open+read, two readings: {python * us:8.0f} µs CPU per sample")
            print(
                f"  goruntime module, kept process:      {ours * us:8.0f} µs CPU per sample"
                f"  (ratio to curl + cat {ours / floor:.2f})"
            )
            print(
                f"  goruntime module, one-shot python3:  {shot * 1e3:8.1f} ms CPU per run"
                f"  ({(shot - empty) * 1e3:.1f} ms above the empty batch)"
            )
            print(f"  the Go service serving the page:     {served * us:8.0f} µs CPU per reading")
    return 0


if __name__ == "__main__":
    sys.exit(main())
