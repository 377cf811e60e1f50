"""Markdown for CI job summaries ($GITHUB_STEP_SUMMARY, GitLab MR notes and wiki pages).

A headline with the overall status and the counts, a table of the problems (WARNING,
CRITICAL, UNKNOWN), the unreachable hosts, then every result in a collapsed <details>.
Each table stops at MAX_TABLE_ROWS rows (a note says how many more) because GitHub caps a
step summary at 1 MiB; the JSON report always has everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from checkrunner.report.base import Reporter
from checkrunner.report.formatting import (
    check_message,
    format_value,
    hosts_by_score,
    humanize_seconds,
    overall_status,
    plural,
    problem_checks,
    summary_counts,
    unreachable_hosts,
)
from checkrunner.results import CheckResult, HostResult, RunResult, Status
from checkrunner.safe_text import one_line

MAX_TABLE_ROWS = 1000

STATUS_EMOJI = {
    Status.OK: "✅",
    Status.WARNING: "⚠️",
    Status.CRITICAL: "❌",
    Status.UNKNOWN: "❓",
    Status.SKIPPED: "⏭️",
    Status.UNREACHABLE: "🔌",
}
CHECK_COLUMNS = ("Host", "Check", "Status", "Value", "Message")
UNREACHABLE_COLUMNS = ("Host", "Reason", "Message")
SCORE_COLUMNS = ("Rank", "Host", "Play", "Score", "Status")

# Characters that Markdown or the HTML GitHub allows inside it would interpret; a
# backslash makes each literal (CommonMark escapes any ASCII punctuation this way).
_MARKDOWN_SPECIAL = re.compile(r"([\\|*_`\[\]<>~&])")


class MarkdownReporter(Reporter):
    name = "markdown"

    def render(self, run: RunResult) -> str:
        sections = [headline(run), counts_line(run)]
        if run.interrupted:
            sections.append("> ⚠️ The run was interrupted: these results are partial.")
        sections.extend(problems_section(run))
        sections.extend(unreachable_section(run))
        sections.extend(score_section(run))
        sections.extend(all_results_section(run))
        return "\n\n".join(sections) + "\n"


def headline(run: RunResult) -> str:
    status = overall_status(run)
    return f"## {STATUS_EMOJI[status]} checkrun: {status.value} — {escape(run.playbook)}"


def counts_line(run: RunResult) -> str:
    parts = []
    for status, count in summary_counts(run):
        if status is Status.UNREACHABLE:
            text = f"{count} unreachable"
        else:
            text = f"{count} {status.value.lower()}"
        # Bold draws the eye to the counts that need action.
        parts.append(f"**{text}**" if count and status.severity > Status.OK.severity else text)
    checks = len(run.all_checks())
    scope = f"{plural(checks, 'check')} on {plural(len(run.hosts), 'host')} in {humanize_seconds(run.duration)}"
    return f"{scope}: {' · '.join(parts)}"


def problems_section(run: RunResult) -> list[str]:
    problems = problem_checks(run)
    if not problems:
        return ["No problems: every check that ran is OK or skipped."]
    return [f"### Problems ({len(problems)})", check_table(problems)]


def unreachable_section(run: RunResult) -> list[str]:
    hosts = unreachable_hosts(run)
    if not hosts:
        return []
    return [
        f"### Unreachable hosts ({len(hosts)})",
        table(UNREACHABLE_COLUMNS, map(unreachable_row, hosts), len(hosts)),
    ]


def score_section(run: RunResult) -> list[str]:
    ranked = hosts_by_score(run)
    if not ranked:
        return []
    rows = [
        [
            str(rank),
            check.host,
            check.play,
            format_value(check.value, check.unit),
            f"{STATUS_EMOJI[check.status]} {check.status.value}",
        ]
        for rank, check in enumerate(ranked, 1)
    ]
    return ["### Hosts by score", table(SCORE_COLUMNS, rows, len(rows))]


def all_results_section(run: RunResult) -> list[str]:
    checks = run.all_checks()
    if not checks:
        return []
    summary = f"<details>\n<summary>All results ({plural(len(checks), 'check')})</summary>"
    # The blank lines around the table are what makes GitHub render Markdown inside HTML.
    return [summary, check_table(checks), "</details>"]


def check_table(checks: Sequence[CheckResult]) -> str:
    return table(CHECK_COLUMNS, map(check_row, checks), len(checks))


def check_row(check: CheckResult) -> list[str]:
    return [
        check.host,
        check.name,
        f"{STATUS_EMOJI[check.status]} {check.status.value}",
        format_value(check.value, check.unit),
        check_message(check),
    ]


def unreachable_row(host: HostResult) -> list[str]:
    return [host.host, host.reason or "unknown", host.message]


def table(columns: Sequence[str], rows: Iterable[list[str]], total: int) -> str:
    lines = [row_line(columns), "|" + "---|" * len(columns)]
    for index, row in enumerate(rows):
        if index == MAX_TABLE_ROWS:
            break
        lines.append(row_line(escape(cell) for cell in row))
    if total > MAX_TABLE_ROWS:
        lines.append("")
        lines.append(f"…and {total - MAX_TABLE_ROWS} more rows; the JSON report has them all.")
    return "\n".join(lines)


def row_line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def escape(text: str) -> str:
    """Text safe inside a table cell: one line, Markdown and HTML characters made literal."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line(text))
