"""JUnit XML for CI test panels (GitLab, Jenkins, GitHub test-report actions, Azure).

Layout, chosen for how those UIs group and compare results between pipelines:

- one <testsuite> per host (name = host), one <testcase> per check (classname = host,
  name = check name; a name repeated within a host gets " (play)" and, if still
  ambiguous, " [check id]" appended so every test keeps a stable identity);
- every suite starts with a synthetic testcase "host reachable": it passes when the host
  answered and carries <error type="unreachable"> with the reason when it did not.
  Ansible's junit callback drops unreachable hosts, so a dead host looked like a clean
  run (ansible#63962); a test that is always present also lets a CI UI show the host
  going from passing to failing and back;
- CRITICAL -> <failure type="CRITICAL">; UNKNOWN -> <error type="UNKNOWN">;
  SKIPPED -> <skipped>; WARNING -> a note in <system-out>, or <failure type="WARNING">
  when the run fails on warnings (--fail-on warning), so the CI verdict and the test
  panel agree; OK -> the measurement in <system-out>;
- times are in seconds; timestamps are UTC without a zone, as the JUnit XSD wants.

Jenkins splits classname at its last dot into package and class, so a host called
"web1.example.com" shows as package "web1.example", class "com"; GitLab shows it whole.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from checkrunner.report.base import Reporter
from checkrunner.report.formatting import (
    check_message,
    format_value,
    remediation_note,
    unreachable_reason,
)
from checkrunner.results import CheckResult, HostResult, RunResult, Status
from checkrunner.safe_text import one_line, printable

REACHABLE_TEST = "host reachable"
WARNING_NOTE = "WARNING (not a test failure: the run fails on warnings only with --fail-on warning)"


@dataclass
class Tally:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0

    def add(self, other: Tally) -> None:
        self.tests += other.tests
        self.failures += other.failures
        self.errors += other.errors
        self.skipped += other.skipped

    def as_attributes(self) -> dict[str, str]:
        return {
            "tests": str(self.tests),
            "failures": str(self.failures),
            "errors": str(self.errors),
            "skipped": str(self.skipped),
        }


class JunitReporter(Reporter):
    name = "junit"

    def render(self, run: RunResult) -> str:
        root = build_testsuites(run)
        ET.indent(root)
        body = ET.tostring(root, encoding="unicode")
        return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'


def build_testsuites(run: RunResult) -> ET.Element:
    fail_on_warning = run.fail_on == "warning"
    root = ET.Element("testsuites", name=f"checkrun {printable(run.playbook)}")
    total = Tally()
    for host in run.hosts:
        suite, tally = build_testsuite(host, run, fail_on_warning)
        root.append(suite)
        total.add(tally)
    root.attrib.update(total.as_attributes())
    root.set("time", seconds(run.duration))
    root.set("timestamp", timestamp(run.started_at))
    return root


def build_testsuite(
    host: HostResult, run: RunResult, fail_on_warning: bool
) -> tuple[ET.Element, Tally]:
    name = printable(host.host)
    suite = ET.Element("testsuite", name=name, hostname=printable(host.address or host.host))
    suite.append(host_properties(host))
    tally = Tally()
    cases = [reachability_testcase(host)]
    for check, test_name in zip(host.checks, testcase_names(host.checks)):
        cases.append(check_testcase(check, test_name, fail_on_warning))
    for case in cases:
        suite.append(case)
        tally.add(tally_of(case))
    suite.attrib.update(tally.as_attributes())
    suite.set("time", seconds(host.duration))
    suite.set("timestamp", timestamp(host.started_at or run.started_at))
    return suite, tally


def host_properties(host: HostResult) -> ET.Element:
    properties = ET.Element("properties")
    values = {
        "status": host.status.value,
        "address": host.address,
        "connection": host.connection,
        "unreachable_reason": host.reason or "",
    }
    for key, value in values.items():
        if value:
            ET.SubElement(properties, "property", name=key, value=one_line(value))
    return properties


def reachability_testcase(host: HostResult) -> ET.Element:
    case = testcase(host.host, REACHABLE_TEST, host.duration if not host.reachable else 0.0)
    if not host.reachable:
        error = ET.SubElement(
            case,
            "error",
            type="unreachable",
            message=one_line(unreachable_reason(host)),
        )
        error.text = printable(host.message or unreachable_reason(host))
    return case


def check_testcase(check: CheckResult, test_name: str, fail_on_warning: bool) -> ET.Element:
    case = testcase(check.host, test_name, check.duration)
    details = check_details(check)
    summary = one_line(check_message(check)) or check.status.value
    outcome = outcome_element(check.status, fail_on_warning)
    if outcome is not None:
        element = ET.SubElement(case, outcome, message=summary)
        if outcome != "skipped":
            element.set("type", check.status.value)
        element.text = details
    else:
        if check.status is Status.WARNING:
            details = f"{WARNING_NOTE}\n{details}"
        ET.SubElement(case, "system-out").text = details
    return case


def outcome_element(status: Status, fail_on_warning: bool) -> str | None:
    """The JUnit child that marks a test's outcome, or None for a passing test."""
    if status is Status.CRITICAL or (status is Status.WARNING and fail_on_warning):
        return "failure"
    if status is Status.UNKNOWN:
        return "error"
    if status is Status.SKIPPED:
        return "skipped"
    return None


def testcase(host: str, name: str, duration: float) -> ET.Element:
    return ET.Element(
        "testcase", classname=printable(host), name=printable(name), time=seconds(duration)
    )


def check_details(check: CheckResult) -> str:
    """Everything a reader of a failed test needs, one 'key: value' per line."""
    lines = [f"status: {check.status.value}", f"play: {check.play}", f"module: {check.module}"]
    if check.value is not None:
        metric = f" ({check.metric})" if check.metric else ""
        lines.append(f"value: {format_value(check.value, check.unit)}{metric}")
    thresholds = [
        f"{label} {limit}"
        for label, limit in (("warn", check.thresholds.warn), ("crit", check.thresholds.crit))
        if limit is not None
    ]
    if thresholds:
        lines.append(f"thresholds: {', '.join(thresholds)}")
    if check.attempts > 1:
        lines.append(f"attempts: {check.attempts}")
    if check.message:
        lines.append(f"message: {check.message}")
    if check.remediation is not None:
        lines.append(remediation_note(check))
    return printable("\n".join(lines))


def testcase_names(checks: Sequence[CheckResult]) -> list[str]:
    """Check names made unique within a host: test identity is (classname, name) in CI UIs."""
    taken = Counter(check.name for check in checks)
    taken[REACHABLE_TEST] += 1
    names = [
        check.name if taken[check.name] == 1 else f"{check.name} ({check.play})" for check in checks
    ]
    still_taken = Counter(names)
    still_taken[REACHABLE_TEST] += 1
    return [
        name if still_taken[name] == 1 else f"{name} [{check.check_id}]"
        for name, check in zip(names, checks)
    ]


def tally_of(case: ET.Element) -> Tally:
    return Tally(
        tests=1,
        failures=int(case.find("failure") is not None),
        errors=int(case.find("error") is not None),
        skipped=int(case.find("skipped") is not None),
    )


def seconds(value: float) -> str:
    return f"{max(0.0, value):.3f}"


def timestamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
