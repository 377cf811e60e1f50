"""The data every layer passes on: statuses, check results, host results, run results."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from checkrunner.shards import MergeInfo, ShardInfo


class Status(str, enum.Enum):
    """Outcome of one check. UNREACHABLE is a host outcome, never a check's."""

    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"
    SKIPPED = "SKIPPED"
    UNREACHABLE = "UNREACHABLE"

    @property
    def severity(self) -> int:
        """Order used to pick the worst status: SKIPPED < OK < WARNING < UNREACHABLE < UNKNOWN < CRITICAL."""
        return _SEVERITY[self]

    @classmethod
    def worst(cls, statuses) -> Status:
        return max(statuses, key=lambda s: s.severity, default=cls.OK)


_SEVERITY = {
    Status.SKIPPED: 0,
    Status.OK: 1,
    Status.WARNING: 2,
    Status.UNREACHABLE: 3,
    Status.UNKNOWN: 4,
    Status.CRITICAL: 5,
}

# Nagios plugin exit codes.
NAGIOS_CODES = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}


class UnreachableReason(str, enum.Enum):
    REFUSED = "refused"
    TIMEOUT = "timeout"
    DNS = "dns"
    AUTH = "auth"
    HOST_KEY_UNKNOWN = "host-key-unknown"
    HOST_KEY_CHANGED = "host-key-changed"
    NO_PYTHON = "no-python"
    SUDO = "sudo"
    REMOTE_CRASH = "remote-crash"
    UNSUPPORTED_CONNECTION = "unsupported-connection"  # winrm, network_cli, docker ...
    ERROR = "error"


@dataclass
class Thresholds:
    """The thresholds as the user wrote them (strings in Nagios range syntax or numbers)."""

    warn: str | None = None
    crit: str | None = None


@dataclass
class BaselineBound:
    """The bound a dynamic threshold (`warn: {baseline: 7d, factor: 1.8}`) put on one
    measurement in this run, from the history the baseline was computed on."""

    metric: str  # the measurement
    level: str  # "warn" | "crit"
    method: str  # "factor" | "sigma" | "mad"
    window: float  # seconds of history it looks back (baseline: 7d -> 604800)
    seasonal: str | None  # "hour_of_week" | "hour_of_day" | None
    direction: str  # "above" | "below" | "both"
    samples: int  # how many history samples it was computed from
    center: float | None  # mean (factor, sigma) or median (mad); None while warming up
    spread: float | None  # sigma, or the scaled MAD; None for factor / warming up
    lower: float | None  # a value below this breaches (direction below/both), else None
    upper: float | None  # a value above this breaches (direction above/both), else None
    warming_up: bool  # fewer than min_samples: the static fallback (if any) applied
    text: str  # how the bound was made, for people: "1.8 × 7-day mean 6.2%"


# What a handler did for a failing check (self-healing), as reports and alerts show it.
REMEDIATED = "remediated"  # the handler ran and the check passed when run again
REMEDIATION_FAILED = "remediation failed"  # the handler failed, or the check still failed after it
REMEDIATION_SUPPRESSED = "suppressed"  # a guard rail (or --no-remediate) held it back
REMEDIATION_DRY_RUN = "dry-run"  # --remediate=dry-run: shown, not run
# The results that leave a failure to a human: the alert carries them as its `remediation`
# label, so that a route can page for those only.
ESCALATED = {
    REMEDIATION_FAILED: "failed",
    REMEDIATION_SUPPRESSED: REMEDIATION_SUPPRESSED,
    REMEDIATION_DRY_RUN: REMEDIATION_SUPPRESSED,
}


@dataclass
class RemediationResult:
    """The handler a check's firing alert notified in this run, and what came of it."""

    handler: str
    action: str  # what it does, as shown: "restart app.service", "POST https://...", argv
    result: str  # REMEDIATED, REMEDIATION_FAILED, REMEDIATION_SUPPRESSED or _DRY_RUN
    text: str  # one line: "app health CRITICAL → restarted app.service → OK after 4.2 s"
    reason: str | None = None  # the guard that held it back, or why it failed
    exit_status: int | None = None  # the action's (HTTP status for a webhook); None: not run
    seconds: float | None = None  # from the action's start to the verify result
    verify_status: str | None = None  # the worst status of the notifying checks run again
    verify_message: str = ""

    @property
    def escalation(self) -> str | None:
        """The alert's `remediation` label: "failed" or "suppressed"; None when healed."""
        return ESCALATED.get(self.result)


@dataclass
class CheckResult:
    host: str
    play: str
    name: str
    module: str
    status: Status
    message: str = ""
    metric: str | None = None  # the measurement the thresholds apply to
    value: float | None = None  # that measurement's value
    unit: str = ""
    measurements: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # non-numeric details from the module
    thresholds: Thresholds = field(default_factory=Thresholds)
    duration: float = 0.0  # seconds spent on the target for the last attempt
    attempts: int = 1
    tags: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    check_id: str = ""  # "<play index>.<check index>", stable within a playbook
    baselines: list[BaselineBound] = field(default_factory=list)  # its dynamic thresholds
    remediation: RemediationResult | None = None  # its handler's, when its alert fired

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data


@dataclass
class HostResult:
    host: str
    address: str = ""
    connection: str = "local"
    reachable: bool = True
    reason: str | None = None  # an UnreachableReason value when not reachable
    message: str = ""
    checks: list[CheckResult] = field(default_factory=list)
    duration: float = 0.0
    started_at: float = 0.0

    @property
    def status(self) -> Status:
        if not self.reachable:
            return Status.UNREACHABLE
        return Status.worst(c.status for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "address": self.address,
            "connection": self.connection,
            "status": self.status.value,
            "reachable": self.reachable,
            "reason": self.reason,
            "message": self.message,
            "duration": round(self.duration, 6),
            "started_at": self.started_at,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass
class RunResult:
    playbook: str
    started_at: float
    finished_at: float = 0.0
    hosts: list[HostResult] = field(default_factory=list)
    interrupted: bool = False
    fail_on: str = "critical"
    shard: ShardInfo | None = None  # a `--shard K/N` run's
    merge: MergeInfo | None = None  # `checkrun merge`: the shards it joined, and those it lacks

    @property
    def duration(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    def all_checks(self) -> list[CheckResult]:
        return [c for h in self.hosts for c in h.checks]

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for check in self.all_checks():
            counts[check.status.value] += 1
        counts[Status.UNREACHABLE.value] = sum(1 for h in self.hosts if not h.reachable)
        return counts

    @property
    def exit_code(self) -> int:
        return exit_code_for(self)

    def to_dict(self, with_hosts: bool = True) -> dict[str, Any]:
        """The JSON report's document; `with_hosts=False`: `hosts` empty (the JSON report
        streams them one by one)."""
        from checkrunner import __version__

        document = {
            "schema_version": 1,
            "checkrunner_version": __version__,
            "playbook": self.playbook,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": round(self.duration, 6),
            "interrupted": self.interrupted,
            "fail_on": self.fail_on,
            "exit_code": self.exit_code,
            "summary": self.counts(),
            "hosts": [h.to_dict() for h in self.hosts] if with_hosts else [],
        }
        document.update(self.extra_fields())
        return document

    def extra_fields(self) -> dict[str, Any]:
        """The top-level fields only some runs have: `shard`, `merge`."""
        extra: dict[str, Any] = {}
        if self.shard is not None:
            extra["shard"] = self.shard.to_dict()
        if self.merge is not None:
            extra["merge"] = self.merge.to_dict()
        return extra


# Exit codes (README "Exit codes"); never overloaded.
EXIT_OK = 0
EXIT_WARNING = 1
EXIT_CRITICAL = 2
EXIT_UNKNOWN = 3
EXIT_UNREACHABLE = 4
EXIT_BAD_INPUT = 5
EXIT_INTERRUPTED = 130

FAIL_ON_LEVELS = ("warning", "critical", "never")


def exit_code_for(run: RunResult) -> int:
    """CRITICAL > UNKNOWN > UNREACHABLE > WARNING (only with --fail-on warning) > OK."""
    if run.interrupted:
        return EXIT_INTERRUPTED
    if run.fail_on == "never":
        return EXIT_OK
    counts = run.counts()
    if counts["CRITICAL"]:
        return EXIT_CRITICAL
    if counts["UNKNOWN"]:
        return EXIT_UNKNOWN
    if counts["UNREACHABLE"]:
        return EXIT_UNREACHABLE
    if counts["WARNING"] and run.fail_on == "warning":
        return EXIT_WARNING
    return EXIT_OK
