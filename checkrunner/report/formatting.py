"""What several formats share: values with their units, safe text, counts and orderings."""

from __future__ import annotations

from checkrunner.results import CheckResult, HostResult, RunResult, Status
from checkrunner.units import (  # noqa: F401 - the reports' formatting, kept importable here
    format_number,
    format_value,
    humanize_bytes,
    humanize_seconds,
)

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

SCORE_MODULE = "score"  # the synthetic check of a play's `score:` (evaluate/score.py)


def remediation_note(check: CheckResult) -> str:
    """What the check's handler did, after the check's own name and status (which every
    report shows beside it): "remediation: restarted app.service → OK after 4.2 s"."""
    remediation = check.remediation
    if remediation is None:
        return ""
    head = f"{check.name} {check.status.value} → "
    return f"remediation: {remediation.text.removeprefix(head)}"


def check_message(check: CheckResult) -> str:
    """The check's message, followed by what its handler did, if one was notified."""
    note = remediation_note(check)
    return f"{check.message}; {note}" if note and check.message else check.message or note


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
