"""Watch mode's delivery worker against real receivers (recording webhooks on loopback, a real
Alertmanager, the real `checkrun notify`): a receiver that is down never holds a round, what
was queued meanwhile reaches it in order and once when it is back, stop() and SIGTERM lose
and repeat nothing, one destination that hangs does not delay another, and a one-shot run
on the same state never sends what the worker is sending."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from alertmanager import active_alertmanager_names, running_alertmanager
from helpers import (
    names,
    outbox_states,
    plan_from_text,
    queue_notifications,
    receiver_config,
    run_checkrun,
    wait_for,
)
from recorder import Recorder

from checkrunner.alerting.delivery import (
    DEFAULT_BUDGET,
    DEFERRED,
    DELIVERED,
    MAX_ATTEMPTS_PER_RUN,
    Backoff,
    Dispatcher,
)
from checkrunner.alerting.runtime import enqueue_run, render_receivers
from checkrunner.alerting.worker import DeliveryWorker
from checkrunner.results import CheckResult, HostResult, RunResult, Status
from checkrunner.state.db import open_state

QUICK = {"first_backoff": 0.1, "max_backoff": 0.5}  # a receiver back is tried again soon
ROUNDS = 8
TICK = 0.2  # seconds between the test's rounds


# A process that delivers until SIGTERM, then stops its worker as the watch loop does. The
# handler only notes the signal: an Event.set() there can deadlock when the signal lands while
# the main thread holds the same Event's lock inside Event.wait() (seen here: a hung child).
WORKER_PROCESS = """
import signal, sys, time
sys.path.insert(0, sys.argv[3])
from helpers import receiver_config
from checkrunner.alerting.worker import DeliveryWorker
from checkrunner.state.db import open_state

db = open_state(sys.argv[1])
worker = DeliveryWorker(db, {"ops": [receiver_config("webhook", url=sys.argv[2])]})
terminated = []
signal.signal(signal.SIGTERM, lambda *_: terminated.append(True))
worker.start()
print("started", flush=True)
while not terminated:
    time.sleep(0.1)
sys.exit(0 if worker.stop(30) else 3)
"""


def _worker_process(db_path: Path | str, url: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER_PROCESS, str(db_path), url, str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "started\n"
    return process


def _terminate(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()  # never left behind by a failing test
        process.wait()
        raise


class Events:
    """What a worker reported through on_event, from its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []

    def __call__(self, kind: str, detail: str) -> None:
        with self._lock:
            self.seen.append((kind, detail))

    def of(self, kind: str) -> list[str]:
        with self._lock:
            return [detail for seen, detail in self.seen if seen == kind]


def _told(rec: Recorder, path: str) -> list[str]:
    """The alert names of the notifications `path` received, in the order they came."""
    return [r.json()["commonLabels"]["alertname"] for r in rec.requests(path)]


def _delivered(db, count: int) -> bool:
    return outbox_states(db) == ["delivered"] * count


class Rounds:
    """Watch-like rounds over a real plan: round i reports check c<i> failing, which makes
    one new group and so one notification (group_wait 0s)."""

    def __init__(self, tmp_path, receiver: str, state: str | None = None):
        """`receiver`: the receiver `hook`'s configs, e.g. "webhook_configs: [{url: ...}]";
        `state`: the state database (a file in tmp_path if not given)."""
        checks = "".join(
            f"      - {{name: c{i}, file: {{path: /nonexistent}}}}\n" for i in range(ROUNDS)
        )
        playbook = (
            f"plays:\n  - name: app\n    hosts: all\n    checks:\n{checks}"
            f"receivers:\n  - name: hook\n    {receiver}\n"
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n"
            "  group_interval: 1h\n  repeat_interval: 1h\n"
        )
        inventory = "all:\n  hosts:\n    web1: {ansible_connection: local}\n"
        self.plan = plan_from_text(tmp_path, playbook, inventory)
        self.receivers = render_receivers(self.plan.alerting)
        self.db = open_state(state or str(tmp_path / "state.db"))

    def loop(self, worker: DeliveryWorker | None) -> float:
        """ROUNDS rounds, one every TICK seconds; each enqueues its alerts and wakes
        `worker` (None: the same rounds without alerting). Returns the seconds it took."""
        start = time.monotonic()
        for i in range(ROUNDS):
            check = CheckResult("web1", "app", f"c{i}", "file", Status.CRITICAL, "missing")
            run = RunResult("playbook.yml", time.time(), hosts=[HostResult("web1", checks=[check])])
            if worker is not None:
                spec, receivers = self.plan.alerting, self.receivers
                enqueue_run(self.db, spec, receivers, self.plan, run, str, group_waits=True)
                worker.wake()
            time.sleep(max(0.0, start + (i + 1) * TICK - time.monotonic()))
        return time.monotonic() - start


def test_a_receiver_that_is_down_does_not_hold_the_rounds_and_gets_everything_once_back(
    tmp_path, state_target
):
    with Recorder() as rec:
        hook = f"webhook_configs: [{{url: '{rec.url('/hook')}'}}]"
        rounds = Rounds(tmp_path, hook, state_target)
        rec.down()  # connections refused
        events = Events()
        worker = DeliveryWorker(rounds.db, rounds.receivers.receivers, on_event=events, **QUICK)
        worker.start()
        without_alerting = rounds.loop(None)
        with_alerting = rounds.loop(worker)
        # Delivering in the round (process_run's one-shot way), the first round alone would
        # have slept through the retries of its message before the next round could start.
        backoff = Backoff()
        inline_hold = sum(backoff.pause(None) for _ in range(MAX_ATTEMPTS_PER_RUN - 1))
        assert with_alerting - without_alerting < inline_hold
        wait_for(lambda: events.of(DEFERRED), "a failed attempt reported")
        assert outbox_states(rounds.db) == ["pending"] * ROUNDS
        assert "POST http://127.0.0.1" in events.of(DEFERRED)[0]

        rec.up()
        wait_for(lambda: _delivered(rounds.db, ROUNDS), "the queued notifications delivered")
        assert _told(rec, "/hook") == [f"c{i}" for i in range(ROUNDS)]  # in order, once each
        assert worker.stop(5)  # its threads have ended: every event is in
        assert len(events.of(DELIVERED)) == ROUNDS


def test_stop_during_a_send_finishes_it_and_a_new_worker_delivers_the_rest_once(state_target):
    db = open_state(state_target)
    with Recorder() as rec:
        config = receiver_config("webhook", url=rec.url("/hook"))
        queue_notifications(db, config, names(4))
        rec.respond("/hook", delay=3.0, times=1)  # the first send is in flight for 3 s
        first = DeliveryWorker(db, {"ops": [config]}, **QUICK)
        first.start()
        wait_for(lambda: rec.requests("/hook"), "the first send")
        assert first.stop(30)
        assert outbox_states(db) == ["delivered", "pending", "pending", "pending"]
        assert _told(rec, "/hook") == ["a0"]

        second = DeliveryWorker(db, {"ops": [config]}, **QUICK)
        second.start()  # what the first one left, without a wake
        wait_for(lambda: _delivered(db, 4), "the rest delivered")
        assert _told(rec, "/hook") == ["a0", "a1", "a2", "a3"]
        assert second.stop(5)


def test_a_worker_started_while_a_stopped_ones_send_is_in_flight_does_not_send_it_again(
    state_target,
):
    db = open_state(state_target)
    with Recorder() as rec:
        config = receiver_config("webhook", url=rec.url("/hook"))
        queue_notifications(db, config, names(3))
        rec.respond("/hook", delay=3.0, times=1)
        first = DeliveryWorker(db, {"ops": [config]}, **QUICK)
        first.start()
        wait_for(lambda: rec.requests("/hook"), "the first send")
        assert not first.stop(0.05)  # its grace ran out with the send in flight
        second = DeliveryWorker(db, {"ops": [config]}, **QUICK)
        second.start()
        wait_for(lambda: _delivered(db, 3), "all delivered")
        assert _told(rec, "/hook") == ["a0", "a1", "a2"]
        assert first.stop(10) and second.stop(5)


def test_a_destination_that_hangs_does_not_delay_another(state_target):
    db = open_state(state_target)
    with Recorder() as rec:
        hanging = receiver_config("webhook", receiver="down", url=rec.url("/hang"), timeout="60s")
        healthy = receiver_config("webhook", receiver="up", url=rec.url("/ok"))
        rec.respond("/hang", delay=60)  # accepts the connection, never answers
        for n in range(3):  # queued alternately: down a0, up b0, down a1, up b1, ...
            queue_notifications(db, hanging, [f"a{n}"])
            queue_notifications(db, healthy, [f"b{n}"])
        events = Events()
        worker = DeliveryWorker(db, {"down": [hanging], "up": [healthy]}, on_event=events)
        worker.start()
        wait_for(lambda: rec.requests("/hang"), "the hanging destination's first send")
        wait_for(lambda: len(rec.requests("/ok")) == 3, "the healthy receiver told")
        wait_for(lambda: outbox_states(db)[1::2] == ["delivered"] * 3, "its messages delivered")
        assert _told(rec, "/ok") == ["b0", "b1", "b2"]
        assert _told(rec, "/hang") == ["a0"]  # its first send still hangs
        assert outbox_states(db)[0::2] == ["pending"] * 3
        wait_for(lambda: len(events.of(DELIVERED)) == 3, "three deliveries reported")
        assert events.of(DELIVERED) == ["up (webhook)"] * 3
        rec.down()  # the hanging request ends without an answer
        assert worker.stop(10)
        assert outbox_states(db)[0::2] == ["pending"] * 3


def test_events_are_masked_and_a_refusal_leaves_the_outbox(state_target):
    db = open_state(state_target)
    with Recorder() as rec:
        config = receiver_config("webhook", url=rec.url("/hook-s3cr3t"))
        queue_notifications(db, config, names(2))
        rec.respond("/hook-s3cr3t", status=503, body="busy", times=1)
        rec.respond("/hook-s3cr3t", status=400, body="bad request", times=1)
        events = Events()
        mask = lambda text: text.replace("s3cr3t", "********")  # noqa: E731
        worker = DeliveryWorker(db, {"ops": [config]}, mask, on_event=events, **QUICK)
        worker.start()
        wait_for(lambda: "pending" not in outbox_states(db), "both messages done")
        assert outbox_states(db) == ["failed", "delivered"]
        assert worker.stop(5)
        kinds = [kind for kind, _ in events.seen]
        assert kinds == [DEFERRED, "delivery failed", DELIVERED]
        details = " ".join(detail for _, detail in events.seen)
        assert "s3cr3t" not in details and "/hook-********" in details
        stored = db.connection.execute("SELECT last_error FROM outbox").fetchall()
        assert all("s3cr3t" not in (error or "") for (error,) in stored)


def test_sigterm_mid_send_loses_nothing_and_sends_nothing_twice(state_target):
    path = state_target
    db = open_state(path)
    with Recorder() as rec:
        config = receiver_config("webhook", url=rec.url("/hook"))
        queue_notifications(db, config, names(4))
        rec.respond("/hook", delay=3.0, times=1)
        first = _worker_process(path, rec.url("/hook"))
        wait_for(lambda: rec.requests("/hook"), "the first send")
        assert _terminate(first) == 0
        assert outbox_states(db) == ["delivered", "pending", "pending", "pending"]
        second = _worker_process(path, rec.url("/hook"))
        wait_for(lambda: _delivered(db, 4), "the rest delivered by the next process")
        assert _terminate(second) == 0
        assert _told(rec, "/hook") == ["a0", "a1", "a2", "a3"]


def test_a_hanging_alertmanager_replica_does_not_delay_the_real_one(tmp_path):
    with Recorder() as hanging:
        hanging.respond("*", delay=60)  # the second replica accepts and never answers
        config = "route: {receiver: hook}\nreceivers: [{name: hook}]\n"
        with running_alertmanager(tmp_path / "am", config) as url:
            urls = f"['{url}', '{hanging.base_url}']"
            rounds = Rounds(tmp_path, f"alertmanager_configs: [{{urls: {urls}, timeout: 60s}}]")
            worker = DeliveryWorker(rounds.db, rounds.receivers.receivers, **QUICK)
            worker.start()
            without_alerting = rounds.loop(None)
            with_alerting = rounds.loop(worker)
            # Delivering in the round, the first round alone would wait on the hanging
            # replica until the run's delivery budget was spent.
            assert with_alerting - without_alerting < DEFAULT_BUDGET
            expected = sorted(f"c{i}" for i in range(ROUNDS))
            wait_for(
                lambda: active_alertmanager_names(url) == expected, "every alert in Alertmanager"
            )
            wait_for(hanging.requests, "the hanging replica's first message")
            assert len(hanging.requests()) == 1  # still unanswered
            hanging.down()
            assert worker.stop(10)


def test_a_one_shot_flush_leaves_the_outbox_to_a_running_worker(tmp_path):
    state = tmp_path / "state.db"
    db = open_state(str(state))
    with Recorder() as rec:
        playbook = tmp_path / "playbook.yml"
        playbook.write_text(
            "plays:\n  - {name: app, hosts: all, checks: [{name: c, file: {path: /x}}]}\n"
            f"receivers:\n  - name: hook\n    webhook_configs: [{{url: '{rec.url('/hook')}'}}]\n"
            "route: {receiver: hook}\n"
        )
        config = receiver_config("webhook", receiver="hook", url=rec.url("/hook"))
        queue_notifications(db, config, names(4))
        rec.respond("/hook", delay=2.0, times=1)  # the worker's first send is in flight
        worker = DeliveryWorker(db, {"hook": [config]}, **QUICK)
        worker.start()
        wait_for(lambda: rec.requests("/hook"), "the worker's first send")
        done = run_checkrun("notify", playbook, "--flush", "--state", state)
        assert done.returncode == 1
        assert "delivered 0, refused 0, left in the outbox 4" in done.stdout
        assert "the running checkrun watch (pid " in done.stdout
        wait_for(lambda: _delivered(db, 4), "the worker to deliver them")
        assert _told(rec, "/hook") == ["a0", "a1", "a2", "a3"]
        assert worker.stop(5)
    assert stat.S_IMODE((tmp_path / "state.db.delivery").stat().st_mode) == 0o600


def test_a_worker_waits_for_a_one_shot_run_delivering_now(state_target):
    """On SQLite the worker waits for the one-shot run's claim on the file; on PostgreSQL
    it delivers alongside, each message claimed by its row: either way each is sent once."""
    db_path = state_target
    db = open_state(db_path)
    with Recorder() as rec:
        config = receiver_config("webhook", url=rec.url("/hook"))
        queue_notifications(db, config, names(3))
        rec.respond("/hook", delay=3.0, times=1)

        def one_shot() -> None:
            own = open_state(db_path)
            try:
                Dispatcher(own, {"ops": [config]}).deliver()
            finally:
                own.close()

        run = threading.Thread(target=one_shot)
        run.start()
        wait_for(lambda: rec.requests("/hook"), "the one-shot run's first send")
        events = Events()
        worker = DeliveryWorker(db, {"ops": [config]}, on_event=events, **QUICK)
        worker.start()
        run.join()
        wait_for(lambda: _delivered(db, 3), "all delivered")
        assert _told(rec, "/hook") == ["a0", "a1", "a2"]
        assert worker.stop(5)
        if not db_path.startswith("postgresql://"):
            assert any("delivers this outbox" in detail for detail in events.of(DEFERRED))
