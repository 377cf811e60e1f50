#!/usr/bin/env python3
"""Time loading a 10,000-host inventory in each form checkrun reads (YAML, INI, the JSON of
`ansible-inventory --list`, an executable inventory script printing that JSON) against
`ansible-inventory --list` on the same source; print the ratios.

Two figures per form, medians over --runs:
- load: checkrunner's load_inventories() in this process (what a run or a watch reload pays);
- CLI: `checkrun validate` with the inventory against `ansible-inventory -i SOURCE --list`,
  both as processes (interpreter start-up and imports included: what a user waits for).

ansible-core comes from the interpreter's own venv (the `test` extra installs it), else
bench/.venv-ansible; without either only checkrun is timed.
Run by hand: .venv/bin/python bench/inventory.py [--hosts 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PER_GROUP = 500
TIMEOUT = 600


def write_inventories(directory: Path, hosts: int) -> dict[str, Path]:
    """The same fleet as YAML, INI, `ansible-inventory --list` JSON and a script printing it:
    groups of 500 hosts with group vars, two host vars each, a parent group of them all."""
    yaml_lines = [
        "all:",
        "  vars: {ansible_user: deploy}",
        "  children:",
        "    fleet:",
        "      children:",
    ]
    ini_lines = ["[all:vars]", "ansible_user=deploy", "[fleet:children]"]
    listing: dict = {"_meta": {"hostvars": {}}, "all": {"children": ["fleet", "ungrouped"]}}
    listing["fleet"] = {"children": []}
    for group in range(max(1, hosts // PER_GROUP)):
        name = f"rack{group:03d}"
        ini_lines.insert(3 + group, name)
        listing["fleet"]["children"].append(name)
        yaml_lines += [
            f"        {name}:",
            f"          vars: {{rack: r{group}}}",
            "          hosts:",
        ]
        members = []
        for index in range(min(PER_GROUP, hosts - group * PER_GROUP)):
            number = group * PER_GROUP + index
            host = f"node{number:05d}.example.com"
            address = f"10.{group % 256}.{index // 256}.{index % 256}"
            yaml_lines.append(f"            {host}: {{ansible_host: {address}, slot: {index}}}")
            members.append(f"{host} ansible_host={address} slot={index}")
            listing["_meta"]["hostvars"][host] = {
                "ansible_user": "deploy",
                "rack": f"r{group}",
                "ansible_host": address,
                "slot": index,
            }
        ini_lines += [f"[{name}:vars]", f"rack=r{group}", f"[{name}]", *members]
        listing[name] = {"hosts": [member.split()[0] for member in members]}
    paths = {
        "yaml": directory / "fleet.yml",
        "ini": directory / "fleet.ini",
        "json": directory / "fleet.json",
        "script": directory / "fleet_script.py",
    }
    paths["yaml"].write_text("\n".join(yaml_lines) + "\n")
    paths["ini"].write_text("\n".join(ini_lines) + "\n")
    paths["json"].write_text(json.dumps(listing, indent=4))
    paths["script"].write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdout.write(open({str(paths['json'])!r}).read())\n"
    )
    paths["script"].chmod(0o755)
    return paths


def median_seconds(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def load_in_process(path: Path, hosts: int) -> None:
    from checkrunner.inventory import load_inventories

    inventory = load_inventories([str(path)])
    assert len(inventory.hosts) == hosts, (path, len(inventory.hosts))


def run_process(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")


def find_ansible_inventory() -> str | None:
    for candidate in (
        Path(sys.executable).parent / "ansible-inventory",
        REPO / "bench" / ".venv-ansible" / "bin" / "ansible-inventory",
    ):
        if candidate.exists():
            return str(candidate)
    return shutil.which("ansible-inventory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    checkrun = shutil.which("checkrun", path=str(Path(sys.executable).parent)) or "checkrun"
    ansible = find_ansible_inventory()
    with tempfile.TemporaryDirectory(prefix="checkrun-bench-inventory-") as temp:
        directory = Path(temp)
        paths = write_inventories(directory, args.hosts)
        playbook = directory / "p.yml"
        playbook.write_text("- name: p\n  hosts: all\n  checks: [{name: m, memory: {}}]\n")
        ansible_env = {
            **env,
            "ANSIBLE_HOME": str(directory / ".ansible"),
            "ANSIBLE_CONFIG": str(directory / "none.cfg"),
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        }
        print(
            f"{args.hosts} hosts, median of {args.runs}; ansible-inventory: {ansible or 'absent'}"
        )
        print(
            f"{'form':8} {'size':>8} {'load':>8} {'checkrun validate':>18} {'ansible-inventory':>18} {'ratio':>7}"
        )
        for form, path in paths.items():
            size = path.stat().st_size if form != "script" else paths["json"].stat().st_size
            loaded = median_seconds(lambda path=path: load_in_process(path, args.hosts), args.runs)
            ours = median_seconds(
                lambda path=path: run_process(
                    [checkrun, "validate", str(playbook), "-i", str(path)], directory, env
                ),
                args.runs,
            )
            theirs_text, ratio = "-", "-"
            if ansible is not None:
                theirs = median_seconds(
                    lambda path=path: run_process(
                        [ansible, "-i", str(path), "--list"], directory, ansible_env
                    ),
                    args.runs,
                )
                theirs_text, ratio = f"{theirs:.2f}s", f"{ours / theirs:.2f}×"
            print(
                f"{form:8} {size / 1024**2:7.1f}M {loaded:7.2f}s {ours:17.2f}s "
                f"{theirs_text:>18} {ratio:>7}"
            )


if __name__ == "__main__":
    main()
