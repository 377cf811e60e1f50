"""Import paramiko without the parts of its start-up that checkrunner never uses.

Importing paramiko costs about 90 ms of CPU, paid by every run that reaches an SSH host. Two
pieces of it do nothing for us and are skipped when that is safe:

- `invoke` (~30 ms: asyncio, unittest.mock), which paramiko needs only to evaluate `Match
  exec` in an ssh config. When the config file has none and includes no other file,
  paramiko is told invoke is absent.
- `importlib.metadata` (~12 ms: email, zipfile, csv), which paramiko's `__init__` uses for
  one call, `metadata.version("paramiko")`. While paramiko is imported, that call is
  answered from paramiko's `.dist-info/METADATA`, found the way importlib.metadata finds
  it (the first sys.path directory that has a paramiko distribution). Anything unusual (no
  such directory, an egg, a zip on sys.path, two candidates) leaves importlib.metadata to
  answer, and any other use of the module goes to the real one.
"""

from __future__ import annotations

import os
import re
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

METADATA_MODULE = "importlib.metadata"


def import_paramiko(ssh_config: str | None = None) -> types.ModuleType:
    """paramiko, imported now (it is heavy: only runs that reach SSH hosts call this)."""
    if "paramiko" not in sys.modules:
        skip_invoke_unless_needed(ssh_config)
        with versions_from_dist_info("paramiko"):
            import paramiko  # noqa: F401
    return sys.modules["paramiko"]


def skip_invoke_unless_needed(ssh_config: str | None) -> None:
    """Keep paramiko from importing `invoke` unless the ssh config may use `Match exec`."""
    if "invoke" in sys.modules or "paramiko" in sys.modules:
        return
    if ssh_config is not None and ssh_config.lower() == "none":
        sys.modules["invoke"] = None  # type: ignore[assignment]
        return
    candidate = os.path.expanduser(ssh_config or "~/.ssh/config")
    try:
        with open(candidate, encoding="utf-8", errors="replace") as config:
            text = config.read().lower()
    except OSError:
        text = ""
    if "exec" not in text and "include" not in text:
        sys.modules["invoke"] = None  # type: ignore[assignment]


@contextmanager
def versions_from_dist_info(*packages: str) -> Iterator[None]:
    """Within the block, `importlib.metadata.version(name)` of these packages is read from
    their dist-info directly, without importing importlib.metadata (when it is not yet)."""
    if METADATA_MODULE in sys.modules:
        yield
        return
    known = {}
    for package in packages:
        version = dist_info_version(package)
        if version is not None:
            known[_normalize(package)] = version
    if not known:
        yield
        return
    shim = _MetadataShim(known)
    sys.modules[METADATA_MODULE] = shim  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get(METADATA_MODULE) is shim:
            del sys.modules[METADATA_MODULE]


class _MetadataShim(types.ModuleType):
    """Stands in for importlib.metadata: answers version() for known packages and hands
    everything else to the real module (imported then)."""

    def __init__(self, versions: dict[str, str]):
        super().__init__(METADATA_MODULE)
        self._versions = versions

    def version(self, distribution_name: str) -> str:
        known = self._versions.get(_normalize(distribution_name))
        return known if known is not None else self._real().version(distribution_name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._real(), name)

    def _real(self) -> types.ModuleType:
        if sys.modules.get(METADATA_MODULE) is self:
            del sys.modules[METADATA_MODULE]
        import importlib

        return importlib.import_module(METADATA_MODULE)


def dist_info_version(package: str) -> str | None:
    """The Version of the first distribution named `package` on sys.path, read from its
    .dist-info/METADATA as importlib.metadata would; None when that is not plainly so."""
    wanted = _normalize(package)
    for entry in sys.path:
        directory = entry or "."
        if not os.path.isdir(directory):
            if os.path.exists(directory):
                return None  # a zip on sys.path: leave it to importlib.metadata
            continue
        try:
            names = os.listdir(directory)
        except OSError:
            return None
        found = [
            name
            for name in names
            if name.lower().endswith((".dist-info", ".egg-info", ".egg"))
            and _normalize(name.rsplit(".", 1)[0].partition("-")[0]) == wanted
        ]
        if not found:
            continue
        if len(found) != 1 or not found[0].lower().endswith(".dist-info"):
            return None
        return _metadata_version(os.path.join(directory, found[0], "METADATA"), wanted)
    return None


def _metadata_version(path: str, wanted: str) -> str | None:
    """The Version header of a METADATA file whose Name is `wanted`, else None."""
    name = version = None
    try:
        with open(path, encoding="utf-8") as metadata:
            for line in metadata:
                if not line.strip():
                    break  # the headers end at the first blank line
                key, _, value = line.partition(":")
                if key == "Name":
                    name = value.strip()
                elif key == "Version":
                    version = value.strip()
    except (OSError, UnicodeDecodeError):
        return None
    if name is None or _normalize(name) != wanted or not version:
        return None
    return version


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
