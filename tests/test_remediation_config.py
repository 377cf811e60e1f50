"""Issue 14, config: a play's `handlers:` and a check's `notify:` as loaded, their defaults,
and the generated schema agreeing with the parser."""

from __future__ import annotations

import jsonschema
import pytest

from checkrunner.config import playbook_schema
from checkrunner.config.schema import schema_problems
from checkrunner.errors import ConfigError
from checkrunner.playbook import load_playbook
from checkrunner.yamlio.marked import parse_yaml

GOOD = """\
- name: web
  hosts: localhost
  become: true
  handlers:
    - name: restart app
      service: app.service
    - name: scale out
      webhook:
        url: "http://127.0.0.1:9/scale"
        method: put
        headers: {X-Token: "{{ lookup_token }}"}
        body: {replicas: 3}
        timeout: 3s
    - name: kick
      command: {cmd: "pkill -HUP app || true", shell: true}
      become: false
      settle: 2s
      max_runs: 5
      cooldown: 0s
      max_hosts: 2
      timeout: 20s
  checks:
    - name: app health
      memory: {}
      notify: [restart app, kick]
    - name: queue
      memory: {}
      notify: scale out
"""


@pytest.fixture
def playbook(tmp_path):
    path = tmp_path / "play.yml"
    path.write_text(GOOD)
    return load_playbook(str(path))


def test_handlers_load_with_their_actions_and_defaults(playbook):
    play = playbook.plays[0]
    restart, scale, kick = play.handlers
    assert (restart.action, restart.service, restart.become) == ("service", "app.service", True)
    assert (restart.settle, restart.max_runs, restart.cooldown) == (10.0, 3, 300.0)
    assert restart.max_hosts_is_fraction and restart.host_limit(16) == 1
    assert restart.host_limit(40) == 4 and restart.host_limit(3) == 1
    assert scale.webhook is not None and scale.webhook.method == "PUT"
    assert scale.webhook.headers == {"X-Token": "{{ lookup_token }}"}
    assert scale.webhook.body == {"replicas": 3} and scale.webhook.timeout == 3.0
    assert kick.command == {"cmd": "pkill -HUP app || true", "shell": True}
    assert (kick.become, kick.settle, kick.max_runs, kick.cooldown) == (False, 2.0, 5, 0.0)
    assert not kick.max_hosts_is_fraction and kick.host_limit(100) == 2
    assert kick.timeout == 20.0
    assert [c.notify for c in play.checks] == [["restart app", "kick"], ["scale out"]]


def test_the_schema_accepts_handlers_and_documents_them():
    schema = playbook_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    document, _ = parse_yaml(GOOD, "play.yml")
    assert schema_problems(document, "play.yml") == []
    handler = schema["$defs"]["Handler"]
    assert "systemctl restart" in handler["properties"]["service"]["description"]
    assert "notify" in schema["$defs"]["Check"]["properties"]
    assert "handlers" in schema["$defs"]["Play"]["properties"]


@pytest.mark.parametrize(
    "handler",
    [
        "{name: r}",
        "{name: r, service: app, command: [true]}",
        "{name: r, service: app, webhook: {url: 'http://127.0.0.1:1/'}}",
        "{name: r, service: app, max_runs: 0}",
        "{name: r, webhook: {method: POST}}",
        "{name: r, service: app, colldown: 5s}",
    ],
)
def test_the_parser_and_the_schema_both_reject_bad_handlers(tmp_path, handler):
    text = f"- hosts: localhost\n  handlers:\n    - {handler}\n  checks:\n    - {{name: m, memory: {{}}}}\n"
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_playbook(str(path))
    document, _ = parse_yaml(text, "bad.yml")
    assert schema_problems(document, "bad.yml") != []


def test_a_handler_name_used_twice_is_reported_at_the_second(tmp_path):
    path = tmp_path / "twice.yml"
    path.write_text(
        "- hosts: localhost\n  handlers:\n    - {name: r, service: a}\n    - {name: r, service: b}\n"
        "  checks:\n    - {name: m, memory: {}, notify: r}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_playbook(str(path))
    assert "twice.yml:4:7" in str(raised.value) and "used twice" in str(raised.value)
