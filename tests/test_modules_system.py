"""System-metric modules (cpu, memory, disk, load, process): rates and run() over recorded
procfs fixtures, run() on this machine through both the psutil and the procfs paths, and a
real batch that proves the rate collectors share one sampling window. The parsers' own
cases are data: tests/fixtures/parsers/ (test_parsers.py)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import psutil
import pytest
from helpers import mount_at

from checkrunner import catalog
from checkrunner.modules import cpu, disk, load, memory, process
from checkrunner.modules._batch import CheckContext, run_batch
from checkrunner.modules._utils import processes

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "procfs"
TREE = FIXTURES / "tree"
SYSTEM_MODULES = ("cpu", "memory", "disk", "load", "process")
MIB = 1024 * 1024
KIB = 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def fixture(*parts: str) -> str:
    return FIXTURES.joinpath(*parts).read_text()


def context(psutil_module=None, proc_root: str | Path = "/proc", timeout: float = 10.0):
    return CheckContext("t", timeout, psutil_module, proc_root=str(proc_root))


def proc_root_with(tmp_path: Path, name: str, fixture_path: Path) -> Path:
    """A procfs stand-in holding one recorded file, e.g. <tmp>/meminfo."""
    shutil.copyfile(fixture_path, tmp_path / name)
    return tmp_path


def spawn(*argv: str) -> subprocess.Popen:
    """A Python child, returned once it runs its own program: until the fork has exec'd, its
    command line is still pytest's, which no pattern of these tests matches."""
    command = [sys.executable, "-c", *argv]
    child = subprocess.Popen(command)
    deadline = time.monotonic() + 30
    while psutil.Process(child.pid).cmdline() != command:
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.01)
    return child


def stop(child: subprocess.Popen) -> None:
    child.kill()
    child.wait(5)


BOTH_PATHS = pytest.mark.parametrize("psutil_module", [psutil, None], ids=["psutil", "procfs"])


# ---------------------------------------------------------------------------- cpu


def test_core_names_lists_the_per_core_lines():
    assert cpu.core_names(cpu.parse_stat(fixture("stat", "local.txt"))) == ["cpu0", "cpu1"]


def test_percentages_with_steal_and_a_backwards_iowait():
    before = cpu.parse_stat(fixture("stat", "vm_steal_before.txt"))
    after = cpu.parse_stat(fixture("stat", "vm_steal_after.txt"))
    assert cpu.percentages(before["cpu"], after["cpu"]) == pytest.approx(
        {
            "busy": 60.0,
            "user": 30.0,
            "nice": 0.0,
            "system": 10.0,
            "iowait": 5.0,
            "irq": 0.0,
            "softirq": 5.0,
            "steal": 15.0,
            "idle": 35.0,
        }
    )
    assert cpu.percentages(before["cpu0"], after["cpu0"])["busy"] == pytest.approx(63.0)
    # cpu1's iowait went from 2400 to 2398: clamped to 0, the rest is 102 ticks, 57 busy
    cpu1 = cpu.percentages(before["cpu1"], after["cpu1"])
    assert cpu1["iowait"] == 0.0
    assert cpu1["busy"] == pytest.approx(100.0 * 57 / 102)


def test_percentages_do_not_count_guest_time_twice():
    before = cpu.parse_stat(fixture("stat", "kvm_host_before.txt"))["cpu"]
    after = cpu.parse_stat(fixture("stat", "kvm_host_after.txt"))["cpu"]
    # user grew by 150 of which 100 guest, nice by 10 of which 10 guest_nice: 200 ticks total
    values = cpu.percentages(before, after)
    assert values["busy"] == pytest.approx(90.0)
    assert values["user"] == pytest.approx(75.0)
    assert values["nice"] == pytest.approx(5.0)
    assert values["idle"] == pytest.approx(10.0)


def test_percentages_without_elapsed_time_is_none():
    times = cpu.parse_stat(fixture("stat", "local.txt"))["cpu"]
    assert cpu.percentages(times, times) is None


def test_cpu_run_over_recorded_window_via_procfs(tmp_path):
    ctx = context(None, tmp_path)
    shutil.copyfile(FIXTURES / "stat" / "vm_steal_before.txt", tmp_path / "stat")
    ctx.before = cpu.sample({"sample": 1.0}, ctx)
    shutil.copyfile(FIXTURES / "stat" / "vm_steal_after.txt", tmp_path / "stat")
    ctx.after = cpu.sample({"sample": 1.0}, ctx)
    ctx.elapsed = 1.0
    result = cpu.run({"sample": 1.0, "per_core": True}, ctx)
    m = result["measurements"]
    assert m["busy"] == pytest.approx(60.0)
    assert m["steal"] == pytest.approx(15.0)
    assert m["cores"] == 2
    assert m["busy_cpu0"] == pytest.approx(63.0)
    assert m["busy_cpu1"] == pytest.approx(100.0 * 57 / 102)
    assert result["units"] == {"busy_cpu0": "%", "busy_cpu1": "%"}
    assert result["facts"] == {"source": "procfs", "window": 1.0, "busiest_core": "cpu0"}
    assert result["message"] == (
        "60.0% busy (user 30.0%, system 10.0%, iowait 5.0%, steal 15.0%) over 1.00s, 2 cores,"
        " busiest cpu0 63.0%"
    )


def test_cpu_run_with_identical_snapshots_is_unknown(tmp_path):
    ctx = context(None, proc_root_with(tmp_path, "stat", FIXTURES / "stat" / "local.txt"))
    ctx.before = ctx.after = cpu.sample({}, ctx)
    with pytest.raises(RuntimeError, match="longer sample"):
        cpu.run({"sample": 1.0, "per_core": False}, ctx)


def test_cpu_without_procfs_says_so(tmp_path):
    with pytest.raises(RuntimeError, match="stat.*psutil"):
        cpu.sample({}, context(None, tmp_path))


def _burn_cpu(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def test_cpu_psutil_and_procfs_agree_on_the_same_window():
    with_psutil, with_procfs = context(psutil), context(None)
    with_psutil.before = cpu.sample({}, with_psutil)
    with_procfs.before = cpu.sample({}, with_procfs)
    _burn_cpu(0.5)
    with_psutil.after = cpu.sample({}, with_psutil)
    with_procfs.after = cpu.sample({}, with_procfs)
    args = {"sample": 0.5, "per_core": True}
    a = cpu.run(args, with_psutil)["measurements"]
    b = cpu.run(args, with_procfs)["measurements"]
    cores = os.cpu_count()
    assert a["cores"] == b["cores"] == cores
    # this process kept one core busy the whole window
    assert a["busy"] >= 0.5 * 100.0 / cores and b["busy"] >= 0.5 * 100.0 / cores
    assert abs(a["busy"] - b["busy"]) < 10.0
    for values in (a, b):
        parts = ("user", "nice", "system", "iowait", "irq", "softirq", "steal", "idle")
        assert sum(values[p] for p in parts) == pytest.approx(100.0)
        assert sorted(k for k in values if k.startswith("busy_cpu")) == [
            f"busy_cpu{i}" for i in range(cores)
        ]


@BOTH_PATHS
def test_cpu_run_takes_its_own_window_outside_a_batch(psutil_module):
    started = time.monotonic()
    result = cpu.run({"sample": 0.2, "per_core": False}, context(psutil_module))
    assert 0.2 <= time.monotonic() - started < 1.0
    assert 0.0 <= result["measurements"]["busy"] <= 100.0
    assert result["facts"]["source"] == ("psutil" if psutil_module else "procfs")


# ---------------------------------------------------------------------------- memory


MEMINFO_CASES = {
    # fixture: (total kB, available kB, estimated, swap_total kB, swap_used kB)
    "local.txt": (24683652, 24416068, False, 0, 0),
    "db_server_swapping.txt": (65842100, 20114560, False, 8388604, 2097152),
    # no MemAvailable (kernel < 3.14): MemFree + Buffers + Cached + SReclaimable - Shmem
    "rhel6_2.6.32_no_available.txt": (
        3922316,
        280912 + 196156 + 2530012 + 334556 - 10864,
        True,
        4063228,
        22360,
    ),
    # MemAvailable 0 is a kernel bug, not an empty machine (psutil#1915)
    "available_zero.txt": (8136772, 5102440 + 120316 + 1874220 + 131996 - 12004, True, 2097148, 0),
    # lxcfs shows the container's MemTotal next to the host's MemAvailable: use MemFree
    "lxc_available_exceeds_total.txt": (2097152, 1466316, False, 0, 0),
}


@pytest.mark.parametrize("name", sorted(MEMINFO_CASES))
def test_memory_run_on_recorded_meminfo(tmp_path, name):
    total, available, estimated, swap_total, swap_used = MEMINFO_CASES[name]
    ctx = context(None, proc_root_with(tmp_path, "meminfo", FIXTURES / "meminfo" / name))
    result = memory.run({}, ctx)
    m = result["measurements"]
    assert m["total"] == total * KIB
    assert m["available"] == available * KIB
    assert m["used"] == (total - available) * KIB
    assert m["used_percent"] == pytest.approx(100.0 * (total - available) / total)
    assert m["swap_total"] == swap_total * KIB
    assert m["swap_used"] == swap_used * KIB
    expected_swap = 100.0 * swap_used / swap_total if swap_total else 0.0
    assert m["swap_used_percent"] == pytest.approx(expected_swap)
    assert result["facts"] == {"source": "procfs", "available_estimated": estimated}


def test_memory_message_reads_well():
    values = memory.measurements_of(
        memory.memory_from_meminfo(
            memory.parse_meminfo(fixture("meminfo", "db_server_swapping.txt"))
        )
    )
    assert memory._summary(values) == (
        "69.5% used (43.6 GiB of 62.8 GiB), 19.2 GiB available; swap 25.0% used of 8.0 GiB"
    )


def test_memory_psutil_and_procfs_agree():
    a = memory.run({}, context(psutil))["measurements"]
    b = memory.run({}, context(None))["measurements"]
    assert a["total"] == b["total"]
    assert a["swap_total"] == b["swap_total"]
    assert abs(a["available"] - b["available"]) < 64 * MIB
    assert abs(a["used_percent"] - b["used_percent"]) < 1.0


def test_memory_without_procfs_says_so(tmp_path):
    with pytest.raises(RuntimeError, match="meminfo.*psutil"):
        memory.run({}, context(None, tmp_path))


# ---------------------------------------------------------------------------- disk


def recorded_statvfs(name: str) -> os.statvfs_result:
    fields = json.loads(fixture("statvfs", name))
    order = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail")
    order += ("f_files", "f_ffree", "f_favail", "f_flag", "f_namemax")
    return os.statvfs_result(tuple(fields[key] for key in order))


def test_usage_from_statvfs_recorded_on_this_machine():
    values = disk.usage_from_statvfs(recorded_statvfs("local_root_ext4.json"))
    used_blocks = 66053021 - 60385548
    assert values == {
        "used_percent": pytest.approx(100.0 * used_blocks / (used_blocks + 20930255)),
        "free": 20930255 * 4096,
        "total": 66053021 * 4096,
        "used": used_blocks * 4096,
        "inodes_used_percent": pytest.approx(100.0 * (16777216 - 16372267) / 16777216),
        "inodes_free": 16372267,
    }
    assert math.ceil(values["used_percent"]) == 22  # what df printed for it


def test_usage_without_inode_counts_leaves_inodes_out():
    values = disk.usage_from_statvfs(recorded_statvfs("btrfs_home.json"))
    assert set(values) == {"used_percent", "free", "total", "used"}
    assert values["used_percent"] == pytest.approx(
        100.0 * (244190646 - 97561128) / (244190646 - 97561128 + 96987416)
    )


def test_usage_is_full_when_only_the_root_reserve_is_left():
    values = disk.usage_from_statvfs(recorded_statvfs("ext4_reserve_only.json"))
    assert values["used_percent"] == 100.0
    assert values["free"] == 0
    assert values["used"] == (2621440 - 98304) * 4096


def test_mount_at_takes_the_last_mount_of_a_path():
    """The helper the run() tests use: of a path mounted twice, the later mount is the one in
    force (the parser keeps both, in order: tests/fixtures/parsers/disk.parse_mounts)."""
    mounts = disk.parse_mounts(fixture("mounts", "escaped.txt"))
    assert mount_at(mounts, "/srv/My Files")["options"] == "ro,noatime"
    assert mount_at(mounts, "/nowhere") is None


def _df_use_percent(path: str) -> int:
    out = subprocess.run(["df", "-P", path], capture_output=True, text=True, check=True).stdout
    return int(out.splitlines()[1].split()[4].rstrip("%"))


@BOTH_PATHS
def test_disk_run_on_this_machine_matches_df(psutil_module):
    result = disk.run({"path": "/"}, context(psutil_module))
    m = result["measurements"]
    assert math.ceil(m["used_percent"]) == _df_use_percent("/")
    assert m["used"] + m["free"] <= m["total"]
    assert result["facts"]["mountpoint"] == "/"
    assert (
        result["facts"]["fstype"]
        == mount_at(disk.parse_mounts(Path("/proc/self/mounts").read_text()), "/")["fstype"]
    )
    assert result["message"].startswith(f"/ {m['used_percent']:.1f}% used")


def test_disk_psutil_and_statvfs_agree(tmp_path):
    a = disk.run({"path": str(tmp_path)}, context(psutil))["measurements"]
    b = disk.run({"path": str(tmp_path)}, context(None))["measurements"]
    assert a["total"] == b["total"]
    assert abs(a["used_percent"] - b["used_percent"]) < 0.1
    assert b["inodes_free"] > 0


def test_disk_accepts_a_file_and_reports_its_mount_point(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"x")
    facts = disk.run({"path": str(target)}, context(None))["facts"]
    assert facts["path"] == str(target)
    assert facts["source"] == "statvfs"
    assert os.path.ismount(facts["mountpoint"])
    assert str(target).startswith(facts["mountpoint"])


@BOTH_PATHS
def test_disk_missing_path_is_a_clear_error(psutil_module, tmp_path):
    missing = str(tmp_path / "not-mounted")
    with pytest.raises(RuntimeError, match="does not exist on this host"):
        disk.run({"path": missing}, context(psutil_module))


def test_disk_relative_path_is_refused():
    with pytest.raises(RuntimeError, match="relative"):
        disk.run({"path": "var/lib"}, context(None))


# ---------------------------------------------------------------------------- load


def test_per_core_divides_every_period():
    assert load.per_core({"load1": 32.0, "load5": 16.0, "load15": 8.0}, 64) == {
        "load1": 32.0,
        "load5": 16.0,
        "load15": 8.0,
        "load1_per_core": 0.5,
        "load5_per_core": 0.25,
        "load15_per_core": 0.125,
        "cores": 64,
    }


def test_load_run_on_recorded_loadavg(tmp_path):
    root = proc_root_with(tmp_path, "loadavg", FIXTURES / "loadavg" / "busy_64core.txt")
    result = load.run({}, context(None, root))
    cores = os.cpu_count()
    assert result["measurements"]["load1"] == 31.72
    assert result["measurements"]["load1_per_core"] == pytest.approx(31.72 / cores)
    assert result["measurements"]["load15_per_core"] == pytest.approx(20.03 / cores)
    assert result["facts"] == {"source": "procfs", "running": 35, "tasks": 2241}
    assert result["message"].startswith("load 31.72 28.44 20.03 (")


def test_load_without_procfs_falls_back_to_getloadavg(tmp_path):
    result = load.run({}, context(None, tmp_path))
    assert result["facts"] == {"source": "getloadavg"}
    assert result["measurements"]["load15"] == pytest.approx(os.getloadavg()[2], abs=0.5)


def test_load_psutil_and_procfs_agree():
    a = load.run({}, context(psutil))["measurements"]
    b = load.run({}, context(None))["measurements"]
    assert a["cores"] == b["cores"] == os.cpu_count()
    for key in ("load1", "load5", "load15"):
        assert a[key] == pytest.approx(b[key], abs=1.0)


# ---------------------------------------------------------------------------- process


def test_effective_uid_from_proc_status():
    status = processes.parse_proc_status(fixture("tree", "813", "status"))
    assert processes.effective_uid(status) == 33
    assert processes.effective_uid(processes.parse_proc_status(fixture("tree", "1", "status"))) == 0
    assert processes.effective_uid({}) is None


def test_full_name_completes_names_the_kernel_cut():
    argv = ["/opt/app/bin/gunicorn-worker-main", "--bind"]
    assert processes.full_name("gunicorn-worker", argv) == "gunicorn-worker-main"
    assert processes.full_name("gunicorn-worker", ["/usr/bin/python3"]) == "gunicorn-worker"
    assert processes.full_name("nginx", ["nginx: worker process"]) == "nginx"


TREE_CASES = [
    # args, pids, zombies, statm resident pages of the counted processes
    ({"name": "nginx"}, [812, 813, 814], 1, 2150 + 1200 + 1180),
    ({"name": "nginx", "user": "33"}, [813, 814], 1, 1200 + 1180),
    ({"name": "nginx", "user": "www-data"}, [813, 814], 1, 1200 + 1180),
    ({"name": "nginx", "user": "root"}, [812], 0, 2150),
    ({"pattern": "worker process"}, [813, 814], 0, 1200 + 1180),
    ({"pattern": "^nginx: master"}, [812], 0, 2150),
    ({"name": "gunicorn-worker"}, [1500], 0, 10240),
    ({"name": "gunicorn-worker-main"}, [1500], 0, 10240),
    ({"pattern": r"^\[kthreadd\]$"}, [2], 0, 0),
    ({"name": "my (odd) proc"}, [1600], 0, 310),
    ({"pattern": r"manage\.py runworker", "user": "1000"}, [1700], 0, 6144),
    ({"name": "python3", "pattern": "manage.py"}, [1700], 0, 6144),
    ({"name": "python3", "pattern": "celery"}, [], 0, 0),
    ({"name": "postgres"}, [], 0, 0),
]


@pytest.mark.parametrize(("args", "pids", "zombies", "pages"), TREE_CASES)
def test_process_run_on_recorded_proc_tree(args, pids, zombies, pages):
    args = dict(args, sample=1.0)
    ctx = context(None, TREE)
    ctx.before = process.sample(args, ctx)
    ctx.after = process.sample(args, ctx)
    result = process.run(args, ctx)
    m = result["measurements"]
    assert m["count"] == len(pids)
    assert m["zombies"] == zombies
    assert m["rss"] == pages * PAGE
    assert m["memory_percent"] == pytest.approx(100.0 * pages * PAGE / (24683652 * KIB))
    assert "cpu_percent" not in m  # both snapshots in the same instant: no usable window
    assert result["facts"]["pids"] == pids
    assert result["facts"]["source"] == "procfs"
    if not pids:
        assert result["message"].startswith("no process matches ")


def test_process_message_names_the_match():
    args = {"name": "nginx", "sample": 1.0}
    ctx = context(None, TREE)
    ctx.before = ctx.after = process.sample(args, ctx)
    result = process.run(args, ctx)
    assert result["message"] == (
        "3 processes match name=nginx (pid 812, 813, 814), %.1f MiB RSS; 1 zombie"
        % ((2150 + 1200 + 1180) * PAGE / MIB)
    )
    assert result["facts"]["zombie_pids"] == [815]
    assert result["measurements"]["threads"] == 3


def _record(pid, cpu_seconds, start=100, zombie=False):
    return {"pid": pid, "name": "x", "zombie": zombie, "cpu": cpu_seconds, "start": start,
            "rss": 0, "threads": 1}  # fmt: skip


def test_cpu_percent_counts_only_processes_alive_across_the_window():
    before = {"taken": 10.0, "procs": {1: _record(1, 5.0), 2: _record(2, 1.0), 3: _record(3, 9.0)}}
    after = {
        "taken": 12.0,
        "procs": {
            1: _record(1, 6.5),  # 1.5 s of CPU in 2 s
            2: _record(2, 7.0, start=555),  # PID 2 was recycled: a different process
            4: _record(4, 3.0),  # started during the window
            3: _record(3, 9.0, zombie=True),
        },
    }
    assert process.cpu_percent(before, after) == pytest.approx(75.0)
    assert process.cpu_percent(before, dict(after, taken=10.05)) is None


def test_process_needs_a_valid_selector():
    with pytest.raises(RuntimeError, match="not a valid regular expression"):
        process.sample({"pattern": "(unclosed", "sample": 1.0}, context(None, TREE))
    with pytest.raises(RuntimeError, match="no user 'no-such-user-x'"):
        process.sample({"name": "nginx", "user": "no-such-user-x"}, context(None, TREE))
    with pytest.raises(RuntimeError, match="name.*pattern"):
        process.sample({"sample": 1.0}, context(None, TREE))


@BOTH_PATHS
def test_process_counts_a_real_child_by_pattern(psutil_module):
    marker = f"checkrun-probe-{os.getpid()}-{'a' if psutil_module else 'b'}"
    child = spawn("import sys, time; time.sleep(30)", marker)
    try:
        args = {"pattern": re.escape(marker), "sample": 0.3}
        result = process.run(args, context(psutil_module))
        assert result["measurements"]["count"] == 1
        assert result["facts"]["pids"] == [child.pid]
        assert result["measurements"]["rss"] > 1 * MIB
        assert result["measurements"]["cpu_percent"] < 50.0
        # the kernel names a process after the file it executed, cut at 15 characters
        name = Path(sys.executable).name[:15]
        both = {"name": name, "pattern": re.escape(marker), "sample": 0.0}
        assert process.run(both, context(psutil_module))["measurements"]["count"] == 1
        other = dict(both, name=name + "-other")
        assert process.run(other, context(psutil_module))["measurements"]["count"] == 0
    finally:
        stop(child)
    after = process.run({"pattern": re.escape(marker), "sample": 0.0}, context(psutil_module))
    assert after["measurements"]["count"] == 0
    assert after["message"].startswith("no process matches pattern=")


CLOCK_TICK = 1.0 / os.sysconf("SC_CLK_TCK")


@BOTH_PATHS
def test_process_cpu_percent_of_a_busy_child(psutil_module):
    """The child's own CPU time, read around each snapshot, is the reference: whatever else
    the machine is doing, the module must report what the child really used in its window."""
    marker = f"checkrun-busy-{os.getpid()}"
    child = spawn("while True: pass", marker)
    try:
        own = psutil.Process(child.pid)
        args = {"pattern": re.escape(marker), "sample": 0.5}
        ctx = context(psutil_module)
        used = lambda: sum(own.cpu_times()[:2])  # noqa: E731 - user + system seconds
        outer_start = used()
        ctx.before = process.sample(args, ctx)
        inner_start = used()
        time.sleep(0.5)
        inner_end = used()
        ctx.after = process.sample(args, ctx)
        outer_end = used()
        m = process.run(args, ctx)["measurements"]
        window = ctx.after["taken"] - ctx.before["taken"]
        measured = m["cpu_percent"] / 100.0 * window
        assert m["count"] == 1
        assert inner_end - inner_start - 2 * CLOCK_TICK <= measured
        assert measured <= outer_end - outer_start + 2 * CLOCK_TICK
        assert m["cpu_percent"] <= 100.0 * (1 + 2 * CLOCK_TICK / window)  # one thread
    finally:
        stop(child)


@BOTH_PATHS
def test_process_that_exits_during_the_window_is_not_counted(psutil_module):
    marker = f"checkrun-gone-{os.getpid()}"
    child = spawn("import time; time.sleep(30)", marker)
    args = {"pattern": re.escape(marker), "sample": 1.0}
    ctx = context(psutil_module)
    ctx.before = process.sample(args, ctx)
    stop(child)
    ctx.after = process.sample(args, ctx)
    assert len(ctx.before["procs"]) == 1
    m = process.run(args, ctx)["measurements"]
    assert (m["count"], m["rss"]) == (0, 0)


@BOTH_PATHS
def test_process_never_counts_the_checker_itself(psutil_module):
    own = " ".join(psutil.Process().cmdline())
    result = process.run({"pattern": re.escape(own), "sample": 0.0}, context(psutil_module))
    assert os.getpid() not in result["facts"]["pids"]


# ---------------------------------------------------------------------------- shared window


def _sources(*names: str) -> dict[str, str]:
    """What a batch of these modules ships: their sources and the helpers they import."""
    return catalog.batch_sources(names)


@pytest.mark.parametrize("use_psutil", [True, False], ids=["psutil", "procfs"])
def test_batch_shares_one_sampling_window(use_psutil):
    marker = f"checkrun-batch-{os.getpid()}-{use_psutil}"
    child = spawn("import time; time.sleep(30)", marker)
    window = 0.6
    batch = {
        "version": 1,
        "options": {"psutil": use_psutil, "max_parallel": 4},
        "checks": [
            {"id": "0.1", "module": "cpu", "args": {"sample": window, "per_core": False},
             "window": window},
            {"id": "0.2", "module": "process", "args": {"pattern": re.escape(marker),
                                                        "sample": window}, "window": window},
            {"id": "0.3", "module": "memory", "args": {}},
            {"id": "0.4", "module": "load", "args": {}},
            {"id": "0.5", "module": "disk", "args": {"path": "/"}},
        ],
    }  # fmt: skip
    try:
        started = time.monotonic()
        entries = run_batch(_sources("cpu", "process", "memory", "load", "disk"), batch)
        wall = time.monotonic() - started
    finally:
        stop(child)
    by_id = {entry["id"]: entry for entry in entries}
    assert all("result" in entry for entry in entries), entries
    source = "psutil" if use_psutil else "procfs"
    cpu_result, proc_result = by_id["0.1"]["result"], by_id["0.2"]["result"]
    assert cpu_result["facts"]["source"] == source
    assert window <= cpu_result["facts"]["window"] < window + 0.3
    assert proc_result["measurements"]["count"] == 1
    assert proc_result["facts"]["pids"] == [child.pid]
    assert "cpu_percent" in proc_result["measurements"]
    assert by_id["0.3"]["result"]["facts"]["source"] == source
    # one window for both rate collectors, not one each
    assert window <= wall < 2 * window


PYTHON36 = next(iter(sorted(Path.home().glob(".pyenv/versions/3.6.*/bin/python3"))), None)
BOOTSTRAP = "import sys,zlib;exec(zlib.decompress(sys.stdin.buffer.read()))"


@pytest.mark.skipif(PYTHON36 is None, reason="no Python 3.6 interpreter on this machine")
def test_batch_runs_on_python36():
    """Syntax checks miss 3.7+ library calls: run the real program on an old interpreter."""
    names = ("cpu", "process", "memory", "disk", "load")
    batch = {
        "version": 1,
        "options": {"psutil": False, "nice": 0},
        "checks": [
            {"id": "1", "module": "cpu", "args": {"sample": 0.2, "per_core": True}, "window": 0.2},
            {
                "id": "2",
                "module": "process",
                "args": {"pattern": ".", "sample": 0.2},
                "window": 0.2,
            },
            {"id": "3", "module": "memory", "args": {}},
            {"id": "4", "module": "disk", "args": {"path": "/"}},
            {"id": "5", "module": "load", "args": {}},
        ],
    }
    sources = _sources(*names)
    program = f"{catalog.batch_runner_source()}\n_main({sources!r}, {json.dumps(batch)!r})\n"
    done = subprocess.run(
        [str(PYTHON36), "-c", BOOTSTRAP],
        input=zlib.compress(program.encode()),
        capture_output=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    stdout = done.stdout.decode()
    line = next(x for x in stdout.splitlines() if x.startswith("__CHECKRUN_RESULT__"))
    report = json.loads(line[len("__CHECKRUN_RESULT__") :])
    assert report["python"].startswith("3.6.")
    results = {entry["module"]: entry for entry in report["results"]}
    assert all("result" in entry for entry in results.values()), results
    assert results["process"]["result"]["measurements"]["count"] > 0
    assert results["cpu"]["result"]["measurements"]["cores"] == os.cpu_count()


def test_saturated_cpu_is_exactly_100_percent():
    # Counters where float division gives 100.00000000000001 unless rounded.
    before = {"user": 0.0, "nice": 0.0, "system": 0.0, "idle": 0.0, "iowait": 0.0}
    after = {"user": 0.1, "nice": 0.0, "system": 0.11, "idle": 0.0, "iowait": 0.0}
    busy = cpu.percentages(before, after)["busy"]
    assert busy == 100.0
