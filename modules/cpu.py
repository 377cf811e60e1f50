# CPU busy percentage over the batch's shared sampling window.
#
# Runs on the target: standard library only, Python 3.6 syntax. psutil is used when the
# batch provides it (ctx.psutil); otherwise /proc/stat is read directly.
import os
import time
from typing import Any, Dict, List, Optional

from ._utils import procfs, window

MODULE = {
    "summary": "CPU busy percentage from /proc/stat deltas over a sampling window",
    "window_option": "sample",  # the batch's shared sampling window is at least this long
    "description": [
        "Takes two snapshots of the cumulative CPU time counters (/proc/stat, or "
        "psutil.cpu_times() on any platform psutil supports) at the start and the end of the "
        "batch's shared sampling window, and reports how the time in between was spent.",
        "busy is everything except idle and iowait, the way psutil and top count it: "
        "total = sum of all columns - guest - guest_nice (the kernel already adds guest time "
        "to user and nice), busy = total - idle - iowait. A counter that goes backwards "
        "(iowait can, per the kernel docs) counts as 0 for that window.",
        "The numbers are host-wide: inside a container /proc/stat shows the whole machine. "
        "Use the cgroup module to check a container against its own CPU quota.",
        "All rate collectors of a batch (cpu, process, disk I/O, network) share one window, "
        "the longest `sample` any of them asks for, so several CPU checks cost one wait.",
    ],
    "options": {
        "sample": {
            "type": "duration",
            "max": "1h",
            "default": "1s",
            "description": "Length of the sampling window. Shorter windows are noisier; "
            "the counters tick 100 times per second per core.",
        },
        "per_core": {
            "type": "bool",
            "default": False,
            "description": "Also report busy_cpuN for every core (for example busy_cpu0), "
            "to catch one saturated core hidden in a low average.",
        },
    },
    "measurements": {
        "busy": {"unit": "%", "description": "Time not idle and not waiting for I/O."},
        "user": {"unit": "%", "description": "User mode, including guest time."},
        "nice": {"unit": "%", "description": "User mode at positive nice levels."},
        "system": {"unit": "%", "description": "Kernel mode."},
        "iowait": {"unit": "%", "description": "Idle while I/O was outstanding."},
        "irq": {"unit": "%", "description": "Serving hardware interrupts (Linux)."},
        "softirq": {"unit": "%", "description": "Serving soft interrupts (Linux)."},
        "steal": {
            "unit": "%",
            "description": "Taken by the hypervisor for other guests (virtual machines).",
        },
        "idle": {"unit": "%", "description": "Idle, not waiting for I/O."},
        "cores": {"unit": "", "description": "Number of online logical CPUs."},
        "busy_cpu*": {
            "unit": "%",
            "description": "Busy percentage of each core (busy_cpu0, busy_cpu1, ...), with per_core.",
        },
    },
    "default_metric": "busy",
    "facts": {
        "source": "Where the CPU times were read: procfs (/proc/stat) or psutil.",
        "window": "Seconds between the two snapshots the percentages compare.",
        "busiest_core": "With per_core: the core busiest over the window (cpu0, cpu1...).",
    },
}

EXAMPLES = """
- name: cpu busy
  cpu: {sample: 1s}
  warn: 80
  crit: 95

- name: hypervisor steals time
  cpu: {sample: 5s}
  metric: steal
  warn: 10

- name: no single core saturated
  cpu: {sample: 2s, per_core: true}
  metric: busy_cpu0
  crit: 98
"""

# /proc/stat column order (proc(5)); older kernels stop early, newer ones may add more.
STAT_FIELDS = (
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
)
# Reported as percentages when the platform has them, in this order.
PERCENT_FIELDS = ("user", "nice", "system", "iowait", "irq", "softirq", "steal", "idle")
AGGREGATE = "cpu"


def parse_stat(text: str) -> Dict[str, Dict[str, int]]:
    """The cpu lines of /proc/stat: {"cpu": {...}, "cpu0": {...}, ...} in USER_HZ ticks."""
    times: Dict[str, Dict[str, int]] = {}
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        parts = line.split()
        values = [int(value) for value in parts[1 : 1 + len(STAT_FIELDS)]]
        times[parts[0]] = dict(zip(STAT_FIELDS, values))
    if AGGREGATE not in times:
        raise ValueError("no aggregate 'cpu' line in /proc/stat")
    return times


def total_time(times: Dict[str, float]) -> float:
    """All accounted time; guest time is already inside user and nice, so it is taken out."""
    return sum(times.values()) - times.get("guest", 0) - times.get("guest_nice", 0)


def window_deltas(before: Dict[str, float], after: Dict[str, float]) -> Dict[str, float]:
    """Per-column growth over the window; a counter that went backwards counts as 0."""
    return dict((field, max(0, after[field] - before.get(field, 0))) for field in after)


def percentages(before: Dict[str, float], after: Dict[str, float]) -> Optional[Dict[str, float]]:
    """busy and per-column percentages of one CPU line; None when no time elapsed."""
    deltas = window_deltas(before, after)
    total = total_time(deltas)
    if total <= 0:
        return None
    not_busy = deltas.get("idle", 0) + deltas.get("iowait", 0)
    result = {"busy": _percent(total - not_busy, total)}
    for field in PERCENT_FIELDS:
        if field in deltas:
            result[field] = _percent(deltas[field], total)
    return result


def _percent(part: float, total: float) -> float:
    # Rounded and clamped: float error must not turn a saturated 100% into 100.00000000000001,
    # which a `warn: 100` threshold would report.
    return min(100.0, max(0.0, round(100.0 * part / total, 6)))


def core_names(times: Dict[str, Dict[str, float]]) -> List[str]:
    cores = [name for name in times if name != AGGREGATE]
    return sorted(cores, key=lambda name: int(name[len(AGGREGATE) :]))


def _procfs_snapshot(proc_root: str) -> Dict[str, Dict[str, float]]:
    path = os.path.join(proc_root, "stat")
    try:
        ticks = parse_stat(procfs.read_text(path))
    except OSError as exc:
        raise RuntimeError(
            "cannot read %s (%s); on systems without procfs install psutil on the target"
            % (path, exc.strerror or exc)
        ) from exc
    hz = float(procfs.user_hz())
    return dict(
        (name, dict((field, value / hz) for field, value in fields.items()))
        for name, fields in ticks.items()
    )


def _psutil_snapshot(psutil: Any) -> Dict[str, Dict[str, float]]:
    snapshot = {AGGREGATE: dict(psutil.cpu_times(percpu=False)._asdict())}
    for index, core in enumerate(psutil.cpu_times(percpu=True)):
        snapshot["%s%d" % (AGGREGATE, index)] = dict(core._asdict())
    return snapshot


def sample(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    """Cumulative CPU times in seconds, per line: {"source", "taken", "times"}."""
    if ctx.psutil is not None:
        source, times = "psutil", _psutil_snapshot(ctx.psutil)
    else:
        source, times = "procfs", _procfs_snapshot(ctx.proc_root)
    return {"source": source, "taken": time.monotonic(), "times": times}


def _summary(values: Dict[str, float], elapsed: float, cores: int) -> str:
    details = ", ".join(
        "%s %.1f%%" % (field, values[field])
        for field in ("user", "system", "iowait", "steal")
        if field in values
    )
    return "%.1f%% busy (%s) over %.2fs, %d cores" % (values["busy"], details, elapsed, cores)


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    before, after, elapsed = window.snapshots(sample, args, ctx)
    values = percentages(before["times"][AGGREGATE], after["times"][AGGREGATE])
    if values is None:
        raise RuntimeError(
            "no CPU time elapsed between the two snapshots (%.3fs window); "
            "use a longer sample, such as 1s" % elapsed
        )
    cores = core_names(after["times"])
    measurements = dict(values)
    measurements["cores"] = len(cores) or (os.cpu_count() or 1)
    facts = {"source": after["source"], "window": round(elapsed, 3)}
    units = {}
    if args.get("per_core"):
        busiest = None
        for name in cores:
            if name not in before["times"]:
                continue  # came online during the window: no start value to compare with
            core = percentages(before["times"][name], after["times"][name])
            if core is None:
                continue
            key = "busy_" + name
            measurements[key] = core["busy"]
            units[key] = "%"
            if busiest is None or core["busy"] > measurements["busy_" + busiest]:
                busiest = name
        facts["busiest_core"] = busiest
    message = _summary(values, elapsed, measurements["cores"])
    if facts.get("busiest_core"):
        message += ", busiest %s %.1f%%" % (busiest, measurements["busy_" + busiest])
    return {
        "measurements": measurements,
        "units": units,
        "facts": facts,
        "failures": [],
        "message": message,
    }
