# Follow log files on the target: count the lines that match patterns in what was written since
# the previous run, through rotation (rename, copytruncate, compression), truncation and
# replacement, reading a bounded number of bytes per run.
#
# Runs on the target: standard library only, Python 3.6 syntax.
import codecs
import glob
import hashlib
import os
import re
import shutil
import stat
import struct
import subprocess
import threading
import time
from collections import deque

try:  # Python 3.11+ (importing sre_parse there warns: deprecated)
    import re._parser as sre_parse
except ImportError:  # Python 3.6 - 3.10
    import sre_parse

MODULE = {
    "summary": "Log files: count new lines matching patterns, across rotations",
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

CHUNK = 4 * 1024 * 1024  # bytes read at a time
MAX_LINE = 8 * 1024 * 1024  # a longer line is cut into pieces (bounded memory)
HEAD_LEN = 1024
TAIL_LEN = 256
MAX_CANDIDATES = 50  # rotated siblings looked at, most recent first
MIN_LITERAL = 3  # a shorter required literal is no useful prefilter: run the regex instead
GREP_AUTO_PATTERNS = 8  # prefilter auto: grep above this many patterns
GREP_MIN_REGION = 1024 * 1024  # prefilter auto: smaller regions stay in Python
GONE_TTL = 7 * 86400  # a vanished file's cursor is kept this long (glob only)
SAMPLE_KEEP = 65536  # bytes of a sampled line kept to extract its fields
RESERVED = ("matches", "lines", "bytes", "pending", "files")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
BECOME_HINT = "run the check with become: true, or make it readable by the SSH user"
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip")
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))
# Variable-width encodings whose multi-byte characters may contain ASCII bytes: match on text.
UNSAFE_BYTES = (
    "shift_jis",
    "cp932",
    "shift_jis_2004",
    "shift_jisx0213",
    "big5",
    "big5hkscs",
    "cp950",
    "gbk",
    "gb18030",
    "cp936",
    "cp949",
    "johab",
    "utf-7",
    "hz",
)
# What follows the name of a rotated generation: .1, -20261127, _2026-11-27-1200, .old ...
GENERATION = re.compile(
    r"^[._-](?:\d+|\d{4}[-_.]?\d{2}[-_.]?\d{2}(?:[-_.T]?\d{2}(?:[-_:.]?\d{2}){0,2})?"
    r"(?:[-_.]\d+)?|old|bak|prev)(?:\.(?:gz|bz2|xz))?$"
)


class _GrepFailed(Exception):
    pass


# --------------------------------------------------------------------------------- patterns


def _sequence(tree):
    """Top-level items of a parsed regex, with plain groups opened (they occur exactly once)."""
    for op, av in tree:
        if op == sre_parse.SUBPATTERN:
            flag_changes = av[1:3] if len(av) == 4 else (0, 0)
            if not any(flag_changes):
                for item in _sequence(av[-1]):
                    yield item
                continue
        yield op, av


def _walk(value):
    """Every (op, av) of a parsed regex, nested ones included."""
    if isinstance(value, sre_parse.SubPattern):
        for op, av in value:
            yield op, av
            for item in _walk(av):
                yield item
    elif isinstance(value, (list, tuple)):
        for item in value:
            for found in _walk(item):
                yield found


def required_literal(pattern, ignore_case=False):
    """(literal, case_insensitive): the longest run of literal characters every match of the
    regex contains, or (None, ...) when there is none (alternation, classes only...).

    Works on str and bytes patterns and returns the same type. A case-insensitive literal
    is lower-cased: search it in the lower-cased text (exact for ASCII only)."""
    tree = sre_parse.parse(pattern, re.IGNORECASE if ignore_case else 0)
    state = getattr(tree, "state", None) or getattr(tree, "pattern", None)
    flags = state.flags if state is not None else 0
    icase = bool(flags & re.IGNORECASE) or ignore_case
    best, run = [], []
    for op, av in _sequence(tree):
        if op == sre_parse.LITERAL:
            run.append(av)
            continue
        if len(run) > len(best):
            best = run
        run = []
    if len(run) > len(best):
        best = run
    if not best:
        return None, icase
    literal = bytes(best) if isinstance(pattern, bytes) else "".join(chr(c) for c in best)
    return (literal.lower() if icase else literal), icase


def _anchored_to_string(pattern):
    """Whether the regex uses \\A or \\Z, which need the line on its own (a slice)."""
    ends = (sre_parse.AT_BEGINNING_STRING, sre_parse.AT_END_STRING)
    for op, av in _walk(sre_parse.parse(pattern)):
        if op == sre_parse.AT and av in ends:
            return True
    return False


class Pattern(object):
    """One compiled pattern (or exclude regex) and how to find its candidate lines."""

    def __init__(self, index, name, rx, literal, icase, keyword, whole):
        self.index = index
        self.name = name
        self.rx = rx  # compiled regex (bytes or str), MULTILINE
        self.literal = literal  # required literal or None
        self.icase = icase  # the literal is lower-cased: search the lower-cased chunk
        self.keyword = keyword  # the literal is the whole pattern: no regex to confirm
        self.whole = whole  # \A or \Z: search the line as a slice
        self.fields = bool(rx.groupindex) if rx is not None else False

    def search(self, block, start, end):
        if self.whole:
            return self.rx.search(block[start:end])
        return self.rx.search(block, start, end)


def _encoding(name):
    """(codec name, whether matching may work on bytes)."""
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        raise RuntimeError(
            "encoding: unknown encoding %r; use a Python codec name such as utf-8, "
            "latin-1 or utf-16" % name
        ) from None
    if codec == "utf-8-sig":
        codec = "utf-8"
    try:
        compatible = "\n".encode(codec) == b"\n" and "a".encode(codec) == b"a"
    except Exception:
        compatible = False
    if codec in UNSAFE_BYTES or codec.startswith("iso2022"):
        compatible = False
    return codec, compatible


def _is_ascii(text):
    return all(ord(c) < 128 for c in text)


def _bytes_ok(spec, codec):
    """Whether this pattern means the same matched on encoded bytes."""
    if spec.get("regex") is not None:
        return _is_ascii(str(spec["regex"]))
    keyword = str(spec.get("keyword"))
    if spec.get("ignore_case"):
        return _is_ascii(keyword)
    try:
        keyword.encode(codec)
    except UnicodeError:
        return False
    return True


def _check_specs(specs):
    if not isinstance(specs, list) or not specs:
        raise RuntimeError("patterns: give at least one pattern, e.g. {name: errors, regex: ERROR}")
    seen = set()
    for number, spec in enumerate(specs, 1):
        if not isinstance(spec, dict):
            raise RuntimeError("patterns[%d]: expected {name, regex or keyword}" % number)
        name = spec.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise RuntimeError(
                "patterns[%d]: name %r must look like an identifier (letters, digits, _)"
                % (number, name)
            )
        if name in RESERVED:
            raise RuntimeError(
                "patterns: %r is a measurement of the log module (%s): pick another name"
                % (name, ", ".join(RESERVED))
            )
        if name in seen:
            raise RuntimeError("patterns: the name %r is used twice" % name)
        seen.add(name)
        given = [key for key in ("regex", "keyword") if spec.get(key) is not None]
        if len(given) != 1:
            raise RuntimeError("patterns: %s needs exactly one of regex or keyword" % name)
        if "\n" in str(spec.get("keyword") or ""):
            raise RuntimeError(
                "patterns: %s: a keyword is matched within one line: no newline" % name
            )


def _compile(regex, flags, what):
    try:
        return re.compile(regex, flags)
    except (re.error, OverflowError, RecursionError) as exc:
        raise RuntimeError("%s: invalid regular expression %r: %s" % (what, regex, exc)) from None


class Matcher(object):
    """Compiled patterns and excludes, and the chunk scanning that counts them."""

    def __init__(self, specs, excludes, codec, compatible, samples, sample_length):
        _check_specs(specs)
        excludes = [str(x) for x in excludes or []]
        self.codec = codec
        self.samples = max(0, int(samples))
        self.sample_length = max(1, int(sample_length))
        self.binary = compatible and all(_bytes_ok(s, codec) for s in specs)
        self.binary = self.binary and all(_is_ascii(x) for x in excludes)
        if self.binary:
            try:
                self._build(specs, excludes)
            except _NeedsText:
                self.binary = False
        if not self.binary:
            self._build(specs, excludes)
        self.names = [p.name for p in self.patterns]
        self.nl = b"\n" if self.binary else "\n"

    def _build(self, specs, excludes):
        self.patterns = [self._pattern(i, spec) for i, spec in enumerate(specs)]
        self.excludes = []
        for regex in excludes:
            _compile(regex, re.MULTILINE, "exclude")  # the error names the text form
            source = regex.encode("ascii") if self.binary else regex
            rx = self._compiled(source, re.MULTILINE, "exclude")
            self.excludes.append(
                Pattern(-1, "exclude", rx, None, False, False, _anchored_to_string(source))
            )

    def _compiled(self, source, flags, what):
        try:
            return re.compile(source, flags)
        except (re.error, OverflowError, RecursionError):
            if isinstance(source, bytes):
                raise _NeedsText() from None  # e.g. (?u): fine as text
            raise
        except Exception as exc:
            raise RuntimeError("%s: %s" % (what, exc)) from None

    def _pattern(self, index, spec):
        name = spec["name"]
        icase = bool(spec.get("ignore_case"))
        flags = re.MULTILINE | (re.IGNORECASE if icase else 0)
        what = "patterns: %s" % name
        if spec.get("keyword") is not None:
            keyword = str(spec["keyword"])
            if self.binary:
                literal = keyword.encode(self.codec)
                rx = re.compile(re.escape(literal), flags)
                if icase:
                    literal = literal.lower()
                return Pattern(index, name, rx, literal or None, icase, bool(literal), False)
            rx = re.compile(re.escape(keyword), flags)
            if icase or not keyword:
                return Pattern(index, name, rx, None, icase, False, False)
            return Pattern(index, name, rx, keyword, False, True, False)
        regex = str(spec["regex"])
        _compile(regex, flags, what)  # the error names the pattern and its text
        source = regex.encode("ascii") if self.binary else regex
        rx = self._compiled(source, flags, what)
        literal, lit_icase = required_literal(source, icase)
        if literal is not None and (len(literal) < MIN_LITERAL or (lit_icase and not self.binary)):
            literal = None  # too short to help, or str case folding is not lower()
        if literal is not None and self.nl_in(literal):
            literal = None
        return Pattern(index, name, rx, literal, lit_icase, False, _anchored_to_string(source))

    def nl_in(self, literal):
        return (b"\n" if isinstance(literal, bytes) else "\n") in literal

    def all_literal(self):
        return all(p.literal is not None for p in self.patterns)

    # ---------------------------------------------------------------------------- scanning

    def scan(self, tally, block, end, path, count_lines=True):
        """Count the lines of block[0:end] (complete lines; the last may lack its newline)."""
        nl = self.nl
        if count_lines and end:
            tally.lines += block.count(nl, 0, end)
            if block[end - 1 : end] != nl:
                tally.lines += 1
        hits = {}  # line start -> [line end, index of each pattern it matches...]
        lowered = None
        for p in self.patterns:
            if p.literal is not None:
                if p.icase:
                    if lowered is None:
                        lowered = block[:end].lower()
                    find = lowered.find
                else:
                    find = block.find
                literal = p.literal
                pos = find(literal, 0, end)
                while pos >= 0:
                    start = block.rfind(nl, 0, pos) + 1
                    stop = block.find(nl, pos, end)
                    if stop < 0:
                        stop = end
                    if p.keyword or p.search(block, start, stop) is not None:
                        hits.setdefault(start, [stop]).append(p.index)
                    if stop >= end:
                        break
                    pos = find(literal, stop + 1, end)
            elif p.whole:  # \\A or \\Z: each line on its own (slow, rare)
                start = 0
                while start < end:
                    stop = block.find(nl, start, end)
                    if stop < 0:
                        stop = end
                    if p.search(block, start, stop) is not None:
                        hits.setdefault(start, [stop]).append(p.index)
                    start = stop + 1
            else:
                search = p.rx.search
                m = search(block, 0, end)
                while m is not None:
                    first = m.start()
                    start = block.rfind(nl, 0, first) + 1
                    stop = block.find(nl, first, end)
                    if stop < 0:
                        stop = end
                    if m.end() <= stop or p.search(block, start, stop) is not None:
                        hits.setdefault(start, [stop]).append(p.index)
                    if stop + 1 >= end:
                        break
                    m = search(block, stop + 1, end)
        if hits:
            self._count(tally, block, hits, path)

    def _count(self, tally, block, hits, path):
        excludes = self.excludes
        keep = self.samples
        for start in sorted(hits):
            hit = hits[start]
            stop = hit[0]
            if excludes and any(x.search(block, start, stop) is not None for x in excludes):
                continue
            tally.matches += 1
            line = None
            for index in hit[1:]:
                tally.counts[index] += 1
                if keep:
                    if line is None:
                        line = block[start : min(stop, start + SAMPLE_KEEP)]
                    tally.sample(index, path, line)

    # ----------------------------------------------------------------------------- samples

    def decode(self, data):
        if isinstance(data, bytes):
            return data.decode(self.codec, "replace")
        return data

    def render(self, tally):
        out = {}
        if not self.samples:
            return out
        for p in self.patterns:
            first, last = tally.first[p.index], tally.last[p.index]
            if first or last:
                out[p.name] = {
                    "first": [self._sample(p, s) for s in first],
                    "last": [self._sample(p, s) for s in last],
                }
        return out

    def _sample(self, p, sample):
        path, line = sample
        cut = self.sample_length
        text = self.decode(line[: cut * 4 + 4] if isinstance(line, bytes) else line)
        fields = {}
        if p.fields:
            m = p.rx.search(line)
            if m is not None:
                for key, value in m.groupdict().items():
                    fields[key] = None if value is None else self.decode(value)[:cut]
        return {"file": path, "line": text.rstrip("\r")[:cut], "fields": fields}


class _NeedsText(Exception):
    pass


class Tally(object):
    """Counts and samples of one run (or of one grep region, merged afterwards)."""

    def __init__(self, patterns, samples):
        self.lines = 0
        self.matches = 0
        self.counts = [0] * patterns
        self.keep = samples
        self.first = [[] for _ in range(patterns)]
        self.last = [deque(maxlen=max(samples, 1)) for _ in range(patterns)]

    def sample(self, index, path, line):
        first = self.first[index]
        if len(first) < self.keep:
            first.append((path, line))
        else:
            self.last[index].append((path, line))

    def merge(self, other):
        self.lines += other.lines
        self.matches += other.matches
        for index in range(len(self.counts)):
            self.counts[index] += other.counts[index]
            for path, line in list(other.first[index]) + list(other.last[index]):
                self.sample(index, path, line)


# ------------------------------------------------------------------------------------ grep


class GrepFeed(object):
    """grep -F finds the candidate lines of a region fed through a pipe; Python confirms them
    with the real patterns (so the semantics stay Python's)."""

    def __init__(self, grep, matcher, path):
        self.matcher = matcher
        self.path = path
        self.tally = Tally(len(matcher.patterns), matcher.samples)
        argv = [grep, "-F", "-a"]
        if any(p.icase for p in matcher.patterns):
            argv.append("-i")
        for literal in sorted(set(p.literal for p in matcher.patterns)):
            argv += ["-e", literal]
        env = dict(os.environ, LC_ALL="C")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        try:
            import fcntl

            fcntl.fcntl(self.proc.stdin.fileno(), 1031, 1024 * 1024)  # F_SETPIPE_SZ
        except Exception:
            pass
        self.error = None
        self.thread = threading.Thread(target=self._drain, name="log-grep")
        self.thread.daemon = True
        self.thread.start()

    def _drain(self):
        scan = self.matcher.scan
        try:
            for line in self.proc.stdout:
                end = len(line) - 1 if line.endswith(b"\n") else len(line)
                scan(self.tally, line, end, self.path, count_lines=False)
        except Exception as exc:  # reported by close()
            self.error = exc

    def write(self, data):
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError) as exc:
            self.abort()
            raise _GrepFailed("grep stopped reading: %s" % exc) from None

    def close(self, tally):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.thread.join()
        code = self.proc.wait()
        if code > 1 or self.error is not None:
            raise _GrepFailed(
                "grep failed (exit %s%s)" % (code, self.error and ", %s" % self.error or "")
            )
        tally.merge(self.tally)

    def abort(self):
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.thread.join(5)
        self.proc.wait()


# ---------------------------------------------------------------------------------- files


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _pread(fd, size, offset):
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


def _is_glob(path):
    return any(c in path for c in "*?[")


def _compression(first):
    for magic, kind in MAGIC:
        if first.startswith(magic):
            return kind
    return None


def _open_decompressed(path, kind):
    if kind == "gzip":
        import gzip

        return gzip.open(path, "rb")
    if kind == "bz2":
        import bz2

        return bz2.open(path, "rb")
    import lzma

    return lzma.open(path, "rb")


def _gzip_size(path):
    """Uncompressed size from a gzip trailer (mod 2**32; last member only), or None."""
    try:
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            return struct.unpack("<I", handle.read(4))[0]
    except (OSError, struct.error):
        return None


def _skip(stream, count, deadline):
    while count > 0:
        data = stream.read(min(count, CHUNK))
        if not data:
            return False
        count -= len(data)
        if time.monotonic() > deadline:
            raise _OutOfTime()
    return True


class _OutOfTime(Exception):
    pass


def _valid_cursor(cursor, rotated=False):
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


def _lines(count):
    return "%d line%s" % (count, "" if count == 1 else "s")


def _human(size):
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            if unit == "B":
                return "%d B" % size
            return ("%.1f %s" if value < 10 else "%.0f %s") % (value, unit)
        value /= 1000.0
    return "%d B" % size


def _parse_size(value):
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


# ------------------------------------------------------------------------------------ run


class Follow(object):
    """One run of the check: decides what to read, reads it, and builds the new cursors."""

    def __init__(self, args, ctx):
        self.path = str(args["path"])
        self.start = str(args.get("start") or "end")
        if self.start not in ("end", "beginning"):
            raise RuntimeError("start: expected end or beginning, got %r" % self.start)
        self.total = _parse_size(args.get("max_bytes", 128000000))
        if self.total <= 0:
            raise RuntimeError("max_bytes: must be more than 0")
        self.left = self.total
        codec, compatible = _encoding(str(args.get("encoding") or "utf-8"))
        samples = args.get("samples", 3)
        sample_length = args.get("sample_length", 512)
        self.matcher = Matcher(
            args.get("patterns"),
            args.get("exclude") or [],
            codec,
            compatible,
            3 if samples is None else samples,
            512 if sample_length is None else sample_length,
        )
        self.tally = Tally(len(self.matcher.patterns), self.matcher.samples)
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
                if _valid_cursor(cursor):
                    rotated = [r for r in cursor.get("rotated") or [] if _valid_cursor(r, True)]
                    cursor = dict(cursor, rotated=rotated)
                    self.old[str(path)] = cursor
                else:
                    self.notes.append("ignored a malformed cursor for %s" % path)
        self.claimed = set()
        self.sources = []
        self.cursors = {}
        self.listings = {}

    # ----------------------------------------------------------------------- what to read

    def current(self):
        """The files the path names now: [(path, Found or None, problem or None)]."""
        if _is_glob(self.path):
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
                    (name, None, "cannot look at %s: permission denied; %s" % (name, BECOME_HINT))
                )
                continue
            except OSError as exc:
                out.append((name, None, "cannot look at %s: %s" % (name, exc.strerror or exc)))
                continue
            if not stat.S_ISREG(st.st_mode):
                if not _is_glob(self.path):
                    raise RuntimeError("%s is not a regular file" % name)
                continue
            if _is_glob(self.path) and name.lower().endswith(COMPRESSED_SUFFIXES):
                continue  # compressed generations are read only to drain a rotation
            key = (st.st_dev, st.st_ino)
            if key in seen:
                self.notes.append("%s is the same file as %s: read once" % (name, seen[key]))
                continue
            seen[key] = name
            out.append((name, Found(name, st), None))
        out.sort(key=lambda item: item[0])
        return out

    def _open(self, path):
        try:
            return os.open(path, os.O_RDONLY)
        except PermissionError:
            raise PermissionError(
                "cannot read %s: permission denied; %s" % (path, BECOME_HINT)
            ) from None

    def _matches(self, fd, size, cursor):
        """Whether the open plain file holds the cursor's contents up to its offset."""
        offset = cursor["offset"]
        if size < offset or size < cursor["head_len"]:
            return False
        if _sha(_pread(fd, cursor["head_len"], 0)) != cursor["head"]:
            return False
        tail_len = cursor["tail_len"]
        return _sha(_pread(fd, tail_len, offset - tail_len)) == cursor["tail"]

    def _same(self, found, cursor):
        if found.key != (cursor["dev"], cursor["ino"]):
            return False
        fd = self._open(found.path)
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
        if _is_glob(self.path) and not files:
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
            if not _is_glob(self.path) or now - since < GONE_TTL:
                self.cursors[path] = dict(cursor, gone_since=since)

    def _live(self, found, offset, event):
        source = Source(found.path, found, offset, event, found.path)
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
                        out.append(Found(real, st))
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
            found = Found(full, st)
            found.generation = bool(GENERATION.match(middle))
            out.append(found)
        return out

    def _find(self, cursor, owner, event, final, extra=()):
        """The file (plain or compressed) that holds the cursor's contents, as a Source
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
            except (OSError, EOFError, _OutOfTime):
                continue
            except Exception:  # a corrupt compressed file
                continue
            if source is not None:
                self.claimed.add(found.key)
                self.sources.append(source)
                return source
        return None

    def _try(self, found, cursor, owner, event, final):
        fd = self._open(found.path)
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != found.key:
                return None
            kind = _compression(_pread(fd, 6, 0))
            if kind is None:
                if not self._matches(fd, st.st_size, cursor):
                    return None
                source = Source(found.path, found, cursor["offset"], event, owner, final)
                source.size = st.st_size
                return source
        finally:
            os.close(fd)
        # compressed: compare the decompressed head, then the bytes before the offset
        offset, tail_len = cursor["offset"], cursor["tail_len"]
        stream = _open_decompressed(found.path, kind)
        keep = False
        try:
            head = stream.read(HEAD_LEN)
            if len(head) < cursor["head_len"] or _sha(head[: cursor["head_len"]]) != cursor["head"]:
                return None
            isize = _gzip_size(found.path) if kind == "gzip" else None
            if offset <= len(head):  # all in the head: check there, then go back to offset
                tail = head[offset - tail_len : offset]
                stream.seek(offset)
            else:
                data = head[max(0, offset - tail_len) :]
                if not _skip(stream, offset - tail_len - len(head), self.deadline):
                    return None
                data += stream.read(tail_len - len(data))
                tail = data
            if len(tail) != tail_len or _sha(tail) != cursor["tail"]:
                return None
            source = Source(found.path, found, offset, event, owner, final)
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
            if any(len(head) >= n and _sha(head[:n]) == h for n, h in heads if n):
                continue
            source = Source(found.path, found, 0, "rotated", owner, final=True)
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
            first = handle.read(HEAD_LEN)
        kind = _compression(first)
        if kind is None:
            return first, None
        stream = _open_decompressed(found.path, kind)
        try:
            return stream.read(HEAD_LEN), kind
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
                here = [Found(path, st)]
        except OSError:
            pass
        if not here and rotated.get("compressed"):
            return None
        source = self._find(rotated, owner, "rotated", final=True, extra=here)
        if source is not None:
            source.follow = True
        return source

    # ------------------------------------------------------------------------------ reading

    def read(self):
        for source in self.sources:
            try:
                self._read(source)
            except _GrepFailed:
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
                stream = _open_decompressed(source.path, source.kind)
                if not _skip(stream, source.start or 0, self.deadline):
                    return
            elif stream is None:
                fd = self._open(source.path)
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != source.found.key:  # rotated meanwhile
                    source.skipped = "%s was replaced during the check: read next run" % source.path
                    return
                source.size = st.st_size
                source.mtime = st.st_mtime
                if source.start is None:  # first run, start: end
                    source.start = self._line_end(fd, st.st_size, self._codec(fd))
                source.start = min(source.start, st.st_size)
                tail_len = min(source.start, TAIL_LEN)
                source.prefix = _pread(fd, tail_len, source.start - tail_len)
                os.lseek(fd, source.start, os.SEEK_SET)
                stream = os.fdopen(fd, "rb", buffering=0)
                fd = None
                source.head = None
            codec = self._codec_of(source, stream)
            before = self.tally.lines
            self._consume(source, stream, codec)
            source.lines = self.tally.lines - before
            if source.kind is None:
                head_len = min(source.size, HEAD_LEN)
                source.head = _pread(stream.fileno(), head_len, 0)
        except _OutOfTime:
            source.stop = "time"
        finally:
            if stream is not None:
                stream.close()
            if fd is not None:
                os.close(fd)

    def _codec(self, fd):
        return self._text_codec(_pread(fd, 4, 0))

    def _codec_of(self, source, stream):
        if self.matcher.binary:
            return (None, b"\n", 1)
        if source.kind is None:
            return self._text_codec(_pread(stream.fileno(), 4, 0))
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
            block = _pread(fd, end - begin, begin)
            cut = _last_newline(block, newline, width)
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
            feed = GrepFeed(self.grep, self.matcher, source.path)
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
                size = CHUNK if avail is None else min(CHUNK, avail - read)
                data = stream.read(min(size, room - read))
                if not data:
                    break
                read += len(data)
                buf = carry + data if carry else data
                cut = _last_newline(buf, newline, width)
                if not cut:
                    if len(buf) >= MAX_LINE:
                        cut = len(buf) - len(buf) % width
                    else:
                        carry = buf
                        continue
                self._block(source, buf, cut, codec, feed, consumed == 0 and source.start == 0)
                consumed += cut
                tail = (tail + buf[max(0, cut - TAIL_LEN) : cut])[-TAIL_LEN:]
                carry = buf[cut:]
            if carry and (
                (stop is None and source.final) or (stop == "budget" and not consumed and full)
            ):
                self._block(
                    source, carry, len(carry), codec, feed, consumed == 0 and source.start == 0
                )
                consumed += len(carry)
                tail = (tail + carry[-TAIL_LEN:])[-TAIL_LEN:]
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
        tail = tail[-min(end, TAIL_LEN) :] if end else b""
        cursor.update(
            {
                "offset": end,
                "head": _sha(head[:HEAD_LEN]),
                "head_len": len(head[:HEAD_LEN]),
                "tail": _sha(tail),
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
                    % (source.path, _lines(source.lines))
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
                "%s was rotated: read %s left in %s" % (path, _lines(drained.lines), drained.path)
            )
        elif source.event == "rotated":
            notes.append("%s was rotated" % path)
        elif source.event == "copytruncated":
            notes.append(
                "%s was copied and truncated: read %s left in %s"
                % (
                    path,
                    _lines(drained.lines if drained else 0),
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


def _last_newline(buf, newline, width):
    """Index just after the last (aligned) newline in buf, 0 when there is none."""
    if width == 1:
        return buf.rfind(newline) + 1
    at = buf.rfind(newline)
    while at >= 0 and at % width:
        at = buf.rfind(newline, 0, at + len(newline) - 1)
    return at + width if at >= 0 else 0


def run(args, ctx):
    follow = Follow(args, ctx)
    follow.plan()
    if not _is_glob(follow.path) and follow.problems and not follow.sources:
        raise RuntimeError(follow.problems[0])
    follow.read()
    files, notes, pending, read = follow.results()
    if not _is_glob(follow.path) and follow.problems and not read:
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
        _human(measurements["bytes"]),
    )
    stops = set(s.stop for s in follow.sources if s.stop)
    if pending or stops:
        reason = "max_bytes" if "budget" in stops or not stops else "time limit"
        message += "; %s pending (%s)" % (_human(pending), reason)
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
