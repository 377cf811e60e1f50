"""The shipped documentation (README, docs/, `checkrun doc` for modules and receivers) matches
the code it documents; tests share their helpers through tests/helpers.py."""

from __future__ import annotations

import importlib.util
import re

import yaml
from helpers import REPO

from checkrunner import catalog


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_module_docs", REPO / "scripts" / "gen_module_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_module_reference_is_current():
    expected = _generator().module_reference()
    assert (REPO / "docs" / "modules.md").read_text() == expected, "run scripts/gen_module_docs.py"


def test_shipped_module_catalog_is_current():
    """What the control node reads instead of importing the modules matches the modules."""
    shipped = (REPO / "modules" / catalog.CATALOG_FILE).read_text()
    assert shipped == catalog.catalog_json(), "run scripts/gen_module_docs.py"
    installed = {name: info for name, info in catalog.all_modules().items()}
    assert set(installed) == set(catalog.module_names())


def test_readme_lists_every_module_with_an_example():
    readme = (REPO / "README.md").read_text()
    for name in catalog.module_names():
        assert f"| `{name}` |" in readme, f"README modules table lacks {name}"


def test_readme_documents_every_cli_flag():
    from checkrunner.cli import _run_parser, _watch_parser

    readme = (REPO / "README.md").read_text()
    actions = [*_run_parser("checkrun")._actions, *_watch_parser("checkrun watch")._actions]
    for action in actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag not in ("--help", "--version"):
                assert f"`{flag}" in readme or f"{flag}`" in readme or f" {flag}" in readme, flag


def test_readme_exit_code_table_matches_the_code():
    from checkrunner import results

    readme = (REPO / "README.md").read_text()
    for code in (
        results.EXIT_OK,
        results.EXIT_WARNING,
        results.EXIT_CRITICAL,
        results.EXIT_UNKNOWN,
        results.EXIT_UNREACHABLE,
        results.EXIT_BAD_INPUT,
        results.EXIT_INTERRUPTED,
    ):
        assert f"\n| {code} |" in readme


def test_example_playbooks_load():
    from checkrunner.playbook import load_playbook

    for path in sorted((REPO / "playbooks").glob("*.yml")):
        assert load_playbook(str(path)).plays, path
    assert yaml.safe_load((REPO / "playbooks" / "localhost.yml").read_text())


def test_readme_playbook_example_validates(tmp_path):
    from checkrunner.playbook import load_playbook

    readme = (REPO / "README.md").read_text()
    block = readme.split("## A playbook", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    (tmp_path / "vars").mkdir()
    (tmp_path / "vars" / "web.yml").write_text("app_name: web\n")
    path = tmp_path / "readme.yml"
    path.write_text(block)
    playbook = load_playbook(str(path))
    assert len(playbook.plays[0].checks) == 7


def test_readme_threshold_units_parse():
    from checkrunner.config import parse_range

    assert parse_range("26h", "s").alerts(26 * 3600 + 1)
    assert parse_range("10GiB:", "B").alerts(10 * 1024**3 - 1)
    assert not parse_range("500ms", "s").alerts(0.4)


def test_fleet_example_validates_against_the_example_inventories():
    from helpers import run_checkrun

    for inventory in ("example.yml", "example.ini"):
        done = run_checkrun(
            "validate", REPO / "playbooks" / "fleet.yml", "-i", REPO / "inventory" / inventory
        )
        assert done.returncode == 0, done.stderr
        assert "52 checks on 9 hosts" in done.stdout


def test_doc_documents_every_receiver_kind_with_its_options():
    """Error hints send users to `checkrun doc` for a receiver kind: it must be there."""
    from helpers import run_checkrun

    from checkrunner.alerting.receivers import RECEIVERS

    listing = run_checkrun("doc")
    assert listing.returncode == 0
    receivers_part = listing.stdout.split("RECEIVERS", 1)[1]
    for kind in RECEIVERS:
        assert f"\n  {kind} " in receivers_part, kind
    for kind, receiver in RECEIVERS.items():
        done = run_checkrun("doc", kind)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{kind} — receiver\n")
        assert f"{kind}_configs" in done.stdout
        for option in receiver.OPTIONS:
            assert f"\n  {option} " in done.stdout, (kind, option)
    wecom = run_checkrun("doc", "wecom").stdout
    assert "Give at least one of: url, key." in wecom
    assert "The robot's key, instead of `url`. (secret)" in wecom
    wrong = run_checkrun("doc", "wecm")
    assert wrong.returncode == 5 and "did you mean 'wecom'?" in wrong.stderr


def test_tests_import_shared_helpers_from_helpers_not_conftest():
    """conftest.py is pytest's fixture file: importing it as a module loads it twice (once
    as pytest's plugin, once as `conftest`); what tests share lives in tests/helpers.py."""
    importers = [
        path.name
        for path in sorted((REPO / "tests").glob("*.py"))
        if re.search(r"^\s*(from conftest import|import conftest)", path.read_text(), re.M)
    ]
    assert importers == []
