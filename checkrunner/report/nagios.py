"""Nagios/Icinga plugin output (monitoring-plugins developer guidelines).

    CHECKRUN CRITICAL - 2 critical, 1 warning, 40 ok on 5 hosts | 'ok'=40 'warning'=1 ...
    CRITICAL - web1: root filesystem = 95.0%: 95.0% used (warn 80, crit 90)
    UNREACHABLE - web5: timeout: connection timed out
    | 'web1 root filesystem'=95%;80;90 ...

The first line is the status and the run's counts as perfdata. Then one long-output line
per problem (worst first) and per unreachable host. When the run covers a single host,
or with -v, a last "|" line adds one perfdata item per check that measured a number
(label "check" for one host, "host check" otherwise), with the check's thresholds as
warn/crit: Nagios 3+ reads perfdata that follows a "|" in the long output.

The state is CRITICAL if any check is CRITICAL or any host is unreachable (the
guidelines say a timeout or a resolution failure is not UNKNOWN), else UNKNOWN, else
WARNING, else OK. `nagios_exit_code(run)` is the matching plugin exit code (0-3), for a
command that runs as a Nagios plugin.
"""

from __future__ import annotations

import math
import re

from checkrunner.report.base import Reporter
from checkrunner.report.formatting import (
    check_message,
    format_value,
    plural,
    problem_checks,
    unreachable_hosts,
    unreachable_reason,
)
from checkrunner.results import NAGIOS_CODES, CheckResult, RunResult, Status
from checkrunner.safe_text import one_line

PLUGIN_LABEL = "CHECKRUN"

# Our unit -> the perfdata UOM the guidelines allow ('' when there is none that fits).
_PERFDATA_UOM = {
    "%": "%",
    "s": "s",
    "ms": "ms",
    "us": "us",
    "B": "B",
    "byte": "B",
    "bytes": "B",
    "KB": "KB",
    "MB": "MB",
    "TB": "TB",
    "c": "c",
}
# A Nagios range as the perfdata warn/crit fields accept it: [@][start:][end].
_RANGE = re.compile(r"^@?(?:(?:~|-?\d+(?:\.\d+)?)?:)?(?:-?\d+(?:\.\d+)?)?$")
_COUNT_STATUSES = (
    Status.CRITICAL,
    Status.UNKNOWN,
    Status.WARNING,
    Status.OK,
    Status.SKIPPED,
)
_PERFDATA_COUNTS = (
    Status.OK,
    Status.WARNING,
    Status.CRITICAL,
    Status.UNKNOWN,
    Status.SKIPPED,
    Status.UNREACHABLE,
)


class NagiosReporter(Reporter):
    name = "nagios"

    def render(self, run: RunResult) -> str:
        lines = [status_line(run), *long_output(run)]
        if self.verbose >= 1 or len(run.hosts) == 1:
            items = check_perfdata(run)
            if items:
                lines.append("| " + " ".join(items))
        return "\n".join(lines) + "\n"


def nagios_state(run: RunResult) -> Status:
    counts = run.counts()
    if counts[Status.CRITICAL.value] or counts[Status.UNREACHABLE.value]:
        return Status.CRITICAL
    if counts[Status.UNKNOWN.value]:
        return Status.UNKNOWN
    if counts[Status.WARNING.value]:
        return Status.WARNING
    return Status.OK


def nagios_exit_code(run: RunResult) -> int:
    return NAGIOS_CODES[nagios_state(run)]


def status_line(run: RunResult) -> str:
    counts = run.counts()
    parts = [
        f"{counts[status.value]} {status.value.lower()}"
        for status in _COUNT_STATUSES
        if counts[status.value]
    ]
    checks = ", ".join(parts) if parts else "no checks"
    text = f"{checks} on {plural(len(run.hosts), 'host')}"
    unreachable = counts[Status.UNREACHABLE.value]
    if unreachable:
        text += f", {unreachable} unreachable"
    if run.interrupted:
        text += " (interrupted, partial results)"
    return f"{PLUGIN_LABEL} {nagios_state(run).value} - {text} | {' '.join(count_perfdata(run))}"


def count_perfdata(run: RunResult) -> list[str]:
    counts = run.counts()
    items = [
        perfdata_item(status.value.lower(), counts[status.value]) for status in _PERFDATA_COUNTS
    ]
    items.append(perfdata_item("duration", round(run.duration, 3), "s"))
    return items


def long_output(run: RunResult) -> list[str]:
    lines = [problem_line(check) for check in problem_checks(run)]
    lines.extend(
        plugin_text(f"UNREACHABLE - {host.host}: {unreachable_reason(host)}")
        for host in unreachable_hosts(run)
    )
    return lines


def problem_line(check: CheckResult) -> str:
    text = f"{check.status.value} - {check.host}: {check.name}"
    if check.value is not None:
        text += f" = {format_value(check.value, check.unit)}"
    message = check_message(check)
    if message:
        text += f": {message}"
    return plugin_text(text)


def plugin_text(text: str) -> str:
    # A '|' in the text would start the perfdata early.
    return one_line(text).replace("|", "/")


def check_perfdata(run: RunResult) -> list[str]:
    single_host = len(run.hosts) == 1
    items = []
    for check in run.all_checks():
        if check.value is None or not math.isfinite(check.value):
            continue
        label = check.name if single_host else f"{check.host} {check.name}"
        uom = _PERFDATA_UOM.get(check.unit.strip(), "")
        items.append(
            perfdata_item(
                label,
                check.value,
                uom,
                warn=_perfdata_limit(check, "warn"),
                crit=_perfdata_limit(check, "crit"),
            )
        )
    return items


def perfdata_item(
    label: str, value: float, uom: str = "", *, warn: str = "", crit: str = ""
) -> str:
    """'label'=value[UOM][;warn[;crit]], trailing empty fields dropped."""
    item = f"{quote_label(label)}={perfdata_number(value)}{uom}"
    fields = [warn, crit]
    while fields and not fields[-1]:
        fields.pop()
    return ";".join([item, *fields])


def perfdata_number(value: float) -> str:
    """Plain decimal notation: perfdata values may not use exponents."""
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def quote_label(label: str) -> str:
    """Single-quoted; a quote inside is doubled and '=' (the separator) becomes '_'."""
    cleaned = one_line(label).replace("=", "_").replace("'", "''")
    return f"'{cleaned}'"


def _perfdata_limit(check: CheckResult, level: str) -> str:
    """The level's range: as written, or a dynamic threshold's bound in this run (so that
    perfdata graphs draw the baseline band); '' while it warms up."""
    bound = next(
        (b for b in check.baselines if b.metric == check.metric and b.level == level), None
    )
    if bound is None:
        return perfdata_range(getattr(check.thresholds, level))
    if bound.warming_up:
        return ""
    lower = "" if bound.lower is None else _plain(bound.lower)
    upper = "" if bound.upper is None else _plain(bound.upper)
    return f"{lower}:{upper}" if lower else upper


def _plain(value: float) -> str:
    """A number as perfdata takes it: no exponent, at most 6 decimals."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def perfdata_range(threshold: object) -> str:
    """The threshold as a perfdata range, or '' when it is not one (it is then left out)."""
    if threshold is None or isinstance(threshold, bool):
        return ""
    text = str(threshold).strip()
    return text if text and _RANGE.match(text) else ""
