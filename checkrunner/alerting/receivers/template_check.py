"""Receiver templates checked before anything runs (`checkrun validate` and every run).

A template option (`title`, `message`, a webhook's `payload`, ...) is compiled in the same
sandbox that renders it per notification, and the names it reads are checked against the
variables it really gets (format.template_vars): a misspelt name or a field of an alert
that does not exist is found at its file:line, not by the first notification. Templates
copied from Alertmanager are Go templates (`{{ .CommonLabels.alertname }}`,
`{{ range .Alerts }}`): they get a hint with the Jinja2 spelling.

What only data can tell (a label that a given alert lacks) is still found at render time,
where it fails that one receiver's delivery, never the others'.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from checkrunner.alerting.model import Alert, Notification
from checkrunner.alerting.receivers import format as fmt
from checkrunner.errors import ConfigError, Location, suggest
from checkrunner.unsafe import UnsafeText

#: Lists of alerts among the variables; their items are alert dicts.
ALERT_LISTS = ("alerts", "firing", "resolved")
#: Methods a template may call on a dict (an alert, its labels).
DICT_METHODS = ("items", "keys", "values", "get")

# `{{ .Field`, `{{ $var`, `{{ range .X }}`, `{{ template "name" . }}`, `{{ end }}`: Go templates.
_GO_ACTION = re.compile(
    r"\{\{-?\s*(?:\.[A-Za-z]|\$|(?:range|with|template|define|block|end|if\s+\.|else\s+if\s+\.)\b)"
)
_GO_FIELD_PATH = re.compile(r"(?<![\w\]\)])\.([A-Z]\w*)((?:\.\w+)*)")


@dataclass
class TemplateProblem:
    message: str
    hint: str | None = None


@functools.lru_cache(maxsize=1)
def known_names() -> frozenset[str]:
    """The variables every receiver template gets."""
    sample = Notification(
        receiver="r", group_key="{}", group_labels={}, alerts=[Alert(labels={"alertname": "a"})]
    )
    return frozenset(fmt.template_vars(sample))


@functools.lru_cache(maxsize=1)
def alert_fields() -> frozenset[str]:
    """The keys of one alert of `alerts`, `firing` and `resolved`."""
    return frozenset(Alert(labels={}).to_webhook())


def problems_of(source: str, *, autoescape: bool = False) -> list[TemplateProblem]:
    """What is wrong with one receiver template, or [] when it compiles and reads only
    variables it gets."""
    from jinja2 import TemplateSyntaxError

    environment = fmt.sandbox(autoescape)
    try:
        tree = environment.parse(source)
        environment.compile(tree)  # what parse accepts, compile may still refuse
    except TemplateSyntaxError as exc:
        where = f" (line {exc.lineno} of the template)" if exc.lineno and exc.lineno > 1 else ""
        return [TemplateProblem(f"is not a valid template: {exc.message}{where}", _hint(source))]
    found = [
        _unknown_name(name, source, _first_line(tree, "Name", "name", name))
        for name in _undeclared(tree, environment)
    ]
    found += [
        _unknown_field(field, _first_line(tree, "Getattr", "attr", field))
        for field in sorted(set(_alert_field_reads(tree)))
    ]
    return found


def _first_line(tree: Any, node_type: str, attribute: str, value: str) -> str:
    """ " (line N of the template)" where a node of this type with this name first appears
    ("" on the first line)."""
    from jinja2 import nodes

    lines = [
        node.lineno
        for node in tree.find_all(getattr(nodes, node_type))
        if getattr(node, attribute) == value
    ]
    line = min(lines, default=1)
    return f" (line {line} of the template)" if line > 1 else ""


def receiver_template_errors(
    kind: str, entry: Mapping[Any, Any], entry_at: Location, receiver: str, index: int
) -> list[ConfigError]:
    """ConfigErrors for every template option of one `<kind>_configs` entry, each at the
    option's value."""
    from checkrunner.alerting import receivers as registry
    from checkrunner.yamlio.marked import value_location

    module = registry.get(kind)
    errors = []
    for option, spec in module.OPTIONS.items():
        source = entry.get(option)
        if not spec.get("template") or not isinstance(source, str) or not source:
            continue
        if isinstance(source, UnsafeText):  # `!unsafe`: sent as written, never a template
            continue
        # The email html template is rendered with autoescape; the syntax is the same.
        for problem in problems_of(source, autoescape=option == "html"):
            errors.append(
                ConfigError(
                    f"receiver '{receiver}': template option '{option}' of {kind}_configs "
                    f"item {index + 1} {problem.message}",
                    value_location(entry, option, entry_at),
                    problem.hint,
                )
            )
    return errors


# ----------------------------------------------------------------------------- names


def _undeclared(tree: Any, environment: Any) -> list[str]:
    from jinja2 import meta

    names = meta.find_undeclared_variables(tree) - set(environment.globals)
    return sorted(n for n in names if n not in known_names())


def _unknown_name(name: str, source: str, where: str) -> TemplateProblem:
    message = f"reads '{name}'{where}, which a receiver template does not get"
    go_name = name[:1].lower() + name[1:]
    if go_name != name and go_name in known_names():
        used = re.search(rf"\b{re.escape(name)}((?:\.\w+)*)", source)
        rest = used.group(1) if used else ""
        return TemplateProblem(
            message,
            f"'{name}' is Alertmanager's Go template name; write `{{{{ {go_name}{rest} }}}}`",
        )
    if name == "env":
        return TemplateProblem(
            message,
            "message templates are rendered per notification, without the environment; "
            "`{{ env.X }}` works in the other options (url, headers, key, ...)",
        )
    if name == "end":
        return TemplateProblem(
            message,
            "`{{ end }}` closes a block in Alertmanager's Go templates; Jinja2 closes "
            "`{% for %}` with `{% endfor %}` and `{% if %}` with `{% endif %}`",
        )
    best = suggest(name, known_names())
    if best:
        message += f" — did you mean '{best}'?"
    return TemplateProblem(message, f"a receiver template gets: {', '.join(_listed_names())}")


def _unknown_field(field: str, where: str) -> TemplateProblem:
    message = f"reads the field '{field}' of an alert{where}, which alerts do not have"
    lowered = field[:1].lower() + field[1:]
    if lowered in alert_fields():
        return TemplateProblem(
            message,
            f"'{field}' is Alertmanager's Go template name; an alert's fields are lower case: "
            f"write `alert.{lowered}`",
        )
    best = suggest(field, alert_fields())
    if best:
        message += f" — did you mean '{best}'?"
    return TemplateProblem(message, f"an alert has: {', '.join(sorted(alert_fields()))}")


def _listed_names() -> list[str]:
    return sorted(known_names(), key=str.lower)


def _alert_field_reads(tree: Any) -> Iterator[str]:
    """Attribute names read from an alert: `alert.X` in `{% for alert in alerts %}` (also
    `firing`, `resolved`, filtered lists) and `alerts[0].X`; dict methods are allowed."""
    from jinja2 import nodes

    allowed = alert_fields() | set(DICT_METHODS)
    for loop in tree.find_all(nodes.For):
        target = loop.target
        if isinstance(target, nodes.Name) and _is_alert_list(loop.iter):
            for read in _reads_of(loop.body, target.name):
                if read not in allowed:
                    yield read
    for attribute in tree.find_all(nodes.Getattr):
        item = attribute.node
        is_alert = isinstance(item, nodes.Getitem) and _is_alert_list(item.node)
        if is_alert and attribute.attr not in allowed:
            yield attribute.attr


def _is_alert_list(node: Any) -> bool:
    """`alerts`, `firing`, `resolved`, possibly through filters (`alerts|sort(...)`)."""
    from jinja2 import nodes

    while isinstance(node, nodes.Filter) and node.node is not None:
        node = node.node
    return isinstance(node, nodes.Name) and node.name in ALERT_LISTS


def _reads_of(body: list[Any], variable: str) -> Iterator[str]:
    """Attributes read from `variable` in a loop body (an inner loop that rebinds the name
    is left out: there it means something else)."""
    from jinja2 import nodes

    for statement in body:
        if (
            isinstance(statement, nodes.For)
            and isinstance(statement.target, nodes.Name)
            and statement.target.name == variable
        ):
            continue
        for attribute in statement.find_all(nodes.Getattr):
            inner = attribute.node
            if isinstance(inner, nodes.Name) and inner.name == variable:
                yield attribute.attr


# ----------------------------------------------------------------------------- Go templates


def _hint(source: str) -> str | None:
    """The Jinja2 spelling of an Alertmanager (Go) template, when the source looks like one."""
    if not _GO_ACTION.search(source):
        return None
    if re.search(r"\{\{-?\s*range\b", source):
        return (
            "this is Alertmanager's Go template syntax; checkrun's templates are Jinja2: write "
            "`{% for alert in alerts %}{{ alert.labels.instance }}{% endfor %}` for "
            "`{{ range .Alerts }}{{ .Labels.instance }}{{ end }}`"
        )
    path = _GO_FIELD_PATH.search(source)
    if path:
        field, rest = path.group(1), path.group(2)
        name = field[:1].lower() + field[1:]
        if name in known_names():
            return (
                f"`.{field}{rest}` is Go template syntax; write `{{{{ {name}{rest} }}}}` "
                "(checkrun's templates are Jinja2)"
            )
    return (
        "this looks like Alertmanager's Go template syntax; checkrun's templates are Jinja2 "
        f"with the variables {', '.join(_listed_names())}, e.g. `{{{{ commonLabels.alertname }}}}`"
    )
