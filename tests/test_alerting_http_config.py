"""Alertmanager's http_config on checkrun's HTTP receivers, against a real HTTP server:
basic_auth, authorization and bearer tokens (inline or from files read at each send), and
global.http_config for the receivers that have none."""

from __future__ import annotations

import base64

from helpers import run_checkrun
from helpers_net import make_pki, server_tls_context
from recorder import Recorder

from checkrunner.alerting.model import Alert, Notification
from checkrunner.alerting.receivers import webhook
from checkrunner.alerting.receivers.base import secret_values, with_defaults


def _playbook(tmp_path, alerting: str):
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        "plays:\n  - name: app\n    hosts: localhost\n    checks:\n"
        f"      - {{name: flag present, file: {{path: {tmp_path / 'missing'}}}}}\n" + alerting
    )
    return playbook


def test_http_config_authenticates_every_receiver(tmp_path):
    token = tmp_path / "token"
    token.write_text("tok-from-file\n")  # the trailing newline is not part of the token
    password = tmp_path / "password"
    password.write_text("pass-from-file")
    with Recorder() as server:
        playbook = _playbook(
            tmp_path,
            f"""global:
  http_config:
    authorization: {{credentials_file: {token}}}
receivers:
  - name: plain
    webhook_configs: [{{url: '{server.url("/global")}'}}]
  - name: basic
    webhook_configs:
      - url: '{server.url("/basic")}'
        http_config: {{basic_auth: {{username: am, password_file: {password}}}}}
  - name: bearer
    webhook_configs:
      - url: '{server.url("/bearer")}'
        http_config: {{bearer_token: inline-token-123}}
route:
  receiver: plain
  routes:
    - {{matchers: ['alertname="flag present"'], receiver: plain, continue: true}}
    - {{matchers: ['alertname="flag present"'], receiver: basic, continue: true}}
    - {{matchers: ['alertname="flag present"'], receiver: bearer}}
""",
        )
        done = run_checkrun(playbook, "--state", tmp_path / "state.db")
        assert done.returncode == 2, done.stderr
        [plain] = server.requests("/global")
        [basic] = server.requests("/basic")
        [bearer] = server.requests("/bearer")
    assert plain.header("Authorization") == "Bearer tok-from-file"
    expected = base64.b64encode(b"am:pass-from-file").decode()
    assert basic.header("Authorization") == f"Basic {expected}"
    assert bearer.header("Authorization") == "Bearer inline-token-123"
    assert "inline-token-123" not in done.stdout + done.stderr


def test_a_missing_secret_file_is_that_deliverys_failure(tmp_path):
    config = with_defaults(
        webhook.OPTIONS,
        {
            "url": "http://127.0.0.1:9/hook",
            "http_config": {"authorization": {"credentials_file": str(tmp_path / "nope")}},
        },
    )
    notification = Notification("r", "{}:{}", {}, [Alert({"alertname": "x"})])
    [payload] = webhook.render(config, notification)
    delivery = webhook.send(config, payload, timeout=5)
    assert not delivery.ok and not delivery.retryable
    assert "authorization.credentials_file" in delivery.detail and "nope" in delivery.detail


def test_http_config_secrets_are_masked():
    config = with_defaults(
        webhook.OPTIONS,
        {
            "url": "http://127.0.0.1:9/hook",
            "http_config": {"basic_auth": {"username": "am", "password": "s3cret-pw"}},
        },
    )
    assert "s3cret-pw" in secret_values(webhook.OPTIONS, config)
    assert "am" not in secret_values(webhook.OPTIONS, config)


def _send_over_tls(url: str, tls_config: dict):
    config = with_defaults(webhook.OPTIONS, {"url": url, "http_config": {"tls_config": tls_config}})
    notification = Notification("r", "{}:{}", {}, [Alert({"alertname": "x"})])
    [payload] = webhook.render(config, notification)
    return webhook.send(config, payload, timeout=10)


def test_tls_config_server_name_and_min_version(tmp_path):
    (tmp_path / "pki").mkdir()
    pki = make_pki(tmp_path / "pki")
    with Recorder(tls=server_tls_context(pki.server_cert, pki.server_key)) as server:
        url = server.url("/tls")  # https://127.0.0.1:PORT: the certificate names localhost too
        ca = str(pki.ca_cert)
        assert _send_over_tls(url, {"ca_file": ca, "server_name": "localhost"}).ok
        assert _send_over_tls(url, {"ca_file": ca, "min_version": "TLS13"}).ok
        wrong = _send_over_tls(url, {"ca_file": ca, "server_name": "other.example"})
        assert not wrong.ok and "certificate" in wrong.detail
        assert len(server.requests("/tls")) == 2
