"""The remediation audit: every SQL statement about handler actions is here.

An action is recorded in two steps, each committed on its own: `begin` writes the intent
(time, host, handler, the checks that notified it, the command or URL) BEFORE the action
runs, `finish` adds its exit status and output tail after. A crash between the two leaves the
intent: the action ran (or may have), and the guard rails count it as a run, so a restarted
checkrun never runs it again without a record of the first. `ActionLog.run` is that protocol
in one place; the failpoint `after-action` (failpoints.py) kills the process inside it.

Every text is masked (`mask`, the run's Masker.text) before it reaches the database: a
command line or URL may carry a token read from the environment.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from checkrunner.state.failpoints import failpoint

if TYPE_CHECKING:
    from checkrunner.state.db import StateDB

INTENT = "intent"
DONE = "done"
UNFINISHED = "unfinished"  # an intent not finished: running, or its process died
OUTPUT_TAIL = 2000  # characters of an action's output kept
KEPT_SECONDS = 90 * 86400.0  # the audit is kept this long


@dataclass(frozen=True)
class ActionIntent:
    """What is about to run, and why."""

    host: str
    play: str
    handler: str
    triggers: Sequence[str]  # the checks whose alerts notified the handler
    kind: str  # command, service or webhook
    target: str  # the command line or METHOD URL


@dataclass(frozen=True)
class ActionOutcome:
    exit_status: int  # the command's exit code, the HTTP status; -1: it could not run
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 or 200 <= self.exit_status < 300


@dataclass(frozen=True)
class ActionRecord:
    """One row of the audit, as `checkrun actions` lists it."""

    id: int
    started_at: float
    host: str
    play: str
    handler: str
    triggers: list[str]
    kind: str
    target: str
    state: str  # done, or unfinished (an intent: running, or cut short by a crash)
    finished_at: float | None
    exit_status: int | None
    output: str
    verify: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "started_at": self.started_at,
            "host": self.host,
            "play": self.play,
            "handler": self.handler,
            "triggers": self.triggers,
            "kind": self.kind,
            "target": self.target,
            "state": self.state,
            "finished_at": self.finished_at,
            "exit_status": self.exit_status,
            "output": self.output,
            "verify": self.verify,
        }


class ActionLog:
    """The audit of one state database; `mask` is applied to every text written."""

    def __init__(self, db: StateDB, mask: Callable[[str], str] = lambda text: text):
        self.db = db
        self.mask = mask

    def run(
        self,
        intent: ActionIntent,
        act: Callable[[], ActionOutcome],
        now: float,
        clock: Callable[[], float],
    ) -> tuple[int, ActionOutcome]:
        """Record the intent, run the action, record its outcome: (the row's id, the outcome)."""
        action_id = self.begin(intent, now)
        outcome = act()
        failpoint("after-action")
        self.finish(action_id, outcome, clock())
        return action_id, outcome

    def begin(self, intent: ActionIntent, now: float) -> int:
        with self.db.transaction() as connection:
            connection.execute("DELETE FROM actions WHERE started_at < ?", (now - KEPT_SECONDS,))
            cursor = connection.execute(
                "INSERT INTO actions (started_at, host, play, handler, triggers, kind, target, "
                "state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now,
                    intent.host,
                    intent.play,
                    intent.handler,
                    json.dumps([self.mask(name) for name in intent.triggers]),
                    intent.kind,
                    self.mask(intent.target),
                    INTENT,
                ),
            )
        return int(cursor.lastrowid)

    def finish(self, action_id: int, outcome: ActionOutcome, now: float) -> None:
        with self.db.transaction() as connection:
            connection.execute(
                "UPDATE actions SET state = ?, finished_at = ?, exit_status = ?, output = ? "
                "WHERE id = ?",
                (
                    DONE,
                    now,
                    outcome.exit_status,
                    self.mask(outcome.output)[-OUTPUT_TAIL:],
                    action_id,
                ),
            )

    def verified(self, action_id: int, verdict: str) -> None:
        """The result of re-running the notifying checks: results.REMEDIATED or
        REMEDIATION_FAILED."""
        with self.db.transaction() as connection:
            connection.execute("UPDATE actions SET verify = ? WHERE id = ?", (verdict, action_id))

    def runs_since(self, host: str, play: str, handler: str, since: float) -> int:
        """Runs of the handler on the host since then, interrupted ones included."""
        row = self.db.connection.execute(
            "SELECT COUNT(*) FROM actions WHERE host = ? AND play = ? AND handler = ? "
            "AND started_at >= ?",
            (host, play, handler, since),
        ).fetchone()
        return int(row[0])

    def last_started(self, host: str, play: str, handler: str) -> float | None:
        row = self.db.connection.execute(
            "SELECT MAX(started_at) FROM actions WHERE host = ? AND play = ? AND handler = ?",
            (host, play, handler),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def listing(self, since: float, host: str | None = None) -> list[ActionRecord]:
        """The actions started since then (of one host if given), oldest first."""
        query = (
            "SELECT id, started_at, host, play, handler, triggers, kind, target, state, "
            "finished_at, exit_status, output, verify FROM actions WHERE started_at >= ?"
        )
        parameters: list[object] = [since]
        if host is not None:
            query += " AND host = ?"
            parameters.append(host)
        rows = self.db.connection.execute(query + " ORDER BY started_at, id", parameters)
        return [_record(row) for row in rows]

    def hosts(self) -> list[str]:
        return [
            row[0]
            for row in self.db.connection.execute("SELECT DISTINCT host FROM actions ORDER BY host")
        ]


def _record(row: tuple) -> ActionRecord:
    (
        action_id,
        started_at,
        host,
        play,
        handler,
        triggers,
        kind,
        target,
        state,
        finished_at,
        exit_status,
        output,
        verify,
    ) = row
    return ActionRecord(
        id=int(action_id),
        started_at=float(started_at),
        host=host,
        play=play,
        handler=handler,
        triggers=list(json.loads(triggers)),
        kind=kind,
        target=target,
        state=UNFINISHED if state == INTENT and finished_at is None else state,
        finished_at=finished_at,
        exit_status=exit_status,
        output=output,
        verify=verify,
    )
