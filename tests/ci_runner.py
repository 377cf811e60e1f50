"""Run a composite GitHub action (action.yml) and a GitLab CI job template the way their
runners do, on this machine: the `run:` steps with bash, `${{ ... }}` expressions
substituted, GITHUB_OUTPUT (per step) and GITHUB_STEP_SUMMARY files, `if:` conditions;
`uses:` steps are recorded, not run (their `with:` is evaluated, so a test can check what
they would upload). A GitLab job's `script:` lines run in one bash session under
`set -eo pipefail`, its variables in the environment, as the shell executor runs them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class StepRun:
    name: str
    returncode: int | None  # None: skipped by its `if:`, or a `uses:` step
    stdout: str = ""
    stderr: str = ""
    uses: str | None = None
    with_: dict[str, str] = field(default_factory=dict)


@dataclass
class ActionRun:
    steps: list[StepRun]
    outputs: dict[str, str]
    summary: str
    failed: bool

    def step(self, name: str) -> StepRun:
        return next(step for step in self.steps if step.name == name)


class _Context:
    def __init__(self, inputs: dict[str, str], action_path: Path) -> None:
        self.inputs = inputs
        self.action_path = action_path
        self.step_outputs: dict[str, dict[str, str]] = {}
        self.failed = False

    def value(self, reference: str) -> str:
        parts = reference.split(".")
        if parts[0] == "inputs" and len(parts) == 2:
            return self.inputs[parts[1]]
        if reference == "github.action_path":
            return str(self.action_path)
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.step_outputs.get(parts[1], {}).get(parts[3], "")
        raise ValueError(f"expression not understood by this test runner: {reference}")

    def condition(self, text: str | None) -> bool:
        """`if:`: terms joined by &&: always(), success(), failure(), ref == 'literal'."""
        if text is None:
            return not self.failed
        text = EXPRESSION.sub(r"\1", text)
        terms = [term.strip() for term in text.split("&&")]
        status_given = any(term in ("always()", "success()", "failure()") for term in terms)
        results = [] if status_given else [not self.failed]
        for term in terms:
            if term == "always()":
                results.append(True)
            elif term == "success()":
                results.append(not self.failed)
            elif term == "failure()":
                results.append(self.failed)
            elif match := re.fullmatch(r"([\w.-]+)\s*(==|!=)\s*'([^']*)'", term):
                equal = self.value(match[1]) == match[3]
                results.append(equal if match[2] == "==" else not equal)
            else:
                results.append(bool(self.value(term)))
        return all(results)

    def substitute(self, text: Any) -> str:
        return EXPRESSION.sub(lambda match: self.value(match[1]), str(text))


def _read_outputs(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT's `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index + 1)
            outputs[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
            continue
        if line:
            name, value = line.split("=", 1)
            outputs[name] = value
        index += 1
    return outputs


def run_action(
    action_path: Path,
    inputs: dict[str, str],
    workspace: Path,
    env: dict[str, str],
    runner_temp: Path,
) -> ActionRun:
    action = yaml.safe_load((action_path / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    declared = action.get("inputs", {})
    unknown = set(inputs) - set(declared)
    assert not unknown, f"inputs the action does not declare: {unknown}"
    values = {name: str(spec.get("default", "")) for name, spec in declared.items()}
    values.update(inputs)
    missing = [name for name, spec in declared.items() if spec.get("required") and not values[name]]
    assert not missing, f"required inputs missing: {missing}"
    context = _Context(values, action_path)
    summary = workspace / ".step-summary.md"
    summary.write_text("")
    runs: list[StepRun] = []
    input_env = {f"INPUT_{name.upper()}": value for name, value in values.items()}
    env = {**env, "RUNNER_TEMP": str(runner_temp)}
    path_file = workspace / ".github-path"
    path_file.write_text("")
    for step in action["runs"]["steps"]:
        name = step.get("name", step.get("uses", step.get("id", "?")))
        if not context.condition(step.get("if")):
            runs.append(StepRun(name, None))
            continue
        if "uses" in step:
            with_ = {key: context.substitute(value) for key, value in step.get("with", {}).items()}
            runs.append(StepRun(name, None, uses=step["uses"], with_=with_))
            continue
        assert step.get("shell") == "bash", f"{name}: composite run steps name their shell"
        output_file = workspace / f".output-{uuid.uuid4().hex}"
        output_file.write_text("")
        script = workspace / f".step-{uuid.uuid4().hex}.sh"
        script.write_text(context.substitute(step["run"]))
        step_env = {key: context.substitute(value) for key, value in step.get("env", {}).items()}
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace,
            env={
                **env,
                **input_env,
                **step_env,
                "GITHUB_OUTPUT": str(output_file),
                "GITHUB_PATH": str(path_file),
                "GITHUB_STEP_SUMMARY": str(summary),
                "GITHUB_WORKSPACE": str(workspace),
                "GITHUB_ACTION_PATH": str(action_path),
            },
            capture_output=True,
            text=True,
            timeout=600,
        )
        if "id" in step:
            context.step_outputs[step["id"]] = _read_outputs(output_file)
        # GITHUB_PATH: directories the later steps find first on PATH
        added = [line for line in path_file.read_text().splitlines() if line]
        if added:
            env = {**env, "PATH": os.pathsep.join([*reversed(added), env["PATH"]])}
            path_file.write_text("")
        runs.append(StepRun(name, proc.returncode, proc.stdout, proc.stderr))
        if proc.returncode != 0:
            context.failed = True
    outputs = {
        name: context.substitute(spec["value"]) for name, spec in action.get("outputs", {}).items()
    }
    return ActionRun(runs, outputs, summary.read_text(), context.failed)


@dataclass
class JobRun:
    returncode: int
    stdout: str
    stderr: str
    job: dict[str, Any]


def run_gitlab_job(
    template: Path, job_name: str, variables: dict[str, str], workspace: Path, env: dict[str, str]
) -> JobRun:
    jobs = yaml.safe_load(template.read_text())
    job = jobs[job_name]
    merged = {**{key: str(value) for key, value in job.get("variables", {}).items()}, **variables}
    script = "\n".join(["set -eo pipefail", *job["script"]])
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script],
        cwd=workspace,
        env={**env, **merged, "CI": "true", "CI_PROJECT_DIR": str(workspace)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return JobRun(proc.returncode, proc.stdout, proc.stderr, job)


def clean_env(venv_bin: Path | None = None) -> dict[str, str]:
    """The environment of a job, without this test run's virtualenv on PATH (a runner has
    no checkrun until a step installs it); `venv_bin` first when given (the job's Python)."""
    ours = os.path.dirname(shutil.which("checkrun") or "")
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIRTUAL_ENV")}
    kept = [part for part in env.get("PATH", "").split(os.pathsep) if part and part != ours]
    env["PATH"] = os.pathsep.join([*([str(venv_bin)] if venv_bin else []), *kept])
    env["NO_COLOR"] = "1"
    return env
