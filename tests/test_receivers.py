"""Receivers against real local servers: the recording HTTP server (tests/recorder.py) for the
HTTP kinds, aiosmtpd for email (plain, STARTTLS, implicit TLS, AUTH), apprise's json://."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import json
import re
import socket
import sys
import time
from contextlib import contextmanager
from email.utils import format_datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from helpers_net import closed_port, make_pki, server_tls_context
from recorder import Recorder

from checkrunner.alerting import receivers
from checkrunner.alerting.model import ZERO_TIME, Alert, Notification, fingerprint, rfc3339
from checkrunner.alerting.receivers import alertmanager, dingtalk, feishu, slack, webhook, wecom
from checkrunner.alerting.receivers import apprise as apprise_receiver
from checkrunner.alerting.receivers import email as email_receiver
from checkrunner.alerting.receivers import format as fmt
from checkrunner.alerting.receivers.base import (
    REDACTED,
    Delivery,
    RenderError,
    parse_retry_after,
    redact_url,
    with_defaults,
)

T0 = 1_700_000_000.0
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"  # a WeCom-style key
TOKEN = "b0c2e6f0d3e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0"
SIGNING = "SEC7c5f0d4b2a9e8f1c3b6a5d4e7f8091a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8"
PASSWORD = "hunter2-Sm7p-pass"
WECOM_OK = {"errcode": 0, "errmsg": "ok"}
FEISHU_OK = {"code": 0, "msg": "success", "data": {}}
CJK = "磁盘空间不足，请尽快清理日志文件。数据库主机响应缓慢，已超过告警阈值"


def alert(
    host: str = "web1",
    severity: str = "critical",
    name: str = "disk full",
    message: str = "/ is 96% full",
    value: str = "96.2%",
    resolved: bool = False,
    **labels: str,
) -> Alert:
    return Alert(
        labels={"alertname": name, "host": host, "severity": severity, "play": "fleet", **labels},
        annotations={"message": message, "value": value},
        starts_at=T0,
        ends_at=T0 + 600 if resolved else None,
        generator_url="",
    )


def notification(*alerts: Alert, test: bool = False, receiver: str = "ops") -> Notification:
    alerts_list = list(alerts) if alerts or test else [alert()]
    return Notification(
        receiver=receiver,
        group_key='{}:{alertname="disk full"}',
        group_labels={"alertname": "disk full"} if alerts_list else {},
        alerts=alerts_list,
        external_url="",
        test=test,
    )


def send_all(module, config: dict, note: Notification, timeout: float = 5.0) -> list[Delivery]:
    return [module.send(config, payload, timeout) for payload in module.render(config, note)]


@pytest.fixture
def rec():
    with Recorder() as recorder:
        yield recorder


# ----------------------------------------------------------------------------- base helpers


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc",
            "https://qyapi.weixin.qq.com/cgi-bin/webhook/send",
        ),
        ("http://user:pw@example.com:8080/hook?x=1#frag", "http://example.com:8080/hook"),
        (
            "https://hooks.slack.com/services/T0AB/B0CD/" + "x1" * 12,
            f"https://hooks.slack.com/services/T0AB/B0CD/{REDACTED}",
        ),
        (
            f"https://open.feishu.cn/open-apis/bot/v2/hook/{KEY}",
            f"https://open.feishu.cn/open-apis/bot/v2/hook/{REDACTED}",
        ),
        ("http://[::1]:9093/api/v2/alerts", "http://[::1]:9093/api/v2/alerts"),
        ("not a url", REDACTED),
        ("http://host:notaport/x", REDACTED),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_url_without_path():
    assert redact_url(f"https://hooks.slack.com/services/{TOKEN}", keep_path=False) == (
        "https://hooks.slack.com/…"
    )
    assert redact_url("https://example.com/", keep_path=False) == "https://example.com"


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    now = time.time()
    date = format_datetime(dt.datetime.fromtimestamp(now + 30, tz=dt.timezone.utc), usegmt=True)
    assert 28 <= parse_retry_after(date, now=now) <= 31
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_with_defaults_coerces_and_fills_nested_defaults():
    config = with_defaults(webhook.OPTIONS, {"url": "http://x/", "timeout": "2s"})
    assert config["timeout"] == 2.0
    assert config["send_resolved"] is True
    assert config["max_alerts"] == 0
    assert config["tls_config"] == {
        "insecure_skip_verify": False,
        "ca_file": None,
        "cert_file": None,
        "key_file": None,
        "server_name": None,
        "min_version": None,
    }
    config = with_defaults(
        webhook.OPTIONS, {"url": "http://x/", "timeout": None, "tls_config": {"ca_file": "/ca"}}
    )
    assert config["timeout"] == 10.0
    assert config["tls_config"]["ca_file"] == "/ca"
    assert config["tls_config"]["insecure_skip_verify"] is False


# ----------------------------------------------------------------------------- format


def test_split_by_bytes_cjk_at_line_boundaries():
    lines = [f"{i:04d} {CJK}{'，' * (i % 7)}" for i in range(400)]
    text = "\n".join(lines)
    pieces = fmt.split_by_bytes(text, 4096)
    assert len(pieces) > 10
    for piece in pieces:
        raw = piece.encode("utf-8")
        assert len(raw) <= 4096
        assert raw.decode("utf-8") == piece
        assert not piece.startswith("\n") and not piece.endswith("\n")
    assert "\n".join(pieces) == text  # nothing lost, every line whole
    assert set("\n".join(pieces).split("\n")) == set(lines)


def test_split_by_bytes_cuts_an_overlong_line_between_characters():
    line = ("数据🚀a" * 3000)[:5000]  # 3-, 4- and 1-byte characters
    pieces = fmt.split_by_bytes(f"head\n{line}\ntail", 1000)
    assert pieces[0] == "head"
    assert "".join(pieces[1:]).endswith("tail")
    body = "".join(pieces[1:])
    assert body[: len(line)] == line
    for piece in pieces:
        assert len(piece.encode("utf-8")) <= 1000
        piece.encode("utf-8").decode("utf-8")  # whole characters only
    # pieces are filled: each but the last would overflow with the next character
    for piece, following in zip(pieces[1:-1], pieces[2:]):
        assert len(piece.encode()) + len(following[0].encode()) > 1000


def test_split_by_bytes_edges():
    assert fmt.split_by_bytes("", 10) == [""]
    assert fmt.split_by_bytes("abc", 10) == ["abc"]
    assert fmt.split_by_bytes("ab\ncd", 5) == ["ab\ncd"]
    assert fmt.split_by_bytes("ab\ncd", 4) == ["ab", "cd"]
    with pytest.raises(ValueError):
        fmt.split_by_bytes("abc", 3)


def test_split_by_json_size_counts_escapes():
    text = '"quoted"\\' * 300
    pieces = fmt.split_by_bytes(text, 500, size=fmt.json_string_size)
    assert "".join(pieces) == text
    for piece in pieces:
        assert len(json.dumps(piece, ensure_ascii=False).encode()) - 2 <= 500


def test_titles():
    assert (
        fmt.title(notification(alert("web1"), alert("web1", "warning")))
        == "[FIRING:2] disk full (web1)"
    )
    assert fmt.title(notification(alert("web1"), alert("web2"))) == "[FIRING:2] disk full"
    assert fmt.title(notification(alert("web1", resolved=True))) == "[RESOLVED] disk full (web1)"
    assert fmt.title(notification(alert("a"), alert("b", resolved=True))) == "[FIRING:1] disk full"
    test_note = notification(test=True, receiver="pager")
    assert fmt.title(test_note) == "[TEST] checkrunner test notification for receiver pager"
    assert "test notification" in fmt.text(test_note)
    assert "no action" in fmt.markdown(test_note)


def test_text_lists_host_severity_message_value_and_resolved_apart():
    note = notification(
        alert("web2", "warning", message="/var is 85% full", value="85%"),
        alert("web1", "critical"),
        alert("web3", resolved=True, message="/ was full"),
    )
    assert fmt.text(note).split("\n") == [
        "[FIRING:2] disk full",
        "Firing:",
        "- web1 [critical] / is 96% full (value 96.2%)",
        "- web2 [warning] /var is 85% full",  # the value is already in the message
        "Resolved:",
        "- web3 [critical] / was full (value 96.2%) — resolved after 10m",
    ]
    html = fmt.html(notification(alert(message="<script>x</script>")))
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_mixed_checks_name_the_check_per_line():
    note = notification(alert("web1", name="disk full"), alert("web1", name="load high"))
    note.group_labels = {}
    lines = fmt.text_lines(note)
    assert "- web1 disk full [critical] / is 96% full (value 96.2%)" in lines
    assert any(line.startswith("- web1 load high [critical]") for line in lines)


# ----------------------------------------------------------------------------- the registry


KINDS = ["webhook", "wecom", "dingtalk", "feishu", "slack", "email", "alertmanager", "apprise"]
EXPECTED = {
    "webhook": (True, None),
    "wecom": (False, (20, 60.0)),
    "dingtalk": (True, (20, 60.0)),
    "feishu": (True, (100, 60.0)),
    "slack": (False, (60, 60.0)),
    "email": (False, None),
    "alertmanager": (True, None),
    "apprise": (True, None),
}
SAMPLE_CONFIGS = {
    "webhook": {"url": f"https://example.com/hook?token={TOKEN}"},
    "wecom": {"key": KEY},
    "dingtalk": {"access_token": TOKEN, "secret": SIGNING},
    "feishu": {"url": f"https://open.feishu.cn/open-apis/bot/v2/hook/{KEY}", "secret": SIGNING},
    "slack": {"api_url": f"https://hooks.slack.com/services/T0/B0/{TOKEN}"},
    "email": {
        "to": ["ops@example.com"],
        "from": "cr@example.com",
        "smarthost": "mx:25",
        "auth_password": PASSWORD,
    },
    "alertmanager": {"urls": ["http://am1:9093", "http://am2:9093"]},
    "apprise": {"urls": [f"tgram://{TOKEN}/123"]},
}


def test_registry():
    assert receivers.kinds() == KINDS
    assert receivers.get("wecom") is wecom
    assert receivers.RECEIVERS["email"] is email_receiver
    assert receivers.config_key("wecom") == "wecom_configs"
    with pytest.raises(KeyError, match="known: webhook"):
        receivers.get("pagerduty")


@pytest.mark.parametrize("kind", KINDS)
def test_module_contract(kind):
    module = receivers.get(kind)
    assert kind == module.KIND
    send_resolved, rate = EXPECTED[kind]
    assert module.SEND_RESOLVED_DEFAULT is send_resolved
    assert rate == module.RATE_LIMIT
    options = module.OPTIONS
    assert options["send_resolved"] == {
        "type": "bool",
        "default": send_resolved,
        "description": options["send_resolved"]["description"],
    }
    assert options["timeout"]["type"] == "duration" and options["timeout"]["default"] == "10s"
    for name, spec in options.items():
        assert spec.get("type") in {
            "str",
            "int",
            "float",
            "bool",
            "duration",
            "size",
            "list",
            "dict",
            "raw",
        }, name
        assert spec.get("description"), name
        if spec.get("template"):
            assert spec["type"] == "str", name
    assert any(spec.get("secret") for spec in options.values())
    assert callable(module.destination) and callable(module.render) and callable(module.send)
    assert isinstance(module.REQUIRED_ONE_OF, list) and isinstance(module.MUTUALLY_EXCLUSIVE, list)
    for group in module.REQUIRED_ONE_OF + module.MUTUALLY_EXCLUSIVE:
        assert set(group) <= set(options)


@pytest.mark.parametrize("kind", KINDS)
def test_destination_is_stable_and_never_the_secret(kind):
    module = receivers.get(kind)
    config = SAMPLE_CONFIGS[kind]
    key = module.destination(config)
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert module.destination(dict(config)) == key
    for secret in (TOKEN, KEY, SIGNING, PASSWORD):
        assert secret not in key


def test_destination_keys_the_robot_not_the_form():
    assert wecom.destination({"key": KEY}) == wecom.destination(
        {"url": wecom.robot_url({"key": KEY})}
    )
    assert wecom.destination({"key": KEY}) != wecom.destination({"key": KEY + "x"})
    assert dingtalk.destination({"access_token": TOKEN}) == dingtalk.destination(
        {"url": f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"}
    )


@pytest.mark.parametrize("kind", KINDS)
def test_render_is_pure(kind, monkeypatch):
    module = receivers.get(kind)
    note = notification(alert("web1"), alert("web2", resolved=True))
    first = module.render(SAMPLE_CONFIGS[kind], note)

    def forbidden(*args, **kwargs):
        raise AssertionError("render must not use the clock or the network")

    monkeypatch.setattr(time, "time", forbidden)
    monkeypatch.setattr(socket, "socket", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    again = module.render(SAMPLE_CONFIGS[kind], note)
    assert again == first
    json.dumps(again)  # JSON-able, for the outbox


@pytest.mark.parametrize("kind", KINDS)
def test_test_notification_says_it_is_a_test(kind):
    payloads = receivers.get(kind).render(SAMPLE_CONFIGS[kind], notification(test=True))
    assert payloads
    if kind == "webhook":  # Alertmanager's JSON as it is: the alerts the test carries
        assert payloads[0]["body"]["alerts"] == []
        return
    rendered = json.dumps(payloads, ensure_ascii=False)
    assert "test notification" in rendered


def test_with_defaults_refuses_a_wrong_type():
    with pytest.raises(RenderError, match="option 'max_alerts'"):
        webhook.render({"url": "http://x/", "max_alerts": "many"}, notification())


# ----------------------------------------------------------------------------- HTTP status, all kinds


HTTP_KINDS = {
    "webhook": lambda rec: {"url": rec.url(f"/hook?token={TOKEN}")},
    "wecom": lambda rec: {"url": rec.url(f"/hook?key={KEY}")},
    "dingtalk": lambda rec: {"url": rec.url(f"/hook?access_token={TOKEN}"), "secret": SIGNING},
    "feishu": lambda rec: {"url": rec.url(f"/hook/{KEY}"), "secret": SIGNING},
    "slack": lambda rec: {"api_url": rec.url(f"/hook/T0/B0/{TOKEN}")},
    "alertmanager": lambda rec: {
        "urls": [rec.url("/hook")],
        "headers": {"Authorization": f"Bearer {TOKEN}"},
    },
}
OK_BODY = {
    "webhook": b"",
    "wecom": WECOM_OK,
    "dingtalk": WECOM_OK,
    "feishu": FEISHU_OK,
    "slack": b"ok",
    "alertmanager": b"",
}
SECRETS = (TOKEN, KEY, SIGNING, PASSWORD)


def _path(kind: str) -> str:
    return {
        "feishu": f"/hook/{KEY}",
        "slack": f"/hook/T0/B0/{TOKEN}",
        "alertmanager": "/hook/api/v2/alerts",
    }.get(kind, "/hook")


def _send_one(kind: str, rec: Recorder, timeout: float = 5.0) -> Delivery:
    module = receivers.get(kind)
    config = HTTP_KINDS[kind](rec)
    [payload] = module.render(config, notification())
    delivery = module.send(config, payload, timeout)
    assert isinstance(delivery, Delivery)
    for secret in SECRETS:
        assert secret not in delivery.detail, delivery.detail
    return delivery


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_http_success(kind, rec):
    rec.respond(_path(kind), body=OK_BODY[kind])
    delivery = _send_one(kind, rec)
    assert delivery.ok, delivery.detail
    [request] = rec.requests()
    assert request.method == "POST"
    assert request.header("Content-Type") == "application/json; charset=utf-8"
    assert request.header("User-Agent").startswith("checkrunner/")
    request.json()


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_http_500_is_retryable(kind, rec):
    rec.respond(_path(kind), status=500, body="internal error")
    delivery = _send_one(kind, rec)
    assert (delivery.ok, delivery.retryable, delivery.retry_after) == (False, True, None)
    assert "HTTP 500" in delivery.detail and "internal error" in delivery.detail


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_http_429_is_retryable_after_retry_after(kind, rec):
    rec.respond(_path(kind), status=429, body="slow down", headers={"Retry-After": "17"})
    delivery = _send_one(kind, rec)
    assert (delivery.ok, delivery.retryable, delivery.retry_after) == (False, True, 17.0)


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_http_400_is_not_retryable(kind, rec):
    rec.respond(_path(kind), status=400, body="invalid_payload")
    delivery = _send_one(kind, rec)
    assert (delivery.ok, delivery.retryable) == (False, False)
    assert "HTTP 400" in delivery.detail


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_refused_connection_is_retryable(kind, rec):
    rec.down()
    delivery = _send_one(kind, rec)
    assert (delivery.ok, delivery.retryable) == (False, True)
    assert "connection refused" in delivery.detail


def test_503_with_http_date_retry_after(rec):
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=90)
    rec.respond("/hook", status=503, headers={"Retry-After": format_datetime(later, usegmt=True)})
    delivery = _send_one("webhook", rec)
    assert delivery.retryable and 85 <= delivery.retry_after <= 91


def test_timeout_and_reset_are_retryable(rec):
    rec.respond("/hook", delay=3, times=1)
    started = time.monotonic()
    delivery = _send_one("webhook", rec, timeout=0.3)
    assert time.monotonic() - started < 2
    assert (delivery.ok, delivery.retryable) == (False, True)
    assert "timed out" in delivery.detail
    rec.respond("/hook", drop=True, times=1)
    delivery = _send_one("webhook", rec)
    assert (delivery.ok, delivery.retryable) == (False, True)
    assert _send_one("webhook", rec).ok  # then back to the default 200


def test_redirects_are_not_followed(rec):
    rec.respond("/hook", status=302, headers={"Location": rec.url("/elsewhere")})
    delivery = _send_one("webhook", rec)
    assert (delivery.ok, delivery.retryable) == (False, False)
    assert "redirect" in delivery.detail
    assert rec.requests("/elsewhere") == []


# ----------------------------------------------------------------------------- webhook


def test_webhook_sends_alertmanagers_v4_payload(rec):
    firing = alert("web1")
    resolved = alert("web2", resolved=True)
    note = notification(firing, resolved)
    note.external_url = "http://checkrun.example"
    config = {
        "url": rec.url("/hook"),
        "headers": {"Authorization": f"Bearer {TOKEN}", "X-Team": "ops"},
    }
    assert [d.ok for d in send_all(webhook, config, note)] == [True]
    [request] = rec.requests("/hook")
    assert request.header("Authorization") == f"Bearer {TOKEN}"
    assert request.header("X-Team") == "ops"
    body = request.json()
    assert body["version"] == "4"
    assert body["groupKey"] == '{}:{alertname="disk full"}'
    assert body["status"] == "firing"
    assert body["receiver"] == "ops"
    assert body["truncatedAlerts"] == 0
    assert body["groupLabels"] == {"alertname": "disk full"}
    assert body["commonLabels"] == {
        "alertname": "disk full",
        "severity": "critical",
        "play": "fleet",
    }
    assert body["externalURL"] == "http://checkrun.example"
    one, two = body["alerts"]
    assert one["status"] == "firing" and two["status"] == "resolved"
    assert one["fingerprint"] == fingerprint(firing.labels) and two["fingerprint"] == fingerprint(
        resolved.labels
    )
    assert re.fullmatch(r"[0-9a-f]{16}", one["fingerprint"])
    assert one["startsAt"] == rfc3339(T0) and RFC3339.match(one["startsAt"])
    assert one["endsAt"] == ZERO_TIME
    assert two["endsAt"] == rfc3339(T0 + 600) == "2023-11-14T22:23:20.000Z"
    assert one["labels"] == firing.labels and one["annotations"] == firing.annotations
    assert set(one) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }


def test_webhook_resolved_status_and_max_alerts(rec):
    note = notification(*(alert(f"web{i}", resolved=True) for i in range(5)))
    [payload] = webhook.render({"url": rec.url("/hook"), "max_alerts": 2}, note)
    assert webhook.send({"url": rec.url("/hook")}, payload, 5).ok
    body = rec.requests("/hook")[0].json()
    assert body["status"] == "resolved"
    assert body["truncatedAlerts"] == 3
    assert [a["labels"]["host"] for a in body["alerts"]] == ["web0", "web1"]


def test_webhook_payload_template(rec):
    template = (
        '{"text": "{{ status | upper }}: {{ alerts | length }} alert(s) in {{ groupLabels.alertname }}",'
        ' "hosts": {{ alerts | map(attribute="labels.host") | list | tojson }},'
        ' "fp": "{{ alerts[0].fingerprint }}", "title": {{ default_title | tojson }}}'
    )
    config = {
        "url": rec.url("/hook"),
        "payload": template,
        "headers": {"Content-Type": "application/json"},
    }
    note = notification(alert("web1"), alert("web2", resolved=True))
    [payload] = webhook.render(config, note)
    assert isinstance(payload["body"], str)
    assert webhook.send(config, payload, 5).ok
    [request] = rec.requests("/hook")
    assert request.json() == {
        "text": "FIRING: 2 alert(s) in disk full",
        "hosts": ["web1", "web2"],
        "fp": fingerprint(note.alerts[0].labels),
        "title": "[FIRING:1] disk full",
    }
    assert request.header("Content-Type") == "application/json"


@pytest.mark.parametrize(
    "template",
    [
        "{{ alerts.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ status.__init__.__globals__ }}",
        "{% for a in alerts %}{{ a.labels.pop('host') }}{% endfor %}",  # immutable sandbox
        "{{ 'x' * 100000000 }}",
        "{{ no_such_variable }}",
        "{{ alerts[0].labels.nope }}",
        "{% if %}",
    ],
)
def test_webhook_template_sandbox_refuses(template):
    with pytest.raises(RenderError, match="option 'payload'"):
        webhook.render({"url": "http://127.0.0.1:1/", "payload": template}, notification())


def test_webhook_url_file_and_secret_headers_never_shown(rec, tmp_path):
    url_file = tmp_path / "url"
    url_file.write_text(rec.url(f"/hook?token={TOKEN}") + "\n")
    config = {"url_file": str(url_file), "headers": {"Authorization": f"Bearer {TOKEN}"}}
    rec.respond("/hook", status=403, body=f"bad token {TOKEN}")  # a server that echoes it
    [delivery] = send_all(webhook, config, notification())
    assert not delivery.ok and not delivery.retryable
    assert TOKEN not in delivery.detail and "/hook" in delivery.detail
    assert REDACTED in delivery.detail
    missing = webhook.send({"url_file": str(tmp_path / "nope")}, {"body": {}}, 5)
    assert not missing.ok and "url_file" in missing.detail


def test_webhook_https_tls_config(tmp_path):
    pki = make_pki(tmp_path)
    context = server_tls_context(pki.server_cert, pki.server_key)
    with Recorder(tls=context) as rec:
        url = rec.url("/hook")
        assert url.startswith("https://")
        untrusted = send_all(webhook, {"url": url}, notification())[0]
        assert (untrusted.ok, untrusted.retryable) == (False, True)
        assert "TLS" in untrusted.detail
        assert send_all(
            webhook, {"url": url, "tls_config": {"ca_file": str(pki.ca_cert)}}, notification()
        )[0].ok
        skip = {"url": url, "tls_config": {"insecure_skip_verify": True}}
        assert send_all(webhook, skip, notification())[0].ok
        assert len(rec.requests("/hook")) == 2


# ----------------------------------------------------------------------------- WeCom


def test_wecom_markdown_and_text(rec):
    rec.respond("/hook", body=WECOM_OK)
    note = notification(alert("web1"), alert("web2", "warning", resolved=True))
    markdown_config = {"url": rec.url(f"/hook?key={KEY}"), "mentioned_list": ["zhangsan", "@all"]}
    assert all(d.ok for d in send_all(wecom, markdown_config, note))
    text_config = {**markdown_config, "msgtype": "text", "mentioned_mobile_list": ["13800001111"]}
    assert all(d.ok for d in send_all(wecom, text_config, note))
    first, second = rec.requests("/hook")
    assert first.query == {"key": KEY}
    assert first.json() == {
        "msgtype": "markdown",
        "markdown": {
            "content": "**[FIRING:1] disk full**\n**Firing**\n"
            '- **web1** <font color="warning">critical</font> / is 96% full (value 96.2%)\n'
            "**Resolved**\n"
            '- **web2** <font color="info">warning</font> / is 96% full (value 96.2%) — resolved after 10m\n'
            "<@zhangsan>"
        },
    }
    assert second.json() == {
        "msgtype": "text",
        "text": {
            "content": "[FIRING:1] disk full\nFiring:\n- web1 [critical] / is 96% full (value 96.2%)\n"
            "Resolved:\n- web2 [warning] / is 96% full (value 96.2%) — resolved after 10m",
            "mentioned_list": ["zhangsan", "@all"],
            "mentioned_mobile_list": ["13800001111"],
        },
    }


def test_wecom_key_builds_the_official_url():
    assert (
        wecom.robot_url({"key": "a b/c"})
        == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=a%20b%2Fc"
    )
    with pytest.raises(RenderError):
        wecom.robot_url({})
    assert not wecom.send({}, {"msgtype": "text", "text": {"content": "x"}}, 1).ok


@pytest.mark.parametrize(
    ("reply", "retryable", "retry_after", "shown"),
    [
        (
            {"errcode": 45009, "errmsg": "api freq out of limit"},
            True,
            60.0,
            "errcode 45009: api freq out of limit",
        ),
        ({"errcode": -1, "errmsg": "system busy"}, True, None, "errcode -1: system busy"),
        (
            {"errcode": 93000, "errmsg": "invalid webhook url, hint: [1700000000]"},
            False,
            None,
            "errcode 93000: invalid webhook url",
        ),
        (
            {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"},
            False,
            None,
            "errcode 40058",
        ),
        (b"<html>proxy login</html>", False, None, "unexpected reply"),
    ],
)
def test_wecom_http_200_with_errcode_is_a_failure(rec, reply, retryable, retry_after, shown):
    rec.respond("/hook", body=reply)
    [delivery] = send_all(wecom, {"url": rec.url(f"/hook?key={KEY}")}, notification())
    assert (delivery.ok, delivery.retryable, delivery.retry_after) == (
        False,
        retryable,
        retry_after,
    )
    assert shown in delivery.detail
    assert KEY not in delivery.detail


@pytest.mark.parametrize(("msgtype", "limit"), [("markdown", 4096), ("text", 2048)])
def test_wecom_splits_cjk_by_bytes(rec, msgtype, limit):
    rec.respond("/hook", body=WECOM_OK)
    alerts = [
        alert(f"数据库{i:03d}", message=f"{CJK}{'！' * (i % 11)}", value=f"{90 + i % 10}%")
        for i in range(120)
    ]
    note = notification(*alerts)
    config = {"url": rec.url(f"/hook?key={KEY}"), "msgtype": msgtype}
    payloads = wecom.render(config, note)
    assert len(payloads) > 3
    assert all(d.ok for d in (wecom.send(config, p, 5) for p in payloads))
    received = [r.json()[msgtype]["content"] for r in rec.requests("/hook")]
    assert len(received) == len(payloads)
    for content in received:
        assert len(content.encode("utf-8")) <= limit
    whole = (
        fmt.text(note)
        if msgtype == "text"
        else fmt.join(f"**{fmt.title(note)}**", fmt.body_markdown(note, "wecom"))
    )
    assert len(whole.encode()) > 3 * limit
    assert "\n".join(received) == whole  # every line whole, nothing lost, in order
    # pieces are full: the next piece's first line would not have fitted
    for content, following in zip(received, received[1:]):
        next_line = following.split("\n")[0]
        assert len(content.encode()) + 1 + len(next_line.encode()) > limit


def test_wecom_mentions_only_on_the_first_text_message(rec):
    note = notification(*(alert(f"h{i}", message=CJK * 3) for i in range(40)))
    payloads = wecom.render({"key": KEY, "msgtype": "text", "mentioned_list": ["@all"]}, note)
    assert len(payloads) > 1
    assert payloads[0]["text"]["mentioned_list"] == ["@all"]
    assert all("mentioned_list" not in p["text"] for p in payloads[1:])


def test_wecom_title_and_message_templates():
    config = {
        "key": KEY,
        "msgtype": "text",
        "title": "{{ status | upper }} {{ commonLabels.alertname }}",
        "message": "{% for a in alerts %}{{ a.labels.host }}={{ a.annotations.value }}\n{% endfor %}",
    }
    [payload] = wecom.render(config, notification(alert("web1"), alert("web2", value="99%")))
    assert payload["text"]["content"] == "FIRING disk full\nweb1=96.2%\nweb2=99%"


# ----------------------------------------------------------------------------- DingTalk


def test_dingtalk_signs_the_url_and_sends_markdown(rec):
    rec.respond("/robot/send", body=WECOM_OK)
    config = {
        "url": rec.url(f"/robot/send?access_token={TOKEN}"),
        "secret": SIGNING,
        "at_mobiles": ["13800001111"],
        "is_at_all": False,
    }
    before = time.time()
    [delivery] = send_all(dingtalk, config, notification(alert("web1")))
    after = time.time()
    assert delivery.ok, delivery.detail
    [request] = rec.requests("/robot/send")
    assert set(request.query) == {"access_token", "timestamp", "sign"}
    assert request.query["access_token"] == TOKEN
    timestamp = request.query["timestamp"]
    assert before * 1000 - 1 <= int(timestamp) <= after * 1000 + 1  # milliseconds
    expected = base64.b64encode(
        hmac.new(SIGNING.encode(), f"{timestamp}\n{SIGNING}".encode(), hashlib.sha256).digest()
    ).decode()
    assert request.query["sign"] == expected  # parse_qs has undone the URL encoding
    assert "%2B" in request.raw_path or "%2F" in request.raw_path or "%3D" in request.raw_path
    assert request.json() == {
        "msgtype": "markdown",
        "markdown": {
            "title": "[FIRING:1] disk full (web1)",
            "text": "#### [FIRING:1] disk full (web1)\n- **web1** critical / is 96% full (value 96.2%)\n@13800001111",
        },
        "at": {"atMobiles": ["13800001111"], "atUserIds": [], "isAtAll": False},
    }


def test_dingtalk_without_secret_is_not_signed_and_text_type(rec):
    rec.respond("/robot/send", body=WECOM_OK)
    config = {
        "url": rec.url(f"/robot/send?access_token={TOKEN}"),
        "msgtype": "text",
        "is_at_all": True,
    }
    assert send_all(dingtalk, config, notification())[0].ok
    [request] = rec.requests("/robot/send")
    assert request.query == {"access_token": TOKEN}
    assert request.json() == {
        "msgtype": "text",
        "text": {
            "content": "[FIRING:1] disk full (web1)\n- web1 [critical] / is 96% full (value 96.2%)"
        },
        "at": {"atMobiles": [], "atUserIds": [], "isAtAll": True},
    }


@pytest.mark.parametrize(
    ("reply", "retryable", "retry_after"),
    [
        ({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}, True, 600.0),
        ({"errcode": 410100, "errmsg": "send too fast"}, True, 60.0),
        ({"errcode": 310000, "errmsg": "sign not match"}, False, None),
        ({"errcode": 300001, "errmsg": "token is not exist"}, False, None),
    ],
)
def test_dingtalk_errcodes(rec, reply, retryable, retry_after):
    rec.respond("/robot/send", body=reply)
    config = {"url": rec.url(f"/robot/send?access_token={TOKEN}"), "secret": SIGNING}
    [delivery] = send_all(dingtalk, config, notification())
    assert (delivery.ok, delivery.retryable, delivery.retry_after) == (
        False,
        retryable,
        retry_after,
    )
    assert f"errcode {reply['errcode']}: {reply['errmsg']}" in delivery.detail
    assert TOKEN not in delivery.detail and SIGNING not in delivery.detail
    assert "sign=" not in delivery.detail and "timestamp" not in delivery.detail


def test_dingtalk_splits_long_messages_and_mentions_on_the_last():
    note = notification(*(alert(f"主机{i}", message=CJK * 4) for i in range(200)))
    payloads = dingtalk.render({"access_token": TOKEN, "at_mobiles": ["1380"]}, note)
    assert len(payloads) >= 3
    for payload in payloads:
        assert len(payload["markdown"]["text"].encode()) <= dingtalk.LIMIT
    assert [("at" in p) for p in payloads] == [False] * (len(payloads) - 1) + [True]
    assert payloads[-1]["markdown"]["text"].endswith("@1380")
    assert payloads[1]["markdown"]["title"].endswith(f"(2/{len(payloads)})")


def test_dingtalk_signed_url_helper():
    url = dingtalk.signed_url("https://oapi.dingtalk.com/robot/send?access_token=T", "s", now=1.5)
    assert url.startswith(
        "https://oapi.dingtalk.com/robot/send?access_token=T&timestamp=1500&sign="
    )
    assert dingtalk.signed_url("http://x/send", "s", now=1).startswith(
        "http://x/send?timestamp=1000&sign="
    )


# ----------------------------------------------------------------------------- Feishu


def test_feishu_signs_the_body(rec):
    rec.respond(f"/hook/{KEY}", body=FEISHU_OK)
    config = {"url": rec.url(f"/hook/{KEY}"), "secret": SIGNING}
    before = int(time.time())
    [delivery] = send_all(feishu, config, notification(alert("web1")))
    after = int(time.time())
    assert delivery.ok, delivery.detail
    [request] = rec.requests(f"/hook/{KEY}")
    body = request.json()
    timestamp = body.pop("timestamp")
    assert isinstance(timestamp, str) and before <= int(timestamp) <= after  # seconds
    key = f"{timestamp}\n{SIGNING}".encode()
    assert (
        body.pop("sign") == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    )
    assert body == {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "template": "red",
                "title": {"tag": "plain_text", "content": "[FIRING:1] disk full (web1)"},
            },
            "elements": [
                {"tag": "markdown", "content": "- **web1** critical / is 96% full (value 96.2%)"}
            ],
        },
    }


def test_feishu_text_resolved_and_unsigned(rec):
    rec.respond("/hook", body={"StatusCode": 0, "StatusMessage": "success"})  # older replies
    config = {"url": rec.url("/hook"), "msgtype": "text"}
    assert send_all(feishu, config, notification(alert("web1", resolved=True)))[0].ok
    assert rec.requests("/hook")[0].json() == {
        "msg_type": "text",
        "content": {
            "text": "[RESOLVED] disk full (web1)\n- web1 [critical] / is 96% full (value 96.2%) — resolved after 10m"
        },
    }
    [card] = feishu.render({"url": "https://x/"}, notification(alert(resolved=True)))
    assert card["card"]["header"]["template"] == "green"


@pytest.mark.parametrize(
    ("status", "reply", "ok", "retryable", "retry_after"),
    [
        (
            200,
            {
                "code": 19021,
                "msg": "sign match fail or timestamp is not within one hour from current time",
            },
            False,
            False,
            None,
        ),
        (200, {"code": 19024, "msg": "Key Words Not Found"}, False, False, None),
        (200, {"code": 11232, "msg": "frequency limited"}, False, True, 60.0),
        (400, {"code": 9499, "msg": "too many request"}, False, True, 60.0),
        (400, {"code": 9499.0, "msg": "Bad Request"}, False, True, 60.0),
        (200, {"msg": "no code"}, False, False, None),
    ],
)
def test_feishu_codes(rec, status, reply, ok, retryable, retry_after):
    rec.respond(f"/hook/{KEY}", status=status, body=reply)
    [delivery] = send_all(
        feishu, {"url": rec.url(f"/hook/{KEY}"), "secret": SIGNING}, notification()
    )
    assert (delivery.ok, delivery.retryable, delivery.retry_after) == (ok, retryable, retry_after)
    assert KEY not in delivery.detail and SIGNING not in delivery.detail


def test_feishu_body_stays_under_20kb(rec):
    rec.respond("/hook", body=FEISHU_OK)
    note = notification(*(alert(f"主机{i}", message=f'{CJK} "quoted" \\ {i}') for i in range(300)))
    config = {"url": rec.url("/hook"), "secret": SIGNING}
    payloads = feishu.render(config, note)
    assert len(payloads) >= 3
    assert all(feishu.send(config, p, 5).ok for p in payloads)
    requests = rec.requests("/hook")
    for request in requests:
        assert len(request.body) <= feishu.BODY_LIMIT
    contents = [r.json()["card"]["elements"][0]["content"] for r in requests]
    assert "\n".join(contents) == fmt.body_markdown(note)
    assert requests[0].json()["card"]["header"]["title"]["content"].endswith(f"(1/{len(payloads)})")


# ----------------------------------------------------------------------------- Slack


def test_slack_attachment_and_ok_body(rec):
    path = f"/services/T0/B0/{TOKEN}"
    rec.respond(path, body=b"ok", headers={"Content-Type": "text/html"})
    config = {
        "api_url": rec.url(path),
        "channel": "#ops",
        "username": "checkrun",
        "icon_emoji": ":rotating_light:",
        "title_link": "http://grafana/d/x",
    }
    assert send_all(slack, config, notification(alert("web1"), alert("web2", resolved=True)))[0].ok
    assert rec.requests(path)[0].json() == {
        "channel": "#ops",
        "username": "checkrun",
        "icon_emoji": ":rotating_light:",
        "attachments": [
            {
                "fallback": "[FIRING:1] disk full",
                "color": "danger",
                "title": "[FIRING:1] disk full",
                "title_link": "http://grafana/d/x",
                "text": "*Firing*\n- *web1* critical / is 96% full (value 96.2%)\n*Resolved*\n"
                "- *web2* critical / is 96% full (value 96.2%) — resolved after 10m",
                "mrkdwn_in": ["text", "pretext"],
            }
        ],
    }
    [resolved] = slack.render(config, notification(alert(resolved=True)))
    assert resolved["attachments"][0]["color"] == "good"


def test_slack_failures(rec):
    path = f"/services/T0/B0/{TOKEN}"
    rec.respond(path, status=200, body=b"invalid_token", times=1)
    rec.respond(path, status=404, body=b"no_service", times=1)
    config = {"api_url": rec.url(path)}
    not_ok = send_all(slack, config, notification())[0]
    assert (not_ok.ok, not_ok.retryable) == (False, False) and "invalid_token" in not_ok.detail
    gone = send_all(slack, config, notification())[0]
    assert (gone.ok, gone.retryable) == (False, False) and "no_service" in gone.detail
    for delivery in (not_ok, gone):
        assert TOKEN not in delivery.detail and "/services" not in delivery.detail


# ----------------------------------------------------------------------------- Alertmanager


def test_alertmanager_posts_to_every_replica():
    with Recorder() as one, Recorder() as two:
        firing = alert("web1")
        firing.generator_url = "http://checkrun/run/42"
        resolved = alert("web2", resolved=True)
        config = {
            "urls": [one.base_url, two.url("/api/v2/alerts")],
            "headers": {"X-Scope-OrgID": "ops"},
        }
        payloads = alertmanager.render(config, notification(firing, resolved))
        assert len({p["replica"] for p in payloads}) == 2
        # The outbox keeps payloads: no URL (it may hold credentials), only the replica's digest.
        assert not any(url in json.dumps(payloads) for url in config["urls"])
        before = time.time()
        assert all(alertmanager.send(config, p, 5).ok for p in payloads)
        after = time.time()
        for replica in (one, two):
            [request] = replica.requests()
            assert request.path == "/api/v2/alerts"
            assert request.header("X-Scope-OrgID") == "ops"
            posted = request.json()
            # firing: endsAt 4 x the run interval after the send (15m before a second run)
            ends_at = dt.datetime.fromisoformat(posted[0].pop("endsAt").replace("Z", "+00:00"))
            assert before + 3600 - 0.001 <= ends_at.timestamp() <= after + 3600
            assert posted == [
                {
                    "labels": firing.labels,
                    "annotations": firing.annotations,
                    "startsAt": "2023-11-14T22:13:20.000Z",
                    "generatorURL": "http://checkrun/run/42",
                },
                {
                    "labels": resolved.labels,
                    "annotations": resolved.annotations,
                    "startsAt": "2023-11-14T22:13:20.000Z",
                    "endsAt": "2023-11-14T22:23:20.000Z",  # resolves it now
                },
            ]
        two.down()
        results = [alertmanager.send(config, p, 5) for p in payloads]
        assert results[0].ok
        assert (results[1].ok, results[1].retryable) == (False, True)


def test_alertmanager_test_notification_sends_a_test_alert():
    [payload] = alertmanager.render({"urls": ["http://am:9093/"]}, notification(test=True))
    assert payload["alerts"][0]["labels"]["alertname"] == alertmanager.TEST_ALERTNAME
    assert alertmanager.api_url("http://am:9093/") == "http://am:9093/api/v2/alerts"
    with pytest.raises(RenderError):
        alertmanager.render({"urls": []}, notification())


# ----------------------------------------------------------------------------- email (aiosmtpd)


class Inbox:
    """aiosmtpd handler that keeps what arrives; rcpt_reply/data_reply refuse instead."""

    def __init__(self, rcpt_reply: str | None = None, data_reply: str | None = None):
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.messages: list[dict[str, Any]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.data_reply:
            return self.data_reply
        self.messages.append(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "message": email.message_from_bytes(
                    envelope.content.replace(b"\r\n", b"\n"), policy=email.policy.default
                ),
                "ehlo": session.host_name,
                "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                "login": session.auth_data,
            }
        )
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"alerts",
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@contextmanager
def smtp_server(inbox: Inbox, **kwargs: Any):
    port = closed_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def mail_config(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "to": ["ops@example.com", "Oncall <oncall@example.com>"],
        "from": "checkrun <alerts@example.com>",
        "smarthost": f"127.0.0.1:{port}",
        "hello": "runner1.example.com",
        **extra,
    }


def test_email_plain_text_and_html():
    inbox = Inbox()
    with smtp_server(inbox) as port:
        config = mail_config(port, require_tls=False)
        note = notification(alert("web1"), alert("web2", resolved=True))
        [delivery] = send_all(email_receiver, config, note)
        assert delivery.ok, delivery.detail
    [got] = inbox.messages
    assert got["mail_from"] == "alerts@example.com"
    assert got["rcpt_tos"] == ["ops@example.com", "oncall@example.com"]
    assert got["ehlo"] == "runner1.example.com"
    assert not got["tls"]
    message = got["message"]
    assert message["Subject"] == "[FIRING:1] disk full"
    assert message["From"] == "checkrun <alerts@example.com>"
    assert message["To"] == "ops@example.com, Oncall <oncall@example.com>"
    assert message["Message-ID"].endswith("@example.com>") and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part.get_content().rstrip("\n") == fmt.text(note)
    html = html_part.get_content()
    assert "<td>web1</td>" in html and "Resolved" in html and "[FIRING:1] disk full" in html


def test_email_templates_headers_and_text_only():
    inbox = Inbox()
    with smtp_server(inbox) as port:
        config = mail_config(
            port,
            to="a@example.com, b@example.com",
            require_tls=False,
            subject="{{ status }}: {{ alerts | length }} on {{ commonLabels.host }}",
            text="{% for a in alerts %}{{ a.labels.host }} 数据库 {{ a.annotations.message }}\n{% endfor %}",
            html="",
            headers={"X-Priority": "1", "Reply-To": "noc@example.com"},
        )
        assert send_all(email_receiver, config, notification(alert("web1", message="<b>x</b>")))[
            0
        ].ok
    [got] = inbox.messages
    message = got["message"]
    assert got["rcpt_tos"] == ["a@example.com", "b@example.com"]
    assert message["Subject"] == "firing: 1 on web1"
    assert message["X-Priority"] == "1" and message["Reply-To"] == "noc@example.com"
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == "web1 数据库 <b>x</b>\n"


def test_email_html_template_is_autoescaped():
    [payload] = email_receiver.render(
        {**mail_config(25), "html": "<p>{{ alerts[0].annotations.message }}</p>"},
        notification(alert(message="<script>")),
    )
    assert payload["html"] == "<p>&lt;script&gt;</p>"
    assert set(payload) == {"subject", "text", "html", "to", "from", "headers"}


def test_email_require_tls_without_starttls_is_not_retryable():
    with smtp_server(Inbox()) as port:
        [delivery] = send_all(email_receiver, mail_config(port), notification())
    assert (delivery.ok, delivery.retryable) == (False, False)
    assert "STARTTLS" in delivery.detail


def test_email_starttls_and_auth(pki):
    inbox = Inbox()
    context = server_tls_context(pki.server_cert, pki.server_key)
    with smtp_server(
        inbox,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    ) as port:
        config = mail_config(
            port,
            auth_username="alerts",
            auth_password=PASSWORD,
            tls_config={"ca_file": str(pki.ca_cert)},
        )
        [delivery] = send_all(email_receiver, config, notification())
        assert delivery.ok, delivery.detail
        [got] = inbox.messages
        assert got["tls"] and got["login"] == b"alerts"

        wrong = {**config, "auth_password": PASSWORD + "x"}
        [refused] = send_all(email_receiver, wrong, notification())
        assert (refused.ok, refused.retryable) == (False, False)
        assert "535" in refused.detail and "AUTH" in refused.detail
        assert PASSWORD not in refused.detail

        untrusted = send_all(email_receiver, {**config, "tls_config": {}}, notification())[0]
        assert (untrusted.ok, untrusted.retryable) == (False, True)
        assert "TLS" in untrusted.detail
        skip = {**config, "tls_config": {"insecure_skip_verify": True}}
        assert send_all(email_receiver, skip, notification())[0].ok


def test_email_auth_password_file(pki, tmp_path):
    secret_file = tmp_path / "smtp-password"
    secret_file.write_text(PASSWORD + "\n")
    inbox = Inbox()
    context = server_tls_context(pki.server_cert, pki.server_key)
    with smtp_server(inbox, tls_context=context, authenticator=authenticator) as port:
        config = mail_config(
            port,
            auth_username="alerts",
            auth_password_file=str(secret_file),
            tls_config={"ca_file": str(pki.ca_cert)},
        )
        assert send_all(email_receiver, config, notification())[0].ok
    assert inbox.messages[0]["login"] == b"alerts"


def test_email_implicit_tls(pki):
    inbox = Inbox()
    context = server_tls_context(pki.server_cert, pki.server_key)
    with smtp_server(inbox, ssl_context=context) as port:
        config = mail_config(port, tls=True, tls_config={"ca_file": str(pki.ca_cert)})
        [delivery] = send_all(email_receiver, config, notification())
        assert delivery.ok, delivery.detail
        assert delivery.detail.startswith("smtps://")
    assert inbox.messages[0]["tls"]


@pytest.mark.parametrize(
    ("inbox", "retryable", "shown"),
    [
        (Inbox(rcpt_reply="550 5.1.1 mailbox unavailable"), False, "550 5.1.1 mailbox unavailable"),
        (Inbox(rcpt_reply="452 4.2.2 mailbox full"), True, "452"),
        (Inbox(data_reply="451 4.3.0 try again later"), True, "451 4.3.0 try again later"),
        (Inbox(data_reply="554 5.7.1 message rejected as spam"), False, "554"),
    ],
)
def test_email_smtp_refusals(inbox, retryable, shown):
    with smtp_server(inbox) as port:
        [delivery] = send_all(email_receiver, mail_config(port, require_tls=False), notification())
    assert (delivery.ok, delivery.retryable) == (False, retryable)
    assert shown in delivery.detail


def test_email_server_down_is_retryable():
    config = mail_config(closed_port(), auth_password=PASSWORD, auth_username="alerts")
    [delivery] = send_all(email_receiver, config, notification(), timeout=2)
    assert (delivery.ok, delivery.retryable) == (False, True)
    assert "connection refused" in delivery.detail
    assert PASSWORD not in delivery.detail


# ----------------------------------------------------------------------------- apprise


def test_apprise_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "apprise", None)  # `import apprise` raises ImportError
    [payload] = apprise_receiver.render({"urls": ["json://127.0.0.1:1/"]}, notification())
    assert payload == {
        "title": "[FIRING:1] disk full (web1)",
        "body": "- web1 [critical] / is 96% full (value 96.2%)",
        "format": "text",
    }
    delivery = apprise_receiver.send({"urls": ["json://127.0.0.1:1/"]}, payload, 5)
    assert delivery == Delivery(
        ok=False,
        retryable=False,
        detail="the apprise receiver needs `pip install checkrunner[apprise]`",
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # apprise imports imghdr
def test_apprise_json_url_against_the_recorder(rec):
    pytest.importorskip("apprise")
    config = {"urls": [f"json://127.0.0.1:{rec.port}/apprise"], "format": "markdown"}
    [delivery] = send_all(apprise_receiver, config, notification(alert("web1")))
    assert delivery.ok, delivery.detail
    [request] = rec.requests("/apprise")
    body = request.json()
    assert body["title"] == "[FIRING:1] disk full (web1)"
    assert body["message"] == "- **web1** critical / is 96% full (value 96.2%)"
    rec.respond("/apprise", status=500)
    [failed] = send_all(apprise_receiver, config, notification())
    assert (failed.ok, failed.retryable) == (False, True)
    bad = apprise_receiver.send(
        {"urls": [f"nosuchscheme://{TOKEN}"]}, {"title": "t", "body": "b"}, 5
    )
    assert (bad.ok, bad.retryable) == (False, False)
    assert TOKEN not in bad.detail


# ----------------------------------------------------------------------------- secrets


def test_no_secret_in_any_failure_detail():
    """Every kind, pointed at a port nothing listens on, with secrets in its config."""
    port = closed_port()
    configs = {
        "webhook": {
            "url": f"http://127.0.0.1:{port}/x/{TOKEN}?token={TOKEN}",
            "headers": {"Authorization": TOKEN},
        },
        "wecom": {"url": f"http://127.0.0.1:{port}/send?key={KEY}"},
        "dingtalk": {
            "url": f"http://127.0.0.1:{port}/send?access_token={TOKEN}",
            "secret": SIGNING,
        },
        "feishu": {"url": f"http://127.0.0.1:{port}/hook/{KEY}", "secret": SIGNING},
        "slack": {"api_url": f"http://127.0.0.1:{port}/services/T/B/{TOKEN}"},
        "alertmanager": {"urls": [f"http://admin:{PASSWORD}@127.0.0.1:{port}/"]},
        "email": mail_config(port, auth_username="u", auth_password=PASSWORD),
    }
    for kind, config in configs.items():
        module = receivers.get(kind)
        for payload in module.render(config, notification()):
            delivery = module.send(config, payload, 2)
            assert (delivery.ok, delivery.retryable) == (False, True), kind
            for secret in SECRETS:
                assert secret not in delivery.detail, (kind, delivery.detail)
