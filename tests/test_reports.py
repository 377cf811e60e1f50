"""Report formats: each one renders hand-built runs, and the output is parsed back and checked."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from checkrunner.errors import ConfigError
from checkrunner.report import (
    REPORTERS,
    JsonReporter,
    JunitReporter,
    MarkdownReporter,
    NagiosReporter,
    Reporter,
    TerminalReporter,
    atomic_write,
    color_wanted,
    create_reporter,
    create_reporters,
    nagios_exit_code,
    nagios_state,
    parse_spec,
)
from checkrunner.report.base import write_to_stream
from checkrunner.report.formatting import format_value
from checkrunner.report.json_report import finite_numbers, json_chunks, read_run
from checkrunner.report.markdown import MAX_TABLE_ROWS
from checkrunner.report.nagios import perfdata_item, quote_label
from checkrunner.report.terminal import FULL_TABLE_MAX_ROWS
from checkrunner.results import (
    BaselineBound,
    CheckResult,
    HostResult,
    RemediationResult,
    RunResult,
    Status,
    Thresholds,
)
from checkrunner.safe_text import escape_unprintable_json, one_line, printable
from checkrunner.shards import ShardInfo

DOCS = Path(__file__).resolve().parent.parent / "docs"
SCHEMA = json.loads((DOCS / "json-report.schema.json").read_text())
ANSI_ESCAPE = "\x1b"
START = 1_700_000_000.0


def check(
    host: str,
    name: str,
    status: Status,
    value: float | None = None,
    unit: str = "",
    message: str = "",
    **extra,
) -> CheckResult:
    return CheckResult(
        host=host,
        play="web tier",
        name=name,
        module="disk",
        status=status,
        message=message,
        metric="used" if value is not None else None,
        value=value,
        unit=unit,
        measurements={"used": value} if value is not None else {},
        units={"used": unit} if unit else {},
        thresholds=Thresholds(warn="80", crit="90"),
        duration=0.25,
        check_id=f"0.{abs(hash(name)) % 100}",
        **extra,
    )


def mixed_run(fail_on: str = "critical") -> RunResult:
    """Every status once or more, and an unreachable host."""
    web1 = HostResult(
        host="web1",
        address="10.0.0.1",
        connection="ssh",
        duration=0.5,
        started_at=START + 0.01,
        checks=[
            check("web1", "cpu busy", Status.OK, 12.5, "%", "12.5% busy"),
            check(
                "web1",
                "root filesystem",
                Status.CRITICAL,
                95.04,
                "%",
                "disk / 95.0% used | nearly full",
            ),
            check(
                "web1",
                "mem available",
                Status.WARNING,
                1.5 * 1024**3,
                "B",
                "low memory",
                attempts=3,
            ),
            check("web1", "app health", Status.UNKNOWN, None, "", "timed out after 2s"),
        ],
    )
    web2 = HostResult(
        host="web2",
        connection="ssh",
        duration=0.3,
        checks=[
            check("web2", "http latency", Status.OK, 0.0123, "s", "200 OK"),
            check("web2", "optional", Status.SKIPPED, None, "", "when: false"),
        ],
    )
    db1 = HostResult(
        host="db1",
        connection="ssh",
        reachable=False,
        reason="timeout",
        message="connection timed out after 10s",
        duration=10.0,
    )
    return RunResult(
        playbook="playbooks/site.yml",
        started_at=START,
        finished_at=START + 1.234,
        hosts=[web1, web2, db1],
        fail_on=fail_on,
    )


def ok_run(hosts: int = 1, checks_per_host: int = 2) -> RunResult:
    return RunResult(
        playbook="ok.yml",
        started_at=START,
        finished_at=START + 0.5,
        hosts=[
            HostResult(
                host=f"host{h}",
                checks=[
                    check(f"host{h}", f"check {c}", Status.OK, float(c), "%", "fine")
                    for c in range(checks_per_host)
                ],
            )
            for h in range(hosts)
        ],
    )


def render(reporter_class: type[Reporter], run: RunResult, **options) -> str:
    out = io.StringIO()
    reporter_class(None, stream=out, **options).finish(run)
    return out.getvalue()


class TtyStringIO(io.StringIO):
    """An in-memory stream that says it is a terminal, as a real pty would."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)


# --- registry --------------------------------------------------------------------------


def test_registry_names_match_their_classes():
    assert set(REPORTERS) == {
        "terminal",
        "json",
        "junit",
        "markdown",
        "html",
        "nagios",
        "prometheus",
    }
    for name, reporter_class in REPORTERS.items():
        assert issubclass(reporter_class, Reporter)
        assert reporter_class.name == name


def test_no_specs_means_the_terminal_report_on_stdout():
    reporters = create_reporters([])
    assert [type(r) for r in reporters] == [TerminalReporter]
    assert reporters[0].writes_to_stdout


def test_spec_parsing_splits_format_and_path():
    assert parse_spec("junit:out/report.xml") == ("junit", "out/report.xml")
    assert parse_spec("JSON") == ("json", None)
    assert parse_spec("json:-") == ("json", None)
    assert parse_spec("markdown:C:/reports/x.md") == ("markdown", "C:/reports/x.md")


def test_create_reporter_passes_path_and_verbosity(tmp_path: Path):
    reporter = create_reporter(f"junit:{tmp_path}/r.xml", verbose=2)
    assert isinstance(reporter, JunitReporter)
    assert reporter.path == f"{tmp_path}/r.xml"
    assert reporter.verbose == 2
    assert not reporter.writes_to_stdout


def test_unknown_format_is_a_config_error_with_a_suggestion():
    with pytest.raises(ConfigError) as caught:
        create_reporter("jsno:out.json")
    assert "unknown report format 'jsno'" in caught.value.message
    assert "did you mean 'json'?" in caught.value.hint
    assert "junit" in caught.value.hint  # the known formats are listed too


def test_unknown_format_without_a_close_match_lists_the_formats():
    with pytest.raises(ConfigError) as caught:
        create_reporters(["xyzzy"])
    assert "did you mean" not in caught.value.hint
    assert "markdown, nagios, prometheus, terminal" in caught.value.hint


def test_only_one_reporter_may_write_to_stdout(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        create_reporters(["terminal", "json"])
    assert "only one report can go to stdout" in caught.value.message
    assert "terminal" in caught.value.message and "json" in caught.value.message
    reporters = create_reporters(["terminal", f"json:{tmp_path}/r.json", f"junit:{tmp_path}/r.xml"])
    assert [r.writes_to_stdout for r in reporters] == [True, False, False]


def test_two_reports_cannot_share_a_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="would both write"):
        create_reporters([f"json:{tmp_path}/r.out", f"junit:{tmp_path}/./r.out"])


def test_a_report_path_that_is_a_directory_is_rejected_before_the_run(tmp_path: Path):
    with pytest.raises(ConfigError, match="is a directory"):
        create_reporter(f"json:{tmp_path}")


def test_a_report_path_under_a_file_is_rejected(tmp_path: Path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        create_reporter(f"json:{tmp_path}/plain/r.json")


# --- writing ---------------------------------------------------------------------------


def test_file_report_creates_parent_directories_and_leaves_no_temp_files(tmp_path: Path):
    target = tmp_path / "nested" / "deeper" / "report.json"
    create_reporter(f"json:{target}").finish(mixed_run())
    assert json.loads(target.read_text())["playbook"] == "playbooks/site.yml"
    assert os.listdir(target.parent) == ["report.json"]


def test_file_report_replaces_the_old_file_atomically(tmp_path: Path):
    target = tmp_path / "report.md"
    target.write_text("old report\n")
    old_inode = target.stat().st_ino
    with open(target) as reader_of_old_file:
        create_reporter(f"markdown:{target}").finish(mixed_run())
        # A reader that had the old file open still sees all of it: the file was replaced,
        # not truncated and rewritten in place.
        assert reader_of_old_file.read() == "old report\n"
    assert target.stat().st_ino != old_inode
    assert "## ❌ checkrun: CRITICAL" in target.read_text()


def test_failed_atomic_write_keeps_the_target_and_removes_the_temp_file(tmp_path: Path):
    blocker = tmp_path / "report.json"
    blocker.mkdir()
    (blocker / "keep").write_text("x")
    with pytest.raises(OSError):
        atomic_write(str(blocker), "{}")
    assert sorted(os.listdir(tmp_path)) == ["report.json"]
    assert (blocker / "keep").read_text() == "x"


def test_report_file_mode_follows_the_umask(tmp_path: Path):
    previous = os.umask(0o027)
    try:
        atomic_write(str(tmp_path / "r.txt"), "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "r.txt").stat().st_mode) == 0o640


def test_stdout_is_looked_up_when_the_report_is_written(capsys: pytest.CaptureFixture[str]):
    reporter = create_reporter("nagios")
    reporter.finish(mixed_run())
    assert capsys.readouterr().out.startswith("CHECKRUN CRITICAL - ")


def test_a_stream_that_cannot_encode_a_character_gets_an_escape_instead():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    write_to_stream(stream, "disk full \u2013 log line \udcff\n")
    assert raw.getvalue() == b"disk full \\u2013 log line \\udcff\n"


# --- value formatting and text safety --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (None, "%", ""),
        (93.14, "%", "93.1%"),
        (100, "%", "100.0%"),
        (512, "B", "512 B"),
        (1.5 * 1024**3, "B", "1.50 GiB"),
        (12.3 * 1024**2, "bytes", "12.3 MiB"),
        (300 * 1024**4, "B", "300 TiB"),
        (2048, "B/s", "2.00 KiB/s"),
        (0.0123, "s", "12.3ms"),
        (0.25, "s", "250ms"),
        (0, "s", "0ms"),
        (1.234, "s", "1.23s"),
        (75, "s", "1m15s"),
        (2 * 3600 + 5 * 60, "s", "2h05m"),
        (3 * 86400 + 4 * 3600, "s", "3d4h"),
        (1500, "ms", "1.5s"),
        (3, "", "3"),
        (1.23456, "", "1.23"),
        (42, "conns", "42 conns"),
        (float("nan"), "%", "nan"),
    ],
)
def test_values_are_formatted_for_people(value, unit, expected):
    assert format_value(value, unit) == expected


def test_control_characters_are_made_visible():
    assert printable("red \x1b[31m bell \x07") == "red \\x1b[31m bell \\x07"
    assert printable("tab\tand\nnewline stay") == "tab\tand\nnewline stay"
    assert one_line("two\r\n  lines\r\n") == "two lines"
    assert printable("carriage\rreturn") == "carriage\\x0dreturn"


# --- json ------------------------------------------------------------------------------


def test_json_report_validates_against_the_published_schema():
    document = json.loads(render(JsonReporter, mixed_run()))
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert document["summary"] == {
        "OK": 2,
        "WARNING": 1,
        "CRITICAL": 1,
        "UNKNOWN": 1,
        "SKIPPED": 1,
        "UNREACHABLE": 1,
    }
    assert document["exit_code"] == 2
    assert [h["host"] for h in document["hosts"]] == ["web1", "web2", "db1"]
    assert document["hosts"][2]["status"] == "UNREACHABLE"
    assert document["hosts"][2]["reason"] == "timeout"


def test_json_report_is_pretty_printed_utf8():
    run = mixed_run()
    run.hosts[0].checks[0].message = "Auslastung 12,5 % – ok"
    text = render(JsonReporter, run)
    assert text.startswith('{\n  "schema_version": 1,')
    assert "Auslastung 12,5 % – ok" in text


def test_json_report_writes_non_finite_numbers_as_null():
    run = mixed_run()
    run.hosts[0].checks[0].value = float("nan")
    run.hosts[0].checks[0].measurements = {"used": float("inf")}
    text = render(JsonReporter, run)
    assert "NaN" not in text and "Infinity" not in text
    document = json.loads(text)
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert document["hosts"][0]["checks"][0]["value"] is None
    assert document["hosts"][0]["checks"][0]["measurements"] == {"used": None}


def _whole_document_text(run: RunResult) -> str:
    """What the JSON report was before it was streamed: the document built whole."""
    text = json.dumps(finite_numbers(run.to_dict()), indent=2, ensure_ascii=False, default=str)
    return escape_unprintable_json(text) + "\n"


@pytest.mark.parametrize("hosts", [0, 1, 3])
def test_the_streamed_json_report_is_the_whole_document_s_text(tmp_path: Path, hosts: int):
    run = mixed_run()
    run.hosts = run.hosts[:hosts]
    if run.hosts:
        run.hosts[0].checks[0].value = float("nan")
        run.hosts[0].checks[0].message = "bidi \u202e and C1 \x85 and a newline\n"
    run.shard = ShardInfo(2, 3, [("web1", 1), ("web2", 2), ("db1", 3)])
    path = tmp_path / "run.json"
    JsonReporter(str(path)).finish(run)
    assert path.read_text(encoding="utf-8") == _whole_document_text(run)
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(path.read_text()))
    assert render(JsonReporter, run) == _whole_document_text(run)


def test_a_json_report_read_back_is_the_same_run():
    """`checkrun merge` reads shards' reports with read_run: every field the report holds
    comes back (a field added to the report and not to the reader fails here)."""
    run = mixed_run()
    check = run.hosts[0].checks[0]
    check.baselines = [
        BaselineBound("busy", "warn", "sigma", 604800.0, "hour_of_day", "above", 40, 12.5,
                      2.0, None, 18.5, False, "mean + 3σ")
    ]  # fmt: skip
    check.facts = {"source": "procfs", "nested": {"list": [1, "two", None]}}
    check.remediation = RemediationResult(
        "restart app", "restart app.service", "remediated", "app CRITICAL → OK", None, 0, 4.2,
        "OK", "fine",
    )  # fmt: skip
    run.shard = ShardInfo(2, 3, [("web1", 2), ("web2", 1), ("db1", 3)])
    text = render(JsonReporter, run)
    again = read_run(json.loads(text), "run.json")
    assert render(JsonReporter, again) == text


def test_the_json_report_is_written_host_by_host():
    """finish() hands the file its text in pieces, never the whole document at once."""
    run = ok_run(hosts=50)
    pieces = list(json_chunks(run))
    assert len(pieces) == 52
    assert max(len(piece) for piece in pieces) < len("".join(pieces)) / 20


def test_schema_rejects_a_field_the_documentation_does_not_know():
    document = json.loads(render(JsonReporter, mixed_run()))
    document["hosts"][0]["checks"][0]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA).validate(document)


def _field_names(value, names: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            names.add(key)
            # Keys of these maps are data (measurement names), not fields.
            if key not in ("measurements", "units", "facts", "labels"):
                _field_names(item, names)
    elif isinstance(value, list):
        for item in value:
            _field_names(item, names)
    return names


def test_json_documentation_describes_every_field_of_a_real_report():
    documentation = (DOCS / "json-report.md").read_text()
    document = json.loads(render(JsonReporter, mixed_run()))
    fields = _field_names(document, set())
    assert {"schema_version", "summary", "UNREACHABLE", "checks", "thresholds", "warn"} <= fields
    assert {name for name in fields if f"`{name}`" not in documentation} == set()


def test_json_documentation_example_is_valid():
    documentation = (DOCS / "json-report.md").read_text()
    example = re.search(r"```json\n(.*?)\n```", documentation, re.DOTALL)
    assert example is not None
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(example.group(1)))


def test_every_schema_field_has_a_description():
    sections = {
        "run": SCHEMA["properties"],
        "host": SCHEMA["$defs"]["host"]["properties"],
        "check": SCHEMA["$defs"]["check"]["properties"],
        "thresholds": SCHEMA["$defs"]["check"]["properties"]["thresholds"]["properties"],
    }
    missing = [
        f"{section}.{name}"
        for section, properties in sections.items()
        for name, spec in properties.items()
        if "description" not in spec
    ]
    assert missing == []


# --- junit -----------------------------------------------------------------------------


def parse_junit(run: RunResult) -> ET.Element:
    text = render(JunitReporter, run)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(text.encode("utf-8"))


def case_named(root: ET.Element, host: str, name: str) -> ET.Element:
    matches = [
        case
        for case in root.iter("testcase")
        if case.get("classname") == host and case.get("name") == name
    ]
    assert len(matches) == 1, (host, name)
    return matches[0]


def test_junit_has_one_suite_per_host_and_right_totals():
    root = parse_junit(mixed_run())
    assert root.tag == "testsuites"
    assert [suite.get("name") for suite in root.findall("testsuite")] == ["web1", "web2", "db1"]
    # 6 checks plus one "host reachable" test per host.
    assert root.attrib["tests"] == "9"
    assert root.attrib["failures"] == "1"  # CRITICAL; the WARNING is not a failure by default
    assert root.attrib["errors"] == "2"  # UNKNOWN and the unreachable host
    assert root.attrib["skipped"] == "1"
    assert float(root.attrib["time"]) == pytest.approx(1.234)


def test_junit_suite_counts_agree_with_their_testcases():
    root = parse_junit(mixed_run())
    for suite in root.findall("testsuite"):
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        for kind, attribute in (
            ("failure", "failures"),
            ("error", "errors"),
            ("skipped", "skipped"),
        ):
            assert int(suite.get(attribute)) == sum(1 for c in cases if c.find(kind) is not None)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", suite.get("timestamp"))


def test_junit_maps_each_status_to_its_element():
    root = parse_junit(mixed_run())
    critical = case_named(root, "web1", "root filesystem").find("failure")
    assert critical.get("type") == "CRITICAL"
    assert critical.get("message") == "disk / 95.0% used | nearly full"
    assert "value: 95.0% (used)" in critical.text
    assert "thresholds: warn 80, crit 90" in critical.text
    unknown = case_named(root, "web1", "app health").find("error")
    assert unknown.get("type") == "UNKNOWN"
    skipped = case_named(root, "web2", "optional").find("skipped")
    assert skipped.get("message") == "when: false"
    passing = case_named(root, "web1", "cpu busy")
    assert [child.tag for child in passing] == ["system-out"]
    assert float(passing.get("time")) == pytest.approx(0.25)


def test_junit_warning_is_a_note_unless_the_run_fails_on_warnings():
    default = case_named(parse_junit(mixed_run()), "web1", "mem available")
    assert default.find("failure") is None
    assert default.find("system-out").text.startswith("WARNING (not a test failure")
    assert "attempts: 3" in default.find("system-out").text

    strict_root = parse_junit(mixed_run(fail_on="warning"))
    strict = case_named(strict_root, "web1", "mem available")
    assert strict.find("failure").get("type") == "WARNING"
    assert strict_root.attrib["failures"] == "2"


def test_junit_unreachable_host_is_an_error_on_host_reachable():
    root = parse_junit(mixed_run())
    suite = root.find("testsuite[@name='db1']")
    assert suite.get("errors") == "1" and suite.get("tests") == "1"
    error = case_named(root, "db1", "host reachable").find("error")
    assert error.get("type") == "unreachable"
    assert error.get("message") == "timeout: connection timed out after 10s"
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["unreachable_reason"] == "timeout"
    assert properties["status"] == "UNREACHABLE"
    # A reachable host passes its reachability test.
    assert len(case_named(root, "web1", "host reachable")) == 0


def test_junit_output_stays_parsable_with_markup_and_control_characters():
    run = mixed_run()
    run.hosts[0].checks[1].message = 'bad <tag attr="x"> & \x1b[31mred\x00 ]]>'
    critical = case_named(parse_junit(run), "web1", "root filesystem").find("failure")
    assert critical.get("message") == 'bad <tag attr="x"> & \\x1b[31mred\\x00 ]]>'


def test_junit_makes_repeated_check_names_unique_within_a_host():
    run = ok_run(hosts=1, checks_per_host=0)
    host = run.hosts[0].host
    first = check(host, "disk", Status.OK, 1.0, "%")
    second = check(host, "disk", Status.OK, 2.0, "%")
    second.play = "db tier"
    run.hosts[0].checks = [first, second]
    names = [case.get("name") for case in parse_junit(run).iter("testcase")]
    assert names == ["host reachable", "disk (web tier)", "disk (db tier)"]


# --- markdown --------------------------------------------------------------------------


def test_markdown_headline_counts_problems_and_unreachable_hosts():
    text = render(MarkdownReporter, mixed_run())
    lines = text.splitlines()
    assert lines[0] == "## ❌ checkrun: CRITICAL — playbooks/site.yml"
    assert "6 checks on 3 hosts in 1.23s" in text
    assert "**1 critical**" in text and "**1 unreachable**" in text and "2 ok" in text
    assert "### Problems (3)" in text
    assert "| db1 | timeout | connection timed out after 10s |" in text


def test_markdown_problem_rows_are_worst_first_and_pipes_are_escaped():
    text = render(MarkdownReporter, mixed_run())
    problems = text.split("### Problems (3)")[1].split("###")[0]
    rows = [line for line in problems.splitlines() if line.startswith("| web")]
    assert rows == [
        "| web1 | root filesystem | ❌ CRITICAL | 95.0% | disk / 95.0% used \\| nearly full |",
        "| web1 | app health | ❓ UNKNOWN |  | timed out after 2s |",
        "| web1 | mem available | ⚠️ WARNING | 1.50 GiB | low memory |",
    ]
    for row in rows:
        assert row.count(" | ") == 4  # five cells: no pipe leaked into a cell boundary


def test_markdown_details_hold_every_result():
    text = render(MarkdownReporter, mixed_run())
    details = text.split("<details>")[1].split("</details>")[0]
    assert "<summary>All results (6 checks)</summary>" in details
    for name in (
        "cpu busy",
        "root filesystem",
        "mem available",
        "app health",
        "http latency",
        "optional",
    ):
        assert f"| {name} |" in details
    assert "| web2 | optional | ⏭️ SKIPPED |  | when: false |" in details
    assert "\n\n| Host |" in details  # GitHub needs the blank line to render the table


def test_markdown_escapes_html_and_emphasis():
    run = mixed_run()
    run.hosts[0].checks[1].message = "<script>x</script> *bold* `code`\nsecond line"
    text = render(MarkdownReporter, run)
    assert "\\<script\\>x\\</script\\> \\*bold\\* \\`code\\` second line" in text


def test_markdown_for_a_clean_run():
    text = render(MarkdownReporter, ok_run())
    assert text.startswith("## ✅ checkrun: OK")
    assert "No problems" in text
    assert "Unreachable" not in text


def test_markdown_tables_are_capped_for_step_summary_limits():
    run = ok_run(hosts=1, checks_per_host=MAX_TABLE_ROWS + 5)
    text = render(MarkdownReporter, run)
    assert "…and 5 more rows" in text
    details = text.split("<details>")[1]
    assert sum(1 for line in details.splitlines() if line.startswith("| host0 |")) == MAX_TABLE_ROWS


# --- nagios ----------------------------------------------------------------------------


def test_nagios_status_line_and_perfdata():
    lines = render(NagiosReporter, mixed_run()).splitlines()
    assert lines[0] == (
        "CHECKRUN CRITICAL - 1 critical, 1 unknown, 1 warning, 2 ok, 1 skipped on 3 hosts, "
        "1 unreachable | 'ok'=2 'warning'=1 'critical'=1 'unknown'=1 'skipped'=1 "
        "'unreachable'=1 'duration'=1.234s"
    )


def test_nagios_long_output_lists_problems_worst_first_without_pipes():
    lines = render(NagiosReporter, mixed_run()).splitlines()
    assert lines[1:] == [
        "CRITICAL - web1: root filesystem = 95.0%: disk / 95.0% used / nearly full",
        "UNKNOWN - web1: app health: timed out after 2s",
        "WARNING - web1: mem available = 1.50 GiB: low memory",
        "UNREACHABLE - db1: timeout: connection timed out after 10s",
    ]
    assert all("|" not in line for line in lines[1:])


def test_nagios_state_follows_plugin_guidelines():
    assert nagios_state(ok_run()) is Status.OK
    assert nagios_exit_code(ok_run()) == 0
    warning = ok_run()
    warning.hosts[0].checks[0].status = Status.WARNING
    assert nagios_exit_code(warning) == 1
    unknown = ok_run()
    unknown.hosts[0].checks[0].status = Status.UNKNOWN
    unknown.hosts[0].checks[1].status = Status.WARNING
    assert nagios_state(unknown) is Status.UNKNOWN
    # An unreachable host is a timeout or a refusal: CRITICAL, not UNKNOWN.
    unreachable = ok_run()
    unreachable.hosts.append(HostResult(host="gone", reachable=False, reason="refused"))
    assert nagios_state(unreachable) is Status.CRITICAL
    assert render(NagiosReporter, unreachable).startswith(
        "CHECKRUN CRITICAL - 2 ok on 2 hosts, 1 unreachable |"
    )


def test_nagios_adds_per_check_perfdata_for_a_single_host():
    run = ok_run(hosts=1, checks_per_host=0)
    run.hosts[0].checks = [
        check("host0", "cpu busy", Status.OK, 12.5, "%"),
        check("host0", "free memory", Status.OK, 2.5e9, "bytes"),
        check("host0", "it's slow", Status.OK, 0.000012, "s"),
        check("host0", "no value", Status.OK),
    ]
    run.hosts[0].checks[1].thresholds = Thresholds(warn="1000000000:", crit=None)
    lines = render(NagiosReporter, run).splitlines()
    assert lines[0].startswith("CHECKRUN OK - 4 ok on 1 host |")
    assert lines[-1] == (
        "| 'cpu busy'=12.5%;80;90 'free memory'=2500000000B;1000000000: 'it''s slow'=0.000012s;80;90"
    )


def test_nagios_per_check_perfdata_needs_verbose_for_many_hosts():
    run = ok_run(hosts=2, checks_per_host=1)
    assert len(render(NagiosReporter, run).splitlines()) == 1
    verbose = render(NagiosReporter, run, verbose=1).splitlines()
    assert verbose[-1] == "| 'host0 check 0'=0%;80;90 'host1 check 0'=0%;80;90"


def test_nagios_perfdata_quoting_and_ranges():
    assert quote_label("a=b 'c'") == "'a_b ''c'''"
    assert perfdata_item("x", 3, "", warn="", crit="5") == "'x'=3;;5"
    assert perfdata_item("x", 3, "", warn="@10:20") == "'x'=3;@10:20"
    run = ok_run()
    run.hosts[0].checks[0].thresholds = Thresholds(warn="not a range", crit="~:95")
    assert "'check 0'=0%;;~:95" in render(NagiosReporter, run)


# --- terminal --------------------------------------------------------------------------


def test_terminal_plain_output_has_every_problem_and_the_summary(plain_env):
    text = render(TerminalReporter, mixed_run())
    assert ANSI_ESCAPE not in text
    lines = text.splitlines()

    def line_with(*words: str) -> str:
        found = [line for line in lines if all(word in line for word in words)]
        assert len(found) == 1, (words, text)
        return found[0]

    line_with("web1", "root filesystem", "CRITICAL", "95.0%", "disk / 95.0% used | nearly full")
    line_with("web1", "mem available", "WARNING", "1.50 GiB", "low memory (after 3 attempts)")
    line_with("web1", "app health", "UNKNOWN", "timed out after 2s")
    line_with("db1", "UNREACHABLE", "timeout: connection timed out after 10s")
    assert lines[-1] == (
        "Result: CRITICAL | 1 critical, 1 unknown, 1 unreachable, 1 warning, 2 ok, 1 skipped "
        "| 6 checks on 3 hosts in 1.23s"
    )
    assert all(line == line.rstrip() for line in lines)


def test_terminal_shows_ok_checks_of_a_small_run(plain_env):
    text = render(TerminalReporter, mixed_run())
    assert "cpu busy" in text and "12.5%" in text
    assert "http latency" in text and "12.3ms" in text


def test_terminal_collapses_ok_checks_of_a_large_run_unless_verbose(plain_env):
    run = ok_run(hosts=3, checks_per_host=FULL_TABLE_MAX_ROWS)
    run.hosts[1].checks[4].status = Status.CRITICAL
    run.hosts[1].checks[5].status = Status.SKIPPED
    text = render(TerminalReporter, run)
    lines = text.splitlines()
    assert "check 0" not in text
    check_cells = [line.split("|")[1].strip() for line in lines if re.match(r" host\d", line)]
    assert check_cells == [
        f"{FULL_TABLE_MAX_ROWS} ok",
        "check 4",
        f"{FULL_TABLE_MAX_ROWS - 2} ok, 1 skipped",
        f"{FULL_TABLE_MAX_ROWS} ok",
    ]
    verbose = render(TerminalReporter, run, verbose=1)
    assert all(f"check {i}" in verbose for i in range(FULL_TABLE_MAX_ROWS))


def test_terminal_rows_are_not_wrapped_when_not_a_terminal(plain_env):
    run = mixed_run()
    long_message = "connection reset by peer " * 20
    run.hosts[0].checks[3].message = long_message
    text = render(TerminalReporter, run)
    assert long_message.strip() in text


def test_terminal_neutralises_escape_sequences_in_messages(plain_env):
    run = mixed_run()
    run.hosts[0].checks[1].message = "\x1b[2J\x1b[31mcleared your screen [bold]x[/bold]"
    text = render(TerminalReporter, run)
    assert ANSI_ESCAPE not in text
    assert "\\x1b[2J\\x1b[31mcleared your screen [bold]x[/bold]" in text


def test_terminal_colour_follows_force_color_and_no_color(
    monkeypatch: pytest.MonkeyPatch, plain_env
):
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert ANSI_ESCAPE in render(TerminalReporter, mixed_run())
    monkeypatch.setenv("NO_COLOR", "1")
    assert ANSI_ESCAPE not in render(TerminalReporter, mixed_run())


def test_colour_decision(monkeypatch: pytest.MonkeyPatch, plain_env):
    assert color_wanted(TtyStringIO()) is True
    assert color_wanted(io.StringIO()) is False
    assert color_wanted(io.StringIO(), requested=True) is True
    monkeypatch.setenv("TERM", "dumb")
    assert color_wanted(TtyStringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert color_wanted(TtyStringIO()) is False
    assert color_wanted(TtyStringIO(), requested=True) is True


def test_terminal_report_to_a_file_is_plain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("FORCE_COLOR", "1")
    target = tmp_path / "run.txt"
    create_reporter(f"terminal:{target}").finish(mixed_run())
    text = target.read_text()
    assert ANSI_ESCAPE not in text
    assert text.splitlines()[-1].startswith("Result: CRITICAL |")


def test_terminal_empty_run(plain_env):
    run = RunResult(playbook="p.yml", started_at=START, finished_at=START)
    assert render(TerminalReporter, run) == (
        "No hosts were checked.\n"
        "Result: OK | 0 critical, 0 unknown, 0 unreachable, 0 warning, 0 ok, 0 skipped "
        "| 0 checks on 0 hosts in 0ms\n"
    )


def test_terminal_interrupted_run_says_so(plain_env):
    run = mixed_run()
    run.interrupted = True
    assert "Result: CRITICAL (interrupted: partial results) |" in render(TerminalReporter, run)


def test_progress_is_drawn_on_a_terminal_and_erased(plain_env):
    progress = TtyStringIO()
    out = io.StringIO()
    run = mixed_run()
    reporter = TerminalReporter(None, stream=out, progress_stream=progress)
    reporter.on_start(total_hosts=len(run.hosts), total_checks=len(run.all_checks()))
    for host in run.hosts:
        reporter.on_host_done(host)
    reporter.finish(run)
    drawn = progress.getvalue()
    assert "3/3" in drawn and "hosts" in drawn
    assert "1 critical, 1 unknown, 1 unreachable, 1 warning" in drawn
    assert "Result: CRITICAL" not in drawn  # the report itself goes to its own stream
    assert out.getvalue().splitlines()[-1].startswith("Result: CRITICAL")
    reporter.close()  # closing twice is harmless


def test_no_progress_when_stderr_is_not_a_terminal(plain_env):
    progress = io.StringIO()
    run = mixed_run()
    reporter = TerminalReporter(None, stream=io.StringIO(), progress_stream=progress)
    reporter.on_start(len(run.hosts), len(run.all_checks()))
    for host in run.hosts:
        reporter.on_host_done(host)
    reporter.finish(run)
    assert progress.getvalue() == ""


# --- remediation (issue 14) ------------------------------------------------------------


def test_every_report_says_what_the_handler_did():
    """A check whose firing alert notified a handler: every format shows the result next
    to the check, whose own status stays as measured (and so does the exit code)."""
    from checkrunner.report import REPORTERS
    from checkrunner.results import REMEDIATED, RemediationResult

    remediation = RemediationResult(
        handler="restart app",
        action="restart app.service",
        result=REMEDIATED,
        text="app health CRITICAL → restarted app.service → OK after 4.2 s",
        exit_status=0,
        seconds=4.2,
        verify_status="OK",
        verify_message="HTTP 200",
    )
    failing = check("web1", "app health", Status.CRITICAL, message="connection refused")
    failing.remediation = remediation
    run = RunResult(playbook="p.yml", started_at=1.0, finished_at=2.0)
    run.hosts = [HostResult(host="web1", checks=[failing])]
    assert run.exit_code == 2
    shown = "restarted app.service → OK after 4.2 s"
    rendered = {name: render(REPORTERS[name], run) for name in REPORTERS}
    for name in ("terminal", "markdown", "junit", "nagios", "html"):
        assert f"remediation: {shown}" in rendered[name].replace("\\u2192", "→"), name
    assert (
        'checkrun_check_remediation{check="app health",handler="restart app",'
        in rendered["prometheus"]
    )
    assert 'result="remediated"} 1.0' in rendered["prometheus"]
    document = json.loads(rendered["json"])
    jsonschema.validate(document, SCHEMA)
    assert document["hosts"][0]["checks"][0]["remediation"]["text"] == remediation.text
