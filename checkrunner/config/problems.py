"""Several user errors reported at once: every problem in a file, sorted by position."""

from __future__ import annotations

from collections.abc import Iterable

from checkrunner.errors import ConfigError, MultipleConfigErrors, flatten_problems


def raise_problems(errors: Iterable[ConfigError]) -> None:
    """Raise nothing for no problems, the error itself for one, MultipleConfigErrors for more."""
    flat = flatten_problems(errors)
    if len(flat) == 1:
        raise flat[0]
    if flat:
        raise MultipleConfigErrors(flat)
