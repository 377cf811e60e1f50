"""checkrunner.config: YAML with marks, playbook model, validation messages, schema, templating,
extra vars, argument normalisation, threshold ranges and module docs."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import jsonschema
import pytest

from checkrunner import catalog
from checkrunner.config import (
    DEFAULT_CHECK_TIMEOUT,
    MarkedMap,
    MultipleConfigErrors,
    Templater,
    ThresholdSpec,
    evaluate_when,
    key_location,
    load_yaml_file,
    lookup_module,
    merge_variables,
    normalize_args,
    parse_extra_vars,
    parse_range,
    playbook_schema,
    raise_problems,
    render_module_doc,
    render_module_list,
    value_location,
)
from checkrunner.config.parse import PlaybookParser
from checkrunner.config.schema import schema_problems
from checkrunner.errors import ConfigError, Location
from checkrunner.playbook import ALERTING, load_playbook
from checkrunner.yamlio.marked import parse_yaml

PLAYBOOKS = Path(__file__).parent / "fixtures" / "playbooks"
GOOD = PLAYBOOKS / "good"
BAD = PLAYBOOKS / "bad"
HERE = Location("test.yml", 7, 3)


def error_text(path: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_playbook(path)
    return str(caught.value)


@pytest.fixture
def in_bad(monkeypatch):
    """Run from the bad fixtures' folder so messages name files as `name.yml:line:col`."""
    monkeypatch.chdir(BAD)


@pytest.fixture
def in_good(monkeypatch):
    monkeypatch.chdir(GOOD)


# -- the YAML loader --------------------------------------------------------------------------

MARKED = """\
plays:
  - name: web
    hosts: all
    checks:
      - {name: a, http: {url: "http://x/"}}
      - name: b
        disk: /
"""


def test_loader_marks_keys_values_and_items():
    doc, problems = parse_yaml(MARKED, "m.yml")
    assert problems == []
    assert doc.location == Location("m.yml", 1, 1)
    assert key_location(doc, "plays", HERE) == Location("m.yml", 1, 1)
    play = doc["plays"][0]
    assert value_location(doc["plays"], 0, HERE) == Location("m.yml", 2, 5)
    assert key_location(play, "hosts", HERE) == Location("m.yml", 3, 5)
    assert value_location(play, "hosts", HERE) == Location("m.yml", 3, 12)
    checks = play["checks"]
    assert checks.item_locations == [Location("m.yml", 5, 9), Location("m.yml", 6, 9)]
    flow = checks[0]
    assert key_location(flow, "http", HERE) == Location("m.yml", 5, 19)
    assert value_location(flow["http"], "url", HERE) == Location("m.yml", 5, 31)
    assert value_location(checks[1], "disk", HERE) == Location("m.yml", 7, 15)


def test_marked_containers_behave_like_dict_and_list():
    doc, _ = parse_yaml(MARKED, "m.yml")
    assert doc == {"plays": [{"name": "web", "hosts": "all", "checks": doc["plays"][0]["checks"]}]}
    assert json.loads(json.dumps(doc))["plays"][0]["checks"][1] == {"name": "b", "disk": "/"}
    assert value_location({"plain": 1}, "plain", HERE) == HERE  # no marks: the fallback


def test_loader_keeps_nagios_ranges_and_dates_as_text():
    doc, _ = parse_yaml(
        "range: 10:20\ntime: 1:30\nday: 2024-01-31\nport: 8080\nratio: 1.5\n", "t.yml"
    )
    assert doc == {
        "range": "10:20",
        "time": "1:30",
        "day": "2024-01-31",
        "port": 8080,
        "ratio": 1.5,
    }


def test_merge_keys_may_be_overridden_without_a_duplicate_error(in_good):
    playbook = load_playbook("anchors.yml")
    first, second = playbook.plays[0].checks
    assert (first.name, first.args, first.retries, first.delay, first.timeout) == (
        "first port",
        {"host": "127.0.0.1", "port": 22},
        2,
        0.5,
        5.0,
    )
    assert (second.name, second.args["port"], second.retries) == ("second port", 80, 2)


def test_duplicate_key_names_both_lines(in_bad):
    text = error_text("duplicate_key.yml")
    assert text.startswith(
        "duplicate_key.yml:8:7: duplicate key 'warn': first at line 6, again at line 8"
    )
    assert "hint: YAML would silently keep only the last one" in text


@pytest.mark.parametrize(
    ("fixture", "start", "hint"),
    [
        ("malformed.yml", "malformed.yml:6:1: invalid YAML:", "close the { } or [ ]"),
        (
            "tab_indent.yml",
            "tab_indent.yml:4:1: invalid YAML: found character '\\t'",
            "spaces only",
        ),
        (
            "unquoted_at_range.yml",
            "unquoted_at_range.yml:6:13: invalid YAML: found character '@'",
            'crit: "@10:20"',
        ),
    ],
)
def test_malformed_yaml_points_at_the_problem(in_bad, fixture, start, hint):
    text = error_text(fixture)
    assert text.startswith(start)
    assert hint in text
    assert "Traceback" not in text


def test_yaml_problems_without_a_playbook(tmp_path):
    two_docs = tmp_path / "two.yml"
    two_docs.write_text("a: 1\n---\nb: 2\n")
    assert "two.yml:2:1: invalid YAML: expected a single document" in error_text(str(two_docs))
    control = tmp_path / "control.yml"
    control.write_text("a: b\nc: \x07\n")
    assert (
        "control.yml:2:4: invalid YAML: special characters are not allowed (character #x0007)"
        in error_text(str(control))
    )
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"a: \xff\xfe\n")
    assert "not UTF-8 text" in error_text(str(binary))


@pytest.mark.parametrize("fixture", ["empty.yml", "comments_only.yml"])
def test_empty_playbook(in_bad, fixture):
    text = error_text(fixture)
    assert text.startswith(f"{fixture}: playbook is empty")
    assert "hint: a playbook is a list of plays, e.g.: - {name: basics, hosts: all" in text


def test_missing_playbook_file(tmp_path):
    text = error_text(str(tmp_path / "nope.yml"))
    assert text.startswith("playbook not found: ") and text.rstrip().endswith(("check the path",))
    assert "nope.yml" in text


def test_load_yaml_file_raises_all_duplicates(tmp_path):
    path = tmp_path / "v.yml"
    path.write_text("a: 1\nb: 2\na: 3\nb: 4\n")
    with pytest.raises(MultipleConfigErrors) as caught:
        load_yaml_file(str(path))
    assert [(e.location.line, e.location.column) for e in caught.value.errors] == [(3, 1), (4, 1)]


# -- the playbook model -----------------------------------------------------------------------


def test_full_playbook_model(in_good):
    playbook = load_playbook("full.yml")
    web, databases = playbook.plays
    assert (web.name, web.hosts, web.index, web.timeout, web.become, web.connection) == (
        "web tier",
        "web:&prod",
        0,
        20.0,
        False,
        None,
    )
    assert web.location == Location("full.yml", 2, 3)
    assert web.vars_files == ["vars/common.yml"]
    assert [c.id for c in web.checks] == [f"0.{i}" for i in range(7)]
    cpu, root, data, health, port, queue, workers = web.checks

    assert (cpu.module, cpu.args, cpu.metric, cpu.warn, cpu.crit) == (
        "cpu",
        {"sample": "1s"},
        "busy",
        80,
        95,
    )
    assert cpu.location == Location("full.yml", 15, 7)
    assert cpu.module_location == Location("full.yml", 16, 7)
    assert (root.args, root.crit, root.metric) == ({"path": "/"}, "90%", "used_percent")
    assert value_location(root.args, "path", HERE) == Location("full.yml", 20, 13)
    assert (data.args, data.metric, data.crit) == ({"path": "{{ data_dir }}"}, "free", "2GiB:")

    assert health.args["status"] == [200, "{{ extra_status }}"]  # raw: rendered per host later
    assert (health.warn, health.crit) == ("500ms", "{{ latency_crit }}")
    assert health.thresholds == {
        "status_code": ThresholdSpec(crit="200:399"),
        "cert_days_left": ThresholdSpec(warn="21:", crit="7:"),
    }
    assert list(health.threshold_map()) == ["latency", "status_code", "cert_days_left"]
    assert (health.timeout, health.retries, health.delay) == (10.0, 3, 2.0)
    assert health.tags == ["web", "health"]
    assert health.labels == {"team": "web", "tier": "frontend", "severity": "page"}
    assert health.key_locations["crit"] == Location("full.yml", 34, 13)

    assert (port.timeout, port.retries, port.delay, port.tags, port.become) == (
        20.0,
        0,
        1.0,
        ["web"],
        False,
    )
    assert queue.when == "level | int > 1" and queue.crit == "@41:43"
    assert workers.when == ["workers_expected", "level | int < 10"]

    memory, load, backup, lag = databases.checks
    assert (databases.hosts, databases.connection, databases.name) == (
        "db:db_replicas",
        "ssh",
        "databases",
    )
    assert memory.timeout == DEFAULT_CHECK_TIMEOUT and memory.become is None and memory.tags == []
    assert (load.name, load.metric, load.id) == (
        "load",
        "load1_per_core",
        "1.1",
    )  # name defaults to the module
    assert (backup.name, backup.args) == (
        "file /var/backups/latest.sql.gz",
        {"path": "/var/backups/latest.sql.gz"},
    )
    assert (lag.metric, lag.become) == ("exit_code", True)
    assert playbook.all_checks()[-1] is lag


def test_vars_files_merge_over_play_vars_and_keep_their_location(in_good):
    play = load_playbook("full.yml").plays[0]
    assert play.vars["health_port"] == 9090  # the vars file wins
    assert play.vars["base_url"] == "http://127.0.0.1:{{ health_port }}"
    assert value_location(play.vars, "extra_status", HERE) == Location("vars/common.yml", 2, 15)
    assert value_location(play.vars, "data_dir", HERE) == Location("full.yml", 7, 15)


def test_mapping_form(in_good):
    playbook = load_playbook("mapping_form.yml")
    assert [c.name for c in playbook.plays[0].checks] == ["memory", "load"]
    assert playbook.path == "mapping_form.yml" and playbook.directory == str(GOOD)


# -- one clear message per mistake --------------------------------------------------------------

BAD_CASES = [
    (
        "not_a_list.yml",
        "1:1",
        "a playbook is a list of plays or a mapping with plays:",
        "a playbook is a list",
    ),
    ("single_play_mapping.yml", "1:1", "this is a single play", "start the play with '- '"),
    ("alerting_without_route.yml", "6:1", "alerting needs a route:", "add route:"),
    (
        "unknown_top_key.yml",
        "1:1",
        "unknown key 'play' in the playbook — did you mean 'plays'?",
        "allowed keys: plays",
    ),
    ("no_plays.yml", "1:1", "the playbook has no plays", "a playbook is a list"),
    (
        "play_without_hosts.yml",
        "1:3",
        "play 'no hosts here' has no hosts",
        "add hosts: all or a pattern",
    ),
    (
        "play_unknown_key.yml",
        "3:3",
        "unknown key 'var' in play 'p' — did you mean 'vars'?",
        "allowed keys: name, hosts",
    ),
    ("ansible_tasks.yml", "3:3", "'tasks' is not a keyword of play 'p'", "under checks:"),
    ("play_without_checks.yml", "1:3", "play 'idle' has no checks", "add checks:"),
    (
        "check_without_module.yml",
        "4:7",
        "check 'nothing' has no module: a check needs exactly one module: cgroup, command, cpu, discover, disk,",
        "e.g. memory: {}",
    ),
    (
        "check_two_modules.yml",
        "4:7",
        "check 'both' has both 'http' and 'tcp'; split it into two checks",
        "exactly one module",
    ),
    (
        "unknown_module.yml",
        "5:7",
        "unknown module 'htp' — did you mean 'http'?",
        "modules: cgroup, command, cpu",
    ),
    (
        "unknown_option.yml",
        "7:9",
        "unknown option 'stauts' for module 'http' — did you mean 'status'?",
        "http takes: url, method, headers",
    ),
    (
        "missing_required_option.yml",
        "5:13",
        "module 'http' needs the option 'url'",
        "add url: <url>",
    ),
    (
        "wrong_type.yml",
        "7:24",
        "option 'max_redirects' of module 'http': expected a whole number, got the text 'lots'",
        "write a whole number",
    ),
    (
        "bad_choice.yml",
        "5:48",
        "'get' is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS — did you mean 'GET'?",
        "case-sensitive",
    ),
    (
        "required_one_of.yml",
        "5:16",
        "module 'process' needs one of the options name, pattern",
        "add one of them",
    ),
    (
        "mutually_exclusive.yml",
        "5:38",
        "options 'address' and 'port' of module 'tcp' cannot be used together",
        "keep only one",
    ),
    (
        "free_form_not_allowed.yml",
        "5:12",
        "module 'cpu' takes a mapping of options, not the text '1s'",
        "write cpu: {sample: ...}",
    ),
    (
        "unknown_check_key.yml",
        "6:7",
        "unknown key 'retry' in check 'flaky' — did you mean 'retries'?",
        "a check has one module",
    ),
    ("bad_threshold.yml", "6:13", "warn: 'lots' is neither a number nor a range", "Nagios range"),
    ("reversed_range.yml", "6:13", "crit: '20:10' starts above its end (20 > 10)", "Nagios range"),
    (
        "threshold_unit_mismatch.yml",
        "6:13",
        "warn of 'busy': '500ms' has a duration unit but the measurement is in '%'",
        "write a number in %",
    ),
    (
        "unknown_metric.yml",
        "6:15",
        "module 'disk' does not measure 'used_precent' — did you mean 'used_percent'?",
        "disk measures: used_percent",
    ),
    (
        "thresholds_unknown_metric.yml",
        "8:9",
        "module 'http' does not measure 'status' — did you mean 'status_code'?",
        "http measures:",
    ),
    (
        "thresholds_twice.yml",
        "8:9",
        "thresholds: 'latency' already has warn/crit on the check itself",
        "keep one of the two",
    ),
    (
        "no_default_metric.yml",
        "6:13",
        "crit: module 'nagios' has no default metric",
        "add metric: one of exit_code, execution_time",
    ),
    (
        "baseline_two_methods.yml",
        "6:41",
        "warn: a baseline takes exactly one of factor, sigma and mad, not factor and sigma",
        "keep one: factor (× mean), sigma (mean ± k·σ) or mad (median ± k·MAD)",
    ),
    (
        "baseline_unknown_key.yml",
        "9:9",
        "warn: unknown key 'seasonality' in a baseline",
        "allowed keys: baseline, factor, sigma, mad, seasonal, direction, min_samples",
    ),
    (
        "baseline_on_flag.yml",
        "7:25",
        "crit: a baseline needs a numeric measurement that varies, but 'success' of module "
        "'http' is a yes/no flag (1 or 0)",
        "compare it with a static threshold (e.g. crit: 1:)",
    ),
    (
        "baseline_bad_fallback.yml",
        "6:46",
        "crit: fallback: 'lots' is neither a number nor a range",
        "the fallback is a static threshold",
    ),
    ("bad_duration.yml", "6:16", "timeout: 'fast' is not a duration", "like 500ms, 2s, 5m"),
    ("zero_timeout.yml", "3:12", "timeout: 0s is out of range: allowed 1ms to 1d", "1ms to 1d"),
    ("negative_retries.yml", "6:16", "is out of range: allowed 0 to 100", "0 for a single attempt"),
    ("templated_timeout.yml", "6:16", "timeout: cannot be a template", "before any host is known"),
    (
        "bad_when_syntax.yml",
        "6:13",
        "when: 'level >' is not a valid expression",
        "when: level | int > 5",
    ),
    (
        "when_with_braces.yml",
        "6:13",
        "when: is an expression already; it must not contain {{ }}",
        "write when: enabled",
    ),
    (
        "bad_template_syntax.yml",
        "6:19",
        "template syntax error in '{{ base }/health'",
        "Jinja2 syntax",
    ),
    ("unknown_filter.yml", "5:36", "No filter named 'intt' — did you mean 'int'?", "Jinja2 syntax"),
    (
        "bad_variable_name.yml",
        "4:5",
        "'health-port' is not a valid variable name",
        "e.g. health_port",
    ),
    (
        "bad_label_name.yml",
        "3:12",
        "'team-name' is not a valid label name",
        "letters, digits and _",
    ),
    (
        "bad_connection.yml",
        "3:15",
        "connection: 'sshh' is not one of local, ssh — did you mean 'ssh'?",
        "connection: ssh",
    ),
]


@pytest.mark.parametrize(
    ("fixture", "where", "message", "hint"), BAD_CASES, ids=[c[0] for c in BAD_CASES]
)
def test_bad_playbook_gives_one_clear_message(in_bad, fixture, where, message, hint):
    with pytest.raises(ConfigError) as caught:
        load_playbook(fixture)
    error = caught.value
    assert not isinstance(error, MultipleConfigErrors), str(error)
    assert str(error.location) == f"{fixture}:{where}"
    assert message in error.message
    assert hint in (error.hint or "")
    assert str(error) == f"{fixture}:{where}: {error.message}\n  hint: {error.hint}"


def test_missing_vars_file_names_the_path_tried(in_bad):
    with pytest.raises(ConfigError) as caught:
        load_playbook("missing_vars_file.yml")
    assert str(caught.value.location) == "missing_vars_file.yml:5:7"
    assert caught.value.message == f"vars file not found: {BAD / 'vars' / 'nope.yml'}"
    assert f"relative to the playbook's folder ({BAD})" in caught.value.hint


def test_vars_file_that_is_not_a_mapping(in_bad):
    with pytest.raises(ConfigError) as caught:
        load_playbook("vars_file_not_mapping.yml")
    assert str(caught.value).startswith(
        "vars/list.yml:1:1: vars file vars/list.yml must be a mapping"
    )


def test_all_problems_of_a_file_are_reported_in_line_order(in_bad):
    with pytest.raises(MultipleConfigErrors) as caught:
        load_playbook("many_problems.yml")
    errors = caught.value.errors
    assert [str(e.location) for e in errors] == [
        "many_problems.yml:1:3",
        "many_problems.yml:4:7",
        "many_problems.yml:10:13",
        "many_problems.yml:11:16",
    ]
    text = str(caught.value)
    assert text.splitlines()[0] == "many_problems.yml:1:3: play 'first' has no hosts"
    assert text.count("\n  hint: ") == 4
    assert "many_problems.yml:11:16: retries: expected a whole number, got the text 'many'" in text


def test_raise_problems_raises_one_error_as_itself():
    single = ConfigError("one", Location("a.yml", 2, 1))
    with pytest.raises(ConfigError) as caught:
        raise_problems([single])
    assert caught.value is single
    raise_problems([])  # nothing to report: no exception
    later, earlier = (
        ConfigError("b", Location("a.yml", 9, 1)),
        ConfigError("a", Location("a.yml", 3, 5), "fix"),
    )
    with pytest.raises(MultipleConfigErrors) as caught:
        raise_problems([later, earlier])
    assert str(caught.value) == "a.yml:3:5: a\n  hint: fix\na.yml:9:1: b"


def test_module_examples_are_valid_checks():
    """Every module's documented examples load (the docs never show a check that fails)."""
    failures = []
    for name, info in catalog.all_modules().items():
        text = "- hosts: all\n  checks:\n" + "\n".join(
            "    " + line for line in info.examples.splitlines()
        )
        document, problems = parse_yaml(text, f"{name}.EXAMPLES")
        parser = PlaybookParser(f"{name}.EXAMPLES", ALERTING)
        parser.parse(document)
        failures += [str(p) for p in problems + parser.problems]
    assert failures == []


ODD_VALUES = [
    None,
    True,
    0,
    -1,
    1.5,
    "",
    "x",
    "{{ x }}",
    "{{ x }",
    "1s",
    "5:",
    [],
    [1],
    ["a", None],
    {},
    {"a": 1},
    {1: 2},
    [[1]],
]
BASE_PLAY = {
    "name": "p",
    "hosts": "all",
    "checks": [{"name": "c", "http": {"url": "http://x/"}, "warn": 1}],
}


def odd_documents():
    """Playbooks with an odd value in every place a value can go."""
    for value in ODD_VALUES:
        yield from (value, {"plays": value}, [value], {"plays": [value]})
        for key in [
            "name",
            "hosts",
            "vars",
            "vars_files",
            "tags",
            "labels",
            "become",
            "connection",
            "timeout",
            "checks",
            "x",
        ]:
            yield [{**BASE_PLAY, key: value}]
        for key in [
            "name",
            "http",
            "tcp",
            "htp",
            "warn",
            "crit",
            "metric",
            "thresholds",
            "timeout",
            "retries",
            "delay",
            "tags",
            "labels",
            "when",
            "become",
            None,
        ]:
            for odd in (value, {"latency": value}):
                yield [{**BASE_PLAY, "checks": [{**BASE_PLAY["checks"][0], key: odd}]}]
        for name, info in catalog.all_modules().items():
            yield [{**BASE_PLAY, "checks": [{"name": "c", name: value}]}]
            for option in [*info.options, "x"]:
                args = {info.free_form: "x"} if info.free_form else {}
                yield [{**BASE_PLAY, "checks": [{"name": "c", name: {**args, option: value}}]}]


def test_odd_values_give_config_errors_and_the_schema_agrees(monkeypatch, tmp_path):
    """Never a crash; and what the parser accepts, the generated schema accepts too."""
    monkeypatch.chdir(tmp_path)  # odd vars_files names are looked up here
    disagreements = []
    for document in odd_documents():
        loaded, _ = parse_yaml(json.dumps(document), "odd.yml")
        parser = PlaybookParser("odd.yml", ALERTING)
        parser.parse(loaded)
        if not parser.problems:
            disagreements += [(document, str(p)) for p in schema_problems(loaded, "odd.yml")]
    assert disagreements == []


# -- the JSON schema --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = playbook_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_describes_modules_for_editors():
    schema = playbook_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    http = schema["$defs"]["http"]
    assert http["title"] == "http" and catalog.get("http").summary in http["description"]
    options = http["anyOf"][0]
    assert options["required"] == ["url"]
    assert options["properties"]["method"]["default"] == "GET"
    assert (
        options["properties"]["url"]["description"]
        == catalog.get("http").options["url"]["description"]
    )
    check = schema["$defs"]["Check"]
    assert check["oneOf"] == [{"required": [name]} for name in catalog.module_names()]
    assert "retries" in check["properties"] and check["additionalProperties"] is False
    playbook_schema()["$defs"].clear()  # callers get a copy
    assert "http" in playbook_schema()["$defs"]


@pytest.mark.parametrize("fixture", ["full.yml", "mapping_form.yml", "anchors.yml"])
def test_schema_accepts_the_good_playbooks(validator, fixture):
    document, _ = parse_yaml((GOOD / fixture).read_text(), fixture)
    assert [e.message for e in validator.iter_errors(document)] == []


SCHEMA_REJECTS = [
    "not_a_list.yml",
    "single_play_mapping.yml",
    "alerting_without_route.yml",
    "unknown_top_key.yml",
    "no_plays.yml",
    "play_without_hosts.yml",
    "play_unknown_key.yml",
    "ansible_tasks.yml",
    "play_without_checks.yml",
    "check_without_module.yml",
    "check_two_modules.yml",
    "unknown_module.yml",
    "unknown_option.yml",
    "missing_required_option.yml",
    "wrong_type.yml",
    "bad_choice.yml",
    "required_one_of.yml",
    "mutually_exclusive.yml",
    "free_form_not_allowed.yml",
    "unknown_check_key.yml",
    "bad_threshold.yml",
    "unknown_metric.yml",
    "thresholds_unknown_metric.yml",
    "no_default_metric.yml",
    "bad_duration.yml",
    "negative_retries.yml",
    "templated_timeout.yml",
    "bad_variable_name.yml",
    "bad_label_name.yml",
    "bad_connection.yml",
    "many_problems.yml",
    "baseline_two_methods.yml",
    "baseline_unknown_key.yml",
    "baseline_bad_fallback.yml",
]


@pytest.mark.parametrize("fixture", SCHEMA_REJECTS)
def test_schema_rejects_the_bad_playbooks(validator, fixture):
    document, _ = parse_yaml((BAD / fixture).read_text(), fixture)
    assert list(validator.iter_errors(document)) != []


def test_schema_accepts_dynamic_thresholds_and_rejects_what_the_parser_rejects(validator):
    check = {
        "name": "c",
        "cpu": {},
        "warn": {"baseline": "7d", "factor": 1.8, "seasonal": "hour_of_week"},
        "thresholds": {
            "iowait": {"crit": {"baseline": 86400, "mad": 3, "direction": "both", "fallback": 50}}
        },
    }
    assert list(validator.iter_errors([{"hosts": "all", "checks": [check]}])) == []
    for wrong in ({"factor": 0}, {"direction": "up"}, {"seasonal": "daily"}, {"min_samples": 0}):
        check["warn"] = {"baseline": "7d", "factor": 1.8, **wrong}
        assert list(validator.iter_errors([{"hosts": "all", "checks": [check]}])) != [], wrong
    check["warn"] = {"baseline": "7d"}  # no method
    assert list(validator.iter_errors([{"hosts": "all", "checks": [check]}])) != []


def test_schema_accepts_templates_for_any_option_type(validator):
    check = {
        "name": "t",
        "tcp": {"host": "{{ h }}", "port": "{{ p }}", "tls": "{{ t }}", "max_read": "{{ s }}"},
    }
    assert list(validator.iter_errors([{"hosts": "all", "checks": [check]}])) == []
    check["tcp"]["port"] = "eighty"
    assert list(validator.iter_errors([{"hosts": "all", "checks": [check]}])) != []


# -- templating -------------------------------------------------------------------------------

VARIABLES = {
    "health_port": 8080,
    "host": "web1",
    "ports": [80, 443],
    "url": "http://{{ host }}:{{ health_port }}",
    "endpoint": "{{ url }}/health",
    "flag": "false",
    "loop_a": "{{ loop_b }}",
    "loop_b": "{{ loop_a }}",
}


@pytest.fixture
def templater() -> Templater:
    return Templater(environ={"HOME": "/home/ops", "API_TOKEN": "s3cret"})


def test_single_expression_keeps_its_native_type(templater):
    assert templater.render("{{ health_port }}", VARIABLES, HERE) == 8080
    assert templater.render("{{ ports }}", VARIABLES, HERE) == [80, 443]
    assert templater.render("{{ health_port + 1 }}", VARIABLES, HERE) == 8081
    assert templater.render("{{ {'a': health_port} }}", VARIABLES, HERE) == {"a": 8080}
    assert templater.render("port {{ health_port }}", VARIABLES, HERE) == "port 8080"
    assert templater.render(" {{ health_port }}", VARIABLES, HERE) == " 8080"
    assert templater.render("no template", VARIABLES, HERE) == "no template"
    assert templater.render(42, VARIABLES, HERE) == 42


def test_render_walks_dicts_and_lists(templater):
    value = {
        "url": "{{ endpoint }}",
        "status": [200, "{{ health_port }}"],
        "nested": {"k": "{{ host }}"},
    }
    assert templater.render(value, VARIABLES, HERE) == {
        "url": "http://web1:8080/health",
        "status": [200, 8080],
        "nested": {"k": "web1"},
    }
    assert value["url"] == "{{ endpoint }}"  # the input is not changed


def test_undefined_variable_points_at_the_exact_value(templater):
    args, _ = parse_yaml("url: http://x/\nstatus:\n  - 200\n  - '{{ health_prt }}'\n", "p.yml")
    with pytest.raises(ConfigError) as caught:
        templater.render(args, VARIABLES, HERE)
    error = caught.value
    assert str(error.location) == "p.yml:4:5"
    assert error.message == "undefined variable 'health_prt' — did you mean 'health_port'?"
    assert error.hint.startswith("known variables: endpoint, env, flag, health_port, host,")


def test_rendered_mappings_keep_their_marks(templater):
    args, _ = parse_yaml("port: '{{ health_port }}'\n", "p.yml")
    rendered = templater.render(args, VARIABLES, HERE)
    assert isinstance(rendered, MarkedMap) and rendered == {"port": 8080}
    assert value_location(rendered, "port", HERE) == Location("p.yml", 1, 7)


def test_variables_are_rendered_when_used_and_loops_are_errors(templater):
    assert templater.render("{{ endpoint }}", VARIABLES, HERE) == "http://web1:8080/health"
    with pytest.raises(ConfigError) as caught:
        templater.render("{{ loop_a }}", VARIABLES, HERE)
    assert caught.value.message == "variable 'loop_a' refers to itself: loop_a -> loop_b -> loop_a"


def test_error_inside_a_variable_names_it_and_its_location(templater):
    variables = merge_variables(
        parse_yaml("base: 'http://{{ hots }}'\nhost: web1\n", "vars.yml")[0]
    )
    with pytest.raises(ConfigError) as caught:
        templater.render("{{ base }}/health", variables, HERE)
    assert str(caught.value.location) == "vars.yml:1:7"
    assert (
        caught.value.message
        == "in variable 'base': undefined variable 'hots' — did you mean 'host'?"
    )


def test_environment_access_and_secret_tracking(templater):
    assert templater.render("{{ env.HOME }}/x", VARIABLES, HERE) == "/home/ops/x"
    assert templater.render("{{ env['API_TOKEN'] }}", VARIABLES, HERE) == "s3cret"
    assert templater.environment_values_used == {"/home/ops", "s3cret"}
    assert (
        templater.render("{{ env.MISSING | default('fallback') }}", VARIABLES, HERE) == "fallback"
    )
    with pytest.raises(ConfigError) as caught:
        templater.render("{{ env.MISSING }}", VARIABLES, HERE)
    assert caught.value.message == "environment variable 'MISSING' is not set"
    assert "{{ env.MISSING | default('...') }}" in caught.value.hint
    with pytest.raises(ConfigError) as caught:
        templater.render("{{ HOME }}", VARIABLES, HERE)
    assert caught.value.hint == "'HOME' is an environment variable: write {{ env.HOME }}"


def test_a_variable_named_env_hides_the_environment(templater):
    assert templater.render("{{ env }}", {"env": "production"}, HERE) == "production"


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ ports.append(1) }}",
        "{{ 'x' * 100000000 }}",
        "{{ 2 ** 100000000 }}",
        "{{ '{0.__class__}'.format(1) }}",
    ],
)
def test_sandbox_refuses_attacks(templater, attack):
    ports_before = list(VARIABLES["ports"])
    with pytest.raises(ConfigError) as caught:
        templater.render(attack, VARIABLES, HERE)
    assert caught.value.location == HERE
    assert "sandbox" in caught.value.message or "unsafe" in caught.value.message
    assert VARIABLES["ports"] == ports_before


def test_template_errors_are_config_errors(templater):
    with pytest.raises(ConfigError) as caught:
        templater.render("{{ health_port | intt }}", VARIABLES, HERE)
    assert "No filter named 'intt' — did you mean 'int'?" in caught.value.message
    with pytest.raises(ConfigError) as caught:
        templater.render("{{ 1 / 0 }}", VARIABLES, HERE)
    assert (
        caught.value.message == "template '{{ 1 / 0 }}' failed: ZeroDivisionError: division by zero"
    )
    with pytest.raises(ConfigError) as caught:
        templater.render("{{ {'a': 1}.b }}", VARIABLES, HERE)
    assert caught.value.message == "no key 'b' in this mapping" and caught.value.hint == "it has: a"


def test_when_conditions(templater):
    assert templater.evaluate_when("health_port > 80", VARIABLES, HERE) is True
    assert templater.evaluate_when("flag", VARIABLES, HERE) is False  # "false" from -e is false
    assert templater.evaluate_when("flag | bool or host == 'web1'", VARIABLES, HERE) is True
    assert (
        templater.evaluate_when(["health_port > 80", "ports | length == 3"], VARIABLES, HERE)
        is False
    )
    assert templater.evaluate_when(None, VARIABLES, HERE) is True
    assert templater.evaluate_when(False, VARIABLES, HERE) is False
    assert evaluate_when("level | int > 5", {"level": "3"}, HERE) is False
    with pytest.raises(ConfigError) as caught:
        templater.evaluate_when("{{ flag }}", VARIABLES, HERE)
    assert caught.value.hint == "write when: flag"
    conditions, _ = parse_yaml("when:\n  - health_port > 1\n  - nope > 1\n", "w.yml")
    with pytest.raises(ConfigError) as caught:
        templater.evaluate_when(conditions["when"], VARIABLES, HERE)
    assert (
        str(caught.value.location) == "w.yml:3:5"
        and "undefined variable 'nope'" in caught.value.message
    )


def test_templater_is_safe_to_share_between_threads(templater):
    results: dict[int, object] = {}

    def render(number: int) -> None:
        for _ in range(50):
            results[number] = templater.render(
                "{{ n * 2 }}-{{ endpoint }}", {**VARIABLES, "n": number}, HERE
            )

    threads = [threading.Thread(target=render, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: f"{n * 2}-http://web1:8080/health" for n in range(8)}


# -- extra vars ---------------------------------------------------------------------------------


def test_extra_vars_forms_and_precedence(tmp_path):
    (tmp_path / "vars.yml").write_text("region: eu\nreplicas: 3\n")
    (tmp_path / "more.json").write_text('{"replicas": 5, "debug": true}')
    extra = parse_extra_vars(
        [
            "level=3 msg='hello world'",
            '{"port": 8080, "ids": [1, 2]}',
            "@vars.yml",
            "@more.json",
            "region=us",
        ],
        cwd=tmp_path,
    )
    assert extra == {
        "level": "3",
        "msg": "hello world",
        "port": 8080,
        "ids": [1, 2],
        "region": "us",
        "replicas": 5,
        "debug": True,
    }
    assert value_location(extra, "replicas", HERE) == Location(str(tmp_path / "more.json"), 1, 14)
    assert parse_extra_vars(["{a: 1, b: [x]}"]) == {"a": 1, "b": ["x"]}
    assert parse_extra_vars([]) == {}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("@missing.yml", "extra vars file not found: "),
        ("level", "'level' is not name=value"),
        ("my-var=1", "'my-var' is not a valid variable name"),
        ("msg='unclosed", "No closing quotation"),
        ("[1, 2]", "extra vars must be a mapping of name: value, not a list"),
        ("{a: 1", "invalid YAML"),
        ("  ", "-e was given an empty value"),
    ],
)
def test_extra_vars_errors(tmp_path, item, message):
    with pytest.raises(ConfigError) as caught:
        parse_extra_vars([item], cwd=tmp_path)
    assert message in str(caught.value)


# -- normalize_args -----------------------------------------------------------------------------


def test_normalize_applies_defaults_and_coerces(tmp_path):
    http = catalog.get("http")
    args = normalize_args(
        http,
        {
            "url": "http://x/",
            "status": "204",
            "body": "ok",
            "timeout": "2s",
            "max_body": "64KB",
            "verify_tls": "no",
        },
        HERE,
    )
    assert set(args) == set(http.options)  # complete: every option present
    assert args["status"] == [204] and args["body"] == ["ok"]
    assert args["timeout"] == 2.0 and args["max_body"] == 64000 and args["verify_tls"] is False
    assert (
        args["method"] == "GET" and args["max_redirects"] == 10 and args["follow_redirects"] is True
    )
    assert args["ca_file"] is None
    args["status"].append(500)
    # the defaults are copies: changing one check's arguments leaves the next check's alone
    assert normalize_args(http, {"url": "http://x/"}, HERE)["status"] == [200]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("yes", True),
        ("No", False),
        ("on", True),
        ("OFF", False),
        ("1", True),
        ("0", False),
        (True, True),
        (0, False),
    ],
)
def test_normalize_bool_words(value, expected):
    assert normalize_args(catalog.get("cpu"), {"per_core": value}, HERE)["per_core"] is expected


def test_normalize_free_form_null_and_numbers():
    assert normalize_args(catalog.get("disk"), "/data", HERE) == {"path": "/data"}
    assert normalize_args(catalog.get("cpu"), None, HERE) == {"sample": 1.0, "per_core": False}
    tcp = normalize_args(catalog.get("tcp"), {"host": "db", "port": "5432", "max_read": 1024}, HERE)
    assert (tcp["port"], tcp["max_read"]) == (5432, 1024)
    assert normalize_args(catalog.get("tcp"), {"host": "db", "port": 5432.0}, HERE)["port"] == 5432


@pytest.mark.parametrize(
    ("module", "args", "message", "hint"),
    [
        ("http", {"method": "GET"}, "module 'http' needs the option 'url'", "add url: <url>"),
        ("http", {"url": "http://h/", "method": "get"}, "did you mean 'GET'?", "case-sensitive"),
        (
            "http",
            {"url": "http://h/", "stauts": [200]},
            "unknown option 'stauts' for module 'http' — did you mean 'status'?",
            "http takes:",
        ),
        (
            "http",
            {"url": "http://h/", "status": [200, "ok"]},
            "option 'status' of module 'http': item 2: expected a whole number",
            "whole number",
        ),
        (
            "http",
            {"url": "http://h/", "timeout": "soon"},
            "option 'timeout' of module 'http': 'soon' is not a duration",
            "500ms",
        ),
        ("http", {"url": "http://h/", "max_body": "lots"}, "'lots' is not a size", "64MB"),
        (
            "http",
            {"url": "http://h/", "verify_tls": "maybe"},
            "expected yes or no, got the text 'maybe'",
            "yes or no",
        ),
        ("http", {"url": ["a"]}, "expected text, got a list", "quotes"),
        (
            "process",
            {"user": "root"},
            "module 'process' needs one of the options name, pattern",
            "add one of them",
        ),
        (
            "tcp",
            {"address": "h:1", "host": "h"},
            "options 'address' and 'host' of module 'tcp' cannot be used together",
            "only one",
        ),
        (
            "memory",
            {"x": 1},
            "unknown option 'x' for module 'memory'",
            "memory takes no options: write memory: {}",
        ),
        (
            "cpu",
            "1s",
            "module 'cpu' takes a mapping of options, not the text '1s'",
            "write cpu: {sample: ...}",
        ),
    ],
)
def test_normalize_errors(module, args, message, hint):
    with pytest.raises(ConfigError) as caught:
        normalize_args(catalog.get(module), args, HERE)
    assert message in caught.value.message
    assert hint in caught.value.hint
    assert caught.value.location == HERE


def test_normalize_errors_point_at_the_option_and_are_all_reported():
    args, _ = parse_yaml("url: http://x/\nmax_redirects: many\nverify_tls: perhaps\n", "a.yml")
    with pytest.raises(MultipleConfigErrors) as caught:
        normalize_args(catalog.get("http"), args, HERE)
    assert [str(e.location) for e in caught.value.errors] == ["a.yml:2:16", "a.yml:3:13"]


# -- threshold ranges -------------------------------------------------------------------------

VALUES = (-5, 0, 5, 10, 15, 20, 25)
RANGE_TABLE = [
    # text,      values in VALUES that alert
    ("10", [15, 20, 25]),  # bare number: ~:10, so negatives do not alert (unlike Nagios' 0..10)
    (10, [15, 20, 25]),
    (2.5, [5, 10, 15, 20, 25]),
    ("10:", [-5, 0, 5]),
    ("~:10", [15, 20, 25]),
    ("10:20", [-5, 0, 5, 25]),
    ("@10:20", [10, 15, 20]),
    ("@10", [-5, 0, 5, 10]),
    ("@10:", [10, 15, 20, 25]),
    ("-5:5", [10, 15, 20, 25]),
    (" 0:20 ", [-5, 25]),
]


@pytest.mark.parametrize(("text", "alerting"), RANGE_TABLE)
def test_range_alert_semantics(text, alerting):
    parsed = parse_range(text)
    assert [v for v in VALUES if parsed.alerts(v)] == alerting


def test_range_fields():
    parsed = parse_range("@10:20")
    assert (parsed.start, parsed.end, parsed.inside, parsed.text, str(parsed)) == (
        10,
        20,
        True,
        "@10:20",
        "@10:20",
    )
    assert parse_range("~:7").start == -math.inf and parse_range("7:").end == math.inf


@pytest.mark.parametrize(
    ("text", "unit", "start", "end"),
    [
        ("500ms", "s", -math.inf, 0.5),
        ("1m:1h", "s", 60, 3600),
        ("30d:", "d", 30, math.inf),
        ("2w", "d", -math.inf, 14),
        ("1GiB:", "B", 1024**3, math.inf),
        ("512MB", "B", -math.inf, 512e6),
        ("80%", "%", -math.inf, 80),
        ("10:20", "", 10, 20),  # no suffix: any unit
    ],
)
def test_range_units(text, unit, start, end):
    parsed = parse_range(text, unit)
    assert (parsed.start, parsed.end, parsed.unit_kind) == (start, end, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lots", "'lots' is neither a number nor a range"),
        ("", "'' is an empty range"),
        ("@", "'@' is an empty range"),
        (":10", "':10' has no start: write ~:10 for no lower bound"),
        ("~:", "'~:' has no bounds, so it could never alert"),
        ("20:10", "'20:10' starts above its end (20 > 10)"),
        ("1:2:3", "'1:2:3' has more than one ':'"),
        ("10:x", "'x' in '10:x' is not a number"),
        (
            "5M",
            "unknown unit 'M' in '5M' (durations: ms s m h d w; sizes: B KB MB GB TB or KiB MiB GiB TiB; or %)",
        ),
        ("1ms:1GB", "'1ms:1GB' mixes a duration unit and a size unit"),
        (True, "a threshold is a number or a range string, not a yes/no value (true)"),
        (None, "a threshold is a number or a range string, not nothing (null)"),
        ([1, 2], "a threshold is a number or a range string, not a list"),
        (float("nan"), "threshold nan is not a finite number"),
    ],
)
def test_bad_ranges(text, message):
    with pytest.raises(ValueError) as caught:
        parse_range(text)
    assert str(caught.value) == message


def test_range_unit_must_match_the_measurement():
    with pytest.raises(ValueError) as caught:
        parse_range("500ms", "%")
    assert str(caught.value) == "'500ms' has a duration unit but the measurement is in '%'"
    with pytest.raises(ValueError) as caught:
        parse_range("5MB", "")
    assert "measurement is in plain numbers (no unit)" in str(caught.value)


# -- checkrun doc -------------------------------------------------------------------------------


def test_module_doc_text():
    info = catalog.get("http")
    text = render_module_doc(info)
    assert text.startswith(f"http — {info.summary}\n")
    lines = text.splitlines()
    assert "  NAME              TYPE           REQUIRED  DEFAULT  DESCRIPTION" in lines
    assert any(line.startswith("  url ") and " url " in line and " yes " in line for line in lines)
    assert any(
        line.startswith("  status ") and "list of int" in line and "[200]" in line for line in lines
    )
    assert "Choices: GET, HEAD, POST" in " ".join(text.split())
    assert "http: VALUE is short for http: {url: VALUE}." in text
    assert any(
        line.startswith("  latency ") and " s " in line and "(default metric)" in line
        for line in lines
    )
    assert "EXAMPLES\n  - name: app health" in text
    assert max(len(line) for line in lines if not line.startswith("    ")) <= 88


def test_module_doc_without_options_and_default_metric():
    assert "OPTIONS\n  none: write memory: {}" in render_module_doc(catalog.get("memory"))
    nagios = render_module_doc(catalog.get("nagios"))
    assert "No default metric: checks with warn/crit say which one with metric:." in nagios


def test_module_list_and_lookup():
    listing = render_module_list()
    for name, info in catalog.all_modules().items():
        assert any(
            line.split()[:1] == [name] and info.summary[:40] in line
            for line in listing.splitlines()
        )
    assert lookup_module("http").name == "http"
    with pytest.raises(ConfigError) as caught:
        lookup_module("htp")
    assert caught.value.message == "unknown module 'htp' — did you mean 'http'?"
    assert caught.value.hint.startswith("modules: cgroup, command, cpu, discover, disk")
