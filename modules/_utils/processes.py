# Finding processes by name, command-line pattern and user, through procfs or psutil: shared
# by the process module and by the modules that locate something by its process (cgroup).
#
# Runs on the target: standard library only, Python 3.6 syntax.
import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import procfs

COMM_LEN = 15  # TASK_COMM_LEN - 1: the kernel cuts process names here


# ---------------------------------------------------------------- procfs parsers (pure)


def parse_proc_stat(text: str) -> Dict[str, Any]:
    """/proc/PID/stat: pid, comm, state, utime/stime/starttime (ticks), threads, rss (pages)."""
    # comm sits in parentheses and may itself contain spaces and ')': cut at the last one.
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    fields = text[close_paren + 2 :].split()  # fields[0] is field 3 of proc(5), the state
    return {
        "pid": int(text[:open_paren]),
        "comm": text[open_paren + 1 : close_paren],
        "state": fields[0],
        "ppid": int(fields[1]),
        "utime": int(fields[11]),
        "stime": int(fields[12]),
        "num_threads": int(fields[17]),
        "starttime": int(fields[19]),
        "rss": int(fields[21]),
    }


def parse_cmdline(text: str) -> List[str]:
    """/proc/PID/cmdline: NUL-separated arguments; empty for kernel threads and zombies."""
    argv = text.split("\0")
    while argv and argv[-1] == "":
        argv.pop()  # the terminating NUL, and the padding some daemons leave after rewriting argv
    return argv


def parse_statm(text: str) -> int:
    """/proc/PID/statm's resident pages: exact, unlike the per-CPU approximation in stat."""
    return int(text.split()[1])


def parse_proc_status(text: str) -> Dict[str, str]:
    """/proc/PID/status as {"Name": ..., "Uid": "real effective saved fs", ...}."""
    status = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            status[key] = value.strip()
    return status


def effective_uid(status: Dict[str, str]) -> Optional[int]:
    uids = status.get("Uid", "").split()
    return int(uids[1]) if len(uids) > 1 else None


def full_name(comm: str, argv: List[str]) -> str:
    """comm, completed from argv[0] when the kernel cut it at 15 characters (as psutil does)."""
    if len(comm) >= COMM_LEN and argv:
        first = os.path.basename(argv[0].split(" ")[0])
        if first.startswith(comm):
            return first
    return comm


def command_line(name: str, argv: List[str]) -> str:
    """The text `pattern` is searched in; ps's '[name]' for processes without arguments."""
    return " ".join(argv) if argv else "[%s]" % name


def parse_meminfo_total(text: str) -> Optional[int]:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


# ---------------------------------------------------------------- selection


class Selector(object):
    """The user's filters; cheap ones are tried first so most processes cost one read."""

    def __init__(self, args: Dict[str, Any]) -> None:
        self.name = args.get("name") or None
        self.pattern: Any = None
        self.user = args.get("user")
        self.uid: Optional[int] = None
        self.user_name: Optional[str] = None
        if args.get("pattern"):
            try:
                self.pattern = re.compile(args["pattern"])
            except re.error as exc:
                raise RuntimeError(
                    "pattern %r is not a valid regular expression: %s" % (args["pattern"], exc)
                ) from exc
        if self.name is None and self.pattern is None:
            raise RuntimeError("give `name` or `pattern` to select processes")
        if self.user not in (None, ""):
            self.uid, self.user_name = resolve_user(str(self.user))

    def needs_argv(self, comm: str) -> bool:
        """The command line is read only for a pattern, or to complete a cut name."""
        cut_name = self.name is not None and self.name != comm and len(comm) >= COMM_LEN
        return self.pattern is not None or cut_name

    def name_may_match(self, comm: str) -> bool:
        """Decided from comm alone, before reading anything else of the process."""
        if self.name is None or comm == self.name:
            return True
        return len(comm) >= COMM_LEN and self.name.startswith(comm)

    def name_matches(self, comm: str, name: str) -> bool:
        """name may be given cut (as ps -e and top show it) or whole (as psutil shows it)."""
        return self.name is None or self.name in (comm, name)

    def matches(self, comm: str, name: str, argv: List[str]) -> bool:
        if not self.name_matches(comm, name):
            return False
        return self.pattern is None or bool(self.pattern.search(command_line(name, argv)))

    def describe(self) -> str:
        parts = []
        if self.name is not None:
            parts.append("name=%s" % self.name)
        if self.pattern is not None:
            parts.append("pattern=%r" % self.pattern.pattern)
        if self.user not in (None, ""):
            parts.append("user=%s" % self.user)
        return " ".join(parts)


def _is_uid(text: str) -> bool:
    # str.isdigit() is also true for "١٢" and "²": a uid is ASCII digits only
    return bool(re.match(r"^[0-9]+$", text))


def resolve_user(user: str) -> Tuple[Optional[int], Optional[str]]:
    """(uid, name) of a user given by name or numeric id; the name is None when unknown."""
    try:
        import pwd
    except ImportError:  # Windows: psutil compares user names
        return (int(user) if _is_uid(user) else None), user
    if _is_uid(user):
        return int(user), None
    try:
        return pwd.getpwnam(user).pw_uid, user
    except KeyError:
        raise RuntimeError(
            "no user %r on this host; check the spelling or use a numeric uid" % user
        ) from None


# ---------------------------------------------------------------- procfs collection


def _page_size() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 4096


def _own_pid_in(proc_root: str) -> Optional[int]:
    """Our PID when proc_root is the live procfs of our PID namespace, else None."""
    try:
        return int(os.readlink(os.path.join(proc_root, "self")))
    except (OSError, ValueError):
        return None


def _effective_uid_of(base: str) -> Optional[int]:
    return effective_uid(parse_proc_status(procfs.read_text(os.path.join(base, "status"))))


def _procfs_record(
    proc_root: str, pid: str, selector: Selector, units: Dict[str, float]
) -> Optional[Dict[str, Any]]:
    """The record of one matching process, None when it does not match or has vanished."""
    base = os.path.join(proc_root, pid)
    try:
        stat = parse_proc_stat(procfs.read_text(os.path.join(base, "stat")))
        if not selector.name_may_match(stat["comm"]):
            return None
        argv: List[str] = []
        if selector.needs_argv(stat["comm"]):
            argv = parse_cmdline(procfs.read_text(os.path.join(base, "cmdline")))
        name = full_name(stat["comm"], argv)
        if not selector.matches(stat["comm"], name, argv):
            return None
        if selector.uid is not None and _effective_uid_of(base) != selector.uid:
            return None
        resident = parse_statm(procfs.read_text(os.path.join(base, "statm")))
    except (OSError, ValueError, IndexError):
        return None  # gone between listing and reading (or being torn down): not running
    return {
        "pid": stat["pid"],
        "name": name,
        "zombie": stat["state"] in ("Z", "X"),
        "cpu": (stat["utime"] + stat["stime"]) / units["hz"],
        "start": stat["starttime"],
        "rss": resident * units["page"],
        "threads": stat["num_threads"],
    }


def procfs_processes(proc_root: str, selector: Selector) -> Dict[int, Dict[str, Any]]:
    try:
        entries = os.listdir(proc_root)
    except OSError as exc:
        raise RuntimeError(
            "cannot list %s (%s); on systems without procfs install psutil on the target"
            % (proc_root, exc.strerror or exc)
        ) from exc
    units = {"hz": float(procfs.user_hz()), "page": _page_size()}
    own_pid = _own_pid_in(proc_root)
    found = {}
    for entry in entries:
        if not entry.isdigit() or int(entry) == own_pid:
            continue
        record = _procfs_record(proc_root, entry, selector, units)
        if record is not None:
            found[record["pid"]] = record
    return found


def procfs_memory_total(proc_root: str) -> Optional[int]:
    try:
        return parse_meminfo_total(procfs.read_text(os.path.join(proc_root, "meminfo")))
    except (OSError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- psutil collection


def _psutil_user_matches(proc: Any, selector: Selector) -> bool:
    uids = getattr(proc, "uids", None)
    if uids is not None and selector.uid is not None:
        return uids().effective == selector.uid
    owner = proc.username()  # Windows: DOMAIN\\user
    return owner.split("\\")[-1] == (selector.user_name or str(selector.user))


def _psutil_record(psutil: Any, proc: Any, selector: Selector) -> Optional[Dict[str, Any]]:
    with proc.oneshot():
        name = proc.name()  # psutil already completes names the kernel cut at 15 characters
        comm = name[:COMM_LEN]
        if not selector.name_matches(comm, name):
            return None
        argv: List[str] = []
        if selector.pattern is not None:
            argv = _psutil_optional(psutil, proc.cmdline, [])
        if not selector.matches(comm, name, argv):
            return None
        if selector.user not in (None, "") and not _psutil_user_matches(proc, selector):
            return None
        status = proc.status()
        zombie = status in (psutil.STATUS_ZOMBIE, getattr(psutil, "STATUS_DEAD", "dead"))
        return {
            "pid": proc.pid,
            "name": name,
            "zombie": zombie,
            "cpu": _psutil_optional(psutil, lambda: sum(proc.cpu_times()[:2]), 0.0),
            "start": proc.create_time(),
            "rss": _psutil_optional(psutil, lambda: proc.memory_info().rss, 0),
            "threads": _psutil_optional(psutil, proc.num_threads, 0),
        }


def _psutil_optional(psutil: Any, getter: Callable[[], Any], default: Any) -> Any:
    """A value that zombies or other users' processes may refuse (macOS): default then."""
    try:
        return getter()
    except (psutil.ZombieProcess, psutil.AccessDenied):
        return default


def psutil_processes(psutil: Any, selector: Selector) -> Dict[int, Dict[str, Any]]:
    own_pid = os.getpid()
    found = {}
    for proc in psutil.process_iter():
        if proc.pid == own_pid:
            continue
        try:
            record = _psutil_record(psutil, proc, selector)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # vanished, or hidden from us: like procfs, only what we can see counts
        if record is not None:
            found[record["pid"]] = record
    return found
