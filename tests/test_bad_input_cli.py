"""Every user mistake: one clear message naming file:line, exit 5, no traceback, nothing run."""

from __future__ import annotations

import json

import pytest
from helpers import run_checkrun, validate_text

CASES = {
    "malformed_yaml": (
        "- name: x\n  hosts: localhost\n  checks:\n    - name: a\n      memory: {\n",
        ":6:",
        "",
    ),
    "play_without_hosts": (
        "- name: no hosts here\n  checks:\n    - {name: m, memory: {}}\n",
        ":1:",
        "hosts",
    ),
    "check_without_module": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: nothing\n      warn: 3\n",
        ":4:",
        "module",
    ),
    "check_with_two_modules": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: two\n      memory: {}\n      load: {}\n",
        ":4:",
        "memory",
    ),
    "unknown_module": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: typo\n      htp: {url: http://127.0.0.1/}\n",
        ":5:",
        "did you mean 'http'",
    ),
    "unknown_argument": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: typo\n      http: {url: http://127.0.0.1/, stauts: [200]}\n",
        ":5:",
        "did you mean 'status'",
    ),
    "bad_threshold": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: t\n      memory: {}\n      warn: lots\n",
        ":6:",
        "range",
    ),
    "baseline_without_method": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: t\n      memory: {}\n"
        "      warn: {baseline: 7d}\n",
        ":6:13",
        "exactly one of factor, sigma and mad, not none of them",
    ),
    "baseline_zero_factor": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: t\n      memory: {}\n"
        "      warn: {baseline: 7d, factor: 0}\n",
        ":6:36",
        "factor: must be positive, not 0",
    ),
    "baseline_negative_window": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: t\n      memory: {}\n"
        "      crit: {baseline: -1, sigma: 3}\n",
        ":6:24",
        "duration cannot be negative",
    ),
    "baseline_zero_window": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: t\n      memory: {}\n"
        "      crit: {baseline: 0s, sigma: 3}\n",
        ":6:24",
        "the window must be positive",
    ),
    "baseline_bad_seasonal": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: t\n      memory: {}\n"
        "      crit: {baseline: 7d, mad: 3, seasonal: weekly}\n",
        ":6:46",
        "seasonal: 'weekly' is not one of hour_of_week, hour_of_day",
    ),
    "baseline_bad_direction": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: t\n      memory: {}\n"
        "      thresholds: {available: {warn: {baseline: 1d, factor: 2, direction: down}}}\n",
        ":6:75",
        "direction: 'down' is not one of above, below, both",
    ),
    "baseline_fallback_not_a_range": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: t\n      memory: {}\n"
        "      warn: {baseline: 7d, factor: 2, fallback: [1, 2]}\n",
        ":6:49",
        "fallback: a threshold is a number or a range string, not a list",
    ),
    "baseline_on_a_flag": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: t\n"
        "      file: {path: /etc/hostname}\n      metric: exists\n"
        "      crit: {baseline: 7d, sigma: 3}\n",
        ":7:13",
        "'exists' of module 'file' is a yes/no flag (1 or 0)",
    ),
    "undefined_variable": (
        "- name: p\n  hosts: localhost\n  vars: {health_port: 80}\n  checks:\n"
        "    - name: t\n      tcp: {host: 127.0.0.1, port: '{{ health_prt }}'}\n",
        ":6:",
        "health_prt",
    ),
    "missing_vars_file": (
        "- name: p\n  hosts: localhost\n  vars_files: [nope.yml]\n  checks:\n    - {name: m, memory: {}}\n",
        ":3:",
        "nope.yml",
    ),
    "empty_playbook": ("", "", "empty"),
    "notify_names_no_handler": (
        "- name: p\n  hosts: localhost\n  handlers:\n    - {name: restart app, service: app.service}\n"
        "  checks:\n    - name: m\n      memory: {}\n      notify: [restat app]\n",
        ":8:16",
        "no handler named 'restat app' — did you mean 'restart app'?",
    ),
    "notify_without_handlers": (
        "- name: p\n  hosts: localhost\n  checks:\n    - name: m\n      memory: {}\n"
        "      notify: restart app\n",
        ":6:15",
        "add handlers:",
    ),
    "handler_without_action": (
        "- name: p\n  hosts: localhost\n  handlers:\n    - name: restart app\n      become: true\n"
        "  checks:\n    - {name: m, memory: {}}\n",
        ":4:7",
        "has no action: a handler needs one of command, service, webhook",
    ),
    "handler_with_two_actions": (
        "- name: p\n  hosts: localhost\n  handlers:\n    - name: restart app\n"
        "      service: app.service\n      command: [systemctl, restart, app]\n"
        "  checks:\n    - {name: m, memory: {}}\n",
        ":6:7",
        "has service and command: a handler has exactly one action",
    ),
    "handler_bad_max_hosts": (
        "- name: p\n  hosts: localhost\n  handlers:\n    - {name: r, service: app, max_hosts: 150%}\n"
        "  checks:\n    - {name: m, memory: {}}\n",
        ":4:42",
        "max_hosts: 25%",
    ),
    "handler_webhook_bad_method": (
        "- name: p\n  hosts: localhost\n  handlers:\n    - name: scale\n"
        "      webhook: {url: 'http://127.0.0.1:1/', method: POTS}\n"
        "  checks:\n    - {name: m, memory: {}}\n",
        ":5:",
        "did you mean 'POST'",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_playbook(tmp_path, case):
    text, location, phrase = CASES[case]
    playbook = tmp_path / f"{case}.yml"
    playbook.write_text(text)
    done = run_checkrun(playbook, "-r", "json:-")
    assert done.returncode == 5, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stdout == ""  # nothing ran, no report
    assert f"{case}.yml{location}" in done.stderr, done.stderr
    assert phrase.lower() in done.stderr.lower(), done.stderr
    assert len(done.stderr.strip().splitlines()) <= 8  # one message, not a dump


def test_missing_inventory_file(tmp_path):
    playbook = tmp_path / "p.yml"
    playbook.write_text("- name: p\n  hosts: all\n  checks: [{name: m, memory: {}}]\n")
    done = run_checkrun(playbook, "-i", tmp_path / "missing.ini")
    assert done.returncode == 5
    assert "missing.ini" in done.stderr and "Traceback" not in done.stderr


def test_pattern_matching_nothing_is_a_warning(tmp_path):
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- name: nobody\n  hosts: nosuchgroup\n  checks: [{name: m, memory: {}}]\n"
        "- name: me\n  hosts: localhost\n  checks: [{name: m, memory: {}}]\n"
    )
    done = run_checkrun(playbook, "-r", "json:-")
    assert done.returncode == 0, done.stderr
    assert "nosuchgroup" in done.stderr and "matched no hosts" in done.stderr


def test_missing_playbook_and_bad_flags(tmp_path):
    done = run_checkrun(tmp_path / "nope.yml")
    assert done.returncode == 5 and "nope.yml" in done.stderr
    done = run_checkrun(tmp_path / "nope.yml", "--forks", "zero")
    assert done.returncode == 5 and "forks" in done.stderr
    done = run_checkrun(tmp_path / "nope.yml", "--report", "jsn")
    assert done.returncode == 5 and "did you mean 'json'" in done.stderr


def test_traceback_only_with_vvv(tmp_path):
    playbook = tmp_path / "p.yml"
    playbook.write_text("")
    assert "Traceback" in run_checkrun(playbook, "-vvv").stderr


def test_a_variable_named_env_is_warned_about(tmp_path):
    done = validate_text(
        tmp_path,
        "- name: p\n  hosts: localhost\n  vars: {env: prod}\n  checks: [{name: m, memory: {}}]\n",
    )
    assert done.returncode == 0
    assert "'env'" in done.stderr and "hides the environment" in done.stderr


@pytest.mark.parametrize("pattern", ["~[", "all[5:x]", "all[", "::"])
def test_a_malformed_host_pattern_is_exit_5_at_the_hosts_line(tmp_path, pattern):
    playbook = tmp_path / "p.yml"
    playbook.write_text(f"- name: p\n  hosts: '{pattern}'\n  checks: [{{name: m, memory: {{}}}}]\n")
    done = run_checkrun(playbook, "-r", "json:-")
    assert done.returncode == 5, done.stdout + done.stderr
    assert f"p.yml:2:10: malformed host pattern '{pattern}'" in done.stderr
    assert "(at character " in done.stderr and done.stdout == ""


def test_a_malformed_limit_is_exit_5(tmp_path):
    playbook = tmp_path / "p.yml"
    playbook.write_text("- name: p\n  hosts: localhost\n  checks: [{name: m, memory: {}}]\n")
    done = run_checkrun(playbook, "-l", "~web[0-9", "-r", "json:-")
    assert done.returncode == 5, done.stdout + done.stderr
    assert "--limit: malformed host pattern '~web[0-9'" in done.stderr
    assert "unterminated character set (at character 5)" in done.stderr


@pytest.mark.parametrize(
    ("line", "phrase"),
    [
        ("web1 ansible_port=ssh", "ansible_port must be a port number between 1 and 65535"),
        ("web1 ansible_port=70000", "ansible_port must be a port number between 1 and 65535"),
        ("web1 ansible_user='a;b'", "ansible_user must be a user name ssh accepts"),
        ("x$(touch${IFS}nothing)", "the host name contains '$'"),
        ("h[1:\u00b2]", "must go from number to number (digits 0-9)"),
        ("h[0:99999999]", "stands for 100,000,000 hosts"),
    ],
)
def test_a_bad_inventory_line_is_exit_5_at_that_line_before_any_host_is_touched(
    tmp_path, line, phrase
):
    playbook = tmp_path / "p.yml"
    playbook.write_text("- name: p\n  hosts: all\n  checks: [{name: m, memory: {}}]\n")
    inventory = tmp_path / "inv.ini"
    inventory.write_text(f"[web]\nok.example.com\n{line}\n", encoding="utf-8")
    for command in (["validate", playbook], [playbook, "--list-hosts"]):
        done = run_checkrun(*command, "-i", inventory, timeout=60)
        assert done.returncode == 5, done.stdout + done.stderr
        assert f"{inventory}:3:1: " in done.stderr and phrase in done.stderr
        assert "Traceback" not in done.stderr


def test_a_user_ssh_refuses_on_the_command_line_is_exit_5(tmp_path):
    playbook = tmp_path / "p.yml"
    playbook.write_text("- name: p\n  hosts: all\n  checks: [{name: m, memory: {}}]\n")
    done = run_checkrun(playbook, "-i", "web1,", "--user=-oProxyCommand=x")
    assert done.returncode == 5, done.stdout + done.stderr
    assert "command line: user name '-oProxyCommand=x' starts with '-'" in done.stderr


# ------------------------------------------------------------- private data in error messages

SECRET = "S3cr3t-4f1c9e-Zq8Xw2-kT7mR5-vN3pL0"


def _private_key(path) -> list[str]:
    """An OpenSSH private key written to `path`; returns its base64 body lines."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]


def _leaked(text: str, secrets: list[str]) -> list[str]:
    # Any 8 characters in a row of a secret count: an excerpt must not carry a piece of it.
    return [s[i : i + 8] for s in secrets for i in range(len(s) - 7) if s[i : i + 8] in text]


def test_a_key_file_given_as_vars_file_extra_vars_inventory_or_playbook_is_not_shown(tmp_path):
    key = tmp_path / "id_ed25519"
    body = _private_key(key)
    playbook = tmp_path / "p.yml"
    play = "- name: p\n  hosts: all\n  {vars_files}checks: [{{name: m, memory: {{}}}}]\n"
    playbook.write_text(play.format(vars_files="vars_files: [id_ed25519]\n  "))
    plain = tmp_path / "plain.yml"
    plain.write_text(play.format(vars_files=""))
    for args in (
        ("validate", playbook, "-i", "localhost,"),
        ("validate", plain, "-i", "localhost,", "-e", f"@{key}"),
        ("validate", plain, "-i", key),
        ("validate", key),
        (playbook, "-i", "localhost,", "-vvv"),
    ):
        done = run_checkrun(*args)
        assert done.returncode == 5, (args, done.stderr)
        assert "id_ed25519:1:1:" in done.stderr, done.stderr
        assert "private key (not shown)" in done.stderr, done.stderr
        assert _leaked(done.stderr, body) == [], done.stderr


def test_a_password_file_given_as_vars_file_is_described_not_quoted(tmp_path):
    (tmp_path / "db.pass").write_text("correct-horse-battery\n")
    done = validate_text(
        tmp_path,
        "- name: p\n  hosts: localhost\n  vars_files: [db.pass]\n"
        "  checks: [{name: m, memory: {}}]\n",
    )
    assert done.returncode == 5
    assert "db.pass:1:1: vars file " in done.stderr and "must be a mapping" in done.stderr
    assert "a text of 21 characters" in done.stderr
    assert "horse" not in done.stderr


@pytest.mark.parametrize(
    ("prefix", "secret", "shown"),
    [("", "hunter22-pw", "'***'"), ("", SECRET, "'***…'"), ("8080", SECRET, "'8080***…'")],
)
@pytest.mark.parametrize("verbosity", [(), ("-vvv",)])
def test_a_value_from_the_environment_is_masked_in_errors(
    tmp_path, prefix, secret, shown, verbosity
):
    """A type error quotes the rendered value: short and masked, even when the excerpt cuts
    the secret short, and in -vvv's traceback too."""
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- name: p\n  hosts: localhost\n  checks:\n    - name: port\n"
        f"      tcp: {{host: 127.0.0.1, port: '{prefix}{{{{ env.CHECKRUN_TEST_PORT }}}}'}}\n"
    )
    done = run_checkrun("validate", playbook, *verbosity, env={"CHECKRUN_TEST_PORT": secret})
    assert done.returncode == 5
    expected = "p.yml:5:36: option 'port' of module 'tcp': expected a whole number, got the text "
    assert expected + shown in done.stderr, done.stderr
    assert _leaked(done.stderr, [secret]) == [], done.stderr
    assert ("Traceback" in done.stderr) == bool(verbosity)


def test_thresholds_and_receiver_options_from_the_environment_are_masked(tmp_path):
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "plays:\n  - name: p\n    hosts: localhost\n    checks:\n"
        "      - {name: m, memory: {}, warn: '{{ env.CHECKRUN_TEST_LEVEL }}'}\n"
    )
    env = {"CHECKRUN_TEST_LEVEL": SECRET}
    done = run_checkrun("validate", playbook, env=env)
    assert done.returncode == 5 and "warn threshold" in done.stderr
    assert _leaked(done.stderr, [SECRET]) == [], done.stderr
    playbook.write_text(
        "plays:\n  - name: p\n    hosts: localhost\n    checks: [{name: m, memory: {}}]\n"
        "receivers:\n  - name: hook\n    webhook_configs:\n"
        "      - {url: 'http://127.0.0.1:9/', timeout: '{{ env.CHECKRUN_TEST_LEVEL }}'}\n"
        "route: {receiver: hook}\n"
    )
    done = run_checkrun(playbook, "--state", tmp_path / "state.db", env=env)
    assert done.returncode == 5 and "timeout" in done.stderr, done.stderr
    assert _leaked(done.stderr, [SECRET]) == [], done.stderr


# ------------------------------------------------------------------ --shard and checkrun merge


@pytest.mark.parametrize(
    ("shard", "phrase"),
    [
        ("4/3", "shard 4 of 3 does not exist: K counts from 1 to N"),
        ("0/2", "K counts from 1 to N"),
        ("3", "not K/N"),
        ("1/0", "the number of shards must be 1 to 10000"),
    ],
)
@pytest.mark.parametrize("command", [(), ("watch",)])
def test_a_bad_shard_is_exit_5_with_the_fix(tmp_path, shard, phrase, command):
    playbook = tmp_path / "p.yml"
    playbook.write_text("- name: p\n  hosts: all\n  checks: [{name: m, memory: {}}]\n")
    done = run_checkrun(*command, playbook, "-i", "web1,web2", "--shard", shard, timeout=60)
    assert done.returncode == 5, done.stdout + done.stderr
    assert f"argument --shard: '{shard}': " in done.stderr and phrase in done.stderr
    assert "e.g. --shard 1/" in done.stderr or "must be 1 to" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def _shard_reports(tmp_path, count: int, playbook_name: str = "p.yml") -> list:
    """Real reports of the `count` shards of a run over four local hosts."""
    playbook = tmp_path / playbook_name
    playbook.write_text("- name: p\n  hosts: all\n  checks: [{name: m, memory: {}}]\n")
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  vars: {ansible_connection: local}\n  hosts:\n    n[1:4]: {}\n")
    reports = []
    for k in range(1, count + 1):
        report = tmp_path / f"{playbook.stem}-{k}of{count}.json"
        done = run_checkrun(
            playbook,
            "-i",
            inventory,
            "--no-state",
            "--shard",
            f"{k}/{count}",
            "-r",
            f"json:{report}",
        )
        assert done.returncode == 0, done.stderr
        reports.append(report)
    return reports


def _merge_refused(*args, phrase: str) -> None:
    done = run_checkrun("merge", *args, "-r", "json:-", timeout=60)
    assert done.returncode == 5, done.stdout + done.stderr
    assert phrase in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_merge_refuses_what_is_not_one_run_s_shards(tmp_path):
    one, two = _shard_reports(tmp_path, 2)
    (three_1, *_) = _shard_reports(tmp_path, 3)
    other_1, other_2 = _shard_reports(tmp_path, 2, "other.yml")
    _merge_refused(one, one, phrase=f"shard 1/2 is given twice: {one} and {one}")
    _merge_refused(
        one,
        three_1,
        phrase=f"{three_1}: not a shard of the same run as {one}: its number of shards is 3, not 2",
    )
    _merge_refused(
        one, other_2, phrase=f"{other_2}: not a shard of the same run as {one}: its playbook is"
    )
    unsharded = tmp_path / "whole.json"
    done = run_checkrun(
        tmp_path / "p.yml", "-i", tmp_path / "inv.yml", "--no-state", "-r", f"json:{unsharded}"
    )
    assert done.returncode == 0, done.stderr
    _merge_refused(
        unsharded, phrase=f"{unsharded}: this report is not a shard's: its run had no --shard K/N"
    )
    _merge_refused(one, two, "-r", "jsn", phrase="unknown report format 'jsn'")
    limited = tmp_path / "limited-2of2.json"  # shard 2 of a run over fewer hosts
    done = run_checkrun(
        tmp_path / "p.yml", "-i", tmp_path / "inv.yml", "-l", "n1,n2,n3", "--no-state",
        "--shard", "2/2", "-r", f"json:{limited}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _merge_refused(
        one,
        limited,
        phrase=f"{limited}: not a shard of the same run as {one}: it planned other hosts "
        "(3 against 4; e.g. n4)",
    )


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        ('{"a": 1}', ": schema_version is missing: this is not a checkrun JSON report"),
        ("[1, 2]", ": the document must be an object, not an array"),
        ('{"schema_version": 1, "playbook": 7}', ":1:35: playbook must be a string, not a number"),
    ],
)
def test_merge_refuses_json_that_is_no_report(tmp_path, content, phrase):
    one, two = _shard_reports(tmp_path, 2)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(content)
    _merge_refused(one, wrong, phrase=f"{wrong}{phrase}")


def test_merge_names_the_field_of_a_report_that_does_not_fit_its_schema(tmp_path):
    reports = _shard_reports(tmp_path, 2)
    one = next(report for report in reports if json.loads(report.read_text())["hosts"])
    document = json.loads(one.read_text())
    document["hosts"][0]["checks"][0]["status"] = "FINE"
    text = json.dumps(document, indent=2)
    one.write_text(text)
    (line,) = [n for n, content in enumerate(text.splitlines(), 1) if '"FINE"' in content]
    column = text.splitlines()[line - 1].index('"FINE"') + 1
    _merge_refused(
        *reports,
        phrase=f"{one}:{line}:{column}: hosts[0].checks[0].status is 'FINE', not one of",
    )
    document["hosts"][0]["checks"][0]["status"] = "OK"
    del document["hosts"][0]["checks"][0]["unit"]  # a missing field: its object's line
    text = json.dumps(document, indent=2)
    one.write_text(text)
    line = text.splitlines().index("        {") + 1  # the first check's opening brace
    _merge_refused(*reports, phrase=f"{one}:{line}:9: hosts[0].checks[0].unit is missing")


def test_merge_without_a_readable_report_is_exit_5(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("")
    _merge_refused(empty, tmp_path / "missing.json", phrase="no shard report could be read: ")
