"""The log module on real files: cursors threaded from run to run as the control node does,
every rotation style (rename, gzip, dateext, copytruncate, truncate, replace, inode reuse,
several rotations between runs, late writers), max_bytes, globs, encodings, samples, and
the Python and grep prefilters against a naive per-line reference."""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from pathlib import Path

import pytest

import checkrunner.modules.log as log
from checkrunner import catalog
from checkrunner.modules._batch import run_batch
from checkrunner.modules._utils import logfiles, logmatch, logread, logrotation

PATTERNS = [
    {"name": "errors", "regex": r"ERROR (?P<code>E\d+)"},
    {"name": "warnings", "keyword": "WARN"},
]


class Ctx:
    timeout = 30.0
    psutil = None
    proc_root = "/proc"

    def remaining(self):
        return 30.0


class Follower:
    """Runs the module on one path and keeps the cursors between runs, like the state DB."""

    def __init__(self, path, **options):
        self.options = {"path": str(path), "patterns": PATTERNS, **options}
        self.cursors = {}
        self.result = None

    def run(self, **changes):
        args = {**self.options, **changes, "_cursors": json.loads(json.dumps(self.cursors))}
        self.result = log.run(args, Ctx())
        json.dumps(self.result)  # the result travels as JSON
        self.cursors = self.result["state"]["cursors"]
        return self.result

    def counts(self, **changes):
        m = self.run(**changes)["measurements"]
        return (m["errors"], m["warnings"], m["lines"])

    @property
    def events(self):
        return [(Path(f["path"]).name, f["event"]) for f in self.result["facts"]["files"]]

    @property
    def notes(self):
        return " | ".join(self.result["facts"]["notes"])


def write(path, text, mode="a"):
    with open(path, mode + "b") as handle:
        handle.write(text.encode() if isinstance(text, str) else text)


def lines(count, kind="ERROR", first=0):
    return "".join(
        f"2026-11-27T10:00:00Z {kind} E{first + i} something happened\n" for i in range(count)
    )


def bump_mtime(path, seconds=1.0):
    st = os.stat(path)
    os.utime(path, (st.st_atime, st.st_mtime + seconds))


# ------------------------------------------------------------------------------ basics


def test_first_run_starts_at_the_end_then_counts_what_is_appended(tmp_path):
    app = tmp_path / "app.log"
    write(app, lines(5) + lines(2, "WARN"))
    follow = Follower(app)
    assert follow.counts() == (0, 0, 0)
    assert follow.events == [("app.log", "new")]
    write(app, lines(3) + lines(1, "WARN") + "INFO fine\n")
    assert follow.counts() == (3, 1, 5)
    assert follow.events == [("app.log", "appended")]
    assert follow.counts() == (0, 0, 0)
    assert follow.events == [("app.log", "unchanged")]
    m = follow.result["measurements"]
    assert m["matches"] == 0 and m["bytes"] == 0 and m["pending"] == 0 and m["files"] == 1


def test_first_run_from_the_beginning(tmp_path):
    app = tmp_path / "app.log"
    write(app, lines(5) + lines(2, "WARN"))
    follow = Follower(app, start="beginning")
    assert follow.counts() == (5, 2, 7)
    r = follow.result
    assert r["measurements"]["matches"] == 7
    assert r["measurements"]["bytes"] == app.stat().st_size
    assert r["message"].startswith("errors=5 warnings=2 in 7 new lines (1 file, ")
    assert "status" not in r


def test_start_end_begins_after_the_last_complete_line(tmp_path):
    app = tmp_path / "app.log"
    write(app, lines(2) + "2026 ERROR E9 half")
    follow = Follower(app)
    assert follow.counts() == (0, 0, 0)
    write(app, " written\n")
    assert follow.counts() == (1, 0, 1)  # the line being written at the first look counts


def test_partial_last_line_is_counted_once_complete(tmp_path):
    app = tmp_path / "app.log"
    write(app, "")
    follow = Follower(app)
    follow.run()
    write(app, "ERROR E1 one\nERROR E2 tw")
    assert follow.counts() == (1, 0, 1)
    offset = follow.cursors[str(app)]["offset"]
    assert offset == len("ERROR E1 one\n")
    assert follow.counts() == (0, 0, 0)
    write(app, "o\nWARN\n")
    assert follow.counts() == (1, 1, 2)
    sample = follow.result["facts"]["samples"]["errors"]["first"][0]
    assert sample["line"] == "ERROR E2 two" and sample["fields"] == {"code": "E2"}


def test_measurements_facts_and_message(tmp_path):
    app = tmp_path / "app.log"
    write(app, "")
    follow = Follower(app)
    follow.run()
    write(app, lines(3) + lines(2, "WARN") + "2026 ERROR E7 and WARN both\n")
    r = follow.run()
    assert r["measurements"] == {
        "matches": 6,
        "lines": 6,
        "bytes": app.stat().st_size,
        "pending": 0,
        "files": 1,
        "errors": 4,
        "warnings": 3,
    }
    assert r["facts"]["files"] == [
        {
            "path": str(app),
            "from": 0,
            "to": app.stat().st_size,
            "bytes": app.stat().st_size,
            "event": "appended",
        }
    ]
    assert r["message"] == f"errors=4 warnings=3 in 6 new lines (1 file, {app.stat().st_size} B)"
    cursor = r["state"]["cursors"][str(app)]
    assert set(cursor) >= {
        "dev",
        "ino",
        "size",
        "offset",
        "head",
        "head_len",
        "tail",
        "tail_len",
        "mtime",
        "rotated",
    }
    assert cursor["offset"] == app.stat().st_size and cursor["rotated"] == []


# ---------------------------------------------------------------------------- rotation


@pytest.fixture
def running(tmp_path):
    """app.log followed since a first run, with 2 errors appended since."""
    app = tmp_path / "app.log"
    write(app, lines(4))
    follow = Follower(app)
    follow.run()
    write(app, lines(2, first=100))
    return app, follow


def test_rename_and_create(running):
    app, follow = running
    os.rename(app, app.with_name("app.log.1"))
    write(app, lines(3, first=200) + lines(1, "WARN"))
    assert follow.counts() == (5, 1, 6)
    assert follow.events == [("app.log.1", "rotated"), ("app.log", "rotated")]
    assert "app.log was rotated: read 2 lines left in" in follow.notes
    assert follow.counts() == (0, 0, 0)  # the renamed file is checked once more, then forgotten
    assert follow.cursors[str(app)]["rotated"] == []
    assert follow.counts() == (0, 0, 0)


def test_rename_then_gzip(running):
    app, follow = running
    rotated = app.with_name("app.log.1.gz")
    with gzip.open(rotated, "wb") as out:
        out.write(app.read_bytes())
    old = app.stat().st_ino
    app.unlink()
    write(app, lines(1, first=300))
    # a new file that reuses the inode looks like copytruncate: the same counts either way
    event = "copytruncated" if app.stat().st_ino == old else "rotated"
    assert follow.counts() == (3, 0, 3)
    assert follow.events == [("app.log.1.gz", event), ("app.log", event)]
    assert follow.cursors[str(app)]["rotated"] == []  # a compressed file does not grow
    assert follow.counts() == (0, 0, 0)


def test_gzip_detected_by_magic_not_by_name(running):
    app, follow = running
    (app.with_name("app.log-20261127")).write_bytes(gzip.compress(app.read_bytes()))
    app.unlink()
    write(app, lines(1, first=300))
    assert follow.counts() == (3, 0, 3)


@pytest.mark.parametrize(
    "name", ["app.log-20261127", "app-20261127.log", "app.log_2026-11-27", "app-20261127.log.gz"]
)
def test_dated_rotations(running, name):
    app, follow = running
    target = app.with_name(name)
    if name.endswith(".gz"):
        target.write_bytes(gzip.compress(app.read_bytes()))
        app.unlink()
    else:
        os.rename(app, target)
    write(app, lines(1, first=300))
    assert follow.counts() == (3, 0, 3)
    assert follow.events[0][0] == name
    if not name.endswith(".gz"):  # (gzip then create may reuse the inode: see above)
        assert follow.events[0][1] == "rotated"


@pytest.mark.parametrize("compress", [False, True])
def test_copytruncate(running, compress):
    app, follow = running
    ino = app.stat().st_ino
    data = app.read_bytes()
    if compress:
        app.with_name("app.log.1.gz").write_bytes(gzip.compress(data))
    else:
        app.with_name("app.log.1").write_bytes(data)
    with open(app, "r+b") as handle:
        handle.truncate(0)
    write(app, lines(1, first=300) + lines(1, "WARN"))
    assert app.stat().st_ino == ino
    assert follow.counts() == (3, 1, 4)
    assert follow.events[-1] == ("app.log", "copytruncated")
    assert "copied and truncated: read 2 lines left in" in follow.notes
    assert follow.counts() == (0, 0, 0)


def test_copytruncate_after_the_file_regrew_past_the_old_offset(running):
    """A size check alone would miss this (promtail loki#924): the tail hash does not."""
    app, follow = running
    app.with_name("app.log.1").write_bytes(app.read_bytes())
    with open(app, "r+b") as handle:
        handle.truncate(0)
    write(app, lines(30, first=300))
    assert follow.counts() == (32, 0, 32)


def test_truncate_in_place_without_a_copy(running):
    app, follow = running
    with open(app, "r+b") as handle:
        handle.truncate(0)
    write(app, lines(1, first=300))
    assert follow.counts() == (1, 0, 1)  # the 2 lines before the truncation are gone
    assert follow.events == [("app.log", "truncated")]
    assert "truncated in place" in follow.notes


def test_delete_and_recreate(running):
    app, follow = running
    os.link(app, app.with_name("keep"))  # holds the old inode so it cannot be reused
    app.unlink()
    write(app, lines(3, first=300))
    assert follow.counts() == (3, 0, 3)
    assert follow.events == [("app.log", "replaced")]
    assert "replaced and the old file was not found" in follow.notes


def test_new_file_reusing_the_inode_is_not_the_old_one(tmp_path):
    app = tmp_path / "app.log"
    write(app, lines(40))
    follow = Follower(app)
    follow.run()
    old = app.stat().st_ino
    app.unlink()
    write(app, lines(50, first=1000))  # longer than the old offset, other contents
    reused = app.stat().st_ino == old
    assert follow.counts() == (50, 0, 50)
    assert follow.events == [("app.log", "truncated" if reused else "replaced")]


def test_two_rotations_between_runs(running):
    app, follow = running
    one, two = app.with_name("app.log.1"), app.with_name("app.log.2")
    os.rename(app, one)
    write(app, lines(4, first=200))
    bump_mtime(app)
    os.rename(one, two)
    os.rename(app, one)
    write(app, lines(1, first=300) + lines(1, "WARN"))
    bump_mtime(app, 2)
    assert follow.counts() == (7, 1, 8)
    assert follow.events == [
        ("app.log.2", "rotated"),
        ("app.log.1", "rotated"),
        ("app.log", "rotated"),
    ]
    assert "rotated more than once" in follow.notes
    assert follow.counts() == (0, 0, 0)


def test_two_rotations_with_compression(running):
    app, follow = running
    old = app.with_name("app.log.1.gz")
    old.write_bytes(gzip.compress(b"ERROR E1 an older generation, read long ago\n"))
    os.utime(old, (time.time() - 86400, time.time() - 86400))
    two = app.with_name("app.log.2.gz")
    shutil.move(old, two)
    old.write_bytes(gzip.compress(app.read_bytes()))  # generation 1: what we followed
    app.unlink()
    two, three = app.with_name("app.log.2.gz"), app.with_name("app.log.3.gz")
    shutil.move(two, three)
    shutil.move(old, two)
    old.write_bytes(gzip.compress(lines(4, first=200).encode()))  # generation 0: never seen
    bump_mtime(old, 5)
    write(app, lines(1, first=300))
    bump_mtime(app, 6)
    assert follow.counts() == (7, 0, 7)  # 2 left in .2.gz + 4 in .1.gz + 1; never .3.gz


def test_late_writes_into_the_renamed_file_are_read_once(running):
    app, follow = running
    one = app.with_name("app.log.1")
    os.rename(app, one)
    write(app, lines(1, first=300))
    assert follow.counts() == (3, 0, 3)
    write(one, lines(2, first=400))  # the writer reopened late
    assert follow.counts() == (2, 0, 2)
    assert "grew after it was rotated: read 2 lines more" in follow.notes
    rotated = follow.cursors[str(app)]["rotated"]
    assert [Path(r["path"]).name for r in rotated] == ["app.log.1"]
    assert follow.counts() == (0, 0, 0)
    assert follow.cursors[str(app)]["rotated"] == []
    write(one, lines(5, first=500))  # no longer followed: never counted twice either
    assert follow.counts() == (0, 0, 0)


def test_late_writes_after_the_renamed_file_was_renamed_again(running):
    app, follow = running
    one, two = app.with_name("app.log.1"), app.with_name("app.log.2")
    os.rename(app, one)
    write(app, lines(1, first=300))
    assert follow.counts() == (3, 0, 3)
    write(one, lines(1, first=400))
    os.rename(one, two)
    assert follow.counts() == (1, 0, 1)


def test_missing_literal_path_keeps_the_cursor(running):
    """Rotated but not yet recreated: could not check; once it is back nothing is lost."""
    app, follow = running
    os.rename(app, app.with_name("app.log.1"))
    with pytest.raises(RuntimeError, match="no such file: .*app.log"):
        follow.run()  # the control node keeps the old cursors
    write(app, lines(1, first=300))
    assert follow.counts() == (3, 0, 3)


def test_missing_file_on_the_first_run(tmp_path):
    with pytest.raises(RuntimeError, match="no such file"):
        Follower(tmp_path / "nope.log").run()


# ------------------------------------------------------------------------ reading limits


def test_max_bytes_leaves_the_rest_for_the_next_runs(tmp_path):
    app = tmp_path / "app.log"
    write(app, "")
    follow = Follower(app, max_bytes=1000)
    follow.run()
    body = lines(40)
    write(app, body)
    total = len(body)
    seen = 0
    runs = 0
    while True:
        r = follow.run()
        runs += 1
        m = r["measurements"]
        assert m["bytes"] <= 1000
        seen += m["errors"]
        if not m["pending"]:
            break
        assert m["pending"] == total - follow.cursors[str(app)]["offset"]
        assert "pending (max_bytes)" in r["message"]
    assert seen == 40 and runs == -(-total // 1000) or runs == total // 1000 + 1
    assert follow.cursors[str(app)]["offset"] == total


def test_a_line_longer_than_max_bytes_counts_as_one(tmp_path):
    app = tmp_path / "app.log"
    write(app, "")
    follow = Follower(app, max_bytes=100)
    follow.run()
    write(app, "ERROR E1 " + "x" * 250 + "\nWARN short\n")
    assert follow.counts() == (1, 0, 1)  # the first 100 bytes, as one (overlong) line
    assert follow.result["measurements"]["pending"] == 260 + 11 - 100
    assert follow.counts() == (0, 0, 1)  # the next 100 bytes
    assert follow.counts() == (0, 1, 2)  # its last 60 bytes with the newline, and WARN
    assert follow.counts() == (0, 0, 0)


def test_max_bytes_is_shared_by_all_files_of_a_glob(tmp_path):
    for name in ("a.log", "b.log"):
        write(tmp_path / name, "")
    follow = Follower(tmp_path / "*.log", max_bytes=300)
    follow.run()
    for name in ("a.log", "b.log"):
        write(tmp_path / name, lines(5))
    total = 0
    for _ in range(6):
        m = follow.run()["measurements"]
        assert m["bytes"] <= 300
        total += m["errors"]
    assert total == 10


# --------------------------------------------------------------------------------- globs


def test_glob_with_several_files(tmp_path):
    for name in ("a.log", "b.log", "c.txt"):
        write(tmp_path / name, lines(1))
    follow = Follower(tmp_path / "*.log", start="beginning")
    assert follow.counts() == (2, 0, 2)
    assert sorted(Path(p).name for p in follow.cursors) == ["a.log", "b.log"]
    write(tmp_path / "b.log", lines(2))
    write(tmp_path / "new.log", lines(3))  # appears after the first run: read from its beginning
    assert follow.counts() == (5, 0, 5)
    assert ("new.log", "new") in follow.events
    assert follow.result["measurements"]["files"] == 3


def test_glob_skips_compressed_generations(tmp_path):
    write(tmp_path / "app.log", lines(1))
    (tmp_path / "app.log.1.gz").write_bytes(gzip.compress(lines(9).encode()))
    follow = Follower(tmp_path / "app.log*", start="beginning")
    assert follow.counts() == (1, 0, 1)


def test_file_renamed_into_the_glob_keeps_its_offset(tmp_path):
    write(tmp_path / "a.log", lines(3))
    follow = Follower(tmp_path / "*.log", start="beginning")
    assert follow.counts() == (3, 0, 3)
    write(tmp_path / "a.log", lines(2))
    os.rename(tmp_path / "a.log", tmp_path / "b.log")
    assert follow.counts() == (2, 0, 2)
    assert list(follow.cursors) == [str(tmp_path / "b.log")]


def test_glob_that_includes_the_rotated_files(tmp_path):
    """app.log* follows app.log and app.log.1 alike: rotation must not count twice."""
    app = tmp_path / "app.log"
    write(app, lines(2))
    follow = Follower(tmp_path / "app.log*", start="beginning")
    assert follow.counts() == (2, 0, 2)
    write(app, lines(1))
    os.rename(app, tmp_path / "app.log.1")
    write(app, lines(4))
    assert follow.counts() == (5, 0, 5)
    assert follow.counts() == (0, 0, 0)


def test_glob_matching_nothing_is_unknown_and_keeps_cursors(tmp_path):
    write(tmp_path / "a.log", lines(1))
    follow = Follower(tmp_path / "*.log", start="beginning")
    follow.run()
    before = follow.cursors
    os.rename(tmp_path / "a.log", tmp_path / "a.keep")
    r = follow.run()
    assert r["status"] == "UNKNOWN" and "no file matches" in r["message"]
    assert r["state"]["cursors"].keys() == before.keys()
    os.rename(tmp_path / "a.keep", tmp_path / "a.log")
    write(tmp_path / "a.log", lines(2))
    assert follow.counts() == (2, 0, 2)


NOBODY_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import checkrunner.modules.log as log  # first: the interpreter may live under /root
    os.setgid(65534); os.setuid(65534)
    class Ctx:
        timeout = 10.0; psutil = None; proc_root = "/proc"
        def remaining(self): return 10.0
    args = json.loads(sys.argv[1])
    try:
        print(json.dumps(log.run(args, Ctx())))
    except RuntimeError as exc:
        print(json.dumps({"error": str(exc)}))
    """
)


def run_unprivileged(args):
    if os.geteuid() == 0:
        out = subprocess.run(
            [sys.executable, "-c", NOBODY_SCRIPT, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(out.stdout)
    try:
        return log.run(args, Ctx())
    except RuntimeError as exc:
        return {"error": str(exc)}


def test_unreadable_file_is_unknown_and_the_others_still_count():
    directory = Path(tempfile.mkdtemp(prefix="checkrun-log-"))
    try:
        directory.chmod(0o755)
        write(directory / "open.log", lines(2))
        write(directory / "secret.log", lines(3))
        (directory / "open.log").chmod(0o644)
        (directory / "secret.log").chmod(0o000)
        args = {"path": str(directory / "*.log"), "patterns": PATTERNS, "start": "beginning"}
        r = run_unprivileged(args)
        assert r["status"] == "UNKNOWN"
        assert "secret.log" in r["message"] and "become: true" in r["message"]
        assert r["measurements"]["errors"] == 2
        assert list(r["state"]["cursors"]) == [str(directory / "open.log")]
        r = run_unprivileged({**args, "path": str(directory / "secret.log")})
        assert "permission denied" in r["error"] and "become: true" in r["error"]
    finally:
        shutil.rmtree(directory)


# ------------------------------------------------------------------------------ encodings


def test_undecodable_bytes_never_crash_and_show_as_replacement(tmp_path):
    app = tmp_path / "app.log"
    write(app, b"ERROR E1 caf\xe9 \xff\xfe broken\nWARN \xc3(\n")
    follow = Follower(app, start="beginning")
    assert follow.counts() == (1, 1, 2)
    samples = follow.result["facts"]["samples"]
    assert "\ufffd" in samples["errors"]["first"][0]["line"]
    assert samples["warnings"]["first"][0]["line"].startswith("WARN \ufffd")


def test_latin1_encoding_matches_on_bytes(tmp_path):
    app = tmp_path / "app.log"
    write(app, "ERROR E1 café\nWARN déjà\n".encode("latin-1"))
    follow = Follower(
        app,
        start="beginning",
        encoding="latin-1",
        patterns=[{"name": "errors", "keyword": "café"}, {"name": "warnings", "regex": "WARN"}],
    )
    assert follow.counts() == (1, 1, 2)
    assert follow.result["facts"]["samples"]["errors"]["first"][0]["line"] == "ERROR E1 café"


def test_utf16_takes_the_text_path(tmp_path):
    app = tmp_path / "app.log"
    write(app, "ERROR E1 é\nWARN ü\nINFO\n".encode("utf-16"))  # with a BOM
    patterns = [
        {"name": "errors", "regex": r"ERROR (?P<code>E\d+) é"},
        {"name": "warnings", "keyword": "warn", "ignore_case": True},
    ]
    follow = Follower(app, start="beginning", encoding="utf-16", patterns=patterns)
    assert follow.counts() == (1, 1, 3)
    assert follow.result["facts"]["samples"]["errors"]["first"][0] == {
        "file": str(app),
        "line": "ERROR E1 é",
        "fields": {"code": "E1"},
    }
    write(app, "ERROR E2 é\npart".encode("utf-16-le"))
    assert follow.counts() == (1, 0, 1)
    write(app, "ial WARN\n".encode("utf-16-le"))
    assert follow.counts() == (0, 1, 1)


def test_non_ascii_regex_matches_text_with_utf8(tmp_path):
    app = tmp_path / "app.log"
    write(app, "ERROR E1 Straße\nERROR E2 strasse\n")
    patterns = [
        {"name": "errors", "regex": r"Stra[ßs]+e"},
        {"name": "warnings", "keyword": "Ü", "ignore_case": True},
    ]
    follow = Follower(app, start="beginning", patterns=patterns)
    assert follow.counts() == (1, 0, 2)


# ------------------------------------------------------------------------------- matching


def test_samples_first_and_last_and_cut(tmp_path):
    app = tmp_path / "app.log"
    write(app, "".join(f"ERROR E{i} " + "x" * 30 + "\n" for i in range(10)))
    follow = Follower(app, start="beginning", samples=2, sample_length=12)
    follow.run()
    errors = follow.result["facts"]["samples"]["errors"]
    assert [s["line"] for s in errors["first"]] == ["ERROR E0 xxx", "ERROR E1 xxx"]
    assert [s["line"] for s in errors["last"]] == ["ERROR E8 xxx", "ERROR E9 xxx"]
    assert errors["last"][1]["fields"] == {"code": "E9"}
    assert "warnings" not in follow.result["facts"]["samples"]
    write(app, "ERROR E10\n")
    errors = follow.run()["facts"]["samples"]["errors"]
    assert [s["line"] for s in errors["first"]] == ["ERROR E10"] and errors["last"] == []
    write(app, "ERROR E11\n")
    assert follow.run(samples=0)["facts"]["samples"] == {}


def test_named_groups_become_fields(tmp_path):
    app = tmp_path / "app.log"
    write(app, "GET /a 200 12ms\nGET /b 503 80ms user=bob\nGET /c 500 7ms\n")
    patterns = [
        {
            "name": "server",
            "regex": r"(?P<path>/\w+) (?P<status>5\d\d) (?P<ms>\d+)ms(?: user=(?P<user>\w+))?",
        }
    ]
    follow = Follower(app, start="beginning", patterns=patterns)
    first = follow.run()["facts"]["samples"]["server"]["first"]
    assert [s["fields"] for s in first] == [
        {"path": "/b", "status": "503", "ms": "80", "user": "bob"},
        {"path": "/c", "status": "500", "ms": "7", "user": None},
    ]


def test_exclude(tmp_path):
    app = tmp_path / "app.log"
    write(app, lines(3) + "ERROR E7 healthcheck failed\nWARN healthcheck\nWARN disk\n")
    follow = Follower(app, start="beginning", exclude=["healthcheck", r"^nothing$"])
    assert follow.counts() == (3, 1, 6)
    assert follow.result["measurements"]["matches"] == 4


def test_ignore_case(tmp_path):
    app = tmp_path / "app.log"
    write(app, "error e1\nERROR E2\nError E3\nwarn\nWARN\nWaRn\n")
    patterns = [
        {"name": "errors", "regex": r"error e\d", "ignore_case": True},
        {"name": "warnings", "keyword": "Warn", "ignore_case": True},
        {"name": "exact", "keyword": "WARN"},
        {"name": "inline", "regex": r"(?i)ERROR E[12]"},
    ]
    m = Follower(app, start="beginning", patterns=patterns).run()["measurements"]
    assert (m["errors"], m["warnings"], m["exact"], m["inline"]) == (3, 3, 1, 2)


def test_keyword_is_literal_and_regex_is_not(tmp_path):
    app = tmp_path / "app.log"
    write(app, "a.b\naxb\n(x)\n")
    patterns = [
        {"name": "kw", "keyword": "a.b"},
        {"name": "rx", "regex": "a.b"},
        {"name": "paren", "keyword": "(x)"},
    ]
    m = Follower(app, start="beginning", patterns=patterns).run()["measurements"]
    assert (m["kw"], m["rx"], m["paren"], m["matches"]) == (1, 2, 1, 3)


def test_patterns_without_a_literal(tmp_path):
    app = tmp_path / "app.log"
    write(app, "2026 start\nfoo\nbar baz\nFOO\nxx 12345 yy\nend 2026\n")
    patterns = [
        {"name": "year_first", "regex": r"^\d{4} "},
        {"name": "either", "regex": r"foo|bar"},
        {"name": "digits", "regex": r"\b\d{5}\b"},
        {"name": "whole", "regex": r"\A\w+\Z"},
        {"name": "at_end", "regex": r"\d$"},
        {"name": "everything", "regex": ""},
    ]
    m = Follower(app, start="beginning", patterns=patterns).run()["measurements"]
    assert (
        m["year_first"],
        m["either"],
        m["digits"],
        m["whole"],
        m["at_end"],
        m["everything"],
    ) == (1, 2, 1, 2, 1, 6)


def test_a_regex_never_matches_across_lines(tmp_path):
    app = tmp_path / "app.log"
    write(app, "ERROR\nE1 next line\nfoo\n  bar\n")
    patterns = [
        {"name": "errors", "regex": r"ERROR\sE1"},
        {"name": "spanning", "regex": r"foo\s+bar"},
    ]
    m = Follower(app, start="beginning", patterns=patterns).run()["measurements"]
    assert (m["errors"], m["spanning"]) == (0, 0)


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        ([{"name": "errors", "regex": "ERROR ("}], "patterns: errors: invalid regular expression"),
        ([{"name": "a", "keyword": "x"}, {"name": "a", "keyword": "y"}], "used twice"),
        ([{"name": "lines", "keyword": "x"}], "is a measurement of the log module"),
        ([{"name": "9lives", "keyword": "x"}], "must look like an identifier"),
        ([{"name": "both", "keyword": "x", "regex": "y"}], "exactly one of regex or keyword"),
        ([], "at least one pattern"),
    ],
)
def test_bad_patterns(tmp_path, patterns, message):
    write(tmp_path / "app.log", "x\n")
    with pytest.raises(RuntimeError, match=message):
        Follower(tmp_path / "app.log", patterns=patterns).run()


def test_bad_exclude_and_encoding(tmp_path):
    write(tmp_path / "app.log", "x\n")
    with pytest.raises(RuntimeError, match="exclude: invalid regular expression"):
        Follower(tmp_path / "app.log", exclude=["[oops"]).run()
    with pytest.raises(RuntimeError, match="unknown encoding"):
        Follower(tmp_path / "app.log", encoding="klingon").run()


def test_required_literal_of_a_bytes_pattern_is_bytes():
    # the str cases are data: tests/fixtures/parsers/_utils.logmatch.required_literal
    assert logmatch.required_literal(rb"GET /health", False) == (b"GET /health", False)


# --------------------------------------------------------------- prefilters vs reference


WORDS = ["alpha", "beta", "gamma", "delta", "timeout", "refused", "Reset", "OOM", "disk", "full"]


def random_log(rng, count):
    out = []
    for i in range(count):
        level = rng.choice(["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR", "error"])
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6)))
        extra = rng.choice(["", "", f" code=E{rng.randint(1, 999)}", " \xe9t\xe9", f" user=u{i}"])
        out.append(f"2026-11-27 {level} [c{rng.randint(0, 9)}] {words}{extra}")
    return ("\n".join(out) + "\n").encode("utf-8", "surrogateescape")


RANDOM_PATTERNS = [
    {"name": "errors", "regex": r"ERROR \[c\d\]"},
    {"name": "timeouts", "keyword": "timeout"},
    {"name": "refused", "regex": r"refused( \w+)?", "ignore_case": True},
    {"name": "reset", "keyword": "reset", "ignore_case": True},
    {"name": "codes", "regex": r"code=(?P<code>E\d{2})\b"},
    {"name": "oom", "keyword": "OOM"},
    {"name": "disk_full", "regex": r"disk full"},
    {"name": "users", "regex": r"user=u\d*7$"},
    {"name": "gamma_beta", "regex": r"gamma beta"},
    {"name": "lower_error", "keyword": " error ["},
]


def reference(data, patterns, excludes):
    """The naive per-line loop the module must agree with."""
    compiled = []
    for p in patterns:
        flags = re.IGNORECASE if p.get("ignore_case") else 0
        source = p["regex"].encode() if "regex" in p else re.escape(p["keyword"].encode())
        compiled.append((p["name"], re.compile(source, flags)))
    excluded = [re.compile(x.encode()) for x in excludes]
    counts = {name: 0 for name, _ in compiled}
    matches = 0
    for line in data.split(b"\n")[:-1]:
        if any(x.search(line) for x in excluded):
            continue
        hit = False
        for name, rx in compiled:
            if rx.search(line):
                counts[name] += 1
                hit = True
        matches += hit
    return counts, matches


@pytest.mark.parametrize("prefilter", ["python", "grep", "auto"])
def test_prefilters_agree_with_a_per_line_reference(tmp_path, prefilter):
    if prefilter != "python" and shutil.which("grep") is None:
        pytest.skip("no grep on this machine")
    data = random_log(random.Random(20261127), 30000)
    app = tmp_path / "app.log"
    app.write_bytes(data)
    excludes = [r"beta delta", r"\[c9\]"]
    counts, matches = reference(data, RANDOM_PATTERNS, excludes)
    assert all(counts.values()), counts  # every pattern is exercised
    r = Follower(
        app, start="beginning", patterns=RANDOM_PATTERNS, exclude=excludes, prefilter=prefilter
    ).run()
    m = r["measurements"]
    assert {name: m[name] for name in counts} == counts
    assert m["matches"] == matches and m["lines"] == data.count(b"\n")
    codes = r["facts"]["samples"]["codes"]["first"]
    assert all(re.fullmatch(r"E\d\d", s["fields"]["code"]) for s in codes)


def test_grep_finds_candidates_only_and_python_decides(tmp_path, monkeypatch):
    """grep -F -i is only a superset; the Python regexes decide (no false positives)."""
    if shutil.which("grep") is None:
        pytest.skip("no grep on this machine")
    app = tmp_path / "app.log"
    app.write_bytes(b"ERROR E1\nerror e2\nERRORS\n" * 100)
    patterns = [
        {"name": "errors", "regex": r"ERROR E\d"},
        {"name": "any", "keyword": "error", "ignore_case": True},
    ]
    m = Follower(app, start="beginning", patterns=patterns, prefilter="grep").run()["measurements"]
    assert (m["errors"], m["any"], m["lines"]) == (100, 300, 300)


# ------------------------------------------------------------------------- as shipped


def test_runs_from_the_shipped_source_in_a_batch(tmp_path):
    app = tmp_path / "app.log"
    write(app, lines(3))
    args = {
        "path": str(app),
        "patterns": PATTERNS,
        "start": "beginning",
        "max_bytes": 10**6,
        "exclude": [],
        "samples": 3,
        "sample_length": 512,
        "encoding": "utf-8",
        "prefilter": "auto",
    }
    batch = {"checks": [{"id": "0.1", "module": "log", "args": args, "timeout": 10}]}
    [entry] = run_batch(catalog.batch_sources(["log"]), batch)
    assert entry["result"]["measurements"]["errors"] == 3, entry
    assert zlib.compress(catalog.get("log").source.encode())  # ships without its docs
    assert "MODULE = None" in catalog.get("log").source


PYTHON36 = next(iter(sorted(Path.home().glob(".pyenv/versions/3.6.*/bin/python3"))), None)


@pytest.mark.skipif(PYTHON36 is None, reason="no Python 3.6 interpreter on this machine")
def test_runs_with_its_shipped_helpers_on_python36(tmp_path):
    """The module and its modules/_utils helpers, as a target gets them (the compressed
    program on stdin), on the oldest Python targets may have."""
    from checkrunner.transport.answer import RESULT_MARKER
    from checkrunner.transport.payload import BOOTSTRAP, Batch, BatchCheck, build_payload

    app = tmp_path / "app.log"
    write(app, lines(3))
    args = {"path": str(app), "patterns": PATTERNS, "start": "beginning", "prefilter": "grep"}
    payload = build_payload(Batch([BatchCheck("0.1", "log", args, 10.0)]))
    done = subprocess.run(
        [str(PYTHON36), "-c", BOOTSTRAP], input=payload, capture_output=True, timeout=30
    )
    line = next(x for x in done.stdout.decode().splitlines() if x.startswith(RESULT_MARKER))
    [entry] = json.loads(line[len(RESULT_MARKER) :])["results"]
    assert entry["result"]["measurements"]["errors"] == 3, entry


# ------------------------------------------------------------------------------ more paths


def test_symlink_retargeted_to_a_new_file(tmp_path):
    """current -> app-1.log, then current -> app-2.log: the rest of app-1.log is read."""
    first, second, link = tmp_path / "app-1.log", tmp_path / "app-2.log", tmp_path / "current"
    write(first, lines(1))
    link.symlink_to(first.name)
    follow = Follower(link)
    follow.run()
    write(first, lines(2))
    write(second, lines(3) + lines(1, "WARN"))
    link.unlink()
    link.symlink_to(second.name)
    assert follow.counts() == (5, 1, 6)
    assert follow.events == [("app-1.log", "rotated"), ("current", "rotated")]


def test_max_bytes_across_a_rotation(running):
    app, follow = running
    left = len(lines(2, first=100))
    os.rename(app, app.with_name("app.log.1"))
    write(app, lines(6, first=300))
    total = left + len(lines(6, first=300))
    seen = []
    for _ in range(6):
        m = follow.run(max_bytes=150)["measurements"]
        seen.append(m["errors"])
        assert m["bytes"] <= 150
        if not m["pending"]:
            break
    assert sum(seen) == 8 and sum(follow.run()["measurements"][k] for k in ("errors", "lines")) == 0
    assert follow.cursors[str(app)]["offset"] == total - left


def test_time_limit_stops_at_a_line_and_the_rest_follows(tmp_path, monkeypatch):
    app = tmp_path / "app.log"
    write(app, "")
    follow = Follower(app)
    follow.run()
    write(app, lines(4000))

    class Clock:  # each look at the clock costs 10 ms: the module's 50 ms last 5 chunks
        now = 0.0

        def monotonic(self):
            Clock.now += 0.01
            return Clock.now

        def time(self):
            return time.time()

    class Hurried(Ctx):
        def remaining(self):
            return 0.0

    monkeypatch.setattr(logfiles, "CHUNK", 1024)
    for part in (log, logfiles, logread, logrotation):  # the log module and its helpers
        monkeypatch.setattr(part, "time", Clock())
    r = log.run({**follow.options, "_cursors": follow.cursors}, Hurried())
    m = r["measurements"]
    assert m["pending"] > 0 and "pending (time limit)" in r["message"]
    assert 0 < m["errors"] == m["lines"] < 4000
    assert r["state"]["cursors"][str(app)]["offset"] == m["bytes"]
    follow.cursors = r["state"]["cursors"]
    monkeypatch.undo()
    assert follow.counts() == (4000 - m["errors"], 0, 4000 - m["lines"])


def test_broken_grep_falls_back_to_python(tmp_path, monkeypatch):
    fake = tmp_path / "grep"
    fake.write_text("#!/bin/sh\nexit 2\n")
    fake.chmod(0o755)
    monkeypatch.setattr(log.shutil, "which", lambda name: str(fake))
    data = random_log(random.Random(7), 3000)
    app = tmp_path / "app.log"
    app.write_bytes(data)
    counts, matches = reference(data, RANDOM_PATTERNS, [])
    follow = Follower(app, start="beginning", patterns=RANDOM_PATTERNS)
    m = follow.run(prefilter="auto")["measurements"]  # 10 patterns: auto picks grep
    assert {name: m[name] for name in counts} == counts and m["matches"] == matches
    with pytest.raises(RuntimeError, match="prefilter grep: grep failed"):
        Follower(app, start="beginning", patterns=RANDOM_PATTERNS, prefilter="grep").run()


def test_malformed_cursor_is_ignored_with_a_note(tmp_path):
    app = tmp_path / "app.log"
    write(app, lines(2))
    follow = Follower(app)
    follow.cursors = {str(app): {"offset": "twelve"}}
    assert follow.counts() == (2, 0, 2)  # state exists: the file is read as new, from 0
    assert "ignored a malformed cursor" in follow.notes


def test_moved_file_is_noted(tmp_path):
    write(tmp_path / "a.log", lines(1))
    follow = Follower(tmp_path / "*.log", start="beginning")
    follow.run()
    os.rename(tmp_path / "a.log", tmp_path / "b.log")
    assert follow.counts() == (0, 0, 0)
    assert "b.log is " in follow.notes and "a.log moved" in follow.notes


def test_start_option_is_checked(tmp_path):
    write(tmp_path / "app.log", "x\n")
    with pytest.raises(RuntimeError, match="start: expected end or beginning"):
        Follower(tmp_path / "app.log", start="middle").run()


def test_symlink_whose_target_is_rotated_by_rename(tmp_path):
    target, link = tmp_path / "app.log", tmp_path / "current"
    write(target, lines(1))
    link.symlink_to(target.name)
    follow = Follower(link)
    follow.run()
    write(target, lines(2))
    os.rename(target, tmp_path / "app.log.1")
    write(target, lines(1, "WARN"))
    assert follow.counts() == (2, 1, 3)
    assert follow.events == [("app.log.1", "rotated"), ("current", "rotated")]


def test_a_link_matched_by_the_glob_is_read_once(tmp_path):
    write(tmp_path / "app-1127.log", lines(2))
    (tmp_path / "current.log").symlink_to("app-1127.log")
    os.link(tmp_path / "app-1127.log", tmp_path / "hard.log")
    follow = Follower(tmp_path / "*.log", start="beginning")
    assert follow.counts() == (2, 0, 2)
    assert "current.log is the same file as" in follow.notes
    write(tmp_path / "app-1127.log", lines(1))
    assert follow.counts() == (1, 0, 1)


def test_an_empty_file_is_not_recognised_in_an_old_generation(tmp_path):
    app, old = tmp_path / "app.log", tmp_path / "app.log.1.gz"
    old.write_bytes(gzip.compress(lines(5).encode()))
    os.utime(old, (time.time() - 86400, time.time() - 86400))
    write(app, "")
    follow = Follower(app)
    follow.run()
    os.link(app, tmp_path / "held")  # a new inode for the new file
    app.unlink()
    write(app, lines(1))
    assert follow.counts() == (1, 0, 1)  # not the 5 lines of yesterday's generation
    assert follow.events == [("app.log", "replaced")]


def test_an_empty_file_rotated_after_it_filled(tmp_path):
    app = tmp_path / "app.log"
    write(app, "")
    follow = Follower(app)
    follow.run()
    write(app, lines(2))
    data = app.read_bytes()
    os.link(app, tmp_path / "held")
    app.unlink()
    (tmp_path / "app.log.1.gz").write_bytes(gzip.compress(data))
    bump_mtime(tmp_path / "app.log.1.gz")
    write(app, lines(1))
    assert follow.counts() == (3, 0, 3)
