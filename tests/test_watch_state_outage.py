"""Watch mode when its PostgreSQL state database goes away and comes back (a restart, a
failover): the real server stopped at once (as a crash) in the middle of the rounds, log
lines written meanwhile, then started again. The watch process lives on, says so (events,
checkrun_state_up), starts no round while the state cannot be written, records the rounds
it held once the server answers, and counts every line once; the alert that the lines
raise is notified once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import wait_for
from recorder import Recorder
from test_watch_ha import counted_errors, firing_notifications, ready
from watching import WatchProcess


@pytest.fixture
def own_postgres():
    """A server of this test's own (stopping it stops nobody else's tests), durable as in
    production: what a commit acknowledged survives the crash (without fsync and
    synchronous commits, the last rounds would vanish with it and be counted again)."""
    from postgres import PostgresServer

    server = PostgresServer.start(durable=True)
    try:
        yield server
    finally:
        server.stop()


def outage_playbook(tmp_path: Path, log: Path, hook: str) -> Path:
    path = tmp_path / "outage.yml"
    path.write_text(
        "receivers:\n"
        f"  - {{name: ops, webhook_configs: [{{url: '{hook}'}}]}}\n"
        "route: {receiver: ops, group_wait: 0s, group_interval: 1s}\n"
        "plays:\n"
        "  - name: app\n    hosts: localhost\n    connection: local\n    checks:\n"
        "      - name: errors\n        interval: 1s\n"
        f"        log: {{path: {log}, patterns: [{{name: errors, regex: ' ERROR ', crit: 2}}]}}\n"
    )
    return path


def append(log: Path, count: int) -> int:
    with log.open("a") as out:
        out.write(" ERROR again\n" * count)
    return count


def test_watch_holds_its_rounds_through_a_postgresql_restart_and_counts_every_line_once(
    tmp_path, own_postgres
):
    log = tmp_path / "app.log"
    log.write_text("")
    state = own_postgres.new_database()
    with Recorder() as hook:
        watch = WatchProcess(outage_playbook(tmp_path, log, hook.url("/hook")), "--state", state)
        try:
            wait_for(lambda: ready(watch)[0] == 200, "the first round recorded", 60)
            written = append(log, 2)
            wait_for(lambda: counted_errors(state) == written, "the first lines counted", 60)
            assert watch.metric("checkrun_state_up") == 1.0

            own_postgres.halt()
            failed = watch.wait_event("state-failed", timeout=60)
            assert "held" in failed["message"]
            written += append(log, 3)  # one write, read whole by one round: above crit
            wait_for(lambda: watch.metric("checkrun_state_up") == 0.0, "state_up 0", 30)
            time.sleep(2)  # rounds would be due every second: none starts, none reads them
            assert watch.process.poll() is None, watch.other[-10:]
            assert firing_notifications(hook) == []

            own_postgres.start_again()
            watch.wait_event("state-restored", timeout=90)
            wait_for(lambda: counted_errors(state) == written, "every line counted", 60)
            wait_for(lambda: firing_notifications(hook) == ["errors"], "the alert notified", 60)
            assert watch.metric("checkrun_state_up") == 1.0
            time.sleep(2.5)  # more rounds: nothing counted or sent again
            assert counted_errors(state) == written
            assert firing_notifications(hook) == ["errors"]
        finally:
            if watch.process.poll() is None:
                assert watch.stop() == 0, watch.other[-10:]
