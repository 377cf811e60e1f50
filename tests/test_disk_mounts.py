"""disk finds a path's mount in the mount table, as df and findmnt do, bind mounts included."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from checkrunner.modules import disk
from checkrunner.modules._batch import CheckContext

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "procfs" / "mountinfo"
# Recorded with: a read-only bind mount of .../src on ".../ro bind", a tmpfs on .../x/a/b
# hidden under a later tmpfs on .../x/a, and two tmpfs stacked on .../stack (the second ro).
RECORDED = "bind_ro_stacked_hidden.txt"
BASE = "/tmp/checkrun-mi"


def context(psutil_module=None) -> CheckContext:
    return CheckContext("t", 10.0, psutil_module)


def recorded_mounts() -> list[dict[str, str]]:
    return disk.parse_mountinfo((FIXTURES / RECORDED).read_text())


@pytest.mark.parametrize(
    "path,dev,mountpoint,device",
    [
        (f"{BASE}/ro bind/sub/file", "254:0", f"{BASE}/ro bind", "/dev/vda"),
        (f"{BASE}/ro bind", "254:0", f"{BASE}/ro bind", "/dev/vda"),
        (f"{BASE}/src/sub", "254:0", "/", "/dev/vda"),
        (f"{BASE}/ro bindery", "254:0", "/", "/dev/vda"),  # a prefix, not a parent
        (f"{BASE}/stack/f", "0:43", f"{BASE}/stack", "second"),  # the top of the stack
        (f"{BASE}/stack/f", None, f"{BASE}/stack", "second"),
        (f"{BASE}/x/a/b/f", "0:41", f"{BASE}/x/a", "over"),  # x/a/b is hidden under x/a
        (f"{BASE}/x/a/b/f", None, f"{BASE}/x/a/b", "hidden"),  # findmnt's string match
        ("/etc/passwd", "254:0", "/", "/dev/vda"),
        ("/proc/self/status", "0:21", "/proc", "proc"),
    ],
)
def test_mount_of_takes_the_longest_containing_mount_point(path, dev, mountpoint, device):
    mount = disk.mount_of(recorded_mounts(), path, dev)
    assert (mount["mountpoint"], mount["device"]) == (mountpoint, device)


def test_readonly_comes_from_the_mount_or_the_filesystem():
    mounts = recorded_mounts()
    readonly = {m["mountpoint"]: "ro" in m["options"].split(",") for m in mounts}
    assert readonly[f"{BASE}/ro bind"] is True  # the bind mount's own flag
    assert readonly["/"] is False
    assert disk.mount_of(mounts, f"{BASE}/stack/f", "0:43")["options"].startswith("ro,")


def _findmnt(column: str, path: str) -> str:
    """findmnt's COLUMN for the mount holding `path`; of stacked mounts, the top one (the
    last listed)."""
    out = subprocess.run(
        ["findmnt", "-n", "-o", column, "--target", path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()[-1]


def _findmnt_target(path: str) -> str:
    return _findmnt("TARGET", path)


def _findmnt_readonly(path: str) -> bool:
    return "ro" in _findmnt("OPTIONS", path).split(",")


def _df_target(path: str) -> str:
    out = subprocess.run(
        ["df", "--output=target", path], capture_output=True, text=True, check=True
    ).stdout
    return out.splitlines()[-1]


@pytest.fixture
def readonly_bind_mount(tmp_path) -> Iterator[tuple[Path, Path]]:
    """A directory bind-mounted read-only on a directory whose name has a space."""
    if os.geteuid() != 0:
        pytest.skip("mount --bind needs root (scripts/test.sh runs the suite as root)")
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "data.bin").write_bytes(b"x" * 4096)
    target = tmp_path / "ro bind"
    target.mkdir()
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        yield Path(os.path.realpath(source)), Path(os.path.realpath(target))
    finally:
        subprocess.run(["umount", str(target)], check=True)


@pytest.mark.parametrize("psutil_module", [None, psutil], ids=["statvfs", "psutil"])
def test_a_readonly_bind_mount_reports_its_own_mount_point(readonly_bind_mount, psutil_module):
    source, target = readonly_bind_mount
    for path in (target, target / "sub", target / "sub" / "data.bin"):
        facts = disk.run({"path": str(path)}, context(psutil_module))["facts"]
        assert (
            facts["mountpoint"]
            == str(target)
            == _findmnt_target(str(path))
            == _df_target(str(path))
        )
        assert facts["readonly"] is True and _findmnt_readonly(str(path)) is True
        assert facts["fs_root"] == str(source)
    beside = disk.run({"path": str(source / "sub")}, context(psutil_module))["facts"]
    assert beside["mountpoint"] == _findmnt_target(str(source)) != str(target)
    assert beside["readonly"] is _findmnt_readonly(str(source)) is False


def test_every_mount_point_here_agrees_with_findmnt():
    """Each mount of this machine (container bind mounts of single files included)."""
    mounts = disk.parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    checked = 0
    for mountpoint in sorted({m["mountpoint"] for m in mounts}):
        if not os.path.exists(mountpoint):
            continue
        facts = disk.run({"path": mountpoint}, context())["facts"]
        assert facts["mountpoint"] == _findmnt_target(mountpoint), mountpoint
        assert facts["readonly"] is _findmnt_readonly(mountpoint), mountpoint
        checked += 1
    assert checked >= 2
