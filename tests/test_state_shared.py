"""Several runners sharing one state database: the same schema on both backends (migrations
from empty and from the previous version), and runners that overlap on a host (cron and a
hand run, a reshard, an HA pair) through one real PostgreSQL: each log line counted once,
each notification sent once, by the database's own locks rather than by timing."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from helpers import names, outbox_states, queue_notifications, receiver_config, run_checkrun
from recorder import Recorder

from checkrunner.alerting.delivery import Dispatcher
from checkrunner.errors import ConfigError
from checkrunner.state.db import MIGRATIONS, STATE_ERRORS, BackendError, open_state
from checkrunner.state.dialect import dialect_of

RUNS_EACH = 6  # one-shot runs per runner while the log grows


def _sqlite_schema(path: Path) -> dict[str, list[tuple[str, str]]]:
    connection = sqlite3.connect(path)
    tables = [
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence'"
        )
    ]
    schema = {
        table: [(row[1], row[2]) for row in connection.execute(f"PRAGMA table_info({table})")]
        for table in tables
    }
    connection.close()
    return schema


def _postgresql_schema(url: str) -> dict[str, list[tuple[str, str]]]:
    db = open_state(url)
    schema: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in db.connection.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name != 'checkrun_schema' "
        "ORDER BY table_name, ordinal_position"
    ):
        schema.setdefault(table, []).append((column, kind))
    db.close()
    return schema


# SQLite's declared types and the PostgreSQL types the migrations give them.
SAME_TYPE = {"TEXT": "text", "REAL": "double precision", "INTEGER": "bigint", "BLOB": "bytea"}


def test_migrations_from_empty_give_both_backends_the_same_schema(tmp_path, postgres_server):
    open_state(str(tmp_path / "state.db")).close()
    sqlite_schema = _sqlite_schema(tmp_path / "state.db")
    postgresql_schema = _postgresql_schema(postgres_server.new_database())
    assert sorted(sqlite_schema) == sorted(postgresql_schema)
    for table, columns in sqlite_schema.items():
        expected = [(name, SAME_TYPE[kind]) for name, kind in columns]
        assert postgresql_schema[table] == expected, table


def _at_previous_version(target: str) -> None:
    """A database as the checkrun before the newest migration left it, with rows."""
    previous = len(MIGRATIONS) - 1
    if target.startswith("postgresql://"):
        from checkrunner.state.postgres import open_postgres

        db = open_postgres(target, upto=previous)
    else:
        connection = sqlite3.connect(target)
        for migration in MIGRATIONS[:previous]:
            connection.executescript(migration)
        connection.execute(f"PRAGMA user_version = {previous}")
        connection.commit()
        connection.close()
        db = _OpenAt(target)
    with db.transaction() as connection:
        connection.execute("INSERT INTO log_scans VALUES ('web1', 'app', 'log', 100.5)")
        connection.execute(
            "INSERT INTO nflog VALUES ('ops', '{}:{alertname=\"x\"}', '[\"f1\"]', 200.25)"
        )
    db.close()


class _OpenAt:
    """A SQLite database opened without migrating it (the previous version's, as it was)."""

    def __init__(self, path: str):
        from checkrunner.state.db import _open

        self.connection = _open(path)

    def transaction(self):
        import contextlib

        @contextlib.contextmanager
        def once():
            self.connection.execute("BEGIN IMMEDIATE")
            yield self.connection
            self.connection.execute("COMMIT")

        return once()

    def close(self) -> None:
        self.connection.close()


def _version(db) -> int:
    if db.dialect.name == "postgresql":
        from checkrunner.state.postgres import schema_version

        return schema_version(db)
    return db.connection.execute("PRAGMA user_version").fetchone()[0]


def test_a_database_of_the_previous_version_migrates_and_keeps_its_rows(state_target):
    _at_previous_version(state_target)
    db = open_state(state_target)
    assert _version(db) == len(MIGRATIONS)
    scans = db.connection.execute("SELECT host, scanned_at FROM log_scans").fetchall()
    assert [tuple(row) for row in scans] == [("web1", 100.5)]
    assert db.connection.execute("SELECT sent_at FROM nflog").fetchone()[0] == 200.25
    with db.transaction() as connection:  # the newest migration's table is there
        connection.execute(
            "INSERT INTO actions (started_at, host, play, handler, triggers, kind, target, "
            "state) VALUES (1.0, 'web1', 'app', 'h', '[]', 'command', 'true', 'intent')"
        )
    db.close()
    again = open_state(state_target)  # a second open migrates nothing and loses nothing
    assert _version(again) == len(MIGRATIONS)
    assert again.connection.execute("SELECT COUNT(*) FROM actions").fetchone()[0] == 1
    again.close()


def test_a_newer_postgresql_schema_is_refused_with_the_fix(postgres_server):
    url = postgres_server.new_database()
    open_state(url).close()
    postgres_server.psql("UPDATE checkrun_schema SET version = 999", url.rsplit("/", 1)[1])
    with pytest.raises(ConfigError) as caught:
        open_state(url)
    assert "upgrade checkrunner" in str(caught.value)


def test_an_unreachable_database_is_bad_input_and_its_password_is_never_shown(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens
    url = f"postgresql://checkrun:pa55word-x@127.0.0.1:{port}/state?connect_timeout=5"
    playbook = tmp_path / "p.yml"
    playbook.write_text("- {name: p, hosts: localhost, checks: [{name: c, file: {path: /}}]}\n")
    for args in (
        [playbook, "--state", url],
        ["history", "--state", url, "--host", "h", "--check", "c"],
    ):
        done = run_checkrun(*args)
        assert done.returncode == 5, done.stderr
        assert "state database postgresql://checkrun:***@127.0.0.1" in done.stderr
        assert "pa55word" not in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_two_dispatchers_on_postgresql_never_send_one_message_twice(postgres_server):
    """Two runners delivering one outbox at once (their runs overlap): each message is
    claimed by its row for its send, so each reaches the receiver once, in order."""
    url = postgres_server.new_database()
    db = open_state(url)
    with Recorder() as rec:
        config = receiver_config("webhook", url=rec.url("/hook"))
        queue_notifications(db, config, names(6))
        rec.respond("/hook", delay=0.5, times=6)  # each send in flight long enough to overlap

        def deliver() -> None:
            own = open_state(url)
            try:
                Dispatcher(own, {"ops": [config]}).deliver()
            finally:
                own.close()

        runners = [threading.Thread(target=deliver) for _ in range(2)]
        for runner in runners:
            runner.start()
        for runner in runners:
            runner.join()
        deliver()  # what one left for the other (an earlier message in flight) goes now
        told = [r.json()["commonLabels"]["alertname"] for r in rec.requests("/hook")]
        assert told == names(6)
    assert outbox_states(db) == ["delivered"] * 6
    db.close()


def _shared_playbook(tmp_path: Path, log: Path, hook: str) -> Path:
    playbook = tmp_path / "shared.yml"
    playbook.write_text(
        "plays:\n"
        "  - name: app\n"
        "    hosts: localhost\n"
        "    checks:\n"
        "      - name: app log\n"
        "        log:\n"
        f"          path: {log}\n"
        "          start: beginning\n"
        "          patterns:\n"
        "            - {name: errors, regex: ' ERROR '}\n"
        "      - {name: config present, file: {path: /nonexistent/checkrun.conf}}\n"
        "receivers:\n"
        f"  - {{name: hook, webhook_configs: [{{url: '{hook}'}}]}}\n"
        "route: {receiver: hook, group_by: [alertname], group_wait: 0s, repeat_interval: 1h}\n"
    )
    return playbook


def test_two_runners_sharing_postgresql_count_each_line_once_and_notify_once(
    tmp_path, postgres_server
):
    """Two real `checkrun` runners on the same host and log file, one PostgreSQL state and
    one receiver, their runs overlapping while the log grows: the counts recorded add up
    to the lines written (a chunk both read is recorded by one), and the check that fails
    all along is notified once, not once per runner."""
    url = postgres_server.new_database()
    log = tmp_path / "app.log"
    log.write_text("")
    with Recorder() as rec:
        playbook = _shared_playbook(tmp_path, log, rec.url("/hook"))
        written = 0
        writing = threading.Event()
        writing.set()

        def write() -> None:
            nonlocal written
            while writing.is_set():
                with log.open("a") as handle:
                    handle.write(f"2026-12-05 06:00:00 ERROR line {written}\n")
                written += 1
                time.sleep(0.01)

        failures: list[str] = []

        def runner() -> None:
            for _ in range(RUNS_EACH):
                done = run_checkrun(playbook, "--state", url)
                if done.returncode != 2:  # CRITICAL: the missing file
                    failures.append(done.stderr)

        writer = threading.Thread(target=write)
        writer.start()
        runners = [threading.Thread(target=runner) for _ in range(2)]
        for thread in runners:
            thread.start()
        for thread in runners:
            thread.join()
        writing.clear()
        writer.join()
        # The lines written last, and any a losing run left unrecorded; then three more,
        # recorded by a run that finds the database through $CHECKRUN_STATE.
        assert run_checkrun(playbook, "--state", url).returncode == 2
        with log.open("a") as handle:
            handle.writelines(f"2026-12-05 06:01:00 ERROR late {n}\n" for n in range(3))
        written += 3
        assert run_checkrun(playbook, env={"CHECKRUN_STATE": url}).returncode == 2
        assert failures == []
        assert written > 0

        db = open_state(url)
        counted = db.connection.execute(
            "SELECT SUM(x.value), COUNT(*) FROM samples AS x JOIN series AS s ON s.id = x.series "
            "WHERE s.check_name = 'app log' AND s.metric = 'errors'"
        ).fetchone()
        assert counted[0] == written, counted
        notified = [r.json()["commonLabels"]["alertname"] for r in rec.requests("/hook")]
        assert len(notified) == 1, notified
        assert outbox_states(db) == ["delivered"]
        db.close()


def _runner(tmp_path: Path, state: str, log: Path):
    """One runner: its own connection and RoundRecorder over a plan with one log check on
    the local host (as `checkrun` builds it)."""
    from helpers import plan_from_text

    from checkrunner.masking import Masker
    from checkrunner.serve.rounds import LoadedConfig, RoundRecorder

    playbook = (
        "- name: logs\n  hosts: all\n  checks:\n    - name: app log\n      log:\n"
        f"        path: {log}\n        start: beginning\n"
        "        patterns:\n          - {name: errors, regex: ' ERROR '}\n"
    )
    inventory = "all:\n  hosts:\n    web1: {ansible_connection: local}\n"
    tmp_path.mkdir()
    plan = plan_from_text(tmp_path, playbook, inventory)
    config = LoadedConfig(plan=plan, receivers=None, masker=Masker([]))
    return RoundRecorder(open_state(state), config)


def _round_of(recorder):
    from checkrunner.runner import RunOptions, run_plan

    plan = recorder.config.plan
    return run_plan(plan, RunOptions(observe=recorder.log_state.observe))


def _errors(run) -> float:
    (check,) = run.hosts[0].checks
    return check.measurements["errors"]


def _counted_errors(db) -> list[float]:
    """Every `errors` count the history holds, oldest first."""
    rows = db.connection.execute(
        "SELECT x.value FROM samples AS x JOIN series AS s ON s.id = x.series "
        "WHERE s.metric = 'errors' ORDER BY x.at"
    ).fetchall()
    return [row[0] for row in rows]


def test_of_two_runs_that_read_the_same_lines_one_records_them(tmp_path, state_target):
    """Two runners' rounds overlap on a host: both read the log from the same offset. The
    first to commit records the count and moves the offset; the other's commit finds the
    offset moved (compare-and-set) and records neither, and its next round reads on from
    where the first left: each line counted once in the state, none skipped."""
    log = tmp_path / "app.log"
    log.write_text("12:00 ERROR a\n12:00 ERROR b\n")
    first = _runner(tmp_path / "a", state_target, log)
    second = _runner(tmp_path / "b", state_target, log)
    for recorder in (first, second):
        recorder.prepare(recorder.config.plan.hosts)
    first_run, second_run = _round_of(first), _round_of(second)
    assert _errors(first_run) == _errors(second_run) == 2  # both read the same two lines
    first.record(first_run)
    second.record(second_run)
    with log.open("a") as handle:
        handle.write("12:01 ERROR c\n")
    second.prepare(second.config.plan.hosts)
    third = _round_of(second)
    assert _errors(third) == 1  # on from the first runner's offset
    second.record(third)
    assert _counted_errors(first.db) == [2.0, 1.0]
    first.db.close()
    second.db.close()


def test_pushes_and_backoffs_round_trip_on_both_backends(state_target):
    """The Pushgateway outbox (bytes payloads, ids in queue order) and the circuit breakers'
    rows, as `--push` and watch mode keep them."""
    from checkrunner.state.breakers import BackoffStore, StoredBackoff
    from checkrunner.state.pushes import DELIVERED, PushOutbox

    db = open_state(state_target)
    pushes = PushOutbox(db)
    payload = b"up 1\nchecks_total 2\n\x00binary-safe\n"
    first = pushes.queue("d1", {"job": "checkrun"}, payload, now=10.0)
    second = pushes.queue("d1", {"job": "checkrun", "instance": "r2"}, b"up 0\n", now=11.0)
    assert second > first
    pending = pushes.pending("d1")
    assert [(p.id, p.payload, p.grouping["job"]) for p in pending] == [
        (first, payload, "checkrun"),
        (second, b"up 0\n", "checkrun"),
    ]
    pushes.record_failure(first, "503")
    pushes.finish(first, DELIVERED, None, now=12.0)
    assert [p.id for p in pushes.pending("d1")] == [second]
    assert pushes.pending_elsewhere("d2") == 1
    backoffs = BackoffStore(db)
    backoff = StoredBackoff("web1", 3, 100.0, "unreachable", "timed out", 90.0)
    backoffs.save(backoff)
    backoffs.save(StoredBackoff("web1", 4, 200.0, "unreachable", "refused", 95.0))
    assert [b.failures for b in backoffs.all()] == [4]
    backoffs.clear("web1")
    assert backoffs.all() == []
    db.close()


def test_a_connection_the_server_dropped_is_made_again_for_the_next_statement(postgres_server):
    """A PostgreSQL restart or failover under a watch process: the statement that finds
    its connection gone fails, the next transaction runs on a new connection."""
    url = postgres_server.new_database()
    db = open_state(url)
    (pid,) = db.connection.execute("SELECT pg_backend_pid()").fetchone()
    postgres_server.psql(f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(BackendError):
        db.connection.execute("SELECT 1")
    with db.transaction() as connection:
        connection.execute("INSERT INTO log_scans VALUES ('web1', 'app', 'log', 1.0)")
    assert db.connection.execute("SELECT COUNT(*) FROM log_scans").fetchone()[0] == 1
    assert db.connection.execute("SELECT pg_backend_pid()").fetchone()[0] != pid
    db.close()


_FAILING_SAMPLES = {
    "sqlite": (
        "CREATE TRIGGER fail_samples BEFORE INSERT ON samples "
        "BEGIN SELECT RAISE(ABORT, 'no space left on device'); END",
        "DROP TRIGGER fail_samples",
    ),
    "postgresql": (
        "CREATE FUNCTION fail_samples() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'no space left on device'; END $$; "
        "CREATE TRIGGER fail_samples BEFORE INSERT ON samples "
        "FOR EACH ROW EXECUTE FUNCTION fail_samples()",
        "DROP TRIGGER fail_samples ON samples; DROP FUNCTION fail_samples()",
    ),
}


def test_a_round_whose_commit_failed_is_committed_whole_when_retried(tmp_path, state_target):
    """Watch mode holds a round whose commit the state database refused and commits it
    again once it answers. The database fails here after the round's log offsets were
    written in the transaction (the samples' insert is refused, as a full disk would), so
    the transaction rolls back; the retry must write the offsets again with the counts,
    or the next round would read the same lines again and count them twice."""
    log = tmp_path / "app.log"
    log.write_text("12:00 ERROR a\n12:00 ERROR b\n")
    runner = _runner(tmp_path / "a", state_target, log)
    fail, heal = _FAILING_SAMPLES[dialect_of(runner.db.connection).name]
    runner.prepare(runner.config.plan.hosts)
    run = _round_of(runner)
    assert _errors(run) == 2
    runner.db.connection.execute(fail)
    with pytest.raises(STATE_ERRORS, match="no space left"):
        runner.commit_round(run)
    runner.db.connection.execute(heal)
    runner.commit_round(run)  # the held round, once the database answers
    with log.open("a") as handle:
        handle.write("12:01 ERROR c\n")
    runner.prepare(runner.config.plan.hosts)
    following = _round_of(runner)
    assert _errors(following) == 1  # on from the retried round's offsets
    runner.record(following)
    assert _counted_errors(runner.db) == [2.0, 1.0]
    runner.db.close()
