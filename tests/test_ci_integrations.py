"""The GitHub composite action (action.yml) and the GitLab CI template
(ci/gitlab/checkrun.yml), run the way their runners run them (tests/ci_runner.py): checkrun
installed by their own pip step into a fresh virtualenv from a copy of this checkout, real
HTTP and TCP services checked, reports written, the step's or job's exit code following
checkrun's."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from ci_runner import clean_env, run_action, run_gitlab_job

REPO = Path(__file__).resolve().parent.parent
_NOT_SHIPPED = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"
)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The action's checkout, as `uses: OWNER/checkrunner@REF` puts it on a runner."""
    path = tmp_path_factory.mktemp("action") / "checkrunner"
    shutil.copytree(REPO, path, ignore=_NOT_SHIPPED)
    return path


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory) -> Path:
    """RUNNER_TEMP, where the action makes its virtualenv (one job's, shared by the tests)."""
    return tmp_path_factory.mktemp("runner-temp")


@pytest.fixture(scope="module")
def job_python(tmp_path_factory) -> Path:
    """A runner's Python: a fresh virtualenv without checkrun (the steps install it)."""
    venv = tmp_path_factory.mktemp("runner") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    return venv / "bin"


def _playbook(workspace: Path, checks: str) -> Path:
    path = workspace / "smoke.yml"
    path.write_text(f"- name: smoke\n  hosts: localhost\n  checks:\n{checks}")
    return path


def _http_check(url: str) -> str:
    return f"    - name: app health\n      http: {{url: '{url}', timeout: 2s}}\n"


def _tcp_check(port: int) -> str:
    return f"    - name: app port\n      tcp: {{port: {port}, timeout: 2s}}\n"


def test_action_green_run_summarises_uploads_and_passes(
    checkout, runner_temp, tmp_path, http_server, tcp_listener
):
    _playbook(tmp_path, _http_check(f"{http_server.url}/health") + _tcp_check(tcp_listener))
    run = run_action(
        checkout,
        {"playbook": "smoke.yml", "args": '--no-state -e \'{"greeting": "hello world"}\''},
        tmp_path,
        clean_env(),
        runner_temp,
    )
    install = run.step("Install checkrun")
    assert install.returncode == 0, install.stderr
    assert (runner_temp / "checkrun-venv/bin/checkrun").exists()  # the action's own step
    assert not run.failed, [
        (s.name, s.returncode, s.stdout[-2000:], s.stderr[-2000:]) for s in run.steps
    ]
    assert run.outputs["exit-code"] == "0"
    assert "app health" in run.summary and "app port" in run.summary
    junit = ET.parse(tmp_path / run.outputs["junit"]).getroot()
    assert junit.attrib.get("failures", "0") == "0"
    report = json.loads((tmp_path / run.outputs["json"]).read_text())
    assert report["fail_on"] == "critical"
    upload = run.step("Upload reports")
    assert upload.uses.startswith("actions/upload-artifact@")
    for path in upload.with_["path"].split():
        assert (tmp_path / path).is_file(), path
    assert run.step("Gate on the result").returncode == 0


def test_action_fails_the_step_by_the_exit_code_yet_still_reports(
    checkout, runner_temp, tmp_path, http_server
):
    _playbook(tmp_path, _http_check(f"{http_server.url}/broken"))
    run = run_action(
        checkout,
        {"playbook": "smoke.yml", "args": "--no-state", "reports-dir": "out/checks"},
        tmp_path,
        clean_env(),
        runner_temp,
    )
    assert run.failed
    assert run.outputs["exit-code"] == "2"
    assert run.step("Run checkrun").returncode == 0  # the run step records, the gate fails
    gate = run.step("Gate on the result")
    assert gate.returncode == 2
    assert "::error::checkrun exited 2" in gate.stdout
    assert "CRITICAL" in run.summary
    assert (tmp_path / "out/checks/junit.xml").is_file()
    assert run.step("Upload reports").uses is not None  # if: always()


@pytest.mark.parametrize(("fail_on", "code"), [("warning", "1"), ("never", "0")])
def test_action_fail_on_input(checkout, runner_temp, tmp_path, http_server, fail_on, code):
    checks = (
        "    - name: slow enough to warn\n"
        f"      http: {{url: '{http_server.url}/health'}}\n"
        "      warn: 0\n"  # any latency is above 0 s: a WARNING
    )
    _playbook(tmp_path, checks)
    run = run_action(
        checkout,
        {"playbook": "smoke.yml", "args": "--no-state", "fail-on": fail_on},
        tmp_path,
        clean_env(),
        runner_temp,
    )
    assert run.outputs["exit-code"] == code
    assert run.failed is (code != "0")


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_action_gates_a_deploy_with_wait(checkout, runner_temp, tmp_path, closed_port):
    """The service comes up a few seconds into the step: --wait re-runs the failing check
    until it passes, and the step passes."""
    _playbook(tmp_path, _http_check(f"http://127.0.0.1:{closed_port}/health"))
    started: list[http.server.HTTPServer] = []

    def deploy_finishes() -> None:
        time.sleep(3)
        server = http.server.HTTPServer(("127.0.0.1", closed_port), _Health)
        started.append(server)
        server.serve_forever()

    thread = threading.Thread(target=deploy_finishes, daemon=True)
    thread.start()
    try:
        run = run_action(
            checkout,
            {"playbook": "smoke.yml", "args": "--no-state --wait-interval 1s", "wait": "5m"},
            tmp_path,
            clean_env(),
            runner_temp,
        )
    finally:
        while not started and thread.is_alive():
            time.sleep(0.1)
        for server in started:
            server.shutdown()
            server.server_close()
    assert run.outputs["exit-code"] == "0", run.step("Run checkrun").stdout[-3000:]
    assert not run.failed


def test_gitlab_template_runs_reports_junit_and_fails_by_exit_code(
    checkout, job_python, tmp_path, http_server, tcp_listener
):
    template = REPO / "ci" / "gitlab" / "checkrun.yml"
    _playbook(tmp_path, _http_check(f"{http_server.url}/health") + _tcp_check(tcp_listener))
    job = run_gitlab_job(
        template,
        ".checkrun",
        {
            "CHECKRUN_PIP_SPEC": str(checkout),
            "CHECKRUN_PLAYBOOK": "smoke.yml",
            "CHECKRUN_ARGS": '--no-state -e \'{"who": "the pipeline"}\'',
        },
        tmp_path,
        clean_env(job_python),
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    artifacts = job.job["artifacts"]
    assert artifacts["when"] == "always"
    junit_path = tmp_path / artifacts["reports"]["junit"]
    assert ET.parse(junit_path).getroot().attrib.get("failures", "0") == "0"
    for pattern in artifacts["paths"]:
        assert (tmp_path / pattern).exists()
    assert (tmp_path / "checkrun-reports/report.md").read_text().count("app ") >= 2
    assert json.loads((tmp_path / "checkrun-reports/report.json").read_text())["fail_on"]

    _playbook(tmp_path, _http_check(f"{http_server.url}/broken"))
    failed = run_gitlab_job(
        template,
        ".checkrun",
        {
            "CHECKRUN_PIP_SPEC": str(checkout),
            "CHECKRUN_PLAYBOOK": "smoke.yml",
            "CHECKRUN_ARGS": "--no-state",
        },
        tmp_path,
        clean_env(job_python),
    )
    assert failed.returncode == 2
    assert (tmp_path / "checkrun-reports/exit-code").read_text().strip() == "2"
    assert "failures" in ET.parse(junit_path).getroot().attrib
