# Pressure stall information (PSI): how much of the time tasks waited for CPU, memory, I/O or
# interrupts, host-wide (/proc/pressure) or in one cgroup v2 (its *.pressure files).
#
# Runs on the target: standard library only, Python 3.6 syntax. A rate module: sample()
# reads the cumulative stall times at both ends of the batch's shared window.
import errno
import os
import platform
import time
from typing import Any, Dict, List, Tuple

from ._utils import cgroups, procfs, window

MODULE = {
    "summary": "Pressure stall information: share of time stalled on CPU, memory, I/O, IRQ",
    "window_option": "sample",  # the batch's shared sampling window is at least this long
    "description": [
        "Reads the kernel's pressure stall information (PSI, Linux 4.20 and later): for "
        "each resource, `some` is the share of time in which at least one task was "
        "stalled waiting for it and `full` the share in which all non-idle tasks were, "
        "at once. The kernel's own averages over 10, 60 and 300 seconds are reported as "
        "RESOURCE_KIND_avg10/avg60/avg300 (cpu_some_avg10, memory_full_avg60, ...), and "
        "the stall time over the sampling window, from the cumulative `total` counter "
        "(µs), as RESOURCE_KIND_stall (seconds) and RESOURCE_KIND_stall_percent (share "
        "of the window): unlike the averages it covers exactly the window.",
        "Host-wide by default (/proc/pressure/cpu, memory, io and irq when the kernel has "
        "it; irq has only `full`). With `cgroup: PATH` (or `unit`, `pid`, `pattern` or "
        "`container`, found as the cgroup module finds them) the cgroup v2's own "
        "cpu.pressure, memory.pressure and io.pressure are read instead (the v2 hierarchy: "
        "/sys/fs/cgroup, or its `unified` mount on a hybrid host). At the host level "
        "cpu `full` is reported from 5.13 on and is always 0: it is left out.",
        "A kernel without PSI (older than 4.20, or built without CONFIG_PSI) or with PSI "
        "disabled (booted with psi=0: reading gives EOPNOTSUPP) makes the check UNKNOWN, "
        "and its message says which.",
    ],
    "options": {
        "resources": {
            "type": "list",
            "elements": "str",
            "choices": ["cpu", "memory", "io", "irq"],
            "description": "Which resources to read; by default every one the kernel has.",
        },
        "cgroup": {
            "type": "str",
            "description": "A cgroup v2 path (/system.slice/nginx.service) or its directory: "
            "that cgroup's pressure instead of the host's.",
        },
        "unit": {
            "type": "str",
            "description": "Or the cgroup of a systemd unit (nginx.service), as the cgroup "
            "module finds it.",
        },
        "pid": {"type": "int", "description": "Or the cgroup of this process."},
        "pattern": {
            "type": "str",
            "format": "regex",
            "description": "Or the cgroup of the processes whose command line matches.",
        },
        "container": {
            "type": "str",
            "description": "Or a container's cgroup: its id (12 or more characters) or "
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
            "description": "Window over which the stall times are measured (shared with the "
            "other rate checks of the batch).",
        },
    },
    "mutually_exclusive": [["cgroup", "unit", "pid", "pattern", "container"]],
    "measurements": {
        "memory_some_avg10": {
            "unit": "%",
            "description": "The default: share of the last 10 s in which some task waited "
            "for memory (reclaim, swap-in, refaults).",
        },
        "*_avg10": {"unit": "%", "description": "The kernel's 10-second average."},
        "*_avg60": {"unit": "%", "description": "The kernel's 60-second average."},
        "*_avg300": {"unit": "%", "description": "The kernel's 300-second average."},
        "*_stall": {"unit": "s", "description": "Time stalled during the window."},
        "*_stall_percent": {"unit": "%", "description": "Share of the window stalled."},
    },
    "default_metric": "memory_some_avg10",
    "facts": {
        "source": "The directory the pressure files were read from.",
        "resources": "The resources read.",
        "window": "Seconds between the two readings.",
    },
}

EXAMPLES = """
- name: memory pressure
  pressure: {}
  warn: 10
  crit: 30

- name: tasks stalled on I/O over the last 5 seconds
  pressure: {resources: [io], sample: 5s}
  metric: io_some_stall_percent
  warn: 20

- name: nginx starved of CPU
  pressure: {unit: nginx.service}
  metric: cpu_some_avg60
  warn: 25
"""

RESOURCES = ("cpu", "memory", "io", "irq")
CGROUP_SELECTORS = ("unit", "pid", "pattern", "container")  # as the cgroup module finds one
HOST_DIR = "pressure"  # under proc_root
US = 1e6


def parse_pressure(text: str) -> Dict[str, Dict[str, float]]:
    """A PSI file: {"some": {"avg10", "avg60", "avg300", "total"}, "full": {...}}; averages
    in %, total in µs (an int)."""
    lines: Dict[str, Dict[str, float]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("some", "full"):
            continue
        fields: Dict[str, float] = {}
        for part in parts[1:]:
            key, _, value = part.partition("=")
            fields[key] = int(value) if key == "total" else float(value)
        lines[parts[0]] = fields
    if not lines:
        raise ValueError("no some/full lines in a pressure file: %r" % text[:80])
    return lines


def _cgroup_selection(args: Dict[str, Any]) -> Dict[str, Any]:
    """The cgroup module's selection among the check's arguments (`cgroup` is its path)."""
    selection = dict(
        (key, args[key]) for key in CGROUP_SELECTORS if args.get(key) not in (None, "")
    )
    if args.get("cgroup"):
        selection["path"] = args["cgroup"]
    return selection


def _source(args: Dict[str, Any], ctx: Any) -> Tuple[str, str, str]:
    """(directory, file suffix, what): /proc/pressure/cpu, or CGROUP/cpu.pressure."""
    selection = _cgroup_selection(args)
    if not selection:
        return os.path.join(ctx.proc_root, HOST_DIR), "", "the host"
    selection["cgroup_root"] = args.get("cgroup_root") or cgroups.DEFAULT_ROOT
    cgroup = cgroups.find(selection, ctx.proc_root, ctx.psutil)
    if cgroup.layout.unified is None:
        raise RuntimeError(
            "per-cgroup pressure needs cgroup v2, and %s has no v2 hierarchy (%s layout)"
            % (cgroup.layout.root, cgroup.layout.version)
        )
    if cgroups.V2 not in cgroup.dirs:
        raise RuntimeError(
            "cgroup %s is not in the v2 hierarchy %s" % (cgroup.path, cgroup.layout.unified)
        )
    return cgroup.dirs[cgroups.V2], ".pressure", "cgroup " + cgroup.paths[cgroups.V2]


def _unsupported(path: str, exc: OSError) -> RuntimeError:
    if exc.errno == errno.EOPNOTSUPP:
        return RuntimeError(
            "PSI is disabled on this kernel (reading %s: %s); boot it with psi=1"
            % (path, exc.strerror)
        )
    return RuntimeError("cannot read %s (%s)" % (path, exc.strerror or exc))


def _no_psi(directory: str, suffix: str) -> RuntimeError:
    if suffix:
        return RuntimeError(
            "%s has no *.pressure files: this kernel (%s) has no PSI (Linux 4.20 or later "
            "built with CONFIG_PSI)" % (directory, platform.release())
        )
    return RuntimeError(
        "this kernel (%s) has no PSI: %s is missing (Linux 4.20 or later built with "
        "CONFIG_PSI)" % (platform.release(), directory)
    )


def read_pressure(directory: str, suffix: str, wanted: List[str]) -> Dict[str, Any]:
    """Each wanted resource's parsed file; resources the kernel lacks are left out when no
    list was given (irq before 6.1) and an error when asked for."""
    if suffix and not os.path.isdir(directory):
        raise RuntimeError("cgroup directory %s is gone: the cgroup was removed" % directory)
    found = {}
    for resource in wanted or RESOURCES:
        path = os.path.join(directory, resource + suffix)
        try:
            found[resource] = parse_pressure(procfs.read_text(path))
        except OSError as exc:
            if exc.errno == errno.ENOENT and not wanted:
                continue
            if exc.errno == errno.ENOENT and not os.path.isdir(directory):
                raise _no_psi(directory, suffix) from exc
            if exc.errno == errno.ENOENT:
                raise RuntimeError(
                    "%s is missing on this kernel (%s)" % (path, platform.release())
                ) from exc
            raise _unsupported(path, exc) from exc
    if not found:
        raise _no_psi(directory, suffix)
    return found


def sample(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    before = getattr(ctx, "before", None)
    source = before["source"] if before else _source(args, ctx)
    started = time.monotonic()
    pressure = read_pressure(source[0], source[1], list(args.get("resources") or []))
    # stamped halfway through the reads, as the cgroup module does
    return {"source": source, "taken": (started + time.monotonic()) / 2, "pressure": pressure}


def pressure_values(
    before: Dict[str, Any], after: Dict[str, Any], elapsed: float, host: bool
) -> Dict[str, float]:
    values: Dict[str, float] = {}
    for resource, kinds in sorted(after.items()):
        for kind, fields in sorted(kinds.items()):
            if host and resource == "cpu" and kind == "full":
                continue  # always 0 at the host level: no task set can be fully stalled on CPU
            name = "%s_%s" % (resource, kind)
            for average in ("avg10", "avg60", "avg300"):
                if average in fields:
                    values["%s_%s" % (name, average)] = fields[average]
            start = before.get(resource, {}).get(kind, {}).get("total")
            if start is None or "total" not in fields or elapsed <= 0:
                continue
            stalled = max(0, fields["total"] - start) / US
            values[name + "_stall"] = round(stalled, 6)
            values[name + "_stall_percent"] = round(min(100.0, 100.0 * stalled / elapsed), 6)
    return values


def _message(values: Dict[str, float], resources: List[str], where: str) -> str:
    parts = []
    for resource in resources:
        shown = []
        for kind in ("some", "full"):
            key = "%s_%s_avg10" % (resource, kind)
            if key in values:
                text = "%s %.2f%%" % (kind, values[key])
                stall = values.get("%s_%s_stall_percent" % (resource, kind))
                if stall is not None:
                    text += " (%.2f%% of the window)" % stall
                shown.append(text)
        if shown:
            parts.append("%s %s" % (resource, ", ".join(shown)))
    return "pressure of %s, avg10: %s" % (where, "; ".join(parts))


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    before, after, _ = window.snapshots(sample, args, ctx)
    elapsed = after["taken"] - before["taken"]
    directory, suffix, what = after["source"]
    host = not suffix
    values = pressure_values(before["pressure"], after["pressure"], elapsed, host)
    resources = [r for r in RESOURCES if r in after["pressure"]]
    facts: Dict[str, Any] = {
        "source": directory,
        "resources": resources,
        "window": round(elapsed, 3),
    }
    return {
        "measurements": values,
        "facts": facts,
        "failures": [],
        "message": _message(values, resources, what),
    }
