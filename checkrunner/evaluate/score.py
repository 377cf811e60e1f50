"""A play's weighted host score: the host's check results -> one synthetic `host score` check.

Each input's value is normalised to 0-100: a percentage as it is, any other value as a
percentage of its own check's crit threshold (its upper bound). Inputs that are missing,
UNKNOWN, SKIPPED or have no value (or nothing to normalise against) are left out and the
remaining weights are renormalised, which the message says. No input at all: UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from checkrunner.config.ranges import parse_range
from checkrunner.evaluate.evaluate import CheckIdentity, apply_thresholds, format_plain
from checkrunner.results import CheckResult, Status

SCORE_METRIC = "score"
_NOT_COUNTED = (Status.UNKNOWN, Status.SKIPPED)


@dataclass(frozen=True)
class ScorePlan:
    """One play's score on one host: the synthetic check and its inputs by check id."""

    identity: CheckIdentity
    inputs: tuple[tuple[str, str, float], ...]  # (check id, check name, weight)
    planned: frozenset[str] = frozenset()  # the inputs planned on the host (not cut by --tags)


def normalised(result: CheckResult) -> tuple[float | None, str]:
    """The input's value on 0-100, or None and why it cannot count."""
    if result.status in _NOT_COUNTED:
        return None, result.status.value
    if result.value is None:
        return None, "no value"
    if result.unit == "%":
        return _clamp(result.value), ""
    if not result.thresholds.crit:
        return None, "not a percentage and no crit threshold"
    try:
        crit = parse_range(result.thresholds.crit, result.unit or None)
    except ValueError:  # a dynamic threshold ({baseline: 7d, ...}): no fixed scale
        return None, f"crit {result.thresholds.crit} is dynamic, not a fixed scale"
    # Only an upper bound says how close to trouble a value is: a crit that alerts below a
    # floor (`10:`) or inside a band (`@10:20`) gives no scale to normalise against.
    if crit.inside or crit.end <= 0 or crit.end == float("inf"):
        return None, f"crit {result.thresholds.crit} has no upper bound"
    return _clamp(100.0 * result.value / crit.end), ""


def score_result(plan: ScorePlan, results: Iterable[CheckResult]) -> CheckResult:
    by_id = {r.check_id: r for r in results}
    parts: list[str] = []
    missing: list[str] = []
    total = weighted = 0.0
    for check_id, name, weight in plan.inputs:
        result = by_id.get(check_id)
        value, why = normalised(result) if result is not None else (None, "no result")
        if value is None:
            missing.append(f"{name} ({why})")
            continue
        weight = float(weight)
        total += weight
        weighted += weight * value
        parts.append(f"{name} {format_plain(round(value, 1))}×{format_plain(weight)}")
    if total == 0:
        return plan.identity.base_result(
            Status.UNKNOWN, f"no score: every input is missing: {', '.join(missing)}"
        )
    score = round(weighted / total, 2)
    result = plan.identity.base_result(Status.OK, "")
    result.value = score
    result.unit = "%"
    result.measurements = {SCORE_METRIC: score, "inputs_missing": float(len(missing))}
    result.units = {SCORE_METRIC: "%"}
    status, notes, _ = apply_thresholds(plan.identity.thresholds, result.measurements, result.units)
    result.status = status
    summary = f"score {format_plain(score)}% = ({' + '.join(parts)}) / {format_plain(total)}"
    if missing:
        summary += f"; missing: {', '.join(missing)}, renormalised"
    result.message = "; ".join([*notes, summary])
    return result


def scores_for_round(plans: Iterable[ScorePlan], results: list[CheckResult]) -> list[CheckResult]:
    """The scores whose inputs all ran in this round (watch mode may run only some checks)."""
    ran = {r.check_id for r in results}
    return [score_result(plan, results) for plan in plans if plan.planned <= ran]


def _clamp(value: float) -> float:
    return min(100.0, max(0.0, float(value)))
