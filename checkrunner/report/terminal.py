"""The human report: a live progress bar while hosts run, then a table and a summary line.

- Progress goes to stderr, and only when stderr is a terminal; it is transient (erased
  when the run ends) and shows hosts done/total and the problems found so far.
- The table has one group of rows per host: host, check, status, value, message.
  Problems (WARNING, CRITICAL, UNKNOWN) always get a row. OK and SKIPPED checks get a row
  each when the table is small (at most FULL_TABLE_MAX_ROWS checks and unreachable
  hosts) or with -v; otherwise they collapse into one "N ok, M skipped" row per host, so
  that problems stay visible in a fleet-sized run. An unreachable host is one row with
  the reason.
- A summary line ends the report: the overall status, the count per status (zeros
  included, so that scripts can rely on every field), checks, hosts and duration.
- Colour and the terminal's width apply only on a terminal (NO_COLOR, FORCE_COLOR and an
  explicit `color` override that, see base.color_wanted). Otherwise the text is plain,
  ASCII-ruled, and rows are never wrapped, so every row stays one greppable line.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import threading
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from rich import box
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID
from rich.text import Text

from checkrunner.report.base import Reporter, color_wanted, is_tty
from checkrunner.report.formatting import (
    PROBLEM_STATUSES,
    check_message,
    format_value,
    hosts_by_score,
    humanize_seconds,
    overall_status,
    plural,
    summary_counts,
    unreachable_reason,
)
from checkrunner.results import CheckResult, HostResult, RunResult, Status
from checkrunner.safe_text import one_line

FULL_TABLE_MAX_ROWS = 20
# Plain output is never wrapped: rich lays the table out at its natural width under this.
UNWRAPPED_WIDTH = 100_000

STATUS_STYLE = {
    Status.OK: "green",
    Status.WARNING: "yellow",
    Status.CRITICAL: "bold red",
    Status.UNKNOWN: "magenta",
    Status.SKIPPED: "dim",
    Status.UNREACHABLE: "bold red",
}
COLUMNS = ("host", "check", "status", "value", "message")

Row = tuple[Text, Text, Text, Text, Text]


class TerminalReporter(Reporter):
    name = "terminal"

    def __init__(
        self,
        path: str | None = None,
        *,
        verbose: int = 0,
        color: bool | None = None,
        stream: TextIO | None = None,
        progress_stream: TextIO | None = None,
    ) -> None:
        super().__init__(path, verbose=verbose, color=color, stream=stream)
        self._progress_stream = progress_stream
        self._progress: Progress | None = None  # only on a terminal (see on_start)
        self._task: TaskID | None = None
        self._problems: Counter[Status] = Counter()
        self._lock = threading.Lock()

    def on_start(self, total_hosts: int, total_checks: int) -> None:
        stream = self._progress_stream if self._progress_stream is not None else sys.stderr
        if not is_tty(stream):
            return
        # Imported only here: off a terminal (CI, cron) there is no progress bar to draw.
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(
            file=stream,
            force_terminal=True,
            color_system="auto" if color_wanted(stream, self.color) else None,
            highlight=False,
        )
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("checking"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("hosts"),
            TextColumn("{task.fields[problems]}", markup=False),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("hosts", total=total_hosts, problems="")
        self._progress.start()

    def on_host_done(self, host: HostResult) -> None:
        if self._progress is None or self._task is None:
            return
        with self._lock:
            self._problems.update(host_problems(host))
            self._progress.update(self._task, advance=1, problems=problems_text(self._problems))

    def close(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None

    def render(self, run: RunResult) -> str:
        interactive = self.path is None and is_tty(self.stream)
        color = self._color_for_output()
        buffer = io.StringIO()
        console = Console(
            file=buffer,
            force_terminal=color,
            color_system="auto" if color else None,
            width=terminal_width(self.stream) if interactive else UNWRAPPED_WIDTH,
            highlight=False,
            emoji=False,
            markup=False,
            legacy_windows=False,
            force_jupyter=False,
            force_interactive=False,
        )
        if run.hosts:
            console.print(results_table(run, collapse=self._collapses(run), color=color))
            if hosts_by_score(run):
                console.print(score_table(run, color=color))
        else:
            console.print(Text("No hosts were checked."))
        console.print(summary_line(run))
        text = buffer.getvalue()
        return text if interactive else strip_trailing_spaces(text)

    def _color_for_output(self) -> bool:
        if self.path is not None:
            return bool(self.color)
        return color_wanted(self.stream, self.color)

    def _collapses(self, run: RunResult) -> bool:
        rows = len(run.all_checks()) + sum(1 for host in run.hosts if not host.reachable)
        return self.verbose < 1 and rows > FULL_TABLE_MAX_ROWS


def host_problems(host: HostResult) -> Counter[Status]:
    if not host.reachable:
        return Counter({Status.UNREACHABLE: 1})
    return Counter(check.status for check in host.checks if check.status in PROBLEM_STATUSES)


def problems_text(problems: Counter[Status]) -> str:
    order = (Status.CRITICAL, Status.UNKNOWN, Status.UNREACHABLE, Status.WARNING)
    return ", ".join(f"{problems[s]} {s.value.lower()}" for s in order if problems[s])


def results_table(run: RunResult, *, collapse: bool, color: bool) -> Table:
    table = Table(
        box=box.MINIMAL if color else box.ASCII2,
        show_edge=False,
        header_style="bold" if color else "",
    )
    for column in COLUMNS:
        table.add_column(column, justify="right" if column == "value" else "left")
    for index, host in enumerate(run.hosts):
        if index:
            table.add_section()
        for row in host_rows(host, collapse=collapse, color=color):
            table.add_row(*row)
    return table


def score_table(run: RunResult, *, color: bool) -> Table:
    """The hosts ranked by their play's `host score`, most loaded first."""
    table = Table(
        title="hosts by score",
        title_justify="left",
        box=box.MINIMAL if color else box.ASCII2,
        show_edge=False,
        header_style="bold" if color else "",
    )
    for column in ("rank", "host", "play", "score", "status"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for rank, check in enumerate(hosts_by_score(run), 1):
        table.add_row(
            str(rank),
            Text(one_line(check.host)),
            Text(one_line(check.play)),
            format_value(check.value, check.unit),
            status_text(check.status),
        )
    return table


def host_rows(host: HostResult, *, collapse: bool, color: bool) -> list[Row]:
    rows: list[Row] = []
    if not host.reachable:
        rows.append(unreachable_row(host))
    shown = host.checks
    hidden: list[CheckResult] = []
    if collapse:
        shown = [check for check in host.checks if check.status in PROBLEM_STATUSES]
        hidden = [check for check in host.checks if check.status not in PROBLEM_STATUSES]
    rows.extend(check_row(check) for check in shown)
    if hidden:
        rows.append(collapsed_row(host.host, hidden))
    if not rows:
        rows.append(row(host.host, Text("no checks", style="dim"), Text(""), "", ""))
    if color:
        # The host name on the first row leads the eye; repeats stay for grep but recede.
        for repeated in rows[1:]:
            repeated[0].stylize("dim")
    return rows


def check_row(check: CheckResult) -> Row:
    message = check_message(check)
    if check.attempts > 1:
        message = f"{message} (after {check.attempts} attempts)".strip()
    return row(
        check.host,
        Text(one_line(check.name)),
        status_text(check.status),
        format_value(check.value, check.unit),
        message,
    )


def collapsed_row(host: str, checks: Iterable[CheckResult]) -> Row:
    tally = Counter(check.status for check in checks)
    parts = [f"{tally[s]} {s.value.lower()}" for s in (Status.OK, Status.SKIPPED) if tally[s]]
    return row(host, Text(", ".join(parts), style="dim"), status_text(Status.worst(tally)), "", "")


def unreachable_row(host: HostResult) -> Row:
    return row(host.host, Text("-"), status_text(Status.UNREACHABLE), "", unreachable_reason(host))


def row(host: str, check: Text, status: Text, value: str, message: str) -> Row:
    # Every cell that holds text from a target or an input file is sanitised here.
    return (Text(one_line(host)), check, status, Text(one_line(value)), Text(one_line(message)))


def status_text(status: Status) -> Text:
    return Text(status.value, style=STATUS_STYLE[status])


def summary_line(run: RunResult) -> Text:
    status = overall_status(run)
    line = Text("Result: ")
    line.append(status.value, style=STATUS_STYLE[status])
    if run.interrupted:
        line.append(" (interrupted: partial results)", style="bold")
    line.append(" | ")
    for index, (counted, count) in enumerate(summary_counts(run)):
        if index:
            line.append(", ")
        line.append(
            f"{count} {counted.value.lower()}", style=STATUS_STYLE[counted] if count else "dim"
        )
    checks = plural(len(run.all_checks()), "check")
    hosts = plural(len(run.hosts), "host")
    line.append(f" | {checks} on {hosts} in {humanize_seconds(run.duration)}")
    return line


def terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return shutil.get_terminal_size().columns


def strip_trailing_spaces(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n"))
