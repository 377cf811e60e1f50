# The minimal reading of the Prometheus text exposition format (0.0.4) that the goruntime
# module needs: the samples of the metric families it names, as (name, labels, value).
#
# Runs on the target: standard library only, Python 3.6 syntax. Pure. The prometheus
# module's branch carries a complete parser (selectors, OpenMetrics, types); when both are
# on main this reading becomes a call of that one. Linear in the input: only the names
# asked for are parsed further than their first word, and a sample count cap stops an
# endless body.
import re
from typing import Dict, Iterable, List, Optional, Tuple

# One `name="value"` pair; the value pattern is the unrolled-loop form, which the engine
# walks without backtracking even on a very long value.
LABEL_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"\\\n]*(?:\\.[^"\\\n]*)*)"\s*,?')
ESCAPE = re.compile(r"\\(.)")
ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
FLOAT_WORDS = {"nan": "nan", "+inf": "inf", "inf": "inf", "-inf": "-inf"}
DEFAULT_MAX_SAMPLES = 100000

Sample = Tuple[str, Dict[str, str], float]


def _labels(text: str, number: int) -> Dict[str, str]:
    labels = {}
    position = 0
    while position < len(text):
        found = LABEL_PAIR.match(text, position)
        if not found or found.end() == position:
            raise ValueError("line %d: malformed labels {%s}" % (number, text[:80]))
        value = ESCAPE.sub(lambda m: ESCAPES.get(m.group(1), "\\" + m.group(1)), found.group(2))
        labels[found.group(1)] = value
        position = found.end()
    return labels


def _float(text: str, number: int) -> float:
    try:
        return float(FLOAT_WORDS.get(text.lower(), text))
    except ValueError:
        raise ValueError("line %d: %r is not a sample value" % (number, text[:80])) from None


def parse_samples(
    text: str,
    wanted: Optional[Iterable[str]] = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
) -> List[Sample]:
    """The samples of the exposition whose metric name is in `wanted` (all without it), in
    order. Comments (# HELP, # TYPE) and blank lines are skipped; timestamps ignored."""
    names = set(wanted) if wanted is not None else None
    samples: List[Sample] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name = line[:brace]
            if names is not None and name not in names:
                continue
            close = line.rfind("}")
            if close < brace:
                raise ValueError("line %d: unclosed label set" % number)
            labels, rest = _labels(line[brace + 1 : close], number), line[close + 1 :]
        else:
            name, rest = line[: space if space != -1 else len(line)], line[space:]
            if names is not None and name not in names:
                continue
            labels = {}
        fields = rest.split()
        if not fields:
            raise ValueError("line %d: %s has no value" % (number, name))
        samples.append((name, labels, _float(fields[0], number)))
        if len(samples) > max_samples:
            raise ValueError("more than %d samples" % max_samples)
    return samples
