"""A play's weighted `score:`: arithmetic with known answers, its bad input at file:line,
and the synthetic `host score` check in one-shot runs, reports and watch mode's /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import run_checkrun, validate_text, wait_for
from watching import WatchProcess

from checkrunner.config.ranges import parse_range
from checkrunner.evaluate.evaluate import CheckIdentity, MetricThresholds
from checkrunner.evaluate.score import ScorePlan, score_result, scores_for_round
from checkrunner.results import CheckResult, Status, Thresholds


def plan(weights: dict[str, float], warn: str | None = None, crit: str | None = None) -> ScorePlan:
    limits = MetricThresholds(
        "score",
        parse_range(warn, "%") if warn else None,
        parse_range(crit, "%") if crit else None,
        warn,
        crit,
    )
    identity = CheckIdentity(
        host="h", play="p", name="host score", module="score", check_id="0.score",
        metric="score", thresholds=(limits,), declared_units={"score": "%"},
    )  # fmt: skip
    inputs = tuple((name, name, weight) for name, weight in weights.items())
    return ScorePlan(identity, inputs, frozenset(weights))


def result(
    name: str, value: float | None, unit: str = "%", crit: str | None = None,
    status: Status = Status.OK,
) -> CheckResult:  # fmt: skip
    return CheckResult(
        host="h", play="p", name=name, module="nagios", status=status, value=value,
        unit=unit, thresholds=Thresholds(crit=crit), check_id=name,
    )  # fmt: skip


def test_percentages_count_as_they_are_weighted():
    score = score_result(
        plan({"cpu": 0.4, "mem": 0.3, "disk": 0.2, "net": 0.1}),
        [result("cpu", 50), result("mem", 80), result("disk", 10), result("net", 100)],
    )
    # 0.4*50 + 0.3*80 + 0.2*10 + 0.1*100 = 20 + 24 + 2 + 10
    assert score.value == 56.0
    assert score.status is Status.OK
    assert score.unit == "%" and score.measurements["score"] == 56.0
    assert "cpu 50×0.4" in score.message and "net 100×0.1" in score.message
    assert "missing" not in score.message


def test_other_values_are_normalised_by_their_crit_threshold_and_capped_at_100():
    score = score_result(
        plan({"io": 1, "latency": 1}),
        [result("io", 150, unit="", crit="200"), result("latency", 3, unit="s", crit="~:2")],
    )
    # io: 150 of 200 = 75; latency: 3 s over a 2 s crit is capped at 100
    assert score.value == 87.5


def test_missing_inputs_renormalise_the_weights_and_say_so():
    score = score_result(
        plan({"cpu": 0.5, "mem": 0.3, "disk": 0.2}),
        [result("cpu", 40), result("mem", None, status=Status.UNKNOWN), result("disk", 90)],
    )
    # (0.5*40 + 0.2*90) / 0.7
    assert score.value == pytest.approx(54.29, abs=0.01)
    assert "missing: mem (UNKNOWN), renormalised" in score.message
    assert score.measurements["inputs_missing"] == 1
    skipped = score_result(
        plan({"cpu": 1, "mem": 3}), [result("cpu", 20), result("mem", 99, status=Status.SKIPPED)]
    )
    assert skipped.value == 20 and "mem (SKIPPED)" in skipped.message


def test_no_input_at_all_is_unknown():
    score = score_result(
        plan({"cpu": 1, "io": 1}),
        [result("cpu", None, status=Status.UNKNOWN), result("io", 5, unit="", crit=None)],
    )
    assert score.status is Status.UNKNOWN and score.value is None
    assert "every input is missing" in score.message
    assert "io (not a percentage and no crit threshold)" in score.message
    floor = score_result(
        plan({"free": 1, "cpu": 1}), [result("free", 5, unit="GB", crit="10:"), result("cpu", 30)]
    )
    assert floor.value == 30 and "free (crit 10: has no upper bound)" in floor.message


def test_the_score_has_its_own_thresholds():
    inputs = {"cpu": 1.0}
    assert score_result(plan(inputs, "70", "90"), [result("cpu", 69)]).status is Status.OK
    warning = score_result(plan(inputs, "70", "90"), [result("cpu", 75)])
    assert warning.status is Status.WARNING and "score=75% above warn 70" in warning.message
    assert score_result(plan(inputs, "70", "90"), [result("cpu", 95)]).status is Status.CRITICAL


def test_a_round_without_every_input_gets_no_score():
    plans = [plan({"cpu": 1, "mem": 1})]
    assert scores_for_round(plans, [result("cpu", 10)]) == []
    assert len(scores_for_round(plans, [result("cpu", 10), result("mem", 30)])) == 1


PLAY = """\
- name: p
  hosts: localhost
  score:
    weights:
{weights}
  checks:
    - {{name: cpu busy, cpu: {{sample: 0.1s}}}}
    - {{name: memory used, memory: {{}}}}
"""


@pytest.mark.parametrize(
    ("weights", "line", "expected"),
    [
        ("      cpu busy: 0.5\n      memroy used: 0.5", 6, "did you mean 'memory used'"),
        ("      cpu busy: 0\n      memory used: 1", 5, "must be a positive number, not 0"),
        ("      cpu busy: -0.4", 5, "must be a positive number, not -0.4"),
        ("      cpu busy: lots", 5, "must be a positive number, not 'lots'"),
        ("      {}", 5, "weights: expected check name: weight, not an empty mapping"),
    ],
)
def test_bad_weights_are_exit_5_at_file_line_with_the_fix(tmp_path, weights, line, expected):
    done = validate_text(tmp_path, PLAY.format(weights=weights))
    assert done.returncode == 5, done.stderr
    assert re.search(rf"p\.yml:{line}:\d+", done.stderr), done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    # the run itself refuses the same playbook before anything runs
    assert run_checkrun(tmp_path / "p.yml").returncode == 5


def test_unknown_score_key_and_bad_score_threshold(tmp_path):
    done = validate_text(
        tmp_path,
        "- hosts: localhost\n  score: {weights: {m: 1}, wran: 70, crit: lots}\n"
        "  checks:\n    - {name: m, memory: {}}\n",
    )
    assert done.returncode == 5
    assert "unknown key 'wran' in score — did you mean 'warn'" in done.stderr
    assert "score: crit:" in done.stderr and "p.yml:2:" in done.stderr


def fleet(tmp_path: Path) -> tuple[Path, Path]:
    """Two local hosts whose plugin reports fixed cpu/memory percentages and disk I/O."""
    plugin = tmp_path / "plugin.sh"
    plugin.write_text('#!/bin/sh\necho "OK | busy=$1% used=$2% io=$3"\n')
    plugin.chmod(0o755)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        "    calm: {ansible_connection: local, cpu: 10, mem: 20, io: 50}\n"
        "    busy: {ansible_connection: local, cpu: 90, mem: 80, io: 400}\n"
    )
    args = f'{{plugin: "{plugin}", args: ["{{{{ cpu }}}}", "{{{{ mem }}}}", "{{{{ io }}}}"]}}'
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- name: load\n  hosts: all\n  interval: 1s\n  labels: {team: ops}\n"
        "  score: {weights: {cpu busy: 0.5, memory used: 0.3, disk io: 0.2}, warn: 70, crit: 90}\n"
        "  checks:\n"
        f"    - {{name: cpu busy, nagios: {args}, metric: busy}}\n"
        f"    - {{name: memory used, nagios: {args}, metric: used}}\n"
        f"    - {{name: disk io, nagios: {args}, metric: io, crit: 500}}\n"
    )
    return playbook, inventory


def test_a_run_reports_the_host_score_and_ranks_hosts_by_it(tmp_path):
    playbook, inventory = fleet(tmp_path)
    out, markdown = tmp_path / "r.json", tmp_path / "r.md"
    done = run_checkrun(
        playbook, "-i", inventory, "-r", f"json:{out}", "-r", f"markdown:{markdown}",
        "-r", "terminal",
    )  # fmt: skip
    report = json.loads(out.read_text())
    scores = {
        h["host"]: c for h in report["hosts"] for c in h["checks"] if c["name"] == "host score"
    }
    # calm: 0.5*10 + 0.3*20 + 0.2*(50/500*100) = 13; busy: 45 + 24 + 16 = 85
    assert scores["calm"]["value"] == 13 and scores["calm"]["status"] == "OK"
    assert scores["busy"]["value"] == 85 and scores["busy"]["status"] == "WARNING"
    assert scores["busy"]["module"] == "score" and scores["busy"]["labels"] == {"team": "ops"}
    assert "disk io 80×0.2" in scores["busy"]["message"]
    assert report["summary"]["WARNING"] == 1 and done.returncode == 0
    ranking = done.stdout.split("hosts by score", 1)[1]
    assert ranking.index("busy") < ranking.index("calm"), done.stdout
    section = markdown.read_text().split("### Hosts by score", 1)[1]
    assert "| 1 | busy | load | 85.0% | ⚠️ WARNING |" in section, section
    assert section.index("busy") < section.index("calm")


def test_watch_rounds_export_the_host_score(tmp_path):
    playbook, inventory = fleet(tmp_path)
    with WatchProcess(playbook, "-i", inventory, "--no-state") as watch:
        status = wait_for(
            lambda: watch.metric("checkrun_check_status", host="busy", check="host score"),
            "the host score on /metrics",
        )
        assert status == 1  # WARNING
        assert watch.metric("checkrun_check_status", host="calm", check="host score") == 0
        assert watch.stop() == 0


def test_the_score_alerts_like_a_check_with_the_plays_for_and_labels(tmp_path):
    from helpers import plan_from_text

    from checkrunner.alerting.stages import check_settings, observe_run
    from checkrunner.runner import RunOptions, run_plan

    playbook, inventory = fleet(tmp_path)
    text = (
        playbook.read_text()
        .replace("  interval: 1s\n", "  for: 3\n")
        .replace("warn: 70", "warn: 10")
    )
    plan = plan_from_text(tmp_path, text, inventory.read_text())
    run = run_plan(plan, RunOptions())
    observations = observe_run(run, check_settings(plan), 0.0)
    scores = {o.ref.host: o for o in observations.checks if o.ref.check == "host score"}
    assert scores["busy"].for_runs == 3 and scores["calm"].for_runs == 3
    assert scores["busy"].failing and scores["calm"].failing  # 85 and 13 are above warn 10
    assert scores["busy"].alert.labels["team"] == "ops"
    assert scores["busy"].alert.labels["alertname"] == "host score"


def test_a_secret_in_the_play_name_is_masked_in_the_score_and_its_alert_key(tmp_path):
    from helpers import plan_from_text

    from checkrunner.alerting.stages import check_settings, observe_run
    from checkrunner.masking import Masker
    from checkrunner.runner import RunOptions, run_plan

    playbook, inventory = fleet(tmp_path)
    text = playbook.read_text().replace("- name: load\n", "- name: load s3cr3tvalue\n")
    text = text.replace("  interval: 1s\n", "  for: 2\n")
    plan = plan_from_text(tmp_path, text, inventory.read_text())
    masker = Masker(["s3cr3tvalue"])
    masker.mask_identities(plan)
    run = run_plan(plan, RunOptions(mask=masker.leaving_run))
    settings = check_settings(plan)
    observations = observe_run(run, settings, 0.0)
    scores = [o for o in observations.checks if o.ref.check == "host score"]
    assert [o.ref.play for o in scores] == ["load ***", "load ***"]
    assert all(o.for_runs == 2 for o in scores)  # found under the masked key
