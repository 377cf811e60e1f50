"""The real Prometheus server scraping a running `checkrun watch`, every assertion made
through Prometheus' HTTP query API (/api/v1/query), as a dashboard or an alert rule sees it.

One watch process (module scope) checks two real sshd hosts (one sshd each: one has its
sessions killed, the other is crashed and restarted), the control node itself (`here`) and a
local host whose check outlasts its interval (`slow`), every second: an `http` check against
an HTTP service this test controls (made to answer 500, then 200 again), a `tcp` check and a
`memory` check. A second watch serves /metrics behind basic auth (`--web-config`), scraped
with the right and the wrong password. One Prometheus scrapes both every second.

Waits poll Prometheus with generous limits; no assertion depends on a timing band.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import jsonschema
import pytest
from helpers import REPO, wait_for
from prometheus_servers import get, query, running_prometheus, targets
from recorder import Recorder
from sshd import SSHServer, free_port, kill_sessions, restart_sshd, running_sshd, sshd_available
from watching import WatchProcess

SCHEMA = json.loads((REPO / "docs" / "json-report.schema.json").read_text())
CRASHED_ADDRESS, KILLED_ADDRESS = "127.0.44.1", "127.0.44.2"
PROBED_HOSTS = ("crashed", "killed", "here")  # the hosts of play "fleet"
FLEET_CHECKS = ("health", "port", "memory")
USER, PASSWORD = "prometheus", "correct horse battery"
WAIT = 90.0  # seconds: the longest any wait for Prometheus to see a change may take


@dataclass
class Fleet:
    crashed: SSHServer  # the sshd of host "crashed" (stopped and restarted)
    killed: SSHServer  # the sshd of host "killed" (its sessions killed)
    service: Recorder  # the HTTP service the `http` and `tcp` checks probe
    playbook: Path
    good_playbook: str
    watch: WatchProcess
    base: str  # http://127.0.0.1:PORT of the watch
    prometheus: str


def _playbook(service: Recorder) -> str:
    return f"""- name: fleet
  hosts: crashed:killed:here
  interval: 1s
  checks:
    - name: health
      http: {{url: "{service.url("/health")}", timeout: 10s}}
    - name: port
      tcp: {{host: 127.0.0.1, port: {service.port}, timeout: 10s}}
    - name: memory
      memory: {{}}
- name: naps
  hosts: slow
  checks:
    - name: nap
      command: {{cmd: "sleep 2.5"}}
      interval: 1s
"""


def _inventory(path: Path, servers: dict[str, SSHServer]) -> Path:
    hosts = "".join(
        f"    {name}: {{ansible_host: {server.addresses[0]}, ansible_port: {server.port}, "
        f"ansible_user: {server.user}, ansible_ssh_private_key_file: {server.client_key}}}\n"
        for name, server in servers.items()
    )
    hosts += "    here: {ansible_connection: local}\n    slow: {ansible_connection: local}\n"
    path.write_text(f"all:\n  hosts:\n{hosts}")
    return path


def _known_hosts(path: Path, servers: list[SSHServer]) -> Path:
    path.write_text("".join(s.known_hosts_line(s.addresses[0]) + "\n" for s in servers))
    return path


def _scrape_config(job: str, port: int, extra: str = "") -> str:
    return f"""  - job_name: {job}
    honor_labels: true
{extra}    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def _started(stack: ExitStack, *args, listen: str) -> WatchProcess:
    watch = stack.enter_context(WatchProcess(*args, listen=listen))
    stack.callback(_stop, watch)
    watch.wait_event("listening")
    return watch


def _stop(watch: WatchProcess) -> None:
    """SIGTERM; a watch that does not stop is killed on leaving its context."""
    if watch.process.poll() is None:
        code = watch.stop()
        assert code == 0, (code, watch.other[-20:])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[Fleet]:
    if not sshd_available():
        pytest.skip("sshd is not installed")
    tmp = tmp_path_factory.mktemp("watch_prometheus")
    with ExitStack() as stack:
        crashed = stack.enter_context(running_sshd(tmp / "sshd-crashed", [CRASHED_ADDRESS]))
        killed = stack.enter_context(running_sshd(tmp / "sshd-killed", [KILLED_ADDRESS]))
        service = stack.enter_context(Recorder())
        inventory = _inventory(tmp / "inventory.yml", {"crashed": crashed, "killed": killed})
        playbook = tmp / "fleet.yml"
        playbook.write_text(_playbook(service))
        port = free_port()
        watch = _started(
            stack,
            playbook,
            "-i",
            inventory,
            "--state",
            tmp / "state.db",
            "--known-hosts",
            _known_hosts(tmp / "known_hosts", [crashed, killed]),
            "--ssh-config",
            "none",
            "--backoff-max",
            "4s",
            "--stop-grace",
            "1s",
            listen=f"127.0.0.1:{port}",
        )
        guarded = _guarded_watch(stack, tmp)
        scrape_configs = _scrape_config("checkrun", port) + "".join(
            _scrape_config(
                job, guarded, f'    basic_auth: {{username: {USER}, password: "{pw}"}}\n'
            )
            for job, pw in (("right", PASSWORD), ("wrong", "not it"))
        )
        prometheus = stack.enter_context(running_prometheus(tmp / "prometheus", scrape_configs))
        yield Fleet(
            crashed,
            killed,
            service,
            playbook,
            playbook.read_text(),
            watch,
            f"http://127.0.0.1:{port}",
            prometheus,
        )


def _guarded_watch(stack: ExitStack, tmp: Path) -> int:
    """A watch of the control node whose /metrics needs basic auth; its port."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    web_config = tmp / "web.yml"
    web_config.write_text(f"basic_auth_users:\n  {USER}: {hashed}\n")
    playbook = tmp / "guarded.yml"
    playbook.write_text("- hosts: localhost\n  checks:\n    - {memory: {}, interval: 1s}\n")
    port = free_port()
    _started(stack, playbook, "--no-state", "--web-config", web_config, listen=f"127.0.0.1:{port}")
    return port


# -- reading Prometheus ------------------------------------------------------------------


def of(name: str, matchers: str = "", job: str = "checkrun") -> str:
    """The selector of `name` scraped from `job` (the main watch unless told), with more
    label `matchers` ('check="health"')."""
    return f'{name}{{job="{job}"{", " + matchers if matchers else ""}}}'


def series(fleet: Fleet, promql: str, *keys: str) -> dict[tuple[str, ...], float]:
    """The instant vector `promql` evaluates to now, as {values of the labels `keys`: value}."""
    return {
        tuple(r["metric"].get(k, "") for k in keys): float(r["value"][1])
        for r in query(fleet.prometheus, promql)
    }


def value(fleet: Fleet, promql: str) -> float | None:
    """The single value of `promql`, None when it has no sample."""
    found = list(series(fleet, promql).values())
    assert len(found) <= 1, (promql, found)
    return found[0] if found else None


def eventually(condition, what: str):
    return wait_for(condition, what, timeout=WAIT)


def per_host(fleet: Fleet, promql: str) -> dict[str, float]:
    return {host: v for (host,), v in series(fleet, promql, "host").items()}


def checks_of(fleet: Fleet, host: str) -> dict[str, float]:
    """check -> checkrun_check_status of `host`."""
    found = series(fleet, of("checkrun_check_status", f'host="{host}"'), "check")
    return {check: v for (check,), v in found.items()}


ROUNDS = f"sum({of('checkrun_round_duration_seconds_count')})"


# -- the tests -----------------------------------------------------------------------------


def test_every_check_of_every_host_is_scraped_with_its_labels_and_units(fleet):
    expected = {(h, "fleet", c): 0.0 for h in PROBED_HOSTS for c in FLEET_CHECKS}
    expected[("slow", "naps", "nap")] = 0.0
    keys = ("host", "play", "check")
    eventually(
        lambda: series(fleet, of("checkrun_check_status"), *keys) == expected,
        "every check OK in Prometheus",
    )
    every_host = {*PROBED_HOSTS, "slow"}
    assert per_host(fleet, of("checkrun_host_up")) == dict.fromkeys(every_host, 1.0)
    # counters and breaker gauges from 0 on, before anything happened to a host
    for counter in ("checkrun_reconnects_total", "checkrun_skipped_rounds_total"):
        assert set(per_host(fleet, of(counter))) == every_host, counter
    for closed in ("checkrun_host_backoff_seconds", "checkrun_host_consecutive_failures"):
        assert per_host(fleet, of(closed)) == dict.fromkeys(every_host, 0.0), closed

    values = series(fleet, of("checkrun_check_value"), "host", "check", "metric", "unit")
    for host in PROBED_HOSTS:
        assert 0 < values[(host, "memory", "used_percent", "ratio")] < 1  # a % as a ratio
        assert values[(host, "memory", "total", "bytes")] > 2**20
        assert values[(host, "health", "success", "")] == 1.0
        assert 0 < values[(host, "health", "latency", "seconds")] < 10  # the timeout
        assert values[(host, "port", "success", "")] == 1.0
        assert 0 < values[(host, "port", "duration", "seconds")] < 10
    durations = series(fleet, of("checkrun_check_duration_seconds"), "host", "check")
    assert set(durations) == {(h, c) for h, _, c in expected}
    assert durations[("slow", "nap")] >= 2.5  # the sleep ran on the target
    intervals = series(fleet, of("checkrun_check_interval_seconds"), *keys)
    assert intervals == dict.fromkeys(expected, 1.0)


def test_http_and_tcp_checks_export_blackbox_exporters_series(fleet):
    health = fleet.service.url("/health")
    port = f"127.0.0.1:{fleet.service.port}"
    keys = ("host", "check", "instance", "target")
    expected = {(h, "health", health, health): 1.0 for h in PROBED_HOSTS}
    expected.update({(h, "port", port, port): 1.0 for h in PROBED_HOSTS})
    eventually(lambda: series(fleet, of("probe_success"), *keys) == expected, "probe_success")
    codes = series(fleet, of("probe_http_status_code"), "host", "instance")
    assert codes == {(h, health): 200.0 for h in PROBED_HOSTS}
    probe_durations = series(fleet, of("probe_duration_seconds"), *keys)
    assert set(probe_durations) == set(expected)
    assert all(0 < seconds < 10 for seconds in probe_durations.values()), probe_durations


def test_a_broken_endpoint_goes_critical_and_comes_back(fleet):
    health = 'check="health"'
    try:
        fleet.service.respond("/health", 500, b"database down")
        eventually(
            lambda: (
                per_host(fleet, of("checkrun_check_status", health))
                == dict.fromkeys(PROBED_HOSTS, 2.0)
            ),
            "the health check CRITICAL on every host",
        )
        eventually(
            lambda: (
                per_host(fleet, of("probe_http_status_code", health))
                == dict.fromkeys(PROBED_HOSTS, 500.0)
            ),
            "the 500 as probe_http_status_code",
        )
        assert per_host(fleet, of("probe_success", health)) == dict.fromkeys(PROBED_HOSTS, 0.0)
        # the other checks of the same hosts are untouched
        others = series(fleet, of("checkrun_check_status", 'check!="health"'), "check")
        assert set(others.values()) == {0.0}, others
    finally:
        fleet.service.respond("/health", 200, b"ok")
    eventually(
        lambda: (
            per_host(fleet, of("checkrun_check_status", health)) == dict.fromkeys(PROBED_HOSTS, 0.0)
        ),
        "the health check OK again",
    )
    assert per_host(fleet, of("probe_success", health)) == dict.fromkeys(PROBED_HOSTS, 1.0)


def test_the_round_histogram_and_skipped_rounds_rise(fleet):
    first = eventually(lambda: value(fleet, ROUNDS), "rounds counted")
    eventually(lambda: (value(fleet, ROUNDS) or 0) >= first + 5, "five more rounds")
    found = series(fleet, of("checkrun_round_duration_seconds_bucket"), "le")
    buckets = {le: v for (le,), v in found.items()}
    assert buckets["+Inf"] == value(fleet, ROUNDS)
    assert buckets["0.1"] <= buckets["1.0"] <= buckets["5.0"] <= buckets["+Inf"]
    assert buckets["1.0"] < buckets["5.0"]  # the slow host's rounds take 2.5 s and more
    # the slow host's 2.5 s nap outlasts its 1 s interval: rounds skipped, never stacked
    skipped = of("checkrun_skipped_rounds_total", 'host="slow"')
    before = eventually(lambda: value(fleet, skipped), "skipped rounds of the slow host")
    eventually(lambda: (value(fleet, skipped) or 0) > before, "more skipped rounds")


def test_killed_sessions_are_reconnected_and_counted(fleet):
    reconnects = of("checkrun_reconnects_total", 'host="killed"')
    up = of("checkrun_host_up", 'host="killed"')
    eventually(lambda: value(fleet, up) == 1.0, "the host up")
    assert value(fleet, reconnects) == 0.0  # exported before the first reconnect
    kill_sessions(fleet.killed)
    # what an alert rule asks: the first reconnect is an increase, not a series appearing
    eventually(
        lambda: (value(fleet, f"increase({reconnects}[1m])") or 0) > 0, "a reconnect counted"
    )
    assert fleet.watch.of("reconnected", host="killed")
    eventually(
        lambda: checks_of(fleet, "killed") == dict.fromkeys(FLEET_CHECKS, 0.0),
        "the killed host's checks OK again",
    )
    assert value(fleet, up) == 1.0


def test_a_host_whose_sshd_is_down_backs_off_and_closes_when_it_is_back(fleet):
    backoff = of("checkrun_host_backoff_seconds", 'host="crashed"')
    failures = of("checkrun_host_consecutive_failures", 'host="crashed"')
    up = of("checkrun_host_up", 'host="crashed"')
    reconnects = of("checkrun_reconnects_total", 'host="crashed"')
    eventually(lambda: value(fleet, up) == 1.0, "the host up")
    reconnected = value(fleet, reconnects) or 0.0
    fleet.crashed.crash()
    try:
        eventually(lambda: (value(fleet, backoff) or 0) > 0, "a backoff while sshd is down")
        eventually(lambda: value(fleet, up) == 0.0, "the host down")
        eventually(lambda: (value(fleet, failures) or 0) >= 2, "two failures in a row")
        # what the host measured before it went down is no news: its checks' series end (as
        # a target's do when Prometheus cannot scrape it), none frozen at its last value
        eventually(lambda: checks_of(fleet, "crashed") == {}, "the host's checks to go stale")
        assert not series(fleet, of("probe_success", 'host="crashed"'))
        assert not series(fleet, of("checkrun_check_value", 'host="crashed"'))
        # /api/v1/results keeps them, under the host's UNREACHABLE
        document = json.loads(get(f"{fleet.base}/api/v1/results")[1])
        jsonschema.validate(document, SCHEMA)
        (host,) = [h for h in document["hosts"] if h["host"] == "crashed"]
        assert host["reachable"] is False and host["reason"] == "refused", host
        assert {c["name"] for c in host["checks"]} == set(FLEET_CHECKS)
        others = per_host(fleet, of("checkrun_host_up", 'host!="crashed"'))
        assert others == {"killed": 1.0, "here": 1.0, "slow": 1.0}  # the others go on
    finally:
        restart_sshd(fleet.crashed)
    eventually(lambda: value(fleet, backoff) == 0.0, "the circuit closed again")
    eventually(lambda: value(fleet, up) == 1.0, "the host up again")
    assert value(fleet, failures) == 0.0
    eventually(
        lambda: checks_of(fleet, "crashed") == dict.fromkeys(FLEET_CHECKS, 0.0),
        "the crashed host's checks OK again",
    )
    assert (value(fleet, reconnects) or 0.0) > reconnected  # the restarted host, reconnected


def test_sighup_with_a_broken_then_a_good_playbook(fleet):
    successful = of("checkrun_config_last_reload_successful")
    since = of("checkrun_config_last_reload_success_timestamp_seconds")
    eventually(lambda: value(fleet, successful) == 1.0, "the first config loaded")
    loaded_at = value(fleet, since)
    try:
        fleet.playbook.write_text(fleet.good_playbook + "      retries: many\n")
        fleet.watch.signal(signal.SIGHUP)
        eventually(lambda: value(fleet, successful) == 0.0, "the failed reload exported")
        assert value(fleet, since) == loaded_at
        failed = fleet.watch.wait_event("reload-failed")
        assert f"{fleet.playbook}:" in failed["message"] and "retries" in failed["message"]
        rounds = value(fleet, ROUNDS) or 0.0  # the old configuration runs on
        eventually(lambda: (value(fleet, ROUNDS) or 0) > rounds + 3, "rounds after the failure")
    finally:
        fleet.playbook.write_text(fleet.good_playbook)
        fleet.watch.signal(signal.SIGHUP)
    eventually(lambda: value(fleet, successful) == 1.0, "the good reload exported")
    assert (value(fleet, since) or 0) > (loaded_at or 0)
    fleet.watch.wait_event("reload", message="configuration applied")


def test_health_readiness_and_results_of_the_running_watch(fleet):
    assert get(f"{fleet.base}/healthz") == (200, "ok\n")
    # ready once every host has had its first round (run alone, this test may come first)
    eventually(lambda: get(f"{fleet.base}/-/ready")[0] == 200, "ready")
    status, body = get(f"{fleet.base}/api/v1/results")
    assert status == 200
    document = json.loads(body)
    jsonschema.validate(document, SCHEMA)
    checks = {(h["host"], c["name"]): c["status"] for h in document["hosts"] for c in h["checks"]}
    expected = {(h, c): "OK" for h in PROBED_HOSTS for c in FLEET_CHECKS}
    assert checks == {**expected, ("slow", "nap"): "OK"}


def test_a_basic_auth_watch_is_scraped_with_the_right_password_only(fleet):
    right, wrong = 'up{job="right"}', 'up{job="wrong"}'
    eventually(
        lambda: value(fleet, right) == 1.0 and value(fleet, wrong) == 0.0,
        "one scrape to succeed and the other to be refused",
    )
    assert value(fleet, of("checkrun_check_status", job="right")) == 0.0
    assert value(fleet, of("checkrun_check_status", job="wrong")) is None
    (refused,) = [t for t in targets(fleet.prometheus) if t["labels"]["job"] == "wrong"]
    assert "401" in refused["lastError"]


def test_ready_only_once_every_host_has_had_its_first_round(tmp_path):
    """/-/ready says 200 only when /api/v1/results has a result of every host: a host
    whose first round takes 2 s keeps it at 503 until then."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        "    quick: {ansible_connection: local, nap: 0}\n"
        "    sleepy: {ansible_connection: local, nap: 2}\n"
    )
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- hosts: all\n  checks:\n"
        "    - {name: nap, command: {cmd: 'sleep {{ nap }}', shell: true}, interval: 1s}\n"
    )
    with ExitStack() as stack:
        watch = _started(stack, playbook, "-i", inventory, "--no-state", listen="127.0.0.1:0")
        base = watch.wait_event("listening")["message"].removesuffix("/metrics")
        seen_not_ready = False
        deadline = time.monotonic() + WAIT
        while get(f"{base}/-/ready")[0] != 200:
            seen_not_ready = True
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        document = json.loads(get(f"{base}/api/v1/results")[1])
        assert {h["host"] for h in document["hosts"]} == {"quick", "sleepy"}
        assert seen_not_ready
