"""YAML loading that remembers where every key, value and sequence item was written.

Mappings load as `MarkedMap` and sequences as `MarkedSeq`: plain dict and list subclasses
(they compare, serialise and copy like dict and list) that also carry the `Location` of the
container itself and of each key, value and item, so any later error can name
file:line:column of the node it is about.

Differences from PyYAML's SafeLoader, all to keep data JSON-like and surprises out:
- a key written twice in one mapping is an error naming both lines (YAML keeps the last);
- `10:20` is the string "10:20" (a Nagios range), not the YAML 1.1 base-60 integer 620;
- dates such as 2024-01-31 stay strings instead of becoming datetime objects;
- a document nested more than MAX_NESTING levels deep, an alias inside the value it names,
  or aliases that expand to more than MAX_ALIAS_EXPANSION values (a "billion laughs" bomb)
  is an error at the node: playbooks are reviewed in pull requests and validated in CI, so a
  small file must not be able to exhaust memory, time or the interpreter's stack.
- Ansible's `!unsafe` tag is understood: its strings are never templated (checkrunner.unsafe).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Hashable
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import Reader
from yaml.resolver import Resolver

from checkrunner.errors import ConfigError, Location
from checkrunner.unsafe import UNSAFE_TAG, mark_unsafe

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"

MAX_NESTING = 100  # levels of mappings and lists; real playbooks use fewer than 15
MAX_ALIAS_EXPANSION = 100_000  # values that aliases may add to a document, counted expanded
MAX_FILE_BYTES = 64 * 1024**2  # a playbook, inventory or vars file

# PyYAML's YAML 1.1 int and float patterns without the base-60 (`1:30`) forms.
_INT_PATTERN = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT_PATTERN = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class MarkedMap(dict):
    """A mapping from YAML with the location of itself, of each key and of each value."""

    def __init__(self, *args: Any, location: Location | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.location = location
        self.key_locations: dict[Any, Location] = {}
        self.value_locations: dict[Any, Location] = {}

    def copy_marks_from(self, other: MarkedMap) -> None:
        """Take over the marks of `other` for the keys both have."""
        for key in self:
            if key in other.key_locations:
                self.key_locations[key] = other.key_locations[key]
            if key in other.value_locations:
                self.value_locations[key] = other.value_locations[key]


class MarkedSeq(list):
    """A sequence from YAML with the location of itself and of each item."""

    def __init__(self, *args: Any, location: Location | None = None):
        super().__init__(*args)
        self.location = location
        self.item_locations: list[Location] = []


def location_of(value: Any, fallback: Location) -> Location:
    """Where a mapping or sequence from YAML starts, or `fallback` for anything else."""
    where = getattr(value, "location", None) if isinstance(value, (MarkedMap, MarkedSeq)) else None
    return where or fallback


def key_location(mapping: Any, key: Any, fallback: Location) -> Location:
    """Where `key` of a mapping was written."""
    if isinstance(mapping, MarkedMap) and key in mapping.key_locations:
        return mapping.key_locations[key]
    return location_of(mapping, fallback)


def value_location(container: Any, key: Any, fallback: Location) -> Location:
    """Where the value of `key` (a mapping key or a sequence index) was written."""
    if isinstance(container, MarkedMap) and key in container.value_locations:
        return container.value_locations[key]
    in_sequence = isinstance(container, MarkedSeq) and isinstance(key, int)
    if in_sequence and 0 <= key < len(container.item_locations):
        return container.item_locations[key]
    return location_of(container, fallback)


def merge_marked(*layers: Any) -> MarkedMap:
    """Later mappings win, key by key; each key keeps the location of the layer it came from."""
    merged = MarkedMap()
    for layer in layers:
        if not layer:
            continue
        if merged.location is None:
            merged.location = getattr(layer, "location", None)
        for key, value in layer.items():
            merged[key] = value
            merged.key_locations.pop(key, None)
            merged.value_locations.pop(key, None)
            if isinstance(layer, MarkedMap):
                if key in layer.key_locations:
                    merged.key_locations[key] = layer.key_locations[key]
                if key in layer.value_locations:
                    merged.value_locations[key] = layer.value_locations[key]
    return merged


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _check_depth(root: Node, file: str) -> None:
    """Refuse a tree (no node shared) with a node more than MAX_NESTING levels deep: the
    first such node in document order, as check_node_graph's full walk finds it."""
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ScalarNode):
            continue
        children = _children(node)
        if children and depth >= MAX_NESTING:
            raise nesting_error(file, children[0].start_mark)
        stack.extend((child, depth + 1) for child in reversed(children))


def _mark_location(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1) if mark is not None else Location(file)


def nesting_error(file: str, mark: Any, what: str = "YAML") -> ConfigError:
    return ConfigError(
        f"{what} nested more than {MAX_NESTING} levels deep",
        _mark_location(file, mark),
        "flatten this value: playbooks, inventories and variables never need such depth",
    )


def check_data_depth(value: Any, file: str, what: str = "JSON") -> None:
    """Refuse data (from JSON or Python literals) nested more than MAX_NESTING levels."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_NESTING:
            raise nesting_error(file, None, what)
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend((child, depth + 1) for child in item)


def check_node_graph(root: Node | None, file: str, text: str | None = None) -> None:
    """Refuse a composed document that is nested too deeply, holds an alias inside the value
    it names, or whose aliases expand to more than MAX_ALIAS_EXPANSION values.

    Aliases share one node, so the document is cheap to compose but every later walk over
    the constructed data (templates, schema, rendering) pays for the expanded size: that is
    what is counted, without expanding anything (each node's size is computed once).
    A document whose `text` has no `*` has no alias: only its depth is checked, in one
    cheap pass (the full walk was half the load time of a 10,000-host JSON inventory).
    """
    if root is None:
        return
    if text is not None and "*" not in text:
        _check_depth(root, file)
        return
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            heights[key] = 1 + max((heights[id(child)] for child in children), default=0)
            continue
        if key in on_path:
            raise ConfigError(
                "a YAML alias refers to the value that contains it (a loop)",
                _mark_location(file, node.start_mark),
                "an alias (*name) must refer to a value written outside it",
            )
        if key in sizes:
            if depth + heights[key] - 1 > MAX_NESTING:
                raise nesting_error(file, node.start_mark)
            continue
        if depth > MAX_NESTING:
            raise nesting_error(file, node.start_mark)
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in reversed(_children(node)))
    added = sizes[id(root)] - len(sizes)
    if added > MAX_ALIAS_EXPANSION:
        node = root
        while True:
            larger = [c for c in _children(node) if sizes[id(c)] > MAX_ALIAS_EXPANSION]
            if not larger:
                break
            node = larger[0]
        raise ConfigError(
            f"YAML aliases expand this value to {sizes[id(node)]:,} values "
            f"(at most {MAX_ALIAS_EXPANSION:,} may come from aliases)",
            _mark_location(file, node.start_mark),
            "write the values out, or reuse fewer of them: an alias of an alias multiplies",
        )


class _MarkedLoader(yaml.SafeLoader):
    """SafeLoader building MarkedMap/MarkedSeq and collecting duplicate keys as problems."""

    def __init__(self, text: str, file: str):
        super().__init__(text)
        self.file = file
        self.problems: list[ConfigError] = []
        self._depth = 0

    def node_location(self, node: Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        # The pure-Python composer recurses once per level: stop before the interpreter's
        # stack does (libyaml stops at 1,000 levels itself, and check_node_graph at fewer).
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise nesting_error(self.file, self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Node) -> Any:
        check_node_graph(node, self.file)
        return super().construct_document(node)

    def construct_mapping(self, node: Node, deep: bool = False) -> MarkedMap:
        if not isinstance(node, MappingNode):
            raise ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark
            )
        self._report_duplicate_keys(node)
        self.flatten_mapping(node)
        mapping = MarkedMap(location=self.node_location(node))
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found unhashable key",
                    key_node.start_mark,
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
            mapping.key_locations[key] = self.node_location(key_node)
            mapping.value_locations[key] = self.node_location(value_node)
        return mapping

    def construct_marked_map(self, node: MappingNode):
        data = MarkedMap(location=self.node_location(node))
        yield data
        built = self.construct_mapping(node)
        data.update(built)
        data.key_locations.update(built.key_locations)
        data.value_locations.update(built.value_locations)

    def construct_marked_seq(self, node: SequenceNode):
        data = MarkedSeq(location=self.node_location(node))
        yield data
        data.extend(self.construct_sequence(node))
        data.item_locations = [self.node_location(item) for item in node.value]

    def construct_unsafe(self, node: Node) -> Any:
        """Ansible's `!unsafe`: the value as written, every string in it never templated."""
        if isinstance(node, MappingNode):
            value: Any = self.construct_mapping(node, deep=True)
        elif isinstance(node, SequenceNode):
            value = MarkedSeq(
                self.construct_sequence(node, deep=True), location=self.node_location(node)
            )
            value.item_locations = [self.node_location(item) for item in node.value]
        else:
            value = self.construct_scalar(node)
        return mark_unsafe(value)

    def _report_duplicate_keys(self, node: MappingNode) -> None:
        # Only keys written in this mapping: a key that overrides one pulled in by a `<<`
        # merge is how merges are meant to be used, not a mistake.
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                continue
            key = self.construct_object(key_node)
            if not isinstance(key, Hashable):
                continue
            first = seen.setdefault(key, key_node)
            if first is key_node:
                continue
            first_at = self.node_location(first)
            self.problems.append(
                ConfigError(
                    f"duplicate key '{key}': first at line {first_at.line}, "
                    f"again at line {key_node.start_mark.line + 1}",
                    self.node_location(key_node),
                    "YAML would silently keep only the last one; remove or rename one of them",
                )
            )


def construct_bounded_int(loader: SafeConstructor, node: ScalarNode) -> int:
    """YAML's int, with Python's limit on the digits of a number (4,300) as a YAML error."""
    try:
        return SafeConstructor.construct_yaml_int(loader, node)
    except ValueError as exc:
        raise ConstructorError(
            None, None, f"this number is too long: {exc}".split(";")[0], node.start_mark
        ) from None


def _resolvers_without_base60_and_dates() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    replaced = {_INT_TAG, _FLOAT_TAG, _TIMESTAMP_TAG}
    resolvers = {
        first: [(tag, pattern) for tag, pattern in entries if tag not in replaced]
        for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for tag, pattern, firsts in (
        (_INT_TAG, _INT_PATTERN, "-+0123456789"),
        (_FLOAT_TAG, _FLOAT_PATTERN, "-+0123456789."),
    ):
        for first in firsts:
            resolvers.setdefault(first, []).append((tag, pattern))
    return resolvers


_MarkedLoader.yaml_implicit_resolvers = _resolvers_without_base60_and_dates()
_MarkedLoader.add_constructor(_INT_TAG, construct_bounded_int)
_MarkedLoader.add_constructor("tag:yaml.org,2002:map", _MarkedLoader.construct_marked_map)
_MarkedLoader.add_constructor("tag:yaml.org,2002:seq", _MarkedLoader.construct_marked_seq)
_MarkedLoader.add_constructor(UNSAFE_TAG, _MarkedLoader.construct_unsafe)

_CONTROL_CHARACTERS = Reader.NON_PRINTABLE

try:
    from yaml.cyaml import CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    CParser = None

if CParser is not None:

    class _FastMarkedLoader(CParser, _MarkedLoader):  # type: ignore[misc]
        """libyaml's parser (about five times faster) under the same Python construction.

        Its error messages are terser, so a document it rejects is parsed again by the
        pure-Python loader for the message users see.
        """

        def __init__(self, text: str, file: str):
            CParser.__init__(self, text)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self.file = file
            self.problems = []
            self._depth = 0

    _LOADERS: tuple[type[_MarkedLoader], ...] = (_FastMarkedLoader, _MarkedLoader)
else:  # pragma: no cover - PyYAML built without libyaml
    _LOADERS = (_MarkedLoader,)


VAULT_HINT = (
    "checkrunner cannot decrypt Ansible Vault; take secrets from the environment or a file "
    "readable only by you instead"
)


class VaultValue(ConstructorError):
    """An `!vault` value (inventories): reported with its own hint instead of 'unknown tag'."""


def _syntax_hint(problem: str) -> str:
    if "'\\t'" in problem or "\t" in problem:
        return "YAML indents with spaces only: replace the tab characters"
    if "'@'" in problem or "'`'" in problem:
        return 'a value starting with @ or ` must be quoted, e.g. crit: "@10:20"'
    if "mapping values are not allowed" in problem:
        return "a value that contains ': ' must be quoted, or this key is indented wrongly"
    if "could not find expected ':'" in problem:
        return (
            "check the indentation here and on the line before; multi-line text needs quotes or |"
        )
    if "number is too long" in problem:
        return "write a shorter number, or quote it if it is meant as text"
    if "could not determine a constructor" in problem:
        return "only standard YAML tags and Ansible's !unsafe are understood"
    if "found undefined alias" in problem:
        return "define the anchor (&name) before using the alias (*name)"
    if "flow" in problem:
        return "close the { } or [ ] that starts before this point, or quote a value inside it"
    if "expected a single document" in problem:
        return "a playbook is one YAML document: remove the extra '---'"
    return "check the indentation and the quoting around this point"


def syntax_error(exc: yaml.YAMLError, file: str, text: str) -> ConfigError:
    """The one ConfigError for YAML that PyYAML or libyaml refuses: where, what, and a hint."""
    if isinstance(exc, VaultValue):
        mark = exc.problem_mark
        return ConfigError(str(exc.problem), _mark_location(file, mark), VAULT_HINT)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "unreadable YAML"
        message = f"invalid YAML: {problem}"
        if exc.context and exc.problem and problem.startswith("but "):
            message = f"invalid YAML: {exc.context}, {problem}"
        elif exc.context and exc.problem and exc.context_mark is not None:
            message += f" ({exc.context} at line {exc.context_mark.line + 1})"
        where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        return ConfigError(message, where, _syntax_hint(f"{exc.context} {problem}"))
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        character = exc.character
        shown = f"#x{character:04x}" if isinstance(character, int) else repr(character)
        return ConfigError(
            f"invalid YAML: {exc.reason} (character {shown})",
            Location(file, line, column),
            "remove the control character; YAML files must be printable text",
        )
    return ConfigError(
        f"invalid YAML: {exc}", Location(file), "check the indentation and the quoting"
    )


def parse_yaml(text: str, file: str) -> tuple[Any, list[ConfigError]]:
    """The document in `text` and the problems found in it that still let it load (duplicates).

    Raises ConfigError when the text is not YAML at all.
    """
    # The pure-Python reader rejects control characters that libyaml lets through.
    fast = len(_LOADERS) > 1 and not _CONTROL_CHARACTERS.search(text)
    for loader_class in _LOADERS if fast else _LOADERS[-1:]:
        loader = None
        try:
            loader = loader_class(text, file)
            return loader.get_single_data(), loader.problems
        except yaml.YAMLError as exc:
            if loader_class is _MarkedLoader:
                raise syntax_error(exc, file, text) from None
        finally:
            if loader is not None:
                loader.dispose()
    raise AssertionError("unreachable: the pure-Python loader always returns or raises")


# YAML allows UTF-16 and UTF-32 with a byte-order mark; editors on Windows write them.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def read_text(path: str, what: str) -> str:
    """The text of a file (UTF-8, or UTF-16/32 with a byte-order mark), or a ConfigError
    saying why it cannot be read."""
    try:
        with open(path, "rb") as handle:  # bounded: a symlink to /dev/zero must not hang validate
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}", hint="check the path") from None
    except IsADirectoryError:
        raise ConfigError(
            f"{what} is a directory, not a file: {path}", hint="name the YAML file itself"
        ) from None
    except PermissionError:
        raise ConfigError(f"{what} is not readable: {path}", hint="check its permissions") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} {path}: {exc.strerror or exc}", hint="check the path"
        ) from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{what} is larger than {MAX_FILE_BYTES // 1024**2} MiB: {path}",
            hint="is this the right file? split big inventories into a directory of files",
        )
    encoding = next((name for bom, name in _BYTE_ORDER_MARKS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _encoding_error(data, exc, path, what, encoding) from None


def _encoding_error(
    data: bytes, exc: UnicodeDecodeError, path: str, what: str, encoding: str
) -> ConfigError:
    """Where the first undecodable byte is, as line:column (columns count characters)."""
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    line = data.count(b"\n", 0, exc.start) + 1
    column = len(data[line_start : exc.start].decode(encoding, errors="replace")) + 1
    name = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
    return ConfigError(
        f"{what} is not {name} text: byte 0x{data[exc.start]:02x} cannot be read",
        Location(path, line, column),
        "save the file as UTF-8",
    )


def read_yaml(path: str, what: str = "file") -> tuple[Any, list[ConfigError]]:
    """Load a YAML file: the document and its non-fatal problems (see `parse_yaml`)."""
    return parse_yaml(read_text(path, what), path)
