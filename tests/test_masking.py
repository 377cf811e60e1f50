"""The masker: every occurrence of a secret, anywhere in a result, becomes ***."""

from __future__ import annotations

from checkrunner.masking import MASK, Masker
from checkrunner.results import CheckResult, HostResult, RunResult, Status


def result(message: str, facts: dict) -> RunResult:
    check = CheckResult(
        host="h",
        play="p",
        name="n",
        module="command",
        status=Status.OK,
        message=message,
        facts=facts,
    )
    return RunResult(
        playbook="p.yml",
        started_at=0.0,
        hosts=[HostResult(host="h", message=message, checks=[check])],
    )


def test_secrets_are_masked_in_messages_facts_and_nested_values():
    masker = Masker(["hunter22", "abc", None, "hunter22-extended"])
    run = masker.run(
        result("pw hunter22-extended then hunter22", {"out": ["x hunter22"], "hunter22": 1})
    )
    check = run.hosts[0].checks[0]
    assert check.message == f"pw {MASK} then {MASK}"
    assert check.facts == {"out": [f"x {MASK}"], MASK: 1}
    assert run.hosts[0].message == check.message


def test_short_values_are_not_masked_and_no_secrets_is_a_no_op():
    original = result("port 8080 is up", {"n": 1})
    assert Masker(["up", "1"]).run(original) is original
    assert Masker([]).run(original) is original
