"""group_vars/ and host_vars/: files (web.yml, web.yaml, web.json, web) or directories of files."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from checkrunner.errors import ConfigError, Location
from checkrunner.inventory.model import InventoryWarning
from checkrunner.yamlio.marked import VAULT_HINT, check_data_depth, nesting_error, read_text
from checkrunner.yamlio.nodes import YamlDocument

VARS_EXTENSIONS = (".yml", ".yaml", ".json")
_LOOKUP_SUFFIXES = (
    "",
    *VARS_EXTENSIONS,
)  # Ansible's order: the bare name first, so a directory wins
_VAULT_HEADER = "$ANSIBLE_VAULT;"


@dataclass
class LoadedVars:
    values: dict[str, Any] = field(default_factory=dict)
    locations: dict[str, Location] = field(default_factory=dict)


class VarsDirectory:
    """One group_vars/ or host_vars/ directory: listed once, each entity's files read on first use."""

    def __init__(self, path: str, warnings: list[InventoryWarning]):
        self.path = path
        self._warnings = warnings
        self._entries = _list_entries(path)
        self._loaded: dict[str, LoadedVars | None] = {}

    def vars_for(self, name: str) -> LoadedVars | None:
        if name not in self._loaded:
            files = self._files_for(name)
            self._loaded[name] = self._load(files) if files else None
        return self._loaded[name]

    def entity_names(self) -> list[str]:
        """The group or host names this directory has variables for."""
        names = set()
        for entry, is_dir in self._entries.items():
            stem, ext = os.path.splitext(entry)
            names.add(stem if not is_dir and ext in VARS_EXTENSIONS else entry)
        return sorted(names)

    def _files_for(self, name: str) -> list[str]:
        """As Ansible's find_vars_files: only the first of NAME (file or directory), NAME.yml,
        NAME.yaml, NAME.json that exists; the others are not read."""
        for suffix in _LOOKUP_SUFFIXES:
            entry = name + suffix
            if entry in self._entries:
                full = os.path.join(self.path, entry)
                return _files_in(full) if self._entries[entry] else [full]
        return []

    def _load(self, files: list[str]) -> LoadedVars:
        merged = LoadedVars()
        for path in files:
            loaded = load_vars_file(path, self._warnings)
            merged.values.update(loaded.values)
            merged.locations.update(loaded.locations)
        return merged


def load_vars_file(path: str, warnings: list[InventoryWarning]) -> LoadedVars:
    """Variables from one YAML or JSON file that must hold a mapping (an empty file holds none)."""
    text = _read_text(path)
    if text.lstrip().startswith(_VAULT_HEADER):
        raise ConfigError(
            "this file is encrypted with Ansible Vault", Location(path, 1), VAULT_HINT
        )
    if path.endswith(".json"):
        return _load_json_vars(path, text)
    with YamlDocument(path, text, InventoryWarning.collector(warnings)) as doc:
        if doc.root is None:
            return LoadedVars()
        values, locations = doc.vars_mapping(doc.root, "a vars file")
    return LoadedVars(values, locations)


def _load_json_vars(path: str, text: str) -> LoadedVars:
    if not text.strip():
        return LoadedVars()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"invalid JSON: {exc.msg}",
            Location(path, exc.lineno, exc.colno),
            "check the brackets, commas and quotes around this point",
        ) from None
    except RecursionError:
        raise nesting_error(path, None, "JSON") from None
    except ValueError as exc:  # a number of more than 4,300 digits
        raise ConfigError(
            f"invalid JSON: {str(exc).split(';')[0]}", Location(path), "write a shorter number"
        ) from None
    check_data_depth(values, path)
    if not isinstance(values, dict):
        raise ConfigError(
            "a vars file must be a mapping of variable names to values",
            Location(path, 1),
            'write {"name": value, ...}',
        )
    location = Location(path)
    return LoadedVars(values, dict.fromkeys(values, location))


def _read_text(path: str) -> str:
    return read_text(path, "vars file")  # undecodable bytes are reported at line:column


def _list_entries(path: str) -> dict[str, bool]:
    """Entry name -> is a directory, skipping hidden files and editor backups; {} when absent."""
    try:
        with os.scandir(path) as scan:
            return {
                entry.name: entry.is_dir()
                for entry in scan
                if not entry.name.startswith(".") and not entry.name.endswith("~")
            }
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot list vars directory: {exc.strerror}", Location(path)) from None


def _files_in(directory: str) -> list[str]:
    """The vars files of a group_vars/NAME/ directory, recursively, in sorted order."""
    files: list[str] = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(".") or name.endswith("~"):
            continue
        full = os.path.join(directory, name)
        ext = os.path.splitext(name)[1]
        if os.path.isdir(full):
            if not ext:
                files.extend(_files_in(full))
        elif not ext or ext in VARS_EXTENSIONS:
            files.append(full)
    return files
