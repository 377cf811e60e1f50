"""Kept connections (watch mode): one connection and one live target python per host, modules
shipped once, reconnected after a crash, refused after a host key change; over real sshd on
loopback and local subprocesses (transport/live.py, modules/_batch.py's _serve)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest
from helpers import plan_from_text, wait_for
from hostile import fake_live_interpreter

from checkrunner.inventory.model import Host
from checkrunner.results import Status, UnreachableReason
from checkrunner.runner import RunOptions, run_plan
from checkrunner.settings import TARGET_MEMORY_LIMIT, TARGET_NICE
from checkrunner.transport import (
    Batch,
    BatchCheck,
    ExecResult,
    ProtocolError,
    Transports,
    Unreachable,
    parse_output,
)
from checkrunner.transport.base import TransportEvent
from checkrunner.transport.live import LIVE_MARKER
from checkrunner.transport.ssh_config import SSHOptions

SSH_ADDRESSES = ["127.0.43.1", "127.0.43.2"]
MEMORY = Batch(checks=[BatchCheck("0.0", "memory", {}, 10), BatchCheck("0.1", "load", {}, 10)])
WITH_CPU = Batch(
    checks=[*MEMORY.checks, BatchCheck("0.2", "cpu", {"sample": 0.1}, 10)],
)


def ssh_available() -> bool:
    from sshd import sshd_available

    return sshd_available() or os.geteuid() == 0


needs_sshd = pytest.mark.skipif(not ssh_available(), reason="needs /usr/sbin/sshd")


@dataclass
class Target:
    """Hosts and ssh options that reach one kind of target, and the events of its transports."""

    kind: str
    options: SSHOptions | None = None
    server: object = None
    events: list[TransportEvent] = field(default_factory=list)

    def host(self, name: str = "t", address: str = SSH_ADDRESSES[0], **variables) -> Host:
        if self.kind == "local":
            base = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        else:
            base = {
                "ansible_host": address,
                "ansible_port": self.server.port,
                "ansible_user": self.server.user,
                "ansible_python_interpreter": sys.executable,
            }
        return Host(name, vars={**base, **variables})

    def transports(self) -> Transports:
        return Transports(self.options, keep_alive=True, on_event=self.events.append)

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]


def ssh_options(server, tmp_path: Path) -> SSHOptions:
    return SSHOptions(
        known_hosts=(str(server.write_known_hosts(tmp_path / "known_hosts")),),
        accept_new_file=str(tmp_path / "accepted_known_hosts"),
        ssh_config="none",
        private_key=str(server.client_key),
        allow_agent=False,
        look_for_keys=False,
        connect_timeout=5.0,
        global_known_hosts=(),
    )


@pytest.fixture(scope="module")
def shared_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not ssh_available():
        pytest.skip("needs /usr/sbin/sshd")
    from sshd import running_sshd

    with running_sshd(tmp_path_factory.mktemp("sshd"), SSH_ADDRESSES) as server:
        yield server


@pytest.fixture(params=["local", "ssh"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "local":
        return Target("local")
    server = request.getfixturevalue("shared_sshd")
    return Target("ssh", ssh_options(server, tmp_path), server)


@pytest.fixture
def own_sshd(tmp_path: Path) -> Iterator[Target]:
    """An sshd of this test alone, which it may kill and restart."""
    if not ssh_available():
        pytest.skip("needs /usr/sbin/sshd")
    from sshd import running_sshd

    with running_sshd(tmp_path / "sshd", ["127.0.43.9"]) as server:
        yield Target("ssh", ssh_options(server, tmp_path), server)


def answer_of(result: ExecResult, batch: Batch = MEMORY) -> dict:
    return parse_output(result.stdout, [c.id for c in batch.checks])


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def live_pids() -> set[int]:
    """Pids of live target processes (their command line holds the live bootstrap)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if LIVE_MARKER in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                pass
    return found


# --- one process, modules shipped once ----------------------------------------------------


def test_rounds_reuse_one_target_process_and_ship_each_module_once(target: Target):
    transports = target.transports()
    host = target.host()
    try:
        first = transports.run_batch(host, MEMORY, 30)
        second = transports.run_batch(host, MEMORY, 30)
        with_cpu = transports.run_batch(host, WITH_CPU, 30)
        again = transports.run_batch(host, WITH_CPU, 30)
    finally:
        transports.close()
    pids = {answer_of(r, b)["pid"] for r, b in [(first, MEMORY), (second, MEMORY)]}
    pids |= {answer_of(r, WITH_CPU)["pid"] for r in (with_cpu, again)}
    assert len(pids) == 1
    assert answer_of(second)["results"][0]["result"]["measurements"]["total"] > 0
    # the program and the modules went once: a later round is a small request
    assert second.sent_bytes * 5 < first.sent_bytes, (first.sent_bytes, second.sent_bytes)
    # cpu (and the procfs helper it imports) are shipped when a round first needs them
    assert with_cpu.sent_bytes > 2 * second.sent_bytes
    assert again.sent_bytes * 3 < with_cpu.sent_bytes
    assert 0 < second.received_bytes < first.received_bytes + 2000
    assert answer_of(again, WITH_CPU)["results"][2]["result"]["measurements"]["busy"] >= 0
    assert target.kinds() == ["connected"]


@needs_sshd
def test_an_idle_kept_connection_wakes_the_control_node_once_a_second_not_ten_times(
    shared_sshd, tmp_path: Path
):
    # paramiko's reader thread wakes on every timeout of its socket's reads (0.1 s unless
    # told): between rounds, each kept connection would cost the control node CPU.
    target = Target("ssh", ssh_options(shared_sshd, tmp_path), shared_sshd)
    transports = target.transports()
    before = set(threading.enumerate())  # another test's reader may still be winding down
    try:
        transports.run_batch(target.host(), MEMORY, 30)
        readers = [
            t
            for t in threading.enumerate()
            if isinstance(t, paramiko.Transport) and t not in before
        ]
        assert readers and all(t.is_active() for t in readers)
        assert all(t.sock.gettimeout() >= 1.0 for t in readers), [
            t.sock.gettimeout() for t in readers
        ]
    finally:
        transports.close()


def test_the_live_process_is_niced_and_memory_capped(target: Target):
    transports = target.transports()
    try:
        pid = answer_of(transports.run_batch(target.host(), MEMORY, 30))["pid"]
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        limits = Path(f"/proc/{pid}/limits").read_text()
    finally:
        transports.close()
    assert int(fields[16]) == min(19, os.nice(0) + TARGET_NICE.default)  # field 19: nice
    (data,) = [line for line in limits.splitlines() if line.startswith("Max data size")]
    assert data.split()[3] == str(TARGET_MEMORY_LIMIT.default)  # the soft limit


def test_close_leaves_no_target_process_behind(target: Target):
    transports = target.transports()
    hosts = [target.host("a"), target.host("b", ansible_become=True)]
    if target.kind == "ssh":
        hosts[1] = target.host("b", SSH_ADDRESSES[1])
    pids = [answer_of(transports.run_batch(h, MEMORY, 30))["pid"] for h in hosts]
    assert len(set(pids)) == 2 and all(running(pid) for pid in pids)
    assert set(pids) <= live_pids()
    transports.close()
    wait_for(lambda: not any(running(pid) for pid in pids), "the live processes to exit", 15)
    assert not set(pids) & live_pids()


def test_an_idle_live_process_leaves_and_the_next_round_reconnects(target: Target):
    transports = Transports(
        target.options, keep_alive=True, on_event=target.events.append, idle_timeout=1.0
    )
    host = target.host()
    try:
        pid = answer_of(transports.run_batch(host, MEMORY, 30))["pid"]
        wait_for(lambda: not running(pid), "the idle process to leave")
        assert answer_of(transports.run_batch(host, MEMORY, 30))["pid"] != pid
    finally:
        transports.close()
    assert target.kinds() == ["connected", "lost", "reconnected"]


def test_forget_closes_one_host_and_its_next_round_reconnects(target: Target):
    transports = target.transports()
    a, b = target.host("a"), target.host("b", SSH_ADDRESSES[1])
    try:
        pid_a = answer_of(transports.run_batch(a, MEMORY, 30))["pid"]
        pid_b = answer_of(transports.run_batch(b, MEMORY, 30))["pid"]
        transports.forget("a")
        wait_for(lambda: not running(pid_a), "the forgotten host's process to exit", 15)
        assert running(pid_b)
        assert answer_of(transports.run_batch(a, MEMORY, 30))["pid"] != pid_a
        assert answer_of(transports.run_batch(b, MEMORY, 30))["pid"] == pid_b
    finally:
        transports.close()
    assert target.kinds() == ["connected", "connected", "reconnected"]


# --- crashes and replaced hosts -----------------------------------------------------------


def test_a_killed_target_process_is_replaced_in_the_next_round(target: Target):
    transports = target.transports()
    host = target.host()
    try:
        pid = answer_of(transports.run_batch(host, MEMORY, 30))["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not running(pid), "the target process to die")
        result = transports.run_batch(host, MEMORY, 30)
    finally:
        transports.close()
    answer = answer_of(result)
    assert answer["pid"] != pid
    assert answer["results"][0]["result"]["measurements"]["total"] > 0
    assert target.kinds() == ["connected", "lost", "reconnected"]
    assert "ended" in target.events[1].detail


def test_a_killed_ssh_session_is_reconnected(own_sshd: Target):
    from sshd import kill_sessions

    transports = own_sshd.transports()
    host = own_sshd.host(address="127.0.43.9")
    try:
        pid = answer_of(transports.run_batch(host, MEMORY, 30))["pid"]
        kill_sessions(own_sshd.server)
        wait_for(lambda: not running(pid), "the session to die")
        answer = answer_of(transports.run_batch(host, MEMORY, 30))
    finally:
        transports.close()
    assert answer["pid"] != pid
    assert own_sshd.kinds() == ["connected", "lost", "reconnected"]


def test_a_rebooted_host_is_reconnected(own_sshd: Target):
    from sshd import restart

    transports = own_sshd.transports()
    host = own_sshd.host(address="127.0.43.9")
    try:
        pid = answer_of(transports.run_batch(host, MEMORY, 30))["pid"]
        restart(own_sshd.server)
        answer = answer_of(transports.run_batch(host, MEMORY, 30))
    finally:
        transports.close()
    assert answer["pid"] != pid
    assert own_sshd.kinds() == ["connected", "lost", "reconnected"]


def test_a_replaced_host_with_a_new_key_is_refused_as_a_one_shot_run_refuses_it(
    own_sshd: Target,
):
    from sshd import restart

    transports = own_sshd.transports()
    host = own_sshd.host(address="127.0.43.9")
    try:
        answer_of(transports.run_batch(host, MEMORY, 30))
        restart(own_sshd.server, new_host_key=True)
        for _ in range(2):  # the kept session is gone, and no new one is accepted
            with pytest.raises(Unreachable) as info:
                transports.run_batch(host, MEMORY, 30)
            assert info.value.reason == UnreachableReason.HOST_KEY_CHANGED
            assert "ssh-keygen -R" in info.value.message
    finally:
        transports.close()
    assert own_sshd.kinds() == ["connected", "lost"]


# --- hostile live targets -------------------------------------------------------------------

HOSTILE = {
    # case: (expression answered to each request, greeting, host status, text of the message)
    "oversized": ("HEADER.pack(2**31, 0)", True, "remote-crash", "announced a frame of"),
    "garbage": ("HEADER.pack(10, 0) + b'0123456789'", True, "remote-crash", "unreadable frame"),
    "inflated": ("frame(b' ' * (MAX + 10))", True, "remote-crash", "more than 64 MiB"),
    "not_json": ("frame(b'not json')", True, "remote-crash", "unreadable result"),
    "wrong_ids": ("answer(['9.9'])", True, "remote-crash", "never asked for"),
    "noise": ("b'x' * 100000", False, "remote-crash", "without the live greeting"),
    "silence": ("HEADER.pack(1000, 0) + b'abc'", True, "timeout", "host deadline of 6s"),
}


def hostile_inventory(tmp_path: Path, common: str) -> str:
    lines = [
        "all:",
        "  hosts:",
        f"    healthy: {{{common}ansible_python_interpreter: {sys.executable}}}",
    ]
    for case, (expression, greeting, _, _) in HOSTILE.items():
        script = fake_live_interpreter(
            tmp_path / f"live_{case}", expression, b"__CHECKRUN_LIVE__1\n" if greeting else b""
        )
        lines.append(f"    {case}: {{{common}ansible_python_interpreter: {script}}}")
    return "\n".join(lines) + "\n"


PLAYBOOK = """\
- name: m
  hosts: all
  checks:
    - {name: memory, memory: {}}
    - {name: load, load: {}}
"""


@pytest.mark.parametrize("kind", ["local", "ssh"])
def test_hostile_frames_fail_only_their_host_within_its_deadline(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
):
    options = None
    common = "ansible_connection: local, "
    if kind == "ssh":
        server = request.getfixturevalue("shared_sshd")
        options = ssh_options(server, tmp_path)
        common = (
            f"ansible_host: {SSH_ADDRESSES[0]}, ansible_port: {server.port}, "
            f"ansible_user: {server.user}, "
        )
    plan = plan_from_text(tmp_path, PLAYBOOK, hostile_inventory(tmp_path, common))
    started = time.monotonic()
    with Transports(options, keep_alive=True) as transports:
        for _ in range(2):  # the second round reconnects each failed host and fails it again
            run = run_plan(plan, RunOptions(forks=16, host_timeout=6.0), (), transports)
            hosts = {h.host: h for h in run.hosts}
            assert hosts["healthy"].reachable and hosts["healthy"].status == Status.OK
            for case, (_, _, reason, text) in HOSTILE.items():
                assert hosts[case].reason == reason, (case, hosts[case].message)
                assert text in hosts[case].message, (case, hosts[case].message)
    assert time.monotonic() - started < 90  # two rounds of 6 s deadlines, on a loaded machine


def test_a_retiring_target_answers_and_is_replaced_next_round(tmp_path: Path):
    script = fake_live_interpreter(tmp_path / "retiring", "answer(ids, 1)", exit_after=True)
    target = Target("local")
    transports = target.transports()
    host = target.host(ansible_python_interpreter=str(script))
    try:
        for _ in range(2):
            assert answer_of(transports.run_batch(host, MEMORY, 10))["pid"] == 4242
    finally:
        transports.close()
    assert target.kinds() == ["connected", "lost", "reconnected", "lost"]
    assert target.events[1].detail == "the target process retired itself: 2 check threads hung"


def test_an_answer_nobody_asked_for_fails_the_next_round_and_the_host_reconnects(tmp_path: Path):
    """Two answers to one request: the second must never pass for the next round's."""
    script = fake_live_interpreter(tmp_path / "twice", "answer(ids) + answer(ids)")
    target = Target("local")
    transports = target.transports()
    host = target.host(ansible_python_interpreter=str(script))
    try:
        assert answer_of(transports.run_batch(host, MEMORY, 10))["pid"] == 4242
        time.sleep(0.2)  # the second answer has arrived
        with pytest.raises(ProtocolError, match="bytes nobody asked for"):
            transports.run_batch(host, MEMORY, 10)
        assert answer_of(transports.run_batch(host, MEMORY, 10))["pid"] == 4242
    finally:
        transports.close()
    assert target.kinds() == ["connected", "lost", "reconnected"]


def test_a_missing_interpreter_over_a_kept_connection_is_no_python(target: Target):
    transports = target.transports()
    host = target.host(ansible_python_interpreter="/nonexistent/bin/python3")
    try:
        with pytest.raises(Unreachable) as info:
            transports.run_batch(host, MEMORY, 30)
    finally:
        transports.close()
    assert info.value.reason == UnreachableReason.NO_PYTHON


def test_a_hung_check_is_cut_at_the_deadline_and_the_host_reconnects(target: Target):
    from checkrunner import catalog
    from checkrunner.config import normalize_args
    from checkrunner.errors import Location

    args = normalize_args(catalog.get("command"), {"cmd": ["sleep", "30"]}, Location("test"))
    hung = Batch(checks=[BatchCheck("0.0", "command", args, 20.0)])
    transports = target.transports()
    host = target.host()
    try:
        pid = answer_of(transports.run_batch(host, MEMORY, 30))["pid"]
        started = time.monotonic()
        with pytest.raises(Unreachable) as info:
            transports.run_batch(host, hung, 1.5)
        assert time.monotonic() - started < 10
        assert info.value.reason == UnreachableReason.TIMEOUT
        wait_for(lambda: not running(pid), "the hung process to be ended")
        assert answer_of(transports.run_batch(host, MEMORY, 30))["pid"] != pid
    finally:
        transports.close()
    assert target.kinds() == ["connected", "lost", "reconnected"]


# --- what a one-shot run keeps doing --------------------------------------------------------


def test_without_keep_alive_every_call_is_a_fresh_process(target: Target):
    transports = Transports(target.options, on_event=target.events.append)
    try:
        results = [transports.run_batch(target.host(), MEMORY, 30) for _ in range(2)]
    finally:
        transports.close()
    assert all("pid" not in answer_of(r) for r in results)  # the one-shot program answered
    assert results[0].sent_bytes == results[1].sent_bytes > 1000
    assert target.events == []


def test_log_cursors_advance_across_kept_rounds(target: Target, tmp_path: Path):
    """A kept process serves the log module's cursors as a fresh one does: each round counts
    only the lines written since the last, none twice, none skipped."""
    from checkrunner.state.db import open_state
    from checkrunner.state.logs import LogState

    log = tmp_path / "app.log"
    log.write_text("")
    playbook = (
        "- name: logs\n  hosts: all\n  checks:\n    - name: app log\n      log:\n"
        f"        path: {log}\n        start: beginning\n"
        "        patterns:\n          - {name: errors, regex: ' ERROR '}\n"
    )
    host_vars = ", ".join(f"{k}: '{v}'" for k, v in target.host().vars.items())
    plan = plan_from_text(tmp_path, playbook, f"all:\n  hosts:\n    t: {{{host_vars}}}\n")
    db = open_state(str(tmp_path / "state.db"))
    counts = []
    with target.transports() as transports:
        for errors in (3, 0, 2, 5):
            with log.open("a") as handle:
                handle.writelines(
                    f"12:00:{n:02d} ERROR db lost\n12:00 INFO ok\n" for n in range(errors)
                )
            log_state = LogState(db)
            log_state.prepare(plan)
            run = run_plan(plan, RunOptions(observe=log_state.observe), (), transports)
            log_state.commit()
            (check,) = run.hosts[0].checks
            counts.append(check.measurements["errors"])
    assert counts == [3, 0, 2, 5]
    assert target.kinds() == ["connected"]  # all four rounds in one live process


def test_the_live_process_retires_with_hung_threads_or_past_half_its_memory_cap():
    """What _serve asks after each answer (run here, in this process, as on a target)."""
    import threading

    from checkrunner.modules import _batch

    rss = _batch._rss_bytes()
    assert _batch._retire_reason({"memory_limit": rss}).startswith("resident memory")
    assert _batch._retire_reason({"memory_limit": 4 * rss}) is None
    release = threading.Event()
    slots = threading.BoundedSemaphore(1)
    slots.acquire()
    hung = _batch._CheckThread({"id": "0.0", "module": "x"}, release.wait, (), slots)
    hung.start()
    try:
        assert _batch._retire_reason({"max_parallel": 1}) == "1 check threads hung"
    finally:
        release.set()
        hung.join()
    assert _batch._retire_reason({"max_parallel": 1}) is None


def test_forget_during_a_round_stops_it_at_once(target: Target):
    import threading

    from checkrunner import catalog
    from checkrunner.config import normalize_args
    from checkrunner.errors import Location

    args = normalize_args(catalog.get("command"), {"cmd": ["sleep", "30"]}, Location("test"))
    slow = Batch(checks=[BatchCheck("0.0", "command", args, 20.0)])
    transports = target.transports()
    host = target.host()
    outcome: list[BaseException] = []

    def round_in_flight() -> None:
        try:
            transports.run_batch(host, slow, 25)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome.append(exc)

    try:
        pid = answer_of(transports.run_batch(host, MEMORY, 30))["pid"]
        thread = threading.Thread(target=round_in_flight)
        thread.start()
        time.sleep(1.0)
        started = time.monotonic()
        transports.forget(host.name)
        thread.join(15)
        assert not thread.is_alive() and time.monotonic() - started < 10
        assert isinstance(outcome[0], Unreachable) and outcome[0].message == "interrupted"
        wait_for(lambda: not running(pid), "the forgotten process to exit")
        assert answer_of(transports.run_batch(host, MEMORY, 30))["pid"] != pid
    finally:
        transports.close()


def test_kept_connections_behind_a_jump_host_share_one_jump_connection(shared_sshd, tmp_path: Path):
    """ProxyJump as for one-shot runs: one connection to the jump host for every target
    behind it, and across rounds no new connection anywhere."""
    target = Target("ssh", ssh_options(shared_sshd, tmp_path), shared_sshd)
    jump = f"-J {shared_sshd.user}@{SSH_ADDRESSES[0]}:{shared_sshd.port}"
    hosts = [
        target.host(f"behind-{n}", SSH_ADDRESSES[1], ansible_ssh_common_args=jump) for n in (1, 2)
    ]
    mark = len(shared_sshd.log_text())
    transports = target.transports()
    try:
        for _ in range(3):
            pids = {answer_of(transports.run_batch(h, MEMORY, 30))["pid"] for h in hosts}
            assert len(pids) == 2
    finally:
        transports.close()
    log = shared_sshd.log_text()[mark:]
    assert log.count(f" on {SSH_ADDRESSES[0]} port {shared_sshd.port}") == 1  # the jump host
    assert log.count(f" on {SSH_ADDRESSES[1]} port {shared_sshd.port}") == 2  # one per target
    assert target.kinds() == ["connected", "connected"]


PYTHON36 = next(iter(sorted(Path.home().glob(".pyenv/versions/3.6.*/bin/python3"))), None)


@pytest.mark.skipif(PYTHON36 is None, reason="no Python 3.6 interpreter on this machine")
def test_the_live_program_serves_rounds_on_python36():
    """Syntax checks miss 3.7+ library calls: serve real rounds from an old interpreter."""
    target = Target("local")
    transports = target.transports()
    host = target.host(ansible_python_interpreter=str(PYTHON36))
    try:
        answers = [answer_of(transports.run_batch(host, WITH_CPU, 30), WITH_CPU) for _ in range(2)]
    finally:
        transports.close()
    assert answers[0]["python"].startswith("3.6.") and answers[0]["pid"] == answers[1]["pid"]
    assert all("result" in entry for entry in answers[1]["results"])
