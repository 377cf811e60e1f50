"""The diskio and net modules against real parts: sysstat's iostat on recorded and on live
/proc/diskstats, real direct writes to a loop device and to the disk that holds the tests'
files, loop devices removed and added mid-window, a known amount of loopback traffic against
lo's counters, TCP listen overflows against nstat, sockets by state and the local-port filter
against ss. Live checks run through the installed `checkrun`, locally and over real OpenSSH.
The parsers' cases are data: tests/fixtures/parsers/ (test_parsers.py)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import run_checkrun
from midwindow import iostat_reports
from sshd import SSHServer, running_sshd, sshd_available

from checkrunner.modules import diskio, net
from checkrunner.modules._batch import CheckContext

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "procfs"
MIDWINDOW = Path(__file__).with_name("midwindow.py")
SSH_ADDRESS = "127.0.0.1"
LOOP_CTL_ADD, LOOP_CTL_REMOVE = 0x4C80, 0x4C81
IS_ROOT = os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="loop devices and mount namespaces need root")


def fixture(*parts: str) -> str:
    return FIXTURES.joinpath(*parts).read_text()


# --- recorded data --------------------------------------------------------------------------


def test_device_kinds_without_sysfs_follow_the_names_in_a_recorded_diskstats():
    devices = diskio.parse_diskstats(fixture("diskstats", "node_exporter_mixed_kernels.txt"))
    kinds = {name: diskio.device_kind(name, d["major"], None) for name, d in devices.items()}
    assert {n for n, k in kinds.items() if k == "disk"} == {
        "sda", "sdb", "sdc", "vda", "nvme0n1", "mmcblk0", "sr0", "fd0",
    }  # fmt: skip
    assert {n for n, k in kinds.items() if k == "partition"} == {
        "sda1", "sda2", "sda3", "sda4", "sdb1", "sdb2", "sdc1", "vda1", "vda2",
        "nvme0n1p1", "nvme0n1p2", "mmcblk0p1", "mmcblk0p2",
    }  # fmt: skip
    assert {n for n, k in kinds.items() if k == "dm"} == {f"dm-{i}" for i in range(6)}
    assert {n for n, k in kinds.items() if k == "ram"} == {f"ram{i}" for i in range(16)}
    assert {n for n, k in kinds.items() if k == "loop"} == {f"loop{i}" for i in range(8)}


def test_sysfs_decides_what_is_a_partition_on_this_machine():
    names = diskio.selected(
        diskio.parse_diskstats(Path("/proc/diskstats").read_text()), ["*"], [], "/sys"
    )
    whole = {p.name for p in Path("/sys/block").iterdir()}
    assert names and set(names) <= whole
    assert not any(n.startswith(("loop", "ram", "zram", "dm-")) for n in names)


def _iostat_on_recorded(tmp_path: Path, diskstats: Path, uptime: float) -> dict[str, dict]:
    """iostat -x's since-boot report of a recorded /proc/diskstats: in a private mount
    namespace the recording and an uptime are bind-mounted over the real files."""
    (tmp_path / "uptime").write_text(f"{uptime:.2f} 0.00\n")
    script = (
        f"mount --bind {diskstats} /proc/diskstats && "
        f"mount --bind {tmp_path / 'uptime'} /proc/uptime && "
        "exec iostat -x -d -p ALL -o JSON"
    )
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, check=True
    ).stdout
    disks = json.loads(out)["sysstat"]["hosts"][0]["statistics"][0]["disk"]
    return {disk["disk_device"]: disk for disk in disks}


IOSTAT_FIELDS = {  # ours -> iostat's JSON (rkB/s and wkB/s in kB: ours / 1024)
    "reads": ("r/s", 1.0),
    "writes": ("w/s", 1.0),
    "read_bytes": ("rkB/s", 1024.0),
    "write_bytes": ("wkB/s", 1024.0),
    "r_await": ("r_await", 1.0),
    "w_await": ("w_await", 1.0),
    "aqu_sz": ("aqu-sz", 1.0),
    "util": ("util", 1.0),
}


@needs_root
@pytest.mark.parametrize("recording", ["node_exporter_mixed_kernels.txt", "vm_6.18_17_columns.txt"])
def test_formulas_give_what_iostat_gives_on_the_same_recorded_counters(tmp_path, recording):
    """Every device of kernels with 11, 15 and 17 columns: ours from zero to the recording
    over `uptime` seconds is iostat's since-boot report, to iostat's two decimals."""
    uptime = 123456.78
    path = FIXTURES / "diskstats" / recording
    iostat = _iostat_on_recorded(tmp_path, path, uptime)
    recorded = diskio.parse_diskstats(path.read_text())
    assert set(iostat) == set(recorded)
    compared = 0
    for name, after in recorded.items():
        zeros = dict((field_name, 0) for field_name in after)
        zeros.update(major=after["major"], minor=after["minor"])
        ours = diskio.device_rates(zeros, after, uptime)
        for field_name, (theirs, scale) in IOSTAT_FIELDS.items():
            assert round(ours[field_name] / scale, 2) == pytest.approx(
                iostat[name][theirs], abs=0.0100001
            ), (name, field_name)
            compared += 1
    assert compared == len(recorded) * len(IOSTAT_FIELDS)


def _iostat_between(tmp_path: Path, before: Path, after: Path, seconds: float) -> dict[str, dict]:
    """iostat -x's interval report between two recorded /proc/diskstats `seconds` apart: its
    first snapshot reads `before` (bind-mounted over the real file in a private mount
    namespace); once it has printed that since-boot report, the files it reads change to
    `after` and an uptime `seconds` later, and its second report compares the two."""
    diskstats, uptime = tmp_path / "diskstats", tmp_path / "uptime"
    diskstats.write_text(before.read_text())
    uptime.write_text("1000.00 0.00\n")
    script = (
        f"mount --bind {diskstats} /proc/diskstats && mount --bind {uptime} /proc/uptime && "
        "exec stdbuf -oL iostat -x -d -p ALL 2 2"
    )
    iostat = subprocess.Popen(
        ["unshare", "-m", "sh", "-c", script], stdout=subprocess.PIPE, text=True
    )

    def move_on() -> None:
        with open(diskstats, "w") as handle:  # the same inode: the bind mount sees it
            handle.write(after.read_text())
        with open(uptime, "w") as handle:
            handle.write(f"{1000 + seconds:.2f} 0.00\n")

    reports = iostat_reports(iostat.stdout, move_on)
    assert iostat.wait(30) == 0
    return reports[1]


@needs_root
def test_formulas_give_what_iostat_gives_between_two_recorded_snapshots(tmp_path):
    """A recorded window with 24 MiB written and read back with O_DIRECT on vda: every field
    of every device is iostat's interval report, to its two decimals."""
    before = FIXTURES / "diskstats" / "vm_6.18_before_dd.txt"
    after = FIXTURES / "diskstats" / "vm_6.18_after_dd.txt"
    iostat = _iostat_between(tmp_path, before, after, 2.5)
    old, new = diskio.parse_diskstats(before.read_text()), diskio.parse_diskstats(after.read_text())
    assert set(iostat) == set(new)
    rates, appeared, vanished = diskio.compare(old, new, list(old), list(new), 2.5)
    assert (appeared, vanished) == ([], [])
    for name, ours in rates.items():
        for field_name, (_, scale) in IOSTAT_FIELDS.items():
            theirs = iostat[name][IOSTAT_FIELDS[field_name][0]]
            assert round(ours[field_name] / scale, 2) == pytest.approx(theirs, abs=0.0100001), (
                name,
                field_name,
            )
    assert rates["vda"]["write_bytes"] * 2.5 == (54229344 - 54180056) * 512


@needs_root
def test_millisecond_counters_that_wrap_at_32_bits_are_not_a_restarted_device(tmp_path):
    """The kernel prints the ms columns as 32-bit (%u in diskstats_show): they wrap after
    2^32 ms of cumulative time, within days for weighted_ms on a busy disk. The same window
    as above with read_ms, io_ms and weighted_ms wrapping in it is still vda's window, and
    every figure is iostat's (unsigned arithmetic), to its two decimals."""
    before = FIXTURES / "diskstats" / "layout_6.18_before_ms_wrap.txt"
    after = FIXTURES / "diskstats" / "layout_6.18_after_ms_wrap.txt"
    iostat = _iostat_between(tmp_path, before, after, 2.5)["vda"]
    old, new = diskio.parse_diskstats(before.read_text()), diskio.parse_diskstats(after.read_text())
    rates, appeared, vanished = diskio.compare(old, new, ["vda"], ["vda"], 2.5)
    assert (appeared, vanished) == ([], [])
    vda = rates["vda"]
    for field_name, (_, scale) in IOSTAT_FIELDS.items():
        theirs = iostat[IOSTAT_FIELDS[field_name][0]]
        assert round(vda[field_name] / scale, 2) == pytest.approx(theirs, abs=0.0100001)
    assert vda["r_await"] == 52 / 49  # 32 - (2^32 - 20) read ms over 49 reads
    assert vda["util"] == pytest.approx(100.0 * 100 / 2500)
    assert vda["aqu_sz"] == pytest.approx(238 / 2500)


def test_a_device_whose_counters_restarted_is_vanished_and_appeared_not_a_rate():
    before = diskio.parse_diskstats(fixture("diskstats", "vm_6.18_17_columns.txt"))
    after = {name: dict(counters) for name, counters in before.items()}
    after["vda"] = dict((k, 0) for k in after["vda"])
    after["vda"].update(major=before["vda"]["major"], minor=before["vda"]["minor"])
    del after["zram0"]
    rates, appeared, vanished = diskio.compare(before, after, list(before), list(after), 1.0)
    assert (appeared, vanished) == (["vda"], ["zram0", "vda"])
    assert "vda" not in rates and "loop0" in rates


def test_socket_states_of_recorded_tcp_tables_are_what_ss_listed_at_the_same_moment():
    sockets = net.parse_tcp_sockets(fixture("tcp", "vm_6.18_tcp.txt"))
    sockets += net.parse_tcp_sockets(fixture("tcp", "vm_6.18_tcp6.txt"))
    counts = net.count_states(sockets, None)
    listed = Counter(
        line.split()[0] for line in fixture("tcp", "vm_6.18_ss_tan.txt").splitlines()[1:]
    )
    ss_names = {"ESTAB": "established", "TIME-WAIT": "time_wait", "LISTEN": "listen"}
    assert {ss_names[state]: n for state, n in listed.items()} == {
        state[len("sockets_") :]: n
        for state, n in counts.items()
        if state.startswith("sockets_") and n
    }
    assert counts["sockets"] == sum(listed.values())
    # the recording's listener on 42543 had 3 accepted connections; its clients don't count
    on_port = net.count_states(sockets, 42543)
    assert (on_port["connections"], on_port["sockets_listen"], on_port["sockets"]) == (3, 1, 4)


def test_without_procfs_the_counters_come_from_psutil_and_match_procfs(tmp_path):
    """A target without /proc/diskstats or /proc/net/dev (BSD, macOS) uses psutil: the same
    devices and interfaces, the same counters for the ones that stayed idle."""
    import psutil

    for module, args, key in (
        (diskio, {"devices": ["*"], "include": ["loop", "ram"]}, "devices"),
        (net, {"interfaces": ["*"]}, "interfaces"),
    ):
        with_psutil = CheckContext("0", 10.0, psutil, str(tmp_path))
        procfs_side = module.sample(args, CheckContext("0", 10.0, None))
        psutil_side = module.sample(args, with_psutil)
        assert (psutil_side["source"], procfs_side["source"]) == ("psutil", "procfs")
        assert set(psutil_side[key]) == set(procfs_side[key])
        idle = [
            n
            for n, c in procfs_side[key].items()
            if not any(v for f, v in c.items() if f not in ("major", "minor"))
        ]
        for name in idle:
            assert not any(psutil_side[key][name].values()), name
        with_psutil.before, with_psutil.after = psutil_side, module.sample(args, with_psutil)
        with_psutil.elapsed = with_psutil.after["taken"] - with_psutil.before["taken"]
        result = module.run(args, with_psutil)
        assert result["facts"]["source"] == "psutil"


@pytest.mark.parametrize(
    ("module", "args", "says"),
    [
        (diskio, {"devices": ["nosuch*"]}, r"no block device matches devices nosuch\*.*here: .*"),
        (net, {"interfaces": ["nosuch0"]}, r"no interface matches nosuch0; interfaces here: .*lo"),
    ],
)
def test_nothing_matching_is_an_error_that_lists_what_there_is(module, args, says):
    ctx = CheckContext("0", 10.0, None)
    ctx.before = module.sample(args, ctx)
    ctx.after = module.sample(args, ctx)
    ctx.elapsed = 0.01
    with pytest.raises(RuntimeError, match=says):
        module.run(args, ctx)


# --- live: the installed checkrun, locally and over SSH -----------------------------------


@dataclass
class Target:
    """Where checkrun runs the checks: localhost, or this machine through a real sshd."""

    hosts: str
    extra: list[str] = field(default_factory=list)

    def run(self, tmp_path: Path, checks: str, name: str = "p") -> dict[str, dict]:
        playbook = tmp_path / f"{name}.yml"
        playbook.write_text(f"- name: deep\n  hosts: {self.hosts}\n  checks:\n{checks}")
        report = tmp_path / f"{name}.json"
        done = run_checkrun(playbook, *self.extra, "--no-state", "-r", f"json:{report}")
        assert report.exists(), done.stdout + done.stderr
        checks_done = json.loads(report.read_text())["hosts"][0]["checks"]
        return {check["name"]: check for check in checks_done}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> Iterator[SSHServer]:
    if not sshd_available():
        pytest.fail("sshd is missing: scripts/test.sh installs openssh-server")
    with running_sshd(tmp_path_factory.mktemp("sshd-deep"), [SSH_ADDRESS]) as server:
        yield server


@pytest.fixture(params=["local", "ssh"])
def target(request, tmp_path) -> Target:
    if request.param == "local":
        return Target("localhost")
    server: SSHServer = request.getfixturevalue("sshd")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        f"target ansible_host={SSH_ADDRESS} ansible_port={server.port} "
        f"ansible_user={server.user} ansible_ssh_private_key_file={server.client_key} "
        f"ansible_python_interpreter={sys.executable}\n"
    )
    known_hosts = server.write_known_hosts(tmp_path / "known_hosts")
    return Target("target", ["-i", str(inventory), "--known-hosts", str(known_hosts)])


def midwindow(action: str, *args: object) -> str:
    """A command check that runs tests/midwindow.py inside the batch's window."""
    argv = " ".join(str(a) for a in (sys.executable, MIDWINDOW, action, *args))
    return f'    - {{name: act, command: {{cmd: "{argv}", timeout: 60s}}, timeout: 90s}}\n'


def acted(checks: dict[str, dict]) -> dict:
    act = checks["act"]
    assert act["status"] == "OK", act
    return json.loads(act["facts"]["stdout"])


def over_window(rate: float, check: dict) -> tuple[float, float]:
    """The count a per-second rate stands for over the check's window, as (low, high): the
    window is reported in milliseconds, so the total is known to within half of one."""
    window = check["facts"]["window"]
    return rate * (window - 0.0005), rate * (window + 0.0005)


def within(count: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] - 0.5 <= count <= bounds[1] + 0.5


def lo_rx_bytes() -> int:
    return net.parse_net_dev(Path("/proc/net/dev").read_text())["lo"]["rx_bytes"]


@contextmanager
def byte_sink() -> Iterator[tuple[int, list[int]]]:
    """A loopback listener that counts what it receives and closes each connection at EOF."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    received: list[int] = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            total = 0
            while chunk := conn.recv(1 << 20):
                total += len(chunk)
            received.append(total)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        server.close()
        thread.join(5)


def test_loopback_traffic_of_a_known_size_is_in_lo_counters_over_the_window(tmp_path, target):
    size = 48 * 1024 * 1024
    with byte_sink() as (port, received):
        before = lo_rx_bytes()
        checks = target.run(
            tmp_path,
            "    - {name: lo, net: {interfaces: [lo], sample: 3s, sockets: false}}\n"
            + midwindow("send", port, size),
        )
        after = lo_rx_bytes()
    assert acted(checks) == {"sent": size} and received == [size]
    lo = checks["lo"]
    assert lo["status"] == "OK", lo
    low, high = over_window(lo["measurements"]["rx_bytes_lo"], lo)
    # The payload crossed lo inside the window (plus TCP/IP headers and whatever else used
    # lo then); the window lies inside the test's own two readings of the counter.
    assert size <= high and low <= after - before
    assert lo["measurements"]["rx_bytes"] == lo["measurements"]["rx_bytes_lo"]
    # on lo every packet sent is received
    assert lo["measurements"]["tx_packets_lo"] == lo["measurements"]["rx_packets_lo"]
    assert lo["facts"]["interfaces"] == ["lo"]


def _loop_free_number(start: int) -> int:
    fd = os.open("/dev/loop-control", os.O_RDWR)
    try:
        for number in range(start, start + 200):
            if not Path(f"/sys/block/loop{number}").exists():
                fcntl.ioctl(fd, LOOP_CTL_ADD, number)
                return number
    finally:
        os.close(fd)
    raise RuntimeError("no free loop device number")


def _loop_remove(number: int) -> None:
    subprocess.run(["losetup", "-d", f"/dev/loop{number}"], capture_output=True)
    if Path(f"/sys/block/loop{number}").exists():
        fd = os.open("/dev/loop-control", os.O_RDWR)
        try:
            fcntl.ioctl(fd, LOOP_CTL_REMOVE, number)
        finally:
            os.close(fd)


@contextmanager
def loop_devices(tmp_path: Path, count: int, sector_size: int = 512) -> Iterator[list[int]]:
    """`count` loop devices of their own (numbers from 300 up), each backed by a 64 MiB file
    with `sector_size` logical blocks; detached and removed afterwards."""
    numbers: list[int] = []
    try:
        for index in range(count):
            number = _loop_free_number(300 + index)
            numbers.append(number)
            backing = tmp_path / f"backing{number}"
            with open(backing, "wb") as handle:
                handle.truncate(64 * 1024 * 1024)
            subprocess.run(
                ["losetup", "-b", str(sector_size), f"/dev/loop{number}", str(backing)],
                check=True,
            )
        yield numbers
    finally:
        for number in numbers:
            _loop_remove(number)


@needs_root
def test_direct_writes_to_a_4k_sector_loop_device_agree_with_iostat(tmp_path, target):
    """8 MiB written with O_DIRECT inside both windows: byte counts in 512-byte diskstats
    sectors although the device's sectors are 4096 bytes, and iostat -x over its own window
    on the same device sees the same requests: the same w_await and request size."""
    megabytes = 8
    with loop_devices(tmp_path, 1, sector_size=4096) as (number,):
        device = f"loop{number}"
        checks = target.run(
            tmp_path,
            f"    - {{name: io, diskio: {{devices: [{device}], sample: 5s}}}}\n"
            + midwindow("write", f"/dev/{device}", f"/dev/{device}", megabytes, 3),
        )
    done = acted(checks)
    assert done["inside"], "dd outlasted iostat's 3 s window: the machine is too loaded"
    iostat = done["iostat"]
    io = checks["io"]
    assert io["status"] == "OK", io
    ours = io["measurements"]
    assert io["facts"]["sector_sizes"] == {device: 4096}
    assert within(megabytes * 1024 * 1024, over_window(ours["write_bytes"], io))
    assert ours["writes"] > 0 and ours["reads"] == 0
    assert ours["w_await"] == pytest.approx(iostat["w_await"], abs=0.0051)
    assert ours["write_bytes"] / ours["writes"] / 1024 == pytest.approx(
        iostat["wareq-sz"], abs=0.0051
    )
    # (w/s, util and aqu-sz are divided by each tool's own window length, which differ by
    # how late each sleep ended: they are compared on recorded counters above, exactly. The
    # kernel credits a loop device's io_ticks lazily, per jiffy, at an I/O's start and end:
    # 8 MiB of fast direct writes may leave it unchanged over a window, so util may be 0.)
    assert iostat["w/s"] > 0 and 0 <= ours["util"] <= 100
    assert ours["devices"] == 1 and ours["vanished"] == 0


def _disk_of(path: Path) -> str:
    st_dev = os.stat(path).st_dev
    link = Path(f"/sys/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}").resolve()
    if (link / "partition").exists():
        link = link.parent
    return link.name


def _written_sectors(device: str) -> int:
    return diskio.parse_diskstats(Path("/proc/diskstats").read_text())[device]["write_sectors"]


@needs_root
def test_direct_writes_to_the_disk_holding_the_tests_are_in_its_rates(tmp_path, target):
    device = _disk_of(tmp_path)
    if not Path(f"/sys/block/{device}/device").exists() and device.startswith("loop"):
        pytest.fail(f"{tmp_path} is on {device}: not a real disk")
    size = 16 * 1024 * 1024
    data = tmp_path / "data"
    before = _written_sectors(device)
    command = f"dd if=/dev/zero of={data} bs=1M count=16 oflag=direct conv=fsync"
    checks = target.run(
        tmp_path,
        f"    - {{name: io, diskio: {{devices: [{device}], sample: 4s}}}}\n"
        f'    - {{name: act, command: {{cmd: "{command}"}}}}\n',
    )
    after = _written_sectors(device)
    assert checks["act"]["status"] == "OK", checks["act"]
    io = checks["io"]
    low, high = over_window(io["measurements"]["write_bytes"], io)
    assert size <= high + 0.5 and low - 0.5 <= (after - before) * 512
    assert io["measurements"]["w_await"] > 0 and io["measurements"]["util"] > 0
    assert io["facts"]["devices"] == [device]


@needs_root
def test_loop_devices_removed_and_added_mid_window_are_reported_not_crashed_on(tmp_path, target):
    with loop_devices(tmp_path, 2) as (vanishing, restarting), ExitStack() as cleanup:
        for number in (vanishing, restarting):  # counters above 0 before the window
            subprocess.run(
                ["dd", "if=/dev/zero", f"of=/dev/loop{number}", "bs=64k", "count=4",
                 "oflag=direct"],
                check=True, capture_output=True,
            )  # fmt: skip
        appearing = _loop_free_number(restarting + 1)
        _loop_remove(appearing)  # free again: it appears mid-window
        cleanup.callback(_loop_remove, appearing)
        names = [f"loop{n}" for n in (vanishing, restarting, appearing)]
        checks = target.run(
            tmp_path,
            f"    - {{name: io, diskio: {{devices: {json.dumps(names)}, sample: 3s}},"
            " metric: vanished, crit: 0}\n" + midwindow("loops", vanishing, restarting, appearing),
        )
    assert acted(checks) == {"done": True}
    io = checks["io"]
    assert io["status"] == "CRITICAL", io
    vanished, appeared = io["facts"]["vanished"], io["facts"]["appeared"]
    assert sorted(vanished) == sorted(names[:2]) and sorted(appeared) == sorted(names[1:])
    assert io["measurements"]["vanished"] == 2 and io["measurements"]["appeared"] == 2
    assert io["measurements"]["devices"] == 0
    assert f"vanished: {names[0]}" in io["message"]


def _delete_link(name: str) -> None:
    subprocess.run(["ip", "link", "del", name], capture_output=True)


@needs_root
def test_interfaces_deleted_and_created_mid_window_are_reported(tmp_path, target):
    suffix = os.getpid() % 10000
    vanishing, appearing = f"ckgo{suffix}", f"ckup{suffix}"
    subprocess.run(
        ["ip", "link", "add", vanishing, "type", "veth", "peer", "name", vanishing + "p"],
        check=True,
    )
    try:
        checks = target.run(
            tmp_path,
            "    - {name: links, net: {interfaces: [ck*], sample: 2s, sockets: false},"
            " metric: interfaces, crit: 0}\n" + midwindow("links", vanishing, appearing),
        )
    finally:
        for name in (vanishing, appearing):
            _delete_link(name)
    assert acted(checks) == {"done": True}
    links = checks["links"]
    assert sorted(links["facts"]["vanished"]) == sorted([vanishing, vanishing + "p"])
    assert sorted(links["facts"]["appeared"]) == sorted([appearing, appearing + "p"])
    assert links["facts"]["interfaces"] == [] and links["measurements"]["interfaces"] == 0
    assert links["status"] == "OK", links  # nothing measured is 0 interfaces, not a crash
    assert f"vanished: {vanishing}" in links["message"]


@contextmanager
def never_accepting_listener() -> Iterator[tuple[socket.socket, int]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        yield server, server.getsockname()[1]
    finally:
        server.close()


def _netstat(name: str) -> int:
    return net.parse_snmp(Path("/proc/net/netstat").read_text())["TcpExt"][name]


def test_listen_overflows_and_retransmits_contain_what_nstat_saw_inside_the_window(
    tmp_path, target
):
    if not shutil.which("nstat"):
        pytest.fail("nstat is missing: scripts/test.sh installs iproute2")
    with never_accepting_listener() as (_, port):
        overflows_before = _netstat("ListenOverflows")
        checks = target.run(
            tmp_path,
            "    - {name: tcp, net: {sample: 4s, sockets: false}}\n"
            + midwindow("overflow", port, 12, 2.5),
        )
        overflows_after = _netstat("ListenOverflows")
    seen = acted(checks)["nstat"]
    tcp = checks["tcp"]
    ours = tcp["measurements"]
    assert seen["TcpExtListenOverflows"] > 0 and seen["TcpRetransSegs"] > 0
    # nstat's readings lie inside our window, which lies inside the test's readings
    overflows = over_window(ours["listen_overflows"], tcp)
    assert seen["TcpExtListenOverflows"] <= round(overflows[1])
    assert round(overflows[0]) <= overflows_after - overflows_before
    for name, counter in (
        ("listen_drops", "TcpExtListenDrops"),
        ("retrans_segs", "TcpRetransSegs"),
        ("out_segs", "TcpOutSegs"),
    ):
        assert round(over_window(ours[name], tcp)[1]) >= seen[counter], name
    assert ours["retrans_percent"] == pytest.approx(100.0 * ours["retrans_segs"] / ours["out_segs"])


def _ss_count(port: int, state: str) -> int:
    out = subprocess.run(
        ["ss", "-Htan", "state", state, f"( sport = :{port} )"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return len(out.splitlines())


def test_connections_to_a_local_port_are_counted_as_ss_counts_them(tmp_path, target):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    clients, accepted = [], []
    try:
        for _ in range(5):
            clients.append(socket.create_connection(("127.0.0.1", port)))
            accepted.append(server.accept()[0])
        for _ in range(3):  # closed by the server first: TIME_WAIT on the server's port
            client = socket.create_connection(("127.0.0.1", port))
            conn, _ = server.accept()
            conn.close()
            client.recv(1)
            client.close()
        expected = {
            state: _ss_count(port, state) for state in ("established", "time-wait", "listening")
        }
        checks = target.run(
            tmp_path,
            f"    - {{name: pg, net: {{port: {port}, sample: 200ms}}, metric: connections,"
            " warn: 4}\n",
        )
    finally:
        for sock in (*clients, *accepted, server):
            sock.close()
    pg = checks["pg"]
    assert expected == {"established": 5, "time-wait": 3, "listening": 1}
    got = pg["measurements"]
    assert (got["connections"], got["sockets_established"]) == (5, 5)
    assert (got["sockets_time_wait"], got["sockets_listen"], got["sockets"]) == (3, 1, 9)
    assert pg["status"] == "WARNING" and pg["facts"]["port"] == port
    assert f":{port} 5 established, 3 time_wait, 1 listening" in pg["message"]
