# Memory and swap use, from /proc/meminfo or psutil.
#
# Runs on the target: standard library only, Python 3.6 syntax. psutil is used when the
# batch provides it (ctx.psutil); otherwise /proc/meminfo is read directly.
import os
from typing import Any, Dict

MODULE = {
    "summary": "Memory used percentage (total - MemAvailable) and swap use",
    "description": [
        "used_percent is (total - available) / total * 100, where available is the kernel's "
        "MemAvailable: the memory that can be handed to new work without swapping, page "
        "cache and reclaimable slab included. This is the figure free(1) shows as "
        "'available' and psutil (7.1 and later) uses for percent; counting MemFree alone "
        "would report a healthy machine with a large page cache as full.",
        "Kernels before 3.14 have no MemAvailable (and some report 0); then available is "
        "estimated as MemFree + Buffers + Cached + SReclaimable - Shmem, the way htop does, "
        "and the fact available_estimated is true.",
        "Inside a container /proc/meminfo usually shows the host; use the cgroup module to "
        "check a container against its own memory limit.",
    ],
    "options": {},
    "measurements": {
        "used_percent": {"unit": "%", "description": "(total - available) / total."},
        "available": {"unit": "B", "description": "Memory available for new work."},
        "total": {"unit": "B", "description": "Usable RAM (MemTotal)."},
        "used": {"unit": "B", "description": "total - available."},
        "swap_used_percent": {"unit": "%", "description": "Swap in use; 0 without swap."},
        "swap_used": {"unit": "B", "description": "SwapTotal - SwapFree."},
        "swap_total": {"unit": "B", "description": "Configured swap."},
    },
    "default_metric": "used_percent",
    "facts": {
        "source": "Where the figures were read: procfs (/proc/meminfo) or psutil.",
        "available_estimated": "True when the kernel has no MemAvailable and available was "
        "estimated.",
    },
}

EXAMPLES = """
- name: memory
  memory: {}
  warn: 85
  crit: 95

- name: at least 512 MiB available
  memory: {}
  metric: available
  crit: "536870912:"

- name: swapping
  memory: {}
  metric: swap_used_percent
  warn: 50
"""

KIB = 1024


def parse_meminfo(text: str) -> Dict[str, int]:
    """/proc/meminfo as {"MemTotal": bytes, ...}; values without a kB unit stay counts."""
    info: Dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts:
            continue
        value = int(parts[0])
        if len(parts) > 1 and parts[1].lower() == "kb":
            value *= KIB
        info[key.strip()] = value
    if "MemTotal" not in info:
        raise ValueError("no MemTotal line in /proc/meminfo")
    return info


def estimate_available(info: Dict[str, int]) -> int:
    """Available memory for kernels without MemAvailable (htop's estimate)."""
    free = info.get("MemFree", 0)
    cache = info.get("Cached", 0) + info.get("SReclaimable", 0) - info.get("Shmem", 0)
    return max(free, free + info.get("Buffers", 0) + cache)


def memory_from_meminfo(info: Dict[str, int]) -> Dict[str, Any]:
    """total, available (and whether it was estimated), swap_total, swap_free from meminfo."""
    total = info["MemTotal"]
    available = info.get("MemAvailable")
    estimated = not available  # missing (kernel < 3.14) or 0 (a kernel bug, psutil#1915)
    if estimated:
        available = estimate_available(info)
    if available > total:
        # Seen in LXC containers, where some lines are the host's: trust MemFree (as psutil does).
        available = info.get("MemFree", 0)
    return {
        "total": total,
        "available": max(0, available),
        "available_estimated": estimated,
        "swap_total": info.get("SwapTotal", 0),
        "swap_free": info.get("SwapFree", 0),
    }


def _read_text(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "replace")


def _from_procfs(proc_root: str) -> Dict[str, Any]:
    path = os.path.join(proc_root, "meminfo")
    try:
        text = _read_text(path)
    except OSError as exc:
        raise RuntimeError(
            "cannot read %s (%s); on systems without procfs install psutil on the target"
            % (path, exc.strerror or exc)
        ) from exc
    return memory_from_meminfo(parse_meminfo(text))


def _from_psutil(psutil: Any) -> Dict[str, Any]:
    virtual = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return {
        "total": int(virtual.total),
        "available": int(virtual.available),
        "available_estimated": False,
        "swap_total": int(swap.total),
        "swap_free": int(swap.free),
    }


def percent(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def format_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            break
        value /= 1024.0
    return ("%d %s" if unit == "B" else "%.1f %s") % (value, unit)


def measurements_of(memory: Dict[str, Any]) -> Dict[str, float]:
    used = memory["total"] - memory["available"]
    swap_used = max(0, memory["swap_total"] - memory["swap_free"])
    return {
        "used_percent": percent(used, memory["total"]),
        "available": memory["available"],
        "total": memory["total"],
        "used": used,
        "swap_used_percent": percent(swap_used, memory["swap_total"]),
        "swap_used": swap_used,
        "swap_total": memory["swap_total"],
    }


def _summary(values: Dict[str, float]) -> str:
    text = "%.1f%% used (%s of %s), %s available" % (
        values["used_percent"],
        format_bytes(values["used"]),
        format_bytes(values["total"]),
        format_bytes(values["available"]),
    )
    if values["swap_total"]:
        return text + "; swap %.1f%% used of %s" % (
            values["swap_used_percent"],
            format_bytes(values["swap_total"]),
        )
    return text + "; no swap"


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    if ctx.psutil is not None:
        source, memory = "psutil", _from_psutil(ctx.psutil)
    else:
        source, memory = "procfs", _from_procfs(ctx.proc_root)
    values = measurements_of(memory)
    return {
        "measurements": values,
        "facts": {"source": source, "available_estimated": memory["available_estimated"]},
        "failures": [],
        "message": _summary(values),
    }
