"""Every check module keeps the contract: stdlib plus our helpers, Python 3.6 syntax, docs and
spec inside (its facts too, checked against real runs); a batch ships only the helpers its
modules import."""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import goservice
import pytest
import yaml
from helpers import BUILTIN_MODULES
from helpers_net import (
    LOOPBACK,
    banner,
    closed_port,
    http_server,
    make_pki,
    ping_pong,
    server_tls_context,
    tcp_service,
)

from checkrunner import catalog
from checkrunner.config.normalize import normalize_args
from checkrunner.errors import Location
from checkrunner.modules._batch import CheckContext
from checkrunner.transport.payload import Batch, BatchCheck, build_payload

MODULES = catalog.module_names()
ALLOWED_THIRD_PARTY = {"psutil"}  # optional on targets, always behind a try/except ImportError
OPTION_KEYS = {"type", "default", "description", "required", "choices", "elements", "aliases"}
OPTION_KEYS |= {"min", "max", "format"}  # ranges of numbers and durations, syntax of text
# suboptions of a list of dicts (Ansible style): "options" is their argument spec
SUBOPTION_KEYS = {"options", "required_one_of", "mutually_exclusive"}


def test_all_expected_modules_exist():
    assert set(BUILTIN_MODULES) <= set(MODULES)


HELPERS = catalog.helper_names()
SHIPPED = [*MODULES, "_batch", *(f"_utils.{helper}" for helper in HELPERS)]


def shipped(name: str) -> str:
    if name == "_batch":
        return catalog.batch_runner_source()
    if name.startswith("_utils."):
        return catalog.helper_source(name.partition(".")[2])
    return catalog.get(name).source


def relative_import_target(node: ast.ImportFrom, in_helper: bool) -> set[str]:
    """The helpers a relative import names; anything else fails the contract."""
    package, _, submodule = (node.module or "").partition(".")
    if in_helper:
        assert node.level == 1 and not submodule, f"helpers import siblings only: {package}"
        return {package} if package else {alias.name for alias in node.names}
    assert node.level == 1 and package == "_utils", "modules import only ._utils helpers"
    return {submodule} if submodule else {alias.name for alias in node.names}


@pytest.mark.parametrize("name", SHIPPED)
def test_python36_syntax_and_stdlib_plus_our_helpers_only(name):
    """What runs on targets: Python 3.6 syntax, the standard library (psutil optional) and
    our own helpers, imported relatively (`from ._utils import certs`); never checkrunner,
    never another check module, never `from __future__`."""
    tree = ast.parse(shipped(name), feature_version=(3, 6))
    imported, helpers = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level:
            helpers |= relative_import_target(node, name.startswith("_utils."))
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    foreign = imported - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY
    assert not foreign, f"{name} imports non-stdlib {foreign}"
    assert "__future__" not in imported and "checkrunner" not in imported
    assert helpers <= set(HELPERS), f"{name} imports unknown helpers {helpers - set(HELPERS)}"
    if name in MODULES:
        assert helpers <= set(catalog.get(name).helpers), "run scripts/gen_module_docs.py"


@pytest.mark.parametrize("name", MODULES)
def test_metadata_is_complete(name):
    info = catalog.get(name)
    assert info.summary and len(info.summary) < 100
    assert info.description
    assert info.measurements, f"{name} declares no measurements"
    if info.default_metric is not None:
        assert info.default_metric in info.measurements
    for measurement in info.measurements.values():
        assert "unit" in measurement and measurement["description"], measurement
    check_options(name, info.options)
    if info.free_form:
        assert info.free_form in info.options
    for group in [*info.required_one_of, *info.mutually_exclusive]:
        assert set(group) <= set(info.options)
    examples = yaml.safe_load(info.examples)
    assert isinstance(examples, list) and examples, f"{name} has no EXAMPLES"
    assert all(name in example for example in examples)


@pytest.mark.parametrize("name", ["cpu", "memory", "disk", "load", "process"])
def test_system_examples_name_declared_metrics(name):
    """Their metrics are fixed (busy_cpu0, busy_cpu1... per core), unlike log pattern names
    or nagios perfdata labels."""
    info = catalog.get(name)
    for example in yaml.safe_load(info.examples):
        metric = example.get("metric", info.default_metric)
        assert metric in info.measurements or re.fullmatch(r"busy_cpu\d+", metric), metric


def test_rate_modules_are_the_ones_that_sample():
    """cpu, process, diskio, net, cgroup, pressure, goruntime and prometheus take part in the
    shared sampling window (they define sample())."""
    rate = {name for name in MODULES if catalog.get(name).rate}
    assert rate == {
        "cpu",
        "process",
        "diskio",
        "net",
        "cgroup",
        "pressure",
        "goruntime",
        "prometheus",
    }


def check_options(where, options):
    for option, spec in options.items():
        assert spec.get("type") in catalog.OPTION_TYPES, (
            f"{where}.{option}: type {spec.get('type')!r}"
        )
        assert spec.get("description"), f"{where}.{option} has no description"
        unknown = set(spec) - OPTION_KEYS - SUBOPTION_KEYS
        assert not unknown, f"{where}.{option}: unknown keys {unknown}"
        if "choices" in spec and "default" in spec:
            # a list option's choices are those of each element
            defaults = spec["default"] if spec["type"] == "list" else [spec["default"]]
            assert all(d in spec["choices"] for d in defaults), f"{where}.{option}: default"
        assert spec.get("format") in (None, *catalog.OPTION_FORMATS), f"{where}.{option}"
        if "min" in spec or "max" in spec:
            assert spec["type"] in ("int", "float", "duration", "size") or (
                spec["type"] == "list" and spec.get("elements") in ("int", "float")
            ), f"{where}.{option}: min/max on a {spec['type']}"
        if set(spec) & SUBOPTION_KEYS:
            assert spec["type"] == "dict" or (
                spec["type"] == "list" and spec.get("elements") == "dict"
            ), f"{where}.{option}: suboptions need type dict, or list with elements dict"
            assert isinstance(spec.get("options"), dict) and spec["options"]
            check_options(f"{where}.{option}", spec["options"])
            for group in [*spec.get("required_one_of", []), *spec.get("mutually_exclusive", [])]:
                assert set(group) <= set(spec["options"]), f"{where}.{option}: {group}"


def shipped_sources(*modules: str) -> dict[str, str]:
    """The sources inside the program a batch of these modules sends to its targets."""
    batch = Batch([BatchCheck(str(i), name, {}, 5.0) for i, name in enumerate(modules)])
    program = zlib.decompress(build_payload(batch)).decode()
    call = ast.parse(program.rstrip().rsplit("\n", 1)[-1]).body[0].value
    return ast.literal_eval(call.args[0])


@pytest.mark.parametrize(
    ("modules", "helpers"),
    [
        (("memory", "disk", "load"), set()),
        (("cpu", "memory", "process"), {"procfs", "processes", "window"}),
        (("diskio", "net"), {"procfs", "window"}),
        (("http",), {"certs", "httpfetch", "netprobe", "patterns", "timing"}),
        (("tcp",), {"certs", "netprobe", "timing"}),  # netprobe's own imports come along
        (("file", "disk"), {"patterns"}),
        (("command",), {"patterns", "subprocess_budget", "timing"}),
        (("nagios", "memory"), {"subprocess_budget", "timing"}),
        (("log",), {"logfiles", "loggrep", "logmatch", "logread", "logrotation"}),
    ],
)
def test_a_batch_ships_only_the_helpers_its_modules_import(modules, helpers):
    sources = shipped_sources(*modules)
    assert {name for name in sources if not name.startswith("_")} == set(modules)
    assert {name.partition(".")[2] for name in sources if name.startswith("_")} == helpers
    for name in helpers:
        assert sources[f"_utils.{name}"] == catalog.helper_source(name)


def test_shipped_sources_keep_their_line_numbers_without_comments():
    """Comment-only lines are emptied, not removed, so a target's traceback points at the
    file's own line."""
    for name in ("_batch", "_utils.certs", "_utils.subprocess_budget"):
        original = (
            catalog._read_source(name)
            if not name.startswith("_utils.")
            else catalog._read_helper(name.partition(".")[2])
        ).splitlines()
        sent = shipped(name).splitlines()
        assert len(sent) == len(original)
        assert not [line for line in sent if line.lstrip().startswith("#")], name
        code = [i for i, line in enumerate(original) if line.strip() and "#" not in line]
        assert code and all(sent[i] == original[i] for i in code)


def test_stale_comment_ranges_never_empty_a_line_of_code():
    """_catalog.json out of date (a file edited, the catalog not regenerated): the recorded
    comment ranges then point at code, which must still ship."""
    code = "".join(f"value_{n} = {n}\n" for n in range(2000))
    assert catalog._without_comment_lines("_batch", code) == code


@pytest.mark.parametrize("name", [catalog.SHIPPED_KEY, "_batch", "_utils"])
def test_shipped_support_files_are_no_modules(name):
    """`checkrun doc _comment_lines` is an unknown name like any other (no traceback)."""
    with pytest.raises(KeyError):
        catalog.get(name)


# --- facts: what a module reports beside its measurements is documented (Ansible's RETURN) ---


def fact_runs(name: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Real runs of one module, on this machine, against loopback servers and files in
    tmp_path, chosen so that together they return every fact the module can report."""
    yield from FACT_RUNS[name](tmp_path)


def run_module(module_name: str, proc_root: str = "/proc", **given: Any) -> dict[str, Any]:
    module = importlib.import_module(f"checkrunner.modules.{module_name}")
    args = normalize_args(catalog.get(module_name), given, Location("test_module_contract.py"))
    ctx = CheckContext("0.1", 20.0, None, proc_root)
    if getattr(module, "sample", None):  # a rate module: its own short window
        ctx.before = module.sample(args, ctx)
        time.sleep(0.1)
        ctx.after = module.sample(args, ctx)
        ctx.elapsed = ctx.after["taken"] - ctx.before["taken"]
    result = module.run(args, ctx)
    json.dumps(result)  # as it travels
    return result["facts"]


def cpu_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield run_module("cpu", per_core=True)


def cgroup_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    # the root cgroup: no memory limit, no CPU quota, and an OOM counter never saved
    yield run_module("cgroup", path="/")


def goruntime_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The Go service churning under the test's own cgroup (no memory limit): the GC's time
    on its Ps exceeds the little CPU it gets in the short window, so the share is capped."""
    service = goservice.start(f"contract-{os.getpid()}")
    try:
        service.get("/ctl/churn?on=1")
        yield run_module("goruntime", url=service.url("/debug/vars"), pid=service.pid)
        yield run_module("goruntime", url=service.url("/metrics"), gomaxprocs=1)
        yield run_module("goruntime", url=service.url("/debug/vars"))  # neither process nor cgroup
    finally:
        service.stop()


def pressure_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield run_module("pressure")


def memory_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield run_module("memory")


def load_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield run_module("load")


def discover_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "app.log").write_text("started\n")
    yield run_module("discover", min_age=0, log_dir=str(logs))


def disk_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield run_module("disk", path=str(tmp_path))
    # a recorded mount table in which tmp_path's filesystem is a bind mount of /srv/data
    st_dev = os.stat(tmp_path).st_dev
    dev = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text(
        f"30 1 {dev} /srv/data / rw,relatime shared:1 - ext4 /dev/vdz1 rw\n"
    )
    yield run_module("disk", proc_root=str(tmp_path), path=str(tmp_path))


def process_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A live process and an unreaped (zombie) one, under a name of their own."""
    program = tmp_path / f"zz{os.getpid()}"
    shutil.copy(shutil.which("sleep"), program)
    live = subprocess.Popen([str(program), "30"])
    zombie = subprocess.Popen([str(program), "0"])
    try:
        while not Path(f"/proc/{zombie.pid}/stat").read_text().split(") ")[1].startswith("Z"):
            time.sleep(0.02)
        yield run_module("process", name=program.name)
    finally:
        live.kill()
        live.wait()
        zombie.wait()


def command_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield run_module("command", cmd=["echo", "hi"])
    yield run_module("command", cmd="echo hi >&2", shell=True)


def nagios_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    plugin = tmp_path / "check_fixture"
    plugin.write_text("#!/bin/sh\necho 'OK - fine | load=1;2;3;0'\necho more\necho oops >&2\n")
    plugin.chmod(0o755)
    yield run_module("nagios", plugin=str(plugin))


def file_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    data = tmp_path / "data.txt"
    data.write_text("hello world\n")
    digest = hashlib.sha256(b"hello world\n").hexdigest()
    link = tmp_path / "link"
    link.symlink_to(data)
    yield run_module("file", path=str(link), contains=["hello"], max_read=4, sha256=digest)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nothing")
    yield run_module("file", path=str(dangling))


def http_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with http_server() as server:
        yield run_module("http", url=server.url("/redirect/2"))
        yield run_module("http", url=server.url("/status/500"))
    yield run_module("http", url=f"http://{LOOPBACK}:{closed_port()}/", timeout=2)


def tcp_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with tcp_service(ping_pong) as port:
        yield run_module("tcp", host=LOOPBACK, port=port, send="PING\r\n", expect="PONG")
    pki = make_pki(tmp_path)
    with tcp_service(banner, tls=server_tls_context(pki.server_cert, pki.server_key)) as port:
        yield run_module("tcp", host=LOOPBACK, port=port, tls=True, verify_tls=False)


def log_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    log = tmp_path / "app.log"
    log.write_text("start\n ERROR one\n")
    patterns = [{"name": "errors", "regex": "ERROR"}]
    yield run_module("log", path=str(log), patterns=patterns, start="beginning")


def diskio_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield run_module("diskio", include=["loop", "ram", "partition", "dm"])


def net_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield run_module("net", interfaces=["*"], port=22)


def prometheus_runs(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with http_server() as server:
        url = server.url("/metrics")
        yield run_module("prometheus", url=url, select="jobs_total", rate=True, by=["queue"])
        yield run_module("prometheus", url=server.url("/status/500"), select="up")


FACT_RUNS: dict[str, Callable[[Path], Iterator[dict[str, Any]]]] = {
    "cpu": cpu_runs,
    "memory": memory_runs,
    "load": load_runs,
    "discover": discover_runs,
    "disk": disk_runs,
    "process": process_runs,
    "command": command_runs,
    "nagios": nagios_runs,
    "file": file_runs,
    "http": http_runs,
    "tcp": tcp_runs,
    "log": log_runs,
    "diskio": diskio_runs,
    "net": net_runs,
    "cgroup": cgroup_runs,
    "pressure": pressure_runs,
    "goruntime": goruntime_runs,
    "prometheus": prometheus_runs,
}


def test_every_module_has_runs_that_record_its_facts():
    assert set(FACT_RUNS) == set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_every_fact_a_module_returns_is_documented_and_every_documented_one_returned(
    name, tmp_path
):
    documented = catalog.get(name).facts
    assert documented, f"{name} documents no facts (MODULE['facts'])"
    assert all(isinstance(text, str) and text.strip() for text in documented.values())
    returned: set[str] = set()
    for facts in fact_runs(name, tmp_path):
        undocumented = set(facts) - set(documented)
        assert not undocumented, f"{name} returns undocumented facts {undocumented}"
        returned |= set(facts)
    assert returned == set(documented), f"{name}: no run returned {set(documented) - returned}"
