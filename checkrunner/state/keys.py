"""How the state database names a check: host, play and check name (masked, as planned)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checkrunner.plan import PlannedCheck


@dataclass(frozen=True, order=True)
class CheckKey:
    """A check on a host, as the state database keys it (log offsets, failure streaks)."""

    host: str
    play: str
    check: str

    @classmethod
    def of(cls, planned: PlannedCheck) -> CheckKey:
        identity = planned.identity
        return cls(identity.host, identity.play, identity.name)
