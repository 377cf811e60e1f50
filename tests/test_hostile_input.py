"""Hostile and careless input, as an untrusted pull request would bring it to `checkrun validate`.

Each case must end in one clear error naming file:line (exit 5), without a traceback, and
quickly: its run time is compared with a trivial validate in the same test (a ratio, so a
loaded machine slows both). Without the bounds, most of these never finish or exhaust memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from helpers import run_checkrun


def _check(module_line: str) -> str:
    return f"- name: p\n  hosts: localhost\n  checks:\n    - name: c\n      {module_line}\n"


def _templated_command(template: str) -> str:
    quoted = template.replace("\\", "\\\\").replace('"', '\\"')
    return _check(f'command: {{cmd: "echo {quoted}"}}')


def _alias_bomb(indent: str, levels: int = 9) -> list[str]:
    lines = [f'{indent}a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        aliases = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"{indent}a{level}: &a{level} [{aliases}]")
    return lines


@dataclass
class Case:
    playbook: str
    where: str  # what must follow the file name: ":LINE:" (or the file named in `file`)
    phrase: str
    args: list[str] = field(default_factory=list)
    files: dict[str, str | bytes] = field(default_factory=dict)
    file: str = "p.yml"  # the file the error must name


PLAY_VARS_BOMB = "\n".join(
    ["- name: p", "  hosts: localhost", "  vars:", *_alias_bomb("    "), "  checks:"]
    + ["    - {name: m, memory: {}}", ""]
)
ARGS_BOMB = "\n".join(
    ["- name: p", "  hosts: localhost", "  checks:", "    - name: c", "      command:"]
    + ["        cmd: echo", "        env:", *_alias_bomb("          "), ""]
)
TRIVIAL = "- name: p\n  hosts: localhost\n  checks:\n    - {name: m, memory: {}}\n"

CASES = {
    # templates (point 5)
    "huge_power": Case(_templated_command("{{ (9**9999)**9999 }}"), ":5:", "bits"),
    "nested_ranges": Case(
        _templated_command(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
        ),
        ":5:",
        "sandbox's limits",  # the output's size or the time, whichever comes first
    ),
    "nested_ranges_without_output": Case(
        _templated_command(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        ),
        ":5:",
        "ran for more than",
    ),
    "lipsum": Case(_templated_command("{{ lipsum(1000000) }}"), ":5:", "lipsum"),
    "printf_width": Case(_templated_command("{{ '%0999999999d' % 1 }}"), ":5:", "'%'"),
    "printf_star_width": Case(_templated_command("{{ '%*d' % (999999999, 1) }}"), ":5:", "'%'"),
    "center_filter": Case(_templated_command("{{ 'x'|center(999999999) }}"), ":5:", "center"),
    "center_method": Case(_templated_command("{{ 'x'.center(999999999) }}"), ":5:", "center"),
    "format_width": Case(_templated_command("{{ '{:>999999999}'.format(1) }}"), ":5:", "format"),
    "format_filter": Case(_templated_command("{{ '%999999999s'|format(1) }}"), ":5:", "format"),
    "doubling_concat": Case(
        _templated_command(
            "{% set ns = namespace(s='xxxxxxxxxx') %}{% for i in range(100) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
        ),
        ":5:",
        "'~'",
    ),
    "doubling_list": Case(
        _templated_command(
            "{% set ns = namespace(s=[1, 2]) %}{% for i in range(100) %}"
            "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}"
        ),
        ":5:",
        "sandbox's limits",  # the size ('+') or, on a loaded machine, the time limit
    ),
    "shared_repeat": Case(_templated_command("{{ [['x'] * 100000] * 100000 }}"), ":5:", "'*'"),
    "replace_growth": Case(
        _templated_command("{{ ('x' * 100000)|replace('x', 'y' * 100000) }}"), ":5:", "replace"
    ),
    "join_growth": Case(
        _templated_command("{{ ('y' * 100000)|join('x' * 100000) }}"), ":5:", "join"
    ),
    "to_bytes": Case(_templated_command("{{ (1).to_bytes(999999999, 'big') }}"), ":5:", "to_bytes"),
    "batch_fill": Case(_templated_command("{{ [1]|batch(999999999, 0)|list }}"), ":5:", "100,000"),
    "constant_output": Case(
        _templated_command("{% for i in range(100000) %}" + "x" * 1000 + "{% endfor %}"),
        ":5:",
        "rendered text",
    ),
    "deeply_nested_template": Case(
        _templated_command("{{ " + "[" * 3000 + "]" * 3000 + " }}"), ":5:", "nested too deeply"
    ),
    "deeply_nested_blocks": Case(
        _templated_command("{% if 1 %}" * 500 + "x" + "{% endif %}" * 500),
        ":5:",
        "nested too deeply",
    ),
    "long_filter_chain": Case(
        _templated_command("{{ 1" + "|string" * 3000 + " }}"), ":5:", "nested too deeply"
    ),
    # YAML (points 5 and 8)
    "alias_bomb_in_play_vars": Case(PLAY_VARS_BOMB, ":9:", "aliases expand"),
    "alias_bomb_in_module_args": Case(ARGS_BOMB, ":13:", "aliases expand"),
    "alias_loop": Case(
        "- name: p\n  hosts: localhost\n  vars:\n    a: &a [1, *a]\n  checks: [{name: m, memory: {}}]\n",
        ":4:",
        "loop",
    ),
    "nested_1000_flow": Case(
        "- name: p\n  hosts: localhost\n  vars:\n    x: "
        + "[" * 1000
        + "]" * 1000
        + "\n  checks: [{name: m, memory: {}}]\n",
        ":4:",
        "nested more than 100 levels",
    ),
    "nested_1000_mappings": Case(
        "- name: p\n  hosts: localhost\n  vars:\n    x: "
        + "{a: " * 1000
        + "1"
        + "}" * 1000
        + "\n  checks: [{name: m, memory: {}}]\n",
        ":4:",
        "nested more than 100 levels",
    ),
    "nested_extra_vars": Case(
        TRIVIAL,
        "--extra-vars:1:",
        "nested more than 100 levels",
        args=["-e", "{a: " + "[" * 1000 + "]" * 1000 + "}"],
        file="",
    ),
    "alias_bomb_in_extra_vars_file": Case(
        TRIVIAL,
        "vars.yml:6:",
        "aliases expand",
        args=["-e", "@vars.yml"],
        files={"vars.yml": "\n".join(_alias_bomb("")) + "\n"},
        file="",
    ),
    "alias_bomb_in_inventory": Case(
        TRIVIAL,
        "inv.yml:8:",
        "aliases expand",
        args=["-i", "inv.yml"],
        files={
            "inv.yml": "\n".join(
                ["all:", "  vars:", *_alias_bomb("    "), "  hosts:", "    localhost:", ""]
            )
        },
        file="",
    ),
    "nested_json_group_vars": Case(
        TRIVIAL,
        "group_vars/all.json",
        "JSON nested more than 100 levels",
        args=["-i", "hosts"],
        files={
            "hosts": "localhost ansible_connection=local\n",
            "group_vars/all.json": '{"x": ' + "[" * 100000 + "]" * 100000 + "}",
        },
        file="",
    ),
    "latin1_inventory": Case(
        TRIVIAL,
        "inv.ini:3:4:",
        "not UTF-8 text: byte 0xe9",
        args=["-i", "inv.ini"],
        files={"inv.ini": b"localhost ansible_connection=local\n[web]\ncaf\xe9\n"},
        file="",
    ),
    "nested_inventory": Case(
        TRIVIAL,
        "inv.yml:4:",
        "nested more than 100 levels",
        args=["-i", "inv.yml"],
        files={"inv.yml": "all:\n  hosts:\n    h1:\n      x: " + "[" * 1000 + "]" * 1000 + "\n"},
        file="",
    ),
}


# Arguments that used to pass validate and fail only on the target (point 9), and durations
# that passed validate and overflowed later (point 8): refused before any host is touched.
ARGUMENT_CASES = {
    "log_regex": ('log: {path: /l, patterns: [{name: e, regex: "ERROR ("}]}', "regular expression"),
    "log_exclude": (
        'log: {path: /l, patterns: [{name: e, keyword: x}], exclude: ["[a"]}',
        "regular",
    ),
    "http_body": ('http: {url: "http://127.0.0.1/", body: ["a)"]}', "regular expression"),
    "http_response_header": (
        'http: {url: "http://127.0.0.1/", response_headers: {Server: "*x"}}',
        "regular expression",
    ),
    "process_pattern": ('process: {pattern: "*java"}', "regular expression"),
    "command_stdout": ('command: {cmd: "true", stdout: ["(ok"]}', "regular expression"),
    "file_contains": ('file: {path: /etc/hosts, contains: ["[x"]}', "regular expression"),
    "tcp_expect": ('tcp: {port: 22, expect: "SSH-(2"}', "regular expression"),
    "regex_newer_than_targets": ('process: {pattern: "(?>java)"}', "atomic group"),
    "http_url_number": ("http: {url: 42}", "not an http(s) URL"),
    "http_url_scheme": ('http: {url: "file:///etc/passwd"}', "not an http(s) URL"),
    "tcp_port_range": ("tcp: {port: 70000}", "out of range: allowed 1 to 65535"),
    "tcp_address_port": ('tcp: "db:70000"', "not a valid address"),
    "command_cmd_mapping": ("command: {cmd: {a: b}}", "expected a command, got a mapping"),
    "log_encoding": (
        "log: {path: /l, patterns: [{name: e, keyword: x}], encoding: utf-9}",
        "not a known text encoding",
    ),
    "module_timeout": ("http: {url: 'http://h/', timeout: 99999999999999999999999}", "1ms to 1d"),
    "command_env_list": ('command: {cmd: "true", env: {PATH: [/bin]}}', "the value of 'PATH'"),
    "http_header_mapping": (
        'http: {url: "http://h/", headers: {X-Token: {a: 1}}}',
        "expected text, got a mapping",
    ),
    "file_mode": ("file: {path: /etc/hosts, mode: '0999'}", "not a permission mode"),
    "log_anomaly": (
        "log: {path: /l, patterns: [{name: e, keyword: x}], anomaly: {k: lots}}",
        "expected a number",
    ),
    "templated_port": ('tcp: {port: "{{ 70000 }}"}', "out of range"),
    "templated_regex": ('command: {cmd: "true", stdout: ["{{ \'(\' }}"]}', "regular expression"),
}
for _name, (_line, _phrase) in ARGUMENT_CASES.items():
    CASES[_name] = Case(_check(_line), ":5:", _phrase)
CASES["check_timeout_overflow"] = Case(
    _check("memory: {}\n      timeout: 99999999999999999999999"), ":6:", "allowed 1ms to 1d"
)
CASES["templated_regex_list_item"] = Case(
    '- name: p\n  hosts: localhost\n  vars: {bad: "a("}\n  checks:\n    - name: c\n'
    '      command:\n        cmd: "true"\n        stdout:\n          - ok\n          - "{{ bad }}"\n',
    ":10:13:",  # the item itself, after rendering
    "item 2: 'a(' is not a valid regular expression",
)
CASES["huge_integer_threshold"] = Case(
    _check("memory: {}\n      warn: " + "9" * 400), ":6:", "too large to be a number"
)
CASES["huge_integer_duration"] = Case(
    _check("http: {url: 'http://h/', timeout: " + "9" * 400 + "}"), ":5:", "too large"
)
CASES["huge_size"] = Case(
    _check("http: {url: 'http://h/', max_body: 99999999999999999999PB}"), ":5:", "at most 1PiB"
)
CASES["number_of_5000_digits"] = Case(
    _check("tcp: {port: " + "9" * 5000 + "}"), ":5:19:", "number is too long"
)
CASES["number_of_5000_digits_in_inventory"] = Case(
    TRIVIAL,
    "inv.yml:3:18:",
    "number is too long",
    args=["-i", "inv.yml"],
    files={
        "inv.yml": "all:\n  vars:\n    huge_number: " + "9" * 5000 + "\n  hosts: {localhost: }\n"
    },
    file="",
)
CASES["for_forever"] = Case(
    _check("memory: {}\n      for: 99999999999999999999"), ":6:", "1 to 10000"
)
CASES["retries_forever"] = Case(
    _check("memory: {}\n      retries: 99999999999"), ":6:", "allowed 0 to 100"
)
CASES["webhook_url_scheme"] = Case(
    "receivers:\n  - name: ops\n    webhook_configs:\n      - url: 'file:///tmp/x'\n"
    "route: {receiver: ops}\nplays:\n  - {name: p, hosts: localhost, checks: [{name: m, memory: {}}]}\n",
    ":4:",
    "not an http(s) URL",
)
for _value in ("inf", "1e20", "0", "2d"):
    CASES[f"host_timeout_{_value}"] = Case(
        TRIVIAL, "--host-timeout", "1ms to 1d", args=[f"--host-timeout={_value}"], file=""
    )


CASES["vars_file_linked_to_dev_zero"] = Case(
    TRIVIAL.replace("  checks:", "  vars_files: [zero.yml]\n  checks:"), ":3:", "larger than 64 MiB"
)


def _validate(tmp_path, case: Case):
    (tmp_path / "p.yml").write_text(case.playbook)
    for name, text in case.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            (tmp_path / name).write_bytes(text)
        else:
            (tmp_path / name).write_text(text)
    if "zero.yml" in case.playbook:
        (tmp_path / "zero.yml").symlink_to("/dev/zero")  # a symlink a pull request can hold
    started = time.monotonic()
    done = run_checkrun("validate", "p.yml", *case.args, cwd=tmp_path, timeout=300)
    return done, time.monotonic() - started


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_is_refused_quickly_at_its_line(tmp_path, name):
    case = CASES[name]
    baseline_dir = tmp_path / "baseline"
    baseline_dir.mkdir()
    _, baseline = _validate(baseline_dir, Case(TRIVIAL, "", ""))
    done, elapsed = _validate(tmp_path, case)
    assert done.returncode == 5, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert f"{case.file}{case.where}" in done.stderr, done.stderr
    assert case.phrase in done.stderr, done.stderr
    assert "hint:" in done.stderr, done.stderr
    # A trivial validate is mostly start-up; each case may add the 1 s template deadline.
    assert elapsed < 6 * baseline + 3, (elapsed, baseline)


# -- messages (point 10) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "where", "phrase"),
    [
        (TRIVIAL.replace("name: m", "name: caf\xe9 m").encode("latin-1"), "p.yml:4:17:", "0xe9"),
        (
            b"- name: p\n  hosts: localhost\n  checks: [{name: \xff, memory: {}}]\n",
            "p.yml:3:19:",
            "0xff",
        ),
        (
            TRIVIAL.replace("memory: {}", "memory: {}, nope: 1").encode("utf-16"),
            "p.yml:4:29:",
            "nope",
        ),
    ],
    ids=["latin-1", "invalid-utf-8", "utf-16-with-an-error"],
)
def test_encoding_problems_are_reported_by_line_and_column(tmp_path, data, where, phrase):
    (tmp_path / "p.yml").write_bytes(data)
    done = run_checkrun("validate", "p.yml", cwd=tmp_path)
    assert done.returncode == 5, done.stderr
    assert where in done.stderr and phrase in done.stderr, done.stderr
    assert "(byte " not in done.stderr  # the old form: a byte offset instead of line:column
    assert "hint:" in done.stderr


def test_a_utf16_playbook_with_a_byte_order_mark_loads(tmp_path):
    (tmp_path / "p.yml").write_bytes(TRIVIAL.encode("utf-16"))
    done = run_checkrun("validate", "p.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("line", "phrase"),
    [
        ("memory: {}\n      warn: [1, 2]", "not a list"),
        ("memory: {}\n      warn: {baseline: 7d, factor: {a: 1}}", "not a mapping"),
        ("memory: {}\n      warn: {baseline: {a: 1}, factor: 2}", "not a mapping"),
        ('command: {cmd: "echo {{ 1 + items }}"}', "'int' and 'list'"),
        ('command: {cmd: "echo {{ m + 1 }}"}', "'dict' and 'int'"),
    ],
)
def test_messages_use_the_words_of_yaml_not_internal_type_names(tmp_path, line, phrase):
    playbook = _check(line).replace(
        "  hosts: localhost\n", "  hosts: localhost\n  vars: {items: [1], m: {a: 1}}\n"
    )
    (tmp_path / "p.yml").write_text(playbook)
    done = run_checkrun("validate", "p.yml", cwd=tmp_path)
    assert done.returncode == 5, done.stderr
    assert phrase in done.stderr and "Marked" not in done.stderr, done.stderr
    assert "hint:" in done.stderr


def test_play_names_and_label_values_are_templated_per_host(tmp_path):
    (tmp_path / "p.yml").write_text(
        '- name: "web {{ inventory_hostname }} {{ tier }}"\n'
        "  hosts: localhost\n"
        "  vars: {tier: gold, owner: ops}\n"
        '  labels: {team: "{{ owner }}", fixed: x}\n'
        "  checks:\n"
        '    - {name: m, memory: {}, labels: {tier: "{{ tier | upper }}"}}\n'
    )
    done = run_checkrun("p.yml", "-r", "json:report.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [check] = [c for h in done.json_report(tmp_path / "report.json")["hosts"] for c in h["checks"]]
    assert check["play"] == "web localhost gold"
    assert check["labels"] == {"fixed": "x", "team": "ops", "tier": "GOLD"}
    (tmp_path / "p.yml").write_text(
        "- name: p\n  hosts: localhost\n  labels: {team: '{{ nobody }}'}\n"
        "  checks: [{name: m, memory: {}}]\n"
    )
    done = run_checkrun("validate", "p.yml", cwd=tmp_path)
    assert done.returncode == 5 and "p.yml:3:18:" in done.stderr and "nobody" in done.stderr


def test_ranges_and_formats_are_in_the_schema_and_the_docs():
    from checkrunner import catalog
    from checkrunner.config import playbook_schema, render_module_doc

    tcp = playbook_schema()["$defs"]["tcp"]["anyOf"][0]["properties"]
    port = tcp["port"]["anyOf"][0]["anyOf"][0]
    assert (port["minimum"], port["maximum"]) == (1, 65535)
    timeout = tcp["timeout"]["anyOf"][0]["anyOf"][0]
    assert (timeout["minimum"], timeout["maximum"]) == (0.001, 86400)
    doc = " ".join(render_module_doc(catalog.get("log")).split())
    assert "list of regex" in doc and "Python's re syntax, compiled on the target" in doc
    assert "Range: 1 to 65535." in " ".join(render_module_doc(catalog.get("tcp")).split())


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x'|center(999999999) }}",
        "{{ (9**9999)**9999 }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    ],
)
def test_receiver_templates_are_bounded_too(template):
    from checkrunner.alerting.receivers.format import render_template
    from checkrunner.errors import RenderError

    started = time.monotonic()
    with pytest.raises(RenderError, match="TemplateLimit"):
        render_template(template, {}, "title")
    assert time.monotonic() - started < 30  # the 1 s limit; unbounded, this runs for hours


def test_templates_have_a_time_budget_for_the_whole_plan(monkeypatch):
    """Each value just under the 1 s limit, host after host, must not add up to hours."""
    from checkrunner.config import jinja_sandbox

    monkeypatch.setattr(jinja_sandbox, "TOTAL_TIME_BASE", 0.3)
    environment = jinja_sandbox.BoundedSandbox()
    slow = environment.from_string("{% for i in range(100000) %}{% endfor %}")
    with pytest.raises(jinja_sandbox.TemplateLimit, match="took"):
        for _ in range(1000):
            with environment.bounded():
                slow.render()
    fresh = jinja_sandbox.BoundedSandbox()  # a new plan starts with a new budget
    fast = fresh.from_string("{{ 1 + 1 }}")
    for _ in range(1000):  # values that take microseconds never reach it
        with fresh.bounded():
            assert fast.render() == "2"
