"""Receivers: one module per kind, all with one signature (like blackbox_exporter's one
prober per file).

Each module `checkrunner.alerting.receivers.<kind>` defines:

- ``KIND``: the kind; the playbook key is ``f"{KIND}_configs"`` inside a receiver.
- ``SEND_RESOLVED_DEFAULT``: Alertmanager's per-type default of ``send_resolved``.
- ``RATE_LIMIT``: ``(N, window_seconds)``, at most N messages per window per destination,
  or None.
- ``KEEPS_ALERTS``: False for a receiver told through the notification log (new alerts,
  resolved ones, repeat_interval); True for one that keeps alerts itself and forgets those not
  re-sent (Alertmanager): every run sends it every firing alert its route matches, muted
  ones annotated ``muted_by``, and the interval observed between runs.
- ``OPTIONS``: the argument spec, as check modules'; ``"secret": True`` marks options that
  hold secrets, ``"template": True`` the Jinja2 templates rendered per notification (the
  loader must leave those unrendered).
- ``REQUIRED_ONE_OF`` / ``MUTUALLY_EXCLUSIVE``: option groups, as check modules'.
- ``destination(config) -> str``: a stable key of the destination, never the secret.
- ``render(config, notification) -> list[dict]``: pure; the payloads, one per message.
- ``send(config, payload, timeout) -> Delivery``: one attempt, with I/O.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from checkrunner.alerting.receivers.base import Delivery, redact_url, with_defaults
from checkrunner.errors import RenderError

_MODULES = (
    "webhook",
    "wecom",
    "dingtalk",
    "feishu",
    "slack",
    "email",
    "alertmanager",
    "apprise",
)

RECEIVERS: dict[str, ModuleType] = {}
for _name in _MODULES:
    _module = importlib.import_module(f"{__name__}.{_name}")
    RECEIVERS[_module.KIND] = _module


def kinds() -> list[str]:
    """Every kind, in the order the docs list them."""
    return list(RECEIVERS)


def get(kind: str) -> ModuleType:
    """The module of a kind; KeyError naming the known kinds otherwise."""
    try:
        return RECEIVERS[kind]
    except KeyError:
        raise KeyError(f"unknown receiver kind {kind!r}; known: {', '.join(RECEIVERS)}") from None


def config_key(kind: str) -> str:
    """The playbook key of a kind inside a receiver: wecom -> wecom_configs."""
    return f"{kind}_configs"


__all__ = [
    "RECEIVERS",
    "Delivery",
    "RenderError",
    "config_key",
    "get",
    "kinds",
    "redact_url",
    "with_defaults",
]
