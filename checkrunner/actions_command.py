"""`checkrun actions`: the remediation audit (what handlers ran where, why, with what result).

Kept out of app.py, like `checkrun history`, so that it starts with the state database and
its report only (no playbook, inventory or transport layers).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from checkrunner.errors import ConfigError, did_you_mean
from checkrunner.report.actions import as_json, table
from checkrunner.results import EXIT_OK
from checkrunner.state.actions import ActionLog
from checkrunner.state.db import default_state_path, is_database_url, open_state


@dataclass
class ActionsQuery:
    host: str | None = None
    since: float = 7 * 86400.0
    as_json: bool = False
    state: str | None = None


def actions(query: ActionsQuery, clock: Callable[[], float] | None = None) -> int:
    path = query.state or default_state_path()
    if not is_database_url(path) and not os.path.exists(path):  # a read creates no file
        raise ConfigError(
            f"no state database at {path}",
            hint="give the one the runs write with --state PATH (or $CHECKRUN_STATE)",
        )
    log = ActionLog(open_state(path))
    if query.host is not None and query.host not in (known := log.hosts()):
        raise ConfigError(
            f"no host '{query.host}' in the remediation audit",
            hint=did_you_mean(query.host, known)
            or (f"known: {', '.join(known[:10])}" if known else "no action is recorded yet"),
        )
    since = (clock or time.time)() - query.since
    records = log.listing(since, query.host)
    if query.as_json:
        print(as_json(records, since))
    else:
        sys.stdout.write("\n".join(table(records)) + "\n")
    return EXIT_OK
