# A file or directory on the target: existence, type, mode, ownership, contents, size and age.
#
# Runs on the target: standard library only, Python 3.6 syntax.
import grp
import hashlib
import os
import pwd
import re
import stat
import time

from ._utils import patterns

MODULE = {
    "summary": "File or directory: exists, type, mode, owner, contents, size and age",
    "description": [
        "Checks one path on the target. By default it must exist: a missing path is a "
        "failure (CRITICAL); with `exists: false` it must not exist. `type`, `mode`, "
        "`owner`, `group`, `contains`, `not_contains` and `sha256` add expectations, each "
        "one a failure when it does not hold.",
        "Thresholds apply to `age`, the seconds since the last modification, unless the "
        "check names another metric: `warn: 90000` on a nightly backup file warns when "
        "it is more than 25 hours old. `metric: size` watches how big a file grows, and "
        "for a directory `metric: entries` counts what is in it (a spool or queue).",
        "A symbolic link is followed: size, age, mode and owner describe what it points "
        "to. `type: link` requires the path itself to be a link.",
        "`contains`/`not_contains` search the first `max_read` bytes, decoded as UTF-8; "
        "use the log module to follow what is appended to a log. A file the check may not "
        "read makes it UNKNOWN with the fix: run it with `become: true`.",
        "Write `mode` quoted, as in `mode: '0644'`: an unquoted 0644 is read by YAML as "
        "the octal number and works too, but 644 would be decimal.",
    ],
    "free_form": "path",
    "options": {
        "path": {"type": "str", "required": True, "description": "The path to check."},
        "exists": {
            "type": "bool",
            "default": True,
            "description": "Whether the path must exist (false: it must not).",
        },
        "type": {
            "type": "str",
            "default": "any",
            "choices": ["file", "directory", "link", "any"],
            "description": "What the path must be; `file` and `directory` look through "
            "symbolic links, `link` requires the link itself.",
        },
        "mode": {
            "type": "raw",
            "format": "mode",
            "description": "Exact permission bits, as an octal string such as '0644' or '2775'.",
        },
        "owner": {"type": "str", "description": "Owning user, by name or uid."},
        "group": {"type": "str", "description": "Owning group, by name or gid."},
        "contains": {
            "type": "list",
            "format": "regex",
            "elements": "str",
            "default": [],
            "description": "Regular expressions that must all be found in the contents "
            "(re.search, multiline: ^ and $ match at line boundaries).",
        },
        "not_contains": {
            "type": "list",
            "format": "regex",
            "elements": "str",
            "default": [],
            "description": "Regular expressions that must not be found in the contents.",
        },
        "sha256": {
            "type": "str",
            "description": "Expected SHA-256 of the whole contents, in hex.",
        },
        "max_read": {
            "type": "size",
            "default": "1MB",
            "description": "How much of the file contains/not_contains search.",
        },
    },
    "measurements": {
        "age": {"unit": "s", "description": "Seconds since the last modification."},
        "exists": {"unit": "", "flag": True, "description": "1 when the path exists, else 0."},
        "size": {"unit": "B", "description": "Size in bytes."},
        "entries": {"unit": "", "description": "Entries in a directory (directories only)."},
    },
    "default_metric": "age",
    "facts": {
        "type": "link, file, directory, fifo, socket, block device or character device (of the "
        "path itself, not following a link).",
        "mode": "Permission bits in octal, e.g. 0644 (of the target when following a link).",
        "owner": "Owner's user name (the uid when it has none); of the target of a link.",
        "group": "Group name (the gid when it has none).",
        "uid": "Owner's user id.",
        "gid": "Group id.",
        "mtime": "Modification time, UTC, ISO 8601.",
        "link_target": "For a symbolic link: what it points to.",
        "dangling": "For a symbolic link: true when its target does not exist.",
        "target_type": "For a symbolic link to an existing file: the target's type.",
        "contents_truncated": "With contains / not_contains: true when only the first "
        "max_read bytes were searched.",
        "sha256": "With sha256: the file's actual SHA-256 digest.",
    },
}

EXAMPLES = """
- name: nightly backup is fresh
  file: /var/backups/db/latest.sql.gz
  warn: 93600
  crit: 180000

- name: shadow file is locked down
  file: {path: /etc/shadow, type: file, mode: "0640", owner: root, group: shadow}
  become: true

- name: maintenance flag is not left behind
  file: {path: /var/www/app/MAINTENANCE, exists: false}

- name: sshd refuses passwords
  file:
    path: /etc/ssh/sshd_config
    contains: ['^\\\\s*PasswordAuthentication\\\\s+no\\\\b']
    not_contains: ['^\\\\s*PermitRootLogin\\\\s+yes\\\\b']

- name: outgoing mail spool is draining
  file: {path: /var/spool/postfix/deferred, type: directory}
  metric: entries
  warn: 500
"""

HASH_CHUNK = 1048576
BECOME_HINT = "run the check with become: true, or make it readable by the SSH user"


# --------------------------------------------------------------------------------- reading


def _lstat(path):
    """os.lstat, None when the path does not exist."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    except PermissionError:
        raise RuntimeError(
            "cannot look at %s: permission denied; %s" % (path, BECOME_HINT)
        ) from None


def _target_stat(path, link_stat):
    """Status of what the path points to, or None for a dangling symbolic link."""
    if not stat.S_ISLNK(link_stat.st_mode):
        return link_stat
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise RuntimeError(
            "cannot follow %s: permission denied; %s" % (path, BECOME_HINT)
        ) from None


def _read_head(path, limit):
    """(first `limit` bytes decoded as UTF-8, whether there was more)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except PermissionError:
        raise RuntimeError("cannot read %s: permission denied; %s" % (path, BECOME_HINT)) from None
    return data[:limit].decode("utf-8", "replace"), len(data) > limit


def _sha256(path, deadline):
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
                digest.update(chunk)
                if time.monotonic() > deadline:
                    raise RuntimeError("timed out hashing %s" % path)
    except PermissionError:
        raise RuntimeError("cannot read %s: permission denied; %s" % (path, BECOME_HINT)) from None
    return digest.hexdigest()


def _count_entries(path):
    try:
        return len(os.listdir(path))
    except OSError:
        return None


# ------------------------------------------------------------------------------- describing


def kind_of(mode):
    """The type word for a stat mode, as facts and failures name it."""
    kinds = (
        (stat.S_ISLNK, "link"),
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISCHR, "character device"),
    )
    for test, name in kinds:
        if test(mode):
            return name
    return "unknown"


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def parse_mode(value):
    """Permission bits from '0644', '644', '2775' or a number (YAML's 0644 is already 420)."""
    if isinstance(value, bool):
        raise ValueError("mode: expected an octal string such as '0644', got %r" % value)
    if isinstance(value, int):
        bits = value
    else:
        text = str(value).strip()
        if not re.match(r"^0?[0-7]{3,4}$", text) and not re.match(r"^0o[0-7]{3,4}$", text):
            raise ValueError("mode: expected an octal string such as '0644', got %r" % value)
        bits = int(text.replace("0o", ""), 8)
    if not 0 <= bits <= 0o7777:
        raise ValueError("mode: %r is not a permission mode (write it like '0644')" % value)
    return bits


# ------------------------------------------------------------------------------- expectations


def _type_failures(wanted, link_stat, target_stat):
    if wanted == "any":
        return []
    if wanted == "link":
        actual = kind_of(link_stat.st_mode)
    elif target_stat is None:
        actual = "dangling link"
    else:
        actual = kind_of(target_stat.st_mode)
    if actual == wanted:
        return []
    return ["is a %s, expected a %s" % (actual, wanted)]


def _owner_failures(args, st):
    failures = []
    owner = args.get("owner")
    if owner not in (None, "") and str(owner) not in (str(st.st_uid), _user_name(st.st_uid)):
        failures.append("owner is %s, expected %s" % (_user_name(st.st_uid), owner))
    group = args.get("group")
    if group not in (None, "") and str(group) not in (str(st.st_gid), _group_name(st.st_gid)):
        failures.append("group is %s, expected %s" % (_group_name(st.st_gid), group))
    return failures


def _mode_failures(args, st):
    if args.get("mode") in (None, ""):
        return []
    wanted = parse_mode(args["mode"])
    actual = stat.S_IMODE(st.st_mode)
    if actual == wanted:
        return []
    return ["mode is %04o, expected %04o" % (actual, wanted)]


class Inspection(object):
    """What one look at an existing path found."""

    def __init__(self, path, link_stat, target_stat):
        self.path = path
        self.link_stat = link_stat
        self.target_stat = target_stat
        self.failures = []
        self.facts = {}

    @property
    def st(self):
        return self.target_stat or self.link_stat

    @property
    def is_regular_file(self):
        return self.target_stat is not None and stat.S_ISREG(self.target_stat.st_mode)

    def describe(self):
        st = self.st
        self.facts.update(
            {
                "type": kind_of(self.link_stat.st_mode),
                "mode": "%04o" % stat.S_IMODE(st.st_mode),
                "owner": _user_name(st.st_uid),
                "group": _group_name(st.st_gid),
                "uid": st.st_uid,
                "gid": st.st_gid,
                "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
            }
        )
        if stat.S_ISLNK(self.link_stat.st_mode):
            self.facts["link_target"] = os.readlink(self.path)
            self.facts["dangling"] = self.target_stat is None
            if self.target_stat is not None:
                self.facts["target_type"] = kind_of(self.target_stat.st_mode)

    def check_contents(self, args, deadline):
        must = patterns.compile_option(args, "contains")
        must_not = patterns.compile_option(args, "not_contains")
        if not (must or must_not or args.get("sha256")):
            return
        if not self.is_regular_file:
            self.failures.append("contents cannot be checked: not a regular file")
            return
        if must or must_not:
            text, truncated = _read_head(self.path, args["max_read"])
            self.facts["contents_truncated"] = truncated
            self.failures += patterns.failures("contents", text, must, must_not, plural=True)
        if args.get("sha256"):
            actual = _sha256(self.path, deadline)
            self.facts["sha256"] = actual
            if actual != str(args["sha256"]).strip().lower():
                self.failures.append("sha256 is %s, expected %s" % (actual, args["sha256"]))

    def measurements(self):
        st = self.st
        values = {"exists": 1, "size": st.st_size, "age": time.time() - st.st_mtime}
        if self.target_stat is not None and stat.S_ISDIR(self.target_stat.st_mode):
            entries = _count_entries(self.path)
            if entries is not None:
                values["entries"] = entries
        return values


def _human_age(seconds):
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return "%d%s" % (seconds // size, unit)
    return "%ds" % seconds


def _absent(args, path):
    if args["exists"]:
        failures = ["%s does not exist" % path]
        message = failures[0]
    else:
        failures = []
        message = "%s is absent, as expected" % path
    return {"measurements": {"exists": 0}, "facts": {}, "failures": failures, "message": message}


def run(args, ctx):
    path = str(args["path"])
    if args.get("mode") not in (None, ""):
        parse_mode(args["mode"])  # a malformed mode is a playbook error even when absent
    link_stat = _lstat(path)
    if link_stat is None:
        return _absent(args, path)
    if not args["exists"]:
        message = "%s exists but must not" % path
        return {
            "measurements": {"exists": 1},
            "facts": {},
            "failures": [message],
            "message": message,
        }
    found = Inspection(path, link_stat, _target_stat(path, link_stat))
    found.describe()
    found.failures += _type_failures(args["type"], link_stat, found.target_stat)
    found.failures += _mode_failures(args, found.st)
    found.failures += _owner_failures(args, found.st)
    found.check_contents(args, time.monotonic() + ctx.remaining())
    measurements = found.measurements()
    facts = found.facts
    summary = "%s: %s %s %s:%s, %d B, modified %s ago" % (
        path,
        facts["type"],
        facts["mode"],
        facts["owner"],
        facts["group"],
        measurements["size"],
        _human_age(measurements["age"]),
    )
    return {
        "measurements": measurements,
        "facts": facts,
        "failures": found.failures,
        "message": summary + (": " + "; ".join(found.failures) if found.failures else ""),
    }
