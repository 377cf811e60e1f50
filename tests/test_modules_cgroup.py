"""The cgroup and pressure modules: the cgroup reader against recorded v1, v2 and hybrid trees
(tests/fixtures/cgroup/), the window arithmetic, and real parts on this machine, locally and
over SSH: a real cgroup v1 made here, a real process in it that holds a known amount of
memory and burns CPU under a quota, a real OOM kill counted across runs through the state
database, and PSI compared with /proc/pressure read directly around the same window. The
parsers' own cases are data: tests/fixtures/parsers/ (test_parsers.py)."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import run_checkrun
from real_cgroups import RealCgroup, made_cgroup, stop
from sshd import SSHServer, running_sshd, sshd_available

from checkrunner import catalog
from checkrunner.modules import cgroup, pressure
from checkrunner.modules._batch import CheckContext
from checkrunner.modules._utils import cgroups

TREES = Path(__file__).resolve().parent / "fixtures" / "cgroup"
PSI_FILES = Path(__file__).resolve().parent / "fixtures" / "procfs" / "pressure"
SSH_ADDRESS = "127.0.33.1"
MIB = 1024 * 1024


def context(proc_root: str | Path = "/proc", timeout: float = 10.0) -> CheckContext:
    return CheckContext("t", timeout, None, proc_root=str(proc_root))


# ---------------------------------------------------------------- recorded trees


def tree_cases() -> list[tuple[str, dict, dict]]:
    cases = []
    for tree in sorted(p for p in TREES.iterdir() if p.is_dir()):
        expected = json.loads((tree / "expected.json").read_text())
        for group in expected["cgroups"]:
            for find in group["find"]:
                cases.append((tree.name, find, group))
    return cases


def _args(tree: Path, find: dict) -> dict:
    root = str(tree / "sys")
    args = {
        key: value.replace("{root}", root) if isinstance(value, str) else value
        for key, value in find.items()
    }
    return {**args, "cgroup_root": root}


@pytest.mark.parametrize(
    ("tree_name", "find", "group"),
    tree_cases(),
    ids=[f"{t}-{'-'.join(f'{k}' for k in f)}{i}" for i, (t, f, _) in enumerate(tree_cases())],
)
def test_recorded_tree(tree_name, find, group):
    tree = TREES / tree_name
    found = cgroups.find(_args(tree, find), str(tree / "proc"))
    assert found.path == group["path"]
    assert found.layout.version == group["version"]
    relative = {key: os.path.relpath(path, tree / "sys") for key, path in found.dirs.items()}
    assert relative == group["dirs"]
    assert cgroups.read_counters(found) == group["counters"]


def tree_errors() -> list[tuple[str, dict, str]]:
    return [
        (tree.name, error["find"], error["match"])
        for tree in sorted(p for p in TREES.iterdir() if p.is_dir())
        for error in json.loads((tree / "expected.json").read_text()).get("errors", [])
    ]


@pytest.mark.parametrize(("tree_name", "find", "match"), tree_errors())
def test_recorded_tree_errors(tree_name, find, match):
    tree = TREES / tree_name
    with pytest.raises(RuntimeError, match=match):
        cgroups.find(_args(tree, find), str(tree / "proc"))


def test_a_container_name_matching_two_cgroups_is_refused(tmp_path):
    for pod in ("pod-a", "pod-b"):
        (tmp_path / "kubepods" / pod / "app").mkdir(parents=True)
    (tmp_path / "cgroup.controllers").write_text("memory\n")
    with pytest.raises(RuntimeError, match="names 2 cgroups .*give its path instead"):
        cgroups.find({"container": "app", "cgroup_root": str(tmp_path)}, "/proc")


def test_no_cgroup_filesystem_says_where_it_looked(tmp_path):
    with pytest.raises(RuntimeError, match="no cgroup hierarchy is mounted under"):
        cgroups.find({"path": "/", "cgroup_root": str(tmp_path)}, "/proc")


def test_a_cgroup_removed_during_the_window_is_said_so(tmp_path):
    shutil.copytree(TREES / "v2_systemd_k8s" / "sys", tmp_path / "sys")
    args = {"unit": "nginx.service", "cgroup_root": str(tmp_path / "sys")}
    ctx = context()
    ctx.before = cgroup.sample(args, ctx)
    shutil.rmtree(tmp_path / "sys" / "system.slice" / "nginx.service")
    ctx.after = cgroup.sample(args, ctx)
    with pytest.raises(RuntimeError, match="/system.slice/nginx.service was removed during"):
        cgroup.run(args, ctx)


def test_pressure_of_a_cgroup_removed_during_the_window_is_said_so(tmp_path):
    shutil.copytree(TREES / "v2_systemd_k8s" / "sys", tmp_path / "sys")
    args = {"unit": "nginx.service", "cgroup_root": str(tmp_path / "sys")}
    ctx = context()
    ctx.before = pressure.sample(args, ctx)
    shutil.rmtree(tmp_path / "sys" / "system.slice" / "nginx.service")
    with pytest.raises(RuntimeError, match="nginx.service is gone: the cgroup was removed"):
        pressure.sample(args, ctx)


# ---------------------------------------------------------------- window arithmetic


def test_unlimited_memory_reports_no_share_of_a_huge_number():
    values = cgroups.memory_values(
        {
            "memory_usage": 100 * MIB,
            "memory_limit": None,
            "inactive_file": 30 * MIB,
            "cache": 40 * MIB,
        }
    )
    assert values == {"memory_usage": 100 * MIB, "working_set": 70 * MIB, "cache": 40 * MIB}


def test_memory_share_of_the_limit_and_working_set():
    values = cgroups.memory_values(
        {"memory_usage": 200 * MIB, "memory_limit": 400 * MIB, "inactive_file": 100 * MIB}
    )
    assert values["memory_percent"] == 50.0
    assert values["working_set"] == 100 * MIB
    assert values["working_set_percent"] == 25.0


def test_cpu_cores_quota_share_and_throttling_over_a_window():
    before = {"cpu_usage_ns": 10**9, "nr_periods": 100, "nr_throttled": 10, "throttled_ns": 0}
    after = {
        "cpu_usage_ns": 2 * 10**9,  # 1 s of CPU in a 2 s window: half a core
        "nr_periods": 120,
        "nr_throttled": 25,
        "throttled_ns": 300 * 10**6,
        "cpu_quota_us": 50000,
        "cpu_period_us": 100000,
    }
    values = cgroups.cpu_values(before, after, 2.0)
    assert values == {
        "cpu_cores": 0.5,
        "cpu_quota_cores": 0.5,
        "cpu_quota_percent": 100.0,
        "throttled_percent": 75.0,
        "throttled_time": 0.3,
    }


def test_oom_kills_first_run_then_since_the_last_then_after_a_recreated_cgroup():
    assert cgroup.oom_kills({}, "/m/app", 4) == (None, {"/m/app": {"oom_kill": 4}})
    assert cgroup.oom_kills({"/m/app": {"oom_kill": 4}}, "/m/app", 6)[0] == 2
    assert cgroup.oom_kills({"/m/app": {"oom_kill": 4}}, "/m/app", 1)[0] == 1
    assert cgroup.oom_kills({"/m/other": {"oom_kill": 4}}, "/m/app", 6)[0] is None


# ---------------------------------------------------------------- pressure on recorded files


def _proc_with_pressure(root: Path, **files: str) -> Path:
    (root / "pressure").mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / "pressure" / name).write_text(text)
    return root


def test_pressure_stall_over_the_window_and_averages(tmp_path):
    ctx = context(
        _proc_with_pressure(
            tmp_path,
            cpu=(PSI_FILES / "host_cpu_6.18.txt").read_text(),
            io="some avg10=1.00 avg60=2.00 avg300=3.00 total=1000000\n"
            "full avg10=0.50 avg60=1.00 avg300=1.50 total=500000\n",
        )
    )
    ctx.before = pressure.sample({}, ctx)
    _proc_with_pressure(
        tmp_path,
        cpu="some avg10=9.00 avg60=6.00 avg300=5.00 total=4191974284\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        io="some avg10=4.00 avg60=3.00 avg300=3.00 total=1250000\n"
        "full avg10=2.00 avg60=1.50 avg300=1.50 total=600000\n",
    )
    ctx.after = pressure.sample({}, ctx)
    ctx.after["taken"] = ctx.before["taken"] + 2.0  # the window the totals are divided by
    result = pressure.run({}, ctx)
    values = result["measurements"]
    assert values["cpu_some_avg10"] == 9.0
    assert values["cpu_some_stall"] == 0.5  # 500000 µs more
    assert values["cpu_some_stall_percent"] == 25.0
    assert values["io_full_stall"] == 0.1
    assert values["io_full_stall_percent"] == 5.0
    assert not any(name.startswith("cpu_full") for name in values)  # always 0 on the host
    assert result["facts"]["resources"] == ["cpu", "io"]  # memory and irq absent: left out


def test_a_kernel_without_psi_is_unknown_with_the_reason(tmp_path):
    with pytest.raises(RuntimeError, match=r"this kernel \(.*\) has no PSI: .*pressure is missing"):
        pressure.sample({}, context(tmp_path))


def test_psi_disabled_is_said_so():
    # A kernel booted with psi=0 keeps the files and refuses reads with EOPNOTSUPP; this
    # kernel has PSI on, so the error it would raise is built here.
    refused = OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
    assert "boot it with psi=1" in str(pressure._unsupported("/proc/pressure/cpu", refused))


def test_a_resource_asked_for_and_missing_is_an_error(tmp_path):
    ctx = context(_proc_with_pressure(tmp_path, cpu=(PSI_FILES / "host_cpu_6.18.txt").read_text()))
    with pytest.raises(RuntimeError, match="pressure/irq is missing"):
        pressure.sample({"resources": ["irq"]}, ctx)


@pytest.mark.parametrize(
    "selection",
    [{"cgroup": "/system.slice/nginx.service"}, {"unit": "nginx"}, {"pid": 800}],
    ids=["path", "unit", "pid"],
)
def test_pressure_of_a_cgroup_v2_from_a_recorded_tree(selection):
    tree = TREES / "v2_systemd_k8s"
    args = {**selection, "cgroup_root": str(tree / "sys"), "sample": 0.05}
    result = pressure.run(args, context(tree / "proc"))
    values = result["measurements"]
    assert values["cpu_full_avg10"] == 0.5  # a cgroup's cpu full is kept
    assert values["cpu_some_stall"] == 0.0  # the recorded file did not change
    assert result["facts"]["source"] == str(tree / "sys" / "system.slice" / "nginx.service")
    assert result["message"].startswith("pressure of cgroup /system.slice/nginx.service")


def test_pressure_of_a_cgroup_needs_v2():
    args = {"cgroup": "/docker", "cgroup_root": str(TREES / "v1_docker" / "sys")}
    with pytest.raises(RuntimeError, match="needs cgroup v2"):
        pressure.sample(args, context())


# ---------------------------------------------------------------- real parts on this machine


def _psi_totals(resource: str) -> dict[str, int]:
    parsed = pressure.parse_pressure(Path(f"/proc/pressure/{resource}").read_text())
    return {kind: int(fields["total"]) for kind, fields in parsed.items()}


def _burners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def test_host_psi_agrees_with_a_direct_read_over_the_same_window():
    """More runnable processes than cores: tasks wait for CPU. The module's stall time lies
    within the direct read's, taken just outside its window."""
    burners = _burners(2 * (os.cpu_count() or 1) + 1)
    try:
        ctx = context()
        direct_before = _psi_totals("cpu")
        ctx.before = pressure.sample({}, ctx)
        time.sleep(1.0)
        ctx.after = pressure.sample({}, ctx)
        direct_after = _psi_totals("cpu")
    finally:
        stop(burners)
    values = pressure.run({}, ctx)["measurements"]
    direct_stall = (direct_after["some"] - direct_before["some"]) / 1e6
    assert 0 < values["cpu_some_stall"] <= direct_stall
    window = ctx.after["taken"] - ctx.before["taken"]
    # a share of the window, capped at 100 (the stall counter and the window's clock are
    # read microseconds apart: a fully stalled window can count a hair more than itself)
    assert values["cpu_some_stall_percent"] == pytest.approx(
        min(100.0, 100 * values["cpu_some_stall"] / window), abs=1e-3
    )


@pytest.fixture
def real_cgroup(request) -> Iterator[RealCgroup]:
    name = f"checkrun-test-{os.getpid()}-{request.node.name[:20]}"
    with made_cgroup(name.replace("[", "-").replace("]", "")) as made:
        yield made


HOLD_AND_BURN = """
held = bytearray({size})
for i in range(0, len(held), 4096):
    held[i] = 1
print("ready", flush=True)
while True:
    pass
"""

EAT = """
print("ready", flush=True)
chunks = []
while True:
    chunk = bytearray(1 << 20)
    for i in range(0, len(chunk), 4096):
        chunk[i] = 1
    chunks.append(chunk)
"""


@dataclass
class Target:
    """Where checkrun runs the checks: this machine, or over SSH."""

    hosts: str
    extra: list[str]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[SSHServer]:
    if not sshd_available():
        pytest.fail("sshd is missing: scripts/test.sh installs openssh-server")
    with running_sshd(tmp_path_factory.mktemp("sshd-cgroup"), [SSH_ADDRESS]) as server:
        yield server


@pytest.fixture(params=["local", "ssh"])
def target(request, tmp_path) -> Target:
    if request.param == "local":
        return Target("localhost", [])
    server = request.getfixturevalue("sshd")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"target ansible_host={SSH_ADDRESS} ansible_port={server.port} "
        f"ansible_user={server.user} ansible_ssh_private_key_file={server.client_key}\n"
    )
    known_hosts = server.write_known_hosts(tmp_path / "known_hosts")
    return Target("target", ["-i", str(inventory), "--known-hosts", str(known_hosts)])


def run_checks(tmp_path: Path, target: Target, checks: str, state: Path | None = None) -> dict:
    playbook = tmp_path / "cgroup.yml"
    playbook.write_text(f"- name: cgroups\n  hosts: {target.hosts}\n  checks:\n{checks}")
    report = tmp_path / "report.json"
    extra = ["--state", str(state)] if state else ["--no-state"]
    done = run_checkrun(playbook, *target.extra, *extra, "-r", f"json:{report}")
    assert report.exists(), done.stderr
    checks_run = json.loads(report.read_text())["hosts"][0]["checks"]
    return {check["name"]: check for check in checks_run}


def test_memory_cpu_quota_and_throttling_of_a_real_cgroup(tmp_path, target, real_cgroup):
    """A process holding 96 MiB and burning CPU under a 0.2-core quota, found by path, pid
    and pattern: its memory shows, the quota caps it and throttling shows."""
    held = 96 * MIB
    real_cgroup.set("memory", "memory.limit_in_bytes", str(512 * MIB))
    real_cgroup.set("cpu", "cpu.cfs_quota_us", "20000")
    real_cgroup.set("cpu", "cpu.cfs_period_us", "100000")
    marker = f"cgroup-burner-{real_cgroup.name}"
    child = real_cgroup.start(f"# {marker}\n" + HOLD_AND_BURN.format(size=held))
    checks = "".join(
        f"    - name: by {how}\n      cgroup: {{{how}: '{value}', sample: 2s}}\n"
        for how, value in (
            ("path", f"/{real_cgroup.name}"),
            ("pid", child.pid),
            ("pattern", re.escape(marker)),
        )
    )
    checks += (
        "    - name: pressure\n"
        f"      pressure: {{pid: {child.pid}, sample: 2s}}\n"
        "      metric: cpu_some_stall\n"
    )
    cpu_pressure = real_cgroup.dir("unified") / "cpu.pressure"
    direct_before = pressure.parse_pressure(cpu_pressure.read_text())["some"]["total"]
    found = run_checks(tmp_path, target, checks)
    direct_after = pressure.parse_pressure(cpu_pressure.read_text())["some"]["total"]
    psi = found["pressure"]
    assert psi["status"] == "OK", psi
    assert psi["facts"]["source"] == str(cpu_pressure.parent), psi
    # the cgroup's own stall time, within what its file shows around the whole run
    assert 0 <= psi["measurements"]["cpu_some_stall"] <= (direct_after - direct_before) / 1e6, psi
    for how in ("path", "pid", "pattern"):
        check = found[f"by {how}"]
        assert check["status"] == "OK", check
        values = check["measurements"]
        assert check["facts"]["cgroup"] == f"/{real_cgroup.name}", check
        # the held bytes, plus the interpreter's own few MiB; page cache is not charged here
        assert held <= values["memory_usage"] <= held + 48 * MIB, values
        assert values["memory_limit"] == 512 * MIB, check
        assert values["memory_percent"] == pytest.approx(
            100 * values["memory_usage"] / (512 * MIB)
        ), check
        assert values["working_set"] <= values["memory_usage"], check
        assert values["cpu_quota_cores"] == 0.2, check
        assert 0 < values["cpu_cores"] <= 0.2 * 1.25, check  # CFS lets a period overrun a little
        assert values["cpu_quota_percent"] == pytest.approx(
            100 * values["cpu_cores"] / 0.2, rel=1e-4
        )
        # a busy loop hits the quota in every period it gets a core for 20 ms; how many
        # those are depends on the machine's load, so only "throttled" is asserted
        assert values["throttled_percent"] > 0, check
        assert values["throttled_time"] > 0, check
        assert values["pids"] == 1, check
        assert check["facts"]["version"] == "hybrid", check


def test_a_pattern_matching_processes_in_two_cgroups_is_refused(real_cgroup):
    marker = f"cgroup-split-{real_cgroup.name}"
    program = f"# {marker}\nprint('ready', flush=True)\nimport time\ntime.sleep(60)\n"
    real_cgroup.start(program)
    outside = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True)
    try:
        assert outside.stdout.readline().strip() == "ready"
        with pytest.raises(RuntimeError, match=r"are in 2 cgroups .*narrow the selection"):
            cgroup.sample({"pattern": re.escape(marker)}, context())
        real_cgroup.children[0].kill()
        real_cgroup.children[0].wait(10)
        # with the one inside gone, the pattern names the cgroup the other one is in
        found = cgroup.sample({"pattern": re.escape(marker)}, context())["cgroup"]
        assert found.dirs == cgroups.of_pid(cgroups.layout(), "/proc", outside.pid).dirs
    finally:
        stop([outside])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cpu_of_a_cgroup_only_in_the_v2_hierarchy(tmp_path):
    """On this hybrid host a cgroup made only in `unified` has no v1 controllers: its CPU
    comes from v2's cpu.stat usage_usec, checked against the process's own CPU time."""
    made = RealCgroup(f"checkrun-v2only-{os.getpid()}")
    made.dir("unified").mkdir()
    made.dirs.append(made.dir("unified"))
    try:
        child = made.start("print('ready', flush=True)\nwhile True:\n    pass\n")
        ctx = context()
        direct_before = _cpu_seconds(child.pid)
        ctx.before = cgroup.sample({"path": f"/{made.name}"}, ctx)
        time.sleep(1.0)
        ctx.after = cgroup.sample({"path": f"/{made.name}"}, ctx)
        direct_after = _cpu_seconds(child.pid)
        result = cgroup.run({"path": f"/{made.name}"}, ctx)
    finally:
        made.remove()
    assert result["facts"]["directories"] == {"unified": str(made.dir("unified"))}
    values = result["measurements"]
    used = values["cpu_cores"] * result["facts"]["window"]
    tick = 1 / os.sysconf("SC_CLK_TCK")  # /proc/PID/stat counts in ticks, cpu.stat in µs
    assert 0 < used <= direct_after - direct_before + 2 * tick
    assert "memory_usage" not in values  # memory is a v1 controller here: not in unified
    assert "throttled_percent" not in values  # no cpu controller in unified here


def test_oom_kills_are_counted_across_runs(tmp_path, target, real_cgroup):
    real_cgroup.set("memory", "memory.limit_in_bytes", str(48 * MIB))
    state = tmp_path / "state.db"
    checks = (
        "    - name: oom\n"
        f"      cgroup: {{path: /{real_cgroup.name}, sample: 0s}}\n"
        "      metric: oom_kills\n"
        "      crit: 0\n"
    )
    first = run_checks(tmp_path, target, checks, state)["oom"]
    assert first["status"] == "OK", first
    assert first["facts"]["first_run"] is True
    assert first["measurements"]["oom_kills"] == 0

    eater = real_cgroup.start(EAT)
    assert eater.wait(60) == -signal.SIGKILL  # the kernel's OOM killer, at the 48 MiB limit

    second = run_checks(tmp_path, target, checks, state)["oom"]
    assert second["status"] == "CRITICAL", second
    assert second["measurements"]["oom_kills"] == 1
    assert second["facts"]["first_run"] is False

    third = run_checks(tmp_path, target, checks, state)["oom"]
    assert third["status"] == "OK", third
    assert third["measurements"]["oom_kills"] == 0
    assert third["measurements"]["oom_kills_total"] == second["measurements"]["oom_kills_total"]


def test_pressure_through_checkrun(tmp_path, target):
    checks = (
        "    - name: psi\n"
        "      pressure: {sample: 1s}\n"
        "      metric: cpu_some_stall_percent\n"
        "    - name: psi of a missing cgroup\n"
        "      pressure: {cgroup: /checkrun-no-such-cgroup}\n"
    )
    found = run_checks(tmp_path, target, checks)
    psi = found["psi"]
    assert psi["status"] == "OK", psi
    assert set(psi["facts"]["resources"]) >= {"cpu", "memory", "io"}
    assert 0 <= psi["measurements"]["cpu_some_stall_percent"] <= 100
    missing = found["psi of a missing cgroup"]
    assert missing["status"] == "UNKNOWN"
    assert "no cgroup /checkrun-no-such-cgroup" in missing["message"]


PYTHON36 = next(iter(sorted(Path.home().glob(".pyenv/versions/3.6.*/bin/python3"))), None)
BOOTSTRAP = "import sys,zlib;exec(zlib.decompress(sys.stdin.buffer.read()))"


def test_both_modules_run_on_python36():
    """Targets may run Python 3.6: the shipped program, with its helpers, runs there."""
    assert PYTHON36 is not None, "no Python 3.6 under ~/.pyenv/versions"
    batch = {
        "version": 1,
        "options": {"psutil": False, "nice": 0},
        "checks": [
            {"id": "1", "module": "cgroup", "args": {"pattern": ".", "sample": 0.2}, "window": 0.2},
            {"id": "2", "module": "cgroup", "args": {"path": "/", "sample": 0.2}, "window": 0.2},
            {"id": "3", "module": "pressure", "args": {"sample": 0.2}, "window": 0.2},
        ],
    }
    sources = catalog.batch_sources(["cgroup", "pressure"])
    program = f"{catalog.batch_runner_source()}\n_main({sources!r}, {json.dumps(batch)!r})\n"
    done = subprocess.run(
        [str(PYTHON36), "-c", BOOTSTRAP],
        input=zlib.compress(program.encode()),
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    line = next(x for x in done.stdout.decode().splitlines() if x.startswith("__CHECKRUN_RESULT__"))
    report = json.loads(line[len("__CHECKRUN_RESULT__") :])
    assert report["python"].startswith("3.6.")
    by_id = {entry["id"]: entry for entry in report["results"]}
    # `.` matches processes in many cgroups: refused, by the same code
    assert "cgroups" in by_id["1"]["error"] and "narrow the selection" in by_id["1"]["error"]
    assert by_id["2"]["result"]["measurements"]["memory_usage"] > 0
    assert by_id["2"]["result"]["measurements"]["cpu_cores"] >= 0
    assert by_id["3"]["result"]["measurements"]["cpu_some_avg10"] >= 0
