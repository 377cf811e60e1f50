"""libyaml's parser is used when PyYAML has it, and gives the same data and marks as Python's."""

from __future__ import annotations

import yaml
from helpers import REPO

from checkrunner.yamlio import marked as yaml_loader


def test_libyaml_parser_is_used_when_available():
    if getattr(yaml, "__with_libyaml__", False):
        assert yaml_loader._LOADERS[0].__name__ == "_FastMarkedLoader"


def _marks(value, path="$"):
    if isinstance(value, yaml_loader.MarkedMap):
        yield path, value.location
        for key, item in value.items():
            yield f"{path}.{key}", value.key_locations.get(key)
            yield from _marks(item, f"{path}.{key}")
    elif isinstance(value, yaml_loader.MarkedSeq):
        yield path, value.location
        for index, item in enumerate(value):
            yield f"{path}[{index}]", value.item_locations[index]
            yield from _marks(item, f"{path}[{index}]")


def test_fast_and_python_loaders_agree_on_data_and_marks():
    files = sorted((REPO / "tests" / "fixtures" / "playbooks" / "good").glob("*.yml"))
    files += sorted((REPO / "playbooks").glob("*.yml"))
    assert files
    for path in files:
        text = path.read_text()
        results = []
        for loader_class in yaml_loader._LOADERS:
            loader = loader_class(text, str(path))
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
            results.append((data, list(_marks(data))))
        assert all(r == results[0] for r in results), path
