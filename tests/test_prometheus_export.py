"""One-shot runs exported to Prometheus: `-r prometheus:PATH` read by the real node_exporter's
textfile collector, and the metric families themselves (units, statuses, probes, hostile
names) read back with prometheus_client's own parser."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from helpers import REPO, run_checkrun
from prometheus_client.parser import text_string_to_metric_families
from prometheus_servers import running_node_exporter, scrape

from checkrunner import catalog
from checkrunner.report.prometheus import base_unit, exposition
from checkrunner.results import CheckResult, HostResult, RunResult, Status

HOSTILE = 'evil "name" \\ {a="b"}\n# TYPE x counter\nend'


def _samples(families: dict, name: str) -> list:
    return families[name].samples if name in families else []


def _by_check(families: dict, name: str, check: str) -> list:
    return [s for s in _samples(families, name) if s.labels.get("check") == check]


def _playbook(tmp_path: Path, port: int, closed: int) -> Path:
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        f"""
- name: edge
  hosts: localhost
  checks:
    - name: health
      http: {{url: "http://127.0.0.1:{port}/health"}}
    - name: broken
      http: {{url: "http://127.0.0.1:{port}/broken"}}
    - name: closed port
      tcp: {{host: 127.0.0.1, port: {closed}}}
    - name: memory
      memory: {{}}
      warn: 99.9
    - name: never
      memory: {{}}
      when: false
    - name: {json.dumps(HOSTILE)}
      file: {{path: /tmp}}
"""
    )
    return playbook


def test_node_exporter_reads_the_textfile(tmp_path, http_server, closed_port):
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    out = textfiles / "checkrun.prom"
    done = run_checkrun(
        _playbook(tmp_path, http_server.port, closed_port), "-r", f"prometheus:{out}", "--no-state"
    )
    assert done.returncode == 2, done.stderr  # the broken endpoint is CRITICAL
    assert stat.S_IMODE(os.stat(out).st_mode) & 0o044  # readable by node_exporter's user
    assert [p.name for p in textfiles.iterdir()] == ["checkrun.prom"]  # no temp file left

    with running_node_exporter(tmp_path / "node", textfiles) as url:
        families = scrape(f"{url}/metrics")
    # node_exporter says whether the file parsed: an error here names a bad exposition.
    errors = _samples(families, "node_textfile_scrape_error")
    assert errors and errors[0].value == 0.0

    status = {s.labels["check"]: s.value for s in _samples(families, "checkrun_check_status")}
    assert status == {"health": 0.0, "broken": 2.0, "closed port": 2.0, "memory": 0.0, HOSTILE: 0.0}
    assert "never" not in status  # SKIPPED: no sample

    (health,) = _by_check(families, "probe_success", "health")
    assert health.value == 1.0
    assert health.labels["instance"] == f"http://127.0.0.1:{http_server.port}/health"
    assert health.labels["host"] == "localhost"
    (broken,) = _by_check(families, "probe_http_status_code", "broken")
    assert broken.value == 500.0
    (closed,) = _by_check(families, "probe_success", "closed port")
    assert closed.value == 0.0 and closed.labels["instance"] == f"127.0.0.1:{closed_port}"
    assert _by_check(families, "probe_duration_seconds", "health")[0].value > 0

    used = [
        s
        for s in _by_check(families, "checkrun_check_value", "memory")
        if s.labels["metric"] == "used_percent"
    ]
    assert used[0].labels["unit"] == "ratio" and 0 < used[0].value < 1
    total = [
        s
        for s in _by_check(families, "checkrun_check_value", "memory")
        if s.labels["metric"] == "total"
    ]
    assert total[0].labels["unit"] == "bytes" and total[0].value > 1e6
    assert _by_check(families, "checkrun_check_duration_seconds", "memory")[0].value >= 0
    assert [s.value for s in _samples(families, "checkrun_host_up")] == [1.0]
    assert _samples(families, "checkrun_run_finished_timestamp_seconds")[0].value > 1.7e9


def test_node_exporter_reads_the_example_playbooks_textfile(tmp_path):
    textfiles = tmp_path / "textfiles"
    out = textfiles / "localhost.prom"
    done = run_checkrun(
        REPO / "playbooks" / "localhost.yml", "-r", f"prometheus:{out}", "--no-state"
    )
    assert done.returncode in (0, 2, 3), done.stderr  # whatever this machine's state is
    planned = run_checkrun(REPO / "playbooks" / "localhost.yml", "--list-checks").stdout
    with running_node_exporter(tmp_path / "node", textfiles) as url:
        families = scrape(f"{url}/metrics")
    assert _samples(families, "node_textfile_scrape_error")[0].value == 0.0
    checks = {s.labels["check"] for s in _samples(families, "checkrun_check_status")}
    assert checks and all(f"] {check} (" in planned for check in checks)
    assert {s.labels["host"] for s in _samples(families, "checkrun_check_status")} == {"localhost"}


def test_a_hostile_host_and_check_name_stay_label_values():
    host = HostResult(host='db"1\\\n} 1\nfake_metric 1', started_at=1000.0)
    host.checks = [
        CheckResult(
            host=host.host,
            play="p\udc80lay",  # a lone surrogate, as JSON from a target may hold
            name=HOSTILE,
            module="tcp",
            status=Status.WARNING,
            measurements={"success": 1.0, "duration": 0.25, "cert_days_left": 2.0},
            units={"duration": "s", "cert_days_left": "d"},
            facts={"address": 'x"\n:1'},
        )
    ]
    text = exposition(RunResult("p.yml", 0.0, 1.0, [host])).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "fake_metric" not in families
    (status,) = families["checkrun_check_status"].samples
    assert status.labels == {"host": host.host, "play": "p\\udc80lay", "check": HOSTILE}
    assert status.value == 1.0
    (expiry,) = families["probe_ssl_earliest_cert_expiry"].samples
    assert expiry.value == 1000.0 + 2 * 86400
    assert expiry.labels["target"] == 'x"\n:1'
    values = {
        s.labels["metric"]: (s.value, s.labels["unit"])
        for s in families["checkrun_check_value"].samples
    }
    assert values["cert_days_left"] == (2 * 86400.0, "seconds")


def test_unreachable_host_is_down_and_keeps_no_status():
    host = HostResult(host="gone", reachable=False, reason="refused")
    text = exposition(RunResult("p.yml", 0.0, 1.0, [host])).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert [(s.labels, s.value) for s in families["checkrun_host_up"].samples] == [
        ({"host": "gone"}, 0.0)
    ]
    assert families["checkrun_check_status"].samples == []


def test_probe_declarations_name_what_their_module_returns():
    declaring = {name: info for name, info in catalog.all_modules().items() if info.probe}
    assert set(declaring) == {"http", "tcp", "prometheus"}
    for info in declaring.values():
        measured = {info.probe[key] for key in info.probe if key != "target"}
        assert measured <= set(info.measurements), info.name
        assert {"success", "duration"} <= set(info.probe)
        assert set(info.probe["target"]) <= set(info.facts), info.name


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        ("s", 2.0, (2.0, "seconds")),
        ("ms", 250.0, (0.25, "seconds")),
        ("d", 1.0, (86400.0, "seconds")),
        ("%", 50.0, (0.5, "ratio")),
        ("B", 3.0, (3.0, "bytes")),
        ("KB", 2.0, (2000.0, "bytes")),
        ("MiB", 1.0, (1024.0**2, "bytes")),
        ("/min", 60.0, (1.0, "per_second")),
        ("/30s", 30.0, (1.0, "per_second")),
        ("", 7.0, (7.0, "")),
        ("c", 7.0, (7.0, "c")),
    ],
)
def test_values_in_base_units(unit, value, expected):
    factor, name = base_unit(unit)
    assert (pytest.approx(value * factor), name) == expected


def test_prometheus_report_to_stdout_is_the_exposition(tmp_path):
    playbook = tmp_path / "p.yml"
    playbook.write_text("- hosts: localhost\n  checks:\n    - name: mem\n      memory: {}\n")
    done = run_checkrun(playbook, "-r", "prometheus", "--no-state")
    assert done.returncode == 0, done.stderr
    families = {f.name: f for f in text_string_to_metric_families(done.stdout)}
    assert families["checkrun_check_status"].samples[0].labels["check"] == "mem"
