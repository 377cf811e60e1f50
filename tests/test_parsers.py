"""Every target-side parser (`parse_*` in modules/, and other pure text-to-value functions
such as `_utils.logmatch.required_literal`) against data-driven cases, the way pyinfra tests
its facts (tests/facts/<fact>/<case>.json: command output beside the fact).

A case is one file: tests/fixtures/parsers/<module>.<function>/<case>.json, where <module>
is the dotted name under modules/ (`cpu`, `_utils.certs`). It holds the input, as one of
    "input":      any JSON value, passed as it is
    "input_file": a path under tests/fixtures/, read as UTF-8 text (recorded procfs files)
    "input_hex":  bytes, written as hex
and what the parser must do, one of
    "expected":   the return value; compared exactly, types included (12 is not 12.0,
                  a tuple is written as a list)
    "raises":     {"type": "ValueError", "match": "regex found in the message"}
and optionally "kwargs": keyword arguments passed along with the input, and "about": one
line saying what the case is for.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
PARSER_CASES = FIXTURES / "parsers"
MODULES = TESTS.parent / "modules"
CASE_KEYS = {"about", "input", "input_file", "input_hex", "kwargs", "expected", "raises"}


@dataclass(frozen=True)
class ParserCase:
    parser: str  # "<module>.<function>", the name of the case's directory
    path: Path

    @property
    def id(self) -> str:
        return f"{self.parser}/{self.path.stem}"

    def load(self) -> dict[str, Any]:
        case = json.loads(self.path.read_text(encoding="utf-8"))
        unknown = set(case) - CASE_KEYS
        assert not unknown, f"{self.path}: unknown keys {sorted(unknown)}"
        assert len(set(case) & {"input", "input_file", "input_hex"}) == 1, (
            f"{self.path}: give exactly one of input, input_file, input_hex"
        )
        assert len(set(case) & {"expected", "raises"}) == 1, (
            f"{self.path}: give exactly one of expected, raises"
        )
        return case


def parser_cases() -> list[ParserCase]:
    return [
        ParserCase(directory.name, path)
        for directory in sorted(p for p in PARSER_CASES.iterdir() if p.is_dir())
        for path in sorted(directory.glob("*.json"))
    ]


def parser_function(parser: str):
    module_name, _, function_name = parser.rpartition(".")
    module = importlib.import_module(f"checkrunner.modules.{module_name}")
    return getattr(module, function_name)


def case_input(case: dict[str, Any]) -> Any:
    if "input_file" in case:
        return (FIXTURES / case["input_file"]).read_text(encoding="utf-8")
    if "input_hex" in case:
        return bytes.fromhex(case["input_hex"])
    return case["input"]


def canonical(value: Any) -> str:
    """JSON text that tells 12 from 12.0 and True from 1, so == compares types too."""
    return json.dumps(value, indent=1, sort_keys=True, allow_nan=False)


def declared_functions() -> list[str]:
    """Every top-level function in modules/, as "<module>.<function>"."""
    found = []
    for source in sorted(MODULES.rglob("*.py")):
        module = ".".join(source.relative_to(MODULES).with_suffix("").parts)
        tree = ast.parse(source.read_text(encoding="utf-8"))
        found += [
            f"{module}.{node.name}" for node in tree.body if isinstance(node, ast.FunctionDef)
        ]
    return found


def declared_parsers() -> list[str]:
    return [name for name in declared_functions() if name.rpartition(".")[2].startswith("parse_")]


@pytest.mark.parametrize("parser_case", parser_cases(), ids=lambda c: c.id)
def test_parser_case(parser_case: ParserCase):
    case = parser_case.load()
    parse = parser_function(parser_case.parser)
    given = case_input(case)
    if "raises" in case:
        error = case["raises"]
        with pytest.raises(getattr(builtins, error["type"])) as raised:
            parse(given, **case.get("kwargs", {}))
        assert type(raised.value).__name__ == error["type"]
        assert raised.match(error["match"])
    else:
        assert canonical(parse(given, **case.get("kwargs", {}))) == canonical(case["expected"])


def test_every_parser_has_a_case():
    with_cases = {case.parser for case in parser_cases()}
    missing = sorted(set(declared_parsers()) - with_cases)
    assert declared_parsers(), "no parse_* functions found: is MODULES right?"
    assert missing == [], f"parsers without a case in {PARSER_CASES}: {missing}"


def test_every_case_directory_names_a_function_and_says_how_to_add_a_case():
    declared = set(declared_functions())
    directories = [p for p in PARSER_CASES.iterdir() if p.is_dir()]
    assert sorted(p.name for p in directories if p.name not in declared) == []
    for directory in [PARSER_CASES, *directories]:
        assert (directory / "README.md").is_file(), f"{directory} has no README.md"
