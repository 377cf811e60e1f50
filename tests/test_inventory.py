"""The Ansible-compatible inventory: formats, ranges, groups, variable precedence, patterns, errors, speed."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from checkrunner.errors import ConfigError, Location
from checkrunner.inventory import (
    HostEntryError,
    Inventory,
    detect_format,
    expand_host_ranges,
    load_inventories,
    parse_host_entry,
    split_pattern,
)
from checkrunner.inventory.hostnames import hostname_problem, user_problem
from checkrunner.inventory.ini_format import parse_ini_value
from checkrunner.results import UnreachableReason
from checkrunner.transport import unsupported_connection

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "inventory"
EXAMPLES = REPO / "inventory"


def load(*names: str, playbook_dir: Path | None = None) -> Inventory:
    sources = [str(FIXTURES / name) for name in names]
    return load_inventories(sources, str(playbook_dir) if playbook_dir else None)


def names(hosts) -> list[str]:
    return [host.name for host in hosts]


def group_shape(inventory: Inventory) -> dict[str, tuple[list[str], list[str], dict]]:
    return {
        name: (names(inventory.group_hosts(name)), sorted(group.children), group.vars)
        for name, group in inventory.groups.items()
    }


def config_error(*sources: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_inventories([str(FIXTURES / source) for source in sources])
    return caught.value


# --- formats -------------------------------------------------------------------------------


def test_yaml_and_ini_fixtures_define_the_same_inventory():
    from_ini = load("equivalent/fleet.ini")
    from_yaml = load("equivalent/fleet.yml")
    assert from_ini.list_hosts() == from_yaml.list_hosts()
    assert group_shape(from_ini) == group_shape(from_yaml)
    assert names(from_ini.list_hosts()) == [
        "bastion.example.com",
        "web01.example.com",
        "web03.example.com",
        "web05.example.com",
        "web-a.example.com",
        "web-b.example.com",
        "db01.example.com",
    ]


def test_ini_inline_values_are_python_literals_like_ansible():
    inventory = load("equivalent/fleet.ini")
    web_a = inventory.get_host("web-a.example.com")
    db = inventory.get_host("db01.example.com")
    bastion = inventory.get_host("bastion.example.com")
    assert (
        web_a.vars["http_port"] == 8080
        and web_a.vars["enabled"] is True
        and web_a.vars["ratio"] == 0.5
    )
    assert db.vars["replicas"] == [1, 2] and db.vars["note"] == "two words"
    assert db.vars["ansible_host"] == "10.0.1.1"  # an address is never a number
    assert bastion.port == 2200 and bastion.user == "jump"
    assert inventory.groups["region"].vars == {"region_name": "eu-west", "max_conn": 100}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2222", 2222),
        ("True", True),
        ("None", None),
        ("'03#pa33w0rd'", "03#pa33w0rd"),
        ("0755", "0755"),
        ("yes", "yes"),
        ("10.0.0.5", "10.0.0.5"),
        ("1.5", 1.5),
        ("(1, 2)", [1, 2]),
        ("{'a': 1}", {"a": 1}),
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("", ""),
    ],
)
def test_ini_value_parsing(text, value):
    assert parse_ini_value(text) == value
    assert type(parse_ini_value(text)) is type(value)


def test_group_vars_section_strips_trailing_comments_from_text_values(tmp_path):
    source = tmp_path / "hosts.ini"
    source.write_text(
        "[web]\nweb1\n[web:vars]\nenv = prod   # the live site\nport=8080 # inline\nmotd='a # b'\n"
    )
    web = load_inventories([str(source)]).groups["web"]
    assert web.vars == {"env": "prod", "port": 8080, "motd": "a # b"}


def test_ansible_inventory_list_json_is_read():
    inventory = load("equivalent/listing.json")
    assert names(inventory.select("prod")) == [
        "web1.example.com",
        "web2.example.com",
        "db1.example.com",
    ]
    assert inventory.get_host("web1.example.com").vars == {
        "env": "production",
        "ansible_host": "10.0.0.1",
        "http_port": 8080,
    }
    assert inventory.get_host("db1.example.com").port == 2222
    assert inventory.get_host("lonely.example.com").groups == ["ungrouped"]


def test_to_dict_round_trips_through_the_listing_format(tmp_path):
    original = load_inventories([str(EXAMPLES / "example.yml")])
    exported = tmp_path / "exported.json"
    exported.write_text(json.dumps(original.to_dict()))
    reloaded = load_inventories([str(exported)])
    assert reloaded.list_hosts() == original.list_hosts()
    assert names(reloaded.select("web:&prod")) == names(original.select("web:&prod"))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("detect/yaml_noext", "yaml"),
        ("detect/ini_content.yml", "ini"),
        ("detect/hosts", "ini"),
        ("detect/hosts.cfg", "yaml"),
        ("equivalent/fleet.ini", "ini"),
        ("equivalent/fleet.yml", "yaml"),
        ("equivalent/listing.json", "yaml"),
    ],
)
def test_format_is_detected_by_content(name, expected):
    path = FIXTURES / name
    assert detect_format(str(path), path.read_text()) == expected


def test_files_load_whatever_their_extension():
    inventory = load(
        "detect/yaml_noext", "detect/ini_content.yml", "detect/hosts", "detect/hosts.cfg"
    )
    assert names(inventory.list_hosts()) == [
        "yaml-host",
        "ini-host",
        "plain-host",
        "other-host",
        "doc-host",
    ]
    assert inventory.get_host("plain-host").port == 2222


def test_the_example_inventories_are_equivalent_and_clean():
    from_yaml = load_inventories([str(EXAMPLES / "example.yml")])
    from_ini = load_inventories([str(EXAMPLES / "example.ini")])
    assert from_yaml.list_hosts() == from_ini.list_hosts()
    assert group_shape(from_yaml) == group_shape(from_ini)
    assert from_yaml.warnings == [] and from_ini.warnings == []
    primary = from_yaml.get_host("db-a.prod.example.com")
    assert primary.vars["disk_crit"] == 85  # host_vars beat group_vars/prod.yml
    assert primary.vars["replication_lag_warn"] == "30s"  # group_vars/db/ directory
    assert primary.user == "deploy" and primary.private_key_file == os.path.expanduser(
        "~/.ssh/fleet_ed25519"
    )
    assert names(from_yaml.select("db:&staging")) == ["db-a.staging.example.com"]


def test_the_localhost_example_runs_locally():
    inventory = load_inventories([str(EXAMPLES / "localhost.yml")])
    (host,) = inventory.select("all")
    assert (host.name, host.connection, host.implicit) == ("localhost", "local", False)
    assert host.vars["checks_owner"] == "sre"  # group_vars/all.yml beside it


# --- ranges and host entries ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("web[01:03].example.com", ["web01.example.com", "web02.example.com", "web03.example.com"]),
        ("db-[a:c]", ["db-a", "db-b", "db-c"]),
        ("n[0:10:5]", ["n0", "n5", "n10"]),
        ("r[1:2]-[a:b]", ["r1-a", "r1-b", "r2-a", "r2-b"]),
        ("[:2]x", ["0x", "1x", "2x"]),
        ("plain", ["plain"]),
    ],
)
def test_host_ranges_expand(entry, expected):
    assert expand_host_ranges(entry) == expected


@pytest.mark.parametrize(
    ("entry", "names_", "port"),
    [
        ("web1:2222", ["web1"], 2222),
        ("web[1:2].example.com:22", ["web1.example.com", "web2.example.com"], 22),
        ("[2001:db8::1]:2200", ["2001:db8::1"], 2200),
        ("fe80::1", ["fe80::1"], None),
        ("10.0.0.1", ["10.0.0.1"], None),
    ],
)
def test_host_entries_split_name_and_port(entry, names_, port):
    parsed = parse_host_entry(entry)
    assert (parsed.names, parsed.port) == (names_, port)


@pytest.mark.parametrize(
    ("entry", "phrase"),
    [
        ("web[01:5]", "same width"),
        ("web[5:1]", "starts after it ends"),
        ("web[1:x]", "number to number"),
        ("web[1]", "[start:end]"),
        ("web[1:3", "unbalanced"),
        ("web[1:3:0]", "step must be a positive"),
        ("web:", "reserved for a port"),
        ("web:99999", "invalid port"),
        ("a:b:c", "several ':'"),
        ("h[1:\u00b2]", "digits 0-9"),  # superscript two: isdigit() says yes, int() says no
        ("h[\u0661:9]", "digits 0-9"),  # Arabic-Indic one
        ("h[1:3:\u00b2]", "step must be a positive"),
        ("web:\u00b2\u00b2", "invalid port"),
        ("a[b[1:2]", "unbalanced"),
        ("h[0:99999999]", "stands for 100,000,000 hosts; one entry may stand for at most 100,000"),
        ("h[0:999][0:999]", "stands for 1,000,000 hosts"),
    ],
)
def test_bad_host_entries_say_what_is_wrong(entry, phrase):
    with pytest.raises(HostEntryError) as caught:
        parse_host_entry(entry)
    assert phrase in str(caught.value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("web1.example.com", None),
        ("fe80::1%eth0", None),
        ("~root", None),  # harmless once quoted
        ("bücher.example", None),
        ("x$(touch${IFS}/tmp/PWNED)", "contains '$'"),
        ("a`id`", "contains '`'"),
        ("a;b", "contains ';'"),
        ("a|b", "contains '|'"),
        ("a,b", "contains ','"),
        ("a\\b", "contains '\\\\'"),
        ("a\nb", "contains the control or space character '\\n'"),
        ("a\x1bb", "control or space character"),
        ("-oProxyCommand=x", "starts with '-'"),
        ("", "is empty"),
    ],
)
def test_host_names_are_checked_as_openssh_does(name, problem):
    found = hostname_problem(name)
    assert found is None if problem is None else problem in (found or "")


@pytest.mark.parametrize(
    ("user", "problem"),
    [
        ("deploy", None),
        ("DOMAIN\\user", None),  # OpenSSH allows '\\' and '$' in users (valid_ruser)
        ("machine$", None),
        ("first last", None),
        ("u;id", "contains ';'"),
        ("u'x", 'contains "\'"'),
        ("a -oProxyCommand=x", "contains a space followed by '-'"),
        ("-l", "starts with '-'"),
        ("trailing\\", "ends with '\\'"),
        ("tab\there", "contains the control character '\\t'"),
    ],
)
def test_user_names_are_checked_as_openssh_does(user, problem):
    found = user_problem(user)
    assert found is None if problem is None else problem in (found or "")


def test_a_range_at_the_bound_expands_lazily_and_fast():
    started = time.perf_counter()
    names_ = expand_host_ranges("h[000001:100000]")
    assert len(names_) == 100_000 and names_[0] == "h000001" and names_[-1] == "h100000"
    assert time.perf_counter() - started < 5  # generous on a loaded machine; the bug took minutes


@pytest.mark.parametrize("entry", ["h[1:\u00b2]", "h[0:99999999]"])
@pytest.mark.parametrize("fmt", ["ini", "yml"])
def test_bad_ranges_are_input_errors_at_the_inventory_line(tmp_path, entry, fmt):
    source = tmp_path / f"inv.{fmt}"
    source.write_text(
        f"[web]\nok1\n{entry}\n" if fmt == "ini" else f"web:\n  hosts:\n    ok1:\n    {entry}:\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_inventories([str(source)])
    line = 3 if fmt == "ini" else 4
    assert str(caught.value).startswith(f"{source}:{line}:")


def test_host_list_magic_vars_are_ansibles():
    """ansible-core 2.19: `-i a,b,` gives inventory_file 'a,b,' and inventory_dir None."""
    inventory = load_inventories(["a,b,"])
    magic = inventory.magic_vars(inventory.get_host("a"))
    assert (magic["inventory_file"], magic["inventory_dir"]) == ("a,b,", None)


def test_comma_separated_host_lists():
    inventory = load_inventories(["web1,db1:2222, web[3:4]"])
    assert names(inventory.select("all")) == ["web1", "db1", "web3", "web4"]
    assert inventory.get_host("db1").port == 2222
    assert all(host.groups == ["ungrouped"] for host in inventory.list_hosts())
    single = load_inventories(["solo.example.com,"])
    assert names(single.list_hosts()) == ["solo.example.com"]


# --- groups ------------------------------------------------------------------------------


def test_nested_children_give_membership_and_depth():
    inventory = load("equivalent/fleet.yml")
    assert inventory.get_host("db01.example.com").groups == ["db", "dc1", "region"]
    assert names(inventory.select("region")) == names(inventory.select("dc1"))
    depths = {
        name: inventory.groups[name].depth for name in ("all", "region", "dc1", "web", "ungrouped")
    }
    assert depths == {"all": 0, "region": 1, "dc1": 2, "web": 3, "ungrouped": 1}
    assert inventory.groups["dc1"].parents == ["region"]
    assert inventory.groups["all"].children == ["ungrouped", "region"]


def test_group_hosts_come_before_their_childrens(tmp_path):
    source = tmp_path / "hosts.ini"
    source.write_text("[db]\nd1\n[web]\nw1\n[prod]\np1\n[prod:children]\nweb\ndb\n")
    inventory = load_inventories([str(source)])
    assert names(inventory.select("prod")) == ["p1", "w1", "d1"]


def test_hosts_directly_under_all_are_also_ungrouped(tmp_path):
    source = tmp_path / "inv.yml"
    source.write_text("all:\n  hosts:\n    good1:\n    broken:\n    good2:\n")
    inventory = load_inventories([str(source)])
    assert names(inventory.select("all")) == ["good1", "broken", "good2"]
    assert names(inventory.select("ungrouped")) == ["good1", "broken", "good2"]


def test_a_host_in_a_real_group_leaves_ungrouped(tmp_path):
    source = tmp_path / "hosts.ini"
    source.write_text("early\n[web]\nearly\nlate\n")
    inventory = load_inventories([str(source)])
    assert names(inventory.select("ungrouped")) == []
    assert inventory.get_host("early").groups == ["web"]


def test_a_directory_source_reads_every_inventory_file_in_it():
    inventory = load("dirsource")
    assert names(inventory.list_hosts()) == ["web1", "web2", "db1", "cache1"]
    web1 = inventory.get_host("web1")
    assert web1.vars == {"health_port": 8080, "from_subdir": "yes"}
    assert web1.location.file.endswith("10-web.ini") and web1.location.line == 2


# --- variable precedence -----------------------------------------------------------------


PRECEDENCE_H1 = {
    "v_all_only": "all_file",
    "v_all_parent": "parent_file",  # parent group beats all
    "v_parent_child": "child_file",  # child group beats parent
    "v_child_host": "host_file",  # host beats groups
    "v_file_vs_dir_all": "all_dir",  # group_vars/all.yml beats any group's inventory-file vars
    "v_dir_parent_child": "child_dir",
    "v_dir_sorted": "second",  # group_vars/child/ files merge in sorted order
    "v_dir_vs_playbook": "playbook_dir",  # playbook-side group_vars win
    "v_hostvars_dir": "host_dir",  # host_vars/ beats inline host vars
    "v_hostvars_playbook": "playbook_host",  # playbook-side host_vars win
    "v_group_dir_vs_host_file": "host_file",  # inventory host vars beat group_vars/
}


def test_variable_precedence_matches_ansible():
    inventory = load(
        "precedence/inventory/hosts.ini", playbook_dir=FIXTURES / "precedence" / "playbooks"
    )
    h1 = inventory.get_host("h1")
    assert h1.vars == PRECEDENCE_H1
    assert inventory.get_host("h2").vars["v_child_host"] == "child_file"
    assert inventory.groups["child"].vars["v_dir_vs_playbook"] == "playbook_dir"
    assert h1.groups == ["child", "parent"]


def test_every_variable_knows_where_it_was_set():
    inventory = load(
        "precedence/inventory/hosts.ini", playbook_dir=FIXTURES / "precedence" / "playbooks"
    )
    locations = inventory.get_host("h1").var_locations
    assert str(locations["v_dir_vs_playbook"]).endswith(
        "precedence/playbooks/group_vars/child.yml:1:1"
    )
    assert str(locations["v_dir_sorted"]).endswith("inventory/group_vars/child/20-second.yaml:1:1")
    assert str(locations["v_hostvars_playbook"]).endswith("playbooks/host_vars/h1:2:1")
    assert str(locations["v_parent_child"]).endswith("hosts.ini:17:1")


def test_without_the_playbook_dir_the_inventory_side_wins():
    inventory = load("precedence/inventory/hosts.ini")
    assert inventory.get_host("h1").vars["v_dir_vs_playbook"] == "inventory_dir"
    assert inventory.get_host("h1").vars["v_hostvars_playbook"] == "host_dir"


def test_groups_of_equal_depth_tie_on_priority_then_name():
    by_name = load("precedence/priority.ini").get_host("both")
    by_priority = load("precedence/priority_set.ini").get_host("both")
    assert by_name.vars["v_tie"] == "beta"
    assert by_priority.vars["v_tie"] == "alpha"


def test_later_sources_override_earlier_ones_for_the_same_host(tmp_path):
    first = tmp_path / "a.ini"
    second = tmp_path / "b.yml"
    first.write_text("[web]\nweb1 role=old keep=1\n")
    second.write_text("all:\n  children:\n    web:\n      hosts:\n        web1: {role: new}\n")
    host = load_inventories([str(first), str(second)]).get_host("web1")
    assert host.vars == {"role": "new", "keep": 1}


def test_yaml_merge_keys_and_duplicate_keys(tmp_path):
    source = tmp_path / "inv.yml"
    source.write_text(
        "all:\n  vars:\n    base: &base {port: 1, user: a}\n  hosts:\n"
        "    h1:\n      <<: *base\n      port: 2\n    h2:\n      x: 1\n      x: 2\n"
    )
    inventory = load_inventories([str(source)])
    assert (
        inventory.get_host("h1").vars["port"] == 2 and inventory.get_host("h1").vars["user"] == "a"
    )
    assert inventory.get_host("h2").vars["x"] == 2
    (warning,) = inventory.warnings
    assert "duplicate key 'x'" in warning.message and warning.location.line == 10


# --- connection settings -----------------------------------------------------------------


def test_connection_settings_from_ansible_variables():
    inventory = load("connection.yml")
    full = inventory.get_host("full.example.com")
    assert (full.address, full.port, full.user, full.password) == (
        "192.0.2.7",
        2200,
        "ops",
        "s3cret",
    )
    assert (full.connection, full.python_interpreter) == ("ssh", "/usr/bin/python3.11")
    assert (full.become, full.become_user, full.become_method, full.become_password) == (
        True,
        "postgres",
        "sudo",
        "sudo-s3cret",
    )
    assert full.private_key_file == os.path.expanduser("~/.ssh/id_ops")
    assert (full.ssh_common_args, full.ssh_extra_args) == (
        "-o ProxyJump=bastion",
        "-o Compression=yes",
    )
    assert (full.host_key_checking, full.timeout) == (False, 15.0)

    legacy = inventory.get_host("legacy.example.com")
    assert (legacy.address, legacy.port, legacy.user) == ("192.0.2.8", 22, "old")
    assert (legacy.connection, legacy.python_interpreter, legacy.become, legacy.timeout) == (
        "ssh",
        "python3",
        False,
        60.0,
    )

    plain = inventory.get_host("plain.example.com")
    assert (plain.address, plain.port, plain.user, plain.connection) == (
        "plain.example.com",
        None,
        None,
        "ssh",
    )
    assert (plain.python_interpreter, plain.become, plain.private_key_file) == (
        "python3",
        False,
        None,
    )
    assert (plain.host_key_checking, plain.timeout) == (None, None)
    assert inventory.get_host("local-box").connection == "local"


@pytest.mark.parametrize(
    ("host", "attribute", "line", "phrase"),
    [
        ("bad-port", "port", 30, "ansible_port must be a port number"),
        ("bad-become", "become", 34, "must be a boolean"),
        ("templated-port", "port", 36, "render host vars first"),
    ],
)
def test_unusable_connection_values_point_at_their_line(host, attribute, line, phrase):
    inventory = load("connection.yml")
    with pytest.raises(ConfigError) as caught:
        getattr(inventory.get_host(host), attribute)
    error = caught.value
    assert error.location.file.endswith("connection.yml") and error.location.line == line
    assert phrase in str(error)


def test_unsupported_connections_load_and_make_only_their_host_unreachable():
    inventory = load("connection.yml")
    typo = inventory.get_host("bad-connection")
    assert typo.connection == "paramico"  # loading and listing work; running it does not
    failure = unsupported_connection(typo)
    assert failure is not None and failure.reason == UnreachableReason.UNSUPPORTED_CONNECTION
    assert "'paramico' is not supported" in failure.message
    assert "did you mean 'paramiko'" in failure.message
    assert unsupported_connection(inventory.get_host("local-box")) is None


def test_rendered_vars_make_templated_settings_usable():
    host = load("connection.yml").get_host("templated-port")
    rendered = replace(host, vars={**host.vars, "ansible_port": "2201"})
    assert rendered.port == 2201


# --- implicit localhost ------------------------------------------------------------------


def test_no_sources_gives_only_the_implicit_localhost():
    inventory = load_inventories([])
    assert inventory.list_hosts() == [] and inventory.select("all") == []
    assert inventory.unmatched_patterns == ["all"]
    (local,) = inventory.select("localhost")
    assert (local.name, local.connection, local.implicit) == ("localhost", "local", True)
    assert local.python_interpreter == sys.executable and local.address == "127.0.0.1"
    # one implicit host, whichever of its names a pattern uses (Ansible's self.localhost)
    assert inventory.select("127.0.0.1") == [local] and inventory.get_host("::1") is local
    assert names(inventory.select("localhost,127.0.0.1,::1")) == ["localhost"]
    fresh = load_inventories([])
    assert names(fresh.select("127.0.0.1:localhost")) == ["127.0.0.1"]


def test_implicit_localhost_takes_all_group_vars_and_its_host_vars(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("team: sre\nansible_connection: ssh\n")
    (tmp_path / "host_vars" / "localhost.yml").write_text("role: control\n")
    inventory = load_inventories([], playbook_dir=str(tmp_path))
    local = inventory.get_host("localhost")
    assert local.vars["team"] == "sre" and local.vars["role"] == "control"
    assert local.connection == "local"  # the implicit host's own setting beats group_vars/all


def test_a_defined_localhost_replaces_the_implicit_one(tmp_path):
    source = tmp_path / "hosts.ini"
    source.write_text("localhost ansible_python_interpreter=/opt/py/bin/python3\n")
    inventory = load_inventories([str(source)])
    (local,) = inventory.select("localhost")
    assert (
        local.implicit is False and local.connection == "ssh"
    )  # as in Ansible: explicit means ssh
    assert local.python_interpreter == "/opt/py/bin/python3"
    assert names(inventory.select("all")) == ["localhost"]


# --- patterns ----------------------------------------------------------------------------

WEB = ["web1.example.com", "web2.example.com", "web3.example.com"]
DB = ["db1.example.com", "db2.example.com"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("all", WEB + DB + ["cache-1.internal"]),
        ("*", WEB + DB + ["cache-1.internal"]),
        ("web", WEB),
        ("web:db", WEB + DB),
        ("web,db", WEB + DB),
        ("db:web", DB + WEB),
        ("web:&prod", ["web1.example.com", "web2.example.com"]),
        ("&prod:web", ["web1.example.com", "web2.example.com"]),
        ("web:!prod", ["web3.example.com"]),
        (
            "!staging",
            ["web1.example.com", "web2.example.com", "db1.example.com", "cache-1.internal"],
        ),
        ("prod:&web:!web2*", ["web1.example.com"]),
        ("web*", WEB),
        ("*.internal", ["cache-1.internal"]),
        ("db?.example.com", DB),
        (
            "~(web|db)[12]\\.",
            ["web1.example.com", "web2.example.com", "db1.example.com", "db2.example.com"],
        ),
        ("~db", DB),
        ("db2.example.com", ["db2.example.com"]),
        ("web[0]", ["web1.example.com"]),
        ("web[-1]", ["web3.example.com"]),
        ("web[0:1]", ["web1.example.com", "web2.example.com"]),
        ("web[1:]", ["web2.example.com", "web3.example.com"]),
        ("prod[1:2]:&web", ["web2.example.com"]),
        (["staging", "edge"], ["web3.example.com", "db2.example.com", "cache-1.internal"]),
    ],
)
def test_host_patterns(pattern, expected):
    inventory = load("patterns.yml")
    assert names(inventory.select(pattern)) == expected
    assert inventory.unmatched_patterns == []


def test_parts_matching_nothing_are_collected_not_fatal():
    inventory = load("patterns.yml")
    assert names(inventory.select("web:nosuch:!alsonot")) == WEB
    assert names(inventory.select("web[7]")) == []
    assert inventory.unmatched_patterns == ["nosuch", "!alsonot", "web[7]"]
    selection = inventory.match("db:ghost")
    assert names(selection.hosts) == DB and selection.unmatched == ["ghost"]


def test_limit_restricts_a_selection(tmp_path):
    inventory = load("patterns.yml")
    assert names(inventory.select("all", limit="staging")) == [
        "web3.example.com",
        "db2.example.com",
    ]
    retry = tmp_path / "retry.txt"
    retry.write_text("web1.example.com\n\nweb3.example.com\n")
    assert names(inventory.select("web", limit=f"@{retry}")) == [
        "web1.example.com",
        "web3.example.com",
    ]
    with pytest.raises(ConfigError, match="cannot read the limit file"):
        inventory.select("web", limit=f"@{tmp_path / 'missing.txt'}")


def test_a_bad_regex_pattern_is_a_config_error():
    inventory = load("patterns.yml")
    with pytest.raises(ConfigError, match="invalid regular expression"):
        inventory.select("~web(")


@pytest.mark.parametrize(
    ("pattern", "phrase"),
    [
        ("~[", "invalid regular expression '~[': unterminated character set (at character 2)"),
        ("all[5:x]", "invalid subscript '[5:x]' (at character 4)"),
        ("all[", "unclosed '[' (at character 4)"),
        ("web:all[", "unclosed '[' (at character 8)"),
        ("::", "names no host or group (at character 1)"),
        (",", "names no host or group"),
        ("web]", "unbalanced ']' (at character 4)"),
        ("web[]", "empty '[]'"),
        ("web:!", "'!' has an operator but no name (at character 5)"),
        ("db,~web[0-9", "unterminated character set (at character 8)"),
    ],
)
def test_malformed_patterns_are_config_errors_with_the_position(pattern, phrase):
    inventory = load("patterns.yml")
    where = Location("play.yml", 3, 10)
    with pytest.raises(ConfigError) as caught:
        inventory.select(pattern, location=where)
    assert caught.value.location == where
    assert caught.value.message.startswith(f"malformed host pattern '{pattern}': ")
    assert phrase in caught.value.message
    with pytest.raises(ConfigError) as caught:
        inventory.select("all", limit=pattern)
    assert str(caught.value.location) == "--limit" and phrase in caught.value.message


@pytest.mark.parametrize("pattern", ["nosuch", "web[7]", "fe80::1", "web[89]*", "~zz.*", "a b"])
def test_well_formed_patterns_matching_nothing_stay_unmatched(pattern):
    inventory = load("patterns.yml")
    assert inventory.select(pattern) == []
    assert inventory.unmatched_patterns


def test_spaces_separate_pattern_parts_as_in_ansible():
    inventory = load("patterns.yml")
    assert names(inventory.select("web db")) == WEB + DB


def test_split_pattern_keeps_ranges_and_ipv6_whole():
    assert split_pattern("web[0:2]:db") == ["web[0:2]", "db"]
    assert split_pattern("fe80::1") == ["fe80::1"]
    assert split_pattern(" a , b ,") == ["a", "b"]
    assert split_pattern("web:&prod:!web3") == ["web", "&prod", "!web3"]


def test_magic_vars_for_templates():
    inventory = load("patterns.yml")
    magic = inventory.magic_vars(inventory.get_host("web1.example.com"))
    assert magic["inventory_hostname"] == "web1.example.com"
    assert magic["inventory_hostname_short"] == "web1"
    assert magic["group_names"] == ["prod", "web"]
    assert magic["groups"]["staging"] == ["web3.example.com", "db2.example.com"]
    assert magic["inventory_file"].endswith("patterns.yml")


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "position", "phrase"),
    [
        ("errors/hosts_list.yml", "hosts_list.yml:5:9", "hosts:\n          web1.example.com:"),
        (
            "errors/children_list.yml",
            "children_list.yml:4:17",
            "'children' of group 'prod' must be a mapping",
        ),
        ("errors/unknown_group_key.yml", "unknown_group_key.yml:4:7", "did you mean 'hosts'?"),
        ("errors/host_scalar.yml", "host_scalar.yml:3:11", "`web1: {ansible_host: 10.0.0.1}`"),
        (
            "errors/ini_style_in_yaml.yml",
            "ini_style_in_yaml.yml:3:5",
            "`web1: {ansible_host: 10.0.0.1}`",
        ),
        ("errors/bad_indent.yml", "bad_indent.yml:5:6", "check the indentation"),
        ("errors/plugin.yml", "plugin.yml:1:9", "dynamic inventory plugin 'amazon.aws.aws_ec2'"),
        ("errors/vault.yml", "vault.yml:3:18", "cannot decrypt Ansible Vault"),
        ("errors/unknown_section.ini", "unknown_section.ini:4:1", "unknown section type [web:foo]"),
        ("errors/bad_range.ini", "bad_range.ini:3:1", "zero-padded start"),
        (
            "errors/bad_hostvar.ini",
            "bad_hostvar.ini:2:22",
            "expected key=value after the host name",
        ),
        ("errors/unclosed_quote.ini", "unclosed_quote.ini:2:1", "No closing quotation"),
        ("errors/undefined_child.ini", "undefined_child.ini:2:1", "did you mean 'web'?"),
        ("errors/undefined_vars_group.ini", "undefined_vars_group.ini:4:1", "[dbs:vars]"),
        ("errors/cycle.ini", "cycle.ini:5:1", "a -> b -> a"),
        ("errors/vars_list/hosts.ini", "group_vars/web.yml:1:1", "a vars file must be a mapping"),
    ],
)
def test_bad_inventories_name_file_line_and_fix(source, position, phrase):
    error = config_error(source)
    assert str(error.location).endswith(position), str(error)
    assert phrase in str(error)
    assert "Traceback" not in str(error)


def test_a_missing_inventory_names_the_path_and_the_fix(tmp_path):
    (tmp_path / "prod.yml").write_text("all: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_inventories([str(tmp_path / "prd.yml")])
    error = str(caught.value)
    assert str(tmp_path / "prd.yml") in error
    assert "did you mean 'prod.yml'?" in error and "comma" in error


def test_a_vars_file_for_a_misspelt_group_is_a_warning(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "webservers.yml").write_text("x: 1\n")
    (tmp_path / "group_vars" / "zzz_misc.yml").write_text("y: 1\n")
    source = tmp_path / "hosts.ini"
    source.write_text("[webserver]\nweb1\n")
    inventory = load_inventories([str(source)])
    assert [str(w.message) for w in inventory.warnings] == [
        "group_vars/webservers matches no group; did you mean 'webserver'?"
    ]


# --- speed -------------------------------------------------------------------------------


def _write_big_inventory(directory: Path, hosts: int) -> tuple[Path, Path]:
    yaml_lines = ["all:", "  vars:", "    ansible_user: deploy", "  children:"]
    ini_lines = ["[all:vars]", "ansible_user=deploy"]
    per_group = 500
    for group in range(hosts // per_group):
        yaml_lines += [
            f"    rack{group:02d}:",
            "      vars:",
            f"        rack: r{group}",
            "      hosts:",
        ]
        ini_lines += [f"[rack{group:02d}:vars]", f"rack=r{group}", f"[rack{group:02d}]"]
        for index in range(per_group):
            number = group * per_group + index
            address = f"10.{group}.{index // 256}.{index % 256}"
            yaml_lines.append(
                f"        node{number:05d}.example.com: {{ansible_host: {address}, slot: {index}}}"
            )
            ini_lines.append(f"node{number:05d}.example.com ansible_host={address} slot={index}")
    yaml_path, ini_path = directory / "big.yml", directory / "big.ini"
    yaml_path.write_text("\n".join(yaml_lines) + "\n")
    ini_path.write_text("\n".join(ini_lines) + "\n")
    return yaml_path, ini_path


def _plain_yaml_parse_seconds(path: Path) -> float:
    """The floor for loading an inventory: libyaml parsing the same YAML, nothing else."""
    started = time.perf_counter()
    yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    return time.perf_counter() - started


def test_ten_thousand_hosts_load_fast(tmp_path):
    """Loading stays within a small multiple of a bare libyaml parse measured in the same
    window (about 1x here), so a quadratic step fails on a loaded machine as on an idle one."""
    yaml_path, ini_path = _write_big_inventory(tmp_path, 10_000)
    for path in (yaml_path, ini_path):
        reference = _plain_yaml_parse_seconds(yaml_path)
        started = time.perf_counter()
        inventory = load_inventories([str(path)])
        elapsed = time.perf_counter() - started
        print(f"\n{path.name}: 10000 hosts in {elapsed:.3f}s, libyaml parse {reference:.3f}s")
        assert len(inventory.hosts) == 10_000
        assert inventory.get_host("node09999.example.com").vars == {
            "ansible_user": "deploy",
            "rack": "r19",
            "ansible_host": "10.19.1.243",
            "slot": 499,
        }
        assert len(inventory.select("rack0*:&~node0[0-4]:!rack01")) == 4_500
        assert elapsed < 4 * reference


def test_ten_thousand_hosts_of_ansible_inventory_json_load_without_a_second_walk(
    tmp_path, monkeypatch
):
    """The JSON `ansible-inventory --list` prints (and inventory scripts) at 10,000 hosts:
    without an alias (no `*` in the text) the guard walks each mapping and list once for
    its depth; the full alias walk (sizes and heights of every node, twice each) was half
    the load time, 4x a bare parse."""
    from checkrunner.yamlio import marked

    inventory_yaml, _ = _write_big_inventory(tmp_path, 10_000)
    listing_path = tmp_path / "listing.json"
    listing_path.write_text(json.dumps(load_inventories([str(inventory_yaml)]).to_dict(), indent=4))
    visits = []
    children = marked._children
    monkeypatch.setattr(marked, "_children", lambda node: visits.append(node) or children(node))
    started = time.perf_counter()
    inventory = load_inventories([str(listing_path)])
    print(f"\nlisting.json: 10000 hosts in {time.perf_counter() - started:.3f}s")
    assert len(inventory.hosts) == 10_000
    assert inventory.get_host("node09999.example.com").vars["slot"] == 499
    collections = 1 + 20 + 10_000 + 20 + 10_000  # the root, groups, hostvars, hosts lists...
    assert len(visits) < collections + 100, len(visits)
    assert len({id(node) for node in visits}) == len(visits)  # none twice
