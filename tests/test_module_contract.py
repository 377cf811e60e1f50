"""Every check module keeps the contract: stdlib only, Python 3.6 syntax, docs and spec inside."""

from __future__ import annotations

import ast
import sys

import pytest
import yaml

from checkrunner import catalog

MODULES = catalog.module_names()
ALLOWED_THIRD_PARTY = {"psutil"}  # optional on targets, always behind a try/except ImportError
OPTION_KEYS = {"type", "default", "description", "required", "choices", "elements", "aliases"}
OPTION_KEYS |= {"min", "max", "format"}  # ranges of numbers and durations, syntax of text
# suboptions of a list of dicts (Ansible style): "options" is their argument spec
SUBOPTION_KEYS = {"options", "required_one_of", "mutually_exclusive"}


def test_all_expected_modules_exist():
    expected = {
        "cpu",
        "memory",
        "disk",
        "load",
        "http",
        "tcp",
        "process",
        "command",
        "file",
        "nagios",
        "log",
    }
    assert expected <= set(MODULES)


@pytest.mark.parametrize("name", [*MODULES, "_batch"])
def test_python36_syntax_and_stdlib_only(name):
    source = catalog.get(name).source if name != "_batch" else catalog.batch_runner_source()
    tree = ast.parse(source, feature_version=(3, 6))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import"
            imported.add((node.module or "").split(".")[0])
        # no `from __future__ import annotations`-only syntax, no walrus (parse already checks)
    foreign = imported - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY
    assert not foreign, f"{name} imports non-stdlib {foreign}"
    assert "checkrunner" not in imported


@pytest.mark.parametrize("name", MODULES)
def test_metadata_is_complete(name):
    info = catalog.get(name)
    assert info.summary and len(info.summary) < 100
    assert info.description
    assert info.measurements, f"{name} declares no measurements"
    if info.default_metric is not None:
        assert info.default_metric in info.measurements
    check_options(name, info.options)
    if info.free_form:
        assert info.free_form in info.options
    for group in [*info.required_one_of, *info.mutually_exclusive]:
        assert set(group) <= set(info.options)
    examples = yaml.safe_load(info.examples)
    assert isinstance(examples, list) and examples, f"{name} has no EXAMPLES"
    assert all(name in example for example in examples)


def check_options(where, options):
    for option, spec in options.items():
        assert spec.get("type") in catalog.OPTION_TYPES, (
            f"{where}.{option}: type {spec.get('type')!r}"
        )
        assert spec.get("description"), f"{where}.{option} has no description"
        unknown = set(spec) - OPTION_KEYS - SUBOPTION_KEYS
        assert not unknown, f"{where}.{option}: unknown keys {unknown}"
        assert spec.get("format") in (None, *catalog.OPTION_FORMATS), f"{where}.{option}"
        if "min" in spec or "max" in spec:
            assert spec["type"] in ("int", "float", "duration", "size") or (
                spec["type"] == "list" and spec.get("elements") in ("int", "float")
            ), f"{where}.{option}: min/max on a {spec['type']}"
        if set(spec) & SUBOPTION_KEYS:
            assert spec["type"] == "dict" or (
                spec["type"] == "list" and spec.get("elements") == "dict"
            ), f"{where}.{option}: suboptions need type dict, or list with elements dict"
            assert isinstance(spec.get("options"), dict) and spec["options"]
            check_options(f"{where}.{option}", spec["options"])
            for group in [*spec.get("required_one_of", []), *spec.get("mutually_exclusive", [])]:
                assert set(group) <= set(spec["options"]), f"{where}.{option}: {group}"
