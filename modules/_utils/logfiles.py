# Log files on disk: fingerprints, decompression, sizes, cursors, and what one run reads.
#
# Part of the log module (modules/log.py), shipped with it. Runs on the target: standard
# library only, Python 3.6 syntax.
import hashlib
import os
import re
import struct
import time

CHUNK = 4 * 1024 * 1024  # bytes read at a time
HEAD_LEN = 1024
TAIL_LEN = 256
BECOME_HINT = "run the check with become: true, or make it readable by the SSH user"
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))


def sha(data):
    return hashlib.sha256(data).hexdigest()


def open_readable(path):
    try:
        return os.open(path, os.O_RDONLY)
    except PermissionError:
        raise PermissionError(
            "cannot read %s: permission denied; %s" % (path, BECOME_HINT)
        ) from None


def pread(fd, size, offset):
    if size <= 0:
        return b""
    parts = []
    while size > 0:
        data = os.pread(fd, size, offset)
        if not data:
            break
        parts.append(data)
        size -= len(data)
        offset += len(data)
    return b"".join(parts)


def is_glob(path):
    return any(c in path for c in "*?[")


def compression(first):
    for magic, kind in MAGIC:
        if first.startswith(magic):
            return kind
    return None


def open_decompressed(path, kind):
    if kind == "gzip":
        import gzip

        return gzip.open(path, "rb")
    if kind == "bz2":
        import bz2

        return bz2.open(path, "rb")
    import lzma

    return lzma.open(path, "rb")


def gzip_size(path):
    """Uncompressed size from a gzip trailer (mod 2**32; last member only), or None."""
    try:
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            return struct.unpack("<I", handle.read(4))[0]
    except (OSError, struct.error):
        return None


def skip(stream, count, deadline):
    while count > 0:
        data = stream.read(min(count, CHUNK))
        if not data:
            return False
        count -= len(data)
        if time.monotonic() > deadline:
            raise OutOfTime()
    return True


class OutOfTime(Exception):
    pass


def valid_cursor(cursor, rotated=False):
    if not isinstance(cursor, dict):
        return False
    for key in ("dev", "ino", "offset", "head_len", "tail_len"):
        if not isinstance(cursor.get(key), int) or isinstance(cursor.get(key), bool):
            return False
    if not isinstance(cursor.get("head"), str) or not isinstance(cursor.get("tail"), str):
        return False
    if cursor["offset"] < cursor["tail_len"] or cursor["offset"] < 0:
        return False
    if rotated:
        return isinstance(cursor.get("path"), str)
    return isinstance(cursor.get("rotated", []), list)


def lines(count):
    return "%d line%s" % (count, "" if count == 1 else "s")


def human(size):
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            if unit == "B":
                return "%d B" % size
            return ("%.1f %s" if value < 10 else "%.0f %s") % (value, unit)
        value /= 1000.0
    return "%d B" % size


def parse_size(value):
    if isinstance(value, bool):
        raise RuntimeError("max_bytes: not a size: %r" % value)
    if isinstance(value, (int, float)):
        return int(value)
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", str(value), re.I)
    if not match:
        raise RuntimeError("max_bytes: not a size: %r (write it like 64MB)" % value)
    power = " kmgt".index(match.group(2).lower() or " ")
    base = 1024 if match.group(3) else 1000
    return int(float(match.group(1)) * base**power)


class Found(object):
    """A regular file as it is now."""

    def __init__(self, path, st):
        self.path = path
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.size = st.st_size
        self.mtime = st.st_mtime
        self.key = (st.st_dev, st.st_ino)
        self.generation = False  # named like a rotated generation of the followed file


class Source(object):
    """Something to read this run: a region of a live file or of a rotated one."""

    def __init__(self, path, found, start, event, owner, final=False):
        self.path = path  # where the bytes are read (samples name it)
        self.found = found
        self.start = start
        self.event = event
        self.owner = owner  # the followed path these lines belong to
        self.final = final  # a rotated file: its last line counts even without a newline
        self.live_for = None  # current path whose cursor this read produces
        self.follow = False  # a rotated file followed since the last run
        self.skipped = None  # why it was not read this run (not a problem: next run reads it)
        self.drained = None  # live file after a rotation: the Source of its old contents
        self.mtime = found.mtime if found is not None else 0
        self.kind = None  # compression, or None
        self.stream = None  # an open decompressed stream positioned at start
        self.prefix = b""  # the bytes just before start (up to TAIL_LEN)
        self.head = None  # first HEAD_LEN bytes (decompressed)
        self.size = found.size if found is not None else None
        self.consumed = 0
        self.stop = None
        self.lines = 0
        self.note = None
        self.pending = 0
        self.tail = b""
        self.failed = None


def last_newline(buf, newline, width):
    """Index just after the last (aligned) newline in buf, 0 when there is none."""
    if width == 1:
        return buf.rfind(newline) + 1
    at = buf.rfind(newline)
    while at >= 0 and at % width:
        at = buf.rfind(newline, 0, at + len(newline) - 1)
    return at + width if at >= 0 else 0
