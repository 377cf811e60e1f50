"""The JSON schema of playbooks (draft 2020-12), generated from the keyword table and module specs.

It serves editors (YAML language servers give completion and inline errors from it: every
key has a title or description from the module docs) and is the second line of defence of
`read_playbook`: the parser reports problems in plain words first, and whatever the schema
still rejects is reported at its node too.
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Mapping
from typing import Any

from checkrunner import catalog
from checkrunner.catalog import ModuleInfo
from checkrunner.config.baselines import DIRECTIONS, METHODS, SEASONS
from checkrunner.config.coerce import (
    BOOL_PATTERN,
    DURATION_PATTERN,
    FLOAT_PATTERN,
    INT_PATTERN,
    SIZE_PATTERN,
    VARIABLE_NAME,
    bounds_text,
    coerce_value,
)
from checkrunner.config.keywords import (
    BASELINE_KEYWORDS,
    CHECK_KEYWORDS,
    CONNECTIONS,
    HANDLER_ACTIONS,
    HANDLER_KEYWORDS,
    INTERVAL_KEYWORDS,
    LABEL_NAME_PATTERN,
    MAX_HANDLER_RUNS,
    PLAY_KEYWORDS,
    PLAYBOOK_KEYWORDS,
    SCORE_KEYWORDS,
    THRESHOLD_KEYWORDS,
    WEBHOOK_KEYWORDS,
    WEBHOOK_METHODS,
)
from checkrunner.config.ranges import RANGE_PATTERN
from checkrunner.errors import ConfigError, Location
from checkrunner.yamlio.marked import location_of, value_location

DRAFT = "https://json-schema.org/draft/2020-12/schema"
TEMPLATE_PATTERN = r"\{\{|\{%|\{#"
_REF = "#/$defs/"


def playbook_schema() -> dict[str, Any]:
    """The schema, as a fresh dict the caller may change."""
    return copy.deepcopy(_schema())


def schema_problems(document: Any, file: str) -> list[ConfigError]:
    """What the schema rejects in a loaded playbook, each at its node's location."""
    root = location_of(document, Location(file, 1, 1))
    problems = []
    from jsonschema.exceptions import best_match

    for error in _validator().iter_errors(document):
        specific = best_match([error])
        where = _location_of_path(document, list(specific.absolute_path), root)
        problems.append(
            ConfigError(
                f"does not match the playbook schema: {specific.message}",
                where,
                "`checkrun schema` prints the schema; `checkrun doc MODULE` the options of a module",
            )
        )
    return problems


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema  # ~30 ms to import: only `checkrun validate` and editors' users pay it

    return jsonschema.Draft202012Validator(_schema())


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    modules = catalog.all_modules()
    defs: dict[str, Any] = {
        **_shared_defs(),
        "Play": _play(),
        "Check": _check(modules),
        "Handler": _handler(),
    }
    defs.update({name: _module(info) for name, info in modules.items()})
    return {
        "$schema": DRAFT,
        "title": "checkrunner playbook",
        "description": "A list of plays, or a mapping with plays:. Each play runs its checks on the hosts its pattern selects.",
        "oneOf": [
            {"$ref": _REF + "Plays"},
            {
                "type": "object",
                "properties": {
                    key: {**_PLAYBOOK_KIND_SCHEMAS[kw.kind], "description": kw.description}
                    for key, kw in PLAYBOOK_KEYWORDS.items()
                },
                "required": ["plays"],
                "dependentRequired": {"receivers": ["route"], "route": ["receivers"]},
                "additionalProperties": False,
            },
        ],
        "$defs": defs,
    }


def _shared_defs() -> dict[str, Any]:
    return {
        "Template": {
            "type": "string",
            "pattern": TEMPLATE_PATTERN,
            "description": "A Jinja2 template, rendered for each host before the check runs.",
        },
        "Duration": {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": DURATION_PATTERN},
            ],
            "description": "A duration: 500ms, 2s, 5m, 1h30m, 7d, or a number of seconds.",
        },
        "Size": {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": SIZE_PATTERN},
            ],
            "description": "A size: 512KB, 64MB, 1GiB, or a number of bytes.",
        },
        "Bool": {
            "anyOf": [
                {"type": "boolean"},
                {"enum": [0, 1]},
                {"type": "string", "pattern": BOOL_PATTERN},
            ]
        },
        "Threshold": {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "pattern": RANGE_PATTERN},
                {"$ref": _REF + "Template"},
            ],
            "description": CHECK_KEYWORDS["warn"].description,
        },
        "Baseline": _baseline_schema(),
        "Tags": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": ["string", "integer"]}},
            ],
        },
        "Labels": {
            "type": "object",
            "propertyNames": {"pattern": LABEL_NAME_PATTERN},
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
        "Variables": {
            "type": ["object", "null"],
            "propertyNames": {"pattern": f"^{VARIABLE_NAME.pattern}$"},
        },
        "When": {
            "anyOf": [
                {"type": "boolean"},
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": ["boolean", "string"]}},
            ],
        },
        "Plays": {"type": "array", "minItems": 1, "items": {"$ref": _REF + "Play"}},
    }


# The alerting keys are checked by their own parser, with Alertmanager's rules.
_PLAYBOOK_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "plays": {"$ref": _REF + "Plays"},
    "receivers": {"type": "array", "items": {"type": "object", "required": ["name"]}},
    "route": {"type": "object"},
    "inhibit_rules": {"type": "array", "items": {"type": "object"}},
    "file": {"type": "string", "minLength": 1},
    "mapping": {"type": "object"},
    "list": {"type": "array"},
}

_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": ["string", "number"]},
    "runs": {
        "anyOf": [
            {"type": "integer", "minimum": 1},
            {"type": "string", "pattern": r"^\s*\+?[1-9][0-9]*\s*$"},
        ]
    },
    "names": {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string", "minLength": 1}},
        ]
    },
    "hosts": {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
        ]
    },
    "vars": {"$ref": _REF + "Variables"},
    "vars_files": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "tags": {"$ref": _REF + "Tags"},
    "labels": {"$ref": _REF + "Labels"},
    "bool": {"$ref": _REF + "Bool"},
    "connection": {"enum": list(CONNECTIONS)},
    "duration": {"$ref": _REF + "Duration"},
    "interval": {
        "anyOf": [
            {"$ref": _REF + "Duration"},
            {
                "type": "object",
                "properties": {
                    key: {"$ref": _REF + "Duration", "description": kw.description}
                    for key, kw in INTERVAL_KEYWORDS.items()
                },
                "required": list(INTERVAL_KEYWORDS),
                "additionalProperties": False,
            },
        ]
    },
    "checks": {"type": "array", "minItems": 1, "items": {"$ref": _REF + "Check"}},
    "handlers": {"type": "array", "items": {"$ref": _REF + "Handler"}},
    "score": {
        "type": "object",
        "required": ["weights"],
        "additionalProperties": False,
        "properties": {
            "weights": {
                "type": "object",
                "minProperties": 1,
                "description": SCORE_KEYWORDS["weights"].description,
                "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
            },
            "warn": {"$ref": _REF + "Threshold", "description": SCORE_KEYWORDS["warn"].description},
            "crit": {"$ref": _REF + "Threshold", "description": SCORE_KEYWORDS["crit"].description},
        },
    },
    "threshold": {"anyOf": [{"$ref": _REF + "Threshold"}, {"$ref": _REF + "Baseline"}]},
    "metric": {"type": "string", "minLength": 1},
    "thresholds": {
        "type": "object",
        "additionalProperties": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                key: {"anyOf": [{"$ref": _REF + "Threshold"}, {"$ref": _REF + "Baseline"}]}
                for key in THRESHOLD_KEYWORDS
            },
            "additionalProperties": False,
        },
    },
    "retries": {
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": r"^\s*\+?[0-9]+\s*$"},
        ]
    },
    "when": {"$ref": _REF + "When"},
}


def _baseline_schema() -> dict[str, Any]:
    """A dynamic threshold: {baseline: 7d, factor: 1.8} (config/baselines.py)."""
    positive = {"type": "number", "exclusiveMinimum": 0}
    kinds: dict[str, dict[str, Any]] = {
        "baseline": {
            "anyOf": [positive, {"type": "string", "pattern": DURATION_PATTERN}],
        },
        "factor": positive,
        "sigma": positive,
        "mad": positive,
        "seasonal": {"enum": list(SEASONS)},
        "direction": {"enum": list(DIRECTIONS)},
        "min_samples": {"type": "integer", "minimum": 1},
        "fallback": {"$ref": _REF + "Threshold"},
    }
    return {
        "type": "object",
        "description": CHECK_KEYWORDS["warn"].description,
        "required": ["baseline"],
        "additionalProperties": False,
        "properties": {
            key: {**kinds[key], "description": kw.description}
            for key, kw in BASELINE_KEYWORDS.items()
        },
        "oneOf": [{"required": [method]} for method in METHODS],
    }


# Kinds whose key may be left empty (`tags:`): the parser reads null as "not set".
_NULLABLE_KINDS = {
    "text",
    "vars",
    "vars_files",
    "tags",
    "labels",
    "bool",
    "connection",
    "duration",
    "interval",
    "retries",
    "runs",
    "names",
    "handlers",
    "when",
    "thresholds",
}


def _keyword_properties(keywords: Mapping[str, Any]) -> dict[str, Any]:
    properties = {}
    for key, kw in keywords.items():
        schema = _KIND_SCHEMAS[kw.kind]
        if kw.kind in _NULLABLE_KINDS:
            schema = {"anyOf": [schema, {"type": "null"}]}
        properties[key] = {**schema, "description": kw.description}
    return properties


def _play() -> dict[str, Any]:
    return {
        "type": "object",
        "title": "play",
        "properties": _keyword_properties(PLAY_KEYWORDS),
        "required": ["hosts", "checks"],
        "additionalProperties": False,
    }


_HANDLER_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "command": {"$ref": _REF + "command"},
    "webhook": {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
    },
    "count": {
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": MAX_HANDLER_RUNS},
            {"type": "string", "pattern": r"^\s*\+?[1-9][0-9]*\s*$"},
        ]
    },
    "max_hosts": {
        "anyOf": [
            {"type": "integer", "minimum": 1},
            {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*%?\s*$"},
        ]
    },
}
_WEBHOOK_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": "string", "minLength": 1},
    "choice": {"enum": [*WEBHOOK_METHODS, *(m.lower() for m in WEBHOOK_METHODS)]},
    "headers": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
    "any": {},
    "duration": {"$ref": _REF + "Duration"},
}


def _handler() -> dict[str, Any]:
    """A play's handler: a name and exactly one action (config/parse.py `_handler`)."""
    properties = {}
    for key, kw in HANDLER_KEYWORDS.items():
        schema = _HANDLER_KIND_SCHEMAS.get(kw.kind) or _KIND_SCHEMAS[kw.kind]
        properties[key] = {**copy.deepcopy(schema), "description": kw.description}
    properties["webhook"]["properties"] = {
        key: {**_WEBHOOK_KIND_SCHEMAS[kw.kind], "description": kw.description}
        for key, kw in WEBHOOK_KEYWORDS.items()
    }
    return {
        "type": "object",
        "title": "handler",
        "description": "An action checks notify: a name and exactly one of "
        + ", ".join(HANDLER_ACTIONS)
        + ".",
        "properties": properties,
        "required": ["name"],
        "oneOf": [{"required": [action]} for action in HANDLER_ACTIONS],
        "additionalProperties": False,
    }


def _check(modules: Mapping[str, ModuleInfo]) -> dict[str, Any]:
    properties = _keyword_properties(CHECK_KEYWORDS)
    for name, info in modules.items():
        properties[name] = {"$ref": _REF + name, "description": info.summary}
    check: dict[str, Any] = {
        "type": "object",
        "title": "check",
        "description": "One check: a name, exactly one module with its options, thresholds and settings.",
        "properties": properties,
        "additionalProperties": False,
    }
    if modules:
        check["oneOf"] = [{"required": [name]} for name in modules]
        check["allOf"] = [_per_module_rules(info) for info in modules.values()]
    return check


def _per_module_rules(info: ModuleInfo) -> dict[str, Any]:
    """What `metric`, `thresholds` (and warn/crit without a default metric) may be with this module."""
    then: dict[str, Any] = {}
    metric = _metric_schema(info)
    if metric:
        then["properties"] = {"metric": metric, "thresholds": {"propertyNames": metric}}
    if info.default_metric is None:
        then["dependentRequired"] = {"warn": ["metric"], "crit": ["metric"]}
    return {"if": {"required": [info.name]}, "then": then}


def _metric_schema(info: ModuleInfo) -> dict[str, Any] | None:
    if not info.measurements:
        return None  # a module that declares none accepts any measurement name
    names = [name for name in info.measurements if "*" not in name]
    patterns = [_glob_to_regex(name) for name in info.measurements if "*" in name]
    choices: list[dict[str, Any]] = [{"enum": names}] if names else []
    choices += [{"type": "string", "pattern": pattern} for pattern in patterns]
    return choices[0] if len(choices) == 1 else {"anyOf": choices}


def _glob_to_regex(pattern: str) -> str:
    escaped = "".join("\\" + c if c in r".^$+?()[]{}|\\" else c for c in pattern)
    return "^" + escaped.replace("*", ".*") + "$"


def _module(info: ModuleInfo) -> dict[str, Any]:
    options = _options_object(info.options, info.required_one_of, info.mutually_exclusive)
    required = [name for name, spec in info.options.items() if spec.get("required")]
    variants = [options]
    if info.free_form:
        scalar = {"not": {"type": ["object", "null"]}}
        variants.append({"allOf": [scalar, _option(info.free_form, info.options[info.free_form])]})
    if not required and not info.required_one_of:
        variants.append({"type": "null"})
    description = "\n\n".join(part for part in (info.summary, info.description) if part)
    return {"title": info.name, "description": description, "anyOf": variants}


def _options_object(
    options: dict[str, Any], required_one_of: Any = (), mutually_exclusive: Any = ()
) -> dict[str, Any]:
    """A mapping of options (a module's, or each item's of a list-of-mappings option)."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: _option(name, spec) for name, spec in options.items()},
        "additionalProperties": False,
    }
    required = [name for name, spec in options.items() if spec.get("required")]
    if required:
        schema["required"] = required
    rules = [{"anyOf": [_given(name) for name in group]} for group in required_one_of or ()]
    for group in mutually_exclusive or ():
        rules += [
            {"not": {"allOf": [_given(a), _given(b)]}} for a, b in itertools.combinations(group, 2)
        ]
    if rules:
        schema["allOf"] = rules
    return schema


def _given(option: str) -> dict[str, Any]:
    """The option is there with a value (null counts as not given, as in the parser)."""
    return {"required": [option], "properties": {option: {"not": {"type": "null"}}}}


def _option(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    variants = [_option_type(spec), {"$ref": _REF + "Template"}]
    if not spec.get("required"):
        variants.append({"type": "null"})  # left empty: the default applies
    schema: dict[str, Any] = {"title": name, "anyOf": variants}
    if spec.get("description"):
        schema["description"] = str(spec["description"])
    if spec.get("default") is not None:
        schema["default"] = spec["default"]
    return schema


def _option_type(spec: Mapping[str, Any]) -> dict[str, Any]:
    kind = spec.get("type", "raw")
    if kind == "list" and spec.get("options"):
        item = _options_object(
            spec["options"], spec.get("required_one_of"), spec.get("mutually_exclusive")
        )
        return {"type": "array", "items": {"anyOf": [item, {"$ref": _REF + "Template"}]}}
    if kind == "dict" and spec.get("options"):
        return _options_object(
            spec["options"], spec.get("required_one_of"), spec.get("mutually_exclusive")
        )
    if kind == "dict" and spec.get("elements"):
        values = {"type": spec["elements"], "format": spec.get("format")}
        return {
            "type": "object",
            "additionalProperties": {"anyOf": [_option_type(values), {"$ref": _REF + "Template"}]},
        }
    if kind == "list":
        element = _option_type(
            {"type": spec.get("elements", "raw"), "choices": spec.get("choices")}
        )
        item = {"anyOf": [element, {"$ref": _REF + "Template"}]}
        single = {"allOf": [{"not": {"type": "object"}}, element]}
        return {"anyOf": [{"type": "array", "items": item}, single]}
    if spec.get("choices"):
        choices = list(spec["choices"])
        # int/float choices are also accepted as text ("2"), the way coercion does.
        return {"enum": choices + [str(c) for c in choices if not isinstance(c, str)]}
    if kind in ("int", "float", "duration", "size") and bounds_text(spec):
        return _bounded_number(kind, spec)
    scalar = copy.deepcopy(_SCALAR_TYPES.get(kind, {}))
    if spec.get("format") in _JSON_FORMATS and kind == "str":
        scalar = {"type": "string", "format": _JSON_FORMATS[spec["format"]]}
    return scalar


# Annotations for editors. Not "regex": JSON Schema's is ECMA 262's, and editors would flag
# valid Python expressions such as (?P<name>...); checkrun checks Python's itself.
_JSON_FORMATS = {"url": "uri"}


def _bounded_number(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The type's schema with minimum/maximum on its numeric form (seconds, bytes); text
    forms (5m, 64MB) are range-checked by the parser."""
    limits = {}
    if spec.get("min") is not None:
        limits["minimum"] = coerce_value(spec["min"], {"type": kind})
    if spec.get("max") is not None:
        limits["maximum"] = coerce_value(spec["max"], {"type": kind})
    numeric = {"type": "integer" if kind == "int" else "number", **limits}
    text = {"int": INT_PATTERN, "float": FLOAT_PATTERN, "duration": DURATION_PATTERN}
    pattern = text.get(kind, SIZE_PATTERN)
    return {"anyOf": [numeric, {"type": "string", "pattern": pattern}]}


_SCALAR_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": ["string", "number"]},
    "int": {"anyOf": [{"type": "integer"}, {"type": "string", "pattern": INT_PATTERN}]},
    "float": {"anyOf": [{"type": "number"}, {"type": "string", "pattern": FLOAT_PATTERN}]},
    "bool": {"$ref": _REF + "Bool"},
    "duration": {"$ref": _REF + "Duration"},
    "size": {"$ref": _REF + "Size"},
    "dict": {"type": "object"},
    "argv": {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "number"},
            {"type": "array", "minItems": 1, "items": {"type": ["string", "number"]}},
        ]
    },
    "raw": {},
}


def _location_of_path(document: Any, path: list[Any], root: Location) -> Location:
    node, where = document, root
    for position, part in enumerate(path):
        is_last = position == len(path) - 1
        where = value_location(node, part, where)
        if is_last:
            break
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    return where
