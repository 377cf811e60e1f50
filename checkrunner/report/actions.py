"""`checkrun actions`: the remediation audit as a table or as JSON.

Hosts, handlers, commands and output come from input files and targets: untrusted text,
printed through safe_text.
"""

from __future__ import annotations

import json
import time

from checkrunner.safe_text import escape_unprintable_json, one_line
from checkrunner.state.actions import ActionRecord


def _short(text: str, width: int) -> str:
    shown = one_line(text)
    return shown if len(shown) <= width else shown[: width - 1] + "…"


HEADERS = ("time", "host", "handler", "trigger", "action", "exit", "verify")
SHOWN_TARGET = 60  # characters of a command line or URL in the table


def as_json(records: list[ActionRecord], since: float) -> str:
    document = {"since": since, "actions": [record.as_dict() for record in records]}
    return escape_unprintable_json(json.dumps(document, indent=2, ensure_ascii=False))


def table(records: list[ActionRecord]) -> list[str]:
    """One line per action, columns aligned; its output tail on the line below, indented."""
    if not records:
        return ["no actions recorded in this window"]
    rows = [HEADERS, *(_row(record) for record in records)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADERS))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        record = records[index - 1] if index else None
        if record is not None and record.output.strip():
            lines.append("    " + _short(record.output.strip().splitlines()[-1], 100))
    return lines


def _row(record: ActionRecord) -> tuple[str, ...]:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started_at))
    target = _short(f"{record.kind}: {record.target}", SHOWN_TARGET)
    exit_status = record.state if record.exit_status is None else str(record.exit_status)
    return (
        started,
        _short(record.host, 40),
        _short(record.handler, 40),
        _short(", ".join(record.triggers), 40),
        target,
        exit_status,
        record.verify or "-",
    )
