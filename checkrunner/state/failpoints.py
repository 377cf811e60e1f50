"""Named points where tests make the process die for real (SIGKILL), to prove nothing is lost.

`CHECKRUN_FAILPOINT=before-state-commit` kills a run after its reports are written and
before its log offsets are committed; `after-send` kills it after a receiver accepted a
message and before the outbox records that. Unset, a failpoint costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

FAILPOINT_ENV = "CHECKRUN_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
