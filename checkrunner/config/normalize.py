"""A module's arguments checked against its option spec: defaults, types, choices, groups.

The same checks run twice: when the playbook loads (`check_args(..., keep_templates=True)`,
templates not rendered yet) and per host after rendering (`normalize_args`), so a mistake
that needs no host variables is reported before anything runs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from checkrunner.catalog import ModuleInfo
from checkrunner.config.coerce import OptionValueError, coerce_value, describe_type, kind_of
from checkrunner.config.problems import raise_problems
from checkrunner.config.yaml_loader import MarkedMap, key_location, location_of, value_location
from checkrunner.errors import ConfigError, Location, did_you_mean


def normalize_args(module: ModuleInfo, args: Any, location: Location) -> dict[str, Any]:
    """Complete, typed arguments for `module.run`: every option present (None when unset).

    `args` is the rendered value of the module key: a mapping, None, or a free-form scalar.
    Durations become float seconds, sizes int bytes; int/float/bool are coerced from strings.
    Raises ConfigError (or MultipleConfigErrors) at the offending option's location.
    """
    options = expand_args(module, args, location)
    values, problems = check_args(module, options, location, keep_templates=False)
    raise_problems(problems)
    return values


def expand_args(module: ModuleInfo, value: Any, location: Location) -> MarkedMap:
    """The module key's value as an options mapping: null is {}, a scalar fills the free-form option."""
    where = location_of(value, location)
    if value is None:
        return MarkedMap(location=where)
    if isinstance(value, MarkedMap):
        return value
    if isinstance(value, Mapping):
        return MarkedMap(value, location=where)
    if module.free_form:
        options = MarkedMap({module.free_form: value}, location=where)
        options.key_locations[module.free_form] = where
        options.value_locations[module.free_form] = where
        return options
    raise ConfigError(
        f"module '{module.name}' takes a mapping of options, not {kind_of(value)}",
        where,
        _mapping_example(module),
    )


def check_args(
    module: ModuleInfo, options: Mapping[Any, Any], location: Location, *, keep_templates: bool
) -> tuple[dict[str, Any], list[ConfigError]]:
    """(coerced values of every option, problems found); see the module docstring."""
    problems = [
        _unknown_option(module, options, key, location)
        for key in options
        if key not in module.options
    ]
    given = {key: value for key, value in options.items() if value is not None}
    values: dict[str, Any] = {}
    for name, spec in module.options.items():
        if name in given:
            values[name] = _coerce_given(
                module, options, name, spec, location, keep_templates, problems
            )
        else:
            values[name] = _default(spec)
            if spec.get("required"):
                problems.append(_missing_option(module, name, spec, location_of(options, location)))
    problems.extend(_group_problems(module, options, given, location))
    return values, problems


def _coerce_given(
    module: ModuleInfo,
    options: Mapping[Any, Any],
    name: str,
    spec: Mapping[str, Any],
    location: Location,
    keep_templates: bool,
    problems: list[ConfigError],
) -> Any:
    try:
        return coerce_value(options[name], spec, keep_templates=keep_templates)
    except OptionValueError as exc:
        problems.append(
            ConfigError(
                f"option '{name}' of module '{module.name}': {exc.message}",
                value_location(options, name, location),
                exc.hint,
            )
        )
        return None


def _default(spec: Mapping[str, Any]) -> Any:
    if spec.get("default") is None:
        return None
    # A copy, so that no check can change the default another check receives.
    return coerce_value(copy.deepcopy(spec["default"]), spec)


def _unknown_option(
    module: ModuleInfo, options: Mapping[Any, Any], key: Any, location: Location
) -> ConfigError:
    message = f"unknown option '{key}' for module '{module.name}'"
    suggestion = did_you_mean(str(key), module.options)
    if suggestion:
        message += f" — {suggestion}"
    if module.options:
        hint = (
            f"{module.name} takes: {', '.join(module.options)} (see `checkrun doc {module.name}`)"
        )
    else:
        hint = f"{module.name} takes no options: write {module.name}: {{}}"
    return ConfigError(message, key_location(options, key, location), hint)


def _missing_option(
    module: ModuleInfo, name: str, spec: Mapping[str, Any], where: Location
) -> ConfigError:
    about = str(spec.get("description", "")).split(". ")[0].rstrip(".")
    hint = f"add {name}: <{describe_type(spec)}>" + (f" ({about})" if about else "")
    return ConfigError(f"module '{module.name}' needs the option '{name}'", where, hint)


def _group_problems(
    module: ModuleInfo, options: Mapping[Any, Any], given: Mapping[Any, Any], location: Location
) -> list[ConfigError]:
    problems = []
    where = location_of(options, location)
    for group in module.required_one_of:
        if not any(name in given for name in group):
            problems.append(
                ConfigError(
                    f"module '{module.name}' needs one of the options {', '.join(group)}",
                    where,
                    f"add one of them, e.g. {group[0]}: ...",
                )
            )
    for group in module.mutually_exclusive:
        present = [name for name in group if name in given]
        if len(present) > 1:
            problems.append(
                ConfigError(
                    f"options {' and '.join(repr(p) for p in present)} of module "
                    f"'{module.name}' cannot be used together",
                    key_location(options, present[-1], location),
                    "keep only one of them",
                )
            )
    return problems


def _mapping_example(module: ModuleInfo) -> str:
    if not module.options:
        return f"write {module.name}: {{}}"
    first = next(iter(module.options))
    return f"write {module.name}: {{{first}: ...}} (options: {', '.join(module.options)})"
