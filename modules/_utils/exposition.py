# The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text, parsed into
# samples; PromQL-style series selectors; and the PromQL functions the prometheus module
# applies (aggregation, rate over two scrapes, histogram_quantile).
#
# Runs on the target: standard library only, Python 3.6 syntax. Pure functions: the module
# does the fetching. Linear in the input (no regex backtracking on long lines) and bounded:
# only the samples a selector wants are kept, and a sample count cap stops an endless body.
import math
import re

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# One `name="value",` pair from a position; the value pattern is the unrolled loop form,
# which the engine walks without backtracking even on a megabyte-long value.
LABEL_PAIR = re.compile(
    r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\\n]*(?:\\.[^"\\\n]*)*)"[ \t]*'
)
ESCAPE = re.compile(r"\\(.)")
LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
HELP_ESCAPES = {"\\": "\\", "n": "\n"}  # OpenMetrics also escapes '"' in HELP
FLOAT_WORDS = {"nan": "nan", "+inf": "inf", "inf": "inf", "-inf": "-inf"}
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
TYPES = (
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
    "unknown",
    "untyped",
)
# Series a family of these types has beside its own name (OpenMetrics adds _created, _gcount...)
SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info")
MAX_ERROR_EXCERPT = 80
AGGREGATIONS = ("sum", "avg", "max", "min", "count")


def _unescape_label(text):
    if "\\" not in text:
        return text
    return ESCAPE.sub(lambda m: LABEL_ESCAPES.get(m.group(1), "\\" + m.group(1)), text)


def _unescape_help(text, openmetrics):
    if "\\" not in text:
        return text
    escapes = LABEL_ESCAPES if openmetrics else HELP_ESCAPES
    return ESCAPE.sub(lambda m: escapes.get(m.group(1), "\\" + m.group(1)), text)


def _excerpt(line):
    return repr(line[:MAX_ERROR_EXCERPT] + ("..." if len(line) > MAX_ERROR_EXCERPT else ""))


def parse_float(text):
    """A sample value as Prometheus writes them: decimal, NaN, +Inf, -Inf."""
    word = FLOAT_WORDS.get(text.lower())
    if word is not None:
        return float(word)
    if not NUMBER.match(text):
        raise ValueError("not a number: %r" % text[:MAX_ERROR_EXCERPT])
    return float(text)


def _labels(line, start, number):
    """(labels, index after the closing brace) of the label set opening at line[start]."""
    labels = {}
    position = start + 1
    while True:
        while position < len(line) and line[position] in " \t":
            position += 1
        if position < len(line) and line[position] == "}":
            return labels, position + 1
        pair = LABEL_PAIR.match(line, position)
        if pair is None:
            raise ValueError("line %d: invalid label set in %s" % (number, _excerpt(line)))
        name = pair.group(1)
        if name in labels:
            raise ValueError("line %d: label %r given twice" % (number, name))
        labels[name] = _unescape_label(pair.group(2))
        position = pair.end()
        if position < len(line) and line[position] == ",":
            position += 1
        elif position >= len(line) or line[position] != "}":
            raise ValueError("line %d: expected ',' or '}' in %s" % (number, _excerpt(line)))


def _value_and_timestamp(rest, number, line, openmetrics):
    if openmetrics:
        rest = rest.split(" # ", 1)[0]  # an exemplar follows the sample
    fields = rest.split()
    if not 1 <= len(fields) <= 2:
        raise ValueError(
            "line %d: expected a value and an optional timestamp in %s" % (number, _excerpt(line))
        )
    try:
        value = parse_float(fields[0])
        timestamp = None
        if len(fields) == 2:
            # milliseconds in the text format, seconds in OpenMetrics; seconds here
            timestamp = parse_float(fields[1]) if openmetrics else int(fields[1]) / 1000.0
    except ValueError as exc:
        raise ValueError("line %d: %s in %s" % (number, exc, _excerpt(line))) from None
    return value, timestamp


def _comment(line, number, types, helps, openmetrics):
    """Reads a HELP or TYPE line into helps/types; True at OpenMetrics' # EOF."""
    parts = line.split(None, 3)
    if len(parts) >= 2 and parts[1] == "EOF" and len(parts) == 2:
        return True
    if len(parts) < 3 or parts[1] not in ("HELP", "TYPE", "UNIT"):
        if openmetrics:
            raise ValueError("line %d: unknown comment %s (OpenMetrics)" % (number, _excerpt(line)))
        return False  # any other comment is allowed in the text format
    name = parts[2]
    if not METRIC_NAME.match(name) or METRIC_NAME.match(name).end() != len(name):
        raise ValueError("line %d: invalid metric name in %s" % (number, _excerpt(line)))
    text = parts[3] if len(parts) == 4 else ""
    if parts[1] == "HELP":
        helps[name] = _unescape_help(text, openmetrics)
    elif parts[1] == "TYPE":
        if text.strip() not in TYPES:
            raise ValueError(
                "line %d: unknown metric type %r" % (number, text.strip()[:MAX_ERROR_EXCERPT])
            )
        types[name] = text.strip()
    return False


def scan(text, wanted=None, max_samples=None, openmetrics=False):
    """Every sample of the exposition `text` whose metric name passes wanted(name) (all of
    them when wanted is None), as [name, labels, value, timestamp in seconds or None], with
    the families' types and help: {"samples", "types", "help", "count"} where count is the
    number of samples in the whole body. Raises ValueError naming the line that is wrong
    (the scrape fails, as Prometheus fails it), or the cap (max_samples) the body exceeds."""
    samples = []
    types = {}
    helps = {}
    count = 0
    ended = False
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # what follows the last newline is not a line
    for number, line in enumerate(lines, 1):
        if ended:
            if line.strip():
                raise ValueError("line %d: content after # EOF" % number)
            continue
        if line.startswith("#"):
            ended = _comment(line, number, types, helps, openmetrics)
            continue
        if not line.strip():
            if openmetrics:
                raise ValueError("line %d: empty line (OpenMetrics)" % number)
            continue
        line = line.rstrip("\r") if not openmetrics else line
        start = len(line) - len(line.lstrip(" \t"))
        name_match = METRIC_NAME.match(line, start)
        if name_match is None:
            raise ValueError(
                "line %d: no metric name at the start of %s" % (number, _excerpt(line))
            )
        count += 1
        if max_samples is not None and count > max_samples:
            raise ValueError("more than %d samples in the body (max_series)" % max_samples)
        name = name_match.group(0)
        if wanted is not None and not wanted(name):
            continue
        position = name_match.end()
        labels = {}
        while position < len(line) and line[position] in " \t":
            position += 1
        if position < len(line) and line[position] == "{":
            labels, position = _labels(line, position, number)
        elif position == name_match.end() and position < len(line):
            raise ValueError("line %d: invalid metric name in %s" % (number, _excerpt(line)))
        value, timestamp = _value_and_timestamp(line[position:], number, line, openmetrics)
        samples.append([name, labels, value, timestamp])
    if openmetrics and not ended:
        raise ValueError("no '# EOF' at the end: the OpenMetrics body is incomplete")
    return {"samples": samples, "types": types, "help": helps, "count": count}


def parse_exposition(text, openmetrics=False):
    """The whole exposition: {"samples": [[name, labels, value, timestamp]], "types",
    "help", "count"} (see scan)."""
    return scan(text, openmetrics=openmetrics)


def family_type(name, types):
    """The TYPE of the family the series `name` belongs to ('untyped' without one)."""
    if name in types:
        return types[name]
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in types:
            return types[name[: -len(suffix)]]
    return "untyped"


# ------------------------------------------------------------------------------- selectors

SELECTOR_MATCHER = re.compile(
    r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"
    r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(,?)"
)
STRING_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _selector_string(quoted):
    if quoted[0] == "`":
        return quoted[1:-1]
    return ESCAPE.sub(lambda m: STRING_ESCAPES.get(m.group(1), "\\" + m.group(1)), quoted[1:-1])


def parse_selector(text):
    """A PromQL instant vector selector, `name{label="v", other=~"re"}`, as
    [[label, operator, value], ...] with the metric name as the label __name__."""
    text = text.strip()
    matchers = []
    name = METRIC_NAME.match(text)
    position = 0
    if name is not None:
        matchers.append(["__name__", "=", name.group(0)])
        position = name.end()
    rest = text[position:].strip()
    if rest:
        if not (rest.startswith("{") and rest.endswith("}")):
            raise ValueError(
                'select: %r is not a series selector (name{label="value", ...})' % text
            )
        inner = rest[1:-1]
        position = 0
        while inner[position:].strip():
            found = SELECTOR_MATCHER.match(inner, position)
            if found is None:
                raise ValueError(
                    "select: cannot read the label matcher at %r" % inner[position:][:40]
                )
            label, operator, value = (
                found.group(1),
                found.group(2),
                _selector_string(found.group(3)),
            )
            matchers.append([label, operator, value])
            position = found.end()
            if not found.group(4) and inner[position:].strip():
                raise ValueError("select: expected ',' before %r" % inner[position:][:40])
    if not matchers:
        raise ValueError("select: give a metric name or at least one label matcher")
    if all(_matches_empty(operator, value) for _, operator, value in matchers):
        raise ValueError(
            "select: %r would match every series; give a name or a matcher that needs a value"
            % text
        )
    return matchers


def _matches_empty(operator, value):
    return bool(_compiled(operator, value)(""))


def _compiled(operator, value):
    if operator in ("=~", "!~"):
        try:
            # PromQL anchors regexes at both ends
            pattern = re.compile("(?:%s)" % value, re.DOTALL)
        except re.error as exc:
            raise ValueError("select: invalid regular expression %r: %s" % (value, exc)) from None
        if operator == "=~":
            return lambda text: pattern.fullmatch(text) is not None
        return lambda text: pattern.fullmatch(text) is None
    if operator == "=":
        return lambda text: text == value
    return lambda text: text != value


class Selector(object):
    """Compiled matchers: name_matches(name) to skip lines early, matches(name, labels)."""

    def __init__(self, text):
        self.text = text.strip()
        self.matchers = [(label, _compiled(op, value)) for label, op, value in parse_selector(text)]
        self.name_tests = [test for label, test in self.matchers if label == "__name__"]

    def name_matches(self, name):
        return all(test(name) for test in self.name_tests)

    def matches(self, name, labels):
        for label, test in self.matchers:
            # a missing label reads as the empty string, as in PromQL
            value = name if label == "__name__" else labels.get(label, "")
            if not test(value):
                return False
        return True


def select(exposition_text, selector, max_samples=None, openmetrics=False):
    """scan() keeping only the samples the Selector picks."""
    scanned = scan(exposition_text, selector.name_matches, max_samples, openmetrics)
    scanned["samples"] = [s for s in scanned["samples"] if selector.matches(s[0], s[1])]
    return scanned


# ---------------------------------------------------------------------- PromQL functions


def series_key(name, labels):
    return (name,) + tuple(sorted(labels.items()))


def rates(before, after, elapsed):
    """Per-second rate of each series present in both scrapes, as Prometheus' rate() over
    exactly these two points: a decrease means the counter was reset (restarted from 0), so
    the increase is the new value. [(name, labels, rate)], and the number of series seen
    only at the end (no rate yet)."""
    start = dict((series_key(s[0], s[1]), s[2]) for s in before)
    out = []
    new = 0
    for name, labels, value, _ in after:
        first = start.get(series_key(name, labels))
        if first is None:
            new += 1
            continue
        increase = value - first if value >= first else value
        out.append((name, labels, increase / elapsed))
    return out, new


def aggregate(values, how):
    """sum/avg/max/min/count of the values as PromQL computes them (max and min skip NaN
    unless every value is NaN)."""
    if how == "count":
        return float(len(values))
    if not values:
        return None
    if how == "sum":
        return math.fsum(values) if all(math.isfinite(v) for v in values) else sum(values)
    if how == "avg":
        return aggregate(values, "sum") / len(values)
    numbers = [v for v in values if not math.isnan(v)] or values
    return max(numbers) if how == "max" else min(numbers)


def group_key(labels, by):
    return tuple(labels.get(label, "") for label in by)


def histogram_quantile(quantile, buckets):
    """Prometheus' histogram_quantile over [(le, cumulative count)]: linear interpolation
    inside the bucket the rank falls in; NaN without a +Inf bucket or observations."""
    buckets = sorted(buckets)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return float("nan")
    cumulative = []
    highest = 0.0
    for bound, count in buckets:
        highest = max(highest, count)  # a non-monotonic series is fixed as Prometheus does
        cumulative.append((bound, highest))
    total = cumulative[-1][1]
    if total == 0 or math.isnan(total):
        return float("nan")
    rank = quantile * total
    index = next(i for i, (_, count) in enumerate(cumulative) if count >= rank)
    if index == len(cumulative) - 1:
        return cumulative[-2][0]
    upper, count = cumulative[index]
    if index == 0 and upper <= 0:
        return upper
    lower, below = (0.0, 0.0) if index == 0 else cumulative[index - 1]
    in_bucket = count - below
    if in_bucket == 0:
        return upper
    return lower + (upper - lower) * ((rank - below) / in_bucket)
