"""The state database (permissions, migrations, sharing) and the history arithmetic."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading

import pytest

from checkrunner.errors import ConfigError
from checkrunner.evaluate.history import (
    AnomalySettings,
    detect_anomaly,
    rate,
    rate_unit,
)
from checkrunner.state.db import MIGRATIONS, default_state_path, open_state


def test_database_and_folder_are_private(tmp_path):
    path = tmp_path / "deep" / "state.db"
    db = open_state(str(path))
    db.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for companion in path.parent.glob("state.db-*"):
        assert stat.S_IMODE(companion.stat().st_mode) & 0o077 == 0


def test_database_is_private_without_touching_the_process_umask(tmp_path, monkeypatch):
    """The umask is process-wide: a state database opened in one thread (watch mode's
    delivery) while another starts a command would hand that command the private umask.
    The files are private through their own mode, whatever the umask (0 here)."""

    def no_umask(mask):
        raise AssertionError("open_state changed the process umask")

    previous = os.umask(0)
    try:
        monkeypatch.setattr(os, "umask", no_umask)
        path = tmp_path / "state.db"
        db = open_state(str(path))
        with db.transaction() as connection:
            connection.execute("CREATE TABLE t (x)")  # the -wal file exists from here on
        companions = sorted(path.parent.glob("state.db-*"))
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [path, *companions]}
        db.close()
    finally:
        monkeypatch.undo()
        os.umask(previous)
    assert "state.db-wal" in modes
    assert set(modes.values()) == {0o600}, modes


def test_migrations_run_once_and_record_the_version(tmp_path):
    path = str(tmp_path / "state.db")
    open_state(path).close()
    db = open_state(path)  # a second open migrates nothing and loses nothing
    version = db.connection.execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS)
    mode = db.connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    db.close()


def test_a_newer_schema_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 999")
    with pytest.raises(ConfigError) as caught:
        open_state(str(path))
    assert "upgrade checkrunner" in str(caught.value)


def test_an_unwritable_path_is_an_input_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as caught:
        open_state(str(blocker / "state.db"))
    assert "--state" in caught.value.hint


def test_default_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CHECKRUN_STATE", str(tmp_path / "x.db"))
    assert default_state_path() == str(tmp_path / "x.db")
    monkeypatch.delenv("CHECKRUN_STATE")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_path() == str(tmp_path / "xdg" / "checkrunner" / "state.db")


def test_a_failed_transaction_writes_nothing(state_target):
    db = open_state(state_target)
    with pytest.raises(RuntimeError), db.transaction() as connection:
        connection.execute("INSERT INTO log_scans VALUES ('h', 'p', 'c', 1.0)")
        raise RuntimeError("crash between two writes")
    assert db.connection.execute("SELECT COUNT(*) FROM log_scans").fetchone()[0] == 0


def test_two_processes_worth_of_writers_wait_for_each_other(state_target):
    path = state_target
    open_state(path).close()
    errors = []

    def writer(n: int) -> None:
        db = open_state(path)
        try:
            for i in range(50):
                with db.transaction() as connection:
                    connection.execute(
                        "INSERT INTO log_scans VALUES (?, 'p', 'c', ?) ON CONFLICT "
                        "(host, play, check_name) DO UPDATE SET scanned_at = excluded.scanned_at",
                        (f"h{n}", i),
                    )
        except Exception as exc:  # pragma: no cover - the assertion below shows it
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db = open_state(path)
    rows = db.connection.execute("SELECT host, scanned_at FROM log_scans ORDER BY host").fetchall()
    assert [tuple(row) for row in rows] == [(f"h{n}", 49.0) for n in range(4)]


def test_rate_per_interval():
    assert rate(30, 60.0, 60.0) == 30.0
    assert rate(30, 120.0, 60.0) == 15.0
    assert rate(5, 10.0, 1.0) == 0.5
    assert rate(5, None, 60.0) is None
    assert rate(5, 0.0, 60.0) is None
    assert rate_unit(60.0) == "/min"
    assert rate_unit(1.0) == "/s"
    assert rate_unit(300.0) == "/300s"


def test_anomaly_needs_enough_history_and_a_real_jump():
    settings = AnomalySettings(k=3, window=5, min_runs=3, min_increase=1)
    assert detect_anomaly(100, [1, 2], settings) is None  # too few runs
    steady = [10, 12, 11, 9, 10, 11]
    assert detect_anomaly(13, steady, settings) is None  # within mean + 3σ
    found = detect_anomaly(40, steady, settings)
    assert found is not None
    # only the last `window` values count
    recent = steady[-5:]
    assert found.runs == 5
    assert found.mean == pytest.approx(sum(recent) / 5)
    assert "far above" in found.describe("errors", settings)


def test_flat_history_needs_min_increase():
    settings = AnomalySettings(k=3, window=10, min_runs=3, min_increase=5)
    zeros = [0, 0, 0, 0]
    assert detect_anomaly(3, zeros, settings) is None  # σ = 0, but not 5 above the mean
    assert detect_anomaly(6, zeros, settings) is not None


def test_another_thread_opens_its_own_connection_to_the_same_file(tmp_path):
    path = tmp_path / "a dir?#%" / "state.db"  # characters a file: URI must escape
    db = open_state(str(path))
    counted: list[int] = []

    def other_thread() -> None:
        mine = db.reopen()  # db.connection itself is refused outside the thread that opened it
        try:
            with mine.transaction() as connection:
                connection.execute("INSERT INTO log_scans VALUES ('h', 'p', 'c', 1.0)")
            counted.append(mine.connection.execute("SELECT COUNT(*) FROM log_scans").fetchone()[0])
        finally:
            mine.close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert counted == [1]
    assert db.connection.execute("SELECT COUNT(*) FROM log_scans").fetchone()[0] == 1
    db.close()
    for leftover in path.parent.iterdir():
        leftover.unlink()
    with pytest.raises(sqlite3.OperationalError):
        db.reopen()  # never creates a database (only open_state does, privately)
    assert list(path.parent.iterdir()) == []


def _log_round(db, plan, hosts: list[str], offset: int):
    """A LogState that read the saved cursors now and observed `hosts`' log check at
    `offset` (two cursors each), not committed yet."""
    from checkrunner.state.logs import LogState

    state = LogState(db)
    state.prepare(plan)
    for host_plan in plan.hosts:
        if host_plan.host.name in hosts:
            (check,) = host_plan.checks
            cursors = {"/var/log/a.log": {"offset": offset}, "/var/log/b.log": {"offset": -offset}}
            result = {"status": "OK", "measurements": {"errors": 0.0}}
            state.observe(check, {"result": {**result, "state": {"cursors": cursors}}})
    return state


def _saved_offsets(db) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for host, path, cursor in db.connection.execute(
        "SELECT host, path, cursor FROM log_cursors ORDER BY host, path"
    ):
        found.setdefault(host, []).append((path, cursor))
    return found


def test_one_commit_writes_the_checks_it_won_and_nothing_of_those_it_lost(state_target, tmp_path):
    """The offsets of a round's log checks are written in one batch (one statement per
    table on PostgreSQL): a check another run committed since its cursors were read (one
    scanned before, `old2`; one first scanned by both, `new2`) keeps the other run's scan
    time and cursors, while in the same commit the checks this run won (one scanned
    before, one first scanned) are written whole."""
    from helpers import plan_from_text

    playbook = (
        "- name: app\n  hosts: all\n  checks:\n    - name: errors\n      log:\n"
        "        path: /var/log/*.log\n        patterns: [{name: errors, regex: ' ERROR '}]\n"
    )
    hosts = ["old1", "old2", "new1", "new2"]
    inventory = "all:\n  hosts:\n" + "".join(
        f"    {h}: {{ansible_connection: local}}\n" for h in hosts
    )
    plan = plan_from_text(tmp_path, playbook, inventory)
    db = open_state(state_target)
    assert _log_round(db, plan, ["old1", "old2"], 10).commit() == set()
    scanned = dict(db.connection.execute("SELECT host, scanned_at FROM log_scans").fetchall())

    mine = _log_round(db, plan, hosts, 30)  # reads old1 and old2 as first committed
    other = _log_round(db, plan, ["old2", "new2"], 20)
    assert other.commit() == set()
    theirs = dict(db.connection.execute("SELECT host, scanned_at FROM log_scans").fetchall())

    lost = mine.commit()
    assert {key.host for key in lost} == {"old2", "new2"}
    now = dict(db.connection.execute("SELECT host, scanned_at FROM log_scans").fetchall())
    assert now["old2"] == theirs["old2"] and now["new2"] == theirs["new2"]
    assert now["old1"] > scanned["old1"] and "new1" in now
    offsets = _saved_offsets(db)
    for host, offset in [("old1", 30), ("new1", 30), ("old2", 20), ("new2", 20)]:
        assert offsets[host] == [
            ("/var/log/a.log", f'{{"offset": {offset}}}'),
            ("/var/log/b.log", f'{{"offset": {-offset}}}'),
        ], host
    # The lost checks read what the database holds next time, and win then.
    again = _log_round(db, plan, hosts, 40)
    assert again.commit() == set()
    assert {
        host for host, cursors in _saved_offsets(db).items() if '{"offset": 40}' in cursors[0]
    } == set(hosts)
    db.close()


def test_alert_state_written_in_batches_keeps_order_and_the_last_word(state_target):
    """The alert store writes many rows per statement on PostgreSQL (arrays): queued
    messages keep their order (ids ascending), an alert given twice is saved as given
    last, resolved alerts and streaks of hundreds of checks land whole, and alerts are
    read back by fingerprint past SQLite's variable limit."""
    from checkrunner.state.alerts import AlertStore, OutboxMessage, StoredAlert
    from checkrunner.state.keys import CheckKey

    db = open_state(state_target)
    fingerprints = [f"fp{n:04d}" for n in range(1200)]
    with db.transaction() as connection:
        store = AlertStore(connection)
        store.save_firing(
            [
                *(StoredAlert(fp, {"n": fp}, {}, 1.0) for fp in fingerprints),
                StoredAlert("fp0003", {"n": "again"}, {"a": "b"}, 2),  # an int time
            ],
            10.0,
        )
        store.save_resolved(fingerprints[:700], 20.0)
        store.save_streaks({CheckKey(f"h{n}", "p", "c"): n % 3 for n in range(900)}, 30)
        store.queue(
            [OutboxMessage("ops", "webhook", 0, "ops:webhook:0", "g", {"n": n}) for n in (3, 1, 2)],
            40.0,
        )
    found = AlertStore(db.connection).alerts(reversed(fingerprints))
    assert sorted(found) == fingerprints
    assert found["fp0003"] == StoredAlert("fp0003", {"n": "again"}, {"a": "b"}, 2.0, 20.0)
    assert [fp for fp, alert in sorted(found.items()) if alert.ends_at is None] == fingerprints[
        700:
    ]
    assert len(AlertStore(db.connection).failing_streaks()) == 600
    payloads = db.connection.execute("SELECT payload FROM outbox ORDER BY id").fetchall()
    assert [row[0] for row in payloads] == ['{"n": 3}', '{"n": 1}', '{"n": 2}']
    db.close()
