#!/usr/bin/env python3
"""Self-healing benchmark (issue 14): time from a failure to "remediated".

A real service on this machine (tests/supervised.py: a python3 http.server under a supervisor
script; `systemctl restart app.service` is a stand-in on PATH that calls the script), checked
over the local connection by `app health` (an HTTP check) that notifies the handler
`service: app.service` with `settle: --settle`. The service is SIGKILLed and:

- watch: a real `checkrun watch` at `interval: --interval` (5s) and `for: --for` (2); the kill
  comes at a random phase of the interval, `--watch-repeats` times; measured: seconds from the
  kill to the `remediation` event saying "remediated", and the part of it that is the
  remediation itself (action + settle + verify, from the event). Floors, measured here in
  the same window: the detection floor is what `for:` waits by construction, (for - 1) x
  interval plus the mean phase (interval / 2); the remediation floor is settle + the bare
  restart (the supervisor script run directly).
- one-shot: `checkrun PLAYBOOK` on the dead service, `--one-shot-runs` times: wall time of the
  run that restarts it against the same run with `--no-remediate` plus the bare restart and
  settle (what a person would do by hand after the run).

Run by hand, as root, with the project's venv:
  .venv/bin/python bench/remediation.py [--watch-repeats 5] [--one-shot-runs 5]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import wait_for  # noqa: E402
from supervised import Supervised, supervised_service  # noqa: E402 - the tests' real service
from watching import WatchProcess  # noqa: E402 - `checkrun watch` and its events

REMEDIATED = re.compile(r"exit 0, remediated after ([0-9.]+)s")


def playbook(folder: Path, service: Supervised, interval: str, for_runs: int, settle: str) -> Path:
    path = folder / "heal.yml"
    path.write_text(
        "- name: app\n  hosts: localhost\n  connection: local\n  handlers:\n"
        f"    - {{name: restart app, service: app.service, settle: {settle}, cooldown: 0s, "
        "max_runs: 1000}\n  checks:\n    - name: app health\n"
        f"      http: {{url: 'http://127.0.0.1:{service.port}/health', status: [200], "
        f"timeout: 2s}}\n      interval: {interval}\n      for: {for_runs}\n"
        "      notify: [restart app]\n"
    )
    return path


def seconds(text: str) -> float:
    return float(text.rstrip("s"))


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return time.monotonic() - started, done


def bare_restart(service: Supervised) -> float:
    service.kill()
    command = ["sh", str(service.script), "restart", str(service.folder), str(service.port)]
    elapsed, done = timed(command, dict(os.environ))
    assert done.returncode == 0, done.stderr
    return elapsed


def one_shot(args, folder: Path, service: Supervised, env: dict[str, str]) -> None:
    path = playbook(folder, service, "10s", 1, args.settle)
    state = ["--state", str(folder / "one-shot.db")]
    healed, plain, restarts = [], [], []
    for _ in range(args.one_shot_runs):
        service.kill()
        elapsed, done = timed(["checkrun", str(path), *state, "--no-remediate"], env)
        plain.append(elapsed)
        elapsed, done = timed(["checkrun", str(path), *state], env)
        assert REMEDIATED.search(done.stderr), done.stderr
        healed.append(elapsed)
        restarts.append(bare_restart(service))
    settle = seconds(args.settle)
    floor = statistics.median(plain) + statistics.median(restarts) + settle
    print(
        f"one-shot: run that restarts the service {statistics.median(healed):.2f} s "
        f"(median of {len(healed)}); the run with --no-remediate "
        f"{statistics.median(plain):.2f} s + bare restart {statistics.median(restarts):.2f} s "
        f"+ settle {settle:g} s = {floor:.2f} s; ratio {statistics.median(healed) / floor:.2f}"
    )


def watch(args, folder: Path, service: Supervised, env: dict[str, str]) -> None:
    interval = seconds(args.interval)
    path = playbook(folder, service, args.interval, args.for_runs, args.settle)
    restarts = [bare_restart(service) for _ in range(3)]
    totals, healing = [], []
    os.environ["PATH"] = env["PATH"]  # WatchProcess runs with this process's environment
    process = WatchProcess(path, "--state", folder / "watch.db")
    try:
        process.wait_event("listening")
        for repeat in range(args.watch_repeats):
            time.sleep(interval + random.uniform(0, interval))  # healthy rounds, random phase
            killed = time.monotonic()
            service.kill()
            wait_for(lambda seen=repeat: len(process.of("remediation")) > seen, "remediated", 600)
            totals.append(time.monotonic() - killed)
            found = REMEDIATED.search(process.of("remediation")[repeat]["message"])
            assert found, process.of("remediation")
            healing.append(float(found.group(1)))
    finally:
        process.stop()
    detection_floor = (args.for_runs - 1) * interval + interval / 2
    healing_floor = seconds(args.settle) + statistics.median(restarts)
    mean_total, mean_healing = statistics.mean(totals), statistics.mean(healing)
    print(
        f"watch, interval {args.interval}, for: {args.for_runs}, settle {args.settle}: "
        f"failure to remediated {mean_total:.2f} s mean of {len(totals)} "
        f"(min {min(totals):.2f}, max {max(totals):.2f}); floor {detection_floor + healing_floor:.2f} s "
        f"(detection {detection_floor:.1f} s by construction + settle + bare restart "
        f"{statistics.median(restarts):.2f} s); "
        f"ratio {mean_total / (detection_floor + healing_floor):.2f}"
    )
    print(
        f"  of which remediation (action + settle + verify): {mean_healing:.2f} s against its "
        f"floor {healing_floor:.2f} s: ratio {mean_healing / healing_floor:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", default="5s")
    parser.add_argument("--for", dest="for_runs", type=int, default=2)
    parser.add_argument("--settle", default="1s")
    parser.add_argument("--watch-repeats", type=int, default=5)
    parser.add_argument("--one-shot-runs", type=int, default=5)
    parser.add_argument("--legs", default="one-shot,watch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-remediation-") as scratch:
        folder = Path(scratch)
        services = supervised_service(folder)
        service = next(services)
        bin_dir = service.fake_systemctl(folder / "bin")
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        try:
            legs = args.legs.split(",")
            if "one-shot" in legs:
                one_shot(args, folder, service, env)
            if "watch" in legs:
                watch(args, folder, service, env)
        finally:
            next(services, None)


if __name__ == "__main__":
    main()
