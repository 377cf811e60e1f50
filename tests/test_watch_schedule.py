"""Watch mode's pure decisions, with explicit values and a fake clock: stable jitter, the
schedule (checks due together, overruns skipped, not stacked), adaptive intervals, the
circuit breaker; and `interval:` as the playbook writes it."""

from __future__ import annotations

import statistics

import pytest
from helpers import plan_from_text, validate_text

from checkrunner.config import Interval, parse_range
from checkrunner.evaluate.evaluate import MetricThresholds
from checkrunner.results import CheckResult, Status
from checkrunner.serve.adaptive import is_urgent, moved, near_threshold, next_interval
from checkrunner.serve.breaker import CLOSED, HALF_OPEN, OPEN, Breaker, backoff_seconds
from checkrunner.serve.schedule import Schedule, jitter_fraction

LOCAL = "all:\n  hosts:\n" + "".join(f"    h{n}: {{ansible_connection: local}}\n" for n in range(3))


# -- jitter --------------------------------------------------------------------------------


def test_jitter_is_stable_per_host_and_spreads_a_thousand_hosts():
    names = [f"web{n:04d}.example.com" for n in range(1000)]
    first = [jitter_fraction(name) for name in names]
    assert first == [jitter_fraction(name) for name in names]  # same every start
    assert all(0.0 <= f < 1.0 for f in first)
    seconds = [int(f * 60) for f in first]  # interval: 1m
    per_second = [seconds.count(s) for s in range(60)]
    assert max(per_second) < 50  # uniform would be ~17 per second; never all in one
    assert min(per_second) > 0
    assert abs(statistics.mean(first) - 0.5) < 0.05


# -- the schedule --------------------------------------------------------------------------


def _plan(tmp_path, checks: str):
    return plan_from_text(tmp_path, f"- hosts: all\n  checks:\n{checks}", LOCAL)


def test_checks_of_a_host_due_together_go_in_one_batch_and_hosts_are_spread(tmp_path):
    plan = _plan(
        tmp_path,
        "    - {name: a, memory: {}, interval: 10s}\n"
        "    - {name: b, load: {}, interval: 10s}\n"
        "    - {name: c, load: {}, interval: 20s}\n",
    )
    schedule = Schedule()
    schedule.sync(plan.hosts, now=1000.0)
    first_due = {}
    for host_plan in plan.hosts:
        name = host_plan.host.name
        expected = 1000.0 + jitter_fraction(name) * 10
        if expected - 1000.0 > 1.0:  # not yet due before its phase of the interval
            assert schedule.due(host_plan, expected - 1.0 - 1e-6) == []
        due = schedule.due(host_plan, expected)
        assert [c.identity.name for c in due] == ["a", "b", "c"]  # one batch
        first_due[name] = expected
        scheduled = schedule.started(name, due, expected)
        assert scheduled == pytest.approx(expected)
        # ten seconds later a and b are due again, c (20s) is not
        assert [c.identity.name for c in schedule.due(host_plan, expected + 10)] == ["a", "b"]
    assert len({round(t, 3) for t in first_due.values()}) == 3  # not in the same instant


def test_a_time_that_passes_while_in_flight_is_skipped_not_stacked(tmp_path):
    plan = _plan(tmp_path, "    - {name: a, memory: {}, interval: 5s}\n")
    host_plan = plan.hosts[0]
    name = host_plan.host.name
    schedule = Schedule()
    schedule.sync([host_plan], now=0.0)
    start = jitter_fraction(name) * 5
    due = schedule.due(host_plan, start)
    schedule.started(name, due, start)
    # still in flight at +5 and +10: the scheduler marks those times started (skipped)
    for late in (5, 10):
        skipped = schedule.due(host_plan, start + late)
        assert skipped
        schedule.started(name, skipped, start + late)
    # the hung run ends at +12: the next run is the next step of the grid, +15, not now
    schedule.finished(name, host_plan.checks[0], start, 5.0, start + 12)
    assert schedule.due(host_plan, start + 12) == []
    assert schedule.due(host_plan, start + 14.9) == []
    assert schedule.due(host_plan, start + 15)


def test_a_reload_keeps_the_times_of_known_checks_and_forgets_the_gone(tmp_path):
    plan = _plan(tmp_path, "    - {name: a, memory: {}, interval: 5s}\n")
    schedule = Schedule()
    schedule.sync(plan.hosts, now=0.0)
    before = {k: v.next_due for k, v in schedule.checks.items()}
    again = _plan(
        tmp_path,
        "    - {name: a, memory: {}, interval: 5s}\n    - {name: b, load: {}, interval: 5s}\n",
    )
    schedule.sync(again.hosts[:1], now=100.0)
    kept = {k: v.next_due for k, v in schedule.checks.items()}
    assert len(kept) == 2 and all(k[0] == "h0" for k in kept)
    assert kept[("h0", "all", "a")] == before[("h0", "all", "a")]


# -- adaptive intervals --------------------------------------------------------------------

ADAPTIVE = Interval(5.0, 60.0)


def test_the_interval_doubles_toward_max_while_stable_and_drops_to_min_when_urgent():
    current = ADAPTIVE.minimum
    seen = []
    for _ in range(6):
        current = next_interval(ADAPTIVE, current, urgent=False)
        seen.append(current)
    assert seen == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    assert next_interval(ADAPTIVE, 60.0, urgent=True) == 5.0
    assert next_interval(Interval.fixed(30.0), 30.0, urgent=False) == 30.0


def _result(status: Status, value: float | None, metric: str = "used_percent") -> CheckResult:
    measurements = {} if value is None else {metric: value}
    return CheckResult(
        host="h",
        play="p",
        name="c",
        module="memory",
        status=status,
        metric=metric,
        value=value,
        measurements=measurements,
        units={metric: "%"},
    )


def _thresholds(warn: str | None, crit: str | None = None) -> list[MetricThresholds]:
    return [
        MetricThresholds(
            "used_percent",
            warn=parse_range(warn) if warn else None,
            crit=parse_range(crit) if crit else None,
        )
    ]


def test_failing_checks_are_urgent_and_retry_at_min_until_for_decides():
    # Nagios' retry_interval: a newly failing check is re-checked at min
    thresholds = _thresholds("80", "90")
    failing = _result(Status.CRITICAL, 95.0)
    assert is_urgent(failing, thresholds, [10.0, 10.0, 10.0])
    assert next_interval(ADAPTIVE, 60.0, is_urgent(failing, thresholds, [])) == 5.0
    assert is_urgent(_result(Status.UNKNOWN, None), thresholds, [])


def test_near_a_threshold_within_twenty_percent_also_for_nagios_ranges():
    units = {"used_percent": "%"}
    assert near_threshold(_thresholds("80"), {"used_percent": 70.0}, units)  # 80 - 20% = 64
    assert not near_threshold(_thresholds("80"), {"used_percent": 60.0}, units)
    # "10:" alerts below 10: 11.5 is within 20% of the bound 10
    assert near_threshold(_thresholds("10:"), {"used_percent": 11.5}, units)
    assert not near_threshold(_thresholds("10:"), {"used_percent": 50.0}, units)
    # "@40:60" alerts inside: 35 is near its lower bound, 100 is far from both
    assert near_threshold(_thresholds("@40:60"), {"used_percent": 35.0}, units)
    assert not near_threshold(_thresholds("@40:60"), {"used_percent": 100.0}, units)
    # the crit bound counts too; a metric without a value is not near anything
    assert near_threshold(_thresholds("200", "100"), {"used_percent": 85.0}, units)
    assert not near_threshold(_thresholds("80"), {}, units)
    ok = _result(Status.OK, 70.0)
    assert is_urgent(ok, _thresholds("80"), [70.0, 70.0, 70.0])


def test_a_value_that_moves_beyond_its_recent_variation_is_urgent():
    steady = [50.0, 51.0, 49.0, 50.0, 50.5, 49.5]
    assert not moved(50.8, steady)
    assert moved(58.0, steady)  # far beyond mean ± 2σ and the 5% floor
    assert not moved(58.0, steady[:2])  # too few values to tell
    flat = [100.0] * 5
    assert not moved(103.0, flat)  # within the 5% floor of a flat series
    assert moved(110.0, flat)
    far = _thresholds("1000")
    assert not is_urgent(_result(Status.OK, 50.2), far, steady)
    assert is_urgent(_result(Status.OK, 58.0), far, steady)


# -- the circuit breaker -------------------------------------------------------------------


def test_backoff_doubles_from_the_interval_and_is_capped():
    assert [backoff_seconds(n, 10.0, 300.0) for n in range(1, 7)] == [
        20.0,
        40.0,
        80.0,
        160.0,
        300.0,
        300.0,
    ]
    assert backoff_seconds(10_000, 10.0, 300.0) == 300.0


def test_breaker_opens_half_opens_after_the_backoff_and_closes_on_success():
    clock = 1000.0
    breaker = Breaker()
    assert breaker.state(clock) == CLOSED
    assert breaker.record_failure(clock, 5.0, 300.0, "refused", "connection refused") == 10.0
    assert breaker.state(clock + 9.9) == OPEN
    assert breaker.state(clock + 10.0) == HALF_OPEN
    clock += 10.0
    assert breaker.record_failure(clock, 5.0, 300.0, "refused", "again") == 20.0  # probe failed
    assert breaker.state(clock + 19) == OPEN
    assert (breaker.failures, breaker.reason) == (2, "refused")
    assert breaker.record_success() is True
    assert breaker.state(clock) == CLOSED
    assert breaker.record_success() is False


# -- interval: in the playbook -------------------------------------------------------------


def test_interval_on_checks_and_plays_with_the_command_line_default(tmp_path):
    plan = plan_from_text(
        tmp_path,
        "- hosts: all\n  interval: 10s\n  checks:\n"
        "    - {name: a, memory: {}}\n"
        "    - {name: b, memory: {}, interval: {min: 5s, max: 1m}}\n"
        "- hosts: all\n  checks:\n    - {name: c, memory: {}}\n",
        LOCAL,
        interval=42.0,
    )
    intervals = {c.identity.name: c.interval for c in plan.hosts[0].checks}
    assert intervals == {
        "a": Interval(10.0, 10.0),
        "b": Interval(5.0, 60.0),
        "c": Interval(42.0, 42.0),
    }


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("interval: 100ms", "3:28", "out of range: allowed 1s to 1d"),
        ("interval: {min: 1m, max: 5s}", "3:34", "min (1m) is longer than max (5s)"),
        ("interval: {min: 5s}", "3:28", "max missing"),
        ("interval: {min: 5s, max: 1m, step: 2}", "3:47", "unknown key 'step' in interval"),
        ("interval: often", "3:28", "is not a duration"),
    ],
)
def test_a_bad_interval_is_one_error_at_its_line(tmp_path, text, where, words):
    done = validate_text(tmp_path, f"- hosts: localhost\n  checks:\n    - {{load: {{}}, {text}}}\n")
    assert done.returncode == 5
    assert f"p.yml:{where}:" in done.stderr and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
