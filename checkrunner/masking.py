"""Secrets never reach a report: values read from the environment by templates, and the
become password, are replaced by *** in every message, fact and name before reporting."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from checkrunner.results import CheckResult, HostResult, RunResult

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values ("1", "yes") would garble reports and hide nothing


class Masker:
    def __init__(self, secrets: Iterable[str | None]):
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted(
            {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value

    def check(self, check: CheckResult) -> CheckResult:
        if not self.secrets:
            return check
        return dataclasses.replace(
            check,
            name=self.text(check.name),
            message=self.text(check.message),
            facts=self.value(check.facts),
            labels=self.value(check.labels),
        )

    def host(self, host: HostResult) -> HostResult:
        if not self.secrets:
            return host
        return dataclasses.replace(
            host, message=self.text(host.message), checks=[self.check(c) for c in host.checks]
        )

    def run(self, run: RunResult) -> RunResult:
        if not self.secrets:
            return run
        return dataclasses.replace(run, hosts=[self.host(h) for h in run.hosts])


class MaskingReporter:
    """A reporter seen through a Masker: it only ever receives masked results."""

    def __init__(self, reporter, masker: Masker):
        self._reporter = reporter
        self._masker = masker

    def on_start(self, total_hosts: int, total_checks: int) -> None:
        self._reporter.on_start(total_hosts, total_checks)

    def on_host_done(self, host: HostResult) -> None:
        self._reporter.on_host_done(self._masker.host(host))

    def finish(self, run: RunResult) -> None:
        self._reporter.finish(self._masker.run(run))

    def close(self) -> None:
        self._reporter.close()
