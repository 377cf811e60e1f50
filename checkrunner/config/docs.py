"""`checkrun doc`: the text of one module's or receiver's documentation, and their lists.

Receivers are passed in (their registry is in the alerting layer, above this one).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from checkrunner import catalog
from checkrunner.catalog import ModuleInfo
from checkrunner.config.coerce import REGEX_DIALECT, bounds_text, describe_type
from checkrunner.config.keywords import BASELINE_KEYWORDS
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
    lines += [
        "",
        "`checkrun doc MODULE` shows a module's options, measurements, facts and examples.",
    ]
    return "\n".join(lines) + "\n"


def render_receiver_list(receivers: Mapping[str, ModuleType]) -> str:
    """One line per receiver kind: its name and the first sentence of its documentation."""
    rows = [(kind, _summary(receiver)) for kind, receiver in receivers.items()]
    lines = ["RECEIVERS", *_table(["NAME", "SUMMARY"], rows)]
    lines += [
        "",
        "`checkrun doc RECEIVER` shows a receiver's options (KIND_configs: in a receiver).",
    ]
    return "\n".join(lines) + "\n"


def render_receiver_doc(receiver: ModuleType) -> str:
    """A receiver kind (a module of checkrunner.alerting.receivers): what it does, where it
    goes in a playbook, its delivery defaults and its options."""
    kind = receiver.KIND
    rate_limit = receiver.RATE_LIMIT
    facts = [
        f"Written as {kind}_configs: [...] inside a receiver of the playbook's alerting.",
        f"send_resolved defaults to {_shown(receiver.SEND_RESOLVED_DEFAULT)}.",
        f"At most {rate_limit[0]} messages per {rate_limit[1]:g} s to one destination."
        if rate_limit
        else "No rate limit of its own.",
    ]
    sections = [
        f"{kind} — receiver",
        _paragraphs(receiver.__doc__ or ""),
        "\n".join(
            textwrap.fill(f, WIDTH, initial_indent=INDENT, subsequent_indent=INDENT) for f in facts
        ),
        _options_section(
            kind,
            receiver.OPTIONS,
            required_one_of=getattr(receiver, "REQUIRED_ONE_OF", ()),
            mutually_exclusive=getattr(receiver, "MUTUALLY_EXCLUSIVE", ()),
        ),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _summary(receiver: ModuleType) -> str:
    """The first sentence of a receiver's docstring, on one line."""
    first = " ".join((receiver.__doc__ or "").split("\n\n")[0].split())
    head, colon, _ = first.partition(": ")
    return head if colon else first.split(". ")[0].rstrip(".")


def render_module_doc(info: ModuleInfo) -> str:
    """Summary, description, options, measurements (with units, default metric) and examples."""
    sections = [
        f"{info.name} — {info.summary}",
        _paragraphs(info.description),
        _options_section(
            info.name,
            info.options,
            free_form=info.free_form,
            required_one_of=info.required_one_of,
            mutually_exclusive=info.mutually_exclusive,
        ),
        _measurements_section(info),
        _facts_section(info),
        _examples_section(info),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _paragraphs(text: str) -> str:
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return "\n\n".join(
        textwrap.fill(" ".join(p.split()), WIDTH, initial_indent=INDENT, subsequent_indent=INDENT)
        for p in paragraphs
    )


def _options_section(
    owner: str,
    options: Mapping[str, Mapping[str, Any]],
    free_form: str | None = None,
    required_one_of: Sequence[Sequence[str]] = (),
    mutually_exclusive: Sequence[Sequence[str]] = (),
) -> str:
    if not options:
        return f"OPTIONS\n{INDENT}none: write {owner}: {{}}"
    rows = _option_rows(options)
    lines = ["OPTIONS", *_table(["NAME", "TYPE", "REQUIRED", "DEFAULT", "DESCRIPTION"], rows)]
    notes = []
    if free_form:
        notes.append(f"{owner}: VALUE is short for {owner}: {{{free_form}: VALUE}}.")
    notes += [f"Give at least one of: {', '.join(group)}." for group in required_one_of]
    notes += [f"Use only one of: {', '.join(group)}." for group in mutually_exclusive]
    if _has_regex(options):
        notes.append(f"Regular expressions are {REGEX_DIALECT}.")
    if any(spec.get("secret") for spec in options.values()):
        notes.append("Values of options marked (secret) are masked in all output.")
    for name, spec in options.items():
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
    if spec.get("template"):
        text = f"{text} (Jinja2 template, rendered per notification)".strip()
    if spec.get("secret"):
        text = f"{text} (secret)".strip()
    return text


def _measurements_section(info: ModuleInfo) -> str:
    if not info.measurements:
        return ""
    rows = []
    for name, meta in info.measurements.items():
        text = " ".join(str(meta.get("description", "")).split())
        if name == info.default_metric:
            text = f"(default metric) {text}".strip()
        if meta.get("flag"):
            text = f"{text} A yes/no: static thresholds only, no baseline."
        rows.append((name, str(meta.get("unit", "")) or "-", text))
    lines = ["MEASUREMENTS", *_table(["NAME", "UNIT", "DESCRIPTION"], rows)]
    if info.default_metric is None:
        lines += [
            "",
            f"{INDENT}No default metric: checks with warn/crit say which one with metric:.",
        ]
    lines += ["", _paragraphs(_BASELINE_NOTE)]
    return "\n".join(lines)


_BASELINE_NOTE = (
    "warn/crit also take a dynamic threshold from the measurement's own history: "
    "{baseline: 7d, factor: 1.8} (above 1.8 × the 7-day mean), {baseline: 7d, sigma: 3} "
    "(mean ± 3σ) or {baseline: 7d, mad: 3} (median ± 3 × scaled MAD); optional "
    f"{', '.join(k for k in BASELINE_KEYWORDS if k not in ('baseline', 'factor', 'sigma', 'mad'))}"
    " (README: Dynamic thresholds)."
)


def _facts_section(info: ModuleInfo) -> str:
    if not info.facts:
        return ""
    rows = [(name, " ".join(str(text).split())) for name, text in info.facts.items()]
    lines = ["FACTS", *_table(["NAME", "DESCRIPTION"], rows)]
    lines += ["", f"{INDENT}Reported under facts in the JSON report; not compared with warn/crit."]
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
