"""The check modules as the control node sees them: metadata for docs and schema, source to ship."""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib
import io
import json
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODULES_PACKAGE = "checkrunner.modules"
BATCH_RUNNER = "_batch"
HELPERS_DIR = "_utils"  # modules/_utils/NAME.py: helpers shipped with the modules that import them
CATALOG_FILE = "_catalog.json"
SHIPPED_KEY = "_comment_lines"  # in _catalog.json: comment-only lines of each shipped file
DOC_NAMES = ("MODULE", "EXAMPLES")  # documentation the control node reads, targets do not

# Option types a module may declare, and the JSON type they validate as before normalising.
OPTION_TYPES = ("str", "int", "float", "bool", "duration", "size", "list", "dict", "argv", "raw")
# Syntax a str option (or each element or value of a list or dict option) must have.
OPTION_FORMATS = ("regex", "url", "address", "encoding", "mode", "selector")


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    summary: str
    description: str
    options: dict[str, dict[str, Any]]
    measurements: dict[str, dict[str, Any]]
    default_metric: str | None
    examples: str
    # what the module reports beside its measurements: name -> description (Ansible's RETURN)
    facts: dict[str, str] = field(default_factory=dict)
    free_form: str | None = None  # option that a scalar value (`disk: /`) fills
    required_one_of: list[list[str]] = field(default_factory=list)
    mutually_exclusive: list[list[str]] = field(default_factory=list)
    rate: bool = False  # takes part in the shared sampling window
    # MODULE["window_option"]: the duration option that sets how long a window it needs
    window_option: str | None = None
    # MODULE["window_if"]: a bool option without which a check needs no window of its own
    # (the prometheus module reads a gauge in one scrape; only `rate: true` needs two)
    window_if: str | None = None
    # MODULE["keeps_state"]: it reads `_cursors` saved by the last run and returns new ones in
    # its result's `state` (state.logs keeps them between runs)
    keeps_state: bool = False
    # MODULE["probe"]: blackbox_exporter's series its results also export, each the name of
    # a measurement ("success", "duration", "http_status_code", "cert_days_left"), and
    # "target": the facts that name the probed target, the first one present
    probe: dict[str, Any] = field(default_factory=dict)
    # 1-based, inclusive line ranges of the MODULE/EXAMPLES assignments (see shipped_source)
    doc_lines: list[list[int]] = field(default_factory=list)
    # modules/_utils helpers the module imports, directly or through another helper
    helpers: list[str] = field(default_factory=list)

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
        return str(self._declared(measurement).get("unit", ""))

    def is_flag(self, measurement: str) -> bool:
        """Whether the measurement is a yes/no (1 or 0: `"flag": True` in its MODULE spec):
        a number, but no level to compare with its own past."""
        return bool(self._declared(measurement).get("flag"))

    def _declared(self, measurement: str) -> dict[str, Any]:
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
        return declared


def _modules_dir() -> Path:
    import checkrunner.modules

    return Path(checkrunner.modules.__file__).parent


@functools.cache
def _read_source(name: str) -> str:
    return (_modules_dir() / f"{name}.py").read_text("utf-8")


@functools.cache
def shipped_source(name: str) -> str:
    """The module's source with the MODULE and EXAMPLES documentation and its comments blanked.

    Targets never read them, and they are most of the bytes a batch sends and compiles.
    Blank lines take their place so the line numbers of a target-side traceback still match
    the file.
    """
    lines = _read_source(name).splitlines(keepends=True)
    for first, last in get(name).doc_lines:
        assignment = lines[first - 1].split("=", 1)[0].strip()
        lines[first - 1 : last] = [f"{assignment} = None\n", *["\n"] * (last - first)]
    return _without_comment_lines(name, "".join(lines))


def _comment_line_ranges(source: str) -> list[list[int]]:
    """1-based, inclusive runs of lines that hold only a comment (tokenize knows strings)."""
    lines = source.splitlines()
    ranges: list[list[int]] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        row = token.start[0]
        if token.type != tokenize.COMMENT or not lines[row - 1].lstrip().startswith("#"):
            continue
        if ranges and ranges[-1][1] == row - 1:
            ranges[-1][1] = row
        else:
            ranges.append([row, row])
    return ranges


def _shipped_files() -> dict[str, str]:
    """Every file a batch may ship, by its name in the batch: cpu, _batch, _utils.certs."""
    files = {name: _read_source(name) for name in (*module_names(), BATCH_RUNNER)}
    files.update((f"{HELPERS_DIR}.{n}", _read_helper(n)) for n in helper_names())
    return files


def _without_comment_lines(name: str, source: str) -> str:
    """source with its comment-only lines emptied: a tenth of a batch's compressed bytes.
    Their places were found when _catalog.json was made, so a run never tokenizes."""
    lines = source.splitlines(keepends=True)
    for first, last in _catalog()[SHIPPED_KEY][name]:
        for index in range(first - 1, min(last, len(lines))):
            # a stale _catalog.json (a test fails then) must never empty a line of code
            if lines[index].lstrip().startswith("#"):
                lines[index] = "\n"
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


def imported_helpers(source: str, in_helper: bool = False) -> set[str]:
    """Helpers a module (`from ._utils import certs`) or a helper (`from . import numbers`)
    imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        package, _, submodule = (node.module or "").partition(".")
        if in_helper and not node.module:
            found |= {alias.name for alias in node.names}
        elif in_helper:
            found.add(node.module)
        elif package == HELPERS_DIR:
            found |= {submodule} if submodule else {alias.name for alias in node.names}
    return found


@functools.cache
def helper_names() -> tuple[str, ...]:
    files = (_modules_dir() / HELPERS_DIR).glob("*.py")
    return tuple(sorted(p.stem for p in files if not p.name.startswith("_")))


@functools.cache
def _read_helper(name: str) -> str:
    return (_modules_dir() / HELPERS_DIR / f"{name}.py").read_text("utf-8")


@functools.cache
def helper_source(name: str) -> str:
    """A helper as shipped: without its comment lines."""
    return _without_comment_lines(f"{HELPERS_DIR}.{name}", _read_helper(name))


def _helper_closure(source: str) -> list[str]:
    """Every helper a module needs: the ones it imports and, in turn, theirs."""
    needed: set[str] = set()
    pending = imported_helpers(source)
    while pending:
        name = pending.pop()
        needed.add(name)
        pending |= imported_helpers(_read_helper(name), in_helper=True) - needed
    return sorted(needed)


def batch_sources(module_names: Iterable[str]) -> dict[str, str]:
    """What a batch ships: the modules' sources and, as "_utils.NAME", only the helpers they
    need (a batch of modules that import none carries none)."""
    sources = {name: get(name).source for name in sorted(module_names)}
    helpers = sorted({helper for name in sources for helper in get(name).helpers})
    sources.update((f"{HELPERS_DIR}.{name}", helper_source(name)) for name in helpers)
    return sources


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
            "facts": meta.get("facts", {}),
            "free_form": meta.get("free_form"),
            "required_one_of": [list(g) for g in meta.get("required_one_of", [])],
            "mutually_exclusive": [list(g) for g in meta.get("mutually_exclusive", [])],
            "rate": hasattr(module, "sample"),
            "window_option": meta.get("window_option"),
            **({"window_if": meta["window_if"]} if "window_if" in meta else {}),
            "keeps_state": bool(meta.get("keeps_state", False)),
            "probe": meta.get("probe", {}),
            "doc_lines": _doc_line_ranges(_read_source(name)),
            "helpers": _helper_closure(_read_source(name)),
        }
    return catalog


def catalog_json() -> str:
    comments = {name: _comment_line_ranges(text) for name, text in _shipped_files().items()}
    return json.dumps({**build_catalog(), SHIPPED_KEY: comments}, indent=1) + "\n"


@functools.cache
def _catalog() -> dict[str, Any]:
    try:
        return json.loads((_modules_dir() / CATALOG_FILE).read_text("utf-8"))
    except FileNotFoundError:
        return json.loads(catalog_json())


@functools.cache
def get(name: str) -> ModuleInfo:
    """Metadata of one module; KeyError when there is no such module."""
    if name.startswith("_"):  # _batch, _utils, the catalog's own _comment_lines: no modules
        raise KeyError(name)
    return ModuleInfo(name=name, **_catalog()[name])


def all_modules() -> dict[str, ModuleInfo]:
    return {name: get(name) for name in module_names()}


@functools.cache
def batch_runner_source() -> str:
    return _without_comment_lines(BATCH_RUNNER, _read_source(BATCH_RUNNER))
