# A control group's memory against its limit, CPU against its quota, throttling, OOM kills,
# pids and I/O, on cgroup v1, v2 and the hybrid layout.
#
# Runs on the target: standard library only, Python 3.6 syntax. A rate module: sample()
# reads the cgroup's counters at both ends of the batch's shared window; the OOM-kill
# counter is compared with the previous run's through the control node's state database.
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from ._utils import cgroups, window

MODULE = {
    "summary": "A cgroup's memory vs its limit, CPU vs its quota, throttling, OOM kills, pids, I/O",
    "window_option": "sample",  # the batch's shared sampling window is at least this long
    "keeps_state": True,  # the OOM-kill counter of the last run arrives as _cursors
    "description": [
        "Finds one control group by `path` (`/system.slice/nginx.service`, or a directory "
        "under cgroup_root such as `/sys/fs/cgroup/memory/app`), by systemd `unit` "
        "(`nginx.service`; `nginx` means nginx.service), by the process it holds (`pid`, "
        "or `pattern`: a regular expression searched in command lines, as the process "
        "module does; all matching processes must be in one cgroup), or by `container`: a "
        "directory name as /proc/PID/cgroup shows it (docker-ID.scope, a pod's directory) "
        "or a container id, whole or its first 12 or more characters. Works on cgroup v1 "
        "(a hierarchy per controller), v2 and the hybrid layout (v1 controllers beside a "
        "v2 `unified` hierarchy): each figure is read from the hierarchy that has it.",
        "Memory: usage (memory.current, memory.usage_in_bytes) and the limit that applies, "
        "the tightest of the cgroup's and its ancestors' (memory.max, v1's "
        "hierarchical_memory_limit). working_set is usage - inactive_file (v1: "
        "total_inactive_file), the figure the kubelet evicts on and cAdvisor exports as "
        "container_memory_working_set_bytes: page cache the kernel can drop is not counted. "
        "Without a limit, the limit and the percentages are not reported (a check on them "
        "is UNKNOWN) and the facts say `unlimited`: never a share of 2**63.",
        "CPU over the sampling window: cpu_cores is the CPU time used (cpuacct.usage, "
        "cpu.stat usage_usec) divided by the window; with a quota (cpu.cfs_quota_us / "
        "cpu.cfs_period_us, cpu.max) cpu_quota_percent is that as a share of the quota's cores, "
        "throttled_percent the share of the window's enforcement periods in which the "
        "cgroup was throttled (nr_throttled / nr_periods) and throttled_time the time its "
        "tasks were held back.",
        "oom_kills counts the processes the kernel's OOM killer killed in the cgroup since "
        "the previous run (memory.events oom_kill, memory.oom_control oom_kill): the "
        "counter is kept in the state database, so the first run reports 0 and starts "
        "counting. A counter lower than the saved one (the cgroup was re-created) counts "
        "from 0.",
        "pids against pids.max, and io_read / io_write in bytes per second over the window "
        "(io.stat, v1 blkio's io_service_bytes).",
    ],
    "options": {
        "path": {
            "type": "str",
            "description": "The cgroup's path inside the hierarchies (/system.slice/x.service) "
            "or its directory under cgroup_root.",
        },
        "unit": {"type": "str", "description": "A systemd unit: nginx.service, docker.slice."},
        "pid": {"type": "int", "description": "A process id: the cgroup it is in."},
        "pattern": {
            "type": "str",
            "format": "regex",
            "description": "Regular expression searched in command lines (as the process "
            "module's pattern): the cgroup the matching processes are in.",
        },
        "container": {
            "type": "str",
            "description": "A container's id (12 or more characters) or its cgroup's "
            "directory name as in /proc/PID/cgroup.",
        },
        "cgroup_root": {
            "type": "str",
            "default": "/sys/fs/cgroup",
            "description": "Where the cgroup filesystems are mounted.",
        },
        "sample": {
            "type": "duration",
            "max": "1h",
            "default": "1s",
            "description": "Window over which CPU, throttling and I/O are measured (shared "
            "with the other rate checks of the batch).",
        },
    },
    "required_one_of": [["path", "unit", "pid", "pattern", "container"]],
    "mutually_exclusive": [["path", "unit", "pid", "pattern", "container"]],
    "measurements": {
        "memory_percent": {"unit": "%", "description": "Memory usage as a share of the limit."},
        "memory_usage": {"unit": "B", "description": "Memory charged to the cgroup."},
        "memory_limit": {"unit": "B", "description": "The limit that applies (not when none)."},
        "working_set": {"unit": "B", "description": "usage - inactive file cache."},
        "working_set_percent": {"unit": "%", "description": "working_set as a share of the limit."},
        "cache": {"unit": "B", "description": "Page cache charged to the cgroup."},
        "cpu_cores": {"unit": "", "description": "CPU used over the window, in cores."},
        "cpu_quota_cores": {"unit": "", "description": "The CPU quota in cores (not when none)."},
        "cpu_quota_percent": {"unit": "%", "description": "cpu_cores as a share of the quota."},
        "throttled_percent": {
            "unit": "%",
            "description": "Enforcement periods of the window in which it was throttled.",
        },
        "throttled_time": {"unit": "s", "description": "Time throttled during the window."},
        "oom_kills": {"unit": "", "description": "Processes OOM-killed since the previous run."},
        "oom_kills_total": {"unit": "", "description": "The kernel's oom_kill counter."},
        "pids": {"unit": "", "description": "Tasks in the cgroup (pids.current)."},
        "pids_max": {"unit": "", "description": "pids.max (not when unlimited)."},
        "pids_percent": {"unit": "%", "description": "pids as a share of pids.max."},
        "io_read": {"unit": "B/s", "description": "Bytes read per second over the window."},
        "io_write": {"unit": "B/s", "description": "Bytes written per second over the window."},
    },
    "default_metric": "memory_percent",
    "facts": {
        "cgroup": "The cgroup's path.",
        "version": "The host's layout: v1, v2 or hybrid.",
        "directories": "The cgroup's directory in each hierarchy read.",
        "memory_limit": "`unlimited` when no limit applies.",
        "cpu_quota": "`unlimited` without a quota.",
        "window": "Seconds between the two readings.",
        "first_run": "True when no OOM-kill count of a previous run was saved.",
    },
}

EXAMPLES = """
- name: app container memory
  cgroup: {container: 3f4e5d6c7b8a}
  warn: 80
  crit: 95

- name: nginx working set
  cgroup: {unit: nginx.service}
  metric: working_set_percent
  warn: 85

- name: worker CPU throttled
  cgroup: {pattern: 'celery .*worker', sample: 5s}
  metric: throttled_percent
  warn: 25

- name: no OOM kills in the batch jobs
  cgroup: {path: /system.slice/batch.slice}
  metric: oom_kills
  crit: 0
"""

CURSORS_ARG = "_cursors"
MIB = 1048576.0


def sample(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    """The cgroup's counters now: {"cgroup", "taken", "counters"}; the window's second
    reading reads the cgroup its first one found."""
    before = getattr(ctx, "before", None)
    cgroup = before["cgroup"] if before else cgroups.find(args, ctx.proc_root, ctx.psutil)
    started = time.monotonic()
    counters = cgroups.read_counters(cgroup)
    # stamped halfway through the reads: a target delayed while reading (it runs niced)
    # then skews the window by half the delay, not the whole
    return {"cgroup": cgroup, "taken": (started + time.monotonic()) / 2, "counters": counters}


def oom_kills(saved: Any, identity: str, total: int) -> Tuple[Optional[int], Dict[str, Any]]:
    """Kills since the previous run (None on the first) and the cursors to save."""
    cursors = {identity: {"oom_kill": total}}
    previous = saved.get(identity) if isinstance(saved, dict) else None
    if not isinstance(previous, dict) or not isinstance(previous.get("oom_kill"), int):
        return None, cursors
    if total < previous["oom_kill"]:
        return total, cursors  # a new cgroup at the same place: all of its kills are new
    return total - previous["oom_kill"], cursors


def _message(cgroup: Any, values: Dict[str, float], facts: Dict[str, Any]) -> str:
    parts: List[str] = []
    if "memory_usage" in values:
        if "memory_limit" in values:
            memory = "memory %.1f MiB of %.1f MiB (%.1f%%)" % (
                values["memory_usage"] / MIB,
                values["memory_limit"] / MIB,
                values["memory_percent"],
            )
        else:
            memory = "memory %.1f MiB, unlimited" % (values["memory_usage"] / MIB)
        if "working_set" in values:
            memory += ", working set %.1f MiB" % (values["working_set"] / MIB)
        parts.append(memory)
    if "cpu_cores" in values:
        cpu = "CPU %.2f cores" % values["cpu_cores"]
        if "cpu_quota_percent" in values:
            cpu += " (%.1f%% of a %.2g-core quota)" % (
                values["cpu_quota_percent"],
                values["cpu_quota_cores"],
            )
        if values.get("throttled_percent"):
            cpu += ", throttled in %.1f%% of periods (%.2fs)" % (
                values["throttled_percent"],
                values.get("throttled_time", 0.0),
            )
        parts.append(cpu)
    if "oom_kills" in values:
        if facts.get("first_run"):
            parts.append("OOM kill counter at %d, counted from now on" % values["oom_kills_total"])
        else:
            parts.append("%d OOM kills since the last run" % values["oom_kills"])
    if "pids" in values:
        parts.append("%d pids" % values["pids"])
    return "cgroup %s (%s): %s" % (cgroup.path, facts["version"], "; ".join(parts) or "no counters")


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    before, after, _ = window.snapshots(sample, args, ctx)
    cgroup = after["cgroup"]
    if not all(os.path.isdir(directory) for directory in cgroup.dirs.values()):
        raise RuntimeError(
            "cgroup %s was removed during the sampling window (its service stopped or its "
            "container exited)" % cgroup.path
        )
    elapsed = after["taken"] - before["taken"]
    now, then = after["counters"], before["counters"]
    values = cgroups.memory_values(now)
    values.update(cgroups.cpu_values(then, now, elapsed))
    values.update(cgroups.other_values(then, now, elapsed))
    facts: Dict[str, Any] = {
        "cgroup": cgroup.path,
        "version": cgroup.layout.version,
        "directories": dict(cgroup.dirs),
        "window": round(elapsed, 3),
    }
    if "memory_usage" in now and now.get("memory_limit") is None:
        facts["memory_limit"] = "unlimited"
    if "cpu_period_us" in now and not now.get("cpu_quota_us"):
        facts["cpu_quota"] = "unlimited"
    result: Dict[str, Any] = {"measurements": values, "facts": facts, "failures": []}
    if "oom_kill" in now:
        kills, cursors = oom_kills(args.get(CURSORS_ARG), cgroup.identity, now["oom_kill"])
        facts["first_run"] = kills is None
        values["oom_kills"] = kills or 0
        values["oom_kills_total"] = now["oom_kill"]
        result["state"] = {"cursors": cursors}
    if not values:
        raise RuntimeError(
            "cgroup %s has none of the counters this module reads (directories: %s)"
            % (cgroup.path, ", ".join(sorted(cgroup.dirs.values())))
        )
    result["message"] = _message(cgroup, values, facts)
    return result
