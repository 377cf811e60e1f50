# Count and resource use of the processes that match a name, a command-line pattern or a user.
#
# Runs on the target: standard library only, Python 3.6 syntax. psutil is used when the
# batch provides it (ctx.psutil); otherwise /proc/PID/{stat,cmdline,status} are read directly.
# A rate module: sample() lists the matching processes with their CPU times at both ends of
# the batch's shared window, so cpu_percent comes for free alongside the cpu check.
import time
from typing import Any, Dict, List, Optional

from ._utils import window
from ._utils.processes import Selector, procfs_memory_total, procfs_processes, psutil_processes

MODULE = {
    "summary": "Number, CPU and memory of the processes matching a name or command line",
    "window_option": "sample",  # the batch's shared sampling window is at least this long
    "description": [
        "Selects processes by `name` (the exact process name, as in pgrep -x), by `pattern` "
        "(a Python regular expression searched in the full command line, as in pgrep -f) "
        "and optionally by `user` (effective user, name or numeric id, as in pgrep -u). "
        "Every given filter must match. The checking process itself is never counted.",
        "The name is the kernel's comm, which is cut at 15 characters; for longer names the "
        "first word of the command line completes it, as psutil does, so `name: "
        "gunicorn-worker-main` works. Kernel threads have no command line: `pattern` sees "
        "them as '[name]', the way ps shows them.",
        "count is the default metric and 0 is a valid measurement, not an error: write "
        '`crit: "1:"` to require at least one process, `crit: 0` to require none. Zombie '
        "processes are not counted (a crashed daemon's zombie is not a running daemon); "
        "they are reported as zombies.",
        "cpu_percent is the CPU time the matched processes used during the sampling window "
        "divided by its length: 100 means one core fully busy, and it can exceed 100 on "
        "several cores. Processes that started during the window are left out of it. "
        "With `sample: 0s` the check adds no wait and cpu_percent is not reported.",
    ],
    "options": {
        "name": {"type": "str", "description": "Exact process name (comm), e.g. nginx."},
        "pattern": {
            "type": "str",
            "format": "regex",
            "description": "Regular expression searched in the command line (arguments "
            "joined by spaces), e.g. 'java .*-jar /opt/app/app\\.jar'.",
        },
        "user": {
            "type": "str",
            "description": "Only processes whose effective user is this name or numeric id.",
        },
        "sample": {
            "type": "duration",
            "max": "1h",
            "default": "1s",
            "description": "Window over which cpu_percent is measured (shared with the "
            "other rate checks of the batch).",
        },
    },
    "required_one_of": [["name", "pattern"]],
    "measurements": {
        "count": {"unit": "", "description": "Matching processes, zombies excluded."},
        "rss": {"unit": "B", "description": "Sum of their resident memory."},
        "memory_percent": {"unit": "%", "description": "rss as a share of total memory."},
        "cpu_percent": {
            "unit": "%",
            "description": "CPU used during the window; 100 = one core.",
        },
        "threads": {"unit": "", "description": "Sum of their threads."},
        "zombies": {"unit": "", "description": "Matching processes that are zombies."},
    },
    "default_metric": "count",
    "facts": {
        "source": "Where the processes were read: procfs or psutil.",
        "pids": "Process ids of the matching processes (zombies left out), at most 20.",
        "names": "Names of the matching processes.",
        "zombie_pids": "When there are zombies among them: their pids, at most 20.",
    },
}

EXAMPLES = """
- name: nginx is running
  process: {name: nginx}
  crit: "1:"                # CRITICAL when fewer than 1 process matches

- name: exactly one scheduler
  process: {pattern: 'celery .*beat', user: app}
  crit: "1:1"

- name: no leftover backup job
  process: {pattern: '^/usr/bin/rsync .*backup'}
  warn: 0                   # WARNING as soon as one matches

- name: java app memory
  process: {pattern: 'java .*-jar /opt/app/app\\.jar'}
  metric: rss
  warn: 3221225472          # 3 GiB
  crit: 3758096384          # 3.5 GiB

- name: worker CPU
  process: {name: gunicorn, sample: 2s}
  metric: cpu_percent
  warn: 300
"""

MAX_LISTED_PIDS = 20
MIN_CPU_WINDOW = 0.1  # seconds; below this the 10 ms tick makes cpu_percent meaningless


# ---------------------------------------------------------------- the module's entry points


def sample(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    """The matching processes now: {"source", "taken", "procs": {pid: record}}."""
    selector = Selector(args)
    if ctx.psutil is not None:
        source, procs = "psutil", psutil_processes(ctx.psutil, selector)
    else:
        source, procs = "procfs", procfs_processes(ctx.proc_root, selector)
    return {"source": source, "taken": time.monotonic(), "procs": procs}


def cpu_percent(before: Dict[str, Any], after: Dict[str, Any]) -> Optional[float]:
    """CPU used by the processes alive at both ends of the window, per second, in %."""
    elapsed = after["taken"] - before["taken"]
    if elapsed < MIN_CPU_WINDOW:
        return None
    used = 0.0
    for pid, proc in after["procs"].items():
        earlier = before["procs"].get(pid)
        if earlier is None or earlier["start"] != proc["start"] or proc["zombie"]:
            continue  # new during the window (or a recycled PID): no starting point
        used += max(0.0, proc["cpu"] - earlier["cpu"])
    return 100.0 * used / elapsed


def summarise(
    before: Dict[str, Any], after: Dict[str, Any], memory_total: Optional[int]
) -> Dict[str, float]:
    alive = [proc for proc in after["procs"].values() if not proc["zombie"]]
    rss = sum(proc["rss"] for proc in alive)
    values = {
        "count": len(alive),
        "rss": rss,
        "threads": sum(proc["threads"] for proc in alive),
        "zombies": len(after["procs"]) - len(alive),
    }
    if memory_total:
        values["memory_percent"] = 100.0 * rss / memory_total
    cpu = cpu_percent(before, after)
    if cpu is not None:
        values["cpu_percent"] = cpu
    return values


def _memory_total(ctx: Any) -> Optional[int]:
    if ctx.psutil is not None:
        return int(ctx.psutil.virtual_memory().total)
    return procfs_memory_total(ctx.proc_root)


def _message(values: Dict[str, float], selector: Selector, pids: List[int]) -> str:
    if not values["count"]:
        text = "no process matches %s" % selector.describe()
    else:
        text = "%d %s %s (pid %s%s)" % (
            values["count"],
            "process matches" if values["count"] == 1 else "processes match",
            selector.describe(),
            ", ".join(str(pid) for pid in pids[:5]),
            ", ..." if len(pids) > 5 else "",
        )
        text += ", %.1f MiB RSS" % (values["rss"] / 1048576.0)
        if "cpu_percent" in values:
            text += ", %.1f%% CPU" % values["cpu_percent"]
    if values["zombies"]:
        text += "; %d zombie%s" % (values["zombies"], "" if values["zombies"] == 1 else "s")
    return text


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    selector = Selector(args)
    before, after, _ = window.snapshots(sample, args, ctx)
    values = summarise(before, after, _memory_total(ctx))
    pids = sorted(pid for pid, proc in after["procs"].items() if not proc["zombie"])
    facts = {
        "source": after["source"],
        "pids": pids[:MAX_LISTED_PIDS],
        "names": sorted(set(proc["name"] for proc in after["procs"].values())),
    }
    if values["zombies"]:
        zombie_pids = sorted(pid for pid, proc in after["procs"].items() if proc["zombie"])
        facts["zombie_pids"] = zombie_pids[:MAX_LISTED_PIDS]
    return {
        "measurements": values,
        "facts": facts,
        "failures": [],
        "message": _message(values, selector, pids),
    }
