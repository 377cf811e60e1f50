"""YAML read as a node tree, so every inventory and vars error can point at file:line:column."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from checkrunner.errors import ConfigError, Location, looks_like_private_key, quote
from checkrunner.unsafe import UNSAFE_TAG, mark_unsafe
from checkrunner.yamlio.marked import (
    VaultValue,
    check_node_graph,
    construct_bounded_int,
    nesting_error,
    syntax_error,
)

Warn = Callable[[str, Location], None]  # what is suspicious but loads, and where

try:  # libyaml composes ~10x faster; the constructors stay the pure-Python SafeConstructor
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

NULL_TAG = "tag:yaml.org,2002:null"
MERGE_TAG = "tag:yaml.org,2002:merge"


class _InventoryLoader(_SafeLoader):
    """SafeLoader plus Ansible's YAML tags: `!unsafe` reads as plain data, `!vault` is refused."""


def _construct_unsafe(loader: _InventoryLoader, node: Node) -> Any:
    if isinstance(node, MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return mark_unsafe(value)  # never templated, as in Ansible


def _construct_vault(loader: _InventoryLoader, node: Node) -> Any:
    raise VaultValue(
        None, None, "this value is encrypted with Ansible Vault (!vault)", node.start_mark
    )


_InventoryLoader.add_constructor(UNSAFE_TAG, _construct_unsafe)
_InventoryLoader.add_constructor("!vault", _construct_vault)
_InventoryLoader.add_constructor("tag:yaml.org,2002:int", construct_bounded_int)


def _clearer_error(exc: yaml.YAMLError, text: str) -> yaml.YAMLError:
    """libyaml's words for a document it cannot compose are terser than PyYAML's: the
    pure-Python composer's error for the same text, as the marked loader reports it."""
    if _SafeLoader is yaml.SafeLoader:
        return exc
    loader = yaml.SafeLoader(text)
    try:
        loader.get_single_node()
    except yaml.YAMLError as clearer:
        return clearer
    except RecursionError:  # nested deeper than the pure-Python composer can follow
        return exc
    finally:
        loader.dispose()
    return exc


class YamlDocument:
    """One YAML file composed into nodes; values are built on demand from the nodes."""

    def __init__(self, path: str, text: str, warn: Warn):
        """`warn(message, location)` is told of duplicate keys (the last one wins)."""
        self.path = path
        self.text = text
        self._warn = warn
        self._flattened: set[int] = set()
        self._loader = _InventoryLoader(text)
        try:
            self.root: Node | None = self._loader.get_single_node()
            check_node_graph(self.root, path, text)  # alias bombs, loops, nesting
        except yaml.YAMLError as exc:
            self.close()
            if "nesting depth" in str(exc):  # libyaml's own limit (1,000 levels)
                raise nesting_error(path, getattr(exc, "problem_mark", None)) from None
            raise syntax_error(_clearer_error(exc, text), path, text) from None
        except ConfigError:
            self.close()
            raise

    def close(self) -> None:
        self._loader.dispose()

    def __enter__(self) -> YamlDocument:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def location(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.path, mark.line + 1, mark.column + 1)

    def value(self, node: Node) -> Any:
        """The plain Python value of a node (dicts, lists, str, int, float, bool, None)."""
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise syntax_error(exc, self.path, self.text) from None

    def items(self, node: MappingNode, what: str) -> list[tuple[ScalarNode, Node]]:
        """Key/value node pairs of a mapping with `<<` merges applied; keys must be plain scalars."""
        if id(node) not in self._flattened:
            self._warn_duplicate_keys(node, what)
            try:
                self._loader.flatten_mapping(node)
            except yaml.YAMLError as exc:
                raise syntax_error(exc, self.path, self.text) from None
            self._flattened.add(id(node))
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                raise ConfigError(
                    f"{what}: a key must be a plain name, not {describe(key_node)}",
                    self.location(key_node),
                    "write the name itself as the key, e.g. web1:",
                )
        return node.value

    def _warn_duplicate_keys(self, node: MappingNode, what: str) -> None:
        # Checked before `<<` merges are flattened in: a key that overrides a merged one is no duplicate.
        seen: dict[str, Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            first = seen.setdefault(key_node.value, key_node)
            if first is not key_node:
                self._warn(
                    f"duplicate key '{key_node.value}' in {what}; the last one wins "
                    f"(the first is on line {first.start_mark.line + 1})",
                    self.location(key_node),
                )

    def vars_mapping(self, node: Node, what: str) -> tuple[dict[str, Any], dict[str, Location]]:
        """Variables from a mapping node with the location of each name; null means none."""
        if is_null(node):
            return {}, {}
        if not isinstance(node, MappingNode):
            raise ConfigError(
                f"{what} must be a mapping of variable names to values, not {describe(node)}",
                self.location(node),
                "write it as `name: value` lines, one per variable",
            )
        values: dict[str, Any] = {}
        locations: dict[str, Location] = {}
        for key_node, value_node in self.items(node, what):
            values[key_node.value] = self.value(value_node)
            locations[key_node.value] = self.location(key_node)
        return values, locations


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == NULL_TAG)


def describe(node: Node, show_text: bool = True) -> str:
    """What a node is; its value only as a short excerpt, and not at all with show_text=False
    (a whole file that is not an inventory: maybe a key or a password file)."""
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    if looks_like_private_key(node.value):
        return "what looks like a private key (not shown)"
    if not show_text:
        return f"a value of {len(node.value)} character{'s' * (len(node.value) != 1)}"
    return f"the value {quote(node.value)}"
