"""`-e/--extra-vars` values: key=value pairs, an inline JSON/YAML object, or @file."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from checkrunner.config.coerce import VARIABLE_NAME, kind_of
from checkrunner.config.problems import raise_problems
from checkrunner.errors import ConfigError, Location
from checkrunner.yamlio.marked import MarkedMap, merge_marked, parse_yaml, read_yaml

FORMS_HINT = "use -e name=value (several: -e 'a=1 b=2'), -e '{\"name\": 1}' or -e @vars.yml"
INLINE_SOURCE = "--extra-vars"


def parse_extra_vars(items: Sequence[str], cwd: str | os.PathLike[str] | None = None) -> MarkedMap:
    """The variables of all -e items, later items winning key by key.

    Each item is `k=v k2='v 2'` (shell-split; values stay strings, as on Ansible's command
    line), a JSON/YAML object (`{"port": 8080}`, values keep their types) or `@file.yml` /
    `@file.json`, relative to `cwd` (default: the current directory). Values from files keep
    their file:line:column, so templating errors in them point there.
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    return merge_marked(*(_parse_item(item, base) for item in items))


def _parse_item(item: str, base: Path) -> Mapping[str, Any]:
    text = item.strip()
    if not text:
        raise ConfigError("-e was given an empty value", hint=FORMS_HINT)
    if text.startswith("@"):
        return _from_file(text[1:].strip(), base)
    if text[0] in "{[":
        document, problems = parse_yaml(text, INLINE_SOURCE)
        raise_problems(problems)
        return _checked_mapping(document, f"-e {text}", Location(INLINE_SOURCE, 1, 1))
    return _from_pairs(text)


def _from_file(name: str, base: Path) -> Mapping[str, Any]:
    if not name:
        raise ConfigError("-e @ needs a file name", hint="write -e @vars.yml")
    path = base / os.path.expanduser(name)
    document, problems = read_yaml(str(path), "extra vars file")
    raise_problems(problems)
    if document is None:
        return MarkedMap()
    return _checked_mapping(document, f"-e @{name}", Location(str(path), 1, 1))


def _checked_mapping(document: Any, source: str, where: Location) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise ConfigError(
            f"{source}: extra vars must be a mapping of name: value, not {kind_of(document, show_text=False)}",
            where,
            FORMS_HINT,
        )
    for name in document:
        _check_name(name, source)
    return document


def _from_pairs(text: str) -> dict[str, str]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(
            f"-e {text}: {exc}", hint="close the quotes, e.g. -e \"msg='hello world'\""
        ) from None
    pairs: dict[str, str] = {}
    for word in words:
        name, equals, value = word.partition("=")
        if not equals:
            raise ConfigError(f"-e {text}: '{word}' is not name=value", hint=FORMS_HINT)
        _check_name(name, f"-e {text}")
        pairs[name] = value
    return pairs


def _check_name(name: Any, source: str) -> None:
    if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
        raise ConfigError(
            f"{source}: '{name}' is not a valid variable name",
            hint="use letters, digits and _, not starting with a digit",
        )
