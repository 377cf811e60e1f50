# Reading procfs, shared by the modules that fall back to it when psutil is missing.
import os

DEFAULT_USER_HZ = 100  # clock ticks per second when sysconf cannot say


def read_text(path):
    """A procfs file's text (bytes that are not UTF-8 become U+FFFD)."""
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "replace")


def user_hz():
    """Clock ticks per second: the unit of the CPU times in /proc/stat and /proc/PID/stat."""
    try:
        return int(os.sysconf("SC_CLK_TCK")) or DEFAULT_USER_HZ
    except (AttributeError, ValueError, OSError):
        return DEFAULT_USER_HZ
