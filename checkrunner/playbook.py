"""load_playbook: a playbook as a whole, its plays (config) and its alerting (alerting).

config sits below alerting (alerting reads its YAML and options with config's helpers), so
config's parser cannot import alerting; this module, above both, hands alerting's parser in.
alerting is imported only when a playbook has alerting keys to read, so that `checkrun
validate` of a plain playbook does not pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from checkrunner.config.loader import read_playbook
from checkrunner.config.model import Playbook
from checkrunner.errors import ConfigError, Location


class Alerting:
    """config.parse.AlertingSection, reading with checkrunner.alerting.config."""

    @property
    def keys(self) -> tuple[str, ...]:
        from checkrunner.alerting.config import ALERTING_KEYS

        return ALERTING_KEYS

    def parse_inline(
        self, file: str, document: Mapping[Any, Any], root: Location
    ) -> tuple[Any, list[ConfigError]]:
        from checkrunner.alerting.config import parse_inline_alerting

        return parse_inline_alerting(file, document, root)

    def parse_file(self, path: str, referenced_at: Location) -> tuple[Any, list[ConfigError]]:
        from checkrunner.alerting.config import parse_alerting_file

        return parse_alerting_file(path, referenced_at)


ALERTING = Alerting()


def load_playbook(path: str | os.PathLike[str], schema_check: bool = True) -> Playbook:
    """The playbook at `path` with its alerting (`config.loader.read_playbook`): raises
    ConfigError (MultipleConfigErrors for several problems, each at file:line:column)."""
    return read_playbook(path, ALERTING, schema_check=schema_check)
