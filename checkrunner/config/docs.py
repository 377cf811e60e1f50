"""`checkrun doc`: the text of one module's documentation, and the list of modules."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from checkrunner import catalog
from checkrunner.catalog import ModuleInfo
from checkrunner.config.coerce import REGEX_DIALECT, bounds_text, describe_type
from checkrunner.errors import ConfigError, did_you_mean

WIDTH = 88
INDENT = "  "
_MIN_DESCRIPTION_WIDTH = 30


def lookup_module(name: str) -> ModuleInfo:
    """The module called `name`, or a ConfigError with the nearest name and the list."""
    try:
        return catalog.get(name)
    except KeyError:
        names = catalog.module_names()
        message = f"unknown module '{name}'"
        suggestion = did_you_mean(name, names)
        raise ConfigError(
            f"{message} — {suggestion}" if suggestion else message,
            hint=f"modules: {', '.join(names)}",
        ) from None


def render_module_list() -> str:
    """One line per module: its name and summary."""
    modules = catalog.all_modules()
    if not modules:
        return "no check modules are installed\n"
    rows = [(name, info.summary) for name, info in modules.items()]
    lines = ["MODULES", *_table(["NAME", "SUMMARY"], rows)]
    lines += ["", "`checkrun doc MODULE` shows a module's options, measurements and examples."]
    return "\n".join(lines) + "\n"


def render_module_doc(info: ModuleInfo) -> str:
    """Summary, description, options, measurements (with units, default metric) and examples."""
    sections = [
        f"{info.name} — {info.summary}",
        _paragraphs(info.description),
        _options_section(info),
        _measurements_section(info),
        _examples_section(info),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _paragraphs(text: str) -> str:
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "\n\n".join(
        textwrap.fill(" ".join(p.split()), WIDTH, initial_indent=INDENT, subsequent_indent=INDENT)
        for p in paragraphs
    )


def _options_section(info: ModuleInfo) -> str:
    if not info.options:
        return f"OPTIONS\n{INDENT}none: write {info.name}: {{}}"
    rows = _option_rows(info.options)
    lines = ["OPTIONS", *_table(["NAME", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"], rows)]
    notes = []
    if info.free_form:
        notes.append(f"{info.name}: VALUE is short for {info.name}: {{{info.free_form}: VALUE}}.")
    notes += [f"Give at least one of: {', '.join(group)}." for group in info.required_one_of]
    notes += [f"Use only one of: {', '.join(group)}." for group in info.mutually_exclusive]
    if _has_regex(info.options):
        notes.append(f"Regular expressions are {REGEX_DIALECT}.")
    for name, spec in info.options.items():
        for group in spec.get("required_one_of") or ():
            notes.append(f"Each item of {name}: give one of {', '.join(group)}.")
        for group in spec.get("mutually_exclusive") or ():
            notes.append(f"Each item of {name}: use only one of {', '.join(group)}.")
    if notes:
        lines.append("")
        lines += [
            textwrap.fill(note, WIDTH, initial_indent=INDENT, subsequent_indent=INDENT)
            for note in notes
        ]
    return "\n".join(lines)


def _has_regex(options: Mapping[str, Mapping[str, Any]]) -> bool:
    return any(
        spec.get("format") == "regex" or _has_regex(spec.get("options") or {})
        for spec in options.values()
    )


def _option_rows(
    options: Mapping[str, Mapping[str, Any]], prefix: str = ""
) -> list[tuple[str, str, str, str, str]]:
    """One row per option; suboptions follow as NAME[].SUB (list items) or NAME.SUB."""
    rows = []
    for name, spec in options.items():
        rows.append(
            (
                prefix + name,
                describe_type(spec),
                "yes" if spec.get("required") else "no",
                _shown(spec.get("default")),
                _option_text(spec),
            )
        )
        if spec.get("options"):
            nested = f"{prefix}{name}[]." if spec.get("type") == "list" else f"{prefix}{name}."
            rows += _option_rows(spec["options"], nested)
    return rows


def _option_text(spec: Mapping[str, Any]) -> str:
    text = " ".join(str(spec.get("description", "")).split())
    if spec.get("choices"):
        text = f"{text} Choices: {', '.join(str(c) for c in spec['choices'])}.".strip()
    if bounds_text(spec):
        text = f"{text} Range: {bounds_text(spec)}.".strip()
    return text


def _measurements_section(info: ModuleInfo) -> str:
    if not info.measurements:
        return ""
    rows = []
    for name, meta in info.measurements.items():
        text = " ".join(str(meta.get("description", "")).split())
        if name == info.default_metric:
            text = f"(default metric) {text}".strip()
        rows.append((name, str(meta.get("unit", "")) or "-", text))
    lines = ["MEASUREMENTS", *_table(["NAME", "UNIT", "DESCRIPTION"], rows)]
    if info.default_metric is None:
        lines += [
            "",
            f"{INDENT}No default metric: checks with warn/crit say which one with metric:.",
        ]
    return "\n".join(lines)


def _examples_section(info: ModuleInfo) -> str:
    if not info.examples.strip():
        return ""
    body = textwrap.indent(textwrap.dedent(info.examples).strip("\n"), INDENT)
    return f"EXAMPLES\n{body}"


def _shown(default: Any) -> str:
    if default is None:
        return "-"
    if default == "":
        return '""'
    if isinstance(default, bool):
        return "yes" if default else "no"
    if isinstance(default, (list, tuple)):
        return "[" + ", ".join(str(d) for d in default) + "]"
    if isinstance(default, Mapping):
        return "{}" if not default else str(dict(default))
    return str(default)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned columns; the last one wraps under itself, or below the row when space is short."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    fixed = widths[:-1]
    offset = len(INDENT) + sum(w + 2 for w in fixed)
    room = WIDTH - offset
    lines = []
    for row in [headers, *rows]:
        head = INDENT + "".join(str(cell).ljust(width + 2) for cell, width in zip(row, fixed))
        last = str(row[-1])
        if room >= _MIN_DESCRIPTION_WIDTH:
            wrapped = textwrap.wrap(last, room) or [""]
            lines.append((head + wrapped[0]).rstrip())
            lines += [" " * offset + more for more in wrapped[1:]]
        else:
            lines.append(head.rstrip())
            lines += textwrap.wrap(
                last, WIDTH, initial_indent=INDENT * 3, subsequent_indent=INDENT * 3
            )
    return lines
