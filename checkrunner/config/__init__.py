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

from checkrunner.config.docs import (
    lookup_module,
    render_module_doc,
    render_module_list,
    render_receiver_doc,
    render_receiver_list,
)
from checkrunner.config.extra_vars import parse_extra_vars
from checkrunner.config.keywords import DEFAULT_CHECK_TIMEOUT, DEFAULT_RETRY_DELAY
from checkrunner.config.loader import load_yaml_file, read_playbook
from checkrunner.config.model import CheckSpec, Interval, Play, Playbook, ThresholdSpec
from checkrunner.config.normalize import normalize_args
from checkrunner.config.problems import raise_problems
from checkrunner.config.ranges import Range, parse_range
from checkrunner.config.schema import playbook_schema
from checkrunner.config.templating import Templater, evaluate_when
from checkrunner.errors import MultipleConfigErrors
from checkrunner.yamlio.marked import (
    MarkedMap,
    MarkedSeq,
    key_location,
    value_location,
)
from checkrunner.yamlio.marked import merge_marked as merge_variables

__all__ = [
    "DEFAULT_CHECK_TIMEOUT",
    "DEFAULT_RETRY_DELAY",
    "CheckSpec",
    "Interval",
    "MarkedMap",
    "MarkedSeq",
    "MultipleConfigErrors",
    "Play",
    "Playbook",
    "Range",
    "Templater",
    "ThresholdSpec",
    "evaluate_when",
    "key_location",
    "load_yaml_file",
    "lookup_module",
    "merge_variables",
    "normalize_args",
    "parse_extra_vars",
    "parse_range",
    "playbook_schema",
    "raise_problems",
    "read_playbook",
    "render_module_doc",
    "render_module_list",
    "render_receiver_doc",
    "render_receiver_list",
    "value_location",
]
