"""The masker: every occurrence of a secret, anywhere in a result, becomes ***."""

from __future__ import annotations

import json
import sqlite3
import traceback
from pathlib import Path

import pytest
from helpers import run_checkrun
from recorder import Recorder
from sshd import free_port

from checkrunner.errors import ELLIPSIS, EXCERPT_LENGTH, ConfigError, MultipleConfigErrors, quote
from checkrunner.masking import MASK, Masker, errors_masked
from checkrunner.results import CheckResult, HostResult, RunResult, Status


def check_result(name: str, module: str, status: Status, **fields) -> CheckResult:
    """A check of host h in play p."""
    return CheckResult(host="h", play="p", name=name, module=module, status=status, **fields)


def result(message: str, facts: dict) -> RunResult:
    check = check_result("n", "command", Status.OK, message=message, facts=facts)
    return RunResult(
        playbook="p.yml",
        started_at=0.0,
        hosts=[HostResult(host="h", message=message, checks=[check])],
    )


def test_secrets_are_masked_in_messages_facts_and_nested_values():
    masker = Masker(["hunter22", "abc", None, "hunter22-extended"])
    run = masker.run(
        result("pw hunter22-extended then hunter22", {"out": ["x hunter22"], "hunter22": 1})
    )
    check = run.hosts[0].checks[0]
    assert check.message == f"pw {MASK} then {MASK}"
    assert check.facts == {"out": [f"x {MASK}"], MASK: 1}
    assert run.hosts[0].message == check.message


def test_short_values_are_not_masked_and_no_secrets_is_a_no_op():
    original = result("port 8080 is up", {"n": 1})
    assert Masker(["up", "1"]).run(original) is original
    assert Masker([]).run(original) is original


def test_masking_keeps_types_and_covers_every_field_of_a_result():
    masker = Masker(["hunter22"])
    check = check_result(
        "n hunter22",
        "http",
        Status.CRITICAL,
        metric="m",
        measurements={"hunter22": 1.0},
        labels={"team": "hunter22"},
        tags=["hunter22"],
    )
    masked = masker.check(check)
    assert masked.status is Status.CRITICAL
    assert (masked.name, masked.measurements, masked.labels, masked.tags) == (
        f"n {MASK}",
        {MASK: 1.0},
        {"team": MASK},
        [MASK],
    )
    assert check.name == "n hunter22"  # the original is left alone


def test_escaped_and_cut_short_secrets_are_masked():
    secret = "it's\\a\"sécret-0123456789-abcdef"
    masker = Masker([secret])
    assert masker.text(f"got {secret!r}") == f"got '{MASK}'"  # as error messages quote it
    assert masker.text(json.dumps({"k": secret})) == json.dumps({"k": MASK})
    assert masker.text(json.dumps(secret, ensure_ascii=False)) == f'"{MASK}"'
    # quote() cuts long values with an ellipsis: the piece of the secret before it goes too.
    excerpt = quote("port " + secret)
    assert excerpt.endswith(f"{ELLIPSIS}'") and len(excerpt) < 40
    assert masker.text(excerpt) == f"'port {MASK}{ELLIPSIS}'"


def test_quote_is_short_and_never_shows_a_key():
    assert quote("8080") == "'8080'"
    assert quote("x" * 100) == "'" + "x" * EXCERPT_LENGTH + ELLIPSIS + "'"
    assert quote("first line\nsecond") == f"'first line{ELLIPSIS}'"
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n"
    assert "MIIE" not in quote(key) and "private key" in quote(key)
    assert quote(10**5000) == "(a number too long to show)"
    assert quote(["S3cr3t-4f1c9e-Zq8Xw2-kT7mR5-vN3pL0"]) == "(a list)"
    assert quote(2**200).startswith("160693804425899027...") and len(quote(2**200)) < 50


# ------------------------------------------------------------------ end to end: nothing leaves

SECRET = "tok-9c1e55aa7f31"
ROTATED = "tok-0b7d42e6c8aa"


class _Mailbox:
    def __init__(self):
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def mailbox():
    from aiosmtpd.controller import Controller

    box = _Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        box.port = controller.port
        yield box
    finally:
        controller.stop()


def _state_bytes(state: Path) -> bytes:
    """The database and its -wal/-shm companions, byte for byte."""
    return b"".join(
        path.read_bytes() for path in state.parent.glob(state.name + "*") if path.is_file()
    )


def _leaks(text: str | bytes, *secrets: str) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode()
    return [s for s in secrets if s.encode() in data]


def test_secrets_never_reach_receivers_alerts_or_the_state_database(tmp_path, mailbox):
    """A secret read with {{ env.X }} into a check name, URL, header and message: masked in
    every report, every body a receiver gets (webhook, WeCom, email, Alertmanager), the
    `checkrun alerts` listing and every byte of the state database and its WAL."""
    with Recorder() as rec:
        rec.respond("/health", status=503, body=f"denied for {SECRET}")
        rec.respond("/wecom", body={"errcode": 0, "errmsg": "ok"})
        playbook = tmp_path / "p.yml"
        missing = tmp_path / "missing"
        playbook.write_text(
            f"""
plays:
  - name: app
    hosts: localhost
    checks:
      - name: "probe {{{{ env.CHECKRUN_TEST_SECRET }}}}"
        file: {{path: "{missing}/{{{{ env.CHECKRUN_TEST_SECRET }}}}"}}
        labels: {{team: db}}
      - name: api
        http:
          url: "{rec.url("/health")}?token={{{{ env.CHECKRUN_TEST_SECRET }}}}"
          headers: {{Authorization: "Bearer {{{{ env.CHECKRUN_TEST_SECRET }}}}"}}
receivers:
  - name: everyone
    webhook_configs: [{{url: "{rec.url("/hook")}"}}]
    wecom_configs: [{{url: "{rec.url("/wecom")}?key={{{{ env.CHECKRUN_TEST_SECRET }}}}"}}]
    alertmanager_configs: [{{urls: ["{rec.base_url}/{{{{ env.CHECKRUN_TEST_SECRET }}}}"]}}]
    email_configs:
      - {{to: oncall@example.test, from: checkrun@example.test,
          smarthost: "127.0.0.1:{mailbox.port}", require_tls: false}}
route: {{receiver: everyone, group_by: [alertname]}}
"""
        )
        state = tmp_path / "state.db"
        reports = {f: tmp_path / f"r.{f}" for f in ("json", "junit", "markdown", "nagios")}
        report_args = [a for f, p in reports.items() for a in ("-r", f"{f}:{p}")]

        def run(secret: str = SECRET, *extra: str):
            env = {"CHECKRUN_TEST_SECRET": secret}
            return run_checkrun(playbook, "--state", state, *report_args, *extra, env=env)

        first = run(SECRET, "-vv")
        assert first.returncode == 2, first.stderr
        # The target really got the secret: the probe asked for it, the header carried it.
        [probe] = rec.requests("/health")
        assert probe.query["token"] == SECRET
        assert probe.header("Authorization") == f"Bearer {SECRET}"
        assert rec.requests("/wecom")[0].query["key"] == SECRET
        am_posts = rec.requests(f"/{SECRET}/api/v2/alerts")
        assert len(am_posts) == 2  # one per group

        webhook = [r.json() for r in rec.requests("/hook")]
        assert sorted(m["groupLabels"]["alertname"] for m in webhook) == ["api", "probe ***"]
        bodies = [r.body for path in ("/hook", "/wecom") for r in rec.requests(path)]
        bodies += [*(r.body for r in am_posts), *mailbox.messages]
        assert len(mailbox.messages) == 2
        listing = run_checkrun("alerts", "--state", state)
        assert "probe *** on localhost" in listing.stdout
        for text in [
            first.stdout,
            first.stderr,
            listing.stdout,
            *bodies,
            *(p.read_text() for p in reports.values()),
        ]:
            assert _leaks(text, SECRET) == [], text
        alert = next(m for m in webhook if m["groupLabels"]["alertname"] == "probe ***")
        fingerprint = alert["alerts"][0]["fingerprint"]

        # A reader holds the database open: the WAL stays on disk for the byte scan.
        reader = sqlite3.connect(state)
        try:
            reader.execute("SELECT count(*) FROM alerts").fetchone()
            # Same secret, then a rotated one: the masked name is the same alert (no new
            # message inside repeat_interval), and neither value is ever stored.
            assert run(SECRET).returncode == 2
            assert run(ROTATED).returncode == 2
            assert len(rec.requests("/hook")) == 2
            assert _leaks(_state_bytes(state), SECRET, ROTATED) == []
            wal = state.parent / (state.name + "-wal")
            assert wal.exists() and wal.stat().st_size > 0
            missing.mkdir()
            (missing / ROTATED).write_text("back")
            assert run(ROTATED).returncode == 2  # api still fails; the probe passes
        finally:
            reader.close()
        resolved = [r.json() for r in rec.requests("/hook")][2:]
        assert [m["status"] for m in resolved] == ["resolved"]
        assert resolved[0]["alerts"][0]["fingerprint"] == fingerprint
        assert _leaks(_state_bytes(state), SECRET, ROTATED) == []
        assert _leaks(run_checkrun("alerts", "--state", state).stdout, SECRET, ROTATED) == []


def test_a_log_path_from_a_secret_is_stored_masked_and_still_followed(tmp_path):
    """Log offsets are keyed by check name and file path: both are stored masked, and the
    next run still continues where the last one stopped."""
    log = tmp_path / SECRET / "app.log"
    log.parent.mkdir()
    log.write_text("x ERROR one\nfine\n")
    playbook = tmp_path / "logs.yml"
    playbook.write_text(
        f"""
- name: app
  hosts: localhost
  checks:
    - name: "errors in {{{{ env.CHECKRUN_TEST_SECRET }}}}"
      log:
        path: "{tmp_path}/{{{{ env.CHECKRUN_TEST_SECRET }}}}/*.log"
        start: beginning
        patterns: [{{name: errors, regex: " ERROR "}}]
"""
    )
    state, report = tmp_path / "state.db", tmp_path / "r.json"
    env = {"CHECKRUN_TEST_SECRET": SECRET}

    def errors_seen() -> float:
        done = run_checkrun(playbook, "--state", state, "-r", f"json:{report}", env=env)
        assert done.returncode == 0, done.stderr
        [check] = json.loads(report.read_text())["hosts"][0]["checks"]
        assert check["name"] == "errors in ***"
        return check["measurements"]["errors"]

    assert errors_seen() == 1
    with log.open("a") as stream:
        stream.write("x ERROR two\nx ERROR three\n")
    assert errors_seen() == 2  # only the new lines: the masked cursor was found again
    assert _leaks(_state_bytes(state), SECRET) == []


def test_checks_that_only_a_secret_tells_apart_are_warned_about(tmp_path):
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- name: app\n  hosts: localhost\n  checks:\n"
        "    - {name: 'probe {{ env.CHECKRUN_TEST_A }}', memory: {}}\n"
        "    - {name: 'probe {{ env.CHECKRUN_TEST_B }}', memory: {}}\n"
        "    - {name: 'other {{ env.CHECKRUN_TEST_B }}', memory: {}}\n"
    )
    env = {"CHECKRUN_TEST_A": SECRET, "CHECKRUN_TEST_B": ROTATED}
    done = run_checkrun(playbook, "-r", "json:-", env=env)
    assert done.returncode == 0, done.stderr
    assert "2 checks are named 'probe ***' once secrets are masked" in done.stderr
    assert "'other ***'" not in done.stderr
    assert _leaks(done.stdout + done.stderr, SECRET, ROTATED) == []


def test_only_excerpts_lose_the_beginning_of_a_secret():
    masker = Masker(["gh_tok3n_ab"])
    assert masker.text("processing… done") == "processing… done"
    assert (
        masker.text(f"got {quote('x' * 20 + 'gh_tok3n_ab')}")
        == f"got 'xxxxxxxxxxxxxxxxxxxx{MASK}…'"
    )


def test_errors_leave_with_their_secrets_masked():
    masker = Masker(["hunter22"])
    grouped = MultipleConfigErrors(
        [ConfigError("got the text 'hunter22'", hint="not hunter22"), ConfigError("other")]
    )
    masker.error(grouped)
    assert "hunter22" not in str(grouped) and "got the text '***'" in str(grouped)

    secret = "".join(reversed("22retnuh"))  # the traceback shows this file's lines

    def crash():
        try:
            raise KeyError(secret)
        except KeyError as exc:
            raise RuntimeError(f"no result for check 'probe {secret}'") from exc

    with pytest.raises(RuntimeError) as caught, errors_masked(lambda: [secret]):
        crash()
    assert str(caught.value) == "no result for check 'probe ***'"
    assert caught.value.__cause__ is None  # the KeyError held the secret too
    assert secret not in "".join(traceback.format_exception(caught.type, caught.value, caught.tb))


def test_a_name_keeps_what_the_playbook_says_literally_whatever_the_run_reads(tmp_path):
    """A check's identity does not depend on which secrets a run happens to read: "deploy to
    prod-eu1" is written in the playbook, so it stays that alert in a run whose templates
    read an environment value "prod-eu1" and in one (--tags) whose templates do not."""
    with Recorder() as rec:
        playbook = tmp_path / "p.yml"
        playbook.write_text(
            f"""
plays:
  - name: app
    hosts: localhost
    checks:
      - {{name: deploy to prod-eu1, file: {{path: {tmp_path}/missing}}, tags: [deploy]}}
      - {{name: stage, command: {{cmd: "echo {{{{ env.CHECKRUN_TEST_STAGE }}}}"}}}}
receivers: [{{name: hook, webhook_configs: [{{url: "{rec.url("/hook")}"}}]}}]
route: {{receiver: hook, group_by: [alertname]}}
"""
        )
        state = tmp_path / "state.db"
        env = {"CHECKRUN_TEST_STAGE": "prod-eu1"}
        everything = run_checkrun(playbook, "--state", state, "-r", "json:-", env=env)
        assert everything.returncode == 2, everything.stderr
        names = [c["name"] for c in json.loads(everything.stdout)["hosts"][0]["checks"]]
        assert names == ["deploy to prod-eu1", "stage"]
        deploy_only = run_checkrun(playbook, "--state", state, "--tags", "deploy", env=env)
        assert deploy_only.returncode == 2, deploy_only.stderr
        messages = [r.json() for r in rec.requests("/hook")]
        assert [(m["status"], m["groupLabels"]["alertname"]) for m in messages] == [
            ("firing", "deploy to prod-eu1")
        ]
