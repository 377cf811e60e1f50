"""Several user errors reported at once: every problem in a file, sorted by position."""

from __future__ import annotations

from collections.abc import Iterable

from checkrunner.errors import ConfigError


class MultipleConfigErrors(ConfigError):
    """Two or more ConfigErrors found in one pass; str() lists each with its location and hint."""

    def __init__(self, errors: Iterable[ConfigError]):
        ordered = sort_problems(errors)
        if not ordered:
            raise ValueError("MultipleConfigErrors needs at least one error")
        super().__init__(f"{len(ordered)} problems", ordered[0].location)
        self.errors = ordered

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


def flatten_problems(errors: Iterable[ConfigError]) -> list[ConfigError]:
    flat: list[ConfigError] = []
    for error in errors:
        if isinstance(error, MultipleConfigErrors):
            flat.extend(error.errors)
        else:
            flat.append(error)
    return flat


def sort_problems(errors: Iterable[ConfigError]) -> list[ConfigError]:
    """Files in the order they first appear, then by line and column."""
    flat = flatten_problems(errors)
    file_rank: dict[str, int] = {}
    for error in flat:
        if error.location is not None:
            file_rank.setdefault(error.location.file, len(file_rank))

    def position(error: ConfigError) -> tuple[int, int, int]:
        where = error.location
        if where is None:
            return (-1, 0, 0)
        return (file_rank[where.file], where.line or 0, where.column or 0)

    return sorted(flat, key=position)


def raise_problems(errors: Iterable[ConfigError]) -> None:
    """Raise nothing for no problems, the error itself for one, MultipleConfigErrors for more."""
    flat = flatten_problems(errors)
    if len(flat) == 1:
        raise flat[0]
    if flat:
        raise MultipleConfigErrors(flat)
