"""Results as Prometheus metrics, built with prometheus_client (never hand-written text).

One function turns host results into metric families (`host_families`); the one-shot
report (`-r prometheus:PATH`, node_exporter's textfile-collector format), the Pushgateway
push and watch mode's /metrics all expose what it returns.

Series and labels (README "Prometheus metrics"):

- `checkrun_check_status{host,play,check}`: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, as
  Nagios. A SKIPPED check ran nothing and has no status sample (as Prometheus has no
  sample for a target it did not scrape).
- `checkrun_check_value{host,play,check,metric,unit}`: every measurement, in base units
  (Prometheus' naming rules): durations in seconds (`unit="seconds"`), sizes in bytes
  (`unit="bytes"`), percentages as ratios 0-1 (`unit="ratio"`), rates per second
  (`unit="per_second"`); dimensionless values have `unit=""`, a unit checkrun does not
  know (a Nagios plugin's `c`) is kept as the plugin wrote it, the value unchanged.
- `checkrun_check_duration_seconds{host,play,check}`: time the check took on the target.
- `checkrun_host_up{host}`: 1 reached, 0 UNREACHABLE (its checks then have no series).
- `checkrun_check_remediation{host,play,check,handler,result}`: 1 when the check's firing
  alert notified a handler in its last run; `result` is remediated, remediation failed,
  suppressed or dry-run.
- For the modules that declare MODULE["probe"] (`http`, `tcp`), blackbox_exporter's names: `probe_success`,
  `probe_duration_seconds`, `probe_http_status_code` (http), `probe_ssl_earliest_cert_expiry`
  (a Unix time; https and `tls: true` only), labelled `host, play, check` plus `instance`,
  the probed URL or address, which is what blackbox_exporter's relabelling makes `instance`
  (scrape with `honor_labels: true` so that a dashboard keyed on it works) and `target`,
  the same value, which survives a Pushgateway's grouping key (that sets `instance`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from checkrunner import catalog
from checkrunner.report.base import Reporter
from checkrunner.results import NAGIOS_CODES, CheckResult, HostResult, RunResult, Status

CHECK_LABELS = ("host", "play", "check")
PROBE_LABELS = (*CHECK_LABELS, "instance", "target")
SECONDS_PER_DAY = 86400.0

# unit as modules and plugins write it -> (factor to the base unit, the base unit's name)
_BASE_UNITS: dict[str, tuple[float, str]] = {
    "": (1.0, ""),
    "s": (1.0, "seconds"),
    "ms": (1e-3, "seconds"),
    "us": (1e-6, "seconds"),
    "µs": (1e-6, "seconds"),
    "ns": (1e-9, "seconds"),
    "min": (60.0, "seconds"),
    "h": (3600.0, "seconds"),
    "d": (SECONDS_PER_DAY, "seconds"),
    "w": (7 * SECONDS_PER_DAY, "seconds"),
    "%": (0.01, "ratio"),
    "b": (1.0, "bytes"),
    "kb": (1e3, "bytes"),
    "mb": (1e6, "bytes"),
    "gb": (1e9, "bytes"),
    "tb": (1e12, "bytes"),
    "kib": (1024.0, "bytes"),
    "mib": (1024.0**2, "bytes"),
    "gib": (1024.0**3, "bytes"),
    "tib": (1024.0**4, "bytes"),
}
_RATE = re.compile(r"^/(?:(\d+(?:\.\d+)?)s|(s|min|h|d))$")
_RATE_PERIODS = {"s": 1.0, "min": 60.0, "h": 3600.0, "d": SECONDS_PER_DAY}


def base_unit(unit: str) -> tuple[float, str]:
    """(factor, name): a value in `unit` times factor is in the base unit `name`."""
    known = _BASE_UNITS.get(unit, _BASE_UNITS.get(unit.lower()))
    if known is not None:
        return known
    rate = _RATE.match(unit)
    if rate:
        period = float(rate.group(1)) if rate.group(1) else _RATE_PERIODS[rate.group(2)]
        return 1.0 / period, "per_second"
    return 1.0, unit


def label_value(text: object) -> str:
    """A label value prometheus_client can encode: text from targets may hold lone
    surrogates (JSON escapes them), which UTF-8 cannot; they become backslash escapes.
    Quotes, backslashes and newlines are the library's to escape."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass
class _Families:
    status: GaugeMetricFamily
    value: GaugeMetricFamily
    duration: GaugeMetricFamily
    host_up: GaugeMetricFamily
    probe_success: GaugeMetricFamily
    probe_duration: GaugeMetricFamily
    probe_status_code: GaugeMetricFamily
    probe_cert_expiry: GaugeMetricFamily
    remediation: GaugeMetricFamily

    @classmethod
    def empty(cls) -> _Families:
        return cls(
            status=GaugeMetricFamily(
                "checkrun_check_status",
                "Check status as Nagios numbers it: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
                labels=CHECK_LABELS,
            ),
            value=GaugeMetricFamily(
                "checkrun_check_value",
                "Every measurement of a check, in base units (the unit label)",
                labels=(*CHECK_LABELS, "metric", "unit"),
            ),
            duration=GaugeMetricFamily(
                "checkrun_check_duration_seconds",
                "Time the check took on the target",
                labels=CHECK_LABELS,
            ),
            host_up=GaugeMetricFamily(
                "checkrun_host_up",
                "1 when the host was reached, 0 when UNREACHABLE",
                labels=("host",),
            ),
            probe_success=GaugeMetricFamily(
                "probe_success", "Whether the probe succeeded", labels=PROBE_LABELS
            ),
            probe_duration=GaugeMetricFamily(
                "probe_duration_seconds",
                "How long the probe took to complete in seconds",
                labels=PROBE_LABELS,
            ),
            probe_status_code=GaugeMetricFamily(
                "probe_http_status_code", "Response HTTP status code", labels=PROBE_LABELS
            ),
            probe_cert_expiry=GaugeMetricFamily(
                "probe_ssl_earliest_cert_expiry",
                "Returns last SSL chain expiry in unixtime",
                labels=PROBE_LABELS,
            ),
            remediation=GaugeMetricFamily(
                "checkrun_check_remediation",
                "1 for what the handler a check's firing alert notified did in its last run: "
                "result remediated, remediation failed, suppressed or dry-run",
                labels=(*CHECK_LABELS, "handler", "result"),
            ),
        )

    def all(self) -> list[Metric]:
        return [
            self.status,
            self.value,
            self.duration,
            self.host_up,
            self.probe_success,
            self.probe_duration,
            self.probe_status_code,
            self.probe_cert_expiry,
            self.remediation,
        ]


def host_families(
    hosts: Iterable[HostResult], checked_at: Mapping[tuple[str, str, str], float] | None = None
) -> list[Metric]:
    """The metric families of these hosts' latest results (one series per host and check:
    a check named twice in a play keeps its first result). `checked_at`: when each
    (host, play, check) last ran, where a result holds checks of earlier rounds (watch
    mode); by default, when its host's result ended (what a certificate's days left count
    from)."""
    families = _Families.empty()
    seen: set[tuple[str, ...]] = set()
    for host in hosts:
        families.host_up.add_metric([label_value(host.host)], 1.0 if host.reachable else 0.0)
        if not host.reachable:
            # Checks a host could not run have no sample (their series end, as a target's
            # do when it cannot be scraped): in watch mode its earlier results are kept for
            # /api/v1/results, but exporting them would freeze an outdated status.
            continue
        host_done = host.started_at + host.duration
        for check in host.checks:
            key = (host.host, check.play, check.name)
            labels = [label_value(part) for part in key]
            if tuple(labels) in seen:
                continue
            seen.add(tuple(labels))
            at = checked_at.get(key, host_done) if checked_at is not None else host_done
            _add_check(families, labels, check, at)
    return families.all()


def _add_check(families: _Families, labels: list[str], check: CheckResult, at: float) -> None:
    if check.status == Status.SKIPPED:
        return
    if check.status in NAGIOS_CODES:
        families.status.add_metric(labels, float(NAGIOS_CODES[check.status]))
    families.duration.add_metric(labels, check.duration)
    for name, value in check.measurements.items():
        factor, unit = base_unit(check.units.get(name, ""))
        families.value.add_metric([*labels, label_value(name), label_value(unit)], value * factor)
    if check.remediation is not None:
        handler = label_value(check.remediation.handler)
        families.remediation.add_metric([*labels, handler, check.remediation.result], 1.0)
    probe = _probe_spec(check.module)
    if probe:
        _add_probe(families, labels, check, probe, at)


@functools.cache
def _probe_spec(module: str) -> dict[str, Any]:
    try:
        return catalog.get(module).probe
    except KeyError:
        return {}


def _add_probe(
    families: _Families, labels: list[str], check: CheckResult, probe: dict[str, Any], at: float
) -> None:
    """blackbox_exporter's series, from the measurements the module's MODULE["probe"] names.
    A probe that could not run at all (UNKNOWN, no measurements) failed, as blackbox_exporter
    says of a probe that errors, and had no HTTP status (0)."""
    target = label_value(_probe_target(check.facts, probe.get("target", ())))
    probe_labels = [*labels, target, target]
    measured = check.measurements
    families.probe_success.add_metric(probe_labels, measured.get(probe["success"], 0.0))
    families.probe_duration.add_metric(
        probe_labels, measured.get(probe["duration"], check.duration)
    )
    if "http_status_code" in probe:
        families.probe_status_code.add_metric(
            probe_labels, measured.get(probe["http_status_code"], 0.0)
        )
    if probe.get("cert_days_left") in measured:
        expiry = at + measured[probe["cert_days_left"]] * SECONDS_PER_DAY
        families.probe_cert_expiry.add_metric(probe_labels, expiry)


def _probe_target(facts: dict[str, Any], names: Iterable[str]) -> object:
    for name in names:
        value = facts.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value:
            return value
    return ""


def run_families(run: RunResult) -> list[Metric]:
    """A one-shot run's families: its hosts' and when it finished (what a textfile or a
    push is dated by: alert on `time() - checkrun_run_finished_timestamp_seconds`)."""
    finished = GaugeMetricFamily(
        "checkrun_run_finished_timestamp_seconds",
        "Unix time the run finished",
        value=run.finished_at,
    )
    return [*host_families(run.hosts), finished]


class FamiliesCollector(Collector):
    """A fixed list of families as a prometheus_client collector."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def run_registry(run: RunResult) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FamiliesCollector(run_families(run)))
    return registry


def exposition(run: RunResult) -> bytes:
    """The run in the text exposition format (node_exporter's textfile collector reads it)."""
    return generate_latest(run_registry(run))


class PrometheusReporter(Reporter):
    """`-r prometheus:PATH`: node_exporter's textfile-collector format, written atomically
    (a temporary file in the same folder, then a rename: the collector never reads half).
    node_exporter reads only files named *.prom."""

    name = "prometheus"

    def render(self, run: RunResult) -> str:
        return exposition(run).decode("utf-8")
