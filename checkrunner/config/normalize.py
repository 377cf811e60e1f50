"""A module's arguments checked against its option spec: defaults, types, choices, groups.

The same checks run twice: when the playbook loads (`check_args(..., keep_templates=True)`,
templates not rendered yet) and per host after rendering (`normalize_args`), so a mistake
that needs no host variables is reported before anything runs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checkrunner.catalog import ModuleInfo
from checkrunner.config.coerce import coerce_value, describe_type, kind_of
from checkrunner.config.problems import raise_problems
from checkrunner.errors import ConfigError, Location, OptionValueError, did_you_mean
from checkrunner.yamlio.marked import MarkedMap, key_location, location_of, value_location


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


@dataclass(frozen=True)
class OptionSet:
    """The options of a module, or the suboptions of each item of a list-of-mappings option."""

    label: str  # "module 'log'", "item 2 of option 'patterns' of module 'log'"
    options: Mapping[str, Mapping[str, Any]]
    required_one_of: Sequence[Sequence[str]] = ()
    mutually_exclusive: Sequence[Sequence[str]] = ()
    takes: str = ""  # the hint listing what it takes

    @classmethod
    def of_module(cls, module: ModuleInfo) -> OptionSet:
        takes = (
            f"{module.name} takes: {', '.join(module.options)} (see `checkrun doc {module.name}`)"
            if module.options
            else f"{module.name} takes no options: write {module.name}: {{}}"
        )
        return cls(
            f"module '{module.name}'",
            module.options,
            module.required_one_of,
            module.mutually_exclusive,
            takes,
        )

    def of_item(self, option: str, spec: Mapping[str, Any], position: int) -> OptionSet:
        return self._nested(spec, f"item {position} of option '{option}'", f"each item of {option}")

    def of_mapping(self, option: str, spec: Mapping[str, Any]) -> OptionSet:
        return self._nested(spec, f"option '{option}'", option)

    def _nested(self, spec: Mapping[str, Any], what: str, taker: str) -> OptionSet:
        suboptions = spec.get("options") or {}
        return OptionSet(
            f"{what} of {self.label}",
            suboptions,
            spec.get("required_one_of") or (),
            spec.get("mutually_exclusive") or (),
            f"{taker} takes: {', '.join(suboptions)}",
        )


def check_args(
    module: ModuleInfo, options: Mapping[Any, Any], location: Location, *, keep_templates: bool
) -> tuple[dict[str, Any], list[ConfigError]]:
    """(coerced values of every option, problems found); see the module docstring."""
    return check_option_set(OptionSet.of_module(module), options, location, keep_templates)


def check_option_set(
    owner: OptionSet, options: Mapping[Any, Any], location: Location, keep_templates: bool
) -> tuple[dict[str, Any], list[ConfigError]]:
    problems = [
        _unknown_option(owner, options, key, location)
        for key in options
        if key not in owner.options
    ]
    given = {key: value for key, value in options.items() if value is not None}
    values: dict[str, Any] = {}
    for name, spec in owner.options.items():
        if name in given:
            values[name] = _coerce_given(
                owner, options, name, spec, location, keep_templates, problems
            )
        else:
            values[name] = _default(spec)
            if spec.get("required"):
                problems.append(_missing_option(owner, name, spec, location_of(options, location)))
    problems.extend(_group_problems(owner, options, given, location))
    return values, problems


def _coerce_given(
    owner: OptionSet,
    options: Mapping[Any, Any],
    name: str,
    spec: Mapping[str, Any],
    location: Location,
    keep_templates: bool,
    problems: list[ConfigError],
) -> Any:
    at = value_location(options, name, location)
    try:
        value = coerce_value(options[name], spec, keep_templates=keep_templates)
    except OptionValueError as exc:
        if exc.item is not None:
            at = value_location(options[name], exc.item, at)
        problems.append(
            ConfigError(f"option '{name}' of {owner.label}: {exc.message}", at, exc.hint)
        )
        return None
    if spec.get("type") == "list" and spec.get("options") and isinstance(value, list):
        return _check_items(owner, name, spec, options[name], value, at, keep_templates, problems)
    if spec.get("type") == "dict" and spec.get("options") and isinstance(value, Mapping):
        values, sub_problems = check_option_set(
            owner.of_mapping(name, spec), value, at, keep_templates
        )
        problems.extend(sub_problems)
        return values
    return value


def _check_items(
    owner: OptionSet,
    name: str,
    spec: Mapping[str, Any],
    written: Any,
    items: list[Any],
    location: Location,
    keep_templates: bool,
    problems: list[ConfigError],
) -> list[Any]:
    """Each mapping of a list-of-mappings option checked against the option's suboptions."""
    checked = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):  # a template, kept for after rendering
            checked.append(item)
            continue
        where = value_location(written, index, location) if isinstance(written, list) else location
        values, item_problems = check_option_set(
            owner.of_item(name, spec, index + 1), item, where, keep_templates
        )
        problems.extend(item_problems)
        checked.append(values)
    return checked


def _default(spec: Mapping[str, Any]) -> Any:
    if spec.get("default") is None:
        return None
    # A copy, so that no check can change the default another check receives.
    return coerce_value(copy.deepcopy(spec["default"]), spec)


def _unknown_option(
    owner: OptionSet, options: Mapping[Any, Any], key: Any, location: Location
) -> ConfigError:
    message = f"unknown option '{key}' for {owner.label}"
    suggestion = did_you_mean(str(key), owner.options)
    if suggestion:
        message += f" — {suggestion}"
    return ConfigError(message, key_location(options, key, location), owner.takes)


def _missing_option(
    owner: OptionSet, name: str, spec: Mapping[str, Any], where: Location
) -> ConfigError:
    about = str(spec.get("description", "")).split(". ")[0].rstrip(".")
    hint = f"add {name}: <{describe_type(spec)}>" + (f" ({about})" if about else "")
    return ConfigError(f"{owner.label} needs the option '{name}'", where, hint)


def _group_problems(
    owner: OptionSet, options: Mapping[Any, Any], given: Mapping[Any, Any], location: Location
) -> list[ConfigError]:
    problems = []
    where = location_of(options, location)
    for group in owner.required_one_of:
        if not any(name in given for name in group):
            problems.append(
                ConfigError(
                    f"{owner.label} needs one of the options {', '.join(group)}",
                    where,
                    f"add one of them, e.g. {group[0]}: ...",
                )
            )
    for group in owner.mutually_exclusive:
        present = [name for name in group if name in given]
        if len(present) > 1:
            problems.append(
                ConfigError(
                    f"options {' and '.join(repr(p) for p in present)} of {owner.label} "
                    "cannot be used together",
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
