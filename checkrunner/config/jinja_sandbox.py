"""The Jinja2 side of templating (see templating.py): the sandboxed environment and its helpers.

Everything that needs Jinja2 lives here, so that templating.py imports Jinja2 only when a
playbook or an inventory actually holds a template.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from checkrunner.config.coerce import contains_template, parse_bool
from checkrunner.config.templating import _Environ

if TYPE_CHECKING:
    from checkrunner.config.templating import Templater

__all__ = [
    "SandboxEnvironment",
    "SecurityError",
    "TemplateSyntaxError",
    "Undefined",
    "UndefinedName",
    "missing",
]

_MAX_SEQUENCE_PRODUCT = 1_000_000  # `'x' * n` and `[..] * n` beyond this are refused
_MAX_EXPONENT = 10_000


class UndefinedName(UndefinedError):
    """UndefinedError that says which name was missing and in what (`owner`; missing = top level)."""

    def __init__(self, message: str | None = None, *, name: Any = None, owner: Any = missing):
        super().__init__(message)
        self.name = name
        self.owner = owner


class _StrictUndefined(StrictUndefined):
    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: Any = None,
        exc: Any = UndefinedError,
    ):
        if exc is UndefinedError:
            # Jinja2 raises `exc(message)`; a factory keeps the name for a better message.
            exc = functools.partial(UndefinedName, name=name, owner=obj)
        super().__init__(hint, obj, name, exc)


class _LazyContext(Context):
    """Renders a variable's own templates when a template uses it."""

    def resolve_or_missing(self, key: str) -> Any:
        value = super().resolve_or_missing(key)
        templater = getattr(self.environment, "templater", None)
        if templater is None or value is missing or key in self.vars or isinstance(value, _Environ):
            return value
        if not contains_template(value):
            return value
        return templater._resolve_variable(key, value, self.parent)


class SandboxEnvironment(ImmutableSandboxedEnvironment):
    context_class = _LazyContext
    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, templater: Templater | None):
        super().__init__(undefined=_StrictUndefined, keep_trailing_newline=True, autoescape=False)
        self.templater = templater
        self.filters["bool"] = parse_bool

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        # The sandbox already caps range(); cap the other cheap ways to exhaust memory.
        if operator == "**" and _is_number(right) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                sized = isinstance(sequence, (str, list, tuple)) and _is_number(count)
                if sized and len(sequence) * count > _MAX_SEQUENCE_PRODUCT:
                    raise SecurityError("the result of '*' would be too large")
        return super().call_binop(context, operator, left, right)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@functools.lru_cache(maxsize=1)
def syntax_environment() -> SandboxEnvironment:
    """An environment for syntax checks only (no Templater behind it)."""
    return SandboxEnvironment(templater=None)
