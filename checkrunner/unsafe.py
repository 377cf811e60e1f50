"""Ansible's `!unsafe` YAML tag: text that is data, never a template.

Users keep Alertmanager and Prometheus templates (`{{ $labels.instance }} down`) in their
variables this way. The tag makes every string under it an `UnsafeText`; `is_templated` says
no to those, so no pass (syntax check, rendering, a variable used inside another template)
ever reads them as Jinja2. They are `str` for everything else.
"""

from __future__ import annotations

from typing import Any

UNSAFE_TAG = "!unsafe"


class UnsafeText(str):
    """A string written under `!unsafe`."""

    __slots__ = ()


def mark_unsafe(value: Any) -> Any:
    """Every string in `value` (a freshly loaded scalar, mapping or list) as UnsafeText; the
    containers are changed in place, so the marks the YAML loader put on them stay."""
    if isinstance(value, str):
        return value if isinstance(value, UnsafeText) else UnsafeText(value)
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = mark_unsafe(item)
    elif isinstance(value, list):
        value[:] = [mark_unsafe(item) for item in value]
    return value
