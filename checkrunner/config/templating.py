"""Jinja2 templating of playbook values: sandboxed, strict about undefined names, lazy vars.

- Every string is a template; a string that is exactly one `{{ expression }}` gives the
  expression's own value (int, list, dict, ...), like Ansible's native types; any other
  template gives a string.
- Templates run in Jinja2's ImmutableSandboxedEnvironment: they can read variables and call
  filters, never reach Python internals (`''.__class__` is a ConfigError) or change values.
- An undefined variable is a ConfigError at the value's file:line:column, with the nearest
  known name ("did you mean") and the names that are defined.
- Variables may themselves hold templates (`url: "http://{{ host }}:{{ port }}"`); they are
  rendered when used, against the same variables, and a loop between them is an error.
- The process environment is the variable `env` (`{{ env.HOME }}`); an unset one is an error
  naming it. A variable the user defines as `env` hides it. Values read through `env` are
  remembered (`environment_values_used`) so reports can mask them as secrets.
- Filters are Jinja2's, plus `bool` (yes/no/true/false/on/off/1/0 -> True/False), handy for
  `-e flag=false`, whose value is the string "false".
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from checkrunner.config.coerce import BOOL_WORDS, contains_template, is_templated, kind_of
from checkrunner.errors import ConfigError, Location, VariableLoop, did_you_mean
from checkrunner.yamlio.marked import MarkedMap, MarkedSeq, value_location

if TYPE_CHECKING:
    from jinja2 import TemplateSyntaxError

# A string that is one expression and nothing else: its value keeps its native type.
_SINGLE_EXPRESSION = re.compile(r"\{\{(?P<expr>(?:(?!\{\{|\}\}|\{%|\{#).)*)\}\}", re.S)
_UNKNOWN_FILTER_OR_TEST = re.compile(r"No (?P<what>filter|test) named '(?P<name>[^']+)'")
_MAX_NAMES_SHOWN = 25

SANDBOX_HINT = "templates may read variables and use filters; they cannot reach Python internals"
TOO_DEEP = "it is nested too deeply (brackets, filters or blocks inside each other)"
SYNTAX_HINT = "Jinja2 syntax: {{ variable }}, {{ value | filter }}, {{ a if condition else b }}"


class _Environ(Mapping):
    """The process environment as the template variable `env`; remembers the values read."""

    def __init__(self, values: Mapping[str, str]):
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        value = self._values[key]
        if value:
            self.read.add(value)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@functools.cache
def _sandbox() -> ModuleType:
    """The Jinja2 side of templating, imported on first use: a playbook and inventory without
    templates never import Jinja2 (about 20 ms of start-up)."""
    from checkrunner.config import jinja_sandbox

    return jinja_sandbox


class _NotAValue(Exception):
    """A native expression gave something that is not data (a function, a method...)."""


@dataclass
class _RenderState:
    variables: Mapping[str, Any] = field(default_factory=dict)
    location: Location | None = None
    resolving: list[str] = field(default_factory=list)


class Templater:
    """Renders playbook values per host. Safe to share between threads."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        """`environ` is what `env` shows (default: a snapshot of os.environ, taken now)."""
        self._environ = _Environ(os.environ if environ is None else environ)
        self._jinja: Any = None  # the sandboxed Jinja2 environment, made on the first template
        self._jinja_lock = threading.Lock()
        self._templates: dict[str, Any] = {}
        self._expressions: dict[str, Any] = {}
        self._local = threading.local()

    @property
    def jinja(self) -> Any:
        """This Templater's sandboxed Jinja2 environment (Jinja2 is imported on first use)."""
        if self._jinja is None:
            with self._jinja_lock:
                if self._jinja is None:
                    self._jinja = _sandbox().SandboxEnvironment(self)
        return self._jinja

    @property
    def environment_values_used(self) -> set[str]:
        """Values of environment variables that templates have read: secrets to mask."""
        return set(self._environ.read)

    def render(self, value: Any, variables: Mapping[str, Any], location: Location) -> Any:
        """`value` with every string in it rendered (dicts and lists recursively).

        Mappings and sequences from the YAML loader keep their marks, and errors point at the
        exact string; `location` is used for values without marks.
        """
        scope = self._scope(variables)
        with self._rendering(variables, location):
            return self._render_value(value, scope, location)

    def evaluate_when(
        self, condition: Any, variables: Mapping[str, Any], location: Location
    ) -> bool:
        """A `when:` condition: None or a bool as is, a bare Jinja2 expression, or a list (all true)."""
        if condition is None or isinstance(condition, bool):
            return condition is None or condition
        if isinstance(condition, (list, tuple)):
            return all(
                self.evaluate_when(item, variables, value_location(condition, position, location))
                for position, item in enumerate(condition)
            )
        if not isinstance(condition, str):
            raise ConfigError(
                f"when: expected an expression, got {kind_of(condition)}",
                location,
                "write a Jinja2 expression such as when: level | int > 5",
            )
        if is_templated(condition):
            raise ConfigError(
                "when: is an expression already; it must not contain {{ }}",
                location,
                f"write when: {bare_expression(condition)}",
            )
        scope = self._scope(variables)
        with self._rendering(variables, location):
            return _truth(self._evaluate(condition, scope, location))

    def _scope(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        return {"env": self._environ, **variables}

    @contextmanager
    def _rendering(self, variables: Mapping[str, Any], location: Location) -> Iterator[None]:
        previous = getattr(self._local, "state", None)
        self._local.state = _RenderState(variables, location)
        try:
            yield
        finally:
            self._local.state = previous

    def _render_value(self, value: Any, scope: dict[str, Any], location: Location) -> Any:
        if isinstance(value, str):
            return self._render_string(value, scope, location) if is_templated(value) else value
        if isinstance(value, Mapping):
            rendered = MarkedMap(location=getattr(value, "location", None))
            for key, item in value.items():
                rendered[key] = self._render_value(
                    item, scope, value_location(value, key, location)
                )
            if isinstance(value, MarkedMap):
                rendered.copy_marks_from(value)
            return rendered
        if isinstance(value, (list, tuple)):
            rendered_items = MarkedSeq(
                (
                    self._render_value(item, scope, value_location(value, i, location))
                    for i, item in enumerate(value)
                ),
                location=getattr(value, "location", None),
            )
            rendered_items.item_locations = list(getattr(value, "item_locations", []))
            return rendered_items
        return value

    def _render_string(self, text: str, scope: dict[str, Any], location: Location) -> Any:
        single = _SINGLE_EXPRESSION.fullmatch(text)
        if single:
            return self._evaluate(single.group("expr"), scope, location, shown=text)
        try:
            template = self._templates.get(text)
            if template is None:
                template = self._templates.setdefault(text, self.jinja.from_string(text))
            with self.jinja.bounded():
                return template.render(scope)
        except ConfigError:
            raise
        except Exception as exc:
            raise self._template_error(exc, text, scope, location) from None

    def _evaluate(
        self, expression: str, scope: dict[str, Any], location: Location, shown: str | None = None
    ) -> Any:
        try:
            compiled = self._expressions.get(expression)
            if compiled is None:
                compiled = self.jinja.compile_expression(expression, undefined_to_none=False)
                self._expressions.setdefault(expression, compiled)
            with self.jinja.bounded():
                return _plain(_sandbox().check_value(compiled(scope), "the value"))
        except ConfigError:
            raise
        except Exception as exc:
            raise self._template_error(exc, shown or expression, scope, location) from None

    def resolve_variable(self, name: str, value: Any, scope: dict[str, Any]) -> Any:
        """The variable `name` as a template being rendered reads it: its own templates
        rendered first, in `scope`, with loops reported (the sandbox's context asks this)."""
        if isinstance(value, _Environ) or not contains_template(value):
            return value
        state: _RenderState = self._local.state
        where = value_location(state.variables, name, state.location or Location("<template>"))
        if name in state.resolving:
            loop = " -> ".join([*state.resolving[state.resolving.index(name) :], name])
            raise VariableLoop(
                f"variable '{name}' refers to itself: {loop}",
                where,
                "break the loop: one of these variables must hold a plain value",
            )
        state.resolving.append(name)
        try:
            return self._render_value(value, scope, where)
        except VariableLoop:
            raise
        except ConfigError as exc:
            raise ConfigError(
                f"in variable '{name}': {exc.message}", exc.location, exc.hint
            ) from None
        finally:
            state.resolving.pop()

    def _template_error(
        self, exc: Exception, text: str, scope: Mapping[str, Any], location: Location
    ) -> ConfigError:
        sandbox = _sandbox()
        if isinstance(exc, sandbox.UndefinedName):
            return self._undefined_error(exc, scope, location)
        if isinstance(exc, sandbox.TemplateLimit):
            return ConfigError(
                f"template {text!r} stopped by the sandbox's limits: {exc}",
                location,
                sandbox.LIMIT_HINT,
            )
        if isinstance(exc, sandbox.SecurityError):
            return ConfigError(f"template blocked by the sandbox: {exc}", location, SANDBOX_HINT)
        if isinstance(exc, sandbox.TemplateSyntaxError):
            return ConfigError(
                f"template syntax error in {text!r}: {syntax_message(exc, self.jinja)}",
                location,
                SYNTAX_HINT,
            )
        if isinstance(exc, (RecursionError, SyntaxError, MemoryError)):
            return ConfigError(
                f"template {text!r} cannot be compiled: {TOO_DEEP}", location, SYNTAX_HINT
            )
        if isinstance(exc, _NotAValue):
            return ConfigError(
                f"template {text!r} {exc}", location, "call it with () or pass it through a filter"
            )
        return ConfigError(
            f"template {text!r} failed: {type(exc).__name__}: {_public_type_names(str(exc))}",
            location,
            "check the expression and the types of the variables it uses",
        )

    def _undefined_error(
        self, exc: Any, scope: Mapping[str, Any], location: Location
    ) -> ConfigError:
        name, owner = exc.name, exc.owner
        if owner is self._environ:
            return ConfigError(
                f"environment variable '{name}' is not set",
                location,
                f"set it before running checkrun, or give a default: {{{{ env.{name} | default('...') }}}}",
            )
        if owner is _sandbox().missing:
            return self._undefined_variable(str(name), scope, location)
        if isinstance(owner, Mapping):
            keys = [str(key) for key in owner]
            message = f"no key '{name}' in this mapping"
            suggestion = did_you_mean(str(name), keys)
            return ConfigError(
                f"{message} — {suggestion}" if suggestion else message,
                location,
                f"it has: {_names(keys)}" if keys else "the mapping is empty",
            )
        return ConfigError(f"undefined value: {exc.message}", location, SYNTAX_HINT)

    def _undefined_variable(
        self, name: str, scope: Mapping[str, Any], location: Location
    ) -> ConfigError:
        known = sorted(str(key) for key in scope)
        message = f"undefined variable '{name}'"
        suggestion = did_you_mean(name, known)
        if suggestion:
            message += f" — {suggestion}"
        if name in self._environ:
            hint = f"'{name}' is an environment variable: write {{{{ env.{name} }}}}"
        else:
            hint = f"known variables: {_names(known)}; define it under vars:, in the inventory or with -e {name}=..."
        return ConfigError(message, location, hint)


# Python's own messages name the classes values are made of; users wrote lists and mappings.
_INTERNAL_TYPE_NAMES = {"MarkedSeq": "list", "MarkedMap": "dict", "_Environ": "env"}
_INTERNAL_TYPE_NAME = re.compile(r"\b(?:{})\b".format("|".join(_INTERNAL_TYPE_NAMES)))


def _public_type_names(text: str) -> str:
    return _INTERNAL_TYPE_NAME.sub(lambda match: _INTERNAL_TYPE_NAMES[match.group(0)], text)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMES_SHOWN])
    if len(names) > _MAX_NAMES_SHOWN:
        shown += f" and {len(names) - _MAX_NAMES_SHOWN} more"
    return shown


def _plain(value: Any) -> Any:
    """A native expression's value as plain data (what YAML and JSON can hold)."""
    if isinstance(value, _sandbox().Undefined):
        str(value)  # a strict Undefined raises its UndefinedError/SecurityError here
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)  # also turns Markup into str
    if isinstance(value, Mapping):
        plain = MarkedMap(
            {key: _plain(item) for key, item in value.items()},
            location=getattr(value, "location", None),
        )
        if isinstance(value, MarkedMap):
            plain.copy_marks_from(value)
        return plain
    if isinstance(value, (list, tuple, set, frozenset, range)):
        return [_plain(item) for item in value]
    if callable(value):
        raise _NotAValue(f"gives a {type(value).__name__}, not a value")
    return str(value)


def _truth(value: Any) -> bool:
    """Truth of a condition's value; "false"/"no"/"off"/"0" strings (from -e) are false."""
    if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
        return BOOL_WORDS[value.strip().lower()]
    return bool(value)


def bare_expression(condition: str) -> str:
    """`{{ x > 1 }}` written as a `when:` condition should be `x > 1`."""
    single = _SINGLE_EXPRESSION.fullmatch(condition.strip())
    return (
        single.group("expr").strip()
        if single
        else condition.replace("{{", "").replace("}}", "").strip()
    )


def syntax_message(exc: TemplateSyntaxError, environment: Any) -> str:
    """Jinja2's complaint, with a "did you mean" for a misspelt filter or test."""
    message = exc.message or str(exc)
    unknown = _UNKNOWN_FILTER_OR_TEST.search(message)
    if unknown:
        known = environment.filters if unknown.group("what") == "filter" else environment.tests
        suggestion = did_you_mean(unknown.group("name"), known)
        if suggestion:
            message = f"{message.rstrip('.')} — {suggestion}"
    return message


def template_syntax_error(text: str) -> str | None:
    """Why a template string does not compile (bad syntax, unknown filter), or None."""
    return _compile_error(lambda environment: environment.compile(text))


def expression_syntax_error(expression: str) -> str | None:
    """Why a bare expression (a `when:`) does not compile, or None."""
    return _compile_error(lambda environment: environment.compile_expression(expression))


def _compile_error(compile_in: Callable[[Any], object]) -> str | None:
    """Why `compile_in(the syntax-checking environment)` fails, or None."""
    sandbox = _sandbox()
    environment = sandbox.syntax_environment()
    try:
        compile_in(environment)
    except sandbox.TemplateSyntaxError as exc:
        return syntax_message(exc, environment)
    except (RecursionError, SyntaxError, MemoryError):
        return TOO_DEEP  # the parser, or Python compiling what it made, ran out of stack
    return None


_default_templater: Templater | None = None
_default_lock = threading.Lock()


def default_templater() -> Templater:
    """A shared Templater over os.environ, created on first use."""
    global _default_templater
    with _default_lock:
        if _default_templater is None:
            _default_templater = Templater()
        return _default_templater


def evaluate_when(condition: Any, variables: Mapping[str, Any], location: Location) -> bool:
    """`Templater.evaluate_when` with the shared default Templater."""
    return default_templater().evaluate_when(condition, variables, location)
