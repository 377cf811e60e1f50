"""read_playbook: read, parse, validate; every problem in the file reported at once."""

from __future__ import annotations

import os
from typing import Any

from checkrunner.config.model import Playbook
from checkrunner.config.parse import AlertingSection, PlaybookParser
from checkrunner.config.problems import raise_problems
from checkrunner.config.schema import schema_problems
from checkrunner.yamlio.marked import read_yaml


def read_playbook(
    path: str | os.PathLike[str], alerting: AlertingSection, schema_check: bool = True
) -> Playbook:
    """The playbook at `path`, with the location of every play, check and value; `alerting`
    reads its receivers and route (`checkrunner.playbook.load_playbook` hands in alerting's).

    Raises ConfigError for one problem, MultipleConfigErrors (a ConfigError) for several,
    each at file:line:column with a hint. Templates are not rendered here: that needs the
    host's variables (see Templater).

    The parser finds every problem itself, with the clearest messages; `schema_check` then
    validates the document against the generated JSON Schema as a second opinion. Runs skip
    that (jsonschema costs ~40 ms, a third of a small fan-out's start); `checkrun validate`
    and CI lint jobs keep it.
    """
    file = os.fspath(path)
    document, problems = read_yaml(file, "playbook")
    parser = PlaybookParser(file, alerting)
    plays = parser.parse(document)
    problems += parser.problems
    if not problems and schema_check:
        problems += schema_problems(document, file)
    raise_problems(problems)
    return Playbook(file, plays, alerting=parser.alerting)


def load_yaml_file(path: str, what: str = "file") -> Any:
    """Load a YAML file with marks; any problem (duplicate keys included) raises ConfigError."""
    data, problems = read_yaml(path, what)
    raise_problems(problems)
    return data
