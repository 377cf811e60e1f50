# System load averages, raw and divided by the number of CPUs.
#
# Runs on the target: standard library only, Python 3.6 syntax. psutil is used when the
# batch provides it (ctx.psutil); otherwise /proc/loadavg, or os.getloadavg() on systems
# without procfs.
import os
from typing import Any, Dict, Tuple

MODULE = {
    "summary": "Load averages (1, 5, 15 minutes), raw and per CPU core",
    "description": [
        "The 1, 5 and 15 minute load averages: exponentially weighted averages of the "
        "tasks that are running, waiting for a CPU, or (on Linux) in uninterruptible sleep, "
        "usually waiting for disk or NFS. High load with low CPU busy points at I/O.",
        "The default metric is load1_per_core, the 1 minute load divided by the number of "
        "online CPUs, because one threshold then means the same on a 2-core VM and a "
        "64-core server, which is what a playbook aimed at a group of hosts needs. Around "
        "1 per core the CPUs are fully used; lasting values above 2 mean work queues up. "
        "Nagios users who want check_load's raw numbers (check_load without -r) set "
        "`metric: load1`, `load5` or `load15`.",
        "Load is host-wide: inside a container it is the host's load, and the core count "
        "is the host's too.",
    ],
    "options": {},
    "measurements": {
        "load1": {"unit": "", "description": "1 minute load average."},
        "load5": {"unit": "", "description": "5 minute load average."},
        "load15": {"unit": "", "description": "15 minute load average."},
        "load1_per_core": {"unit": "", "description": "load1 / cores."},
        "load5_per_core": {"unit": "", "description": "load5 / cores."},
        "load15_per_core": {"unit": "", "description": "load15 / cores."},
        "cores": {"unit": "", "description": "Number of online logical CPUs."},
    },
    "default_metric": "load1_per_core",
    "facts": {
        "source": "Where the averages were read: procfs (/proc/loadavg) or psutil.",
        "running": "Runnable tasks at the moment (procfs only).",
        "tasks": "Tasks in existence (procfs only).",
    },
}

EXAMPLES = """
- name: load per core
  load: {}
  warn: 1.5
  crit: 3

- name: sustained load per core
  load: {}
  metric: load15_per_core
  warn: 1
  crit: 2

- name: raw 5 minute load, like check_load without -r
  load: {}
  metric: load5
  warn: 8
  crit: 16
"""

PERIODS = ("load1", "load5", "load15")


def parse_loadavg(text: str) -> Dict[str, Any]:
    """/proc/loadavg: the three averages, then running/total tasks and the last PID."""
    parts = text.split()
    if len(parts) < 3:
        raise ValueError("unexpected /proc/loadavg content: %r" % text[:80])
    values: Dict[str, Any] = dict(zip(PERIODS, (float(part) for part in parts[:3])))
    if len(parts) >= 4 and "/" in parts[3]:
        running, tasks = parts[3].split("/", 1)
        values["running"] = int(running)
        values["tasks"] = int(tasks)
    if len(parts) >= 5:
        values["last_pid"] = int(parts[4])
    return values


def per_core(averages: Dict[str, float], cores: int) -> Dict[str, float]:
    measurements = dict((period, averages[period]) for period in PERIODS)
    for period in PERIODS:
        measurements[period + "_per_core"] = averages[period] / cores
    measurements["cores"] = cores
    return measurements


def _from_procfs(proc_root: str) -> Tuple[str, Dict[str, Any]]:
    path = os.path.join(proc_root, "loadavg")
    try:
        with open(path, "rb") as handle:
            return "procfs", parse_loadavg(handle.read().decode("ascii", "replace"))
    except FileNotFoundError:
        pass  # no procfs (BSD, macOS): the C library still knows the averages
    try:
        return "getloadavg", dict(zip(PERIODS, os.getloadavg()))
    except (AttributeError, OSError) as exc:
        raise RuntimeError(
            "load averages are not available here (no %s, no getloadavg); "
            "install psutil on the target" % path
        ) from exc


def _from_psutil(psutil: Any) -> Dict[str, Any]:
    getloadavg = getattr(psutil, "getloadavg", None) or os.getloadavg
    return dict(zip(PERIODS, getloadavg()))


def _cores(ctx: Any) -> int:
    if ctx.psutil is not None:
        return int(ctx.psutil.cpu_count(logical=True) or 1)
    return os.cpu_count() or 1


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    if ctx.psutil is not None:
        source, averages = "psutil", _from_psutil(ctx.psutil)
    else:
        source, averages = _from_procfs(ctx.proc_root)
    cores = _cores(ctx)
    facts = {"source": source}
    for key in ("running", "tasks"):
        if key in averages:
            facts[key] = averages[key]
    return {
        "measurements": per_core(averages, cores),
        "facts": facts,
        "failures": [],
        "message": "load %.2f %.2f %.2f (%.2f %.2f %.2f per core, %d cores)"
        % (
            averages["load1"],
            averages["load5"],
            averages["load15"],
            averages["load1"] / cores,
            averages["load5"] / cores,
            averages["load15"] / cores,
            cores,
        ),
    }
