"""The wheel holds every package of the tree: `pip install .` lists packages explicitly (so
that modules/ ships as checkrunner.modules), and an editable install would hide a package
missing from that list until a clean clone's CI imported it."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import tomllib
from helpers import REPO


def _listed_packages() -> tuple[set[str], dict[str, str]]:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(setuptools["packages"]), setuptools["package-dir"]


def _package_of(directory: Path, package_dir: dict[str, str]) -> str:
    relative = directory.relative_to(REPO)
    for package, folder in package_dir.items():
        if relative == Path(folder) or Path(folder) in relative.parents:
            rest = relative.relative_to(folder).parts
            return ".".join((package, *rest))
    return ".".join(relative.parts)


def test_every_folder_of_python_code_is_a_listed_package():
    listed, package_dir = _listed_packages()
    folders = {
        path.parent
        for root in ("checkrunner", "modules")
        for path in (REPO / root).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    found = {_package_of(folder, package_dir) for folder in folders}
    assert "checkrunner.modules._utils" in found  # the mapping of modules/ is understood
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - found == set(), "these listed packages have no code"


def test_every_data_file_of_a_package_is_listed_as_package_data():
    """A file the code reads at run time (the HTML report's CSS and script) ships in the wheel
    only if [tool.setuptools.package-data] names it."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, package_dir = _listed_packages()
    data = setuptools["package-data"]
    for root in ("checkrunner", "modules"):
        for path in (REPO / root).rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            folder = path.parent
            while _package_of(folder, package_dir) not in listed:
                folder = folder.parent
            package = _package_of(folder, package_dir)
            relative = path.relative_to(folder).as_posix()
            assert any(fnmatch(relative, pattern) for pattern in data.get(package, [])), (
                f"add {relative} to [tool.setuptools.package-data] {package}"
            )
