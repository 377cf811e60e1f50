#!/usr/bin/env python3
"""Time `checkrun validate` on a 20-check playbook against `ansible-playbook --syntax-check`
on an equivalent playbook, and `checkrun playbooks/localhost.yml`; print the ratios.

ansible-core is installed in this benchmark's own virtualenv (bench/.venv-ansible), never as a
project dependency. Run by hand: python3 bench/validate_vs_ansible.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / "bench" / ".venv-ansible"
CHECKRUN_VENV = REPO / "bench" / ".venv-checkrun"

CHECKRUN_CHECKS = [
    "- {{name: 'cpu {i}', cpu: {{sample: 200ms}}, warn: 80, crit: 95}}",
    "- {{name: 'memory {i}', memory: {{}}, warn: 85, crit: 95}}",
    "- {{name: 'disk {i}', disk: {{path: /}}, warn: 85, crit: 95}}",
    "- {{name: 'http {i}', http: {{url: 'http://127.0.0.1:{{{{ port }}}}/health', status: [200]}}}}",
    "- {{name: 'command {i}', command: {{cmd: 'uptime'}}}}",
]
ANSIBLE_TASKS = [
    "- {{name: 'cpu {i}', ansible.builtin.shell: \"top -bn1 | head -3\", changed_when: false}}",
    "- {{name: 'memory {i}', ansible.builtin.command: free -m, changed_when: false}}",
    "- {{name: 'disk {i}', ansible.builtin.assert: {{that: ['ansible_mounts | length > 0']}}}}",
    "- {{name: 'http {i}', ansible.builtin.uri: {{url: 'http://127.0.0.1:{{{{ port }}}}/health', status_code: [200]}}}}",
    "- {{name: 'command {i}', ansible.builtin.command: uptime, changed_when: false}}",
]


def write_playbooks(directory: Path, count: int = 20) -> tuple[Path, Path]:
    ours = ["- name: bench", "  hosts: localhost", "  vars: {port: 8080}", "  checks:"]
    theirs = [
        "- name: bench",
        "  hosts: localhost",
        "  gather_facts: false",
        "  vars: {port: 8080}",
        "  tasks:",
    ]
    for i in range(count):
        ours.append("    " + CHECKRUN_CHECKS[i % len(CHECKRUN_CHECKS)].format(i=i))
        theirs.append("    " + ANSIBLE_TASKS[i % len(ANSIBLE_TASKS)].format(i=i))
    checkrun_pb = directory / "checkrun.yml"
    ansible_pb = directory / "ansible.yml"
    checkrun_pb.write_text("\n".join(ours) + "\n")
    ansible_pb.write_text("\n".join(theirs) + "\n")
    return checkrun_pb, ansible_pb


def ensure_ansible() -> Path:
    binary = VENV / "bin" / "ansible-playbook"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "ansible-core"], check=True)
    return binary


def install_checkrun() -> Path:
    """checkrunner as a user gets it: `pip install .` into its own venv (bytecode compiled)."""
    if not (CHECKRUN_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(CHECKRUN_VENV)], check=True)
    subprocess.run(
        [
            str(CHECKRUN_VENV / "bin" / "pip"),
            "install",
            "-q",
            "--force-reinstall",
            "--no-deps",
            str(REPO),
        ],
        check=True,
    )
    subprocess.run([str(CHECKRUN_VENV / "bin" / "pip"), "install", "-q", str(REPO)], check=True)
    return CHECKRUN_VENV / "bin" / "checkrun"


def timed(argv: list[str], runs: int, env: dict[str, str] | None = None) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - started)
        if proc.returncode not in (0, 1, 2, 3, 4):
            raise SystemExit(f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    # Both tools run from their own virtualenvs, called by path (no shims), with bytecode
    # caches allowed, as on a user's machine.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    checkrun = str(install_checkrun())
    ansible = ensure_ansible()
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = write_playbooks(Path(tmp))
        env = {
            **os.environ,
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        }
        validate = timed([checkrun, "validate", str(ours)], args.runs)
        syntax = timed([str(ansible), "--syntax-check", str(theirs)], args.runs, env)
        localhost = timed(
            [checkrun, str(REPO / "playbooks" / "localhost.yml"), "-r", "json:-"], args.runs
        )
    med = statistics.median
    print(f"runs per command: {args.runs} (median wall time)")
    print(f"checkrun validate (20 checks)          {med(validate) * 1000:8.0f} ms")
    print(f"ansible-playbook --syntax-check (20)   {med(syntax) * 1000:8.0f} ms")
    print(
        f"ratio validate / ansible               {med(validate) / med(syntax):8.2f}  (target < 0.33)"
    )
    print(
        f"checkrun playbooks/localhost.yml       {med(localhost) * 1000:8.0f} ms  (includes a 1 s cpu sample)"
    )


if __name__ == "__main__":
    main()
