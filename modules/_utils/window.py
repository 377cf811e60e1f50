# The sampling window of a rate module (cpu, process, diskio, net, cgroup, pressure), and how
# rates print.
import time


def snapshots(sample, args, ctx):
    """(before, after, seconds between them): the batch's shared window when run() is called
    inside one (ctx.before and ctx.after), else both snapshots taken here, `sample` apart."""
    if ctx.before is not None and ctx.after is not None:
        return ctx.before, ctx.after, ctx.elapsed
    # As in a batch's window, the second snapshot sees the first in ctx.before (cgroup and
    # pressure read again the cgroup their first snapshot found).
    before = ctx.before = sample(args, ctx)
    # Within the check's own timeout: the second snapshot must still be taken.
    time.sleep(max(0.0, min(float(args.get("sample", 1.0)), ctx.remaining() - 0.1)))
    after = sample(args, ctx)
    return before, after, after["taken"] - before["taken"]


def format_bytes(value):
    """1536 -> '1.5 KiB', as the messages of diskio and net show rates (disk keeps its own
    copy: a batch of disk checks ships no helper at all)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            break
        value /= 1024.0
    return ("%d %s" if unit == "B" else "%.1f %s") % (value, unit)


def per_item(before, after, names_before, names_after, rates):
    """(rates of each item present at both ends, appeared, vanished) for per-device and
    per-interface counters: `rates(before, after)` gives one item's rates, or None when its
    counters went backwards (it was removed and created again: vanished and appeared)."""
    measured = {}
    appeared = [name for name in names_after if name not in before]
    vanished = [name for name in names_before if name not in after]
    for name in names_after:
        if name not in before:
            continue
        values = rates(before[name], after[name])
        if values is None:
            vanished.append(name)
            appeared.append(name)
        else:
            measured[name] = values
    return measured, appeared, vanished


def presence(appeared, vanished):
    """The message's note of items that appeared or vanished during the window."""
    notes = (("appeared", appeared), ("vanished", vanished))
    return "".join("; %s: %s" % (what, ", ".join(names)) for what, names in notes if names)
