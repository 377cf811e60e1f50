# Follow log files on the target: count the lines that match patterns in what was written since
# the previous run, through rotation (rename, copytruncate, compression), truncation and
# replacement, reading a bounded number of bytes per run.
#
# Runs on the target: standard library only, Python 3.6 syntax.
import os
import shutil
import time

from ._utils import logfiles, logmatch, logread, logrotation

MODULE = {
    "summary": "Log files: count new lines matching patterns, across rotations",
    "keeps_state": True,  # saved cursors arrive as _cursors; new ones leave as state.cursors
    "description": [
        "Reads what was appended to a log file (or to every file a glob matches) since the "
        "previous run and counts, for each pattern, the new lines that match it. The "
        "control node keeps each file's position (a cursor) in its state database and "
        "sends it back with the next run, so every line is counted once: the first run "
        "starts at the end of the file (`start: end`, the default) or at its beginning "
        "(`start: beginning`).",
        "Each pattern has a `name`, exactly one of `regex` (Python re syntax, matched "
        "against one line at a time) or `keyword` (a literal substring), optional "
        "`ignore_case`, and optional `warn`/`crit` thresholds on its own count. Each "
        "pattern's count is a measurement named after the pattern (`metric: errors`), "
        "beside `matches` (lines that match at least one pattern, the default metric), "
        "`lines`, `bytes`, `pending` and `files`. A pattern name looks like an identifier "
        "and is none of those five. `exclude` regexes drop a matching line from every "
        "count. The facts keep the first and last `samples` matching lines of each "
        "pattern, with the named groups of its regex as fields.",
        "Rotation is followed whatever the tool: a file is identified by its device, inode "
        "and SHA-256 hashes of its first 1 KB and of the bytes just before the cursor, so "
        "a new file that reuses the old inode is not mistaken for the old one. When the "
        "file was renamed (app.log.1, app.log-20261127, app-20261127.log), compressed "
        "(.gz, .bz2, .xz), copied and truncated (copytruncate) or replaced, the lines "
        "left in the old file are read from the rotated copy, then any generation rotated "
        "after it, then the new file from its beginning. A renamed file is followed for "
        "one more run in case its writer reopens late. When the old contents are gone, a "
        "note in the facts says which lines could not be read. A last line without a "
        "newline is counted once it is complete.",
        "`max_bytes` bounds what one run reads across all files (the rest is read by the "
        "next runs and reported as `pending`); a line longer than `max_bytes` counts as "
        "one line. Files that appear in a glob after the first run are read from their "
        "beginning: they were created since. A file the check may not read makes it "
        "UNKNOWN (run it with `become: true`), while the other files are still counted.",
        "Matching works on bytes for ASCII-compatible encodings (utf-8, latin-1, cp1252, "
        "...): each pattern's longest required literal is searched with bytes.find in "
        "large chunks and the regex runs only on the lines that contain it; there `\\d`, "
        "`\\w`, `\\s`, `\\b` and `ignore_case` are ASCII-only. A regex with non-ASCII "
        "characters, or an encoding such as utf-16, makes the check match decoded text "
        "(slower). Undecodable bytes never fail a check: they become U+FFFD. With many "
        "patterns the target's `grep -F` finds the candidate lines (`prefilter`).",
        "`per: 1m` turns each pattern's count into a rate per minute over the time since "
        "the previous run (computed on the control node). `anomaly: {k: 3, window: 20, "
        "min_runs: 5}` flags a count above mean + k·σ of this check's last `window` runs, "
        "stored in the state database.",
    ],
    "free_form": "path",
    "options": {
        "path": {
            "type": "str",
            "required": True,
            "description": "The log file, or a glob (`*`, `?`, `[...]`) of log files, on "
            "the target.",
        },
        "patterns": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "description": "What to count: each pattern is {name, regex or keyword, "
            "ignore_case, warn, crit}; its count is the measurement `name`.",
            "options": {
                "name": {
                    "type": "str",
                    "required": True,
                    "description": "Measurement name: letters, digits and _, not starting "
                    "with a digit, and not matches, lines, bytes, pending or files.",
                },
                "regex": {
                    "type": "str",
                    "format": "regex",
                    "description": "Python regular expression searched in each line; its "
                    "named groups become the fields of the samples.",
                },
                "keyword": {
                    "type": "str",
                    "description": "Literal substring searched in each line.",
                },
                "ignore_case": {
                    "type": "bool",
                    "default": False,
                    "description": "Match regardless of case.",
                },
                "warn": {
                    "type": "raw",
                    "description": "Threshold (number or Nagios range) on this pattern's "
                    "count, applied on the control node.",
                },
                "crit": {
                    "type": "raw",
                    "description": "Critical threshold on this pattern's count.",
                },
            },
            "required_one_of": [["regex", "keyword"]],
            "mutually_exclusive": [["regex", "keyword"]],
        },
        "exclude": {
            "type": "list",
            "format": "regex",
            "elements": "str",
            "default": [],
            "description": "Regular expressions: a line matching any of them counts for no "
            "pattern.",
        },
        "start": {
            "type": "str",
            "choices": ["end", "beginning"],
            "default": "end",
            "description": "Where the check's first run begins in a file (no cursor yet).",
        },
        "max_bytes": {
            "type": "size",
            "default": "128MB",
            "description": "The most one run reads, across all files; the rest waits for "
            "the next run and is measured as pending.",
        },
        "samples": {
            "type": "int",
            "min": 0,
            "max": 1000,
            "default": 3,
            "description": "How many of the first and of the last matching lines of each "
            "pattern the facts keep (0: none).",
        },
        "sample_length": {
            "type": "int",
            "min": 1,
            "max": 65536,
            "default": 512,
            "description": "Each sample line is cut to this many characters.",
        },
        "encoding": {
            "type": "str",
            "format": "encoding",
            "default": "utf-8",
            "description": "Encoding of the log files; undecodable bytes become U+FFFD.",
        },
        "per": {
            "type": "duration",
            "min": "1s",
            "max": "365d",
            "description": "per: 1m turns each pattern's count into a rate per minute over "
            "the time since the previous run (computed on the control node).",
        },
        "anomaly": {
            "type": "dict",
            "description": "anomaly: {k: 3, window: 20, min_runs: 5} flags a count above "
            "mean + k·σ of this check's last `window` runs, stored in the state database.",
            "options": {
                "k": {
                    "type": "float",
                    "min": 0,
                    "description": "How many standard deviations above the mean (default 3).",
                },
                "window": {
                    "type": "int",
                    "min": 2,
                    "max": 500,
                    "description": "How many past runs make the history (default 20).",
                },
                "min_runs": {
                    "type": "int",
                    "min": 1,
                    "max": 500,
                    "description": "Runs needed before anything is flagged (default 5).",
                },
                "min_increase": {
                    "type": "float",
                    "min": 0,
                    "description": "The count must exceed the mean by at least this (default 1).",
                },
                "status": {
                    "type": "str",
                    "choices": ["WARNING", "CRITICAL"],
                    "description": "Status of an anomaly (default WARNING).",
                },
            },
        },
        "prefilter": {
            "type": "str",
            "choices": ["auto", "python", "grep"],
            "default": "auto",
            "description": "How candidate lines are found: python (bytes.find per "
            "literal), grep (the target's grep -F, for many patterns) or auto (grep for "
            "more than 8 patterns, when every pattern has a literal and grep exists).",
        },
    },
    "measurements": {
        "matches": {
            "unit": "",
            "description": "New lines matching at least one pattern (not excluded).",
        },
        "lines": {"unit": "", "description": "Complete new lines read by this run."},
        "bytes": {"unit": "B", "description": "Bytes read by this run."},
        "pending": {
            "unit": "B",
            "description": "Bytes left for the next runs because of max_bytes.",
        },
        "files": {"unit": "", "description": "Files read (live and rotated)."},
    },
    "default_metric": "matches",
    "facts": {
        "files": "Each file read this run: path, from and to (byte offsets), bytes, event "
        "(new, appended, unchanged, rotated, copytruncated, truncated, replaced), and of "
        "(the log a rotated file belongs to).",
        "samples": "Per pattern with matches: the first and last matching lines (see samples).",
        "notes": "What the run could not do as asked, e.g. lines that could not be read.",
    },
}

EXAMPLES = r"""
- name: app errors
  log:
    path: /var/log/app/app.log
    patterns:
      - {name: errors, regex: ' ERROR ', warn: 1, crit: 10}
      - {name: timeouts, keyword: upstream timed out, ignore_case: true, warn: 5}
    exclude: ['healthcheck']

- name: nginx 5xx rate
  log:
    path: /var/log/nginx/access.log
    patterns:
      - {name: server_errors, regex: '" 5\d\d ', warn: 10, crit: 100}
    per: 1m
  become: true

- name: unusual error counts across services
  log:
    path: /var/log/myapp/*.log
    patterns:
      - {name: errors, regex: 'ERROR (?P<code>E\d{4})'}
    anomaly: {k: 3, window: 20, min_runs: 5}
    max_bytes: 256MB
    samples: 5

- name: out of memory kills
  log:
    path: /var/log/kern.log
    patterns:
      - {name: oom, keyword: 'Out of memory: Killed process'}
    start: beginning
  warn: 1
  become: true
"""

GREP_AUTO_PATTERNS = 8  # prefilter auto: grep above this many patterns


# ------------------------------------------------------------------------------------ run


class Follow(logrotation.FileFinder, logread.Reader):
    """One run of the check: decides what to read (FileFinder), reads it (Reader), and builds
    the new cursors."""

    def __init__(self, args, ctx):
        self.path = str(args["path"])
        self.start = str(args.get("start") or "end")
        if self.start not in ("end", "beginning"):
            raise RuntimeError("start: expected end or beginning, got %r" % self.start)
        self.total = logfiles.parse_size(args.get("max_bytes", 128000000))
        if self.total <= 0:
            raise RuntimeError("max_bytes: must be more than 0")
        self.left = self.total
        codec, compatible = logmatch.encoding(str(args.get("encoding") or "utf-8"))
        samples = args.get("samples", 3)
        sample_length = args.get("sample_length", 512)
        self.matcher = logmatch.Matcher(
            args.get("patterns"),
            args.get("exclude") or [],
            codec,
            compatible,
            3 if samples is None else samples,
            512 if sample_length is None else sample_length,
        )
        self.tally = logmatch.Tally(len(self.matcher.patterns), self.matcher.samples)
        prefilter = str(args.get("prefilter") or "auto")
        if prefilter not in ("auto", "python", "grep"):
            raise RuntimeError("prefilter: expected auto, python or grep, got %r" % prefilter)
        self.forced_grep = prefilter == "grep"
        self.grep = None
        if prefilter != "python" and self.matcher.binary and self.matcher.all_literal():
            literals = [p.literal for p in self.matcher.patterns]
            if all(b"\0" not in literal for literal in literals) and (
                self.forced_grep or len(literals) > GREP_AUTO_PATTERNS
            ):
                self.grep = shutil.which("grep")  # None: the Python path
        remaining = ctx.remaining() if ctx is not None else 3600.0
        self.deadline = time.monotonic() + max(0.05, remaining - min(2.0, remaining * 0.2))
        cursors = args.get("_cursors") or {}
        self.has_state = bool(cursors)  # the check ran before: new files were created since
        self.old = {}
        self.notes = []
        self.problems = []
        if isinstance(cursors, dict):
            for path, cursor in cursors.items():
                if logfiles.valid_cursor(cursor):
                    rotated = [
                        r for r in cursor.get("rotated") or [] if logfiles.valid_cursor(r, True)
                    ]
                    cursor = dict(cursor, rotated=rotated)
                    self.old[str(path)] = cursor
                else:
                    self.notes.append("ignored a malformed cursor for %s" % path)
        self.claimed = set()
        self.sources = []
        self.cursors = {}
        self.listings = {}

    # ------------------------------------------------------------------------------ results

    def cursor_of(self, source):
        end = source.start + source.consumed
        head = source.head or b""
        tail = source.tail if source.consumed else source.prefix
        if source.kind is None:
            cursor = {"dev": source.found.dev, "ino": source.found.ino, "size": source.size}
        else:
            cursor = {
                "dev": source.found.dev,
                "ino": source.found.ino,
                "size": source.size if source.size is not None else end,
                "compressed": source.kind,
            }
        tail = tail[-min(end, logfiles.TAIL_LEN) :] if end else b""
        cursor.update(
            {
                "offset": end,
                "head": logfiles.sha(head[: logfiles.HEAD_LEN]),
                "head_len": len(head[: logfiles.HEAD_LEN]),
                "tail": logfiles.sha(tail),
                "tail_len": len(tail),
                "mtime": source.mtime,
            }
        )
        return cursor

    def results(self):
        rotated = {}
        files = []
        notes = list(self.notes)
        pending = 0
        read = 0
        for source in self.sources:
            if source.failed or source.skipped:
                if source.failed:
                    self.problems.append(source.failed)
                else:
                    notes.append(source.skipped)
                if source.live_for:
                    old = self.old.get(source.live_for)
                    if old is not None:
                        self.cursors[source.live_for] = old
                continue
            read += 1
            pending += source.pending
            entry = {
                "path": source.path,
                "from": source.start,
                "to": source.start + source.consumed,
                "bytes": source.consumed,
                "event": source.event,
            }
            if source.event in ("appended", "new") and not source.consumed:
                entry["event"] = "unchanged" if source.event == "appended" else "new"
            if source.owner != source.path:
                entry["of"] = source.owner
            files.append(entry)
            if source.live_for:
                cursor = self.cursor_of(source)
                real = os.path.realpath(source.path)
                if real != os.path.abspath(source.path):
                    cursor["real"] = real
                cursor["rotated"] = rotated.setdefault(source.live_for, [])
                self.cursors[source.live_for] = cursor
                if source.owner != source.path:  # a generation that the glob also matches
                    notes.append(
                        source.note or "%s holds lines of %s" % (source.path, source.owner)
                    )
                else:
                    self._rotation_note(source, source.drained, notes)
                continue
            if source.note:
                notes.append(source.note)
            elif source.follow and source.consumed:
                notes.append(
                    "%s grew after it was rotated: read %s more"
                    % (source.path, logfiles.lines(source.lines))
                )
            # a rotated file: follow it once more if renamed (it may still grow) or unfinished
            unfinished = source.stop is not None
            if unfinished or (source.kind is None and (source.consumed or not source.follow)):
                cursor = self.cursor_of(source)
                cursor["path"] = source.path
                rotated.setdefault(source.owner, []).append(cursor)
        for owner, entries in rotated.items():  # (a live file that failed: its old cursor)
            if owner in self.cursors and self.cursors[owner].get("rotated") is not entries:
                self.cursors[owner] = dict(self.cursors[owner], rotated=entries)
        return files, notes, pending, read

    def _rotation_note(self, source, drained, notes):
        path = source.path
        if source.event == "rotated" and drained is not None:
            notes.append(
                "%s was rotated: read %s left in %s"
                % (path, logfiles.lines(drained.lines), drained.path)
            )
        elif source.event == "rotated":
            notes.append("%s was rotated" % path)
        elif source.event == "copytruncated":
            notes.append(
                "%s was copied and truncated: read %s left in %s"
                % (
                    path,
                    logfiles.lines(drained.lines if drained else 0),
                    drained.path if drained else "the copy",
                )
            )
        elif source.event == "truncated":
            notes.append(
                "%s was truncated in place: lines written between the last run and the "
                "truncation are gone" % path
            )
        elif source.event == "replaced":
            notes.append(
                "%s was replaced and the old file was not found: lines written to it "
                "after the last run are gone" % path
            )


def run(args, ctx):
    follow = Follow(args, ctx)
    follow.plan()
    if not logfiles.is_glob(follow.path) and follow.problems and not follow.sources:
        raise RuntimeError(follow.problems[0])
    follow.read()
    files, notes, pending, read = follow.results()
    if not logfiles.is_glob(follow.path) and follow.problems and not read:
        raise RuntimeError(follow.problems[0])  # nothing read: the old cursors stay
    matcher, tally = follow.matcher, follow.tally
    measurements = {
        "matches": tally.matches,
        "lines": tally.lines,
        "bytes": sum(f["bytes"] for f in files),
        "pending": pending,
        "files": read,
    }
    for name, count in zip(matcher.names, tally.counts):
        measurements[name] = count
    counts = " ".join("%s=%d" % (n, c) for n, c in zip(matcher.names, tally.counts))
    message = "%s in %d new lines (%d file%s, %s)" % (
        counts,
        tally.lines,
        read,
        "" if read == 1 else "s",
        logfiles.human(measurements["bytes"]),
    )
    stops = set(s.stop for s in follow.sources if s.stop)
    if pending or stops:
        reason = "max_bytes" if "budget" in stops or not stops else "time limit"
        message += "; %s pending (%s)" % (logfiles.human(pending), reason)
    result = {
        "measurements": measurements,
        "facts": {"files": files, "samples": matcher.render(tally), "notes": notes},
        "failures": [],
        "message": message,
        "state": {"cursors": follow.cursors},
    }
    if follow.problems:
        result["status"] = "UNKNOWN"
        result["message"] = "; ".join(follow.problems) + " (" + message + ")"
    return result
