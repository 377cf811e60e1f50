"""Apprise URLs, for the long tail of services (pip install checkrunner[apprise]).

Apprise is imported only when a message is sent. It reports one yes/no for all its URLs,
without a reason, so a failure is taken as retryable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checkrunner.alerting.model import Notification
from checkrunner.alerting.receivers import format as fmt
from checkrunner.alerting.receivers.base import (
    TIMEOUT_OPTION,
    Delivery,
    digest,
    scrubbed,
    send_resolved_option,
    template_option,
    with_defaults,
)

KIND = "apprise"
SEND_RESOLVED_DEFAULT = True
RATE_LIMIT: tuple[int, float] | None = None
KEEPS_ALERTS = False  # told through the notification log: new, resolved, repeat_interval
MISSING = "the apprise receiver needs `pip install checkrunner[apprise]`"

OPTIONS: dict[str, dict[str, Any]] = {
    "urls": {
        "type": "list",
        "elements": "str",
        "required": True,
        "secret": True,
        "description": "Apprise URLs (mailto://, tgram://, msteams://, ...); each gets the "
        "message.",
    },
    "format": {
        "type": "str",
        "default": "text",
        "choices": ["text", "markdown"],
        "description": "Body format handed to apprise.",
    },
    "title": template_option(
        "Jinja2 template of the title; default like '[FIRING:2] disk full (web)'."
    ),
    "message": template_option("Jinja2 template of the body; default a line per alert."),
    "send_resolved": send_resolved_option(SEND_RESOLVED_DEFAULT),
    "timeout": {
        **TIMEOUT_OPTION,
        "description": "Not enforced here: apprise applies its plugins' own timeouts (set "
        "them per URL with ?cto=SECONDS&rto=SECONDS where the plugin takes them).",
    },
}
REQUIRED_ONE_OF: list[list[str]] = []
MUTUALLY_EXCLUSIVE: list[list[str]] = []


def destination(config: Mapping[str, Any]) -> str:
    return digest(KIND, *sorted(str(u) for u in config.get("urls") or []))


def render(config: Mapping[str, Any], notification: Notification) -> list[dict[str, Any]]:
    """One payload: {title, body, format}."""
    config = with_defaults(OPTIONS, config)
    markdown = config["format"] == "markdown"
    title, body = fmt.title_and_body(
        config,
        notification,
        default_body=fmt.body_markdown if markdown else fmt.body_text,
    )
    return [{"title": title, "body": body or title, "format": config["format"]}]


def send(config: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> Delivery:
    config = with_defaults(OPTIONS, config)
    return scrubbed(_send(config, payload), OPTIONS, config)


def _send(config: dict[str, Any], payload: Mapping[str, Any]) -> Delivery:
    try:
        import apprise
    except ImportError:
        return Delivery.fail(MISSING)
    urls = [str(u) for u in config.get("urls") or []]
    if not urls:
        return Delivery.fail("the apprise receiver needs at least one URL in `urls`")
    client = apprise.Apprise()
    for position, url in enumerate(urls, start=1):
        if not client.add(url):
            scheme = url.partition("://")[0] if "://" in url else "?"
            return Delivery.fail(f"apprise cannot use URL {position} ({scheme}://…)")
    body_format = (
        apprise.NotifyFormat.MARKDOWN
        if payload.get("format") == "markdown"
        else apprise.NotifyFormat.TEXT
    )
    try:
        sent = client.notify(body=payload["body"], title=payload["title"], body_format=body_format)
    except Exception as exc:  # a plugin's own bug must not stop the pipeline
        return Delivery.retry(f"apprise failed: {type(exc).__name__}")
    if sent:
        return Delivery.success(f"apprise: sent to {len(urls)} URL(s)")
    return Delivery.retry("apprise: at least one URL failed (apprise gives no reason; see its log)")
