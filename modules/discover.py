# What runs on a host, for `checkrun init`: real filesystems, memory, CPUs, listening TCP
# services (and whether they answer HTTP), long-running processes, the largest active logs.
#
# Runs on the target: standard library only, Python 3.6 syntax. Everything is read from
# procfs and the filesystem; the only traffic is one HTTP probe per listening port, from the
# target to its own listener. Command lines and environments are never read into the answer
# (they may hold secrets): processes are reported by name only.
import os
import socket
import stat
import threading
import time
from typing import Any, Dict, List, Optional

from ._utils import processes, procfs

MODULE = {
    "summary": "What runs on a host: filesystems, TCP listeners, long-running processes, logs",
    "description": [
        "Looks at the host the way an SRE would before writing checks for it; `checkrun "
        "init` turns the facts into a starter playbook. Filesystems are the mounted real "
        "ones (ext4, xfs, btrfs... as a whole, not bind mounts of their directories; no "
        "tmpfs, overlay, proc, squashfs or other virtual ones), once per device.",
        "Listeners are the TCP sockets in LISTEN state (/proc/net/tcp and tcp6), with the "
        "name of the process that owns them where it can be seen. A listener whose owner "
        "ran less than `min_age` is left out (a passing job, not a service), and so is one "
        "whose owner cannot be seen on a port of the ephemeral range (a client's, most "
        "likely). Each listener is probed once from the target: a `GET /` whose answer "
        "starts with `HTTP/` makes it an HTTP service, with the status it answered.",
        "Processes are the ones without a controlling terminal (daemons) that have run at "
        "least `min_age`, by name (as the process module matches `name`), kernel threads, "
        "shells and this check's own ancestors left out. Their command lines and "
        "environments are never read into the answer: they may hold secrets.",
        "Logs are the regular files under `log_dir` written to within `active_within`, the "
        "`max_logs` largest; rotated generations (.1, .gz, -20261127) are left out.",
    ],
    "options": {
        "min_age": {
            "type": "duration",
            "default": "1m",
            "description": "How long a process must have run to count as a service.",
        },
        "log_dir": {
            "type": "str",
            "default": "/var/log",
            "description": "Directory searched (recursively) for active logs.",
        },
        "max_logs": {
            "type": "int",
            "default": 5,
            "min": 0,
            "description": "How many of the largest active logs to report.",
        },
        "active_within": {
            "type": "duration",
            "default": "1d",
            "description": "A log counts as active when written to within this long.",
        },
        "probe_timeout": {
            "type": "duration",
            "default": "1s",
            "max": "10s",
            "description": "How long each listener may take to answer the HTTP probe.",
        },
    },
    "measurements": {
        "filesystems": {"unit": "", "description": "Real filesystems mounted."},
        "listeners": {"unit": "", "description": "TCP listeners reported."},
        "http_listeners": {"unit": "", "description": "Listeners that answered HTTP."},
        "services": {"unit": "", "description": "Long-running process names reported."},
        "logs": {"unit": "", "description": "Active logs reported."},
    },
    "default_metric": "services",
    "facts": {
        "filesystems": "Each real filesystem: mountpoint, fstype, used_percent.",
        "memory_used_percent": "Memory in use, as the memory module computes it.",
        "cores": "Online logical CPUs.",
        "listeners": "Each TCP listener: host to connect to, port, owner process name "
        "(empty when it cannot be seen) and http_status (the status its `GET /` "
        "answered, or null).",
        "services": "Names of the long-running processes.",
        "logs": "Each active log: path and size in bytes.",
    },
}

EXAMPLES = """
- name: what runs here
  discover: {min_age: 5m}
"""

# Filesystems that hold data on a block device or a pool: the ones worth a space check.
REAL_FILESYSTEMS = frozenset(
    "ext2 ext3 ext4 xfs btrfs zfs f2fs jfs reiserfs vfat exfat ntfs ntfs3 nilfs2 bcachefs".split()
)
# Mount points of the system's own plumbing, never a place an SRE means by "disk space".
PSEUDO_ROOTS = ("/proc", "/sys", "/dev", "/run", "/snap")
# Container engines mount their containers' filesystems below their data directory (which
# itself may well be a disk worth watching).
ENGINE_ROOTS = ("/var/lib/docker", "/var/lib/containers", "/var/lib/kubelet")
TCP_LISTEN = "0A"
NOT_SERVICES = frozenset(
    "sh bash dash zsh fish ksh csh tcsh sleep timeout sudo su tail cat less more watch "
    "ssh scp sftp-server tmux screen".split()
)
ROTATED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".old")


def parse_mountinfo(text: str) -> List[Dict[str, str]]:
    """/proc/self/mountinfo: each mount's device (major:minor), root within its filesystem,
    mount point, filesystem type and source."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        rest = right.split()
        if not sep or len(fields) < 5 or len(rest) < 2:
            continue
        mounts.append(
            {
                "device": fields[2],
                "root": _unescape(fields[3]),
                "mountpoint": _unescape(fields[4]),
                "fstype": rest[0],
                "source": _unescape(rest[1]),
            }
        )
    return mounts


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        text = text.replace(code, chr(int(code[1:], 8)))
    return text


def real_filesystems(mounts: List[Dict[str, str]]) -> List[Dict[str, str]]:
    """One mount per real filesystem: whole ones only (a bind mount of a directory shows
    the same space), the shortest mount point of each device, sorted by mount point."""
    best = {}  # type: Dict[str, Dict[str, str]]
    for mount in mounts:
        point = mount["mountpoint"]
        if mount["fstype"] not in REAL_FILESYSTEMS or mount["root"] != "/":
            continue
        if any(point == root or point.startswith(root + "/") for root in PSEUDO_ROOTS):
            continue
        if any(point.startswith(root + "/") for root in ENGINE_ROOTS):
            continue
        known = best.get(mount["device"])
        if known is None or len(point) < len(known["mountpoint"]):
            best[mount["device"]] = mount
    return sorted(best.values(), key=lambda mount: mount["mountpoint"])


def parse_proc_net_tcp(text: str) -> List[Dict[str, Any]]:
    """/proc/net/tcp or tcp6: the sockets in LISTEN state, address, port and inode."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_LISTEN:
            continue
        address, _, port = fields[1].partition(":")
        found.append({"address": _address(address), "port": int(port, 16), "inode": int(fields[9])})
    return found


def _address(hex_text: str) -> str:
    """The kernel's hex address (network order in host-endian 32-bit words) as text."""
    raw = bytes.fromhex(hex_text)
    words = b"".join(raw[index : index + 4][::-1] for index in range(0, len(raw), 4))
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words)


def connect_host(address: str) -> str:
    """Where to connect to reach a listener from its own host."""
    if address == "0.0.0.0":
        return "127.0.0.1"
    if address == "::":
        return "::1"
    if address.startswith("::ffff:") and "." in address:
        return connect_host(address[len("::ffff:") :])
    return address


def run(args: Dict[str, Any], ctx: Any) -> Dict[str, Any]:
    proc_root = ctx.proc_root
    uptime = float(procfs.read_text(os.path.join(proc_root, "uptime")).split()[0])
    hz = float(procfs.user_hz())
    table = _process_table(proc_root, uptime, hz)
    filesystems = _filesystems(proc_root)
    listeners = _listeners(proc_root, table, args["min_age"], args["probe_timeout"], ctx)
    services = _services(table, args["min_age"], proc_root)
    logs = _logs(args["log_dir"], args["active_within"], args["max_logs"])
    http_count = len([item for item in listeners if item["http_status"] is not None])
    return {
        "measurements": {
            "filesystems": len(filesystems),
            "listeners": len(listeners),
            "http_listeners": http_count,
            "services": len(services),
            "logs": len(logs),
        },
        "facts": {
            "filesystems": filesystems,
            "memory_used_percent": _memory_used_percent(proc_root),
            "cores": os.cpu_count() or 1,
            "listeners": listeners,
            "services": services,
            "logs": logs,
        },
        "message": "%d filesystems, %d listeners (%d HTTP), %d services, %d logs"
        % (len(filesystems), len(listeners), http_count, len(services), len(logs)),
    }


def _filesystems(proc_root: str) -> List[Dict[str, Any]]:
    mounts = parse_mountinfo(procfs.read_text(os.path.join(proc_root, "self", "mountinfo")))
    found = []
    for mount in real_filesystems(mounts):
        try:
            space = os.statvfs(mount["mountpoint"])
        except OSError:
            continue
        used = (space.f_blocks - space.f_bfree) * space.f_frsize
        available = space.f_bavail * space.f_frsize
        if used + available <= 0:
            continue
        found.append(
            {
                "mountpoint": mount["mountpoint"],
                "fstype": mount["fstype"],
                "used_percent": round(100.0 * used / (used + available), 1),
            }
        )
    return found


def _memory_used_percent(proc_root: str) -> Optional[float]:
    values = {}
    for line in procfs.read_text(os.path.join(proc_root, "meminfo")).splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            values[key] = int(parts[0])
    total, available = values.get("MemTotal"), values.get("MemAvailable")
    if not total or available is None:
        return None
    return round(100.0 * (total - available) / total, 1)


def _process_table(proc_root: str, uptime: float, hz: float) -> Dict[int, Dict[str, Any]]:
    """pid -> name, parent, age, terminal, whether it is a kernel thread or a zombie."""
    table = {}
    for entry in os.listdir(proc_root):
        if not entry.isdigit():
            continue
        base = os.path.join(proc_root, entry)
        try:
            text = procfs.read_text(os.path.join(base, "stat"))
            record = processes.parse_proc_stat(text)
            argv = processes.parse_cmdline(procfs.read_text(os.path.join(base, "cmdline")))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        table[record["pid"]] = {
            "name": processes.full_name(record["comm"], argv),
            "ppid": record["ppid"],
            "age": uptime - record["starttime"] / hz,
            "tty": int(text[text.rindex(")") + 2 :].split()[4]),
            "kernel": not argv,
            "zombie": record["state"] in ("Z", "X"),
        }
    return table


def _ancestors(table: Dict[int, Dict[str, Any]], proc_root: str) -> set:
    """This check's own process and its parents (the batch, its ssh session, a shell)."""
    try:
        pid = int(os.readlink(os.path.join(proc_root, "self")))
    except (OSError, ValueError):
        return set()
    chain = set()
    while pid in table and pid not in chain:
        chain.add(pid)
        pid = table[pid]["ppid"]
    return chain


def _is_service(record: Dict[str, Any], min_age: float) -> bool:
    return (
        not record["kernel"]
        and not record["zombie"]
        and record["tty"] == 0
        and record["age"] >= min_age
        and record["name"] not in NOT_SERVICES
    )


def _services(table: Dict[int, Dict[str, Any]], min_age: float, proc_root: str) -> List[str]:
    own = _ancestors(table, proc_root)
    return sorted(
        set(
            record["name"]
            for pid, record in table.items()
            if pid not in own and _is_service(record, min_age)
        )
    )


def _socket_owners(proc_root: str, inodes: set) -> Dict[int, int]:
    """socket inode -> pid, for the processes whose descriptors can be read."""
    owners = {}
    for entry in os.listdir(proc_root):
        if not entry.isdigit():
            continue
        fd_dir = os.path.join(proc_root, entry, "fd")
        try:
            descriptors = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in descriptors:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in inodes:
                    owners.setdefault(inode, int(entry))
    return owners


def _ephemeral_start(proc_root: str) -> int:
    try:
        path = os.path.join(proc_root, "sys", "net", "ipv4", "ip_local_port_range")
        return int(procfs.read_text(path).split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _listeners(
    proc_root: str, table: Dict[int, Dict[str, Any]], min_age: float, timeout: float, ctx: Any
) -> List[Dict[str, Any]]:
    sockets = []
    for name in ("tcp", "tcp6"):
        try:
            sockets.extend(
                parse_proc_net_tcp(procfs.read_text(os.path.join(proc_root, "net", name)))
            )
        except OSError:
            continue
    owners = _socket_owners(proc_root, set(item["inode"] for item in sockets))
    ephemeral = _ephemeral_start(proc_root)
    own = _ancestors(table, proc_root)
    chosen = {}  # type: Dict[Tuple[str, int], str]
    for item in sockets:
        pid = owners.get(item["inode"])
        record = table.get(pid) if pid is not None else None
        if pid in own:
            continue
        if record is None and item["port"] >= ephemeral:
            continue  # unseen owner on a client's port range
        if record is not None and record["age"] < min_age:
            continue
        key = (connect_host(item["address"]), item["port"])
        chosen[key] = record["name"] if record is not None else ""
    found = [
        {"host": host, "port": port, "process": name, "http_status": None}
        for (host, port), name in sorted(chosen.items(), key=lambda pair: (pair[0][1], pair[0][0]))
    ]
    _probe_all(found, min(timeout, ctx.remaining() / 2))
    return found


def _probe_all(listeners: List[Dict[str, Any]], timeout: float) -> None:
    """The HTTP probes, a few at a time: a host with many listeners must not wait for each
    silent one in turn."""
    pending = list(listeners)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if not pending:
                    return
                item = pending.pop()
            item["http_status"] = http_status(item["host"], item["port"], timeout)

    threads = [threading.Thread(target=worker) for _ in range(min(16, len(listeners)))]
    for thread in threads:
        thread.daemon = True
        thread.start()
    for thread in threads:
        thread.join()


def http_status(host: str, port: int, timeout: float) -> Optional[int]:
    """The status a `GET /` is answered with, or None when the listener does not speak HTTP
    (or says nothing in time: SSH and SMTP greet first, with something else)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect((host, port))
            target = "[%s]" % host if family == socket.AF_INET6 else host
            request = "GET / HTTP/1.0\r\nHost: %s:%d\r\nUser-Agent: checkrun-init\r\n\r\n"
            sock.sendall((request % (target, port)).encode("ascii"))
            reply = b""
            while b"\n" not in reply and len(reply) < 1024:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(1024)
                if not chunk:
                    break
                reply += chunk
    except (OSError, ValueError):
        return None
    return parse_status_line(reply.split(b"\n", 1)[0].decode("latin-1"))


def parse_status_line(line: str) -> Optional[int]:
    """`HTTP/1.1 200 OK` -> 200; anything else -> None."""
    parts = line.split()
    if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].isdigit():
        status = int(parts[1])
        return status if 100 <= status <= 599 else None
    return None


def _is_rotated(name: str) -> bool:
    if name.endswith(ROTATED_SUFFIXES):
        return True
    stem, _, last = name.rpartition(".")
    if stem and last.isdigit():
        return True  # app.log.1
    tail = name.rsplit("-", 1)[-1].split(".")[0]
    return len(tail) == 8 and tail.isdigit()  # app.log-20261127, app-20261127.log


def _is_text(path: str) -> bool:
    """Readable, and no NUL in its first KB: wtmp, lastlog and journal files are binary."""
    try:
        with open(path, "rb") as handle:
            return b"\0" not in handle.read(1024)
    except OSError:
        return False


def _logs(log_dir: str, active_within: float, limit: int) -> List[Dict[str, Any]]:
    now = time.time()
    found = []
    for directory, _, names in os.walk(log_dir):
        for name in names:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or info.st_size == 0 or _is_rotated(name):
                continue
            if now - info.st_mtime > active_within or not _is_text(path):
                continue
            found.append({"path": path, "size": info.st_size})
    found.sort(key=lambda item: (-item["size"], item["path"]))
    return sorted(found[:limit], key=lambda item: item["path"])
