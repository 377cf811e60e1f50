# Filesystem space and inode use of the filesystem that holds a path, as df(1) reports it.
#
# Runs on the target: standard library only, Python 3.6 syntax. psutil is used when the
# batch provides it (ctx.psutil, needed on Windows); otherwise os.statvfs.
import os
import re
from typing import Any, Dict, List, Optional

MODULE = {
    "summary": "Filesystem used percentage (as df computes it) and inode use for a path",
    "description": [
        "Checks the filesystem that holds `path` (any file or directory on it; the mount "
        "point it belongs to is reported in the facts).",
        "The facts' mountpoint, device, fstype and readonly come from the mount table "
        "(/proc/self/mountinfo), found as findmnt --target and df find them: the longest "
        "mount point that contains the path, so a bind mount is its own mount point with "
        "its own read-only flag (fs_root then names the directory it shows).",
        "used_percent is used / (used + available) * 100 with used = (blocks - free blocks) "
        "* fragment size and available = blocks available to unprivileged users * fragment "
        "size: the Use% of df(1) and psutil.disk_usage(). Blocks reserved for root are in "
        "neither, so a filesystem reaches 100% when ordinary users can no longer write, "
        "while root still can. `free` is that unprivileged available space.",
        "inodes_used_percent and inodes_free are df -i's IUse% and IFree. Filesystems that "
        "do not count inodes (btrfs, vfat, many network filesystems) report none, and then "
        "these two measurements are absent.",
        "A path that does not exist makes the check UNKNOWN: mount checks are a separate "
        "question from space checks.",
    ],
    "free_form": "path",
    "options": {
        "path": {
            "type": "str",
            "default": "/",
            "description": "Absolute path of a file or directory on the filesystem to check.",
        },
    },
    "measurements": {
        "used_percent": {"unit": "%", "description": "used / (used + free), like df's Use%."},
        "free": {"unit": "B", "description": "Space available to unprivileged users."},
        "total": {"unit": "B", "description": "Size of the filesystem."},
        "used": {"unit": "B", "description": "Space in use."},
        "inodes_used_percent": {"unit": "%", "description": "Inodes in use, like df -i."},
        "inodes_free": {"unit": "", "description": "Free inodes."},
    },
    "default_metric": "used_percent",
    "facts": {
        "path": "The path given.",
        "mountpoint": "Mount point of the filesystem holding the path.",
        "device": "Its device, from the mount table.",
        "fstype": "Its filesystem type, from the mount table.",
        "readonly": "True when it is mounted read-only.",
        "fs_root": "For a bind mount: the directory of the filesystem that it shows.",
        "source": "How the space was measured: statvfs or psutil.",
    },
}

EXAMPLES = """
- name: root filesystem
  disk: /
  warn: 80
  crit: 90

- name: data volume keeps 20 GB free
  disk: {path: /var/lib/postgresql}
  metric: free
  crit: "20000000000:"

- name: inodes on the mail spool
  disk: /var/spool
  metric: inodes_used_percent
  warn: 80
  crit: 95
"""


def usage_from_statvfs(st: Any) -> Dict[str, float]:
    """Space and inode measurements from an os.statvfs() result, with df's formulas."""
    size = st.f_frsize or st.f_bsize  # some old systems leave f_frsize at 0
    used = (st.f_blocks - st.f_bfree) * size
    free = st.f_bavail * size
    values = space_measurements(st.f_blocks * size, used, free)
    if st.f_files > 0:
        inodes_used = st.f_files - st.f_ffree
        values["inodes_used_percent"] = 100.0 * inodes_used / st.f_files
        values["inodes_free"] = st.f_ffree
    return values


def space_measurements(total: int, used: int, free: int) -> Dict[str, float]:
    reachable = used + free
    return {
        "used_percent": 100.0 * used / reachable if reachable > 0 else 0.0,
        "free": free,
        "total": total,
        "used": used,
    }


_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape_mount_field(field: str) -> str:
    r"""The kernel writes space, tab, newline and backslash in mount tables as octal escapes
    (\040, \011, \012, \134)."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mounts(text: str) -> List[Dict[str, str]]:
    """/proc/self/mounts (fstab format) as a list of {device, mountpoint, fstype, options}."""
    mounts = []
    for line in text.split("\n"):
        parts = line.split()
        if len(parts) < 4:
            continue
        mounts.append(
            {
                "device": _unescape_mount_field(parts[0]),
                "mountpoint": _unescape_mount_field(parts[1]),
                "fstype": parts[2],
                "options": parts[3],
            }
        )
    return mounts


def parse_mountinfo(text: str) -> List[Dict[str, str]]:
    """/proc/self/mountinfo as a list of {device, mountpoint, fstype, options, root, dev}.

    Each line: ID PARENT MAJOR:MINOR ROOT MOUNTPOINT MOUNT-OPTIONS [OPTIONAL...] - FSTYPE
    SOURCE SUPER-OPTIONS. Unlike /proc/self/mounts it tells a bind mount's own options
    (a read-only bind of a writable filesystem is `ro` here) and the directory of the
    filesystem it shows (ROOT). `options` joins the mount's options and the filesystem's,
    as findmnt's OPTIONS column does.
    """
    mounts = []
    for line in text.split("\n"):
        parts = line.split(" ")
        if "-" not in parts[6:]:
            continue
        separator = parts.index("-", 6)
        if len(parts) < separator + 3:
            continue
        super_options = parts[separator + 3] if len(parts) > separator + 3 else ""
        mounts.append(
            {
                "device": _unescape_mount_field(parts[separator + 2]),
                "mountpoint": _unescape_mount_field(parts[4]),
                "fstype": parts[separator + 1],
                "options": ",".join(o for o in (parts[5], super_options) if o),
                "root": _unescape_mount_field(parts[3]),
                "dev": parts[2],
            }
        )
    return mounts


def mount_of(
    mounts: List[Dict[str, str]], path: str, dev: Optional[str] = None
) -> Optional[Dict[str, str]]:
    """The mount that holds `path` (a real path), as `findmnt --target` finds it: the
    longest mount point that contains it, the last one listed when several are stacked on
    one directory. With `dev` (major:minor of the path), mounts of that device win, so a
    mount point hidden under a later mount is passed over."""
    candidates = [m for m in mounts if _contains(m["mountpoint"], path)]
    same_device = [m for m in candidates if dev is not None and m.get("dev") == dev]
    best = None
    for mount in same_device or candidates:
        if best is None or len(mount["mountpoint"]) >= len(best["mountpoint"]):
            best = mount
    return best


def _contains(mountpoint: str, path: str) -> bool:
    if mountpoint == "/" or mountpoint == path:
        return True
    return path.startswith(mountpoint.rstrip("/") + "/")


def mount_point_of(path: str) -> str:
    """Without a mount table: the nearest directory os.path.ismount() accepts (it cannot
    see bind mounts of the same filesystem)."""
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _read_mounts(ctx: Any) -> List[Dict[str, str]]:
    """The mount table: mountinfo where there is one (Linux), else mounts, else psutil's."""
    for name, parse in (("mountinfo", parse_mountinfo), ("mounts", parse_mounts)):
        try:
            with open(os.path.join(ctx.proc_root, "self", name), "rb") as handle:
                return parse(handle.read().decode("utf-8", "surrogateescape"))
        except OSError:
            pass
    if ctx.psutil is not None:
        partitions = ctx.psutil.disk_partitions(all=True)
        return [
            {"device": p.device, "mountpoint": p.mountpoint, "fstype": p.fstype, "options": p.opts}
            for p in partitions
        ]
    return []


def _could_not_check(path: str, exc: OSError) -> RuntimeError:
    if isinstance(exc, FileNotFoundError):
        return RuntimeError(
            "path %s does not exist on this host; set `path` to a file or directory on the "
            "filesystem to check" % path
        )
    if isinstance(exc, PermissionError):
        return RuntimeError(
            "permission denied on %s; use a path the remote user can reach, or become: true" % path
        )
    return RuntimeError("cannot read the filesystem of %s: %s" % (path, exc.strerror or exc))


def _measure(path: str, psutil: Any) -> Dict[str, float]:
    statvfs = getattr(os, "statvfs", None)
    values: Dict[str, float] = {}
    if statvfs is not None:
        values = usage_from_statvfs(statvfs(path))
    if psutil is not None:
        usage = psutil.disk_usage(path)
        values.update(space_measurements(usage.total, usage.used, usage.free))
    if not values:
        raise RuntimeError("no os.statvfs on this platform; install psutil on the target")
    return values


def _facts(path: str, ctx: Any) -> Dict[str, Any]:
    real = os.path.realpath(path)
    mount = mount_of(_read_mounts(ctx), real, _device_of(real))
    if mount is None:
        return {"path": path, "mountpoint": mount_point_of(path)}
    facts: Dict[str, Any] = {
        "path": path,
        "mountpoint": mount["mountpoint"],
        "device": mount["device"],
        "fstype": mount["fstype"],
        "readonly": "ro" in mount["options"].split(","),
    }
    if mount.get("root", "/") != "/":
        facts["fs_root"] = mount["root"]  # a bind mount: the directory of the fs it shows
    return facts


def _device_of(path: str) -> Optional[str]:
    try:
        st_dev = os.stat(path).st_dev
    except OSError:
        return None
    return "%d:%d" % (os.major(st_dev), os.minor(st_dev))


def _format_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            break
        value /= 1024.0
    return ("%d %s" if unit == "B" else "%.1f %s") % (value, unit)


def _summary(values: Dict[str, float], mountpoint: str) -> str:
    text = "%s %.1f%% used (%s of %s), %s free" % (
        mountpoint,
        values["used_percent"],
        _format_bytes(values["used"]),
        _format_bytes(values["total"]),
        _format_bytes(values["free"]),
    )
    if "inodes_used_percent" in values:
        text += ", inodes %.1f%% used" % values["inodes_used_percent"]
    return text


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    path = os.path.expanduser(str(args.get("path") or "/"))
    if not os.path.isabs(path):
        raise RuntimeError("path %r is relative; give an absolute path such as /var" % path)
    try:
        values = _measure(path, ctx.psutil)
    except OSError as exc:
        raise _could_not_check(path, exc) from exc
    facts = _facts(path, ctx)
    facts["source"] = "psutil" if ctx.psutil is not None else "statvfs"
    return {
        "measurements": values,
        "facts": facts,
        "failures": [],
        "message": _summary(values, facts["mountpoint"]),
    }
