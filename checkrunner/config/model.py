"""The playbook as loaded: plays and checks, untemplated, each with the place it was written."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from checkrunner.errors import Location

# A number, a range string (possibly a template; see ranges.py), or a dynamic threshold's
# mapping ({baseline: 7d, factor: 1.8}; see baselines.py).
Threshold = Union[float, str, Mapping[str, Any]]


@dataclass(frozen=True)
class Interval:
    """How often watch mode runs a check, in seconds: fixed when `minimum == maximum`,
    adaptive between them otherwise (`interval: {min: 5s, max: 1m}`)."""

    minimum: float
    maximum: float

    @classmethod
    def fixed(cls, seconds: float) -> Interval:
        return cls(seconds, seconds)

    @property
    def adaptive(self) -> bool:
        return self.maximum > self.minimum


@dataclass
class ThresholdSpec:
    """warn/crit of one measurement, as written (numbers or range strings, maybe templated)."""

    warn: Threshold | None = None
    crit: Threshold | None = None


@dataclass
class CheckSpec:
    """One check of a play, before templating.

    - `args`: the module's arguments as written (a MarkedMap: locations of every option are
      kept); a free-form scalar (`disk: /`) is already expanded to {free_form_option: value}.
    - `metric`: the measurement warn/crit apply to: `metric:` or the module's default metric.
    - `thresholds`: thresholds of further measurements (`thresholds:`); see `threshold_map`.
    - `timeout`: seconds; the check's own, else the play's, else 30. `delay` in seconds.
    - `tags`: the play's tags then the check's; `labels`: the play's overlaid by the check's;
      `become`: the check's, else the play's, else None (the inventory decides).
    - `when`: as written: None (always), a bool, an expression or a list of expressions.
    - `id`: "<play index>.<check index>" (both from 0), stable within the playbook.
    - `key_locations`: where the value of each key of the check was written (for errors
      found after templating, e.g. in `when` or `warn`).
    """

    name: str
    module: str
    args: dict[str, Any]
    warn: Threshold | None
    crit: Threshold | None
    metric: str | None
    thresholds: dict[str, ThresholdSpec]
    timeout: float
    retries: int
    delay: float
    tags: list[str]
    labels: dict[str, str]
    when: Any
    become: bool | None
    location: Location
    play_index: int
    index: int
    module_location: Location | None = None
    for_runs: int = 1  # consecutive failing runs before the alert fires
    interval: Interval | None = None  # the check's own, else the play's; None: --interval
    depends_on: list[str] = field(default_factory=list)
    notify: list[str] = field(default_factory=list)  # names of the play's handlers
    key_locations: dict[str, Location] = field(default_factory=dict)
    id: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = f"{self.play_index}.{self.index}"

    def threshold_map(self) -> dict[str, ThresholdSpec]:
        """Every measurement with thresholds: `metric` (warn/crit) first, then `thresholds`."""
        combined: dict[str, ThresholdSpec] = {}
        if self.metric and (self.warn is not None or self.crit is not None):
            combined[self.metric] = ThresholdSpec(self.warn, self.crit)
        combined.update(self.thresholds)
        return combined


@dataclass
class ScoreSpec:
    """A play's weighted host score (`score:`): input check id -> (its name, its weight).

    The weights are as written; evaluate/score.py renormalises them over the inputs present.
    """

    weights: dict[str, tuple[str, float]]
    warn: Threshold | None = None
    crit: Threshold | None = None
    location: Location | None = None


@dataclass(frozen=True)
class WebhookAction:
    """A handler's `webhook:`: called from the control node; any 2xx is success."""

    url: str
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    timeout: float = 10.0


@dataclass
class HandlerSpec:
    """One handler of a play (`handlers:`): a name and exactly one action.

    - `action`: "command", "service" or "webhook"; `command` holds the command module's
      arguments as written ({cmd, shell, ...}), `service` the unit, `webhook` the call.
    - `max_hosts`: a count, or a fraction of the play's hosts when `max_hosts_is_fraction`.
    """

    name: str
    action: str
    location: Location
    play_index: int
    index: int
    command: Mapping[str, Any] | None = None
    service: str | None = None
    webhook: WebhookAction | None = None
    become: bool | None = None
    timeout: float = 60.0
    settle: float = 10.0
    max_runs: int = 3
    cooldown: float = 300.0
    max_hosts: float = 0.1
    max_hosts_is_fraction: bool = True

    def host_limit(self, play_hosts: int) -> int:
        """How many of the play's `play_hosts` hosts this handler may act on in one run."""
        if not self.max_hosts_is_fraction:
            return int(self.max_hosts)
        return max(1, math.floor(self.max_hosts * play_hosts + 1e-9))


@dataclass
class Play:
    """One play. `vars` holds the play's vars with its vars_files merged over them."""

    name: str
    hosts: str
    vars: dict[str, Any]
    vars_files: list[str]
    tags: list[str]
    checks: list[CheckSpec]
    location: Location
    index: int
    become: bool | None = None
    for_runs: int | None = None
    interval: Interval | None = None
    connection: str | None = None
    timeout: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    key_locations: dict[str, Location] = field(default_factory=dict)
    score: ScoreSpec | None = None
    handlers: list[HandlerSpec] = field(default_factory=list)


@dataclass
class Playbook:
    path: str
    plays: list[Play]
    alerting: Any = None  # checkrunner.alerting.config.AlertingSpec, when the playbook has one

    @property
    def directory(self) -> str:
        """The folder relative paths in the playbook (vars_files, inventories) start from."""
        return os.path.dirname(os.path.abspath(self.path))

    def all_checks(self) -> list[CheckSpec]:
        return [check for play in self.plays for check in play.checks]
