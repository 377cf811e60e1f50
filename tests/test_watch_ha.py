"""Issue 15, high availability: two real `checkrun watch --ha` replicas of one playbook on one
shared state database (SQLite, and a real PostgreSQL), a shared log file and one real receiver. One leads and works, the
other stands by (/-/ready says which leads); the leader is SIGKILLed in the middle of a round
and the standby takes over within the lease's time, with every log line counted once and
the alert notified once across the failover."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from helpers import run_checkrun, wait_for
from recorder import Recorder
from watching import WatchProcess

TTL = 2.0


def ha_playbook(tmp_path: Path, log: Path, hook: str) -> Path:
    path = tmp_path / "ha.yml"
    path.write_text(
        "receivers:\n"
        f"  - {{name: ops, webhook_configs: [{{url: '{hook}'}}]}}\n"
        "route: {receiver: ops, group_wait: 0s, group_interval: 1s}\n"
        "plays:\n"
        "  - name: app\n    hosts: localhost\n    connection: local\n    checks:\n"
        "      - name: errors\n        interval: 1s\n"
        f"        log: {{path: {log}, patterns: [{{name: errors, regex: ' ERROR ', crit: 1000000}}]}}\n"
        "      - name: slow\n        interval: 1s\n"
        "        command: {cmd: 'sleep 0.8; exit 2', shell: true}\n"  # a round takes ~1 s
    )
    return path


def ready(watch: WatchProcess) -> tuple[int, str]:
    url = watch.wait_event("listening")["message"].replace("/metrics", "/-/ready")
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def counted_errors(state: str) -> float:
    done = run_checkrun(
        "history", "--state", state, "--host", "localhost", "--check", "errors", "--json"
    )
    assert done.returncode == 0, done.stderr
    (series,) = [s for s in json.loads(done.stdout)["series"] if s["metric"] == "errors"]
    return sum(sample["value"] for sample in series["samples"] if sample["value"] is not None)


def firing_notifications(hook: Recorder) -> list[str]:
    return [
        alert["labels"]["alertname"]
        for request in hook.requests("/hook")
        for alert in request.json()["alerts"]
        if alert["status"] == "firing"
    ]


def test_the_standby_takes_over_a_killed_leader_and_nothing_is_counted_or_sent_twice(
    tmp_path, state_target
):
    """On one SQLite file (replicas on one machine) and on PostgreSQL (across machines)."""
    log = tmp_path / "app.log"
    log.write_text("")
    state = state_target
    with Recorder() as hook:
        path = ha_playbook(tmp_path, log, hook.url("/hook"))
        args = (path, "--state", state, "--ha", "--ha-ttl", f"{TTL:g}s")
        first = WatchProcess(*args)
        second = WatchProcess(*args)
        replicas = [first, second]
        try:
            wait_for(lambda: any(w.of("leading") for w in replicas), "a leader", 60)
            leader = next(w for w in replicas if w.of("leading"))
            standby = second if leader is first else first
            wait_for(lambda: ready(leader)[0] == 200, "the leader ready", 60)
            code, body = ready(standby)
            assert code == 503 and body.startswith("standby: ") and "leads" in body, body
            assert not standby.of("leading")

            written = 0
            for _ in range(3):
                with log.open("a") as out:
                    out.write(" ERROR one\n ERROR two\n")
                written += 2
                time.sleep(1.2)
            wait_for(lambda: counted_errors(state) == written, "the lines counted", 30)
            wait_for(lambda: firing_notifications(hook) == ["slow"], "the alert notified", 30)

            leader.signal(signal.SIGKILL)  # a round of ~1 s is in flight: not recorded
            killed_at = time.monotonic()
            with log.open("a") as out:
                out.write(" ERROR three\n")
            written += 1
            standby.wait_event("leading", timeout=60)
            takeover = time.monotonic() - killed_at
            assert takeover <= TTL + TTL / 3 + 5, takeover
            wait_for(lambda: ready(standby)[0] == 200, "the new leader ready", 60)
            with log.open("a") as out:
                out.write(" ERROR four\n")
            written += 1
            wait_for(lambda: counted_errors(state) >= written, "the lines counted", 30)
            time.sleep(2.5)  # more rounds: nothing counted again
            assert counted_errors(state) == written
            assert firing_notifications(hook) == ["slow"]  # the same incident: told once
        finally:
            for watch in replicas:
                if watch.process.poll() is None:
                    assert watch.stop() == 0, watch.other[-10:]
    print(f"takeover {takeover:.1f}s after the leader's SIGKILL (lease {TTL:g}s)")


def test_ha_needs_the_state_database(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("- hosts: localhost\n  connection: local\n  checks: [{name: m, memory: {}}]\n")
    done = run_checkrun("watch", path, "--ha", "--no-state")
    assert done.returncode == 5 and "--ha" in done.stderr and "Traceback" not in done.stderr


def test_each_shard_has_its_own_lease(tmp_path):
    """Replicas of different shards of one playbook on one state database both lead."""
    path = tmp_path / "p.yml"
    path.write_text(
        "- hosts: all\n  connection: local\n  checks: [{name: m, memory: {}, interval: 1s}]\n"
    )
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("".join(f"h{n} ansible_connection=local\n" for n in range(8)))
    common = (path, "-i", inventory, "--state", tmp_path / "state.db", "--ha")
    shards = [WatchProcess(*common, "--shard", f"{k}/2") for k in (1, 2)]
    try:
        for watch in shards:
            watch.wait_event("leading", timeout=60)
    finally:
        for watch in shards:
            assert watch.stop() == 0, watch.other[-10:]
