"""run_plan, directly: retries, --wait, the become split, host deadlines, remote crashes,
isolation between hosts and progress events, over an in-process transport (tests/inprocess.py)
handed in through Transports, the way checkrunner.app hands in the real ones."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from helpers import plan_from_text
from inprocess import HANG, Call, InProcessTransport, answer, crash, garbage

from checkrunner.plan import Plan
from checkrunner.results import HostResult, Status, UnreachableReason
from checkrunner.runner import RunOptions, run_plan
from checkrunner.settings import HOST_DEADLINE_SLACK
from checkrunner.transport import BatchOptions, Transports, Unreachable

INVENTORY = """\
all:
  hosts:
    alpha: {ansible_connection: local}
    beta: {ansible_connection: local}
    gamma: {ansible_connection: local}
"""


def make_plan(tmp_path: Path, playbook: str, inventory: str = INVENTORY, **options) -> Plan:
    return plan_from_text(tmp_path, playbook, inventory, **options)


def run(plan: Plan, transport: InProcessTransport, **options) -> tuple:
    transports = Transports(local=transport, ssh=transport)
    result = run_plan(plan, RunOptions(**options), transports=transports)
    return result, {host.host: host for host in result.hosts}


def ok(call: Call):
    return answer(call, status="OK", message="fine")


ONE_CHECK = """\
- hosts: all
  checks:
    - name: service
      command: {cmd: "true"}
      timeout: 7s
"""


def test_every_host_runs_one_batch_and_is_reported_in_inventory_order(tmp_path):
    plan = make_plan(tmp_path, ONE_CHECK)
    transport = InProcessTransport(ok)
    result, hosts = run(plan, transport)
    assert [h.host for h in result.hosts] == ["alpha", "beta", "gamma"]
    assert all(h.status == Status.OK and h.checks[0].message == "fine" for h in result.hosts)
    assert sorted(c.host for c in transport.calls) == ["alpha", "beta", "gamma"]
    assert result.exit_code == 0


def test_the_caller_owns_the_transports_and_a_run_without_them_builds_its_own(tmp_path):
    plan = make_plan(tmp_path, ONE_CHECK)
    transport = InProcessTransport(ok)
    with Transports(local=transport) as transports:
        run_plan(plan, RunOptions(), transports=transports)
        run_plan(plan, RunOptions(), transports=transports)  # one pool, several runs
        assert transport.closed == 0
        assert transports.for_host(plan.hosts[0].host) is transport
    assert transport.closed == 1
    assert len(transport.calls) == 6


def test_retries_run_a_failing_check_again_until_it_passes(tmp_path):
    plan = make_plan(
        tmp_path,
        """\
- hosts: alpha
  checks:
    - name: flaky
      command: {cmd: "true"}
      retries: 3
      delay: 0s
    - name: steady
      command: {cmd: "true"}
""",
    )

    def respond(call: Call):
        flaky = "CRITICAL" if call.number < 3 else "OK"
        return answer(call, {"0.0": {"status": flaky}}, status="OK")

    transport = InProcessTransport(respond)
    _, hosts = run(plan, transport)
    flaky, steady = hosts["alpha"].checks
    assert (flaky.status, flaky.attempts) == (Status.OK, 3)
    assert (steady.status, steady.attempts) == (Status.OK, 1)
    # only the failing check travels again
    assert [c.check_ids for c in transport.calls] == [["0.0", "0.1"], ["0.0"], ["0.0"]]


def test_retries_end_and_the_last_attempt_counts(tmp_path):
    plan = make_plan(
        tmp_path,
        """\
- hosts: alpha
  checks:
    - command: {cmd: "false"}
      retries: 2
      delay: 0s
""",
    )
    transport = InProcessTransport(
        lambda call: answer(call, status="CRITICAL", message=f"try {call.number}")
    )
    result, hosts = run(plan, transport)
    check = hosts["alpha"].checks[0]
    assert (check.status, check.attempts, check.message) == (Status.CRITICAL, 3, "try 3")
    assert len(transport.calls) == 3
    assert result.exit_code == 2


def test_wait_keeps_trying_an_unreachable_host_until_it_answers(tmp_path):
    plan = make_plan(tmp_path, ONE_CHECK)

    def respond(call: Call):
        if call.host == "alpha" and call.number < 3:
            raise Unreachable(UnreachableReason.REFUSED, "connection refused")
        return ok(call)

    transport = InProcessTransport(respond)
    _, hosts = run(plan, transport, wait=60.0, wait_interval=0.01)
    assert hosts["alpha"].reachable and hosts["alpha"].status == Status.OK
    assert len(transport.calls_for("alpha")) == 3
    assert len(transport.calls_for("beta")) == 1


def test_wait_keeps_running_a_failing_check_until_it_passes(tmp_path):
    plan = make_plan(tmp_path, ONE_CHECK)

    def respond(call: Call):
        return answer(call, status="CRITICAL" if call.number < 4 else "OK")

    transport = InProcessTransport(respond)
    _, hosts = run(plan, transport, wait=60.0, wait_interval=0.01)
    assert hosts["alpha"].checks[0].status == Status.OK
    assert hosts["alpha"].checks[0].attempts == 4


def test_without_wait_an_unreachable_host_is_tried_once(tmp_path):
    plan = make_plan(tmp_path, ONE_CHECK)

    def respond(call: Call):
        raise Unreachable(UnreachableReason.REFUSED, "connection refused")

    transport = InProcessTransport(respond)
    result, hosts = run(plan, transport)
    assert [h.reason for h in result.hosts] == ["refused"] * 3
    assert hosts["alpha"].message == "connection refused"
    assert len(transport.calls) == 3
    assert result.exit_code == 4


def test_wait_ends_when_its_time_runs_out(tmp_path):
    plan = make_plan(tmp_path, ONE_CHECK)

    def respond(call: Call):
        raise Unreachable(UnreachableReason.REFUSED, "connection refused")

    transport = InProcessTransport(respond)
    # the interval is longer than the wait itself: no second attempt fits
    _, hosts = run(plan, transport, wait=0.5, wait_interval=5.0)
    assert hosts["alpha"].reason == "refused"
    assert len(transport.calls_for("alpha")) == 1


def test_an_unsupported_connection_is_never_waited_for_and_never_stops_the_others(tmp_path):
    inventory = INVENTORY.replace(
        "beta: {ansible_connection: local}", "beta: {ansible_connection: winrm}"
    )
    plan = make_plan(tmp_path, ONE_CHECK, inventory)
    transport = InProcessTransport(ok)
    _, hosts = run(plan, transport, wait=60.0, wait_interval=0.01)
    assert hosts["beta"].reason == UnreachableReason.UNSUPPORTED_CONNECTION.value
    assert "winrm" in hosts["beta"].message
    assert hosts["alpha"].status == hosts["gamma"].status == Status.OK
    assert transport.calls_for("beta") == []


BECOME_SPLIT = """\
- hosts: all
  checks:
    - name: as the login user
      command: {cmd: "id -u"}
    - name: as root
      command: {cmd: "id -u"}
      become: yes
    - name: as the login user too
      command: {cmd: "id -u"}
"""


def test_checks_that_become_travel_in_their_own_batch(tmp_path):
    inventory = """\
all:
  hosts:
    alpha: {ansible_connection: local}
    beta: {ansible_connection: local, ansible_become_password: from-inventory}
"""
    plan = make_plan(tmp_path, BECOME_SPLIT, inventory)
    transport = InProcessTransport(ok)
    _, hosts = run(plan, transport, become_password="from-command-line")
    for name, password in (("alpha", "from-command-line"), ("beta", "from-inventory")):
        calls = sorted(transport.calls_for(name), key=lambda c: c.become)
        assert [(c.become, c.check_ids) for c in calls] == [
            (False, ["0.0", "0.2"]),
            (True, ["0.1"]),
        ]
        assert calls[1].become_password == password
        assert [c.status for c in hosts[name].checks] == [Status.OK] * 3
        # the report keeps the playbook's order, whatever batch a check ran in
        assert [c.name for c in hosts[name].checks] == [
            "as the login user",
            "as root",
            "as the login user too",
        ]


def test_the_play_decides_become_whatever_the_inventory_says(tmp_path):
    inventory = "all:\n  hosts:\n    alpha: {ansible_connection: local, ansible_become: yes}\n"
    plan = make_plan(
        tmp_path,
        "- hosts: all\n  become: no\n  checks:\n    - command: {cmd: 'true'}\n",
        inventory,
    )
    transport = InProcessTransport(ok)
    run(plan, transport)
    assert [c.become for c in transport.calls] == [False]
    assert plan.hosts[0].host.become  # the plan's host is left as the inventory made it


def test_the_host_deadline_covers_the_longest_check_and_its_sample_window(tmp_path):
    plan = make_plan(
        tmp_path,
        """\
- hosts: alpha
  checks:
    - command: {cmd: "true"}
      timeout: 7s
    - cpu: {sample: 3s}
      timeout: 2s
""",
    )
    transport = InProcessTransport(ok)
    run(plan, transport)
    assert transport.calls[0].timeout == pytest.approx(7 + 3 + HOST_DEADLINE_SLACK)
    transport = InProcessTransport(ok)
    run(plan, transport, host_timeout=42.0)
    assert transport.calls[0].timeout == 42.0


def test_a_host_past_its_deadline_is_unreachable_and_the_others_finish(tmp_path):
    plan = make_plan(tmp_path, ONE_CHECK)

    def respond(call: Call):
        return HANG if call.host == "beta" else ok(call)

    transport = InProcessTransport(respond)
    result, hosts = run(plan, transport, host_timeout=0.2)
    assert hosts["beta"].reason == UnreachableReason.TIMEOUT.value
    assert "host deadline of 0.2s" in hosts["beta"].message
    assert hosts["alpha"].status == hosts["gamma"].status == Status.OK
    assert result.exit_code == 4


@pytest.mark.parametrize(
    ("respond", "expected"),
    [
        (
            lambda call: crash("Traceback (most recent call last):\nMemoryError: out of memory"),
            "MemoryError: out of memory",
        ),
        (lambda call: garbage('{"version": 1, "results": 7}'), "'results' is not a list"),
        (lambda call: garbage("{not json"), "unreadable result"),
        (
            lambda call: answer(dataclasses.replace(call, check_ids=["9.9"])),
            "'9.9' was never asked for",
        ),
    ],
)
def test_a_remote_crash_makes_every_check_of_the_batch_unknown(tmp_path, respond, expected):
    plan = make_plan(tmp_path, BECOME_SPLIT.replace("hosts: all", "hosts: alpha"))
    transport = InProcessTransport(respond)
    _, hosts = run(plan, transport)
    host = hosts["alpha"]
    assert host.reachable and host.reason == UnreachableReason.REMOTE_CRASH.value
    assert host.message.startswith("remote crash: ") and expected in host.message
    # the first batch crashed: nothing more is sent, every check is UNKNOWN with the reason
    assert len(transport.calls) == 1
    assert [c.status for c in host.checks] == [Status.UNKNOWN] * 3
    assert all(c.message == host.message for c in host.checks)


def test_a_check_missing_from_the_answer_is_unknown(tmp_path):
    plan = make_plan(tmp_path, BECOME_SPLIT.replace("become: yes", "become: no"))

    def respond(call: Call):
        return answer(dataclasses.replace(call, check_ids=call.check_ids[:2]), status="OK")

    _, hosts = run(plan, InProcessTransport(respond))
    statuses = [(c.status, c.message) for c in hosts["alpha"].checks]
    assert statuses[:2] == [(Status.OK, ""), (Status.OK, "")]
    assert statuses[2] == (Status.UNKNOWN, "no result from the target")


def test_one_failing_host_never_stops_the_others(tmp_path):
    plan = make_plan(tmp_path, ONE_CHECK)

    def respond(call: Call):
        if call.host == "alpha":
            raise Unreachable(UnreachableReason.AUTH, "permission denied (publickey)")
        if call.host == "beta":
            return crash("Segmentation fault")
        return ok(call)

    result, hosts = run(plan, InProcessTransport(respond))
    assert [h.status for h in result.hosts] == [Status.UNREACHABLE, Status.UNKNOWN, Status.OK]
    assert hosts["alpha"].reason == "auth"
    assert hosts["beta"].reason == "remote-crash"


def test_skipped_checks_are_reported_and_never_sent(tmp_path):
    plan = make_plan(
        tmp_path,
        """\
- hosts: alpha
  checks:
    - name: never
      command: {cmd: "true"}
      when: false
    - name: always
      command: {cmd: "true"}
""",
    )
    transport = InProcessTransport(ok)
    _, hosts = run(plan, transport)
    assert [c.status for c in hosts["alpha"].checks] == [Status.SKIPPED, Status.OK]
    assert transport.calls[0].check_ids == ["0.1"]


def test_the_batch_options_reach_the_target(tmp_path):
    plan = make_plan(tmp_path, ONE_CHECK)
    transport = InProcessTransport(ok)
    run(plan, transport, batch_options=BatchOptions(psutil=False, nice=3, memory_limit=1234))
    assert transport.calls[0].options["nice"] == 3
    assert transport.calls[0].options["memory_limit"] == 1234
    assert transport.calls[0].options["psutil"] is False


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.lock = threading.Lock()

    def on_start(self, total_hosts: int, total_checks: int) -> None:
        with self.lock:
            self.events.append(("start", total_hosts, total_checks))

    def on_host_done(self, host: HostResult) -> None:
        with self.lock:
            self.events.append(("done", host.host, host.checks[0].message))


def test_listeners_hear_the_start_and_each_host_as_it_finishes_masked(tmp_path):
    plan = make_plan(tmp_path, BECOME_SPLIT)
    release_alpha = threading.Event()

    def respond(call: Call):
        if call.host == "alpha":
            release_alpha.wait(30)  # alpha finishes last: events come in finishing order
        return answer(call, status="OK", message=f"secret of {call.host}")

    recorder = Recorder()

    class ReleaseAlpha:
        def on_start(self, total_hosts: int, total_checks: int) -> None:
            pass

        def on_host_done(self, host: HostResult) -> None:
            if host.host != "alpha" and sum(e[0] == "done" for e in recorder.events) == 2:
                release_alpha.set()

    def mask(host: HostResult) -> HostResult:
        for check in host.checks:
            check.message = check.message.replace("secret", "***")
        return host

    transports = Transports(local=InProcessTransport(respond))
    result = run_plan(plan, RunOptions(mask=mask), [recorder, ReleaseAlpha()], transports)
    assert recorder.events[0] == ("start", 3, 9)
    assert recorder.events[-1] == ("done", "alpha", "*** of alpha")
    assert sorted(recorder.events[1:3]) == [
        ("done", "beta", "*** of beta"),
        ("done", "gamma", "*** of gamma"),
    ]
    assert [h.checks[0].message for h in result.hosts] == [
        "*** of alpha",
        "*** of beta",
        "*** of gamma",
    ]


def test_ctrl_c_aborts_the_transports_and_reports_the_hosts_done_so_far(tmp_path):
    plan = make_plan(tmp_path, ONE_CHECK)

    def respond(call: Call):
        return ok(call) if call.host == "alpha" else HANG

    class CtrlC:
        def on_start(self, total_hosts: int, total_checks: int) -> None:
            pass

        def on_host_done(self, host: HostResult) -> None:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C while alpha was reported

    transport = InProcessTransport(respond)
    transports = Transports(local=transport)
    result = run_plan(plan, RunOptions(host_timeout=600.0), [CtrlC()], transports)
    assert result.interrupted
    assert transport.aborted.is_set()  # the hanging batches were stopped, not waited for
    assert [h.host for h in result.hosts] == ["alpha"]
    assert transport.closed == 0  # closing is the caller's, once it is done with them
