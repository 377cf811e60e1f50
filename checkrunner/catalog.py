"""The check modules as the control node sees them: metadata for docs and schema, source to ship."""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODULES_PACKAGE = "checkrunner.modules"
BATCH_RUNNER = "_batch"
CATALOG_FILE = "_catalog.json"
DOC_NAMES = ("MODULE", "EXAMPLES")  # documentation the control node reads, targets do not

# Option types a module may declare, and the JSON type they validate as before normalising.
OPTION_TYPES = ("str", "int", "float", "bool", "duration", "size", "list", "dict", "argv", "raw")
# Syntax a str option (or each element or value of a list or dict option) must have.
OPTION_FORMATS = ("regex", "url", "address", "encoding", "mode")


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    summary: str
    description: str
    options: dict[str, dict[str, Any]]
    measurements: dict[str, dict[str, Any]]
    default_metric: str | None
    examples: str
    free_form: str | None = None  # option that a scalar value (`disk: /`) fills
    required_one_of: list[list[str]] = field(default_factory=list)
    mutually_exclusive: list[list[str]] = field(default_factory=list)
    rate: bool = False  # takes part in the shared sampling window
    # 1-based, inclusive line ranges of the MODULE/EXAMPLES assignments (see shipped_source)
    doc_lines: list[list[int]] = field(default_factory=list)

    @property
    def item_measurements_option(self) -> str | None:
        """The list-of-mappings option whose items each define a measurement of their own
        (the log module's `patterns`: each item's `name` is measured, with its own warn/crit)."""
        for name, spec in self.options.items():
            sub = spec.get("options") or {}
            if spec.get("type") == "list" and "name" in sub and ("warn" in sub or "crit" in sub):
                return name
        return None

    @property
    def source(self) -> str:
        """The module's code as shipped to targets: without its documentation (see shipped_source)."""
        return shipped_source(self.name)

    def unit_of(self, measurement: str) -> str:
        """Declared unit of a measurement; names with '*' (busy_cpu*) cover dynamic ones."""
        declared = self.measurements.get(measurement)
        if declared is None:
            declared = next(
                (
                    spec
                    for name, spec in self.measurements.items()
                    if "*" in name and fnmatch.fnmatchcase(measurement, name)
                ),
                {},
            )
        return str(declared.get("unit", ""))


def _modules_dir() -> Path:
    import checkrunner.modules

    return Path(checkrunner.modules.__file__).parent


@functools.cache
def _read_source(name: str) -> str:
    return (_modules_dir() / f"{name}.py").read_text("utf-8")


@functools.cache
def shipped_source(name: str) -> str:
    """The module's source with the MODULE and EXAMPLES documentation blanked out.

    Targets never read them, and they are most of the bytes a batch sends and compiles.
    Blank lines take their place so the line numbers of a target-side traceback still match
    the file.
    """
    lines = _read_source(name).splitlines(keepends=True)
    for first, last in get(name).doc_lines:
        assignment = lines[first - 1].split("=", 1)[0].strip()
        lines[first - 1 : last] = [f"{assignment} = None\n", *["\n"] * (last - first)]
    return "".join(lines)


def _doc_line_ranges(source: str) -> list[list[int]]:
    """Where MODULE and EXAMPLES are assigned: found once, when _catalog.json is generated,
    so that building a batch never parses module sources."""
    ranges = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id in DOC_NAMES for t in targets):
            ranges.append([node.lineno, node.end_lineno or node.lineno])
    return ranges


@functools.cache
def module_names() -> tuple[str, ...]:
    names = (p.stem for p in _modules_dir().glob("*.py") if not p.name.startswith("_"))
    return tuple(sorted(names))


def build_catalog() -> dict[str, Any]:
    """Every module's metadata, read by importing the modules (what _catalog.json caches).

    The control node reads the cached JSON instead: importing ten target modules pulls in
    http.client, ssl and subprocess, a quarter of `checkrun validate`'s time.
    `scripts/gen_module_docs.py` rewrites the file; a test fails while it is stale.
    """
    catalog: dict[str, Any] = {}
    for name in module_names():
        module = importlib.import_module(f"{MODULES_PACKAGE}.{name}")
        meta = module.MODULE
        description = meta.get("description", "")
        if isinstance(description, (list, tuple)):
            description = "\n\n".join(description)
        catalog[name] = {
            "summary": meta["summary"],
            "description": description,
            "options": meta.get("options", {}),
            "measurements": meta.get("measurements", {}),
            "default_metric": meta.get("default_metric"),
            "examples": getattr(module, "EXAMPLES", "").strip("\n"),
            "free_form": meta.get("free_form"),
            "required_one_of": [list(g) for g in meta.get("required_one_of", [])],
            "mutually_exclusive": [list(g) for g in meta.get("mutually_exclusive", [])],
            "rate": hasattr(module, "sample"),
            "doc_lines": _doc_line_ranges(_read_source(name)),
        }
    return catalog


def catalog_json() -> str:
    return json.dumps(build_catalog(), indent=1) + "\n"


@functools.cache
def _catalog() -> dict[str, Any]:
    try:
        return json.loads((_modules_dir() / CATALOG_FILE).read_text("utf-8"))
    except FileNotFoundError:
        return build_catalog()


@functools.cache
def get(name: str) -> ModuleInfo:
    """Metadata of one module; KeyError when there is no such module."""
    return ModuleInfo(name=name, **_catalog()[name])


def all_modules() -> dict[str, ModuleInfo]:
    return {name: get(name) for name in module_names()}


def batch_runner_source() -> str:
    return _read_source(BATCH_RUNNER)
