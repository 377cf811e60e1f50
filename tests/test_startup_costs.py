"""What keeps a run's start-up cheap, and that the cheap paths behave exactly as the full ones:
no Jinja2 without a template, paramiko without importlib.metadata or invoke, the plain
terminal table without rich (laid out exactly as rich lays it out)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from checkrunner.transport.paramiko_import import dist_info_version, versions_from_dist_info

REPO = Path(__file__).resolve().parent.parent


def run_python(code: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# --- Jinja2 only for templates ------------------------------------------------------------

LIST_HOSTS_AND_PRINT_MODULES = """
    import contextlib, io, sys
    from checkrunner.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main([{playbook!r}, "-i", {inventory!r}, "--list-hosts"])
    print(code, "jinja2" in sys.modules)
"""


def write_playbook(tmp_path: Path, url: str) -> tuple[Path, Path]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- name: p\n  hosts: all\n  checks:\n"
        "    - name: load\n      load: {}\n"
        f"    - name: web\n      http: {{url: {url!r}}}\n"
    )
    inventory = tmp_path / "inv.yml"
    inventory.write_text("all:\n  hosts:\n    a: {ansible_connection: local}\n")
    return playbook, inventory


@pytest.mark.parametrize(
    ("url", "imports_jinja"),
    [("http://127.0.0.1:8080/health", False), ("http://{{ inventory_hostname }}:8080/", True)],
)
def test_jinja2_is_imported_only_for_a_template(tmp_path, url, imports_jinja):
    playbook, inventory = write_playbook(tmp_path, url)
    code = LIST_HOSTS_AND_PRINT_MODULES.format(playbook=str(playbook), inventory=str(inventory))
    assert run_python(code, cwd=tmp_path) == f"0 {imports_jinja}"


def test_receiver_docs_are_imported_only_by_checkrun_doc(tmp_path):
    """`checkrun doc` documents receivers from their registry; a run without receivers never
    imports it (nor any of alerting)."""
    playbook, inventory = write_playbook(tmp_path, "http://127.0.0.1:8080/health")
    out = run_python(
        f"""
        import contextlib, io, sys
        from checkrunner.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            main([{str(playbook)!r}, "-i", {str(inventory)!r}, "--list-hosts"])
        print("checkrunner.alerting" in sys.modules)
        with contextlib.redirect_stdout(io.StringIO()):
            main(["doc", "wecom"])
        print("checkrunner.alerting.receivers.wecom" in sys.modules)
        """,
        cwd=tmp_path,
    )
    assert out.split() == ["False", "True"]


# --- paramiko without importlib.metadata and invoke ---------------------------------------


def test_paramiko_is_imported_without_importlib_metadata_and_has_its_real_version():
    out = run_python(
        """
        import sys
        from checkrunner.transport import Transports
        from checkrunner.transport.ssh_config import SSHOptions
        class Host: connection = 'ssh'; name = 'h'
        Transports(SSHOptions(ssh_config='none')).for_host(Host())
        import paramiko
        loaded = 'importlib.metadata' in sys.modules
        from importlib import metadata
        print(loaded, type(metadata).__name__, paramiko.__version__ == metadata.version('paramiko'))
        """
    )
    assert out == "False module True"


def test_dist_info_version_agrees_with_importlib_metadata():
    from importlib import metadata

    for name in ("paramiko", "PyYAML", "pyyaml", "jinja2", "rich", "cryptography"):
        found = dist_info_version(name)
        assert found is None or found == metadata.version(name), name
    assert dist_info_version("paramiko") is not None  # the shim does its job here
    assert dist_info_version("no-such-distribution-here") is None


def test_the_metadata_shim_hands_everything_else_to_the_real_module():
    out = run_python(
        """
        import sys
        from checkrunner.transport.paramiko_import import versions_from_dist_info
        with versions_from_dist_info('paramiko'):
            from importlib import metadata
            shim = sys.modules['importlib.metadata']
            version = metadata.version('paramiko')
            other = metadata.version('rich')            # not known to the shim: the real one
            dist = metadata.distribution('paramiko')    # any other name: the real module
            real = sys.modules['importlib.metadata']
        print(version == dist.version, other != '', real is not shim, type(real).__name__)
        print(sys.modules['importlib.metadata'] is real)
        """
    )
    assert out.splitlines() == ["True True True module", "True"]


def test_the_metadata_shim_is_not_used_once_importlib_metadata_is_loaded():
    import importlib.metadata

    with versions_from_dist_info("paramiko"):
        assert sys.modules["importlib.metadata"] is importlib.metadata
    assert sys.modules["importlib.metadata"] is importlib.metadata


def test_dist_info_version_gives_up_on_anything_unusual(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "demo_pkg-1.0.dist-info").mkdir(parents=True)
    (site / "demo_pkg-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0.post1\n\nVersion: 9\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(site)])
    assert dist_info_version("demo-pkg") == "1.0.post1"
    assert dist_info_version("demo_pkg") == "1.0.post1"
    (site / "demo_pkg-2.0.dist-info").mkdir()  # two candidates in one directory
    assert dist_info_version("demo-pkg") is None
    egg = tmp_path / "egg"
    (egg / "demo_pkg.egg-info").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", [str(egg), str(site)])
    assert dist_info_version("demo-pkg") is None  # an egg first: importlib.metadata decides
    archive = tmp_path / "lib.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    monkeypatch.setattr(sys, "path", [str(archive), str(site)])
    assert dist_info_version("demo-pkg") is None


# --- one watchdog thread for every ssh session ---------------------------------------------


def test_one_watchdog_thread_expires_sessions_in_deadline_order():
    import threading
    import time

    from checkrunner.transport.ssh import _Watchdog

    expired: list[str] = []
    done = threading.Event()

    class Session:
        def __init__(self, name: str):
            self.name = name

        def expire(self) -> None:
            expired.append(self.name)
            if len(expired) == 3:
                done.set()
            if self.name == "past":
                raise OSError("a close that fails must not stop the watchdog")

    watchdog = _Watchdog()
    now = time.monotonic()
    watchdog.watch(Session("late"), now + 0.6)
    cancelled = watchdog.watch(Session("cancelled"), now + 0.2)
    watchdog.watch(Session("early"), now + 0.3)  # earlier than the one being waited for
    watchdog.watch(Session("past"), now - 1)
    watchdog.cancel(cancelled)
    assert done.wait(5)
    assert expired == ["past", "early", "late"]
    assert sum(t.name == "checkrun-ssh-watchdog" for t in threading.enumerate()) >= 1


# --- host names reach getaddrinfo as the idna codec would pass them ------------------------


@pytest.mark.parametrize(
    "hostname",
    ["127.0.0.1", "localhost", "web1.example.com.", "", "a..b", ".a", "a.", "x" * 63, "x" * 64,
     "a." + "x" * 64, "x" * 64 + ".", "::1", "fe80::1%eth0", "ünï.example", "UPPER.Case"],
)  # fmt: skip
def test_ascii_host_names_skip_the_idna_codec_with_the_same_result(hostname):
    from checkrunner.transport.ssh_connect import _ascii_host

    def idna(name: str) -> bytes | str:
        try:
            return name.encode("idna")
        except UnicodeError as exc:
            return f"UnicodeError: {exc}"

    given = _ascii_host(hostname)
    assert (given if isinstance(given, bytes) else idna(given)) == idna(hostname)


# --- `checkrun history` without the run's layers ------------------------------------------


def test_checkrun_history_starts_without_the_layers_of_a_run(tmp_path):
    """It reads the state database only: no app, no playbook/inventory/transport layer, no
    YAML or Jinja2 (the bulk of a run's start-up)."""
    from checkrunner.masking import Masker
    from checkrunner.plan import Plan
    from checkrunner.results import CheckResult, HostResult, RunResult, Status
    from checkrunner.serve.rounds import LoadedConfig, RoundRecorder
    from checkrunner.state.db import open_state

    state = tmp_path / "s.db"
    db = open_state(str(state))
    check = CheckResult("web", "p", "load", "load", Status.OK, metric="load1", value=0.5)
    check.measurements = {"load1": 0.5}
    config = LoadedConfig(plan=Plan(playbook="p.yml", hosts=[]), receivers=None, masker=Masker([]))
    RoundRecorder(db, config).record(
        RunResult("p.yml", 0.0, hosts=[HostResult("web", checks=[check])])
    )
    db.close()
    out = run_python(
        f"""
        import contextlib, io, sys
        from checkrunner.cli import main
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            code = main(["history", "--host", "web", "--check", "load", "--state", {str(state)!r}])
        heavy = ("checkrunner.app", "checkrunner.config.loader", "checkrunner.inventory",
                 "checkrunner.transport.local", "yaml", "jinja2")
        print(code, "0.5" in shown.getvalue(), [name for name in heavy if name in sys.modules])
        """
    )
    assert out == "0 True []"


# --- psycopg only for a PostgreSQL state --------------------------------------------------


def test_psycopg_is_imported_only_for_a_postgresql_state(tmp_path):
    """A run and `checkrun history` on a SQLite state never import the PostgreSQL driver;
    a postgresql:// state does (even when it cannot connect: bad input, exit 5)."""
    playbook, inventory = write_playbook(tmp_path, "http://127.0.0.1:1/health")
    state = tmp_path / "state.db"
    out = run_python(
        f"""
        import contextlib, io, sys
        from checkrunner.cli import main
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            main([{str(playbook)!r}, "-i", {str(inventory)!r}, "--state", {str(state)!r}])
            main(["history", "--state", {str(state)!r}, "--host", "a", "--check", "load"])
        print("psycopg" in sys.modules)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(["history", "--state", "postgresql://nobody@127.0.0.1:1/none",
                         "--host", "a", "--check", "load"])
        print(code, "psycopg" in sys.modules)
        """,
        cwd=tmp_path,
    )
    assert out.split() == ["False", "5", "True"]


# --- `checkrun merge` without the layers of a run ------------------------------------------


def test_checkrun_merge_starts_without_the_layers_of_a_run(tmp_path):
    """It reads JSON reports and writes reports: no app, playbook, inventory, transport,
    state, YAML or Jinja2; and no rich for a report that is not the terminal's."""
    from checkrunner.report.json_report import JsonReporter
    from checkrunner.results import CheckResult, HostResult, RunResult, Status
    from checkrunner.shards import ShardInfo

    check = CheckResult("web", "p", "load", "load", Status.OK, metric="load1", value=0.5)
    run = RunResult("p.yml", 1.0, 2.0, hosts=[HostResult("web", checks=[check])])
    run.shard = ShardInfo(1, 1, [("web", 1)])
    shard = tmp_path / "shard.json"
    shard.write_text(JsonReporter(None).render(run))
    out = run_python(
        f"""
        import contextlib, io, sys
        from checkrunner.cli import main
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            code = main(["merge", {str(shard)!r}, "-r", "json"])
        heavy = ("checkrunner.app", "checkrunner.config.loader", "checkrunner.inventory",
                 "checkrunner.transport.local", "checkrunner.state.db", "yaml", "jinja2",
                 "rich")
        print(code, '"value": 0.5' in shown.getvalue(), [n for n in heavy if n in sys.modules])
        """
    )
    assert out == "0 True []"
