# A check's time budget, shared by the modules that wait on something (a server, a command).
import time


def budget(args, ctx):
    """Seconds the module's work may take: its own `timeout` option, within the check's."""
    remaining = ctx.remaining()
    # End a little before the check's deadline so a hung server or command is reported by
    # the module, with its reason, rather than as a bare batch timeout.
    usable = max(0.05, remaining - min(0.25, remaining * 0.1))
    if args.get("timeout"):
        return min(float(args["timeout"]), usable)
    return usable


def left(deadline):
    """Seconds until deadline (time.monotonic()); socket.timeout once it has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        import socket

        raise socket.timeout("timed out")
    return remaining


def seconds(value):
    return ("%.1fs" % value) if value < 10 else ("%.0fs" % value)


def milliseconds(value):
    return ("%.1fms" % (value * 1000)) if value < 0.01 else ("%.0fms" % (value * 1000))
