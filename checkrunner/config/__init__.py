"""Playbooks: load YAML with line numbers, validate against the module specs, template per host.

Public API (the other layers import only from here, or ranges for `parse_range`):
- read_playbook(path, alerting) -> Playbook: plays and checks with their YAML locations; raises
  ConfigError (MultipleConfigErrors for several problems, each at file:line:column).
  `alerting` reads the receivers and route: config never imports alerting, a layer above
  it; `checkrunner.playbook.load_playbook(path)` hands alerting's parser in.
- playbook_schema() -> dict: JSON schema (draft 2020-12) generated from the module specs.
- Templater: sandboxed Jinja2; render(value, variables, location), evaluate_when(...).
- parse_extra_vars(items, cwd) -> dict: the -e values.
- normalize_args(module_info, args, location) -> dict: complete, typed module arguments.
- parse_range(text, unit=None) -> Range: warn/crit thresholds (Nagios syntax, bare N = ~:N).
- render_module_doc(info), render_module_list(), lookup_module(name), render_receiver_doc,
  render_receiver_list: `checkrun doc`.
- load_yaml_file(path), merge_variables(*layers): YAML with marks (checkrunner.yamlio) for
  the layers above.
"""

import importlib
from typing import Any

# Loaded when first used (PEP 562), so that a command needing one piece of config (the CLI's
# option types, `checkrun history`) does not import the whole layer (YAML, Jinja2, schemas).
_EXPORTS = {
    "DEFAULT_CHECK_TIMEOUT": "checkrunner.config.keywords",
    "DEFAULT_RETRY_DELAY": "checkrunner.config.keywords",
    "CheckSpec": "checkrunner.config.model",
    "Interval": "checkrunner.config.model",
    "MarkedMap": "checkrunner.yamlio.marked",
    "MarkedSeq": "checkrunner.yamlio.marked",
    "MultipleConfigErrors": "checkrunner.errors",
    "Play": "checkrunner.config.model",
    "Playbook": "checkrunner.config.model",
    "Range": "checkrunner.config.ranges",
    "Templater": "checkrunner.config.templating",
    "ThresholdSpec": "checkrunner.config.model",
    "evaluate_when": "checkrunner.config.templating",
    "key_location": "checkrunner.yamlio.marked",
    "load_yaml_file": "checkrunner.config.loader",
    "lookup_module": "checkrunner.config.docs",
    "merge_variables": "checkrunner.yamlio.marked",
    "normalize_args": "checkrunner.config.normalize",
    "parse_extra_vars": "checkrunner.config.extra_vars",
    "parse_range": "checkrunner.config.ranges",
    "playbook_schema": "checkrunner.config.schema",
    "raise_problems": "checkrunner.config.problems",
    "read_playbook": "checkrunner.config.loader",
    "render_module_doc": "checkrunner.config.docs",
    "render_module_list": "checkrunner.config.docs",
    "render_receiver_doc": "checkrunner.config.docs",
    "render_receiver_list": "checkrunner.config.docs",
    "value_location": "checkrunner.yamlio.marked",
}
_RENAMED = {"merge_variables": "merge_marked"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value
