# Reading the sources: plain or compressed, through Python's search or grep.
#
# Part of the log module (modules/log.py), shipped with it. Runs on the target: standard
# library only, Python 3.6 syntax.
import os
import time

from . import logfiles, loggrep

MAX_LINE = 8 * 1024 * 1024  # a longer line is cut into pieces (bounded memory)
GREP_MIN_REGION = 1024 * 1024  # prefilter auto: smaller regions stay in Python


class Reader(object):
    """Follow's second step: read each source within the byte and time budgets.

    A mixin of log.Follow, whose __init__ sets what it uses: sources (from FileFinder.plan),
    matcher, tally, grep, forced_grep, total, left and deadline."""

    def read(self):
        for source in self.sources:
            try:
                self._read(source)
            except loggrep.GrepFailed:
                if self.forced_grep:
                    raise RuntimeError("prefilter grep: grep failed; use prefilter: auto") from None
                self.grep = None
                self._read(source)
            except PermissionError as exc:
                source.failed = str(exc)
            except OSError as exc:
                source.failed = "cannot read %s: %s" % (source.path, exc.strerror or exc)

    def _read(self, source):
        stream, source.stream = source.stream, None
        fd = None
        try:
            if stream is None and source.kind is not None:
                stream = logfiles.open_decompressed(source.path, source.kind)
                if not logfiles.skip(stream, source.start or 0, self.deadline):
                    return
            elif stream is None:
                fd = logfiles.open_readable(source.path)
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != source.found.key:  # rotated meanwhile
                    source.skipped = "%s was replaced during the check: read next run" % source.path
                    return
                source.size = st.st_size
                source.mtime = st.st_mtime
                if source.start is None:  # first run, start: end
                    source.start = self._line_end(fd, st.st_size, self._codec(fd))
                source.start = min(source.start, st.st_size)
                tail_len = min(source.start, logfiles.TAIL_LEN)
                source.prefix = logfiles.pread(fd, tail_len, source.start - tail_len)
                os.lseek(fd, source.start, os.SEEK_SET)
                stream = os.fdopen(fd, "rb", buffering=0)
                fd = None
                source.head = None
            codec = self._codec_of(source, stream)
            before = self.tally.lines
            self._consume(source, stream, codec)
            source.lines = self.tally.lines - before
            if source.kind is None:
                head_len = min(source.size, logfiles.HEAD_LEN)
                source.head = logfiles.pread(stream.fileno(), head_len, 0)
        except logfiles.OutOfTime:
            source.stop = "time"
        finally:
            if stream is not None:
                stream.close()
            if fd is not None:
                os.close(fd)

    def _codec(self, fd):
        return self._text_codec(logfiles.pread(fd, 4, 0))

    def _codec_of(self, source, stream):
        if self.matcher.binary:
            return (None, b"\n", 1)
        if source.kind is None:
            return self._text_codec(logfiles.pread(stream.fileno(), 4, 0))
        return self._text_codec(source.head or b"")

    def _text_codec(self, first):
        """(codec, newline bytes, code unit width) of one file."""
        codec = self.matcher.codec
        if self.matcher.binary:
            return (None, b"\n", 1)
        if codec == "utf-16":
            codec = "utf-16-be" if first[:2] == b"\xfe\xff" else "utf-16-le"
        elif codec == "utf-32":
            codec = "utf-32-be" if first[:4] == b"\x00\x00\xfe\xff" else "utf-32-le"
        newline = "\n".encode(codec)
        return (codec, newline, len(newline))

    def _line_end(self, fd, size, codec):
        """Offset just after the last newline of a file (where `start: end` begins)."""
        _, newline, width = codec
        end = size - size % width
        floor = max(0, end - MAX_LINE)
        while end > floor:
            begin = max(floor, end - 65536)
            begin -= begin % width
            block = logfiles.pread(fd, end - begin, begin)
            cut = logfiles.last_newline(block, newline, width)
            if cut:
                return begin + cut
            end = begin
        return 0 if size <= MAX_LINE else size - size % width

    def _consume(self, source, stream, codec):
        """Read source from its start, at most what max_bytes and time leave, and count its
        complete lines. Sets source.consumed and source.stop ('budget', 'time' or None)."""
        _, newline, width = codec
        avail = None if source.kind is not None else max(0, source.size - source.start)
        room = self.left
        full = room >= self.total
        feed = None
        if self.grep and (self.forced_grep or avail is None or avail >= GREP_MIN_REGION):
            feed = loggrep.GrepFeed(self.grep, self.matcher, source.path)
        carry = b""
        consumed = 0
        read = 0
        stop = None
        tail = source.prefix
        try:
            while True:
                if avail is not None and read >= avail:
                    break
                if read >= room:
                    if avail is None and not stream.read(1):
                        break
                    stop = "budget"
                    break
                if time.monotonic() > self.deadline:
                    stop = "time"
                    break
                size = logfiles.CHUNK if avail is None else min(logfiles.CHUNK, avail - read)
                data = stream.read(min(size, room - read))
                if not data:
                    break
                read += len(data)
                buf = carry + data if carry else data
                cut = logfiles.last_newline(buf, newline, width)
                if not cut:
                    if len(buf) >= MAX_LINE:
                        cut = len(buf) - len(buf) % width
                    else:
                        carry = buf
                        continue
                self._block(source, buf, cut, codec, feed, consumed == 0 and source.start == 0)
                consumed += cut
                tail = (tail + buf[max(0, cut - logfiles.TAIL_LEN) : cut])[-logfiles.TAIL_LEN :]
                carry = buf[cut:]
            if carry and (
                (stop is None and source.final) or (stop == "budget" and not consumed and full)
            ):
                self._block(
                    source, carry, len(carry), codec, feed, consumed == 0 and source.start == 0
                )
                consumed += len(carry)
                tail = (tail + carry[-logfiles.TAIL_LEN :])[-logfiles.TAIL_LEN :]
            if feed is not None:
                feed.close(self.tally)
                feed = None
        finally:
            if feed is not None:
                feed.abort()
        self.left -= consumed
        source.consumed = consumed
        source.stop = stop
        source.tail = tail
        if stop is not None:
            if avail is not None:
                source.pending = avail - consumed
            elif source.size is not None:
                source.pending = max(0, source.size - source.start - consumed)

    def _block(self, source, buf, end, codec, feed, at_start):
        if feed is not None:  # lines go to the feed's tally: merged only if grep succeeds
            feed.tally.lines += buf.count(b"\n", 0, end)
            feed.write(memoryview(buf)[:end])
            if buf[end - 1 : end] != b"\n":
                feed.tally.lines += 1
                feed.write(b"\n")
            return
        if self.matcher.binary:
            self.matcher.scan(self.tally, buf, end, source.path)
            return
        text = buf[:end].decode(codec[0], "replace")
        if at_start and text.startswith("\ufeff"):
            text = text[1:]
        self.matcher.scan(self.tally, text, len(text), source.path)
