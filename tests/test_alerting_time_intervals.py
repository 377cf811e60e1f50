"""Alertmanager's time intervals (timeinterval package, 0.25): what each field means, and that
a route's mute_time_intervals / active_time_intervals hold its notifications in a real run."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import run_checkrun
from recorder import Recorder

from checkrunner.alerting.timeinterval import parse_interval

UTC = dt.timezone.utc


def _at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("interval", "moment", "inside"),
    [
        ({"times": [{"start_time": "22:00", "end_time": "24:00"}]}, _at(2024, 5, 1, 23, 59), True),
        ({"times": [{"start_time": "22:00", "end_time": "24:00"}]}, _at(2024, 5, 1, 21, 59), False),
        ({"times": [{"start_time": "09:00", "end_time": "17:00"}]}, _at(2024, 5, 1, 17, 0), False),
        ({"weekdays": ["monday:friday"]}, _at(2024, 6, 1, 12), False),  # a Saturday
        ({"weekdays": ["Sunday"]}, _at(2024, 6, 2, 12), True),
        ({"days_of_month": ["-1"]}, _at(2024, 2, 29), True),  # leap year: the 29th is last
        ({"days_of_month": ["-1"]}, _at(2024, 2, 28), False),
        ({"days_of_month": ["-1"]}, _at(2023, 2, 28), True),
        ({"days_of_month": ["-7:-1"]}, _at(2024, 4, 24), True),  # April has 30 days
        ({"days_of_month": ["-7:-1"]}, _at(2024, 4, 23), False),
        ({"days_of_month": ["31"]}, _at(2024, 4, 30), False),
        ({"days_of_month": ["1:-1"]}, _at(2024, 4, 30), True),
        ({"days_of_month": [1, "15:16"]}, _at(2024, 4, 16), True),
        ({"months": ["january:march", "december"]}, _at(2024, 12, 5), True),
        ({"months": ["4:5"]}, _at(2024, 6, 5), False),
        ({"years": ["2023:2024"]}, _at(2025, 1, 1), False),
        (
            {"times": [{"start_time": "22:00", "end_time": "24:00"}], "location": "Europe/Berlin"},
            _at(2024, 7, 1, 21, 30),  # 23:30 in Berlin (CEST)
            True,
        ),
        (
            {"times": [{"start_time": "22:00", "end_time": "24:00"}], "location": "Europe/Berlin"},
            _at(2024, 1, 1, 21, 30),  # 22:30 in Berlin (CET)
            True,
        ),
        (
            {"times": [{"start_time": "22:00", "end_time": "24:00"}], "location": "Europe/Berlin"},
            _at(2024, 7, 1, 19, 30),
            False,
        ),
        (
            {
                "weekdays": ["saturday", "sunday"],
                "times": [{"start_time": "00:00", "end_time": "06:00"}],
            },
            _at(2024, 6, 1, 5, 59),
            True,
        ),
        ({}, _at(2024, 6, 1), True),  # no fields: always
    ],
)
def test_time_interval_semantics(interval, moment, inside):
    assert parse_interval(interval).contains(moment) is inside


def _playbook(tmp_path, hook_url: str, mute_years: str, active_years: str):
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        f"""plays:
  - name: app
    hosts: localhost
    checks:
      - {{name: flag present, file: {{path: {tmp_path / "missing"}}}}}
time_intervals:
  - {{name: maintenance, time_intervals: [{{years: ['{mute_years}']}}]}}
  - {{name: office, time_intervals: [{{years: ['{active_years}']}}]}}
receivers:
  - {{name: muted, webhook_configs: [{{url: '{hook_url}/muted'}}]}}
  - {{name: active, webhook_configs: [{{url: '{hook_url}/active'}}]}}
  - {{name: always, webhook_configs: [{{url: '{hook_url}/always'}}]}}
route:
  receiver: always
  routes:
    - {{matchers: [alertname=~".+"], receiver: muted, mute_time_intervals: [maintenance], continue: true}}
    - {{matchers: [alertname=~".+"], receiver: active, active_time_intervals: [office], continue: true}}
    - {{matchers: [alertname=~".+"], receiver: always}}
"""
    )
    return playbook


def test_routes_hold_notifications_while_muted_and_tell_them_afterwards(tmp_path):
    this_year = dt.datetime.now(UTC).year
    state = tmp_path / "state.db"
    with Recorder() as hook:
        # Inside the maintenance window, outside office hours: only `always` is told.
        playbook = _playbook(tmp_path, hook.base_url, str(this_year), str(this_year + 5))
        assert run_checkrun(playbook, "--state", state).returncode == 2
        assert len(hook.requests("/always")) == 1
        assert hook.requests("/muted") == [] and hook.requests("/active") == []
        # The window is over and office hours began: what was held is told now, once.
        playbook = _playbook(tmp_path, hook.base_url, str(this_year + 5), str(this_year))
        assert run_checkrun(playbook, "--state", state).returncode == 2
        assert len(hook.requests("/muted")) == 1 and len(hook.requests("/active")) == 1
        assert len(hook.requests("/always")) == 1  # not repeated before repeat_interval
        [message] = hook.requests("/muted")
        assert message.json()["alerts"][0]["labels"]["alertname"] == "flag present"
