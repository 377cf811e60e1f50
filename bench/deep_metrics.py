#!/usr/bin/env python3
"""The diskio and net modules against node_exporter (CPU) and iostat/nstat/ss (agreement).

In one run:

- cpu: target CPU per sample. Ours: the module's sample() twice and run() once (one check:
  the two snapshots a rate needs), called in this process on this machine's /proc as a
  kept target process calls them, `--checks` times; CPU from time.process_time(), divided
  by 2 per check. The peer: Debian's prometheus-node-exporter with
  --collector.disable-defaults and only the collectors that read the same data, scraped
  `--scrapes` times back to back over loopback; its CPU (utime + stime from /proc/PID/stat)
  per scrape, the HTTP answer and the text encoding included as a scrape needs them.
    diskio                     vs --collector.diskstats
    net, sockets: false        vs --collector.netdev --collector.netstat
    net (sockets by state)     vs --collector.netdev --collector.netstat --collector.tcpstat
- diskio vs iostat -x (`--runs` times): `checkrun` runs a diskio check on the disk under
  the temporary directory over a 3 s window and, in the same batch (started a few ms after
  the window opened), tests/midwindow.py: `iostat -x` over a 3 s interval on that disk,
  with 32 MiB of O_DIRECT writes to a file on it started once iostat has printed its first
  report and ended before its second. Then the same on a loop device of its own (4096-byte
  sectors, nothing else writes to it), where both tools see exactly the same requests.
  Per iostat field: the largest deviation over the runs, ours rounded to iostat's two
  decimals first.
- net vs nstat and ss: a known payload over lo (ours against the bytes sent), listen
  overflows and SYN retransmits to a listener that never accepts (ours over a 4 s window
  against nstat's two readings 3.7 s apart inside it), and sockets by state on a port (ours against ss).

Run by hand, as root (loop devices), with the project's venv:
  .venv/bin/python bench/deep_metrics.py [--checks 300] [--scrapes 300] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from prometheus_servers import running_server  # noqa: E402 - the tests' server starter
from sshd import free_port  # noqa: E402

from checkrunner.modules import diskio, net  # noqa: E402
from checkrunner.modules._batch import CheckContext  # noqa: E402

MIDWINDOW = REPO / "tests" / "midwindow.py"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAIRS = [
    ("diskio", diskio, {"devices": ["*"], "include": []}, ["diskstats"]),
    ("net, sockets: false", net, {"sockets": False}, ["netdev", "netstat"]),
    ("net", net, {"sockets": True}, ["netdev", "netstat", "tcpstat"]),
]
IOSTAT = [  # ours, iostat's JSON field, factor from ours to iostat's unit
    ("reads", "r/s", 1.0),
    ("writes", "w/s", 1.0),
    ("read_bytes", "rkB/s", 1 / 1024),
    ("write_bytes", "wkB/s", 1 / 1024),
    ("r_await", "r_await", 1.0),
    ("w_await", "w_await", 1.0),
    ("aqu_sz", "aqu-sz", 1.0),
    ("util", "util", 1.0),
]


def our_cpu_per_sample(module, args: dict, checks: int) -> float:
    """Seconds of CPU per sample: one check is two samples and one run()."""
    started = time.process_time()
    for _ in range(checks):
        ctx = CheckContext("b", 30.0, None)
        ctx.before = module.sample(args, ctx)
        ctx.after = module.sample(args, ctx)
        ctx.elapsed = max(1e-6, ctx.after["taken"] - ctx.before["taken"])
        module.run(args, ctx)
    return (time.process_time() - started) / (2 * checks)


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def node_exporter_cpu_per_scrape(collectors: list[str], scrapes: int, work: Path) -> float:
    port = free_port()
    args = [f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults"]
    args += [f"--collector.{name}" for name in collectors]
    with running_server("prometheus-node-exporter", args, work / "ne", "/metrics", port) as url:
        pid = int(
            subprocess.run(
                ["pgrep", "-n", "-f", f"127.0.0.1:{port}"], capture_output=True, text=True
            ).stdout.split()[0]
        )
        for _ in range(5):  # warm-up: first scrapes allocate
            urllib.request.urlopen(f"{url}/metrics").read()
        before = _process_cpu(pid)
        for _ in range(scrapes):
            urllib.request.urlopen(f"{url}/metrics").read()
        return (_process_cpu(pid) - before) / scrapes


def checkrun_run(work: Path, checks: str) -> dict[str, dict]:
    playbook = work / "deep.yml"
    playbook.write_text(f"- name: deep\n  hosts: localhost\n  checks:\n{checks}")
    report = work / "deep.json"
    checkrun = Path(sys.executable).with_name("checkrun")
    subprocess.run(
        [str(checkrun), str(playbook), "--no-state", "-r", f"json:{report}"],
        capture_output=True,
        timeout=180,
    )
    return {c["name"]: c for c in json.loads(report.read_text())["hosts"][0]["checks"]}


def midwindow(*args: object) -> str:
    argv = " ".join(str(a) for a in (sys.executable, MIDWINDOW, *args))
    return f'    - {{name: act, command: {{cmd: "{argv}", timeout: 60s}}, timeout: 90s}}\n'


def acted(checks: dict[str, dict]) -> dict:
    if checks["act"]["status"] != "OK":
        raise RuntimeError(f"mid-window action failed: {checks['act']}")
    return json.loads(checks["act"]["facts"]["stdout"])


def _disk_of(path: Path) -> str:
    st_dev = os.stat(path).st_dev
    node = Path(f"/sys/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}").resolve()
    return node.parent.name if (node / "partition").exists() else node.name


def diskio_against_iostat(work: Path, device: str, target: str, runs: int) -> dict:
    """{iostat field: (largest absolute deviation, largest relative one, iostat's value)}."""
    worst: dict[str, tuple[float, float, float]] = {}
    for _ in range(runs):
        checks = checkrun_run(
            work,
            f"    - {{name: io, diskio: {{devices: [{device}], include: [loop], sample: 3s}}}}\n"
            + midwindow("write", device, target, 32, 3),
        )
        done = acted(checks)
        if not done["inside"]:
            raise RuntimeError("dd outlasted iostat's window: the machine is too loaded")
        theirs = done["iostat"]
        ours = checks["io"]["measurements"]
        for name, field, factor in IOSTAT:
            # iostat prints two decimals: ours is rounded the same way first
            deviation = abs(round(ours[name] * factor, 2) - theirs[field])
            relative = deviation / theirs[field] if theirs[field] else 0.0
            if field not in worst or deviation > worst[field][0]:
                worst[field] = (deviation, relative, theirs[field])
    return worst


def loop_device(work: Path) -> str:
    import fcntl

    number = next(n for n in range(400, 600) if not Path(f"/sys/block/loop{n}").exists())
    fd = os.open("/dev/loop-control", os.O_RDWR)
    try:
        fcntl.ioctl(fd, 0x4C80, number)  # LOOP_CTL_ADD
    finally:
        os.close(fd)
    backing = work / "backing"
    with open(backing, "wb") as handle:
        handle.truncate(128 * 1024 * 1024)
    subprocess.run(["losetup", "-b", "4096", f"/dev/loop{number}", str(backing)], check=True)
    return f"loop{number}"


def remove_loop(name: str) -> None:
    import fcntl

    subprocess.run(["losetup", "-d", f"/dev/{name}"], capture_output=True)
    fd = os.open("/dev/loop-control", os.O_RDWR)
    try:
        fcntl.ioctl(fd, 0x4C81, int(name[len("loop") :]))  # LOOP_CTL_REMOVE
    finally:
        os.close(fd)


def net_against_peers(work: Path, runs: int) -> dict[str, tuple[float, float]]:
    """{figure: (largest relative deviation, the peer's value of that run)}."""
    import threading

    worst: dict[str, tuple[float, float]] = {}

    def keep(name: str, ours: float, theirs: float) -> None:
        relative = abs(ours - theirs) / theirs if theirs else float(ours != theirs)
        if name not in worst or relative > worst[name][0]:
            worst[name] = (relative, theirs)

    for _ in range(runs):
        sink = socket.socket()
        sink.bind(("127.0.0.1", 0))
        sink.listen(4)

        def drain(listener=sink):
            conn, _ = listener.accept()
            while conn.recv(1 << 20):
                pass
            conn.close()

        thread = threading.Thread(target=drain, daemon=True)
        thread.start()
        size = 64 * 1024 * 1024
        checks = checkrun_run(
            work,
            "    - {name: lo, net: {interfaces: [lo], sample: 3s, sockets: false}}\n"
            + midwindow("send", sink.getsockname()[1], size),
        )
        thread.join(10)
        sink.close()
        lo = checks["lo"]
        keep(
            "lo rx bytes vs bytes sent",
            lo["measurements"]["rx_bytes"] * lo["facts"]["window"],
            size,
        )

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        checks = checkrun_run(
            work,
            "    - {name: tcp, net: {sample: 4s, sockets: false}}\n"
            + midwindow("overflow", listener.getsockname()[1], 12, 3.7),
        )
        listener.close()
        seen = acted(checks)["nstat"]
        tcp = checks["tcp"]
        window = tcp["facts"]["window"]
        for ours, theirs in (
            ("listen_overflows", "TcpExtListenOverflows"),
            ("retrans_segs", "TcpRetransSegs"),
            ("out_segs", "TcpOutSegs"),
        ):
            keep(f"{ours} vs nstat {theirs}", tcp["measurements"][ours] * window, seen[theirs])

        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        port = server.getsockname()[1]
        held = []
        for _ in range(20):
            held.append(socket.create_connection(("127.0.0.1", port)))
            held.append(server.accept()[0])
        ss = subprocess.run(
            ["ss", "-Htan", "state", "established", f"( sport = :{port} )"],
            capture_output=True,
            text=True,
        ).stdout
        checks = checkrun_run(work, f"    - {{name: port, net: {{port: {port}, sample: 100ms}}}}\n")
        for sock in (*held, server):
            sock.close()
        keep(
            "connections to a port vs ss",
            checks["port"]["measurements"]["connections"],
            len(ss.splitlines()),
        )
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=300, help="checks per module for CPU")
    parser.add_argument("--scrapes", type=int, default=300, help="node_exporter scrapes")
    parser.add_argument("--runs", type=int, default=3, help="runs of each agreement leg")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deep-metrics-", dir="/var/tmp") as tmp:
        work = Path(tmp)
        print(f"{'module':28} {'ours/sample':>12} {'node_exporter/scrape':>21} {'ratio':>7}")
        for label, module, args, collectors in PAIRS:
            ours = our_cpu_per_sample(module, args, options.checks)
            theirs = node_exporter_cpu_per_scrape(collectors, options.scrapes, work)
            goal = "met" if ours <= theirs else "MISSED"
            print(
                f"{label:28} {ours * 1000:9.3f} ms {theirs * 1000:18.3f} ms "
                f"{ours / theirs:6.2f}x {goal} ({', '.join(collectors)})"
            )
        sockets = len(net.read_sockets("/proc"))
        print(f"(TCP sockets on this machine while measuring: {sockets})\n")

        disk = _disk_of(work)
        loop = loop_device(work)
        try:
            for label, device, target in (
                (f"{disk} (holds {work}; other writers too)", disk, str(work / "data")),
                (f"{loop} (4096-byte sectors, ours alone)", loop, f"/dev/{loop}"),
            ):
                print(f"diskio vs iostat -x on {label}, largest deviation of {options.runs} runs:")
                for field, (deviation, relative, value) in diskio_against_iostat(
                    work, device, target, options.runs
                ).items():
                    print(f"  {field:8} {deviation:10.3f} ({relative:6.2%} of iostat's {value})")
        finally:
            remove_loop(loop)

        print(f"\nnet vs the bytes sent, nstat and ss, largest deviation of {options.runs} runs:")
        for name, (relative, value) in net_against_peers(work, options.runs).items():
            print(f"  {name:48} {relative:7.2%} (peer: {value})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
