"""The package dependency rule (docs/ARCHITECTURE.md): no import cycle between checkrunner's
packages and top-level modules, function-level imports included."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import checkrunner

PACKAGE = Path(checkrunner.__file__).parent
ROOT = "checkrunner"  # the node of checkrunner/__init__.py itself (__version__)

Graph = dict[str, dict[str, list[str]]]  # unit -> imported unit -> where ("file:line")


def unit_of(dotted: str) -> str:
    """The package or top-level module `checkrunner.X...` belongs to: X."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _source_unit(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ROOT if parts == ("__init__",) else parts[0]


def _is_submodule(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def imported_units(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """(unit, line) of every absolute import of checkrunner anywhere in the tree."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(ROOT + "."):
                    yield unit_of(alias.name), node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == ROOT:  # from checkrunner import settings, __version__
                for alias in node.names:
                    yield (alias.name if _is_submodule(alias.name) else ROOT), node.lineno
            elif node.module.startswith(ROOT + "."):
                yield unit_of(node.module), node.lineno


def package_graph() -> Graph:
    graph: Graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _source_unit(path)
        edges = graph.setdefault(source, {})
        for target, line in imported_units(ast.parse(path.read_text(), str(path))):
            if target != source:
                edges.setdefault(target, []).append(f"{path.relative_to(PACKAGE)}:{line}")
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None: depth-first search with the path on a stack."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph.get(node, {})):
            if target in on_path:
                return path[path.index(target) :] + [target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def describe(graph: Graph, cycle: list[str]) -> str:
    return "\n".join(f"  {a} -> {b}  ({', '.join(graph[a][b])})" for a, b in zip(cycle, cycle[1:]))


def test_no_import_cycle_between_packages():
    graph = package_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between checkrunner's packages:\n" + describe(graph, cycle)


# The picture in docs/ARCHITECTURE.md, top to bottom: a unit imports only from rows below its own.
LAYERS = [
    ["__main__"],
    ["cli"],
    ["init_command"],
    ["app", "history_command", "actions_command", "merge_command", "completion"],
    ["serve"],
    ["playbook"],
    ["remediation"],
    ["alerting", "runner", "report"],
    ["state"],
    ["plan"],
    ["transport", "evaluate"],
    ["config"],
    ["inventory"],
    ["yamlio"],
    ["catalog", "masking", "settings", "unsafe", "units", "safe_text", "subprocesses"],
    ["errors", "modules"],
    ["results"],
    ["shards"],
    [ROOT],
]


def test_every_import_goes_to_a_lower_layer():
    """Acyclic is the minimum; the rule is the picture: a new package gets its row here and
    in docs/ARCHITECTURE.md, and nothing imports upward or sideways."""
    row = {unit: index for index, units in enumerate(LAYERS) for unit in units}
    graph = package_graph()
    assert sorted(set(graph) - set(row)) == [], "place the new unit in LAYERS and the docs"
    upward = [
        f"{source} -> {target} ({', '.join(places)})"
        for source, targets in graph.items()
        for target, places in targets.items()
        if row[target] <= row[source]
    ]
    assert upward == []


def test_the_graph_sees_function_level_and_package_imports():
    graph = package_graph()
    # checkrunner.playbook imports alerting only inside functions (kept lazy for start-up).
    assert "alerting" in graph["playbook"]
    # `from checkrunner import catalog` is the catalog module, `__version__` the root package.
    assert "catalog" in graph["config"]
    assert ROOT in graph["results"]
    assert {"config", "inventory", "transport", "alerting", "state", "report", "evaluate"} <= set(
        graph
    )


def test_config_is_below_alerting():
    """The edge that closed config -> alerting -> state -> plan -> config stays gone."""
    assert "alerting" not in package_graph()["config"]


def test_find_cycle_names_every_edge_of_a_cycle():
    graph: Graph = {
        "config": {"catalog": ["c.py:1"], "alerting": ["config/parse.py:145"]},
        "alerting": {"state": ["a.py:2"]},
        "state": {"plan": ["s.py:3"]},
        "plan": {"config": ["p.py:4"]},
        "catalog": {},
    }
    cycle = find_cycle(graph)
    assert cycle == ["alerting", "state", "plan", "config", "alerting"]
    assert "config -> alerting  (config/parse.py:145)" in describe(graph, cycle)
    del graph["plan"]["config"]
    assert find_cycle(graph) is None


# -- generic layers name no check module ---------------------------------------------------------


def _named_modules(source: str, where: str, modules: set[str], options: set[str]) -> Iterator[str]:
    """Where the file singles out a check module by name (`module == "log"`, `LOG_MODULE =
    "log"`) or reads a module's own option by name (`args.get("sample")`)."""
    tree = ast.parse(source, where)
    for node in tree.body:  # module-level constants: LOG_MODULE = "log"
        value = node.value if isinstance(node, ast.Assign) else None
        if isinstance(value, ast.Constant) and value.value in modules:
            yield f"{where}:{node.lineno}: {value.value!r}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                if isinstance(side, ast.Constant) and side.value in modules:
                    yield f"{where}:{node.lineno}: compares with {side.value!r}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            first = node.args[0] if node.func.attr == "get" and node.args else None
            if isinstance(first, ast.Constant) and first.value in options:
                yield f"{where}:{node.lineno}: reads the option {first.value!r}"


def test_generic_code_names_no_check_module():
    """What a module needs from the layers around it (state between runs, a sampling window)
    is declared in its MODULE spec, never spelt out in generic code."""
    from checkrunner import catalog

    modules = set(catalog.module_names())
    options = {catalog.get(name).window_option for name in modules} - {None}
    assert options == {"sample"}
    found = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if "modules" not in path.relative_to(PACKAGE).parts  # the modules themselves may
        for hit in _named_modules(
            path.read_text(), str(path.relative_to(PACKAGE)), modules, options
        )
    ]
    assert found == []


def test_the_checks_that_name_generic_code_are_found():
    from checkrunner import catalog

    source = 'LOG_MODULE = "log"\n\ndef f(c, a):\n    return c.module == "log" or a.get("sample")\n'
    hits = list(
        _named_modules(source, "_layering_probe.py", set(catalog.module_names()), {"sample"})
    )
    assert hits == [
        "_layering_probe.py:1: 'log'",
        "_layering_probe.py:4: compares with 'log'",
        "_layering_probe.py:4: reads the option 'sample'",
    ]


def test_modules_declare_their_sampling_window_and_their_state():
    """A rate collector (it defines `sample`) names the duration option that sets its window;
    the log module keeps its cursors between runs, the cgroup module its OOM-kill counter."""
    from checkrunner import catalog

    for name in catalog.module_names():
        info = catalog.get(name)
        if info.rate:
            assert info.options[info.window_option]["type"] == "duration", name
        else:
            assert info.window_option is None, name
    assert [n for n in catalog.module_names() if catalog.get(n).keeps_state] == ["cgroup", "log"]


def test_the_window_travels_with_the_check_and_sets_the_shared_window():
    """The batch carries each check's window (from its module's `window_option`): the
    target's shared window is the longest, and a check without one adds none."""
    from checkrunner.transport import Batch, BatchCheck, build_payload
    from checkrunner.transport.answer import parse_output
    from checkrunner.transport.local import LocalTransport

    cpu = BatchCheck("1", "cpu", {"sample": 0.1}, 10.0)
    process = BatchCheck("2", "process", {"name": "no-such-process-x", "sample": 0.7}, 10.0)
    memory = BatchCheck("3", "memory", {}, 10.0)
    assert (cpu.to_wire()["window"], process.window, memory.window) == (0.1, 0.7, None)
    assert "window" not in memory.to_wire()

    class Host:
        name = "localhost"
        python_interpreter = sys.executable
        become = False

    result = LocalTransport().run_batch(Host(), build_payload(Batch([cpu, process, memory])), 30)
    entries = {e["id"]: e for e in parse_output(result.stdout)["results"]}
    assert entries["1"]["duration"] >= 0.7, entries["1"]  # cpu waited for the longer window
    assert "error" not in entries["1"] and "error" not in entries["2"], entries


# -- a private name is used only in the file that defines it ------------------------------------

NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make"}  # public, despite the underscore
# argparse lists a parser's arguments nowhere else; completion reads them (as argcomplete and
# shtab do) so that the scripts cannot drift from the options
ARGPARSE_API = {"_actions"}


def _private_uses(source: str, where: str) -> Iterator[str]:
    """Private names (`_x`, not `__x__`) a file imports from checkrunner, or reads as an
    attribute without defining that name itself: another file's internals."""
    tree = ast.parse(source, where)
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
    private = lambda name: name.startswith("_") and not name.startswith("__")  # noqa: E731
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(ROOT):
            for alias in node.names:
                if private(alias.name):
                    yield f"{where}:{node.lineno}: imports {node.module}.{alias.name}"
        elif (
            isinstance(node, ast.Attribute)
            and private(node.attr)
            and node.attr not in defined | NAMEDTUPLE_API | ARGPARSE_API
        ):
            yield f"{where}:{node.lineno}: uses {ast.unparse(node)}"


def test_no_file_reaches_into_another_files_private_names():
    """Layers meet at public seams (Templater.resolve_variable for the Jinja2 sandbox), not
    at another file's `_Environ` or `_resolve_variable`."""
    found = [
        hit
        for path in sorted(PACKAGE.rglob("*.py"))
        if "modules" not in path.relative_to(PACKAGE).parts
        for hit in _private_uses(path.read_text(), str(path.relative_to(PACKAGE)))
    ]
    assert found == []


def test_private_uses_are_found():
    source = (
        "from checkrunner.config.templating import _Environ\n"
        "class C:\n"
        "    def f(self, templater):\n"
        "        self._own = 1\n"
        "        return templater._resolve_variable(self._own), parts._replace(a=1)\n"
    )
    assert list(_private_uses(source, "probe.py")) == [
        "probe.py:1: imports checkrunner.config.templating._Environ",
        "probe.py:5: uses templater._resolve_variable",
    ]


# -- one YAML reader, below config and inventory ---------------------------------------------------


def test_yaml_is_read_in_a_layer_below_config_and_inventory():
    graph = package_graph()
    assert "yamlio" in graph["config"] and "yamlio" in graph["inventory"]
    assert "config" not in graph["inventory"]  # inventory needs nothing else of config
    assert set(graph["yamlio"]) <= {"errors", "unsafe"}


@pytest.mark.parametrize(
    ("text", "where", "message", "hint"),
    [
        (
            "all:\n  hosts:\n    web1: {a: 1\n",
            "4:1",
            "invalid YAML: expected ',' or '}', but got '<stream end>' "
            "(while parsing a flow mapping at line 3)",
            "close the { } or [ ] that starts before this point, or quote a value inside it",
        ),
        (
            "all:\n  vars:\n    x: !foo 1\n",
            "3:8",
            "invalid YAML: could not determine a constructor for the tag '!foo'",
            "only standard YAML tags and Ansible's !unsafe are understood",
        ),
    ],
)
def test_a_yaml_mistake_reads_the_same_in_a_playbook_and_an_inventory(
    tmp_path, text, where, message, hint
):
    """One formatter for both readers: the same text, the same message and hint."""
    from checkrunner.config import load_yaml_file
    from checkrunner.errors import ConfigError
    from checkrunner.inventory import load_inventories

    path = tmp_path / "file.yml"
    path.write_text(text)
    errors = []
    for load in (lambda: load_yaml_file(str(path)), lambda: load_inventories([str(path)])):
        with pytest.raises(ConfigError) as caught:
            load()
        errors.append(caught.value)
    for error in errors:
        assert (str(error.location), error.message, error.hint) == (
            f"{path}:{where}",
            message,
            hint,
        )
