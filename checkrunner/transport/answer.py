"""The target's answer, read as untrusted data.

Everything a target prints is under the target's control: a hostile or broken host may
answer with any bytes after the result marker. This is the one place where a target's
stdout becomes results, so every shape and size the rest of the control node relies on is
checked here. A violation is a ProtocolError (the runner makes that host's checks UNKNOWN,
reason remote-crash); it never escapes as another exception and never touches other hosts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

from checkrunner.errors import ProtocolError
from checkrunner.transport.base import MAX_OUTPUT_BYTES, ExecResult

RESULT_MARKER = "__CHECKRUN_RESULT__"
PROTOCOL_VERSION = 1

MAX_INT_DIGITS = 40  # far beyond any counter; int() of a huge digit string is quadratic
MAX_DEPTH = 32  # nesting of facts and log state; report writers recurse over them
MAX_TEXT_CHARS = 64 * 1024  # message, unit, failure, error, traceback: one line of a report
MAX_MEASUREMENTS = 10_000  # per check
MAX_REASON_CHARS = 200  # how much of the target's own stderr a crash message quotes
_MODULE_STATUSES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


def read_answer(result: ExecResult, expected_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The raw result entries of one batch by check id, or ProtocolError saying why not."""
    if result.overflow:
        raise ProtocolError(f"the target sent more than {MAX_OUTPUT_BYTES // 1024**2} MiB")
    try:
        answer = parse_output(result.stdout, expected_ids)
    except ProtocolError as exc:
        raise ProtocolError(f"{exc}: {_last_stderr_line(result)}") from None
    return {entry["id"]: entry for entry in answer["results"]}


def parse_output(stdout: bytes, expected_ids: Collection[str] | None = None) -> dict[str, Any]:
    """The validated answer from the target's stdout; noise before the marker (motd, banners)
    is ignored. With `expected_ids`, every result must belong to the batch, once."""
    text = stdout.decode("utf-8", errors="replace")
    index = text.rfind(RESULT_MARKER)
    if index < 0:
        raise ProtocolError("no result from the target")
    # "\n" only: str.splitlines() would also cut at \x1c, \x85 or U+2028 inside a string
    line = text[index + len(RESULT_MARKER) :].split("\n", 1)[0]
    if not line.strip():
        raise ProtocolError("the result marker is followed by nothing")
    answer = _decode(line)
    _check_answer(answer, expected_ids)
    return answer


def _decode(line: str) -> Any:
    try:
        return json.loads(
            line, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant
        )
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"unreadable result from the target: {exc}") from None
    except RecursionError:
        raise ProtocolError("the result is nested too deeply") from None


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise ProtocolError(f"the result holds an integer of {len(digits)} digits")
    return int(digits)


def _finite_float(text: str) -> float:
    if len(text) > MAX_INT_DIGITS * 2:
        raise ProtocolError(f"the result holds a number of {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError(f"the result holds the out-of-range number {text[:40]}")
    return value


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"the result holds {name}, which is not a number")


def _check_answer(answer: Any, expected_ids: Collection[str] | None) -> None:
    _expect(isinstance(answer, dict), "the result is not a JSON object")
    version = answer.get("version")
    _expect(
        type(version) is int and version == PROTOCOL_VERSION,
        f"protocol version mismatch: {_excerpt(version)}",
    )
    for key in ("hostname", "python"):
        if key in answer:
            _text(answer[key], key)
    if "duration" in answer:
        _number(answer["duration"], "duration")
    results = answer.get("results")
    _expect(isinstance(results, list), "'results' is not a list")
    seen: set[str] = set()
    for position, entry in enumerate(results):
        check_id = _check_entry(entry, position)
        _expect(check_id not in seen, f"result id {_excerpt(check_id)} appears twice")
        if expected_ids is not None:
            _expect(check_id in expected_ids, f"result id {_excerpt(check_id)} was never asked for")
        seen.add(check_id)


def _check_entry(entry: Any, position: int) -> str:
    where = f"results[{position}]"
    _expect(isinstance(entry, dict), f"{where} is not an object")
    _expect(isinstance(entry.get("id"), str), f"{where} has no string 'id'")
    check_id = _text(entry["id"], f"{where}.id")
    where = f"result {_excerpt(check_id)}"
    if "module" in entry:
        _text(entry["module"], f"{where}: module")
    if "duration" in entry:
        _expect(
            _number(entry["duration"], f"{where}: duration") >= 0, f"{where}: negative duration"
        )
    if "error" in entry:
        for key in ("error", "error_type", "traceback"):
            if key in entry:
                _text(entry[key], f"{where}: {key}")
        return check_id
    _expect(isinstance(entry.get("result"), dict), f"{where} has neither 'result' nor 'error'")
    _check_body(entry["result"], where)
    return check_id


def _check_body(body: dict[str, Any], where: str) -> None:
    measurements = body.get("measurements", {})
    _expect(isinstance(measurements, dict), f"{where}: measurements is not an object")
    _expect(len(measurements) <= MAX_MEASUREMENTS, f"{where}: {len(measurements)} measurements")
    for name, value in measurements.items():
        _text(name, f"{where}: a measurement name")
        if value is not None and not isinstance(value, bool):  # evaluate leaves these out
            _number(value, f"{where}: measurement {_excerpt(name)}")
    units = body.get("units", {})
    _expect(isinstance(units, dict), f"{where}: units is not an object")
    for name, unit in units.items():
        _text(unit, f"{where}: unit of {_excerpt(name)}")
    failures = body.get("failures", [])
    _expect(isinstance(failures, list), f"{where}: failures is not a list")
    for failure in failures:
        _text(failure, f"{where}: a failure")
    for key in ("message", "status"):
        if key in body and body[key] is not None:
            _text(body[key], f"{where}: {key}")
    if body.get("status") is not None:
        _expect(body["status"].upper() in _MODULE_STATUSES, f"{where}: unknown status")
    for key in ("facts", "state"):
        if body.get(key) is not None:
            _expect(isinstance(body[key], dict), f"{where}: {key} is not an object")
            _expect(_depth(body[key]) <= MAX_DEPTH, f"{where}: {key} nested too deeply")


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                stack.extend((child, depth + 1) for child in item)
    return deepest


def _text(value: Any, what: str) -> str:
    _expect(isinstance(value, str), f"{what} is not a string")
    _expect(len(value) <= MAX_TEXT_CHARS, f"{what} is {len(value)} characters long")
    return value


def _number(value: Any, what: str) -> float:
    _expect(
        isinstance(value, (int, float)) and not isinstance(value, bool), f"{what} is not a number"
    )
    return value


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise ProtocolError(f"invalid result from the target: {problem}")


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _last_stderr_line(result: ExecResult) -> str:
    lines = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
    last = lines[-1] if lines else f"exit status {result.exit_status}"
    return last[:MAX_REASON_CHARS]
