"""End to end: the installed `checkrun` against localhost, real HTTP/TCP servers, real reports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from helpers import BUILTIN_MODULES, CHECKRUN, REPO, run_checkrun


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def statuses(report: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for h in report["hosts"] for c in h["checks"]}


def test_default_playbook_runs_on_a_bare_machine(tmp_path):
    out = tmp_path / "r.json"
    done = run_checkrun(
        REPO / "playbooks" / "localhost.yml", "--report", f"json:{out}", "--report", "terminal"
    )
    report = json.loads(out.read_text())
    assert [h["host"] for h in report["hosts"]] == ["localhost"]
    host = report["hosts"][0]
    assert host["reachable"] is True
    assert len(host["checks"]) >= 6
    # every check produced a real measurement, none could not run
    assert all(c["status"] != "UNKNOWN" for c in host["checks"]), host["checks"]
    assert all(c["measurements"] for c in host["checks"] if c["status"] != "SKIPPED")
    assert done.returncode == report["exit_code"]
    assert "localhost" in done.stdout


def test_http_and_tcp_probes_with_json_and_junit(tmp_path, http_server, tcp_listener, closed_port):
    playbook = write(
        tmp_path / "web.yml",
        f"""
- name: web
  hosts: localhost
  vars:
    base: "{http_server.url}"
  checks:
    - name: health ok
      http: {{url: "{{{{ base }}}}/health", status: [200], body: "ok"}}
    - name: health broken
      http: {{url: "{{{{ base }}}}/broken", status: [200]}}
    - name: port open
      tcp: {{host: 127.0.0.1, port: {tcp_listener}}}
    - name: port closed
      tcp: {{host: 127.0.0.1, port: {closed_port}}}
""",
    )
    js, junit = tmp_path / "out.json", tmp_path / "junit.xml"
    done = run_checkrun(playbook, "--report", f"json:{js}", "--report", f"junit:{junit}")
    assert done.returncode == 2, done.stderr
    report = json.loads(js.read_text())
    assert statuses(report) == {
        "health ok": "OK",
        "health broken": "CRITICAL",
        "port open": "OK",
        "port closed": "CRITICAL",
    }
    checks = {c["name"]: c for c in report["hosts"][0]["checks"]}
    assert checks["health ok"]["measurements"]["status_code"] == 200
    assert "500" in checks["health broken"]["message"]
    suites = ET.parse(junit).getroot()
    cases = [c for c in suites.findall(".//testcase") if c.get("name") != "host reachable"]
    assert len(cases) == 4
    assert len(suites.findall(".//testcase/failure")) == 2


def test_thresholds_and_fail_on_levels(tmp_path):
    # `command` prints a number; its `value` measurement is compared with warn/crit.
    playbook = write(
        tmp_path / "t.yml",
        """
- name: thresholds
  hosts: localhost
  checks:
    - name: value is 42
      command: {cmd: "echo 42"}
      metric: value
      warn: 40
      crit: 50
""",
    )
    js = tmp_path / "o.json"
    assert run_checkrun(playbook, "-r", f"json:{js}").returncode == 0
    assert statuses(json.loads(js.read_text())) == {"value is 42": "WARNING"}
    assert run_checkrun(playbook, "--fail-on", "warning", "-r", "json:-").returncode == 1
    assert run_checkrun(playbook, "-e", "x=1", "--fail-on", "never").returncode == 0
    crit = write(tmp_path / "c.yml", playbook.read_text().replace("crit: 50", 'crit: "@41:43"'))
    assert run_checkrun(crit, "-r", "json:-").returncode == 2


def test_unknown_and_unreachable_exit_codes(tmp_path):
    unknown = write(
        tmp_path / "u.yml",
        """
- hosts: localhost
  name: u
  checks:
    - name: no such program
      command: {cmd: "/nonexistent/program --flag"}
""",
    )
    done = run_checkrun(unknown, "-r", "json:-")
    assert done.returncode == 3, done.stdout + done.stderr
    assert statuses(json.loads(done.stdout)) == {"no such program": "UNKNOWN"}

    inventory = write(
        tmp_path / "inv.ini",
        "[here]\nlocalhost ansible_connection=local ansible_python_interpreter=/nonexistent/python3\n",
    )
    done = run_checkrun(unknown, "-i", inventory, "-r", "json:-")
    assert done.returncode == 4, done.stdout + done.stderr
    host = json.loads(done.stdout)["hosts"][0]
    assert (host["status"], host["reason"]) == ("UNREACHABLE", "no-python")


def test_failing_host_does_not_stop_the_others(tmp_path):
    inventory = write(
        tmp_path / "inv.yml",
        """
all:
  hosts:
    good1: {ansible_connection: local}
    broken: {ansible_connection: local, ansible_python_interpreter: /nonexistent/python3}
    good2: {ansible_connection: local}
""",
    )
    playbook = write(
        tmp_path / "p.yml",
        """
- name: fleet
  hosts: all
  checks:
    - name: memory
      memory: {}
""",
    )
    done = run_checkrun(playbook, "-i", inventory, "-r", "json:-")
    report = json.loads(done.stdout)
    by_host = {h["host"]: h for h in report["hosts"]}
    assert [h["host"] for h in report["hosts"]] == ["good1", "broken", "good2"]
    assert by_host["broken"]["status"] == "UNREACHABLE"
    assert by_host["good1"]["checks"][0]["status"] == "OK"
    assert by_host["good2"]["checks"][0]["status"] == "OK"
    assert done.returncode == 4


def test_templating_vars_precedence_and_when(tmp_path, monkeypatch):
    (tmp_path / "group_vars").mkdir()
    write(tmp_path / "group_vars" / "all.yml", "greeting: from-group-vars\nlevel: 1\n")
    inventory = write(tmp_path / "hosts.ini", "[local]\nlocalhost ansible_connection=local\n")
    playbook = write(
        tmp_path / "p.yml",
        """
- name: vars
  hosts: local
  vars: {level: 2}
  checks:
    - name: "echo {{ greeting }} {{ level }} {{ env.CHECKRUN_TEST_VALUE }}"
      command: {cmd: "echo {{ greeting }} {{ level }} {{ env.CHECKRUN_TEST_VALUE }}"}
    - name: skipped one
      when: level | int > 5
      command: {cmd: "false"}
""",
    )
    done = run_checkrun(
        playbook, "-i", inventory, "-e", "level=3", "-r", "json:-", env={"CHECKRUN_TEST_VALUE": "E"}
    )
    assert done.returncode == 0, done.stderr
    got = statuses(json.loads(done.stdout))
    assert got == {"echo from-group-vars 3 E": "OK", "skipped one": "SKIPPED"}


def test_tags_limit_and_listing(tmp_path):
    inventory = write(
        tmp_path / "inv.ini", "[a]\nh1 ansible_connection=local\n[b]\nh2 ansible_connection=local\n"
    )
    playbook = write(
        tmp_path / "p.yml",
        """
- name: all hosts
  hosts: all
  checks:
    - {name: mem, memory: {}, tags: [fast]}
    - {name: load, load: {}, tags: [slow]}
""",
    )
    hosts = run_checkrun(playbook, "-i", inventory, "--limit", "b", "--list-hosts")
    assert hosts.returncode == 0
    assert "h2" in hosts.stdout and "h1" not in hosts.stdout
    checks = run_checkrun(playbook, "-i", inventory, "--list-checks", "--skip-tags", "slow")
    assert "mem" in checks.stdout and "load" not in checks.stdout
    done = run_checkrun(playbook, "-i", inventory, "-t", "slow", "-r", "json:-")
    report = json.loads(done.stdout)
    assert sorted((h["host"], c["name"]) for h in report["hosts"] for c in h["checks"]) == [
        ("h1", "load"),
        ("h2", "load"),
    ]


def test_procfs_fallback_gives_the_same_checks(tmp_path):
    out = tmp_path / "r.json"
    run_checkrun(REPO / "playbooks" / "localhost.yml", "--no-psutil", "-r", f"json:{out}")
    checks = json.loads(out.read_text())["hosts"][0]["checks"]
    assert all(c["status"] != "UNKNOWN" for c in checks), checks
    memory = next(c for c in checks if c["module"] == "memory")
    assert memory["facts"].get("source") == "procfs"


def test_retries_until_the_service_answers(tmp_path):
    """The service says STARTING to its first two connections and READY after that, so the
    check must fail twice and pass on its third attempt, however slow the machine is."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)  # the loop polls `stop`: a close() would not wake a blocked accept()
    port = server.getsockname()[1]
    connections = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except socket.timeout:
                continue
            connections.append(conn)
            conn.sendall(b"READY\n" if len(connections) > 2 else b"STARTING\n")
            conn.close()

    serving = threading.Thread(target=serve, daemon=True)
    serving.start()
    playbook = write(
        tmp_path / "p.yml",
        f"""
- name: r
  hosts: localhost
  checks:
    - name: comes up late
      tcp: {{host: 127.0.0.1, port: {port}, expect: "^READY"}}
      retries: 10
      delay: 200ms
""",
    )
    try:
        done = run_checkrun(playbook, "-r", "json:-")
    finally:
        stop.set()
        serving.join(5)
        server.close()
    check = json.loads(done.stdout)["hosts"][0]["checks"][0]
    assert (done.returncode, check["status"]) == (0, "OK")
    assert check["attempts"] == 3
    assert len(connections) == 3


def test_wait_gives_up_when_time_is_up(tmp_path, closed_port):
    playbook = write(
        tmp_path / "p.yml",
        f"""
- name: w
  hosts: localhost
  checks:
    - {{name: never up, tcp: {{host: 127.0.0.1, port: {closed_port}}}}}
""",
    )
    started = time.monotonic()
    done = run_checkrun(playbook, "--wait", "3s", "--wait-interval", "500ms", "-r", "json:-")
    elapsed = time.monotonic() - started
    check = json.loads(done.stdout)["hosts"][0]["checks"][0]
    assert done.returncode == 2
    assert check["attempts"] >= 3
    assert 2.0 <= elapsed < 15


def test_ctrl_c_writes_a_partial_report_and_exits_130(tmp_path):
    inventory = write(
        tmp_path / "inv.ini", "fast ansible_connection=local\nslow ansible_connection=local\n"
    )
    playbook = write(
        tmp_path / "p.yml",
        """
- name: quick
  hosts: fast
  checks: [{name: mem, memory: {}}, {name: mark, command: {cmd: "touch {{ marks }}/fast"}}]
- name: hangs
  hosts: slow
  checks:
    - {name: sleeper, command: {cmd: "touch {{ marks }}/slow; exec sleep 60", shell: true}, timeout: 2m}
""",
    )
    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [CHECKRUN, str(playbook), "-i", str(inventory), "-r", f"json:{out}"]
        + ["-e", f"marks={tmp_path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # interrupt once both hosts are under way (a loaded machine may take seconds to get
    # there), leaving the fast host's batch a moment to be collected
    deadline = time.monotonic() + 60
    while not all((tmp_path / mark).exists() for mark in ("fast", "slow")):
        assert time.monotonic() < deadline and proc.poll() is None, "the batches never started"
        time.sleep(0.05)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    report = json.loads(out.read_text())
    assert report["interrupted"] is True
    assert [h["host"] for h in report["hosts"]] == ["fast"]


@pytest.mark.parametrize("command", [["validate"], ["--syntax-check"]])
def test_validate_a_good_playbook(command, tmp_path):
    """Validation counts what it loaded, and a copy with one mistake is refused."""
    playbook = REPO / "playbooks" / "localhost.yml"
    checks = sum(len(play["checks"]) for play in yaml.safe_load(playbook.read_text()))

    def validate(path: Path):
        return run_checkrun(*([*command, path] if command == ["validate"] else [path, *command]))

    done = validate(playbook)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{playbook}: OK ({checks} checks on 1 host)\n"
    broken = tmp_path / "localhost.yml"
    broken.write_text(playbook.read_text().replace("memory: {}", "memory: {sample: 1s}", 1))
    refused = validate(broken)
    assert refused.returncode == 5 and "OK" not in refused.stdout
    assert f"{broken}:" in refused.stderr and "sample" in refused.stderr


def test_schema_and_doc_commands():
    schema = run_checkrun("schema")
    assert schema.returncode == 0
    assert "http" in json.loads(schema.stdout)["$defs"] or "http" in schema.stdout
    listing = run_checkrun("doc")
    for module in BUILTIN_MODULES:
        assert module in listing.stdout
    http_doc = run_checkrun("doc", "http")
    assert http_doc.returncode == 0 and "url" in http_doc.stdout
    wrong = run_checkrun("doc", "htp")
    assert wrong.returncode == 5 and "did you mean 'http'" in wrong.stderr


def test_checks_run_niced_and_memory_capped_on_the_target(tmp_path):
    playbook = write(
        tmp_path / "p.yml",
        """
- name: isolation
  hosts: localhost
  checks:
    - name: niceness
      command: {cmd: "python3 -c 'import os; print(os.nice(0))'"}
    - name: big allocation
      command: {cmd: "python3 -c 'x = bytearray(300 * 1024 * 1024); print(len(x) > 0)'"}
""",
    )
    capped = json.loads(
        run_checkrun(playbook, "--target-memory-limit", "128MB", "-r", "json:-").stdout
    )
    checks = {c["name"]: c for c in capped["hosts"][0]["checks"]}
    assert checks["niceness"]["measurements"]["value"] == min(19, os.nice(0) + 10)
    assert checks["big allocation"]["status"] == "CRITICAL"
    assert "MemoryError" in checks["big allocation"]["facts"]["stderr"]

    free = json.loads(
        run_checkrun(
            playbook, "--target-memory-limit", "0", "--target-nice", "3", "-r", "json:-"
        ).stdout
    )
    checks = {c["name"]: c for c in free["hosts"][0]["checks"]}
    assert checks["niceness"]["measurements"]["value"] == min(19, os.nice(0) + 3)
    assert checks["big allocation"]["status"] == "OK"


def test_a_target_side_crash_makes_the_checks_unknown_with_its_last_line(tmp_path):
    crashing = write(
        tmp_path / "python3",
        "#!/bin/sh\ncat >/dev/null\necho 'Traceback (most recent call last):' >&2\n"
        "echo 'ZeroDivisionError: division by zero' >&2\nexit 1\n",
    )
    crashing.chmod(0o755)
    inventory = write(
        tmp_path / "inv.ini",
        f"box ansible_connection=local ansible_python_interpreter={crashing}\n",
    )
    playbook = write(
        tmp_path / "p.yml",
        "- name: p\n  hosts: all\n  checks: [{name: mem, memory: {}}, {name: load, load: {}}]\n",
    )
    done = run_checkrun(playbook, "-i", inventory, "-r", "json:-")
    host = json.loads(done.stdout)["hosts"][0]
    assert (host["reachable"], host["reason"]) == (True, "remote-crash")
    assert [c["status"] for c in host["checks"]] == ["UNKNOWN", "UNKNOWN"]
    assert all("ZeroDivisionError: division by zero" in c["message"] for c in host["checks"])
    assert done.returncode == 3


def test_inventory_connection_vars_are_templated(tmp_path):
    inventory = write(
        tmp_path / "inv.yml",
        """
all:
  vars:
    python_path: /nonexistent/{{ env.CHECKRUN_TEST_PYDIR }}/python3
  hosts:
    box:
      ansible_connection: local
      ansible_python_interpreter: "{{ python_path }}"
""",
    )
    playbook = write(
        tmp_path / "p.yml", "- name: p\n  hosts: all\n  checks: [{name: mem, memory: {}}]\n"
    )
    done = run_checkrun(
        playbook, "-i", inventory, "-r", "json:-", env={"CHECKRUN_TEST_PYDIR": "from-env"}
    )
    host = json.loads(done.stdout)["hosts"][0]
    assert host["reason"] == "no-python"
    # rendered from the environment, then masked as every environment value in reports
    assert "/nonexistent/***/python3" in host["message"]
    unset = run_checkrun(playbook, "-i", inventory, "-r", "json:-")  # the variable is not set
    assert unset.returncode == 5, unset.stderr
    assert "CHECKRUN_TEST_PYDIR" in unset.stderr and "inv.yml" in unset.stderr


def test_secrets_from_the_environment_are_masked_in_every_report(tmp_path):
    token = "tok-8f3a91c2e7"
    playbook = write(
        tmp_path / "p.yml",
        """
- name: secrets
  hosts: localhost
  checks:
    - name: "call with {{ env.CHECKRUN_TEST_TOKEN }}"
      command: {cmd: "echo token={{ env.CHECKRUN_TEST_TOKEN }}", stdout: "^nope$"}
""",
    )
    js, junit, md = tmp_path / "r.json", tmp_path / "j.xml", tmp_path / "r.md"
    done = run_checkrun(
        playbook,
        "-r",
        "terminal",
        "-r",
        f"json:{js}",
        "-r",
        f"junit:{junit}",
        "-r",
        f"markdown:{md}",
        "-v",
        env={"CHECKRUN_TEST_TOKEN": token},
    )
    assert done.returncode == 2  # the check really ran with the token and failed its regex
    outputs = [done.stdout, done.stderr, js.read_text(), junit.read_text(), md.read_text()]
    assert all(token not in text for text in outputs)
    check = json.loads(js.read_text())["hosts"][0]["checks"][0]
    assert check["name"] == "call with ***"
    assert check["facts"]["stdout"].strip() == "token=***"
