#!/usr/bin/env python3
"""Log scanning speed: the log module against GNU grep and a plain per-line Python loop.

A deterministic ~180 MB synthetic application log (timestamp, level, component, message;
about 0.5% of its lines match one of 5 patterns, keywords and regexes mixed) is generated
once into bench/.cache/ (git-ignored). With the page cache warm, each leg scans the whole
file and the median of --runs is reported:

1. ours: modules/log.py called in-process (start: beginning, max_bytes large), as the
   target runs it; also with `prefilter: grep` for information.
2. grep: `LC_ALL=C grep -c -E -e p1 ... -e p5 FILE` with its output sent to a real file
   (grep -c stops nowhere, but /dev/null lets GNU grep stop at the first match).
3. loop: `for line in f: for rx in regexes: rx.search(line)`, the obvious Python.

Prints MB/s for each, the ratios ours/grep (target >= 0.5) and ours/loop, and whether our
counts equal the loop's (OK/MISMATCH). Run by hand: python3 bench/log_scan.py [--runs 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "bench" / ".cache"
SIZE = 180 * 1000 * 1000
SEED = 20261127
GENERATOR_VERSION = 1  # bump when the generated log changes

# (name, log module pattern, the same as a POSIX ERE for grep -E, line injected to match it)
PATTERNS = [
    (
        "errors",
        {"regex": r" ERROR \[(?P<component>[\w-]+)\]"},
        r" ERROR \[[[:alnum:]_-]+\]",
        "ERROR [{comp}] request failed: {msg}",
    ),
    (
        "timeouts",
        {"keyword": "upstream timed out"},
        "upstream timed out",
        "WARN  [{comp}] upstream timed out (110: Connection timed out) while reading response",
    ),
    (
        "server_errors",
        {"regex": r"status=5\d\d "},
        "status=5[0-9][0-9] ",
        "INFO  [{comp}] GET /api/v1/items/{n} status=503 took={ms}ms user=u{user}",
    ),
    (
        "oom",
        {"keyword": "java.lang.OutOfMemoryError"},
        "java.lang.OutOfMemoryError",
        "ERROR [{comp}] java.lang.OutOfMemoryError: Java heap space",
    ),
    (
        "resets",
        {"regex": r"connection (?:reset|refused) by peer"},
        "connection (reset|refused) by peer",
        "WARN  [{comp}] read failed: connection reset by peer ({n})",
    ),
]
MATCH_RATE = 0.001  # per pattern: 0.5% of the lines in all

COMPONENTS = [f"http-worker-{i}" for i in range(16)] + ["db-pool", "scheduler", "cache", "auth"]
MESSAGES = [
    "GET /api/v1/items/{n} status=200 took={ms}ms user=u{user}",
    "POST /api/v1/orders status=201 took={ms}ms user=u{user}",
    "GET /health status=200 took=1ms",
    "cache hit key=item:{n} ttl=300",
    "cache miss key=item:{n}",
    "query SELECT * FROM items WHERE id = {n} rows=1 took={ms}ms",
    "job {n} finished in {ms}ms",
    "session {n} refreshed for u{user}",
    "GET /api/v1/users/u{user}/profile status=304 took={ms}ms",
]
LEVELS = ["INFO ", "INFO ", "INFO ", "DEBUG", "DEBUG", "WARN "]


class Ctx:
    timeout = 3600.0
    psutil = None
    proc_root = "/proc"

    def remaining(self) -> float:
        return 3600.0


def load_module():
    spec = importlib.util.spec_from_file_location("bench_log_module", REPO / "modules" / "log.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate(path: Path) -> None:
    rng = random.Random(SEED)
    tmp = path.with_suffix(".tmp")
    written = 0
    second = 0
    with open(tmp, "w", encoding="utf-8", newline="\n") as out:
        while written < SIZE:
            batch = []
            for _ in range(10000):
                second += 1
                millis = rng.randrange(1000)
                stamp = (
                    f"2026-11-27T{second // 3600 % 24:02d}:{second // 60 % 60:02d}:"
                    f"{second % 60:02d}.{millis:03d}Z"
                )
                fields = {
                    "comp": rng.choice(COMPONENTS),
                    "n": rng.randrange(10**6),
                    "ms": rng.randrange(1, 900),
                    "user": rng.randrange(10**4),
                    "msg": "upstream returned 502",
                }
                roll = rng.random()
                if roll < MATCH_RATE * len(PATTERNS):
                    text = PATTERNS[int(roll / MATCH_RATE)][3].format(**fields)
                else:
                    level, message = rng.choice(LEVELS), rng.choice(MESSAGES)
                    text = f"{level} [{fields['comp']}] {message.format(**fields)}"
                batch.append(f"{stamp} {text} trace={rng.getrandbits(64):016x}\n")
            chunk = "".join(batch)
            out.write(chunk)
            written += len(chunk)
    tmp.replace(path)


def log_file() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"app-{SEED}-v{GENERATOR_VERSION}.log"
    if not path.exists():
        print(f"generating {path} (once) ...", flush=True)
        started = time.perf_counter()
        generate(path)
        print(f"  {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s")
    return path


def warm(path: Path) -> None:
    with open(path, "rb") as handle:
        while handle.read(16 << 20):
            pass


def timed(runs: int, fn):
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def ours(module, path: Path, prefilter: str):
    args = {
        "path": str(path),
        "patterns": [{"name": name, **spec} for name, spec, _, _ in PATTERNS],
        "start": "beginning",
        "max_bytes": 10**12,
        "samples": 3,
        "sample_length": 512,
        "encoding": "utf-8",
        "exclude": [],
        "prefilter": prefilter,
        "_cursors": {},
    }
    result = module.run(args, Ctx())
    m = result["measurements"]
    return {name: m[name] for name, _, _, _ in PATTERNS}, m["matches"], m["lines"]


def grep(path: Path, out_dir: str) -> int:
    argv = [shutil.which("grep") or "grep", "-c", "-E"]
    for _, _, ere, _ in PATTERNS:
        argv += ["-e", ere]
    out = os.path.join(out_dir, "grep.out")
    with open(out, "w") as handle:
        subprocess.run(
            [*argv, str(path)],
            stdout=handle,
            env=dict(os.environ, LC_ALL="C"),
            timeout=600,
            check=False,
        )
    return int(Path(out).read_text().strip() or 0)


def loop(path: Path):
    compiled = []
    for name, spec, _, _ in PATTERNS:
        source = spec.get("regex") or re.escape(spec["keyword"])
        compiled.append((name, re.compile(source.encode())))
    counts = {name: 0 for name, _ in compiled}
    matches = lines = 0
    with open(path, "rb") as handle:
        for line in handle:
            lines += 1
            line = line[:-1]
            hit = False
            for name, rx in compiled:
                if rx.search(line):
                    counts[name] += 1
                    hit = True
            matches += hit
    return counts, matches, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-loop", action="store_true", help="skip the slow Python loop")
    options = parser.parse_args()

    path = log_file()
    size_mb = path.stat().st_size / 1e6
    module = load_module()
    warm(path)
    print(
        f"log: {size_mb:.0f} MB, {len(PATTERNS)} patterns, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, median of {options.runs} runs, page cache warm"
    )
    rows = []
    ours_s, (counts, matches, lines) = timed(options.runs, lambda: ours(module, path, "python"))
    rows.append(("ours (log module)", ours_s))
    ours_grep_s, (g_counts, g_matches, _) = timed(options.runs, lambda: ours(module, path, "grep"))
    rows.append(("ours, prefilter: grep", ours_grep_s))
    with tempfile.TemporaryDirectory(prefix="log-bench-") as out_dir:
        grep_s, grep_count = timed(options.runs, lambda: grep(path, out_dir))
    rows.append(("grep -c -E", grep_s))
    loop_s = None
    if not options.skip_loop:
        loop_s, (l_counts, l_matches, l_lines) = timed(
            max(1, min(options.runs, 3)), lambda: loop(path)
        )
        rows.append(("per-line Python re loop", loop_s))

    print()
    print(f"{'leg':<28}{'seconds':>9}{'MB/s':>9}")
    for label, seconds in rows:
        print(f"{label:<28}{seconds:>9.3f}{size_mb / seconds:>9.0f}")
    print()
    print(f"lines {lines}, matching {matches} ({100.0 * matches / lines:.2f}%): {counts}")
    print(f"ours/grep  {grep_s / ours_s:5.2f}  (throughput ratio; target >= 0.5)")
    if loop_s is not None:
        print(f"ours/loop  {loop_s / ours_s:5.2f}")
    checks = {
        "grep -c equals our matches": grep_count == matches,
        "prefilter grep equals python": (g_counts, g_matches) == (counts, matches),
    }
    if loop_s is not None:
        checks["loop equals ours"] = (l_counts, l_matches, l_lines) == (counts, matches, lines)
    for label, ok in checks.items():
        print(f"{'OK' if ok else 'MISMATCH'}: {label}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
