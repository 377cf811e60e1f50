"""load_inventories(): files (YAML or INI, told apart by content), executable inventory
scripts, directories and `-i host1,host2` lists."""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from checkrunner.errors import ConfigError, HostEntryError, Location, did_you_mean
from checkrunner.inventory.build import VarsSource, build_inventory
from checkrunner.inventory.data import HOST_LIST, UNGROUPED, InventoryData
from checkrunner.inventory.hostnames import parse_host_entry
from checkrunner.inventory.ini_format import SECTION, parse_ini_inventory
from checkrunner.inventory.inventory import Inventory
from checkrunner.inventory.model import InventoryWarning
from checkrunner.inventory.script import is_inventory_script, script_listing
from checkrunner.inventory.yaml_format import parse_yaml_inventory
from checkrunner.yamlio.marked import VAULT_HINT, read_text
from checkrunner.yamlio.nodes import YamlDocument

YAML_EXTENSIONS = (".yml", ".yaml", ".json")
# Skipped in directory sources, as Ansible's default inventory_ignore_extensions (ansible-core >= 2.19).
IGNORED_EXTENSIONS = (
    ".pyc",
    ".pyo",
    ".swp",
    ".bak",
    "~",
    ".rpm",
    ".md",
    ".txt",
    ".rst",
    ".orig",
    ".cfg",
    ".retry",
)
VARS_DIRECTORIES = ("group_vars", "host_vars")
_YAML_KEY_LINE = re.compile(r"""^(?:"[^"]*"|'[^']*'|[^\s"'#\[\]{},=][^=]*?)\s*:(?:\s|$)""")
_YAML_STARTS = ("---", "%YAML", "{", "- ")
_HOST_LIST = HOST_LIST


def load_inventories(sources: Sequence[str] | None, playbook_dir: str | None = None) -> Inventory:
    """One Inventory from every source, with group_vars/ and host_vars/ beside them and the playbook.

    No sources: an empty inventory in which 'localhost' is the implicit localhost.
    """
    with _cyclic_gc_paused():
        data = InventoryData()
        bases: list[str] = []
        for source in sources or []:
            base = _load_source(source, data)
            if base is not None:
                bases.append(base)
        vars_sources = [
            VarsSource.at(base, data.warnings) for base in _vars_bases(bases, playbook_dir)
        ]
        return build_inventory(data, vars_sources, list(sources or []))


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Loading allocates hundreds of thousands of acyclic objects (YAML nodes, dicts); the cyclic
    collector would rescan them over and over and more than double the load time of a big inventory."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def detect_format(path: str, text: str) -> str:
    """'yaml' or 'ini', from the first meaningful line; the extension only settles the undecided."""
    first = _first_meaningful_line(text)
    if first is None:
        return "ini"
    if SECTION.match(first):
        return "ini"
    if first.startswith(_YAML_STARTS) or first == "-" or _YAML_KEY_LINE.match(first):
        return "yaml"
    return "yaml" if path.lower().endswith(YAML_EXTENSIONS) else "ini"


def _load_source(source: str, data: InventoryData) -> str | None:
    """Load one -i source; return the directory whose group_vars/ and host_vars/ belong to it."""
    if not source.strip():
        raise ConfigError(
            "an inventory source is empty",
            None,
            "pass a file, a directory or a list like 'web1,web2'",
        )
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        _load_directory(path, data)
        return os.path.abspath(path)
    if os.path.isfile(path):
        _load_file(path, data)
        return os.path.dirname(os.path.abspath(path))
    if "," in source:
        _load_host_list(source, data)
        return None
    raise _missing_source(path)


def _load_file(path: str, data: InventoryData) -> None:
    if is_inventory_script(path):
        listing = script_listing(path)
        # Errors point into the answer as `SCRIPT --list | python3 -m json.tool --indent 1`
        # numbers its lines: a script's JSON is often all on one line.
        source = f"{path} --list (json.tool --indent 1)"
        with YamlDocument(source, listing, InventoryWarning.collector(data.warnings)) as doc:
            parse_yaml_inventory(doc, data)
        return
    text = _read_inventory(path)
    if text.lstrip().startswith("$ANSIBLE_VAULT;"):
        raise ConfigError(
            "this inventory is encrypted with Ansible Vault", Location(path, 1), VAULT_HINT
        )
    if detect_format(path, text) == "yaml":
        with YamlDocument(path, text, InventoryWarning.collector(data.warnings)) as doc:
            parse_yaml_inventory(doc, data)
    else:
        parse_ini_inventory(path, text, data)


def _load_directory(directory: str, data: InventoryData) -> None:
    """Every inventory file in the directory and below, in sorted order, as Ansible reads a directory."""
    for name in sorted(os.listdir(directory)):
        if name.startswith(".") or name in VARS_DIRECTORIES or name.endswith(IGNORED_EXTENSIONS):
            continue
        full = os.path.join(directory, name)
        if os.path.isdir(full):
            _load_directory(full, data)
        elif os.path.isfile(full):
            _load_file(full, data)


def _load_host_list(source: str, data: InventoryData) -> None:
    """Ansible's `-i 'web1,web2:2222'`: ungrouped hosts; a trailing comma makes a one-host list."""
    location = Location(_HOST_LIST)
    for item in source.split(","):
        if not item.strip():
            continue
        try:
            entry = parse_host_entry(item)
        except HostEntryError as exc:
            raise ConfigError(f"in the host list {source!r}: {exc}", None) from None
        for name in entry.names:
            data.add_host(name, UNGROUPED, location, source, entry.port)


def _vars_bases(inventory_bases: list[str], playbook_dir: str | None) -> list[str]:
    """Directories to read group_vars/host_vars from, lowest precedence first; each once, at its last place."""
    ordered = [os.path.realpath(base) for base in inventory_bases]
    if playbook_dir is not None:
        ordered.append(os.path.realpath(os.path.expanduser(playbook_dir)))
    last_position = {base: index for index, base in enumerate(ordered)}
    return [base for index, base in enumerate(ordered) if last_position[base] == index]


def _read_inventory(path: str) -> str:
    return read_text(path, "inventory")  # undecodable bytes are reported at line:column


def _missing_source(path: str) -> ConfigError:
    parent = os.path.dirname(path) or "."
    siblings = os.listdir(parent) if os.path.isdir(parent) else []
    near = did_you_mean(os.path.basename(path), siblings)
    hint = (
        (f"{near} " if near else "")
        + "-i takes an inventory file, a directory, or hosts separated by commas ('web1,web2', or 'web1,' for one)"
    )
    return ConfigError("inventory source not found", Location(path), hint)


def _first_meaningful_line(text: str) -> str | None:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", ";")):
            return stripped
    return None
