# Log patterns: the literal prefilter, the regexes, the counts and samples of a run.
#
# Part of the log module (modules/log.py), shipped with it. Runs on the target: standard
# library only, Python 3.6 syntax.
import codecs
import re
from collections import deque

try:  # Python 3.11+ (importing sre_parse there warns: deprecated)
    import re._parser as sre_parse
except ImportError:  # Python 3.6 - 3.10
    import sre_parse

MIN_LITERAL = 3  # a shorter required literal is no useful prefilter: run the regex instead
SAMPLE_KEEP = 65536  # bytes of a sampled line kept to extract its fields
RESERVED = ("matches", "lines", "bytes", "pending", "files")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
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


def encoding(name):
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
