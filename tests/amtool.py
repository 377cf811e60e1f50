"""The real `amtool` 0.25 (Debian's prometheus-alertmanager package) as the reference for
Alertmanager's configuration rules and routing.

    accepted, output = check_config(path)
    receivers = routes_test(path, {"severity": "critical", "team": "db"})
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def amtool_binary() -> str:
    found = shutil.which("amtool") or (
        "/usr/bin/amtool" if Path("/usr/bin/amtool").exists() else None
    )
    if found is None:
        raise RuntimeError("amtool is missing: scripts/test.sh installs prometheus-alertmanager")
    return found


def _quoted(value: str) -> str:
    """A label value as amtool's argument parser (labels.ParseMatcher) reads it back."""
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{escaped}"'


def check_config(path: Path) -> tuple[bool, str]:
    done = subprocess.run(
        [amtool_binary(), "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    return done.returncode == 0, done.stdout + done.stderr


def routes_test(path: Path, labels: dict[str, str]) -> list[str]:
    """The receivers Alertmanager routes an alert with these labels to, in tree order."""
    arguments = [f"{name}={_quoted(value)}" for name, value in labels.items()]
    done = subprocess.run(
        [amtool_binary(), "config", "routes", "test", f"--config.file={path}", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise AssertionError(f"amtool routes test failed: {done.stdout}{done.stderr}")
    return done.stdout.strip().split(",")
