# Which files to read: the current files, and where the lines of a rotated one went.
#
# Part of the log module (modules/log.py), shipped with it. Runs on the target: standard
# library only, Python 3.6 syntax.
import glob
import os
import re
import stat
import time

from . import logfiles

MAX_CANDIDATES = 50  # rotated siblings looked at, most recent first
GONE_TTL = 7 * 86400  # a vanished file's cursor is kept this long (glob only)
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip")
# What follows the name of a rotated generation: .1, -20261127, _2026-11-27-1200, .old ...
GENERATION = re.compile(
    r"^[._-](?:\d+|\d{4}[-_.]?\d{2}[-_.]?\d{2}(?:[-_.T]?\d{2}(?:[-_:.]?\d{2}){0,2})?"
    r"(?:[-_.]\d+)?|old|bak|prev)(?:\.(?:gz|bz2|xz))?$"
)


class FileFinder(object):
    """Follow's first step: from the path and the old cursors, the sources to read.

    A mixin of log.Follow, whose __init__ sets what it uses: path, start, old (cursors by
    path), has_state, deadline, and the claimed, sources, cursors, listings, notes and
    problems it fills."""

    def current(self):
        """The files the path names now: [(path, logfiles.Found or None, problem or None)]."""
        if logfiles.is_glob(self.path):
            names = sorted(glob.glob(self.path))
        else:
            names = [self.path]
        out = []
        seen = {}
        # a link to another matched file is the same file: read it once, under its own name
        names.sort(key=lambda name: (os.path.islink(name), name))
        for name in names:
            try:
                st = os.stat(name)
            except FileNotFoundError:
                out.append((name, None, "no such file: %s" % name))
                continue
            except PermissionError:
                out.append(
                    (
                        name,
                        None,
                        "cannot look at %s: permission denied; %s" % (name, logfiles.BECOME_HINT),
                    )
                )
                continue
            except OSError as exc:
                out.append((name, None, "cannot look at %s: %s" % (name, exc.strerror or exc)))
                continue
            if not stat.S_ISREG(st.st_mode):
                if not logfiles.is_glob(self.path):
                    raise RuntimeError("%s is not a regular file" % name)
                continue
            if logfiles.is_glob(self.path) and name.lower().endswith(COMPRESSED_SUFFIXES):
                continue  # compressed generations are read only to drain a rotation
            key = (st.st_dev, st.st_ino)
            if key in seen:
                self.notes.append("%s is the same file as %s: read once" % (name, seen[key]))
                continue
            seen[key] = name
            out.append((name, logfiles.Found(name, st), None))
        out.sort(key=lambda item: item[0])
        return out

    def _matches(self, fd, size, cursor):
        """Whether the open plain file holds the cursor's contents up to its offset."""
        offset = cursor["offset"]
        if size < offset or size < cursor["head_len"]:
            return False
        if logfiles.sha(logfiles.pread(fd, cursor["head_len"], 0)) != cursor["head"]:
            return False
        tail_len = cursor["tail_len"]
        return logfiles.sha(logfiles.pread(fd, tail_len, offset - tail_len)) == cursor["tail"]

    def _same(self, found, cursor):
        if found.key != (cursor["dev"], cursor["ino"]):
            return False
        fd = logfiles.open_readable(found.path)
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != found.key:
                return False
            return self._matches(fd, st.st_size, cursor)
        finally:
            os.close(fd)

    def plan(self):
        files = self.current()
        readable = []
        unreadable = set()
        for path, found, problem in files:
            if problem is not None:
                self.problems.append(problem)
                unreadable.add(path)
            else:
                readable.append(found)
        if logfiles.is_glob(self.path) and not files:
            self.problems.append("no file matches %s" % self.path)
        # 1. the same file at the same path
        how = {}
        used = set()
        for found in readable:
            cursor = self.old.get(found.path)
            if cursor is None:
                continue
            try:
                if self._same(found, cursor):
                    how[found.path] = ("same", cursor)
                    used.add(id(cursor))
            except PermissionError as exc:
                self.problems.append(str(exc))
                unreadable.add(found.path)
            except OSError as exc:
                self.problems.append("cannot read %s: %s" % (found.path, exc.strerror or exc))
                unreadable.add(found.path)
        readable = [f for f in readable if f.path not in unreadable]
        # 2. a known file under another path (moved, or renamed into the glob)
        known = {}
        for path, cursor in self.old.items():
            if id(cursor) not in used and path not in unreadable:
                known.setdefault((cursor["dev"], cursor["ino"]), []).append((path, cursor))
            for rotated in cursor["rotated"]:
                if not rotated.get("compressed"):
                    known.setdefault((rotated["dev"], rotated["ino"]), []).append((path, rotated))
        for found in readable:
            if found.path in how:
                continue
            for path, cursor in known.get(found.key, []):
                if id(cursor) in used:
                    continue
                try:
                    if self._same(found, cursor):
                        how[found.path] = ("moved", cursor)
                        used.add(id(cursor))
                        if cursor.get("path") is None and path != found.path:
                            self.notes.append(
                                "%s is %s moved: continued where it was left" % (found.path, path)
                            )
                        break
                except OSError:
                    continue
        for found in readable:
            if found.path in how:
                self.claimed.add(found.key)
        # 3. rotations: per followed path, the older generations first, then the file itself
        later = []
        for found in readable:
            cursor = self.old.get(found.path)
            state = how.get(found.path)
            if cursor is not None:
                for rotated in cursor["rotated"]:
                    if id(rotated) not in used:
                        self._follow_rotated(rotated, found.path)
                if state is None or state[1] is not cursor:
                    self._rotation(found, cursor, state, used)
                    continue
            if state is not None:
                self._live(found, state[1]["offset"], "appended")
            else:
                later.append(found)
        # 4. files seen for the first time
        for found in later:
            if found.key in self.claimed:
                continue
            self.claimed.add(found.key)
            if self.start == "beginning" or self.has_state:
                self._live(found, 0, "new")
            else:
                self._live(found, None, "new")  # start: end
        # a current file read as another's rotated generation: its cursor ends that read
        live = set(s.live_for for s in self.sources if s.live_for)
        current = set(f.path for f in readable)
        for source in self.sources:
            if not source.live_for and source.path in current and source.path not in live:
                source.live_for = source.path
                live.add(source.path)
        # vanished paths keep their cursor for a while; unreadable ones keep it as it was
        now = time.time()
        for path, cursor in self.old.items():
            if path in unreadable:
                self.cursors[path] = cursor
                continue
            if id(cursor) in used or path in current:
                continue
            since = cursor.get("gone_since", now)
            if not logfiles.is_glob(self.path) or now - since < GONE_TTL:
                self.cursors[path] = dict(cursor, gone_since=since)

    def _live(self, found, offset, event):
        source = logfiles.Source(found.path, found, offset, event, found.path)
        source.live_for = found.path
        self.sources.append(source)
        return source

    def _rotation(self, found, cursor, state, used):
        """found.path no longer holds the cursor's file: drain the rotated copy, the newer
        generations, then read the new file from its beginning (or from where it moved)."""
        path = found.path
        moved_elsewhere = id(cursor) in used
        drained = None
        if not moved_elsewhere:
            drained = self._find(cursor, path, "rotated", final=True)
        self._newer(cursor, path)
        same_inode = found.key == (cursor["dev"], cursor["ino"])
        if drained is not None:
            drained.event = "copytruncated" if same_inode else "rotated"
        if state is not None:  # the file at this path is another known file, moved here
            self._live(found, state[1]["offset"], "appended")
            return
        if found.key in self.claimed:
            return
        self.claimed.add(found.key)
        if drained is not None or moved_elsewhere:
            event = "copytruncated" if same_inode and drained is not None else "rotated"
        else:
            event = "truncated" if same_inode else "replaced"
        live = self._live(found, 0, event)
        live.drained = drained

    def _listing(self, directory):
        if directory not in self.listings:
            try:
                self.listings[directory] = os.listdir(directory or ".")
            except OSError:
                self.listings[directory] = []
        return self.listings[directory]

    def _siblings(self, path, cursor=None):
        """Files that may be earlier generations of path, most recently modified first."""
        out = self._named_like(path)
        real = cursor.get("real") if cursor else None
        if real and real != path:  # a symbolic link: its target's generations, and the target
            known = set(f.path for f in out)
            out += [f for f in self._named_like(real) if f.path not in known]
            if real not in known:
                try:
                    st = os.stat(real)
                    if stat.S_ISREG(st.st_mode):
                        out.append(logfiles.Found(real, st))
                except OSError:
                    pass
        out.sort(key=lambda f: f.mtime, reverse=True)
        return out[:MAX_CANDIDATES]

    def _named_like(self, path):
        directory, base = os.path.split(path)
        stem, ext = os.path.splitext(base)
        out = []
        for name in self._listing(directory):
            if name == base:
                continue
            middle = None
            if name.startswith(base) and name[len(base) : len(base) + 1] in (".", "-", "_"):
                middle = name[len(base) :]
            elif (
                ext
                and stem
                and name.startswith(stem)
                and name[len(stem) : len(stem) + 1] in (".", "-", "_")
            ):
                rest = name[len(stem) :]
                for tail in (ext, ext + ".gz", ext + ".bz2", ext + ".xz"):
                    if rest.endswith(tail) and len(rest) > len(tail):
                        middle = rest[: len(rest) - len(tail)] + tail[len(ext) :]
                        break
            if middle is None:
                continue
            full = os.path.join(directory, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            found = logfiles.Found(full, st)
            found.generation = bool(GENERATION.match(middle))
            out.append(found)
        return out

    def _find(self, cursor, owner, event, final, extra=()):
        """The file (plain or compressed) that holds the cursor's contents, as a logfiles.Source
        positioned at the cursor's offset; None when it is gone."""
        candidates = [
            f for f in list(extra) + self._siblings(owner, cursor) if f.key not in self.claimed
        ]
        key = (cursor["dev"], cursor["ino"])
        if not cursor["head_len"]:  # the file was empty: no contents to recognise it by
            since = cursor.get("mtime", float("inf"))
            candidates = [f for f in candidates if f.key == key or f.mtime > since]
        candidates.sort(key=lambda f: (f.key != key, f.path.lower().endswith(COMPRESSED_SUFFIXES)))
        for found in candidates:
            try:
                source = self._try(found, cursor, owner, event, final)
            except (OSError, EOFError, logfiles.OutOfTime):
                continue
            except Exception:  # a corrupt compressed file
                continue
            if source is not None:
                self.claimed.add(found.key)
                self.sources.append(source)
                return source
        return None

    def _try(self, found, cursor, owner, event, final):
        fd = logfiles.open_readable(found.path)
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != found.key:
                return None
            kind = logfiles.compression(logfiles.pread(fd, 6, 0))
            if kind is None:
                if not self._matches(fd, st.st_size, cursor):
                    return None
                source = logfiles.Source(found.path, found, cursor["offset"], event, owner, final)
                source.size = st.st_size
                return source
        finally:
            os.close(fd)
        # compressed: compare the decompressed head, then the bytes before the offset
        offset, tail_len = cursor["offset"], cursor["tail_len"]
        stream = logfiles.open_decompressed(found.path, kind)
        keep = False
        try:
            head = stream.read(logfiles.HEAD_LEN)
            if (
                len(head) < cursor["head_len"]
                or logfiles.sha(head[: cursor["head_len"]]) != cursor["head"]
            ):
                return None
            isize = logfiles.gzip_size(found.path) if kind == "gzip" else None
            if offset <= len(head):  # all in the head: check there, then go back to offset
                tail = head[offset - tail_len : offset]
                stream.seek(offset)
            else:
                data = head[max(0, offset - tail_len) :]
                if not logfiles.skip(stream, offset - tail_len - len(head), self.deadline):
                    return None
                data += stream.read(tail_len - len(data))
                tail = data
            if len(tail) != tail_len or logfiles.sha(tail) != cursor["tail"]:
                return None
            source = logfiles.Source(found.path, found, offset, event, owner, final)
            source.kind = kind
            source.stream = stream
            source.prefix = tail
            source.head = head
            # the trailer holds the size mod 2**32: right when less than 4 GiB is left
            source.size = None if isize is None else offset + (isize - offset) % (1 << 32)
            keep = True
            return source
        finally:
            if not keep:
                stream.close()

    def _newer(self, cursor, owner):
        """Generations rotated after the cursor's file (a second rotation between runs):
        unclaimed, named like generations, modified after the file last was, and not a copy
        of a file already read; oldest first, read in full."""
        heads = set()
        for old in list(self.old.values()) + [r for c in self.old.values() for r in c["rotated"]]:
            heads.add((old["head_len"], old["head"]))
        out = []
        for found in sorted(self._siblings(owner), key=lambda f: f.mtime):
            if found.key in self.claimed or not found.generation:
                continue
            if found.mtime <= cursor.get("mtime", float("inf")):
                continue
            try:
                head, kind = self._head(found)
            except Exception:
                continue
            if any(len(head) >= n and logfiles.sha(head[:n]) == h for n, h in heads if n):
                continue
            source = logfiles.Source(found.path, found, 0, "rotated", owner, final=True)
            source.kind = kind
            source.head = head
            source.size = found.size if kind is None else None
            source.note = "%s was rotated more than once since the last run: read %s in full" % (
                owner,
                found.path,
            )
            self.claimed.add(found.key)
            self.sources.append(source)
            out.append(source)
        return out

    def _head(self, found):
        with open(found.path, "rb") as handle:
            first = handle.read(logfiles.HEAD_LEN)
        kind = logfiles.compression(first)
        if kind is None:
            return first, None
        stream = logfiles.open_decompressed(found.path, kind)
        try:
            return stream.read(logfiles.HEAD_LEN), kind
        finally:
            stream.close()

    def _follow_rotated(self, rotated, owner):
        """A rotated file followed since the last run: read what was written to it late, or
        the rest a max_bytes limit left; forget it once it is unchanged or gone."""
        path = rotated["path"]
        here = []
        try:
            st = os.stat(path)
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == (
                rotated["dev"],
                rotated["ino"],
            ):
                here = [logfiles.Found(path, st)]
        except OSError:
            pass
        if not here and rotated.get("compressed"):
            return None
        source = self._find(rotated, owner, "rotated", final=True, extra=here)
        if source is not None:
            source.follow = True
        return source
