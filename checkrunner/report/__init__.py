"""Report formats, one module each, behind a registry: `--report FORMAT[:PATH]`.

A spec without a path (or with the path "-") writes to stdout; only one reporter may.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from checkrunner.errors import ConfigError, did_you_mean
from checkrunner.report.base import Reporter, atomic_write, color_wanted, is_special_file
from checkrunner.report.json_report import JsonReporter
from checkrunner.report.junit import JunitReporter
from checkrunner.report.markdown import MarkdownReporter
from checkrunner.report.nagios import NagiosReporter, nagios_exit_code, nagios_state
from checkrunner.report.terminal import TerminalReporter

REPORTERS: dict[str, type[Reporter]] = {
    reporter.name: reporter
    for reporter in (
        TerminalReporter,
        JsonReporter,
        JunitReporter,
        MarkdownReporter,
        NagiosReporter,
    )
}
DEFAULT_FORMAT = TerminalReporter.name

__all__ = [
    "DEFAULT_FORMAT",
    "REPORTERS",
    "JsonReporter",
    "JunitReporter",
    "MarkdownReporter",
    "NagiosReporter",
    "Reporter",
    "TerminalReporter",
    "atomic_write",
    "color_wanted",
    "create_reporter",
    "create_reporters",
    "nagios_exit_code",
    "nagios_state",
    "parse_spec",
]


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
    reporter_class = REPORTERS.get(name)
    if reporter_class is None:
        raise ConfigError(
            f"--report {spec!r}: unknown report format {name!r}", hint=_format_hint(name)
        )
    if path is not None:
        _check_writable(spec, path)
    return reporter_class(path, verbose=verbose, color=color)


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
    known = f"known formats: {', '.join(sorted(REPORTERS))}"
    suggestion = did_you_mean(name, REPORTERS)
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
