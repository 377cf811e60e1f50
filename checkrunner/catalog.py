"""The check modules as the control node sees them: metadata for docs and schema, source to ship."""

from __future__ import annotations

import fnmatch
import functools
import importlib
import importlib.resources
from dataclasses import dataclass, field
from typing import Any

MODULES_PACKAGE = "checkrunner.modules"
BATCH_RUNNER = "_batch"

# Option types a module may declare, and the JSON type they validate as before normalising.
OPTION_TYPES = ("str", "int", "float", "bool", "duration", "size", "list", "dict", "raw")


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    summary: str
    description: str
    options: dict[str, dict[str, Any]]
    measurements: dict[str, dict[str, Any]]
    default_metric: str | None
    examples: str
    source: str
    free_form: str | None = None  # option that a scalar value (`disk: /`) fills
    required_one_of: list[list[str]] = field(default_factory=list)
    mutually_exclusive: list[list[str]] = field(default_factory=list)
    rate: bool = False  # takes part in the shared sampling window

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


def _read_source(name: str) -> str:
    return importlib.resources.files(MODULES_PACKAGE).joinpath(f"{name}.py").read_text("utf-8")


@functools.cache
def module_names() -> tuple[str, ...]:
    files = importlib.resources.files(MODULES_PACKAGE).iterdir()
    names = (f.name[:-3] for f in files if f.name.endswith(".py") and not f.name.startswith("_"))
    return tuple(sorted(names))


@functools.cache
def get(name: str) -> ModuleInfo:
    """Metadata of one module; KeyError when there is no such module."""
    if name not in module_names():
        raise KeyError(name)
    module = importlib.import_module(f"{MODULES_PACKAGE}.{name}")
    meta = module.MODULE
    description = meta.get("description", "")
    if isinstance(description, (list, tuple)):
        description = "\n\n".join(description)
    return ModuleInfo(
        name=name,
        summary=meta["summary"],
        description=description,
        options=meta.get("options", {}),
        measurements=meta.get("measurements", {}),
        default_metric=meta.get("default_metric"),
        examples=getattr(module, "EXAMPLES", "").strip("\n"),
        source=_read_source(name),
        free_form=meta.get("free_form"),
        required_one_of=[list(g) for g in meta.get("required_one_of", [])],
        mutually_exclusive=[list(g) for g in meta.get("mutually_exclusive", [])],
        rate=hasattr(module, "sample"),
    )


def all_modules() -> dict[str, ModuleInfo]:
    return {name: get(name) for name in module_names()}


@functools.cache
def batch_runner_source() -> str:
    return _read_source(BATCH_RUNNER)
