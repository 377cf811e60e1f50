"""Report formats, one module each, behind a registry: `--report FORMAT[:PATH]`.

A spec without a path (or with the path "-") writes to stdout; only one reporter may.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

from checkrunner.errors import ConfigError, did_you_mean
from checkrunner.report.base import Reporter, atomic_write, color_wanted, is_special_file

# The registry (goss' Outputers()): each format and the class that writes it. Declared
# without importing the reporters (the terminal one needs rich, which is slow to import),
# so the command line builds its --report help from it at every start, for free.
FORMATS: dict[str, str] = {
    "terminal": "checkrunner.report.terminal:TerminalReporter",
    "json": "checkrunner.report.json_report:JsonReporter",
    "junit": "checkrunner.report.junit:JunitReporter",
    "markdown": "checkrunner.report.markdown:MarkdownReporter",
    "html": "checkrunner.report.html:HtmlReporter",
    "nagios": "checkrunner.report.nagios:NagiosReporter",
    "prometheus": "checkrunner.report.prometheus:PrometheusReporter",
}
DEFAULT_FORMAT = "terminal"
_ALSO_EXPORTED = {  # imported on first use, like the reporters
    "nagios_exit_code": "checkrunner.report.nagios:nagios_exit_code",
    "nagios_state": "checkrunner.report.nagios:nagios_state",
}

__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "HtmlReporter",
    "REPORTERS",
    "JsonReporter",
    "JunitReporter",
    "MarkdownReporter",
    "NagiosReporter",
    "PrometheusReporter",
    "Reporter",
    "TerminalReporter",
    "atomic_write",
    "color_wanted",
    "create_reporter",
    "create_reporters",
    "format_help",
    "nagios_exit_code",
    "nagios_state",
    "parse_spec",
    "reporter_class",
]


def format_help() -> str:
    """The --report help: every registered format, the default marked."""
    names = [f"{name} (default)" if name == DEFAULT_FORMAT else name for name in FORMATS]
    return f"{', '.join(names)}; PATH or stdout; repeatable"


def reporter_class(name: str) -> type[Reporter]:
    """The reporter class registered for format `name` (KeyError if none is)."""
    return _load(FORMATS[name])


def _load(where: str) -> Any:
    module, _, attribute = where.partition(":")
    return getattr(importlib.import_module(module), attribute)


def __getattr__(name: str) -> Any:
    if name == "REPORTERS":
        return {format_name: reporter_class(format_name) for format_name in FORMATS}
    for where in (*FORMATS.values(), *_ALSO_EXPORTED.values()):
        if where.endswith(f":{name}"):
            return _load(where)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'junit:out/report.xml' -> ('junit', 'out/report.xml'); 'json' and 'json:-' -> ('json', None)."""
    name, _, path = spec.strip().partition(":")
    name = name.strip().lower()
    path = path.strip()
    return name, (None if path in ("", "-") else path)


def create_reporter(spec: str, verbose: int = 0, *, color: bool | None = None) -> Reporter:
    """The reporter for one `FORMAT[:PATH]` spec; ConfigError for an unknown format or a
    path that cannot be written, so that a bad --report stops the run before it starts."""
    name, path = parse_spec(spec)
    if name not in FORMATS:
        raise ConfigError(
            f"--report {spec!r}: unknown report format {name!r}", hint=_format_hint(name)
        )
    if path is not None:
        _check_writable(spec, path)
    return reporter_class(name)(path, verbose=verbose, color=color)


def create_reporters(
    specs: Sequence[str], verbose: int = 0, *, color: bool | None = None
) -> list[Reporter]:
    """One reporter per spec (the terminal report on stdout when there is none); at most
    one may write to stdout and no two to the same file."""
    reporters = [create_reporter(spec, verbose, color=color) for spec in specs or [DEFAULT_FORMAT]]
    _reject_shared_stdout(reporters)
    _reject_shared_paths(reporters)
    return reporters


def _format_hint(name: str) -> str:
    known = f"known formats: {', '.join(sorted(FORMATS))}"
    suggestion = did_you_mean(name, FORMATS)
    return f"{suggestion} ({known})" if suggestion else known


def _reject_shared_stdout(reporters: Sequence[Reporter]) -> None:
    on_stdout = [reporter.name for reporter in reporters if reporter.writes_to_stdout]
    if len(on_stdout) > 1:
        raise ConfigError(
            f"only one report can go to stdout, but {', '.join(on_stdout)} all do",
            hint=f"give the others a file, e.g. --report {on_stdout[1]}:report.{on_stdout[1]}",
        )


def _reject_shared_paths(reporters: Sequence[Reporter]) -> None:
    seen: dict[str, str] = {}
    for reporter in reporters:
        if reporter.path is None:
            continue
        key = os.path.realpath(reporter.path)
        if key in seen:
            raise ConfigError(
                f"reports {seen[key]} and {reporter.name} would both write {reporter.path}",
                hint="give each report its own file",
            )
        seen[key] = reporter.name


def _check_writable(spec: str, path: str) -> None:
    """The path is not a directory and its nearest existing ancestor is a writable directory
    (missing parents are created when the report is written)."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise ConfigError(
            f"--report {spec!r}: {path} is a directory", hint=f"name a file, e.g. {path}/report"
        )
    if is_special_file(target):
        if not os.access(target, os.W_OK):
            raise ConfigError(
                f"--report {spec!r}: cannot write to {path} (permission denied)",
                hint="write the report where you may, or to stdout: --report FORMAT:-",
            )
        return
    ancestor = os.path.dirname(target)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ConfigError(
            f"--report {spec!r}: {ancestor} is a file, not a directory",
            hint="give a path whose folders exist or can be made",
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--report {spec!r}: cannot write in {ancestor} (permission denied)",
            hint="write the report where you may, or to stdout: --report FORMAT:-",
        )
