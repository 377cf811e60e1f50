# Block device I/O rates over the batch's shared sampling window, as iostat -x computes them.
#
# Runs on the target: standard library only, Python 3.6 syntax. Linux: /proc/diskstats and
# /sys/class/block; elsewhere psutil.disk_io_counters() when the batch provides psutil.
import fnmatch
import os
import re
import time
from typing import Any, Dict, List, Optional, Tuple

from ._utils import procfs, window

MODULE = {
    "summary": "Block device IOPS, throughput, r_await/w_await, %util and queue size (iostat -x)",
    "window_option": "sample",
    "description": [
        "Takes two snapshots of /proc/diskstats at the start and the end of the batch's "
        "shared sampling window and reports, per block device, what iostat -x reports over "
        "the same interval: r/s and w/s (reads, writes), rkB/s and wkB/s (read_bytes, "
        "write_bytes, here in bytes per second), r_await and w_await (milliseconds spent "
        "per completed read or write, queueing included: delta of the ms-reading counter / "
        "delta of reads completed), %util (delta of the ms-doing-I/O counter over the "
        "window) and aqu-sz (delta of the weighted ms counter over the window).",
        "Sectors in /proc/diskstats are always 512 bytes, whatever the device's logical "
        "block size (/sys/block/DEV/queue/hw_sector_size, 4096 on many disks): the kernel's "
        "Documentation/block/stat.rst says they are 'the standard UNIX 512-byte sectors, not "
        "any device- or filesystem-specific block size', and iostat, psutil and "
        "node_exporter multiply by 512 too. The device's own sector size is a fact only.",
        "Whole disks are checked by default. Partitions, loop, ram/zram and device-mapper "
        "(dm-N) devices are left out unless `include` names their kind or `devices` names "
        "them without a wildcard. Without a device suffix a measurement is the sum over the "
        "devices (reads, writes, read_bytes, write_bytes) or the worst device (util, "
        "r_await, w_await, aqu_sz); each device also has its own, as util_sda, r_await_sda.",
        "A device that appears or vanishes during the window (a USB disk, a loop device "
        "detached, a device whose counters restarted from 0) has no rate for it: it is "
        "named in the message and the facts, and counted in `appeared` and `vanished`, so "
        "a check can alert on it. The millisecond columns are 32-bit numbers in "
        "/proc/diskstats on every kernel and wrap after 2^32 ms of cumulative time: a wrap "
        "is counted modulo 2^32, as iostat counts it, not as a restarted device.",
        "%util is the share of the window the device had I/O in flight, capped at 100 "
        "(iostat prints the 100.3 that unsynchronised readings of counter and clock can "
        "give). As the iostat man page warns, it does not show saturation of devices that serve requests in "
        "parallel (RAID arrays, SSDs, NVMe): watch await and aqu_sz there.",
    ],
    "options": {
        "sample": {
            "type": "duration",
            "max": "1h",
            "default": "1s",
            "description": "Length of the sampling window.",
        },
        "devices": {
            "type": "list",
            "elements": "str",
            "default": ["*"],
            "description": "Shell-style globs of device names, as in /proc/diskstats (sda, "
            "nvme0n1, vd*). A name without a wildcard is checked whatever its kind.",
        },
        "include": {
            "type": "list",
            "elements": "str",
            "choices": ["partition", "loop", "ram", "dm"],
            "default": [],
            "description": "Kinds of devices the globs also match besides whole disks: "
            "partition, loop, ram (ram and zram), dm (device-mapper: LVM, dm-crypt).",
        },
    },
    "measurements": {
        "util": {"unit": "%", "description": "Share of the window with I/O in flight (%util)."},
        "r_await": {"unit": "ms", "description": "Average time per completed read."},
        "w_await": {"unit": "ms", "description": "Average time per completed write."},
        "aqu_sz": {"unit": "", "description": "Average number of requests in flight (aqu-sz)."},
        "reads": {"unit": "/s", "description": "Reads completed per second (r/s)."},
        "writes": {"unit": "/s", "description": "Writes completed per second (w/s)."},
        "read_bytes": {"unit": "B/s", "description": "Bytes read per second."},
        "write_bytes": {"unit": "B/s", "description": "Bytes written per second."},
        "devices": {"unit": "", "description": "Devices measured over the whole window."},
        "appeared": {"unit": "", "description": "Matching devices that appeared in the window."},
        "vanished": {"unit": "", "description": "Matching devices that vanished in the window."},
        "util_*": {"unit": "%", "description": "util of one device (util_sda)."},
        "r_await_*": {"unit": "ms", "description": "r_await of one device."},
        "w_await_*": {"unit": "ms", "description": "w_await of one device."},
        "aqu_sz_*": {"unit": "", "description": "aqu_sz of one device."},
        "reads_*": {"unit": "/s", "description": "reads of one device."},
        "writes_*": {"unit": "/s", "description": "writes of one device."},
        "read_bytes_*": {"unit": "B/s", "description": "read_bytes of one device."},
        "write_bytes_*": {"unit": "B/s", "description": "write_bytes of one device."},
    },
    "default_metric": "util",
    "facts": {
        "source": "Where the counters were read: procfs (/proc/diskstats) or psutil.",
        "window": "Seconds between the two snapshots.",
        "devices": "The devices measured, by name.",
        "busiest": "The device with the highest util (or the most bytes, without util); "
        "null when no device did any I/O in the window.",
        "appeared": "Devices that appeared during the window.",
        "vanished": "Devices that vanished during the window (or whose counters restarted).",
        "sector_sizes": "Each device's logical block size from sysfs (hw_sector_size), for "
        "information: the byte rates always use the kernel's 512-byte diskstats sectors.",
    },
}

EXAMPLES = """
- name: data disk not saturated
  diskio: {devices: [sda], sample: 5s}
  warn: 80
  crit: 95

- name: write latency of the database volume
  diskio: {devices: [nvme0n1]}
  metric: w_await
  warn: 20ms
  crit: 100ms

- name: LVM volumes keep up
  diskio: {devices: ["dm-*"], include: [dm]}
  metric: aqu_sz
  warn: 8

- name: no disk pulled out
  diskio: {}
  metric: vanished
  crit: 0
"""

# /proc/diskstats columns after "major minor name" (Documentation/admin-guide/iostats.rst):
# 11 since 2.6, 15 since 4.18 (discards), 17 since 5.5 (flushes).
DISKSTATS_FIELDS = (
    "reads",
    "reads_merged",
    "read_sectors",
    "read_ms",
    "writes",
    "writes_merged",
    "write_sectors",
    "write_ms",
    "in_flight",
    "io_ms",
    "weighted_ms",
    "discards",
    "discards_merged",
    "discard_sectors",
    "discard_ms",
    "flushes",
    "flush_ms",
)
# Partitions on kernels before 2.6.25 had four columns only.
OLD_PARTITION_FIELDS = ("reads", "read_sectors", "writes", "write_sectors")
SECTOR_BYTES = 512  # Documentation/block/stat.rst: always 512, not the device's block size
GAUGES = ("in_flight",)  # not counters: may go down without a reset
# The kernel prints the millisecond columns as 32-bit numbers (%u in block/genhd.c's
# diskstats_show) on every kernel: they wrap after 2^32 ms (49.7 days) of cumulative time,
# within days for weighted_ms on a busy disk. A wrap is not a restarted device: the
# difference is taken modulo 2^32, as sysstat's unsigned arithmetic does.
MS_COLUMNS = ("read_ms", "write_ms", "io_ms", "weighted_ms", "discard_ms", "flush_ms")
MS_WRAP = 1 << 32
SUMMED = ("reads", "writes", "read_bytes", "write_bytes")
WORST = ("util", "r_await", "w_await", "aqu_sz")
# Partition names when sysfs cannot tell (node_exporter's default exclusion, partitions only).
_PARTITION_NAME = re.compile(r"^(?:(?:h|s|v|xv)d[a-z]+\d+|nvme\d+n\d+p\d+|mmcblk\d+p\d+)$")
_RAM_NAME = re.compile(r"^z?ram\d+$")
LOOP_MAJOR = 7
RAM_MAJOR = 1


def parse_diskstats(text: str) -> Dict[str, Dict[str, int]]:
    """/proc/diskstats as {device: {"major", "minor", column: value}}; only the columns the
    kernel wrote (11, 15 or 17, or 4 for an old kernel's partition)."""
    devices = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        values = [int(value) for value in parts[3:]]
        if len(values) == len(OLD_PARTITION_FIELDS):
            names = OLD_PARTITION_FIELDS
        elif len(values) >= 11:
            names = DISKSTATS_FIELDS
        else:
            raise ValueError(
                "%s has %d counters in /proc/diskstats, expected 4 or at least 11"
                % (parts[2], len(values))
            )
        device = {"major": int(parts[0]), "minor": int(parts[1])}
        device.update(zip(names, values))
        devices[parts[2]] = device
    return devices


def device_kind(name: str, major: int, is_partition: Optional[bool]) -> str:
    """disk, partition, loop, ram or dm. is_partition comes from sysfs
    (/sys/class/block/NAME/partition); None when there is no sysfs to ask."""
    if major == LOOP_MAJOR or name.startswith("loop"):
        return "loop"
    if major == RAM_MAJOR or _RAM_NAME.match(name):
        return "ram"
    if name.startswith("dm-"):
        return "dm"
    if is_partition is None:
        is_partition = bool(_PARTITION_NAME.match(name))
    return "partition" if is_partition else "disk"


def _sysfs_is_partition(sys_root: str, name: str) -> Optional[bool]:
    block = os.path.join(sys_root, "class", "block")
    if not os.path.isdir(block):
        return None
    return os.path.exists(os.path.join(block, name.replace("/", "!"), "partition"))


def selected(
    devices: Dict[str, Dict[str, int]], globs: List[str], kinds: List[str], sys_root: str
) -> List[str]:
    """The device names the check covers, in /proc/diskstats order."""
    explicit = set(g for g in globs if not any(c in g for c in "*?["))
    chosen = []
    for name, counters in devices.items():
        if name in explicit:
            chosen.append(name)
            continue
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in globs):
            continue
        kind = device_kind(name, counters.get("major", -1), _sysfs_is_partition(sys_root, name))
        if kind == "disk" or kind in kinds:
            chosen.append(name)
    return chosen


def restarted(before: Dict[str, int], after: Dict[str, int]) -> bool:
    """True when a count of requests or sectors went backwards, or the device number
    changed: the device was removed and added again."""
    return any(
        after[field] < before[field]
        for field in after
        if field in before and field not in GAUGES + MS_COLUMNS + ("major", "minor")
    ) or (before.get("major"), before.get("minor")) != (after.get("major"), after.get("minor"))


def _growth(field: str, before: int, after: int) -> int:
    if field in MS_COLUMNS and after < before:
        return after + MS_WRAP - before
    return after - before


def device_rates(before: Dict[str, int], after: Dict[str, int], seconds: float) -> Dict[str, float]:
    """iostat -x's figures for one device between two snapshots `seconds` apart (sysstat's
    write_ext_stat and compute_ext_disk_stats: await = delta ms / delta ios, util = delta
    io_ms / window, aqu-sz = delta weighted ms / window)."""
    delta = dict((f, _growth(f, before[f], after[f])) for f in after if f in before)
    window_ms = seconds * 1000.0
    rates = {
        "reads": delta["reads"] / seconds,
        "writes": delta["writes"] / seconds,
        "read_bytes": delta["read_sectors"] * SECTOR_BYTES / seconds,
        "write_bytes": delta["write_sectors"] * SECTOR_BYTES / seconds,
    }
    if "read_ms" in delta:
        rates["r_await"] = delta["read_ms"] / float(delta["reads"]) if delta["reads"] else 0.0
        rates["w_await"] = delta["write_ms"] / float(delta["writes"]) if delta["writes"] else 0.0
    if "io_ms" in delta:
        # Clamped: the two reads of the counter and of the clock are not atomic, so a
        # saturated device can show a hair over 100% (iostat prints it, a threshold would not
        # want it).
        rates["util"] = min(100.0, 100.0 * delta["io_ms"] / window_ms)
    if "weighted_ms" in delta:
        rates["aqu_sz"] = delta["weighted_ms"] / window_ms
    return rates


def aggregate(per_device: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """The measurements without a device suffix: sums of the rates, worst of the rest."""
    totals = {}
    for field in SUMMED:
        totals[field] = sum(rates[field] for rates in per_device.values())
    for field in WORST:
        values = [rates[field] for rates in per_device.values() if field in rates]
        if values:
            totals[field] = max(values)
    return totals


def _procfs_counters(ctx: Any) -> Dict[str, Dict[str, int]]:
    return parse_diskstats(procfs.read_text(os.path.join(ctx.proc_root, "diskstats")))


def _psutil_counters(psutil: Any) -> Dict[str, Dict[str, int]]:
    counters = {}
    for name, io in (psutil.disk_io_counters(perdisk=True) or {}).items():
        device = {
            "reads": io.read_count,
            "writes": io.write_count,
            "read_sectors": io.read_bytes // SECTOR_BYTES,
            "write_sectors": io.write_bytes // SECTOR_BYTES,
            "read_ms": io.read_time,
            "write_ms": io.write_time,
        }
        if hasattr(io, "busy_time"):
            device["io_ms"] = io.busy_time
        counters[name] = device
    return counters


def sample(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    """{"source", "taken", "devices": parse_diskstats' shape}."""
    if os.path.exists(os.path.join(ctx.proc_root, "diskstats")) or ctx.psutil is None:
        try:
            devices = _procfs_counters(ctx)
        except OSError as exc:
            raise RuntimeError(
                "cannot read %s/diskstats (%s); on systems without procfs install psutil "
                "on the target" % (ctx.proc_root, exc.strerror or exc)
            ) from exc
        return {"source": "procfs", "taken": time.monotonic(), "devices": devices}
    return {"source": "psutil", "taken": time.monotonic(), "devices": _psutil_counters(ctx.psutil)}


def _sys_root(ctx: Any) -> str:
    return os.path.join(os.path.dirname(ctx.proc_root.rstrip("/")) or "/", "sys")


def _sector_size(sys_root: str, name: str) -> Optional[int]:
    path = os.path.join(
        sys_root, "class", "block", name.replace("/", "!"), "queue", "hw_sector_size"
    )
    try:
        return int(procfs.read_text(path).strip())
    except (OSError, ValueError):
        return None  # partitions have no queue directory of their own


def compare(
    before: Dict[str, Dict[str, int]],
    after: Dict[str, Dict[str, int]],
    names_before: List[str],
    names_after: List[str],
    seconds: float,
) -> Tuple[Dict[str, Dict[str, float]], List[str], List[str]]:
    """(rates of the devices present all along, appeared, vanished); a device whose
    counters restarted counts as vanished and appeared again."""

    def rates(old: Dict[str, int], new: Dict[str, int]) -> Optional[Dict[str, float]]:
        return None if restarted(old, new) else device_rates(old, new, seconds)

    return window.per_item(before, after, names_before, names_after, rates)


def _summary(
    rates: Dict[str, Dict[str, float]], totals: Dict[str, float], busiest: str, elapsed: float
) -> str:
    text = "%d device%s over %.2fs: %.1f r/s %.1f w/s, %s/s read, %s/s written" % (
        len(rates),
        "" if len(rates) == 1 else "s",
        elapsed,
        totals["reads"],
        totals["writes"],
        window.format_bytes(totals["read_bytes"]),
        window.format_bytes(totals["write_bytes"]),
    )
    if busiest and "util" in rates[busiest]:
        worst = rates[busiest]
        text += "; busiest %s %.1f%% util, r_await %.1fms, w_await %.1fms, aqu-sz %.2f" % (
            busiest,
            worst["util"],
            worst["r_await"],
            worst["w_await"],
            worst.get("aqu_sz", 0.0),
        )
    return text


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    before, after, elapsed = window.snapshots(sample, args, ctx)
    if elapsed <= 0:
        raise RuntimeError("no time elapsed between the two snapshots; use a longer sample")
    globs = list(args.get("devices") or ["*"])
    kinds = list(args.get("include") or [])
    sys_root = _sys_root(ctx)
    names_before = selected(before["devices"], globs, kinds, sys_root)
    names_after = selected(after["devices"], globs, kinds, sys_root)
    rates, appeared, vanished = compare(
        before["devices"], after["devices"], names_before, names_after, elapsed
    )
    if not rates and not appeared and not vanished:
        raise RuntimeError(
            "no block device matches devices %s (kinds: disk%s); devices here: %s"
            % (
                ", ".join(globs),
                "".join(", " + k for k in kinds),
                ", ".join(sorted(after["devices"])) or "none",
            )
        )
    measurements = {"devices": len(rates), "appeared": len(appeared), "vanished": len(vanished)}
    units = {}
    for name, device in rates.items():
        for field, value in device.items():
            measurements["%s_%s" % (field, name)] = value
            units["%s_%s" % (field, name)] = MODULE_UNITS[field]
    busiest = ""
    if rates:
        measurements.update(aggregate(rates))
    active = [n for n in rates if rates[n].get("util") or rates[n]["reads"] + rates[n]["writes"]]
    if active:
        busiest = max(
            active,
            key=lambda n: (
                rates[n].get("util", 0.0),
                rates[n]["read_bytes"] + rates[n]["write_bytes"],
            ),
        )
    facts = {
        "source": after["source"],
        "window": round(elapsed, 3),
        "devices": sorted(rates),
        "busiest": busiest or None,
        "appeared": appeared,
        "vanished": vanished,
        "sector_sizes": dict((n, _sector_size(sys_root, n)) for n in sorted(rates)),
    }
    message = (
        _summary(rates, measurements, busiest, elapsed)
        if rates
        else ("no device was present for the whole %.2fs window" % elapsed)
    )
    message += window.presence(appeared, vanished)
    return {
        "measurements": measurements,
        "units": units,
        "facts": facts,
        "failures": [],
        "message": message,
    }


MODULE_UNITS = {
    "util": "%",
    "r_await": "ms",
    "w_await": "ms",
    "aqu_sz": "",
    "reads": "/s",
    "writes": "/s",
    "read_bytes": "B/s",
    "write_bytes": "B/s",
}
