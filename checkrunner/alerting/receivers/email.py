"""Email through an SMTP smarthost, as Alertmanager's email receiver: STARTTLS (required by
default) or implicit TLS, AUTH when a user name is set, a text and an HTML part."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from checkrunner.alerting.model import Notification
from checkrunner.alerting.receivers import format as fmt
from checkrunner.alerting.receivers.base import (
    TIMEOUT_OPTION,
    TLS_CONFIG_OPTION,
    Delivery,
    describe_network_error,
    digest,
    scrubbed,
    send_resolved_option,
    short_body,
    ssl_context,
    template_option,
    with_defaults,
)
from checkrunner.errors import RenderError

KIND = "email"
SEND_RESOLVED_DEFAULT = False  # as Alertmanager's email receiver
RATE_LIMIT: tuple[int, float] | None = None
KEEPS_ALERTS = False  # told through the notification log: new, resolved, repeat_interval
IMPLICIT_TLS_PORT = 465

OPTIONS: dict[str, dict[str, Any]] = {
    "to": {
        "type": "list",
        "elements": "str",
        "required": True,
        "description": "Recipients: a list, or one string with commas between addresses.",
    },
    "from": {
        "type": "str",
        "required": True,
        "description": "Sender address, e.g. 'checkrun <alerts@example.com>'.",
    },
    "smarthost": {
        "type": "str",
        "required": True,
        "description": "SMTP server as host:port (port 25 when left out; 465 means "
        "implicit TLS unless `tls` says otherwise).",
    },
    "hello": {
        "type": "str",
        "default": "localhost",
        "description": "Host name sent in EHLO.",
    },
    "auth_username": {"type": "str", "description": "User name for SMTP AUTH (none: no AUTH)."},
    "auth_password": {
        "type": "str",
        "secret": True,
        "description": "Password for SMTP AUTH.",
    },
    "auth_password_file": {
        "type": "str",
        "description": "File holding the AUTH password (read at each send), instead of "
        "auth_password.",
    },
    "require_tls": {
        "type": "bool",
        "default": True,
        "description": "Upgrade the connection with STARTTLS, and fail when the server does "
        "not offer it (ignored with implicit TLS).",
    },
    "tls": {
        "type": "bool",
        "description": "Implicit TLS from the first byte (SMTPS); default: only on port 465.",
    },
    "tls_config": TLS_CONFIG_OPTION,
    "headers": {
        "type": "dict",
        "default": {},
        "description": "Extra mail headers; a Subject here wins over `subject`.",
    },
    "subject": template_option(
        "Jinja2 template of the subject; default like '[FIRING:2] disk full (web)'."
    ),
    "text": template_option(
        "Jinja2 template of the plain-text part; default the title and a line "
        "per alert; '' for no text part."
    ),
    "html": template_option(
        "Jinja2 template of the HTML part (autoescaped); default a table of "
        "the alerts; '' for no HTML part."
    ),
    "send_resolved": send_resolved_option(SEND_RESOLVED_DEFAULT),
    "timeout": TIMEOUT_OPTION,
}
REQUIRED_ONE_OF: list[list[str]] = []
MUTUALLY_EXCLUSIVE = [["auth_password", "auth_password_file"]]


def recipients(config: Mapping[str, Any]) -> list[str]:
    to = config.get("to") or []
    if isinstance(to, str):
        to = [to]
    return [address.strip() for item in to for address in str(item).split(",") if address.strip()]


def destination(config: Mapping[str, Any]) -> str:
    return digest(KIND, str(config.get("smarthost") or ""), *sorted(recipients(config)))


def render(config: Mapping[str, Any], notification: Notification) -> list[dict[str, Any]]:
    """One payload: {subject, text, html, to, from, headers}; text or html may be ''."""
    config = with_defaults(OPTIONS, config)
    to = recipients(config)
    if not to:
        raise RenderError("the email receiver needs at least one address in `to`")
    variables = fmt.template_vars(notification)
    subject = fmt.title(notification)
    if config.get("subject"):
        subject = fmt.render_template(config["subject"], variables, "subject")
    subject = " ".join(subject.split())  # no line breaks in a header
    if config.get("text") is None:
        text = fmt.text(notification)
    else:
        text = fmt.render_template(config["text"], variables, "text") if config["text"] else ""
    if config.get("html") is None:
        html = fmt.html(notification)
    elif config["html"]:
        html = fmt.render_template(config["html"], variables, "html", autoescape=True)
    else:
        html = ""
    if not text and not html:
        raise RenderError("the email receiver has neither a text nor an HTML part to send")
    return [
        {
            "subject": subject,
            "text": text,
            "html": html,
            "to": to,
            "from": config["from"],
            "headers": {str(k): str(v) for k, v in (config.get("headers") or {}).items()},
        }
    ]


def build_message(payload: Mapping[str, Any]) -> Any:
    """The MIME message (an EmailMessage): multipart/alternative when both parts are there."""
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid, parseaddr

    message = EmailMessage()
    message["From"] = payload["from"]
    message["To"] = ", ".join(payload["to"])
    message["Subject"] = payload["subject"]
    message["Date"] = formatdate(localtime=True)
    domain = parseaddr(payload["from"])[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    for name, value in (payload.get("headers") or {}).items():
        del message[name]
        message[name] = value
    if payload.get("text"):
        message.set_content(payload["text"])
        if payload.get("html"):
            message.add_alternative(payload["html"], subtype="html")
    else:
        message.set_content(payload["html"], subtype="html")
    return message


def _host_port(smarthost: str) -> tuple[str, int]:
    host, _, port = smarthost.rpartition(":")
    if not host or not port.isdigit():
        return smarthost.strip("[]"), 25
    return host.strip("[]"), int(port)


def _smtp_reply(code: int, message: bytes | str) -> str:
    return f"{code} {short_body(message)}"


def _by_code(code: int, what: str) -> Delivery:
    """4xx SMTP replies are temporary (retry), 5xx permanent."""
    if 400 <= code < 500:
        return Delivery.retry(what)
    return Delivery.fail(what)


def send(config: Mapping[str, Any], payload: Mapping[str, Any], timeout: float) -> Delivery:
    config = with_defaults(OPTIONS, config)
    password = config.get("auth_password")
    if config.get("auth_password_file") and not password:
        try:
            password = Path(config["auth_password_file"]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            return Delivery.fail(f"cannot read auth_password_file: {exc.strerror or exc}")
    delivery = _send(config, payload, timeout, password)
    return scrubbed(delivery, OPTIONS, {**config, "auth_password": password})


def _send(
    config: dict[str, Any], payload: Mapping[str, Any], timeout: float, password: str | None
) -> Delivery:
    import smtplib  # here, not at the top: only sending needs them
    import socket
    import ssl
    from email.utils import getaddresses, parseaddr

    host, port = _host_port(str(config["smarthost"]))
    where = f"smtp://{host}:{port}"
    implicit = config["tls"] if config.get("tls") is not None else port == IMPLICIT_TLS_PORT
    try:
        context = ssl_context(config.get("tls_config"))
    except (OSError, ValueError) as exc:
        return Delivery.fail(f"{where}: bad tls_config ({describe_network_error(exc)})")
    envelope_from = parseaddr(payload["from"])[1] or payload["from"]
    envelope_to = [address for _, address in getaddresses(payload["to"]) if address]
    stage = "connect"
    smtp: Any = None
    try:
        if implicit:
            where = f"smtps://{host}:{port}"
            smtp = smtplib.SMTP_SSL(
                host, port, local_hostname=config["hello"], timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(host, port, local_hostname=config["hello"], timeout=timeout)
        stage = "EHLO"
        smtp.ehlo()
        if not implicit and config["require_tls"]:
            if not smtp.has_extn("starttls"):
                return Delivery.fail(
                    f"{where}: the server does not offer STARTTLS (set require_tls: false "
                    "to send without TLS, or tls: true for implicit TLS)"
                )
            stage = "STARTTLS"
            smtp.starttls(context=context)
            smtp.ehlo()
        if config.get("auth_username"):
            stage = "AUTH"
            smtp.login(config["auth_username"], password or "")
        stage = "send"
        refused = smtp.send_message(
            build_message(payload), from_addr=envelope_from, to_addrs=envelope_to
        )
    except smtplib.SMTPRecipientsRefused as exc:
        replies = sorted({_smtp_reply(code, text) for code, text in exc.recipients.values()})
        codes = [code for code, _ in exc.recipients.values()]
        temporary = any(400 <= code < 500 for code in codes)
        what = f"{where}: every recipient refused: {'; '.join(replies)}"
        return Delivery.retry(what) if temporary else Delivery.fail(what)
    except smtplib.SMTPNotSupportedError as exc:
        return Delivery.fail(f"{where}: {stage}: not supported by the server ({exc})")
    except smtplib.SMTPResponseException as exc:
        return _by_code(
            exc.smtp_code, f"{where}: {stage}: {_smtp_reply(exc.smtp_code, exc.smtp_error)}"
        )
    except smtplib.SMTPServerDisconnected:
        return Delivery.retry(f"{where}: {stage}: the server closed the connection")
    except (OSError, socket.timeout, ssl.SSLError, smtplib.SMTPException) as exc:
        return Delivery.retry(f"{where}: {stage}: {describe_network_error(exc)}")
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    if refused:
        partly = "; ".join(
            f"{address}: {_smtp_reply(*reply)}" for address, reply in refused.items()
        )
        return Delivery.success(f"{where}: sent, but some recipients were refused: {partly}")
    return Delivery.success(f"{where}: sent to {len(envelope_to)} recipient(s)")
