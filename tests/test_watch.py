"""`checkrun watch` as a process: rounds on real sshd hosts and locally, a hung host skipped
and counted while the others go on, the circuit breaker against an sshd that is stopped and
restarted, adaptive intervals, SIGTERM during a round with a log writer running (every line
counted exactly once across watch and a later run), SIGHUP with a broken and a good playbook.

What the process does is read from its JSON events log on stderr, its /metrics (WatchStatus,
from branch prom), files its checks write (each run of a `command` check appends a line),
and the state database. Waits poll with generous limits; no assertion depends on a tight timing band.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Writer, run_checkrun, wait_for
from recorder import Recorder
from sshd import SSHServer, restart_sshd, running_sshd, sshd_available
from watching import WatchProcess

SSH_ADDRESSES = ["127.0.41.1", "127.0.41.2"]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def appender(name: str, folder: Path, interval: str, extra: str = "") -> str:
    """A check that appends a line with the time to folder/<host>.<name> on every run."""
    return (
        f"    - name: {name}\n"
        f"      command: {{cmd: 'date +%s.%N >> {folder}/{{{{ inventory_hostname }}}}.{name}',"
        f" shell: true}}\n"
        f"      interval: {interval}\n{extra}"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[SSHServer]:
    if not sshd_available():
        pytest.skip("sshd is not installed")
    with running_sshd(tmp_path_factory.mktemp("sshd"), SSH_ADDRESSES) as running:
        yield running


def ssh_inventory(tmp_path: Path, server: SSHServer, local: bool = True) -> Path:
    hosts = "".join(
        f"    t{n}: {{ansible_host: {address}, ansible_port: {server.port}, "
        f"ansible_user: {server.user}, ansible_ssh_private_key_file: {server.client_key}}}\n"
        for n, address in enumerate(server.addresses)
    )
    if local:
        hosts += "    here: {ansible_connection: local}\n"
    path = tmp_path / "inventory.yml"
    path.write_text(f"all:\n  hosts:\n{hosts}")
    return path


def ssh_args(tmp_path: Path, server: SSHServer) -> list[str]:
    known = server.write_known_hosts(tmp_path / "known_hosts")
    return ["--known-hosts", str(known), "--ssh-config", "none"]


def test_rounds_run_at_the_interval_on_sshd_hosts_and_locally(tmp_path, server):
    runs = tmp_path / "runs"
    runs.mkdir()
    playbook = tmp_path / "p.yml"
    playbook.write_text("- hosts: all\n  checks:\n" + appender("beat", runs, "1s"))
    inventory = ssh_inventory(tmp_path, server)
    args = [playbook, "-i", inventory, "--state", tmp_path / "s.db", *ssh_args(tmp_path, server)]
    with WatchProcess(*args) as watch:
        watch.wait_event("start")
        for host in ("t0", "t1", "here"):
            wait_for(lambda h=host: len(lines(runs / f"{h}.beat")) >= 5, f"5 rounds on {host}")
        assert watch.stop() == 0
    for host in ("t0", "t1", "here"):
        times = [float(t) for t in lines(runs / f"{host}.beat")]
        gaps = [b - a for a, b in zip(times, times[1:])]
        # one run per interval, never stacked; the first round's connecting delays when its
        # command runs, not the schedule (the second round keeps to the grid)
        assert min(gaps[1:]) > 0.8 and max(gaps[1:]) < 2.5, (host, gaps)
    assert watch.of("stop")[0]["abandoned"] == 0
    # (a first round slower than 1 s, connecting, may be skipped once: that is its job)
    assert not watch.of("backoff")


def test_a_hung_host_is_skipped_and_counted_while_the_others_go_on(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        "    slow: {ansible_connection: local, nap: 12}\n"
        "    fast: {ansible_connection: local, nap: 0}\n"
    )
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- hosts: all\n  checks:\n"
        "    - name: nap\n"
        "      command: {cmd: 'sleep {{ nap }}', shell: true}\n"
        "      interval: 1s\n" + appender("beat", runs, "1s")
    )
    args = [playbook, "-i", inventory, "--no-state", "--stop-grace", "1s"]
    with WatchProcess(*args) as watch:
        watch.wait_event("skipped", host="slow")
        # while slow hangs in its first round, fast goes on: five rounds, none skipped
        wait_for(lambda: len(lines(runs / "fast.beat")) >= 5, "five rounds on fast")
        # slow is still in its first round (its batch holds the 12 s nap): one beat at most
        assert len(lines(runs / "slow.beat")) <= 1
        wait_for(lambda: len(watch.of("skipped", host="slow")) >= 3, "three skipped rounds")
        assert not watch.of("skipped", host="fast")
        assert watch.metric("checkrun_skipped_rounds_total", host="slow") >= 3
        assert not watch.metric("checkrun_skipped_rounds_total", host="fast")
        stopping = time.monotonic()
        assert watch.stop() == 0  # the hung host is abandoned after the 1 s grace
        assert time.monotonic() - stopping < 20
        assert watch.of("stop")[0]["abandoned"] == 1


def alerts_listing(state: Path) -> str:
    done = run_checkrun("alerts", "--state", state)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_breaker_backs_off_an_unreachable_host_and_a_probe_closes_it(tmp_path_factory):
    if not sshd_available():
        pytest.skip("sshd is not installed")
    tmp_path = tmp_path_factory.mktemp("breaker")
    runs = tmp_path / "runs"
    runs.mkdir()
    with running_sshd(tmp_path / "sshd", ["127.0.42.1"]) as target:
        inventory = ssh_inventory(tmp_path, target)
        playbook = tmp_path / "p.yml"
        playbook.write_text("- hosts: all\n  checks:\n" + appender("beat", runs, "1s"))
        state = tmp_path / "s.db"
        args = [playbook, "-i", inventory, "--state", state, "--backoff-max", "4s"]
        with WatchProcess(*args, *ssh_args(tmp_path, target)) as watch:
            wait_for(lambda: len(lines(runs / "t0.beat")) >= 2, "two rounds on t0")
            target.crash()
            stopped_at = time.time()
            wait_for(lambda: len(watch.of("backoff", host="t0")) >= 4, "four failed attempts", 90)
            attempts = watch.of("backoff", host="t0")
            assert [a["failures"] for a in attempts[:4]] == [1, 2, 3, 4]
            said = [a["message"].rsplit("next attempt in ", 1)[1] for a in attempts[:4]]
            assert said == ["2s", "4s", "4s", "4s"]  # doubling from 1s, capped at 4s
            # between attempts the host is not tried: far fewer attempts than rounds due
            elapsed = time.time() - stopped_at
            assert len(attempts) <= elapsed / 2 + 1
            assert len(watch.of("half-open", host="t0")) >= 3
            listing = alerts_listing(state)
            assert "backing off (1):" in listing and "t0: " in listing, listing
            assert watch.metric("checkrun_host_backoff_seconds", host="t0") == 4.0
            assert watch.metric("checkrun_host_consecutive_failures", host="t0") >= 4
            assert watch.metric("checkrun_host_up", host="t0") == 0.0
            # the other hosts never waited for it
            before = len(lines(runs / "here.beat"))
            wait_for(lambda: len(lines(runs / "here.beat")) >= before + 3, "rounds on here")
            assert not watch.of("backoff", host="here")
            restart_sshd(target)
            watch.wait_event("closed", host="t0", timeout=30)
            beats = len(lines(runs / "t0.beat"))
            wait_for(lambda: len(lines(runs / "t0.beat")) >= beats + 2, "rounds on t0 again")
            assert "backing off (0):" in alerts_listing(state)
            assert not watch.metric("checkrun_host_backoff_seconds", host="t0")
            assert watch.metric("checkrun_host_up", host="t0") == 1.0
            assert watch.stop() == 0


def test_adaptive_intervals_sample_a_failing_check_faster_than_a_stable_one(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    playbook = tmp_path / "p.yml"
    adaptive = "{min: 1s, max: 16s}"
    playbook.write_text(
        "- hosts: localhost\n  checks:\n"
        + appender("stable", runs, adaptive)
        + "    - name: failing\n"
        f"      command: {{cmd: 'date +%s.%N >> {runs}/failing; exit 2', shell: true}}\n"
        f"      interval: {adaptive}\n"
    )
    with WatchProcess(playbook, "--no-state") as watch:
        wait_for(lambda: len(lines(runs / "failing")) >= 12, "twelve runs of the failing check")
        exported = {
            name: watch.metric("checkrun_check_interval_seconds", check=name)
            for name in ("stable", "failing")
        }
        assert watch.stop() == 0
    assert exported["failing"] == 1.0 and exported["stable"] >= 4.0, exported
    stable = [float(t) for t in lines(runs / "localhost.stable")]
    failing = [float(t) for t in lines(runs / "failing")]
    # the stable check backs off 1s, 2s, 4s, 8s...: a handful of runs in the same time
    assert len(stable) <= 6, stable
    gaps = [b - a for a, b in zip(stable, stable[1:])]
    assert len(gaps) >= 2 and all(b > 1.6 * a for a, b in zip(gaps, gaps[1:])), gaps
    failing_gaps = [b - a for a, b in zip(failing, failing[1:])]
    assert max(failing_gaps) < 3.0, failing_gaps  # held at min (1 s) while it fails


def history_total(state: Path, check: str) -> float:
    """The lines the log check counted so far (each scan's count is one history sample)."""
    if not state.exists():
        return 0.0
    with sqlite3.connect(state) as db:
        try:
            (total,) = db.execute(
                "SELECT COALESCE(SUM(x.value), 0) FROM samples AS x JOIN series AS s "
                "ON s.id = x.series WHERE s.check_name = ? AND s.metric = 'every'",
                (check,),
            ).fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return 0.0
    return total


def test_sigterm_mid_round_loses_and_doubles_no_log_line(tmp_path):
    log = tmp_path / "app.log"
    writer = Writer(log)
    try:
        playbook = tmp_path / "p.yml"
        playbook.write_text(
            "- hosts: localhost\n  checks:\n"
            "    - name: app log\n"
            f"      log: {{path: {log}, start: beginning, patterns: [{{name: every, regex: '.'}}]}}\n"
            "      interval: 1s\n"
            "    - name: slow round\n"
            "      command: {cmd: 'sleep 0.7'}\n"
            "      interval: 1s\n"
        )
        state = tmp_path / "s.db"
        with WatchProcess(playbook, "--state", state) as watch:
            wait_for(lambda: history_total(state, "app log") > 100, "counted log lines")
            time.sleep(1.3)  # lands within a round (0.7 s of every second)
            assert watch.stop() == 0
        written, _ = writer.stop()
    finally:
        writer.kill()
    counted_by_watch = history_total(state, "app log")
    assert 0 < counted_by_watch < written
    done = run_checkrun(playbook, "--state", state)
    assert done.returncode == 0, done.stderr
    assert history_total(state, "app log") == written


def test_sighup_keeps_the_old_config_on_a_broken_one_and_applies_a_good_one(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    playbook = tmp_path / "p.yml"
    good = "- hosts: localhost\n  checks:\n"
    playbook.write_text(good + appender("old", runs, "1s"))
    with WatchProcess(playbook, "--no-state") as watch:
        wait_for(lambda: len(lines(runs / "localhost.old")) >= 2, "rounds of the old check")
        playbook.write_text(good + appender("new", runs, "1s") + "      retries: many\n")
        watch.signal(signal.SIGHUP)
        failed = watch.wait_event("reload-failed")
        assert f"{playbook}:6:16:" in failed["message"] and "retries" in failed["message"], failed
        assert watch.metric("checkrun_config_last_reload_successful") == 0.0
        before = len(lines(runs / "localhost.old"))
        wait_for(lambda: len(lines(runs / "localhost.old")) >= before + 2, "the old config runs")
        assert not (runs / "localhost.new").exists()
        playbook.write_text(good + appender("new", runs, "1s"))
        watch.signal(signal.SIGHUP)
        watch.wait_event("reload")
        wait_for(lambda: len(lines(runs / "localhost.new")) >= 2, "rounds of the new check")
        assert watch.metric("checkrun_config_last_reload_successful") == 1.0
        assert watch.metric("checkrun_check_status", check="new") == 0.0
        assert watch.metric("checkrun_check_status", check="old") is None  # gone, forgotten
        stopped = len(lines(runs / "localhost.old"))
        time.sleep(2.5)
        assert len(lines(runs / "localhost.old")) <= stopped + 1  # at most one in flight
        assert watch.process.poll() is None
        assert watch.stop() == 0


def test_heartbeats_fire_on_the_third_missed_beat_and_recover_next_round(tmp_path):
    interval = 5.0  # the heartbeat: interval 5s, for: 3
    with Recorder() as service, Recorder() as receiver:
        playbook = tmp_path / "p.yml"
        playbook.write_text(
            "plays:\n  - hosts: localhost\n    checks:\n"
            "      - name: app health\n"
            f"        http: {{url: '{service.url('/health')}', timeout: 1s}}\n"
            f"        interval: {interval:g}s\n"
            "        for: 3\n"
            "receivers:\n"
            f"  - {{name: hook, webhook_configs: [{{url: '{receiver.url('/hook')}'}}]}}\n"
            "route: {receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s}\n"
        )
        with WatchProcess(playbook, "--state", tmp_path / "s.db") as watch:
            wait_for(lambda: len(service.requests("/health")) >= 2, "two healthy beats", 60)
            service.down()
            down_at = time.monotonic()
            beats_before = watch.metric("checkrun_round_duration_seconds_count")
            wait_for(lambda: receiver.requests("/hook"), "the alert", 60)
            fired_after = time.monotonic() - down_at
            # one host, one check: a round is a beat. The third missed one fired it (a round
            # in flight when the service went down may still have seen it up: one more).
            missed = watch.metric("checkrun_round_duration_seconds_count") - beats_before
            assert 3 <= missed <= 4, missed
            [firing] = [r.json() for r in receiver.requests("/hook")]
            assert firing["status"] == "firing"
            assert firing["alerts"][0]["labels"]["alertname"] == "app health"
            # the third missed beat: two intervals after the first miss at the earliest
            assert fired_after >= 2 * interval - 0.5, fired_after
            service.up()
            up_at = time.monotonic()
            wait_for(lambda: len(receiver.requests("/hook")) >= 2, "the recovery notice", 60)
            recovered_after = time.monotonic() - up_at
            resolved = receiver.requests("/hook")[1].json()
            assert resolved["status"] == "resolved"
            assert recovered_after < 30, recovered_after  # the next round, not the next for:
            assert watch.stop() == 0
        assert len(receiver.requests("/hook")) == 2  # nothing sent twice


def test_a_receiver_whose_send_hangs_holds_no_round(tmp_path):
    """Watch mode's rounds commit notifications to the outbox and a DeliveryWorker sends them:
    while a send hangs (the receiver holds the request, the webhook's timeout is minutes
    away) rounds go on being recorded; released, the notification arrives once."""
    with Recorder() as receiver:
        receiver.respond("/hook", delay=600)  # held until the recorder stops
        playbook = tmp_path / "p.yml"
        playbook.write_text(
            "plays:\n  - hosts: localhost\n    checks:\n"
            "      - name: always failing\n"
            "        command: {cmd: [/bin/false]}\n"
            "        interval: 1s\n"
            "receivers:\n"
            f"  - {{name: hook, webhook_configs: [{{url: '{receiver.url('/hook')}', "
            "timeout: 5m}]}\n"
            "route: {receiver: hook, group_wait: 0s, group_interval: 1s}\n"
        )
        with WatchProcess(playbook, "--state", tmp_path / "s.db") as watch:
            wait_for(lambda: receiver.requests("/hook"), "the send that hangs", 60)
            rounds = watch.metric("checkrun_round_duration_seconds_count")
            wait_for(
                lambda: watch.metric("checkrun_round_duration_seconds_count") >= rounds + 3,
                "three more rounds while the send hangs",
                120,
            )
            assert len(receiver.requests("/hook")) == 1  # the one send, still held
            assert watch.stop() == 0
        assert receiver.requests("/hook")[0].json()["status"] == "firing"


@pytest.mark.parametrize(
    ("playbook_text", "args", "words"),
    [
        ("- hosts: localhost\n  checks:\n    - {load: {}, interval: 2x}\n", [], "p.yml:3:28:"),
        ("- hosts: localhost\n  checks:\n    - {load: {}}\n", ["--interval", "10ms"], "1s to 1d"),
        (
            "plays:\n  - hosts: localhost\n    checks:\n      - {load: {}}\n"
            "receivers: [{name: r, webhook_configs: [{url: 'http://127.0.0.1:9/'}]}]\n"
            "route: {receiver: r}\n",
            ["--no-state"],
            "--no-state",
        ),
    ],
)
def test_watch_refuses_bad_input_before_it_starts(tmp_path, playbook_text, args, words):
    playbook = tmp_path / "p.yml"
    playbook.write_text(playbook_text)
    done = run_checkrun("watch", playbook, "--listen", "127.0.0.1:0", *args, timeout=60)
    assert done.returncode == 5, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_the_events_log_is_json_lines_masked_and_carries_the_config_warnings(tmp_path):
    secret = "s3cr3t-token-value"
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        "    hidden: {ansible_host: '{{ env.PROBE_TOKEN }}.invalid', ansible_user: nobody}\n"
    )
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- hosts: nomatch\n  checks:\n    - {memory: {}}\n"
        "- hosts: all\n  checks:\n    - {memory: {}, interval: 1s}\n"
    )
    os.environ["PROBE_TOKEN"] = secret
    try:
        args = [playbook, "-i", inventory, "--no-state", "--ssh-config", "none"]
        with WatchProcess(*args) as watch:
            warning = watch.wait_event("warning")
            assert "p.yml:1:3:" in warning["message"] and "nomatch" in warning["message"]
            backoff = watch.wait_event("backoff", host="hidden")  # dns: names the address
            assert watch.stop() == 0
    finally:
        del os.environ["PROBE_TOKEN"]
    assert backoff["message"].startswith("dns: ") and ".invalid" in backoff["message"], backoff
    assert not watch.other, watch.other  # every line is one JSON object
    assert secret not in json.dumps(watch.events)


def test_without_state_a_log_check_goes_on_from_its_last_round(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("".join(f"{n} line\n" for n in range(50)))
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- hosts: localhost\n  checks:\n"
        "    - name: app log\n"
        f"      log: {{path: {log}, start: beginning, patterns: [{{name: every, regex: '.'}}]}}\n"
        "      interval: 1s\n"
    )

    def counted() -> float | None:
        return watch.metric("checkrun_check_value", check="app log", metric="every")

    with WatchProcess(playbook, "--no-state") as watch:
        wait_for(lambda: counted() is not None, "the first round")
        first = counted()
        # the next rounds read on from where the last one stopped: nothing new, not 50 again
        wait_for(lambda: counted() == 0.0, "a round with no new line")
        with log.open("a") as appending:
            appending.write("one more\n")
        wait_for(lambda: counted() == 1.0, "the appended line counted")
        assert watch.stop(signal.SIGINT) == 0  # Ctrl-C stops it as SIGTERM does
    assert first == 50.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_reload_waits_for_the_hosts_in_flight_without_spinning(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    playbook = tmp_path / "p.yml"
    head = "- hosts: localhost\n  checks:\n"
    nap = "    - {name: nap, command: {cmd: 'sleep 6'}, interval: 1s}\n"
    playbook.write_text(head + nap)
    with WatchProcess(playbook, "--no-state") as watch:
        watch.wait_event("skipped")  # the nap is in flight
        playbook.write_text(head + appender("new", runs, "1s"))
        watch.signal(signal.SIGHUP)
        waiting = watch.wait_event("reload")
        assert "once 1 host(s) in flight are done" in waiting["message"], waiting
        before = cpu_seconds(watch.process.pid)
        time.sleep(2)
        assert cpu_seconds(watch.process.pid) - before < 1.0  # waiting, not spinning
        wait_for(lambda: watch.of("reload")[-1]["message"] == "configuration applied", "swap")
        wait_for(lambda: len(lines(runs / "localhost.new")) >= 1, "the new check")
        assert watch.stop() == 0
