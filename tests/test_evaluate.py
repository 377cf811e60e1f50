"""Raw results from a target + thresholds -> status and message (no SSH, no subprocess)."""

from __future__ import annotations

import pytest

from checkrunner.config import parse_range
from checkrunner.evaluate.evaluate import CheckIdentity, MetricThresholds, evaluate_check
from checkrunner.results import Status


def identity(warn=None, crit=None, metric="busy", extra=()):
    thresholds = [
        MetricThresholds(
            metric=metric,
            warn=parse_range(warn) if warn is not None else None,
            crit=parse_range(crit) if crit is not None else None,
            warn_text=warn,
            crit_text=crit,
        ),
        *extra,
    ]
    return CheckIdentity(
        host="h1",
        play="p",
        name="cpu busy",
        module="cpu",
        check_id="0.0",
        metric=metric,
        thresholds=tuple(thresholds),
        declared_units={"busy": "%", "latency": "s"},
    )


def raw(measurements=None, **body):
    return {
        "id": "0.0",
        "module": "cpu",
        "duration": 0.5,
        "result": {"measurements": measurements or {}, **body},
    }


@pytest.mark.parametrize(
    ("value", "warn", "crit", "status", "words"),
    [
        (50, "80", "95", Status.OK, None),
        (85, "80", "95", Status.WARNING, "busy=85% above warn 80"),
        (96, "80", "95", Status.CRITICAL, "busy=96% above crit 95"),
        (5, "10:", None, Status.WARNING, "below warn 10:"),
        (15, None, "@10:20", Status.CRITICAL, "inside crit @10:20"),
        (25, "10:20", None, Status.WARNING, "outside warn 10:20"),
        (-5, "80", None, Status.OK, None),  # a bare number is an upper bound only
    ],
)
def test_thresholds(value, warn, crit, status, words):
    result = evaluate_check(identity(warn, crit), raw({"busy": value}))
    assert result.status == status
    assert result.value == value and result.unit == "%"
    if words:
        assert words in result.message


def test_failures_win_over_a_missing_metric():
    result = evaluate_check(
        identity("1", "2", metric="latency"), raw({}, failures=["connection refused"])
    )
    assert result.status == Status.CRITICAL
    assert "connection refused" in result.message


def test_a_missing_metric_without_failures_is_unknown():
    result = evaluate_check(identity("1", metric="latency"), raw({"busy": 1}))
    assert result.status == Status.UNKNOWN
    assert "latency" in result.message


def test_module_status_and_thresholds_take_the_worse():
    result = evaluate_check(
        identity("1", metric="latency"), raw({"latency": 2.0}, status="CRITICAL")
    )
    assert result.status == Status.CRITICAL
    result = evaluate_check(
        identity(None, "1", metric="latency"), raw({"latency": 2.0}, status="WARNING")
    )
    assert result.status == Status.CRITICAL


def test_error_entries_are_unknown_with_the_reason():
    result = evaluate_check(
        identity(), {"id": "0.0", "error": "timed out after 5s", "error_type": "timeout"}
    )
    assert (result.status, result.message) == (Status.UNKNOWN, "timed out after 5s")


def test_several_thresholds_at_once():
    extra = (MetricThresholds("latency", crit=parse_range("2"), crit_text="2"),)
    result = evaluate_check(identity("80", extra=extra), raw({"busy": 10, "latency": 3}))
    assert result.status == Status.CRITICAL
    assert "latency=3s above crit 2" in result.message


def test_non_numeric_measurements_are_dropped():
    result = evaluate_check(identity(), raw({"busy": 5, "flag": True, "name": "x"}))
    assert result.measurements == {"busy": 5.0}
