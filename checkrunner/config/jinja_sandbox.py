"""The Jinja2 side of templating (see templating.py): the sandboxed environment and its helpers.

Everything that needs Jinja2 lives here, so that templating.py imports Jinja2 only when a
playbook or an inventory actually holds a template.

The sandbox is bounded as well as immutable, because `checkrun validate` renders templates
from pull requests it cannot trust: a few characters of Jinja2 (`{{ (9**9999)**9999 }}`,
`'x'|center(999999999)`, two nested `range` loops) would otherwise take a CI runner's memory
or hours. Every value a template makes holds at most MAX_SIZE characters or items (counted
through nested lists and mappings, a shared item once per place it appears), an integer at
most MAX_INT_BITS bits, an evaluation runs at most TIME_LIMIT seconds, and all evaluations
of one environment (a plan, all hosts) at most TOTAL_TIME_BASE plus TOTAL_TIME_PER_VALUE per
value. Operations whose result can outgrow their inputs by more than a small factor are
checked before they run (repetition, powers, format widths, padding, replace, join,
lipsum...); everything else is checked after (calls, filters, operators, `~`, output). The
deadline is checked on every loop iteration, call, filter and attribute access, so no
template runs long between two checks.
"""

from __future__ import annotations

import copy
import functools
import re
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.utils import generate_lorem_ipsum, missing, pass_environment
from markupsafe import Markup

from checkrunner.config.coerce import parse_bool

if TYPE_CHECKING:
    from checkrunner.config.templating import Templater

__all__ = [
    "LIMIT_HINT",
    "BoundedSandbox",
    "SandboxEnvironment",
    "SecurityError",
    "TemplateLimit",
    "TemplateSyntaxError",
    "Undefined",
    "UndefinedName",
    "missing",
]

MAX_SIZE = 1_000_000  # characters of a string, or items of a structure counted deep
MAX_COUNT = 100_000  # items a count argument may ask for (batch, slice; Jinja2's own range)
MAX_INT_BITS = 100_000  # about 30,000 decimal digits
TIME_LIMIT = 1.0  # seconds for one value's templates, its variables' templates included
# All the values of a plan (every host): templates take microseconds, so a plan whose
# templates average milliseconds is one that runs each close to TIME_LIMIT, host after host.
TOTAL_TIME_BASE = 10.0  # seconds
TOTAL_TIME_PER_VALUE = 0.002  # seconds

LIMIT_HINT = (
    f"templates are bounded (values of at most {MAX_SIZE:,} characters or items, integers of "
    f"{MAX_INT_BITS:,} bits, {TIME_LIMIT:g}s per value) so that checkrun can validate "
    "playbooks it does not trust; compute big data outside the playbook"
)

_NUMBER_IN_SPEC = re.compile(r"\d+")
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?([a-zA-Z%])")


class TemplateLimit(SecurityError):
    """A template went past one of the sandbox's bounds (size, integer size, time)."""


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


# -- sizes ------------------------------------------------------------------------------------


def value_size(value: Any, limit: int = MAX_SIZE) -> int:
    """Characters of text plus items of containers, counted deep; stops counting past `limit`.

    Only plain data is walked (dict, list, tuple, set, range): other mappings, such as the
    environment, are never read by this count.
    """
    total = 0
    pending = [value]
    while pending and total <= limit:
        item = pending.pop()
        if isinstance(item, (str, bytes)):
            total += max(len(item), 1)
            continue
        if isinstance(item, range):
            total += 1 + len(item)
            continue
        if isinstance(item, dict):
            total += 1 + 2 * len(item)
            elements: Any = (*item.keys(), *item.values()) if total <= limit else ()
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 1 + len(item)
            elements = item if total <= limit else ()
        else:
            total += 1
            continue
        for element in elements:  # each already counted as one item
            if isinstance(element, (str, bytes)):
                total += max(len(element) - 1, 0)
            elif isinstance(element, (dict, list, tuple, set, frozenset, range)):
                total -= 1
                pending.append(element)
    return total


def check_size(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise TemplateLimit(f"{what} would hold more than {MAX_SIZE:,} characters or items")


def check_value(value: Any, what: str = "a value") -> Any:
    """`value`, if it is within the bounds; TemplateLimit if not."""
    kind = type(value)
    if kind is str or kind is bytes:  # the common case first: this runs on every operation
        if len(value) > MAX_SIZE:
            check_size(len(value), what)
        return value
    if kind is int:
        if value.bit_length() > MAX_INT_BITS:
            raise TemplateLimit(f"{what} would be an integer of more than {MAX_INT_BITS:,} bits")
        return value
    if isinstance(value, (dict, list, tuple, set, frozenset, range)):
        check_size(value_size(value), what)
    elif isinstance(value, (str, bytes)):
        check_size(len(value), what)
    elif isinstance(value, int) and not isinstance(value, bool):
        return check_value(int(value), what)
    return value


def _int(value: Any, default: int = 0) -> int:
    """An int argument as the callee will read it; anything else is left for it to reject."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _text_size(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes)) else value_size(value)


def _printf_size(template: Any, values: Any) -> int:
    """An upper bound of the length of `template % values`."""
    text = template.decode("latin-1") if isinstance(template, bytes) else str(template)
    specs = _PRINTF_SPEC.findall(text)
    size = len(template) + 32 * len(specs)
    for width, precision, _conversion in specs:
        size += int(width) if width.isdigit() else 0
        size += int(precision) if precision.isdigit() else 0
    items = values if isinstance(values, tuple) else (values,)
    if any("*" in (width, precision) for width, precision, _ in specs):
        size += sum(abs(_int(item)) for item in items)  # a `*` takes its width from the values
    expands = any(conversion in "ra" for _, _, conversion in specs)
    return size + value_size(values) * (10 if expands else 1)


def _spec_width(format_spec: str) -> int:
    return max((int(number) for number in _NUMBER_IN_SPEC.findall(format_spec)), default=0)


def _method_result_size(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """Upper bound of what a str/bytes/int method returns, for those that can grow past their
    inputs (None for the others: their results are checked after the call)."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")

    def arg(position: int, keyword: str, default: Any = None) -> Any:
        return args[position] if len(args) > position else kwargs.get(keyword, default)

    if isinstance(owner, int) and name == "to_bytes":
        return _int(arg(0, "length", 1))
    if not isinstance(owner, (str, bytes)):
        return None
    length = len(owner)
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(length, _int(arg(0, "width")))
    if name == "expandtabs":
        return length * max(_int(arg(0, "tabsize", 8)), 1)
    if name == "replace":
        return _replace_size(owner, arg(0, "old"), arg(1, "new"), _int(arg(2, "count", -1), -1))
    if name == "translate":
        table = arg(0, "table")
        longest = 1
        if isinstance(table, Mapping):
            longest = max(
                (len(v) for v in table.values() if isinstance(v, (str, bytes))), default=1
            )
        return length * max(longest, 1)
    return None


def _replace_size(text: Any, old: Any, new: Any, count: int | None) -> int:
    if not isinstance(old, type(text)) or not isinstance(new, type(text)):
        return len(text)  # the call itself rejects the wrong types
    occurrences = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * len(new)


# -- the environment ----------------------------------------------------------------------------


class _Clock:
    """The deadline of the evaluations on one thread (see BoundedSandbox.bounded)."""

    __slots__ = ("_state", "_owner")

    def __init__(self, state: threading.local):
        self._state = state
        self._owner = False

    def __enter__(self) -> None:
        state = self._state
        if getattr(state, "deadline", None) is not None:
            return
        now = time.monotonic()
        spent, count = getattr(state, "spent", 0.0), getattr(state, "count", 0)
        if spent > TOTAL_TIME_BASE + TOTAL_TIME_PER_VALUE * count:
            raise TemplateLimit(
                f"templates took {spent:.0f}s for {count:,} values, far beyond what templates need"
            )
        state.deadline = now + TIME_LIMIT
        state.started = now
        self._owner = True

    def __exit__(self, *exc_info: object) -> None:
        if self._owner:
            state = self._state
            state.deadline = None
            state.spent = getattr(state, "spent", 0.0) + time.monotonic() - state.started
            state.count = getattr(state, "count", 0) + 1


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja2's compiler with `~` and `for` routed through the environment's bounds."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 - Jinja2's name
        self.write("environment.concat_parts((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("), context.eval_ctx.autoescape)")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:  # noqa: N802 - Jinja2's name
        # a copy: the caller's tree stays as parsed (the receiver template check reads it)
        bounded = copy.copy(node)
        bounded.iter = nodes.Call(
            nodes.EnvironmentAttribute("bounded_loop", lineno=node.lineno),
            [node.iter],
            [],
            None,
            None,
            lineno=node.lineno,
        ).set_environment(self.environment)
        super().visit_For(bounded, frame)


class _BoundedFormatting:
    """str.format with each field's width and the whole result bounded."""

    _env: Any

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._produced = len(format_string)
        return super().vformat(format_string, args, kwargs)  # type: ignore[misc]

    def format_field(self, value: Any, format_spec: str) -> Any:
        self._env.tick()
        check_size(_spec_width(format_spec), "a format field")
        check_value(value, "a formatted value")
        result = super().format_field(value, format_spec)  # type: ignore[misc]
        self._produced += len(result)
        check_size(self._produced, "the formatted text")
        return result


class _BoundedFormatter(_BoundedFormatting, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_BoundedFormatting, SandboxedEscapeFormatter):
    pass


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the bounds of this module's docstring.

    Evaluate inside `with environment.bounded():` for the time limit; sizes are always bounded.
    Constant folding is off: it would evaluate expressions while a template is only compiled
    (a syntax check), outside any time limit.
    """

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def __init__(self, **options: Any):
        super().__init__(optimized=False, finalize=self._finalize, **options)
        self._clock = threading.local()
        self.globals["lipsum"] = self._lipsum
        self.filters["sum"] = _bounded_sum
        self.filters = {name: self._bounded_filter(name, f) for name, f in self.filters.items()}

    # The deadline --------------------------------------------------------------------------

    def bounded(self) -> _Clock:
        """`with environment.bounded():` evaluations inside share one TIME_LIMIT (nested
        ones keep the outer deadline)."""
        return _Clock(self._clock)

    def tick(self) -> None:
        deadline = getattr(self._clock, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            raise TemplateLimit(f"it ran for more than {TIME_LIMIT:g}s")

    def bounded_loop(self, iterable: Any) -> Iterator[Any]:
        for item in iterable:
            self.tick()
            yield item

    # Hooks of the sandbox -------------------------------------------------------------------

    def getattr(self, obj: Any, attribute: str) -> Any:
        self.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        __self.tick()
        if getattr(__obj, "__name__", "") == "join" and isinstance(
            getattr(__obj, "__self__", None), (str, bytes)
        ):
            args = (__self._joined_items(__obj.__self__, *args),)
        else:
            size = _method_result_size(__obj, args, kwargs)
            if size is not None:
                check_size(size, f"the result of {__obj.__name__}()")
        return check_value(super().call(__context, __obj, *args, **kwargs), "a call's result")

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        self.tick()
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, bytes, list, tuple)) and isinstance(count, int):
                    check_size(value_size(sequence) * max(count, 0), "the result of '*'")
        elif operator == "**":
            self._check_power(left, right)
        elif operator == "%" and isinstance(left, (str, bytes)):
            check_size(_printf_size(left, right), "the result of '%'")
        result = super().call_binop(context, operator, left, right)
        return check_value(result, f"the result of '{operator}'")

    def concat_parts(self, parts: tuple[Any, ...], autoescape: bool) -> str:
        """`a ~ b ~ c`"""
        self.tick()
        check_size(sum(_text_size(part) for part in parts), "the result of '~'")
        return markup_join(parts) if autoescape else str_join(parts)

    def concat(self, pieces: Any) -> str:  # type: ignore[override] # Jinja2's output joiner
        if isinstance(pieces, list):  # a buffer: its pieces exist already
            check_size(sum(map(len, pieces)), "the rendered text")
            return "".join(pieces)
        collected: list[str] = []
        size = 0
        for piece in pieces:  # a generator: loops producing it check the deadline
            size += len(piece)
            if size > MAX_SIZE:
                check_size(size, "the rendered text")
            collected.append(piece)
        return "".join(collected)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        owner = value.__self__
        formatter: SandboxedFormatter = (
            _BoundedEscapeFormatter(self, escape=owner.escape)
            if isinstance(owner, Markup)
            else _BoundedFormatter(self)
        )
        is_format_map = value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one mapping")
                args, kwargs = (), args[0]
            return type(owner)(formatter.vformat(owner, args, kwargs))

        return functools.update_wrapper(bounded_format, value)

    def _finalize(self, value: Any) -> Any:
        """What `{{ ... }}` prints, before it becomes text."""
        return check_value(value, "the printed value")

    # Helpers ----------------------------------------------------------------------------------

    def _check_power(self, base: Any, exponent: Any) -> None:
        if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
            return  # floats overflow (OverflowError) or give inf; negative powers give floats
        bits = max(abs(base).bit_length() - 1, 0) * exponent
        if abs(base) > 1 and bits > MAX_INT_BITS:
            raise TemplateLimit(
                f"the result of '**' would be an integer of more than {MAX_INT_BITS:,} bits"
            )

    def _joined_items(self, separator: Any, items: Any = (), *rest: Any) -> list[Any]:
        """The items of `separator.join(items)`, after checking the size of the result."""
        collected = []
        size = 0
        for item in items:
            self.tick()
            size += _text_size(item) + len(separator)
            check_size(size, "the result of join()")
            collected.append(item)
        if rest:
            raise TypeError("join() takes exactly one argument")
        return collected

    def _lipsum(self, n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002 - Jinja2's names
        # A lorem ipsum word is at most 12 characters with its separator.
        check_size(_int(n) * _int(max) * 12, "the result of lipsum()")
        return generate_lorem_ipsum(n, html, min, max)

    def _bounded_filter(self, name: str, function: Any) -> Any:
        takes_context = getattr(function, "jinja_pass_arg", None) is not None
        first = 1 if takes_context else 0
        before = _FILTER_CHECKS.get(name)

        @functools.wraps(function)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self.tick()
            if len(args) > first:
                check_value(args[first], f"the value given to |{name}")
            if before is not None:
                args = before(self, _Arguments(args[first:], kwargs), args[:first]) or args
            return check_value(function(*args, **kwargs), f"the result of |{name}")

        return bounded


class _Arguments:
    """A filter's arguments after its context argument: value first, then the parameters."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.args = args
        self.kwargs = kwargs

    def get(self, position: int, keyword: str, default: Any = None) -> Any:
        if len(self.args) > position:
            return self.args[position]
        return self.kwargs.get(keyword, default)


def _check_center(env: BoundedSandbox, a: _Arguments, _: tuple[Any, ...]) -> None:
    check_size(max(_text_size(a.get(0, "value", "")), _int(a.get(1, "width", 80))), "|center")


def _check_indent(env: BoundedSandbox, a: _Arguments, _: tuple[Any, ...]) -> None:
    text, width = a.get(0, "s", ""), a.get(1, "width", 4)
    per_line = len(width) if isinstance(width, str) else _int(width)
    lines = str(text).count("\n") + 1
    check_size(_text_size(text) + lines * per_line, "|indent")


def _check_wordwrap(env: BoundedSandbox, a: _Arguments, _: tuple[Any, ...]) -> None:
    wrapstring = a.get(3, "wrapstring") or "\n"
    check_size(_text_size(a.get(0, "s", "")) * (1 + len(str(wrapstring))), "|wordwrap")


def _check_replace(env: BoundedSandbox, a: _Arguments, _: tuple[Any, ...]) -> None:
    text = str(a.get(0, "s", ""))
    count = a.get(3, "count")
    size = _replace_size(text, str(a.get(1, "old", "")), str(a.get(2, "new", "")), count)
    check_size(size, "|replace")


def _check_format(env: BoundedSandbox, a: _Arguments, _: tuple[Any, ...]) -> None:
    values = a.kwargs or tuple(a.args[1:])
    check_size(_printf_size(str(a.get(0, "value", "")), values), "|format")


def _check_count(position: int, keyword: str) -> Any:
    def check(env: BoundedSandbox, a: _Arguments, _: tuple[Any, ...]) -> None:
        if _int(a.get(position, keyword, 1)) > MAX_COUNT:
            raise TemplateLimit(f"{keyword} is more than {MAX_COUNT:,}")

    return check


def _check_join(env: BoundedSandbox, a: _Arguments, context: tuple[Any, ...]) -> tuple[Any, ...]:
    """The items are read once, here: the filter gets them as a list."""
    separator = str(a.get(1, "d", ""))
    items = env._joined_items(separator, a.get(0, "value", ()))
    return (*context, items, *a.args[1:])


_FILTER_CHECKS = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": _check_replace,
    "format": _check_format,
    "batch": _check_count(1, "linecount"),
    "slice": _check_count(1, "slices"),
    "join": _check_join,
}


@pass_environment
def _bounded_sum(
    environment: BoundedSandbox, iterable: Any, attribute: Any = None, start: Any = 0
) -> Any:
    """Jinja2's `sum`, one checked '+' at a time: summing lists repeats '+' in C otherwise."""
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    total = start
    for item in environment.bounded_loop(iterable):
        total = environment.call_binop(None, "+", total, item)  # type: ignore[arg-type]
    return total


class _LazyContext(Context):
    """Renders a variable's own templates when a template uses it."""

    def resolve_or_missing(self, key: str) -> Any:
        value = super().resolve_or_missing(key)
        templater = getattr(self.environment, "templater", None)
        if templater is None or value is missing or key in self.vars:
            return value
        return templater.resolve_variable(key, value, self.parent)


class SandboxEnvironment(BoundedSandbox):
    """The playbook's environment: strict about undefined names, variables rendered lazily."""

    context_class = _LazyContext

    def __init__(self, templater: Templater | None):
        super().__init__(undefined=_StrictUndefined, keep_trailing_newline=True, autoescape=False)
        self.templater = templater
        self.filters["bool"] = self._bounded_filter("bool", parse_bool)


@functools.lru_cache(maxsize=1)
def syntax_environment() -> SandboxEnvironment:
    """An environment for syntax checks only (no Templater behind it)."""
    return SandboxEnvironment(templater=None)
