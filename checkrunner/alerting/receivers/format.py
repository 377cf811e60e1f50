"""How a notification reads as text, markdown and HTML; user templates; byte-exact splitting.

The title follows Alertmanager's default: "[FIRING:3] disk full (web)" names the status,
how many alerts fire, the group's label values and, in parentheses, the host they share.
Then one line per alert: host, severity, message, value and what the check's handler did
("app health CRITICAL → restarted app.service → OK after 4.2 s"); resolved alerts after.

User templates (`title`, `message`, a webhook's `payload`, ...) are Jinja2, rendered in an
immutable sandbox with StrictUndefined. Their variables are the fields of Alertmanager's
webhook payload (version, groupKey, status, receiver, groupLabels, commonLabels,
commonAnnotations, externalURL, truncatedAlerts, alerts as dicts) plus `firing` and
`resolved` (the alerts by status), `test` (a `checkrun notify --test` message), and
`default_title` / `default_text` (what the receiver sends without a template).
"""

from __future__ import annotations

import functools
import html as html_lib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from checkrunner.alerting.model import Alert, Notification
from checkrunner.errors import RenderError
from checkrunner.unsafe import UnsafeText

TEST_TITLE = "[TEST] checkrunner test notification"
TEST_LINE = "This is a test notification sent by `checkrun notify --test`: no action is needed."

_SEVERITY_ORDER = {"critical": 0, "warning": 1, "unknown": 2}


# ----------------------------------------------------------------------------- titles and lines


def title(notification: Notification) -> str:
    """ "[FIRING:3] disk full (web)", "[RESOLVED] disk full", or the test title."""
    if notification.test:
        return f"{TEST_TITLE} for receiver {notification.receiver}"
    firing = notification.firing
    status = f"FIRING:{len(firing)}" if firing else "RESOLVED"
    name = " ".join(v for _, v in sorted(notification.group_labels.items()) if v)
    common = notification.common_labels
    if not name:
        names = sorted({a.name for a in notification.alerts if a.name})
        name = names[0] if len(names) == 1 else f"{len(notification.alerts)} alerts"
    host = common.get("host", "")
    shown = f"[{status}] {name}"
    if host and host not in notification.group_labels.values():
        shown += f" ({host})"
    return shown


def _alert_parts(alert: Alert, notification: Notification) -> tuple[str, str, str]:
    """(who: host and the check name when the group mixes checks, severity, what)."""
    names = {a.name for a in notification.alerts}
    who = alert.labels.get("host", "") or alert.name or "?"
    if len(names) > 1 and alert.name and alert.name != who:
        who = f"{who} {alert.name}"
    severity = alert.labels.get("severity", "")
    what = alert.annotations.get("message") or alert.annotations.get("summary") or ""
    value = alert.annotations.get("value", "")
    if value and value not in what:
        what = f"{what} (value {value})" if what else f"value {value}"
    remediation = alert.annotations.get("remediation", "")
    if remediation:  # what the check's handler did: "app health CRITICAL → restarted ..."
        what = f"{what}; {remediation}" if what else remediation
    if alert.status == "resolved" and alert.ends_at is not None and alert.starts_at:
        what = f"{what} — resolved after {_duration(alert.ends_at - alert.starts_at)}".lstrip(" —")
    return who, severity, what


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    if not parts:
        parts.append(f"{secs}s")
    return "".join(parts)


def _ordered(alerts: list[Alert]) -> list[Alert]:
    return sorted(
        alerts,
        key=lambda a: (
            _SEVERITY_ORDER.get(a.labels.get("severity", ""), 3),
            a.labels.get("host", ""),
            a.name,
        ),
    )


def _sections(notification: Notification) -> Iterator[tuple[str | None, list[Alert]]]:
    """(heading, alerts in order) for the firing, then the resolved alerts; the heading is
    None when the message holds one kind only and is no test (it would say nothing)."""
    firing, resolved = notification.firing, notification.resolved
    for heading, alerts in (("Firing", firing), ("Resolved", resolved)):
        if alerts:
            shown = heading if firing and resolved or notification.test else None
            yield shown, _ordered(alerts)


def text_lines(notification: Notification) -> list[str]:
    """The plain-text message without its title, a line each."""
    lines: list[str] = [TEST_LINE] if notification.test else []
    for heading, alerts in _sections(notification):
        if heading:
            lines.append(f"{heading}:")
        for alert in alerts:
            who, severity, what = _alert_parts(alert, notification)
            sev = f" [{severity}]" if severity else ""
            lines.append(f"- {who}{sev} {what}".rstrip())
    if notification.external_url:
        lines.append(notification.external_url)
    return lines


def body_text(notification: Notification) -> str:
    """The plain-text message without its title."""
    return "\n".join(text_lines(notification))


def text(notification: Notification) -> str:
    """The plain-text message: the title, then a line per alert."""
    return "\n".join([title(notification), *text_lines(notification)])


_MARKDOWN_COLORS = {"critical": "warning", "warning": "comment", "unknown": "comment"}


def markdown_lines(notification: Notification, flavor: str = "markdown") -> list[str]:
    """The message as markdown without its title, a line each. flavor: "markdown"
    (DingTalk, Feishu cards: **bold**), "wecom" (markdown plus WeCom's <font color>),
    "slack" (mrkdwn)."""
    bold = bold_for(flavor)
    lines: list[str] = [TEST_LINE] if notification.test else []
    for heading, alerts in _sections(notification):
        if heading:
            lines.append(bold(heading))
        for alert in alerts:
            who, severity, what = _alert_parts(alert, notification)
            if severity and flavor == "wecom" and alert.status == "firing":
                severity = (
                    f'<font color="{_MARKDOWN_COLORS.get(severity, "comment")}">{severity}</font>'
                )
            elif severity and flavor == "wecom":
                severity = f'<font color="info">{severity}</font>'
            sev = f" {severity}" if severity else ""
            lines.append(f"- {bold(who)}{sev} {what}".rstrip())
    if notification.external_url:
        url = notification.external_url
        lines.append(f"<{url}|details>" if flavor == "slack" else f"[details]({url})")
    return lines


def bold_for(flavor: str) -> Callable[[str], str]:
    if flavor == "slack":
        return lambda s: f"*{s}*"
    return lambda s: f"**{s}**"


def body_markdown(notification: Notification, flavor: str = "markdown") -> str:
    """The markdown message without its title."""
    return "\n".join(markdown_lines(notification, flavor))


def markdown(notification: Notification, flavor: str = "markdown") -> str:
    """The markdown message: the title in bold, then a line per alert."""
    return "\n".join([bold_for(flavor)(title(notification)), *markdown_lines(notification, flavor)])


def html(notification: Notification) -> str:
    """A small self-contained HTML body for email."""
    esc = html_lib.escape
    color = "#c0392b" if notification.firing else "#27ae60"
    if notification.test:
        color = "#2c3e50"
    parts = [
        "<!DOCTYPE html>",
        '<html><body style="font-family: sans-serif">',
        f'<h2 style="color: {color}">{esc(title(notification))}</h2>',
    ]
    if notification.test:
        parts.append(f"<p>{esc(TEST_LINE)}</p>")
    for heading, alerts in (("Firing", notification.firing), ("Resolved", notification.resolved)):
        if not alerts:
            continue
        parts.append(f"<h3>{heading}</h3>")
        parts.append('<table cellpadding="4" style="border-collapse: collapse">')
        parts.append(
            "<tr><th align=left>host</th><th align=left>severity</th>"
            "<th align=left>check</th><th align=left>message</th></tr>"
        )
        for alert in _ordered(alerts):
            _, severity, what = _alert_parts(alert, notification)
            parts.append(
                "<tr>"
                f"<td>{esc(alert.labels.get('host', ''))}</td>"
                f"<td>{esc(severity)}</td>"
                f"<td>{esc(alert.name)}</td>"
                f"<td>{esc(what)}</td>"
                "</tr>"
            )
        parts.append("</table>")
    if notification.external_url:
        url = esc(notification.external_url, quote=True)
        parts.append(f'<p><a href="{url}">{url}</a></p>')
    parts.append("</body></html>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- splitting


def utf8_size(char: str) -> int:
    return len(char.encode("utf-8"))


@functools.lru_cache(maxsize=8192)
def json_string_size(char: str) -> int:
    """Bytes a character takes inside a JSON string sent as UTF-8 (escapes counted)."""
    return len(json.dumps(char, ensure_ascii=False).encode("utf-8")) - 2


def split_by_bytes(text: str, limit: int, *, size: Callable[[str], int] = utf8_size) -> list[str]:
    """`text` cut into pieces of at most `limit` bytes (UTF-8 by default), at line
    boundaries; a line that alone is longer is cut mid-line, between characters (never
    inside one). The newline between two pieces is dropped: when no line alone is over
    the limit, "\\n".join(pieces) == text (a line cut mid-way goes on at the start of the
    next piece). `size` gives a character's byte cost (json_string_size counts JSON
    escapes)."""
    if limit < 4:
        raise ValueError("a byte limit below 4 cannot hold every UTF-8 character")
    newline = size("\n")
    pieces: list[str] = []
    current: list[str] = []
    current_size = 0
    for line in text.split("\n"):
        line_size = sum(size(c) for c in line)
        joiner = newline if current else 0
        if current and current_size + joiner + line_size <= limit:
            current.append(line)
            current_size += joiner + line_size
            continue
        if current:
            pieces.append("\n".join(current))
            current, current_size = [], 0
        if line_size <= limit:
            current, current_size = [line], line_size
            continue
        chunks = _cut_line(line, limit, size)
        pieces.extend(chunks[:-1])
        current, current_size = [chunks[-1]], sum(size(c) for c in chunks[-1])
    if current or not pieces:
        pieces.append("\n".join(current))
    return pieces


def _cut_line(line: str, limit: int, size: Callable[[str], int]) -> list[str]:
    chunks: list[str] = []
    start, used = 0, 0
    for index, char in enumerate(line):
        cost = size(char)
        if used + cost > limit:
            chunks.append(line[start:index])
            start, used = index, 0
        used += cost
    chunks.append(line[start:])
    return chunks


# ----------------------------------------------------------------------------- templates


@functools.lru_cache(maxsize=2)
def sandbox(autoescape: bool) -> Any:
    """The playbook's bounded, immutable Jinja2 sandbox with StrictUndefined (Jinja2 is
    imported only when a receiver has a template)."""
    from jinja2 import StrictUndefined

    from checkrunner.config.jinja_sandbox import BoundedSandbox

    return BoundedSandbox(
        undefined=StrictUndefined, autoescape=autoescape, keep_trailing_newline=False
    )


@functools.lru_cache(maxsize=256)
def _compile(source: str, autoescape: bool) -> Any:
    return sandbox(autoescape).from_string(source)


def template_vars(notification: Notification, max_alerts: int = 0) -> dict[str, Any]:
    """The variables of a user template (see the module docstring)."""
    data = notification.to_webhook(max_alerts)
    alerts = data["alerts"]
    data.update(
        firing=[a for a in alerts if a["status"] == "firing"],
        resolved=[a for a in alerts if a["status"] == "resolved"],
        test=notification.test,
        default_title=title(notification),
        default_text=text(notification),
    )
    return data


def render_template(
    source: str,
    variables: Mapping[str, Any],
    option: str,
    *,
    autoescape: bool = False,
) -> str:
    """A user template rendered; RenderError names the option on any failure (undefined
    variable, unsafe attribute, syntax error). Text written `!unsafe` is sent as written."""
    if isinstance(source, UnsafeText):
        return str(source)
    try:
        with sandbox(autoescape).bounded():
            return _compile(source, autoescape).render(dict(variables))
    except RenderError as exc:
        raise RenderError(f"template of option '{option}': {exc}") from None
    except Exception as exc:  # TemplateError (syntax, undefined, SecurityError) and the
        # errors of filters or methods called on the wrong type
        raise RenderError(f"template of option '{option}': {type(exc).__name__}: {exc}") from None


def title_and_body(
    config: Mapping[str, Any],
    notification: Notification,
    *,
    default_body: Callable[[Notification], str],
    title_option: str = "title",
    body_option: str = "message",
) -> tuple[str, str]:
    """(title, body) from the receiver's `title` and `message` templates, or by default
    the title line and the alert lines (default_body: body_text, body_markdown, ...)."""
    variables: dict[str, Any] = {}
    if config.get(title_option) or config.get(body_option):
        variables = template_vars(notification)
    if config.get(title_option):
        shown_title = render_template(config[title_option], variables, title_option).strip()
    else:
        shown_title = title(notification)
    if config.get(body_option):
        body = render_template(config[body_option], variables, body_option)
    else:
        body = default_body(notification)
    return shown_title, body.strip("\n")


def im_title_and_body(
    config: Mapping[str, Any], notification: Notification, flavor: str = "markdown"
) -> tuple[str, str]:
    """title_and_body of an IM robot with a `msgtype`: plain text for "text", else markdown
    in `flavor`."""
    if config["msgtype"] == "text":
        return title_and_body(config, notification, default_body=body_text)
    return title_and_body(config, notification, default_body=lambda n: body_markdown(n, flavor))


def join(*parts: str) -> str:
    """Non-empty parts, a line each."""
    return "\n".join(p for p in parts if p)
