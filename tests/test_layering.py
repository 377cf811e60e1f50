"""The package dependency rule (docs/ARCHITECTURE.md): no import cycle between checkrunner's
packages and top-level modules, function-level imports included."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

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
