"""The JSON report: RunResult.to_dict(), pretty-printed. Its schema is docs/json-report.md."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from checkrunner.errors import ConfigError, Location
from checkrunner.report.base import Reporter
from checkrunner.results import (
    FAIL_ON_LEVELS,
    BaselineBound,
    CheckResult,
    HostResult,
    RemediationResult,
    RunResult,
    Status,
    Thresholds,
)
from checkrunner.safe_text import escape_unprintable_json
from checkrunner.shards import ShardInfo


class JsonReporter(Reporter):
    name = "json"

    def render(self, run: RunResult) -> str:
        return "".join(json_chunks(run))

    def finish(self, run: RunResult) -> None:
        """Written host by host: at thousands of hosts the document is never whole in
        memory, neither as dicts nor as text."""
        self.close()
        self.write(json_chunks(run))


_HOSTS_MARK = '\n  "hosts": []'  # top level; inside strings a newline is always escaped


def json_chunks(run: RunResult) -> Iterator[str]:
    """The report's text in pieces (the run's fields, then one host at a time), the same
    text as json.dumps(run.to_dict(), indent=2) with its escapes."""
    header = _dumps(run.to_dict(with_hosts=False))
    before, _, after = header.partition(_HOSTS_MARK)
    yield before + '\n  "hosts": ['
    for index, host in enumerate(run.hosts):
        text = _dumps(host.to_dict()).replace("\n", "\n    ")
        yield ("," if index else "") + "\n    " + text
    yield ("\n  ]" if run.hosts else "]") + after + "\n"


def _dumps(document: Any) -> str:
    # default=str: a fact a module returned that JSON cannot hold must not cost the report.
    text = json.dumps(finite_numbers(document), indent=2, ensure_ascii=False, default=str)
    # json.dumps escapes C0 controls only: a C1 or bidi control from a target would
    # still act on a terminal that shows the report.
    return escape_unprintable_json(text)


def finite_numbers(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None: JSON has no way to write them and
    json.dumps would emit tokens (NaN, Infinity) that strict parsers reject."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_numbers(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_numbers(item) for item in value]
    return value


# ------------------------------------------------------------------ reading a report back

_NUMBER = (int, float)
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_DECODER = json.JSONDecoder()


class _Source:
    """A report file: its name and, when known, its text, to find a field's line in."""

    def __init__(self, name: str, text: str | None) -> None:
        self.name, self.text = name, text

    def location(self, path: str) -> Location:
        """Where the value at `path` (`hosts[3].checks[0].status`) starts; the file alone
        when the text is unknown or not even the path's first part can be followed."""
        parts = _PATH_PART.findall(path)
        while self.text is not None and parts:  # a missing field: where its object starts
            try:
                index = _value_index(self.text, parts)
            except (ValueError, IndexError, KeyError):
                parts.pop()
                continue
            line = self.text.count("\n", 0, index) + 1
            return Location(self.name, line, index - self.text.rfind("\n", 0, index))
        return Location(self.name)


def _value_index(text: str, parts: list[tuple[str, str]]) -> int:
    """The index in `text` (a JSON document) where the value at `parts` starts; the values
    passed on the way are skipped by the decoder, not built into a tree of positions."""
    index = _skip_space(text, 0)
    for key, item in parts:
        if key and text[index] == "{":
            index = _member_index(text, index, key)
        elif item and text[index] == "[":
            index = _element_index(text, index, int(item))
        else:
            raise KeyError(key or item)
    return index


def _member_index(text: str, index: int, wanted: str) -> int:
    index = _skip_space(text, index + 1)
    while text[index] == '"':
        name, index = _DECODER.raw_decode(text, index)
        index = _skip_space(text, _skip_space(text, index) + 1)  # past the ':'
        if name == wanted:
            return index
        index = _after_value(text, index)
    raise KeyError(wanted)


def _element_index(text: str, index: int, wanted: int) -> int:
    index = _skip_space(text, index + 1)
    for _ in range(wanted):
        index = _after_value(text, index)
    if text[index] == "]":
        raise IndexError(wanted)
    return index


def _after_value(text: str, index: int) -> int:
    """The index after the value at `index` and the comma that follows it, if any."""
    index = _skip_space(text, _DECODER.raw_decode(text, index)[1])
    return _skip_space(text, index + 1) if text[index] == "," else index


def _skip_space(text: str, index: int) -> int:
    while text[index] in " \t\r\n":
        index += 1
    return index


class _Fields:
    """The fields of one JSON object of a report, each read with the type the schema
    (docs/json-report.schema.json) gives it; anything else is a ConfigError naming the
    file and the field's path (`hosts[3].checks[0].status`)."""

    def __init__(self, value: Any, path: str, file: _Source) -> None:
        self.path, self.file = path, file
        if not isinstance(value, dict):
            raise self.error(path, f"must be an object, not {_json_kind(value)}")
        self.value = value

    def error(self, path: str, problem: str) -> ConfigError:
        return ConfigError(
            f"{path or 'the document'} {problem}: this is not a checkrun JSON report",
            self.file.location(path),
            "give the reports that `checkrun --report json:PATH` wrote (docs/json-report.md)",
        )

    def get(self, key: str, kinds: tuple[type, ...], *, optional: bool = False) -> Any:
        where = f"{self.path}.{key}" if self.path else key
        if key not in self.value:
            if optional:
                return None
            raise self.error(where, "is missing")
        found = self.value[key]
        if found is None and type(None) in kinds:
            return None
        if isinstance(found, bool) and bool not in kinds:
            raise self.error(where, f"must be {_kinds_text(kinds)}, not a boolean")
        if not isinstance(found, kinds):
            raise self.error(where, f"must be {_kinds_text(kinds)}, not {_json_kind(found)}")
        return found

    def status(self, key: str, allowed: frozenset[str]) -> Status:
        text = self.get(key, (str,))
        if text not in allowed:
            raise self.error(
                f"{self.path}.{key}", f"is {text!r}, not one of {', '.join(sorted(allowed))}"
            )
        return Status(text)

    def items(self, key: str) -> list[tuple[str, Any]]:
        return [
            (f"{self.path}.{key}[{index}]" if self.path else f"{key}[{index}]", item)
            for index, item in enumerate(self.get(key, (list,)))
        ]

    def mapping(self, key: str, kinds: tuple[type, ...]) -> dict[str, Any]:
        found = self.get(key, (dict,))
        for name, item in found.items():
            if not isinstance(item, kinds) or isinstance(item, bool) and bool not in kinds:
                raise self.error(f"{self.path}.{key}.{name}", f"must be {_kinds_text(kinds)}")
        return found


_CHECK_STATUSES = frozenset(s.value for s in Status if s is not Status.UNREACHABLE)


def read_run(document: Any, file: str, text: str | None = None) -> RunResult:
    """The RunResult a JSON report holds (the inverse of JsonReporter's document);
    ConfigError naming `file` (at the field's line:column when the document's `text` is
    given) and the field for anything the schema does not allow."""
    file = _Source(file, text)
    top = _Fields(document, "", file)
    if top.get("schema_version", (int,)) != 1:
        raise top.error("schema_version", "is not 1 (this checkrun reads version 1)")
    run = RunResult(
        playbook=top.get("playbook", (str,)),
        started_at=float(top.get("started_at", _NUMBER)),
        finished_at=float(top.get("finished_at", _NUMBER)),
        interrupted=top.get("interrupted", (bool,)),
        fail_on=top.get("fail_on", (str,)),
    )
    if run.fail_on not in FAIL_ON_LEVELS:
        raise top.error("fail_on", f"is {run.fail_on!r}, not one of {', '.join(FAIL_ON_LEVELS)}")
    run.hosts = [_read_host(_Fields(item, path, file)) for path, item in top.items("hosts")]
    shard = top.get("shard", (dict,), optional=True)
    if shard is not None:
        run.shard = _read_shard(_Fields(shard, "shard", file))
    return run


def _read_host(fields: _Fields) -> HostResult:
    return HostResult(
        host=fields.get("host", (str,)),
        address=fields.get("address", (str,)),
        connection=fields.get("connection", (str,)),
        reachable=fields.get("reachable", (bool,)),
        reason=fields.get("reason", (str, type(None))),
        message=fields.get("message", (str,)),
        duration=float(fields.get("duration", _NUMBER)),
        started_at=float(fields.get("started_at", _NUMBER)),
        checks=[
            _read_check(_Fields(item, path, fields.file)) for path, item in fields.items("checks")
        ],
    )


def _read_check(fields: _Fields) -> CheckResult:
    thresholds = _Fields(
        fields.get("thresholds", (dict,)), f"{fields.path}.thresholds", fields.file
    )
    limit = (str, int, float, type(None))
    value = fields.get("value", (*_NUMBER, type(None)))
    return CheckResult(
        host=fields.get("host", (str,)),
        play=fields.get("play", (str,)),
        name=fields.get("name", (str,)),
        module=fields.get("module", (str,)),
        status=fields.status("status", _CHECK_STATUSES),
        message=fields.get("message", (str,)),
        metric=fields.get("metric", (str, type(None))),
        value=None if value is None else float(value),
        unit=fields.get("unit", (str,)),
        measurements=fields.mapping("measurements", (*_NUMBER, type(None))),
        units=fields.mapping("units", (str,)),
        facts=fields.get("facts", (dict,)),
        thresholds=Thresholds(thresholds.get("warn", limit), thresholds.get("crit", limit)),
        duration=float(fields.get("duration", _NUMBER)),
        attempts=fields.get("attempts", (int,)),
        tags=[_text(fields, path, item) for path, item in fields.items("tags")],
        labels=fields.mapping("labels", (str,)),
        check_id=fields.get("check_id", (str,)),
        baselines=[
            _read_baseline(_Fields(item, path, fields.file))
            for path, item in fields.items("baselines")
        ],
        remediation=_read_remediation(fields),
    )


def _read_remediation(check: _Fields) -> RemediationResult | None:
    found = check.get("remediation", (dict, type(None)), optional=True)  # older reports
    if found is None:
        return None
    fields = _Fields(found, f"{check.path}.remediation", check.file)
    seconds = fields.get("seconds", (*_NUMBER, type(None)))
    return RemediationResult(
        handler=fields.get("handler", (str,)),
        action=fields.get("action", (str,)),
        result=fields.get("result", (str,)),
        text=fields.get("text", (str,)),
        reason=fields.get("reason", (str, type(None))),
        exit_status=fields.get("exit_status", (int, type(None))),
        seconds=None if seconds is None else float(seconds),
        verify_status=fields.get("verify_status", (str, type(None))),
        verify_message=fields.get("verify_message", (str,)),
    )


def _read_baseline(fields: _Fields) -> BaselineBound:
    number = (*_NUMBER, type(None))
    return BaselineBound(
        metric=fields.get("metric", (str,)),
        level=fields.get("level", (str,)),
        method=fields.get("method", (str,)),
        window=float(fields.get("window", _NUMBER)),
        seasonal=fields.get("seasonal", (str, type(None))),
        direction=fields.get("direction", (str,)),
        samples=fields.get("samples", (int,)),
        center=fields.get("center", number),
        spread=fields.get("spread", number),
        lower=fields.get("lower", number),
        upper=fields.get("upper", number),
        warming_up=fields.get("warming_up", (bool,)),
        text=fields.get("text", (str,)),
    )


def _read_shard(fields: _Fields) -> ShardInfo:
    index, count = fields.get("index", (int,)), fields.get("count", (int,))
    if not 1 <= index <= count:
        raise fields.error("shard", f"is {index}/{count}: K must be 1 to N")
    planned = []
    for path, item in fields.items("planned"):
        host = _Fields(item, path, fields.file)
        name, shard = host.get("host", (str,)), host.get("shard", (int,))
        if not 1 <= shard <= count:
            raise fields.error(f"{path}.shard", f"is {shard}: not 1 to {count}")
        planned.append((name, shard))
    return ShardInfo(index, count, planned)


def _text(fields: _Fields, path: str, item: Any) -> str:
    if not isinstance(item, str):
        raise fields.error(path, f"must be a string, not {_json_kind(item)}")
    return item


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _kinds_text(kinds: tuple[type, ...]) -> str:
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
        type(None): "null",
    }
    return " or ".join(dict.fromkeys(names[kind] for kind in kinds))
