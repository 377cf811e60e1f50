"""`checkrun merge RUN.json ... [-r FORMAT[:PATH] ...]`: the JSON reports of the shards of
one run (`--shard K/N`) joined into the report that run would have written unsharded, in
any format, with its exit code.

A command function as app.py's are, kept out of app.py so that it starts without the
run's layers (playbook, inventory, transports, Jinja2, YAML): only the reports.

What cannot be merged honestly is exit 5, nothing written: a file that is JSON but no
checkrun report, or no shard's; reports of different runs (playbook, N, planned hosts,
--fail-on); one shard given twice. A shard without a readable report (the file is missing
or empty, or not JSON: the shard crashed) is not dropped: each of its hosts gets one
UNKNOWN `shard report` check saying why, so every format shows it and the exit code is
at least 3 (2 when a CRITICAL was found), and the report's `merge` field names it. An
interrupted shard makes the merged run interrupted (130), as the single run would be.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from checkrunner.errors import ConfigError, Location
from checkrunner.report import create_reporters
from checkrunner.report.json_report import read_run
from checkrunner.results import CheckResult, HostResult, RunResult, Status
from checkrunner.safe_text import printable
from checkrunner.shards import MergeInfo, ShardInfo, ShardReport

MERGE_PLAY = "checkrun merge"  # the play of the `shard report` check of a missing shard
MISSING_CHECK = "shard report"
MERGE_HINT = (
    "merge the reports of one sharded run: the same playbook, inventory, --limit, "
    "--fail-on and N for every --shard K/N"
)


@dataclass
class MergeCommand:
    """`checkrun merge`: the shards' JSON reports, and the reports to write."""

    inputs: list[str]
    reports: list[str] = field(default_factory=list)
    verbose: int = 0


@dataclass
class ShardRun:
    """One input: its run, or why it could not be read (`error`)."""

    file: str
    run: RunResult | None = None
    error: str | None = None

    @property
    def shard(self) -> ShardInfo:
        assert self.run is not None and self.run.shard is not None
        return self.run.shard


def merge(cmd: MergeCommand) -> int:
    """`checkrun merge`: read, check, join, write every report; the single run's exit code."""
    reporters = create_reporters(cmd.reports, verbose=cmd.verbose)  # a bad -r: exit 5 first
    run = merge_runs([read_shard(path) for path in cmd.inputs])
    for line in merge_warnings(run):
        print(f"[WARNING] {printable(line, newlines=False)}", file=sys.stderr)
    try:
        for reporter in reporters:
            reporter.finish(run)
    finally:
        for reporter in reporters:
            reporter.close()
    return run.exit_code


def read_shard(path: str) -> ShardRun:
    """One shard's report. A file that cannot be read or is not JSON is a failed shard
    (ShardRun.error, file:line:column); JSON that is no shard's report is ConfigError."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return ShardRun(path, error=f"{path}: cannot read it: {exc.strerror}")
    if not data.strip():
        return ShardRun(path, error=f"{path}: empty: the shard wrote no report")
    try:
        text = data.decode("utf-8")
        document = json.loads(text)
    except UnicodeDecodeError as exc:
        return ShardRun(path, error=f"{path}: not UTF-8 (byte {exc.start}): not a JSON report")
    except json.JSONDecodeError as exc:
        return ShardRun(path, error=f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}")
    run = read_run(document, path, text)
    if run.shard is None:
        raise ConfigError(
            "this report is not a shard's: its run had no --shard K/N",
            Location(path),
            "run each shard with --shard K/N and merge their reports",
        )
    return ShardRun(path, run=run)


def merge_runs(shards: list[ShardRun]) -> RunResult:
    """The run the shards make together; ConfigError when they are not one run's."""
    read = [shard for shard in shards if shard.run is not None]
    if not read:
        errors = "; ".join(shard.error or "" for shard in shards)
        raise ConfigError(f"no shard report could be read: {errors}", hint=MERGE_HINT)
    reference = read[0]
    by_index: dict[int, ShardRun] = {}
    for shard in read:
        _check_same_run(reference, shard)
        _check_hosts_belong(shard)
        other = by_index.setdefault(shard.shard.index, shard)
        if other is not shard:
            raise ConfigError(
                f"shard {shard.shard.index}/{shard.shard.count} is given twice: "
                f"{other.file} and {shard.file}",
                Location(shard.file),
                "pass each shard's report once (the re-run's, if a shard was run again)",
            )
    info = reference.shard
    failures = [shard.error for shard in shards if shard.error]
    missing = [index for index in range(1, info.count + 1) if index not in by_index]
    hosts = _hosts_in_plan_order(info, by_index, missing, failures)
    runs = [shard.run for shard in read if shard.run is not None]
    return RunResult(
        playbook=reference.run.playbook if reference.run else "",
        started_at=min(run.started_at for run in runs),
        finished_at=max(run.finished_at for run in runs),
        hosts=hosts,
        interrupted=any(run.interrupted for run in runs),
        fail_on=runs[0].fail_on,
        merge=MergeInfo(
            info.count,
            [
                ShardReport(
                    shard.file,
                    shard.shard.index if shard.run else None,
                    shard.error,
                    bool(shard.run and shard.run.interrupted),
                )
                for shard in shards
            ],
            missing,
        ),
    )


def _check_same_run(reference: ShardRun, shard: ShardRun) -> None:
    """The shards of one run share the playbook, N, --fail-on and the planned hosts."""
    assert reference.run is not None and shard.run is not None
    differences = [
        (what, mine, theirs)
        for what, mine, theirs in (
            ("playbook", shard.run.playbook, reference.run.playbook),
            ("number of shards", shard.shard.count, reference.shard.count),
            ("--fail-on", shard.run.fail_on, reference.run.fail_on),
        )
        if mine != theirs
    ]
    if differences:
        what, mine, theirs = differences[0]
        raise ConfigError(
            f"not a shard of the same run as {reference.file}: its {what} is {mine!r}, "
            f"not {theirs!r}",
            Location(shard.file),
            MERGE_HINT,
        )
    if shard.shard.planned != reference.shard.planned:
        ours = {host for host, _ in shard.shard.planned}
        theirs = {host for host, _ in reference.shard.planned}
        extra = sorted(ours - theirs)[:3] or sorted(theirs - ours)[:3]
        raise ConfigError(
            f"not a shard of the same run as {reference.file}: it planned other hosts "
            f"({len(ours)} against {len(theirs)}; e.g. "
            f"{', '.join(extra) or 'in another order or on other shards'})",
            Location(shard.file),
            MERGE_HINT,
        )


def _check_hosts_belong(shard: ShardRun) -> None:
    """Each host of a shard's report is one its plan gave it (else a host could be
    counted twice or not at all)."""
    assert shard.run is not None
    info = shard.shard
    owned = set(info.hosts_of(info.index))
    for host in shard.run.hosts:
        if host.host not in owned:
            raise ConfigError(
                f"host {host.host!r} is not one shard {info.index}/{info.count} runs",
                Location(shard.file),
                "merge the reports checkrun wrote, unedited",
            )


def _hosts_in_plan_order(
    info: ShardInfo, by_index: dict[int, ShardRun], missing: list[int], failures: list[str]
) -> list[HostResult]:
    """Every host reported by a shard, and every host of a missing shard with its UNKNOWN
    `shard report` check, in the order the unsharded run would report them."""
    found: dict[str, HostResult] = {}
    for shard in by_index.values():
        assert shard.run is not None
        found.update((host.host, host) for host in shard.run.hosts)
    why = "; ".join(failures) if failures else "no report was given for it"
    for index in missing:
        for name in info.hosts_of(index):
            found[name] = _missing_host(name, index, info.count, why)
    return [found[name] for name, _ in info.planned if name in found]


def _missing_host(name: str, index: int, count: int, why: str) -> HostResult:
    message = f"shard {index}/{count} has no report, this host was not checked: {why}"
    check = CheckResult(
        host=name,
        play=MERGE_PLAY,
        name=MISSING_CHECK,
        module="merge",
        status=Status.UNKNOWN,
        message=message,
        check_id="merge",
    )
    return HostResult(host=name, address="", connection="", checks=[check])


def merge_warnings(run: RunResult) -> list[str]:
    """One line per missing or interrupted shard and per report that could not be read."""
    info = run.merge
    if info is None:
        return []
    lines = [f"{report.error}" for report in info.reports if report.error]
    for index in info.missing:
        lines.append(
            f"shard {index}/{info.count} has no report: its hosts are UNKNOWN in the merged report"
        )
    for report in info.reports:
        if report.interrupted:
            lines.append(
                f"{report.file}: shard {report.index}/{info.count} was interrupted: "
                "its unfinished hosts are missing"
            )
    return lines
