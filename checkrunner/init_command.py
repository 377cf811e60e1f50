"""`checkrun init`: look at a live host with the discover module (one batch, over the same
transports as every run) and write a starter playbook from what it found.

The playbook is emitted by hand, not by a YAML library, because it carries comments (why
each threshold) and must be byte-identical for the same host: everything is sorted, and
nothing that moves between two looks (sizes, usage, load, pids) is written, only the
threshold tier it falls in. Strings are written as JSON strings, which YAML reads as
double-quoted scalars, so no name or path can break the syntax.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from checkrunner import app
from checkrunner.errors import CommandFailed, ConfigError
from checkrunner.playbook import load_playbook
from checkrunner.results import EXIT_BAD_INPUT, EXIT_OK, EXIT_UNKNOWN, EXIT_UNREACHABLE, Status
from checkrunner.safe_text import one_line


@dataclass
class InitRequest:
    connection: app.RunCommand  # inventories, limit, ssh options, become
    output: str = "playbook.yml"
    dry_run: bool = False
    force: bool = False
    min_age: float = 60.0


@dataclass(frozen=True)
class Tier:
    """Thresholds for a measurement, chosen from where it stood when the host was seen."""

    below: float  # used when the value is below this
    warn: float
    crit: float
    why: str


DISK_TIERS = (
    Tier(
        75,
        80,
        90,
        "warn at 80% used leaves days of growth to act in; crit at 90%: "
        "writes start failing near full (root's reserved blocks hide the last few %)",
    ),
    Tier(
        85,
        90,
        95,
        "already past 75% used when this was written: warn 90%, crit 95% so "
        "the first run is green; plan for more space",
    ),
    Tier(
        95,
        97,
        99,
        "already past 85% used when this was written: warn 97%, crit 99%, "
        "only to catch it filling up; it needs space now",
    ),
    Tier(
        float("inf"),
        99,
        100,
        "nearly full when this was written: crit at 100% only; it needs space now",
    ),
)
MEMORY_TIERS = (
    Tier(
        80,
        90,
        95,
        "used = total - MemAvailable (page cache counts as free): above 90% "
        "the kernel starts reclaiming hard, above 95% the OOM killer is near",
    ),
    Tier(
        92,
        95,
        98,
        "already past 80% used when this was written: warn 95%, crit 98% so the first run is green",
    ),
    Tier(
        float("inf"),
        98,
        99.5,
        "nearly exhausted when this was written: crit at 99.5% "
        "only, to catch the last step before the OOM killer",
    ),
)
LOAD_WARN = 2  # per core, over 15 minutes


def init(request: InitRequest) -> int:
    if not request.dry_run and os.path.exists(request.output) and not request.force:
        raise ConfigError(
            f"{request.output} exists", hint="choose another -o FILE, or --force to replace it"
        )
    host, facts = discover(request)
    text = render_playbook(host, facts, request.min_age)
    _self_check(text)
    if request.dry_run:
        sys.stdout.write(text)
        return EXIT_OK
    with open(request.output, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(
        f"wrote {one_line(request.output)}: checks for {one_line(host)}; "
        f"try `checkrun validate {one_line(request.output)}`",
        file=sys.stderr,
    )
    return EXIT_OK


def discover(request: InitRequest) -> tuple[str, dict[str, Any]]:
    """The one host's name and what the discover module found there."""
    from checkrunner.runner import run_plan
    from checkrunner.transport import Transports

    base = request.connection
    with tempfile.TemporaryDirectory(prefix="checkrun-init-") as scratch:
        playbook = os.path.join(scratch, "discover.yml")
        pattern = "all" if base.inventories else "localhost"
        spec = {"min_age": f"{request.min_age}s"}
        with open(playbook, "w", encoding="utf-8") as handle:
            handle.write(
                f"- name: discover\n  hosts: {json.dumps(pattern)}\n  checks:\n"
                f"    - name: discover\n      discover: {json.dumps(spec)}\n      timeout: 60s\n"
            )
        cmd = dataclasses.replace(
            base, playbook=playbook, no_state=True, no_notify=True, no_remediate=True
        )
        config = app.load_config(cmd)
        hosts = [hp.host.name for hp in config.plan.hosts]
        if len(hosts) != 1:
            raise ConfigError(
                f"checkrun init looks at one host; {len(hosts)} match",
                hint="name it with -l HOST"
                + (f" (one of: {', '.join(hosts[:10])})" if hosts else ""),
            )
        transports = Transports(app.make_ssh_options(cmd))
        transports.prepare(hp.host for hp in config.plan.hosts)
        with transports:
            result = run_plan(config.plan, app.run_options(cmd, config), [], transports)
    host_result = result.hosts[0]
    if not host_result.reachable:
        raise CommandFailed(
            f"{host_result.host}: unreachable: {host_result.message}", EXIT_UNREACHABLE
        )
    check = host_result.checks[0]
    if check.status == Status.UNKNOWN:
        raise CommandFailed(f"{host_result.host}: discovery failed: {check.message}", EXIT_UNKNOWN)
    return host_result.host, check.facts


def _tier(tiers: tuple[Tier, ...], value: float | None) -> Tier:
    return next(tier for tier in tiers if value is None or value < tier.below)


def _q(text: Any) -> str:
    """A YAML scalar that reads back as exactly `text` (a JSON string is a YAML one)."""
    return json.dumps(str(text), ensure_ascii=False)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _comment(text: str, indent: str = "    ") -> list[str]:
    """`text` as YAML comment lines of at most ~90 columns."""
    lines, line = [], ""
    for word in text.split():
        if line and len(indent) + 2 + len(line) + 1 + len(word) > 90:
            lines.append(f"{indent}# {line}")
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(f"{indent}# {line}")
    return lines


def _section(title: str) -> list[str]:
    return ["", f"    # --- {title} " + "-" * max(3, 80 - len(title))]


def render_playbook(host: str, facts: dict[str, Any], min_age: float) -> str:
    lines = [
        f"# Starter checks for {one_line(host)}, written by `checkrun init` from what ran there.",
        "# Keep what matters, delete the rest, tune thresholds to this host's normal.",
        "# Check it: checkrun validate FILE     Run it: checkrun FILE [-i INVENTORY]",
        "# Logs are read from where the last run stopped: keep the state database (the",
        "# default) between runs, so each run counts only new lines.",
        f"- name: {_q('starter checks for ' + host)}",
        f"  hosts: {_q(host)}",
        "  checks:",
    ]
    lines += _filesystem_checks(facts.get("filesystems") or [])
    lines += _memory_and_load_checks(facts)
    lines += _listener_checks(facts.get("listeners") or [])
    lines += _process_checks(facts.get("services") or [], min_age)
    lines += _log_checks(facts.get("logs") or [])
    return "\n".join(lines) + "\n"


def _filesystem_checks(filesystems: list[dict[str, Any]]) -> list[str]:
    lines = _section("filesystems (real ones; no tmpfs, overlay, proc or squashfs)")
    for fs in sorted(filesystems, key=lambda item: item["mountpoint"]):
        tier = _tier(DISK_TIERS, fs.get("used_percent"))
        lines += _comment(f"{fs['mountpoint']} ({fs['fstype']}): {tier.why}.")
        lines += [
            f"    - name: {_q('disk ' + fs['mountpoint'])}",
            f"      disk: {{path: {_q(fs['mountpoint'])}}}",
            f"      warn: {_number(tier.warn)}",
            f"      crit: {_number(tier.crit)}",
        ]
    return lines


def _memory_and_load_checks(facts: dict[str, Any]) -> list[str]:
    memory = _tier(MEMORY_TIERS, facts.get("memory_used_percent"))
    cores = facts.get("cores") or 1
    lines = _section("memory and load")
    lines += _comment(f"{memory.why}.")
    lines += [
        "    - name: memory",
        "      memory: {}",
        f"      warn: {_number(memory.warn)}",
        f"      crit: {_number(memory.crit)}",
    ]
    lines += _comment(
        f"Load per core ({cores} here) over 15 minutes: about 1 means every CPU is busy, "
        f"{LOAD_WARN} means work waits as long as it runs. A warning only: load alone is no "
        "outage (the service checks below say whether users feel it)."
    )
    lines += [
        "    - name: load per core",
        "      load: {}",
        "      metric: load15_per_core",
        f"      warn: {LOAD_WARN}",
    ]
    return lines


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{_number(seconds)}s"


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _listener_checks(listeners: list[dict[str, Any]]) -> list[str]:
    if not listeners:
        return []
    lines = _section("listening TCP services (probed from the host itself)")
    lines += _comment(
        "A refused or silent port is CRITICAL by itself. HTTP checks expect the status "
        "`GET /` answered when this was written (redirects not followed); warn when the "
        "answer takes over 2s, which users notice."
    )
    for item in sorted(listeners, key=lambda entry: (entry["port"], entry["host"])):
        owner = f" ({item['process']})" if item.get("process") else ""
        where = (
            f"{item['host']}:{item['port']}"
            if ":" not in item["host"]
            else (f"[{item['host']}]:{item['port']}")
        )
        lines += [
            f"    - name: {_q('tcp ' + where + owner)}",
            f"      tcp: {{host: {_q(item['host'])}, port: {item['port']}, timeout: 5s}}",
        ]
        status = item.get("http_status")
        if status is not None:
            lines += [
                f"    - name: {_q('http ' + where + owner)}",
                f"      http: {{url: {_q(_url(item['host'], item['port']))}, status: [{status}], "
                "follow_redirects: false, timeout: 5s}",
                "      warn: 2s",
            ]
    return lines


def _process_checks(services: list[str], min_age: float) -> list[str]:
    if not services:
        return []
    lines = _section("long-running processes, by name")
    lines += _comment(
        f"Each had run at least {_duration(min_age)} without a terminal when this was "
        "written: crit when none is left. By name only: command lines may hold secrets."
    )
    for name in sorted(set(services)):
        lines += [
            f"    - name: {_q('process ' + name)}",
            f"      process: {{name: {_q(name)}, sample: 0s}}",
            '      crit: "1:"',
        ]
    return lines


def _log_checks(logs: list[dict[str, Any]]) -> list[str]:
    if not logs:
        return []
    lines = _section("the largest active logs")
    lines += _comment(
        "New lines with the word ERROR since the last run: warn at the first one (someone "
        "should look), crit at 100 (something is failing over and over)."
    )
    for log in sorted(logs, key=lambda item: item["path"]):
        lines += [
            f"    - name: {_q('log ' + log['path'])}",
            "      log:",
            f"        path: {_q(log['path'])}",
            "        patterns:",
            '          - {name: errors, regex: "\\\\bERROR\\\\b", warn: 1, crit: 100}',
        ]
    return lines


def _self_check(text: str) -> None:
    """What init writes must load: a failure here is a bug of init, said as such."""
    with tempfile.TemporaryDirectory(prefix="checkrun-init-") as scratch:
        path = os.path.join(scratch, "playbook.yml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            load_playbook(path)
        except ConfigError as exc:
            raise CommandFailed(
                f"checkrun init wrote a playbook that does not load: {exc}", EXIT_BAD_INPUT
            ) from None
