"""What the diskio and net tests do on the target while a batch's sampling window is open.

A `command` check runs in a thread of the same batch as the rate checks, after their first
snapshot and before their second (modules/_batch.py), so whatever it does falls inside
their window. Usage: python3 midwindow.py ACTION [ARGS...]; it prints one JSON object.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import socket
import subprocess
import sys
import time

LOOP_CTL_ADD = 0x4C80  # include/uapi/linux/loop.h
LOOP_CTL_REMOVE = 0x4C81


def loop_control(request: int, number: int) -> None:
    fd = os.open("/dev/loop-control", os.O_RDWR)
    try:
        fcntl.ioctl(fd, request, number)
    finally:
        os.close(fd)


def send(port: int, size: int) -> dict:
    """Send `size` bytes to 127.0.0.1:port; the listener closes once it has them all."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        block = b"x" * 65536
        left = size
        while left:
            left -= conn.send(block[: min(left, len(block))])
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1)  # the listener's close: every byte arrived within this command
    return {"sent": size}


def iostat_reports(lines, after_first=None) -> list[dict[str, dict[str, float]]]:
    """The reports of `iostat -x -d` text output, each {device: {column: value}} (JSON's
    names: util for %util); `after_first()` is called once the first report has been read.
    Run iostat through `stdbuf -oL` so that each report arrives when it is printed."""
    reports: list[dict[str, dict[str, float]]] = []
    names: list[str] = []
    for line in lines:
        fields = line.split()
        if fields and fields[0] == "Device":
            names = [name.lstrip("%") for name in fields[1:]]
            reports.append({})
        elif fields and names:
            reports[-1][fields[0]] = dict(zip(names, map(float, fields[1:])))
        elif names and reports[-1]:  # the blank line that ends a report
            names = []
            if len(reports) == 1 and after_first is not None:
                after_first()
    return reports


def write_with_iostat(device: str, target: str, megabytes: int, interval: int) -> dict:
    """`iostat -x` over `interval` seconds on `device`, with `megabytes` of direct writes
    to `target` (the device itself, or a file on it) started once iostat has printed its
    first report (taken its first snapshot), and so inside its window and the batch's.
    `inside` says whether the writes ended before iostat's second report came."""
    iostat = subprocess.Popen(
        ["stdbuf", "-oL", "iostat", "-x", "-d", device, str(interval), "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    inside = []

    def write() -> None:
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={megabytes}", "oflag=direct"],
            check=True,
            capture_output=True,
        )
        ready, _, _ = select.select([iostat.stdout], [], [], 0)
        inside.append(not ready)

    reports = iostat_reports(iostat.stdout, write)
    iostat.wait(30)
    stats = next(iter(reports[1].values()))
    return {"iostat": stats, "inside": inside == [True]}


def loops(vanish: str, restart: str, appear: str) -> dict:
    """Mid-window: detach and remove loop `vanish`; remove and add back `restart` (its
    counters start again from 0); add `appear`."""
    subprocess.run(["losetup", "-d", f"/dev/loop{vanish}"], check=True)
    loop_control(LOOP_CTL_REMOVE, int(vanish))
    subprocess.run(["losetup", "-d", f"/dev/loop{restart}"], check=True)
    loop_control(LOOP_CTL_REMOVE, int(restart))
    loop_control(LOOP_CTL_ADD, int(restart))
    loop_control(LOOP_CTL_ADD, int(appear))
    return {"done": True}


def links(vanish: str, appear: str) -> dict:
    """Mid-window: delete the veth pair `vanish` (both ends go), create the pair `appear`."""
    subprocess.run(["ip", "link", "del", vanish], check=True)
    subprocess.run(
        ["ip", "link", "add", appear, "type", "veth", "peer", "name", appear + "p"], check=True
    )
    return {"done": True}


def overflow(port: int, clients: int, seconds: float) -> dict:
    """nstat's view of `clients` connections to a listener that never accepts, over
    `seconds` (SYNs dropped at a full accept queue are retransmitted)."""
    names = ["TcpExtListenOverflows", "TcpExtListenDrops", "TcpRetransSegs", "TcpOutSegs"]
    before = _nstat(names)
    opened = []
    for _ in range(clients):
        conn = socket.socket()
        conn.setblocking(False)
        conn.connect_ex(("127.0.0.1", port))
        opened.append(conn)
    time.sleep(seconds)
    after = _nstat(names)
    for conn in opened:
        conn.close()
    return {"nstat": dict((name, after[name] - before[name]) for name in names)}


def _nstat(names: list[str]) -> dict[str, int]:
    # -a: absolute counters, -z: zeros too, -s: leave nstat's history file alone
    out = subprocess.run(
        ["nstat", "-asz", "--json", *names], check=True, capture_output=True, text=True
    ).stdout
    counters = json.loads(out)["kernel"]
    return dict((name, int(counters[name])) for name in names)


ACTIONS = {
    "send": lambda port, size: send(int(port), int(size)),
    "write": lambda device, to, mb, interval: write_with_iostat(device, to, int(mb), int(interval)),
    "loops": loops,
    "links": links,
    "overflow": lambda port, clients, secs: overflow(int(port), int(clients), float(secs)),
}

if __name__ == "__main__":
    print(json.dumps(ACTIONS[sys.argv[1]](*sys.argv[2:])))
