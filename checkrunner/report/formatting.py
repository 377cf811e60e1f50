"""What several formats share: values with their units, safe text, counts and orderings."""

from __future__ import annotations

import math

from checkrunner.results import CheckResult, HostResult, RunResult, Status

# The statuses worth a reader's attention, worst first. SKIPPED is a choice, not a problem.
PROBLEM_STATUSES = (Status.CRITICAL, Status.UNKNOWN, Status.WARNING)
# Order of per-status counts in summaries: the worst first, the uneventful last.
SUMMARY_ORDER = (
    Status.CRITICAL,
    Status.UNKNOWN,
    Status.UNREACHABLE,
    Status.WARNING,
    Status.OK,
    Status.SKIPPED,
)

_BYTE_UNITS = {"B", "byte", "bytes"}
_BYTE_RATE_UNITS = {"B/s", "byte/s", "bytes/s"}
_SECOND_UNITS = {"s", "sec", "secs", "second", "seconds"}
_MILLISECOND_UNITS = {"ms", "msec", "milliseconds"}
_BINARY_PREFIXES = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


SCORE_MODULE = "score"  # the synthetic check of a play's `score:` (evaluate/score.py)


def format_value(value: float | None, unit: str = "") -> str:
    """A measurement as a person reads it: 93.2%, 1.50 GiB, 12.5ms, 2m05s, 42 conns."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    unit = unit.strip()
    if unit == "%":
        return f"{value:.1f}%"
    if unit in _BYTE_UNITS:
        return humanize_bytes(value)
    if unit in _BYTE_RATE_UNITS:
        return f"{humanize_bytes(value)}/s"
    if unit in _SECOND_UNITS:
        return humanize_seconds(value)
    if unit in _MILLISECOND_UNITS:
        return humanize_seconds(value / 1000)
    number = format_number(value)
    return f"{number} {unit}" if unit else number


def format_number(value: float) -> str:
    """Integers as integers; otherwise about three significant digits, no trailing zeros."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:.0f}"
    if magnitude >= 100:
        return _trim(f"{value:.1f}")
    if magnitude >= 1:
        return _trim(f"{value:.2f}")
    return f"{value:.3g}"


def humanize_bytes(value: float) -> str:
    """IEC binary units, as free(1) and df -h show them: 512 B, 1.50 KiB, 12.3 GiB."""
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    index = 0
    while magnitude >= 1024 and index < len(_BINARY_PREFIXES) - 1:
        magnitude /= 1024
        index += 1
    if index == 0:
        return f"{sign}{format_number(magnitude)} B"
    digits = 2 if magnitude < 10 else 1 if magnitude < 100 else 0
    return f"{sign}{magnitude:.{digits}f} {_BINARY_PREFIXES[index]}"


def humanize_seconds(value: float) -> str:
    """Sub-second values in ms, then seconds, then minutes/hours/days: 12.5ms, 1.23s, 2m05s."""
    if value < 0:
        return f"-{humanize_seconds(-value)}"
    if value < 1:
        milliseconds = value * 1000
        digits = 2 if milliseconds < 10 else 1 if milliseconds < 100 else 0
        return f"{_trim(f'{milliseconds:.{digits}f}')}ms"
    if value < 60:
        return f"{_trim(f'{value:.2f}')}s"
    total = int(round(value))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


def overall_status(run: RunResult) -> Status:
    """The worst outcome of the run: every check's status and UNREACHABLE for each lost host."""
    statuses = [check.status for check in run.all_checks()]
    statuses.extend(Status.UNREACHABLE for host in run.hosts if not host.reachable)
    return Status.worst(statuses)


def problem_checks(run: RunResult) -> list[CheckResult]:
    """WARNING, CRITICAL and UNKNOWN checks, worst first, in run order within a status."""
    problems = [check for check in run.all_checks() if check.status in PROBLEM_STATUSES]
    return sorted(problems, key=lambda check: -check.status.severity)


def unreachable_hosts(run: RunResult) -> list[HostResult]:
    return [host for host in run.hosts if not host.reachable]


def unreachable_reason(host: HostResult) -> str:
    """'timeout: connection timed out after 10s', or whichever half is known."""
    parts = [part for part in (host.reason, host.message) if part]
    return ": ".join(parts) if parts else "unreachable"


def summary_counts(run: RunResult) -> list[tuple[Status, int]]:
    counts = run.counts()
    return [(status, counts[status.value]) for status in SUMMARY_ORDER]


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def hosts_by_score(run: RunResult) -> list[CheckResult]:
    """Every play's `host score` check, highest (most loaded) first; scores without a value last."""
    scores = [check for check in run.all_checks() if check.module == SCORE_MODULE]
    return sorted(scores, key=lambda check: (check.value is None, -(check.value or 0.0)))
