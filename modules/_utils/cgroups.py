# Control groups, v1, v2 and the hybrid layout: finding a cgroup and reading its counters.
#
# Runs on the target: standard library only, Python 3.6 syntax. Every reader takes the root
# of the cgroup filesystems (/sys/fs/cgroup) and of procfs as arguments, so that recorded
# trees stand in for them in tests. The parsers are pure.
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from . import processes, procfs

DEFAULT_ROOT = "/sys/fs/cgroup"
# A v1 limit at or above this is "no limit": the kernel shows PAGE_COUNTER_MAX in bytes,
# 9223372036854771712 with 4 KiB pages, and other page sizes round it differently.
V1_UNLIMITED = 1 << 62
# The v1 controllers this module reads; each may have its own hierarchy (or share one,
# mounted as cpu,cpuacct).
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "blkio")
V2 = "unified"  # the key of the v2 hierarchy among a cgroup's directories
# Directory names container runtimes and systemd give a container's cgroup around its id:
# docker-ID.scope, cri-containerd-ID.scope, crio-ID.scope, libpod-ID.scope, or ID itself.
CONTAINER_NAME = re.compile(
    r"^(?:docker-|cri-containerd-|crio-|libpod-|containerd-)?([0-9a-f]{12,64})(?:\.scope)?$"
)
MIN_ID_PREFIX = 12  # docker's short ids: a shorter prefix could name several containers
MAX_MATCHES_SHOWN = 3
NS = 1e9  # nanoseconds per second


# ---------------------------------------------------------------- parsers (pure)


def parse_proc_cgroup(text: str) -> List[Dict[str, Any]]:
    """/proc/PID/cgroup: one entry per hierarchy, {"hierarchy", "controllers", "path"}.

    v1 lines are `4:memory:/docker/ID` (`2:cpu,cpuacct:/x`, `1:name=systemd:/x`); the v2
    line is always `0::/path`. A path may itself contain ':'.
    """
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        hierarchy, controllers, path = line.split(":", 2)
        entries.append(
            {
                "hierarchy": int(hierarchy),
                "controllers": [c for c in controllers.split(",") if c],
                "path": path,
            }
        )
    return entries


def parse_flat_keyed(text: str) -> Dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control)."""
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            values[parts[0]] = int(parts[1])
    return values


def parse_limit(text: str) -> Optional[int]:
    """A limit file (memory.max, memory.limit_in_bytes, pids.max): None when unlimited
    (`max` on v2, -1 or a value near 2**63 on v1)."""
    value = text.strip()
    if value == "max":
        return None
    number = int(value)
    if number < 0 or number >= V1_UNLIMITED:
        return None
    return number


def parse_cpu_max(text: str) -> Tuple[Optional[int], int]:
    """v2 cpu.max, `$MAX $PERIOD` in µs: (quota or None when `max`, period)."""
    parts = text.split()
    period = int(parts[1]) if len(parts) > 1 else 100000
    return (None if parts[0] == "max" else int(parts[0])), period


def parse_io_stat(text: str) -> Dict[str, int]:
    """v2 io.stat (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0` per device),
    summed over the devices."""
    totals: Dict[str, int] = {}
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, sep, value = field.partition("=")
            if sep:
                totals[key] = totals.get(key, 0) + int(value)
    return totals


def parse_blkio_bytes(text: str) -> Dict[str, int]:
    """v1 blkio.*io_service_bytes (`8:0 Read 4096` per device and operation, then `Total`
    lines): bytes read and written, summed over the devices."""
    totals = {"read": 0, "write": 0}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("Read", "Write"):
            totals[parts[1].lower()] += int(parts[2])
    return totals


# ---------------------------------------------------------------- layout


class Layout(object):
    """The hierarchies mounted under a root: the v2 one (whole root on a pure v2 host,
    `unified` on a hybrid one) and each v1 controller's."""

    def __init__(self, root: str, unified: Optional[str], v1: Dict[str, str]) -> None:
        self.root = root
        self.unified = unified
        self.v1 = v1

    @property
    def version(self) -> str:
        if self.v1 and self.unified:
            return "hybrid"
        return "v1" if self.v1 else "v2"

    def hierarchies(self) -> List[Tuple[str, str]]:
        """(key, directory) of each hierarchy: v2 first, then the v1 controllers read here."""
        found = [(V2, self.unified)] if self.unified else []
        return found + [(c, self.v1[c]) for c in V1_CONTROLLERS if c in self.v1]


def _is_v2(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, "cgroup.controllers"))


def layout(root: str = DEFAULT_ROOT) -> Layout:
    """Which hierarchies are mounted under root (a directory per hierarchy on v1, named after
    its controllers: memory, cpu,cpuacct with cpu and cpuacct links to it)."""
    if _is_v2(root):
        return Layout(root, root, {})
    try:
        entries = sorted(os.listdir(root))
    except OSError as exc:
        raise RuntimeError(
            "cannot list %s (%s): is the cgroup filesystem mounted there? Set cgroup_root "
            "to where it is" % (root, exc.strerror or exc)
        ) from exc
    unified = None
    v1: Dict[str, str] = {}
    for entry in entries:
        directory = os.path.join(root, entry)
        if not os.path.isfile(os.path.join(directory, "cgroup.procs")):
            continue  # not a hierarchy's root
        if _is_v2(directory):
            unified = directory
            continue
        for controller in entry.split(","):
            v1.setdefault(controller, directory)
    if unified is None and not v1:
        raise RuntimeError("no cgroup hierarchy is mounted under %s" % root)
    return Layout(root, unified, v1)


# ---------------------------------------------------------------- a cgroup


class Cgroup(object):
    """One cgroup: its path inside the hierarchies and its directory in each of them."""

    def __init__(self, layout: Layout, paths: Dict[str, str]) -> None:
        self.layout = layout
        self.paths = paths  # hierarchy key ("unified", "memory", ...) -> path inside it
        self.dirs = dict(
            (key, _join(directory, paths[key]))
            for key, directory in layout.hierarchies()
            if key in paths and os.path.isdir(_join(directory, paths[key]))
        )

    @property
    def path(self) -> str:
        """The path to show: memory's (v1 paths may differ per hierarchy), else v2's."""
        for key in ("memory", V2, "cpu"):
            if key in self.paths:
                return self.paths[key]
        return next(iter(self.paths.values()), "/")

    @property
    def identity(self) -> str:
        """What state is kept under: the memory directory (the OOM counter's home)."""
        return self.dirs.get("memory") or self.dirs.get(V2) or self.path

    def file(self, controller: str, name: str) -> Optional[str]:
        """The path of a controller's file: from its v1 hierarchy when that is mounted,
        else from the v2 directory (hybrid hosts keep some controllers on either side)."""
        directories = []
        if controller in self.layout.v1:
            directories.append(self.dirs.get(controller))
        directories.append(self.dirs.get(V2))
        for directory in directories:
            if directory and os.path.isfile(os.path.join(directory, name)):
                return os.path.join(directory, name)
        return None


def _join(directory: str, path: str) -> str:
    return os.path.join(directory, path.lstrip("/")) if path.strip("/") else directory


def at_path(found: Layout, path: str) -> Cgroup:
    """The cgroup at `path` in every hierarchy (`/system.slice/nginx.service`); an absolute
    directory under the root (`/sys/fs/cgroup/memory/app`) is accepted too."""
    path = "/" + path.strip("/")
    for _, directory in found.hierarchies():
        if path == directory or path.startswith(directory.rstrip("/") + "/"):
            path = "/" + path[len(directory) :].strip("/")
            break
    cgroup = Cgroup(found, dict((key, path) for key, _ in found.hierarchies()))
    if not cgroup.dirs:
        raise RuntimeError("no cgroup %s under %s (%s layout)" % (path, found.root, found.version))
    return cgroup


def of_pid(found: Layout, proc_root: str, pid: int) -> Cgroup:
    """The cgroup a process is in, per hierarchy, from /proc/PID/cgroup."""
    path = os.path.join(proc_root, str(pid), "cgroup")
    try:
        entries = parse_proc_cgroup(procfs.read_text(path))
    except OSError as exc:
        raise RuntimeError(
            "cannot read %s (%s): is process %s running?" % (path, exc.strerror or exc, pid)
        ) from exc
    paths = {}
    for entry in entries:
        if entry["hierarchy"] == 0 and not entry["controllers"]:
            paths[V2] = entry["path"]
        for controller in entry["controllers"]:
            if controller in V1_CONTROLLERS:
                paths[controller] = entry["path"]
    cgroup = Cgroup(found, paths)
    if not cgroup.dirs:
        raise RuntimeError("the cgroups of process %s are not under %s" % (pid, found.root))
    return cgroup


def of_pids(found: Layout, proc_root: str, pids: List[int], what: str) -> Cgroup:
    """The one cgroup all these processes are in; an error when they are in several."""
    groups: Dict[Tuple[Tuple[str, str], ...], Cgroup] = {}
    for pid in sorted(pids):
        try:
            cgroup = of_pid(found, proc_root, pid)
        except RuntimeError:
            continue  # exited since it was listed
        # on v1 two processes may share a memory cgroup and not a cpu one: all must agree
        groups.setdefault(tuple(sorted(cgroup.dirs.items())), cgroup)
    if not groups:
        raise RuntimeError("no running process matches %s" % what)
    if len(groups) > 1:
        shown = sorted(set(cgroup.path for cgroup in groups.values()))
        raise RuntimeError(
            "the processes matching %s are in %d cgroups (%s); narrow the selection"
            % (what, len(groups), ", ".join(shown[:MAX_MATCHES_SHOWN]))
        )
    return next(iter(groups.values()))


def named(found: Layout, matches: Any, what: str) -> Cgroup:
    """The cgroup whose directory name satisfies matches(name): a systemd unit, a container.
    Names are looked up in the v2 hierarchy first, then in each v1 controller's."""
    for _, directory in found.hierarchies():
        paths = sorted(set(_matching_paths(directory, matches)), key=lambda p: (len(p), p))
        distinct = [p for p in paths if not any(p.startswith(q + "/") for q in paths)]
        if len(distinct) > 1:
            raise RuntimeError(
                "%s names %d cgroups (%s); give its path instead"
                % (what, len(distinct), ", ".join(distinct[:MAX_MATCHES_SHOWN]))
            )
        if distinct:
            return at_path(found, distinct[0])
    raise RuntimeError("no cgroup for %s under %s" % (what, found.root))


def _matching_paths(directory: str, matches: Any) -> List[str]:
    found = []
    for current, subdirs, _ in os.walk(directory):
        for name in subdirs:
            if matches(name):
                found.append("/" + os.path.relpath(os.path.join(current, name), directory))
    return found


def unit_matcher(unit: str) -> Any:
    """A systemd unit's cgroup is named after it; `nginx` means nginx.service, as in systemctl."""
    name = unit if "." in unit else unit + ".service"
    return lambda directory: directory == name


def container_matcher(container: str) -> Any:
    """A container's cgroup, named as /proc/PID/cgroup shows it: its full name
    (docker-ID.scope, a pod's directory) or its id, whole or a prefix of 12 or more."""

    def matches(directory: str) -> bool:
        if directory == container:
            return True
        found = CONTAINER_NAME.match(directory)
        return bool(
            found and len(container) >= MIN_ID_PREFIX and found.group(1).startswith(container)
        )

    return matches


# ---------------------------------------------------------------- counters


def _read(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    try:
        return procfs.read_text(path)
    except OSError:
        return None  # a cgroup removed under us, or a file this kernel lacks


def _int(text: Optional[str]) -> Optional[int]:
    return None if text is None else int(text.split()[0])


def read_counters(cgroup: Cgroup) -> Dict[str, Any]:
    """The cgroup's counters now. A key is absent when this host does not have it; a limit
    is None when there is none."""
    counters: Dict[str, Any] = {}
    _read_memory(cgroup, counters)
    _read_cpu(cgroup, counters)
    _read_pids(cgroup, counters)
    _read_io(cgroup, counters)
    return counters


def _read_memory(cgroup: Cgroup, counters: Dict[str, Any]) -> None:
    if "memory" in cgroup.layout.v1:
        usage = _int(_read(cgroup.file("memory", "memory.usage_in_bytes")))
        if usage is None:
            return
        stat = parse_flat_keyed(_read(cgroup.file("memory", "memory.stat")) or "")
        counters["memory_usage"] = usage
        # the kernel's hierarchical_memory_limit is the tightest limit of the cgroup and
        # its ancestors: the one that applies
        limits = [
            parse_limit(_read(cgroup.file("memory", "memory.limit_in_bytes")) or "max"),
            parse_limit(str(stat.get("hierarchical_memory_limit", "max"))),
        ]
        counters["memory_limit"] = _tightest(limits)
        counters["inactive_file"] = stat.get("total_inactive_file", stat.get("inactive_file"))
        counters["cache"] = stat.get("total_cache", stat.get("cache"))
        oom = parse_flat_keyed(_read(cgroup.file("memory", "memory.oom_control")) or "")
    else:
        usage = _int(_read(cgroup.file("memory", "memory.current")))
        if usage is None:
            return
        stat = parse_flat_keyed(_read(cgroup.file("memory", "memory.stat")) or "")
        counters["memory_usage"] = usage
        counters["memory_limit"] = _tightest(_v2_limits(cgroup, "memory.max"))
        counters["inactive_file"] = stat.get("inactive_file")
        counters["cache"] = stat.get("file")
        oom = parse_flat_keyed(_read(cgroup.file("memory", "memory.events")) or "")
    if "oom_kill" in oom:
        counters["oom_kill"] = oom["oom_kill"]


def _v2_limits(cgroup: Cgroup, name: str) -> List[Optional[int]]:
    """A v2 limit file of the cgroup and of each ancestor: the tightest applies."""
    directory = cgroup.dirs.get(V2)
    limits: List[Optional[int]] = []
    top = (cgroup.layout.unified or "").rstrip("/")
    while directory and directory.startswith(top) and directory != top:
        text = _read(os.path.join(directory, name))
        if text is not None:
            limits.append(parse_limit(text))
        directory = os.path.dirname(directory)
    return limits


def _tightest(limits: List[Optional[int]]) -> Optional[int]:
    numbers = [limit for limit in limits if limit is not None]
    return min(numbers) if numbers else None


def _read_cpu(cgroup: Cgroup, counters: Dict[str, Any]) -> None:
    usage = _int(_read(cgroup.file("cpuacct", "cpuacct.usage")))
    if usage is not None and "cpuacct" in cgroup.layout.v1:
        counters["cpu_usage_ns"] = usage
    if "cpu" in cgroup.layout.v1:
        stat = parse_flat_keyed(_read(cgroup.file("cpu", "cpu.stat")) or "")
        quota = _int(_read(cgroup.file("cpu", "cpu.cfs_quota_us")))
        period = _int(_read(cgroup.file("cpu", "cpu.cfs_period_us")))
        if period:
            counters["cpu_quota_us"] = quota if quota is not None and quota > 0 else None
            counters["cpu_period_us"] = period
        if "throttled_time" in stat:
            counters["throttled_ns"] = stat["throttled_time"]
    else:
        stat = parse_flat_keyed(_read(cgroup.file("cpu", "cpu.stat")) or "")
        text = _read(cgroup.file("cpu", "cpu.max"))
        if text is not None:
            counters["cpu_quota_us"], counters["cpu_period_us"] = parse_cpu_max(text)
        if "throttled_usec" in stat:
            counters["throttled_ns"] = stat["throttled_usec"] * 1000
    if "cpu_usage_ns" not in counters:
        # cpu.stat's usage_usec exists in every v2 cgroup, even without the cpu controller
        v2_stat = parse_flat_keyed(_read(cgroup.file(V2, "cpu.stat")) or "")
        if "usage_usec" in v2_stat:
            counters["cpu_usage_ns"] = v2_stat["usage_usec"] * 1000
    for key in ("nr_periods", "nr_throttled"):
        if key in stat:
            counters[key] = stat[key]


def _read_pids(cgroup: Cgroup, counters: Dict[str, Any]) -> None:
    current = _int(_read(cgroup.file("pids", "pids.current")))
    if current is None:
        return
    counters["pids_current"] = current
    counters["pids_max"] = parse_limit(_read(cgroup.file("pids", "pids.max")) or "max")


def _read_io(cgroup: Cgroup, counters: Dict[str, Any]) -> None:
    if "blkio" in cgroup.layout.v1:
        for name in (
            "blkio.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes",
        ):
            text = _read(cgroup.file("blkio", name))
            if text is not None:
                totals = parse_blkio_bytes(text)
                counters["io_read_bytes"] = totals["read"]
                counters["io_write_bytes"] = totals["write"]
                return
        return
    text = _read(cgroup.file("io", "io.stat"))
    if text is not None:
        totals = parse_io_stat(text)
        counters["io_read_bytes"] = totals.get("rbytes", 0)
        counters["io_write_bytes"] = totals.get("wbytes", 0)


# ---------------------------------------------------------------- over a window
#
# Counters of read_counters() at both ends of a window, into what the cgroup module
# reports (and what a module that lines other figures up with a cgroup's needs).


def _percent(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 6)


def memory_values(counters: Dict[str, Any]) -> Dict[str, float]:
    """Usage, working set (usage - inactive file, as the kubelet counts it), cache, and with
    a limit the limit and both as a share of it; nothing is a share of "unlimited"."""
    values: Dict[str, float] = {}
    if "memory_usage" not in counters:
        return values
    usage = counters["memory_usage"]
    values["memory_usage"] = usage
    inactive = counters.get("inactive_file")
    if inactive is not None:
        values["working_set"] = max(0, usage - inactive)
    if counters.get("cache") is not None:
        values["cache"] = counters["cache"]
    limit = counters.get("memory_limit")
    if limit:
        values["memory_limit"] = limit
        values["memory_percent"] = _percent(usage, limit)
        if "working_set" in values:
            values["working_set_percent"] = _percent(values["working_set"], limit)
    return values


def _delta(before: Dict[str, Any], after: Dict[str, Any], key: str) -> Optional[float]:
    if before.get(key) is None or after.get(key) is None:
        return None
    return max(0, after[key] - before[key])  # a re-created cgroup starts again at 0


def cpu_values(before: Dict[str, Any], after: Dict[str, Any], elapsed: float) -> Dict[str, float]:
    """CPU used over the window in cores, the quota in cores and the use as a share of it,
    the share of enforcement periods throttled and the time throttled."""
    values: Dict[str, float] = {}
    used = _delta(before, after, "cpu_usage_ns")
    if used is not None and elapsed > 0:
        values["cpu_cores"] = round(used / NS / elapsed, 6)
    quota, period = after.get("cpu_quota_us"), after.get("cpu_period_us")
    if quota and period:
        values["cpu_quota_cores"] = round(float(quota) / period, 6)
        if "cpu_cores" in values:
            values["cpu_quota_percent"] = _percent(values["cpu_cores"], values["cpu_quota_cores"])
    periods = _delta(before, after, "nr_periods")
    throttled = _delta(before, after, "nr_throttled")
    if periods is not None and throttled is not None:
        values["throttled_percent"] = _percent(throttled, periods) if periods else 0.0
    throttled_ns = _delta(before, after, "throttled_ns")
    if throttled_ns is not None:
        values["throttled_time"] = round(throttled_ns / NS, 6)
    return values


def other_values(before: Dict[str, Any], after: Dict[str, Any], elapsed: float) -> Dict[str, float]:
    """pids against pids.max, and bytes read and written per second over the window."""
    values: Dict[str, float] = {}
    if "pids_current" in after:
        values["pids"] = after["pids_current"]
        if after.get("pids_max"):
            values["pids_max"] = after["pids_max"]
            values["pids_percent"] = _percent(after["pids_current"], after["pids_max"])
    for key, name in (("io_read_bytes", "io_read"), ("io_write_bytes", "io_write")):
        moved = _delta(before, after, key)
        if moved is not None and elapsed > 0:
            values[name] = round(moved / elapsed, 3)
    return values


# ---------------------------------------------------------------- selection from a check's args


def find(args: Dict[str, Any], proc_root: str, psutil: Any = None) -> Cgroup:
    """The cgroup a check names with one of path, unit, pid, pattern or container."""
    found = layout(args.get("cgroup_root") or DEFAULT_ROOT)
    if args.get("path"):
        return at_path(found, str(args["path"]))
    if args.get("unit"):
        unit = str(args["unit"])
        return named(found, unit_matcher(unit), "unit %s" % unit)
    if args.get("container"):
        container = str(args["container"])
        return named(found, container_matcher(container), "container %s" % container)
    if args.get("pid") not in (None, ""):
        return of_pid(found, proc_root, int(args["pid"]))
    if args.get("pattern"):
        selector = processes.Selector({"pattern": args["pattern"]})
        if psutil is not None:
            procs = processes.psutil_processes(psutil, selector)
        else:
            procs = processes.procfs_processes(proc_root, selector)
        pids = [pid for pid, proc in procs.items() if not proc["zombie"]]
        return of_pids(found, proc_root, pids, selector.describe())
    raise RuntimeError("give one of path, unit, pid, pattern or container")
