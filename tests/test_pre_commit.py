"""The `checkrun-validate` hook of .pre-commit-hooks.yaml, run by the real pre-commit in a
scratch git repository: pre-commit clones the hook repository (a local git copy of this
checkout, so nothing is fetched from the network), installs it with pip in its own
virtualenv and runs the hook on the changed playbooks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PRE_COMMIT = shutil.which("pre-commit") or str(Path(sys.executable).parent / "pre-commit")
_NOT_SHIPPED = shutil.ignore_patterns(
    ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache"
)

GOOD = """\
- name: web
  hosts: web
  checks:
    - name: root filesystem
      disk: /
      crit: 90
"""
BROKEN = """\
- name: web
  hosts: web
  checks:
    - name: health
      htp: {url: "http://127.0.0.1:8080/health"}
"""
INVENTORY = "[web]\nweb-1 ansible_connection=local\n"


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=120
    )
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> tuple[Path, str]:
    """This checkout as a git repository at one commit (uncommitted changes included)."""
    path = tmp_path_factory.mktemp("hooks") / "checkrunner"
    shutil.copytree(REPO, path, ignore=_NOT_SHIPPED)
    _git(path, "init", "-q")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "hooks")
    return path, _git(path, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


def _project(tmp_path: Path, hook_repo: tuple[Path, str], args: str = "") -> Path:
    repo, rev = hook_repo
    project = tmp_path / "project"
    (project / "playbooks").mkdir(parents=True)
    (project / "config").mkdir()
    (project / "inventory.ini").write_text(INVENTORY)
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {repo}\n    rev: {rev}\n    hooks:\n      - id: checkrun-validate\n"
        + (f"        args: {args}\n" if args else "")
    )
    _git(project, "init", "-q")
    return project


def _run_hook(project: Path, home: Path, *files: str) -> subprocess.CompletedProcess:
    _git(project, "add", "-A")
    return subprocess.run(
        [PRE_COMMIT, "run", "checkrun-validate", "--verbose", "--files", *files],
        cwd=project,
        env={**os.environ, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_hook_passes_a_good_playbook_and_names_the_line_of_a_broken_one(
    tmp_path, hook_repo, pre_commit_home
):
    project = _project(tmp_path, hook_repo)
    (project / "playbooks" / "web.yml").write_text(GOOD)
    # YAML that is no playbook is not the hook's business (its `files` pattern)
    (project / "config" / "app.yml").write_text("just: config\n")
    good = _run_hook(project, pre_commit_home, "playbooks/web.yml", "config/app.yml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "checkrun validate" in good.stdout and "Passed" in good.stdout

    (project / "playbooks" / "broken.yml").write_text(BROKEN)
    bad = _run_hook(project, pre_commit_home, "playbooks/web.yml", "playbooks/broken.yml")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert "playbooks/broken.yml:5:7: unknown module 'htp'" in bad.stdout
    assert "did you mean 'http'" in bad.stdout
    assert "playbooks/web.yml: OK" in bad.stdout  # every file is checked, not just the first


def test_hook_checks_playbooks_against_the_inventory_given(tmp_path, hook_repo, pre_commit_home):
    project = _project(tmp_path, hook_repo, args="[-i, inventory.ini]")
    (project / "playbooks" / "web.yml").write_text(GOOD)
    ok = _run_hook(project, pre_commit_home, "playbooks/web.yml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "playbooks/web.yml: OK (1 check on 1 host)" in ok.stdout

    (project / "inventory.ini").write_text("[web\nweb-1\n")
    broken = _run_hook(project, pre_commit_home, "playbooks/web.yml")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "inventory.ini:1:" in broken.stdout
