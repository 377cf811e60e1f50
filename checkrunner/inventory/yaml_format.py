"""Ansible's YAML inventory format (`all: {hosts:, children:, vars:}`) and `ansible-inventory --list` JSON."""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from checkrunner.errors import ConfigError, HostEntryError, Location, did_you_mean
from checkrunner.inventory.data import UNGROUPED, InventoryData
from checkrunner.inventory.hostnames import parse_host_entry
from checkrunner.yamlio.nodes import YamlDocument, describe, is_null

GROUP_KEYS = ("hosts", "children", "vars")
_EXAMPLE_INDENT = "\n" + " " * len(
    "  hint: "
)  # aligns example lines under ConfigError's "  hint: "


def parse_yaml_inventory(doc: YamlDocument, data: InventoryData) -> None:
    root = doc.root
    if is_null(root):
        return
    if not isinstance(root, MappingNode):
        raise ConfigError(
            f"an inventory must be a mapping of group names, not {describe(root, show_text=False)}",
            doc.location(root),
            "start with the 'all' group, e.g."
            + _example("all:", "  hosts:", "    web1.example.com:", "      ansible_port: 2222"),
        )
    items = doc.items(root, "the inventory")
    keys = {key.value: value for key, value in items}
    if "plugin" in keys:
        raise _plugin_config_error(doc, keys["plugin"])
    if "_meta" in keys:
        _parse_listing(doc, items, data)
        return
    for key_node, value_node in items:
        _parse_group(doc, data, key_node, value_node, parent=None)


def _parse_group(
    doc: YamlDocument, data: InventoryData, key: ScalarNode, node: Node, parent: str | None
) -> None:
    name, location = key.value, doc.location(key)
    data.group(name, location)
    if parent is not None:
        data.add_child(parent, name, location)
    for section, value in _group_sections(doc, name, node):
        if section.value == "hosts":
            _parse_hosts(doc, data, name, value)
        elif section.value == "children":
            _parse_children(doc, data, name, value)
        elif section.value == "vars":
            values, locations = doc.vars_mapping(value, f"vars of group '{name}'")
            for var, var_value in values.items():
                data.set_group_var(name, var, var_value, locations[var])
        else:
            raise ConfigError(
                f"unknown key '{section.value}' in group '{name}'; a group has only hosts, children and vars",
                doc.location(section),
                did_you_mean(section.value, GROUP_KEYS)
                or "put hosts under 'hosts:' and child groups under 'children:'",
            )


def _parse_hosts(doc: YamlDocument, data: InventoryData, group: str, node: Node) -> None:
    if is_null(node):
        return
    if isinstance(node, ScalarNode) and node.value.strip():
        _add_host_entry(doc, data, group, node, {}, {})  # `hosts: web1` is one host, as in Ansible
        return
    if not isinstance(node, MappingNode):
        raise ConfigError(
            f"'hosts' of group '{group}' must be a mapping of host names to their variables, not {describe(node)}",
            doc.location(node),
            _hosts_mapping_hint(node),
        )
    for key, value in doc.items(node, f"hosts of group '{group}'"):
        if not is_null(value) and not isinstance(value, MappingNode):
            raise ConfigError(
                f"host '{key.value}' must map to its variables, not {describe(value)}",
                doc.location(value),
                _host_value_hint(key.value, value),
            )
        values, locations = doc.vars_mapping(value, f"host '{key.value}'")
        _add_host_entry(doc, data, group, key, values, locations)


def _add_host_entry(
    doc: YamlDocument,
    data: InventoryData,
    group: str,
    key: ScalarNode,
    values: dict[str, Any],
    locations: dict[str, Location],
) -> None:
    location = doc.location(key)
    try:
        entry = parse_host_entry(key.value)
    except HostEntryError as exc:
        raise ConfigError(str(exc), location, _host_name_hint(key.value)) from None
    for name in entry.names:
        host = data.add_host(name, group, location, doc.path, entry.port)
        data.set_host_vars(host, values, locations)


def _parse_children(doc: YamlDocument, data: InventoryData, group: str, node: Node) -> None:
    if is_null(node):
        return
    if not isinstance(node, MappingNode):
        names = _scalar_items(node)[:3] or ["web", "db"]
        raise ConfigError(
            f"'children' of group '{group}' must be a mapping of group names, not {describe(node)}",
            doc.location(node),
            "write each child group as a key:"
            + _example("children:", *(f"  {name}:" for name in names)),
        )
    for key, value in doc.items(node, f"children of group '{group}'"):
        _parse_group(doc, data, key, value, parent=group)


def _parse_listing(
    doc: YamlDocument, items: list[tuple[ScalarNode, Node]], data: InventoryData
) -> None:
    """The JSON printed by `ansible-inventory --list` (and inventory scripts): groups list their hosts."""
    hostvars: dict[str, Node] = {}
    for key, value in items:
        if key.value == "_meta":
            hostvars = _listing_hostvars(doc, value)
    for key, value in items:
        if key.value != "_meta":
            _parse_listing_group(doc, data, key, value)
    for name, vars_node in hostvars.items():
        host = data.hosts.get(name) or data.add_host(
            name, UNGROUPED, doc.location(vars_node), doc.path
        )
        values, locations = doc.vars_mapping(vars_node, f"hostvars of '{name}'")
        data.set_host_vars(host, values, locations)


def _listing_hostvars(doc: YamlDocument, meta: Node) -> dict[str, Node]:
    if is_null(meta):
        return {}
    if not isinstance(meta, MappingNode):
        raise ConfigError(
            f"'_meta' must be a mapping, not {describe(meta)}",
            doc.location(meta),
            "write _meta: {hostvars: {HOST: {name: value}}}",
        )
    for key, value in doc.items(meta, "_meta"):
        if key.value == "hostvars" and isinstance(value, MappingNode):
            return {host.value: vars_node for host, vars_node in doc.items(value, "_meta.hostvars")}
    return {}


def _parse_listing_group(
    doc: YamlDocument, data: InventoryData, key: ScalarNode, node: Node
) -> None:
    name = key.value
    data.group(name, doc.location(key))
    if isinstance(node, SequenceNode):  # the old script form: "group": ["host1", "host2"]
        _add_listed_hosts(doc, data, name, node)
        return
    for section, value in _group_sections(doc, name, node):
        if section.value == "hosts":
            _add_listed_hosts(doc, data, name, value)
        elif section.value == "children":
            for child in _scalar_nodes(doc, value, f"children of group '{name}'"):
                data.group(child.value, doc.location(child))
                data.add_child(name, child.value, doc.location(child))
        elif section.value == "vars":
            values, locations = doc.vars_mapping(value, f"vars of group '{name}'")
            for var, var_value in values.items():
                data.set_group_var(name, var, var_value, locations[var])


def _add_listed_hosts(doc: YamlDocument, data: InventoryData, group: str, node: Node) -> None:
    for host in _scalar_nodes(doc, node, f"hosts of group '{group}'"):
        data.add_host(host.value, group, doc.location(host), doc.path)


def _scalar_nodes(doc: YamlDocument, node: Node, what: str) -> list[ScalarNode]:
    if is_null(node):
        return []
    if not isinstance(node, SequenceNode) or not all(
        isinstance(item, ScalarNode) for item in node.value
    ):
        raise ConfigError(
            f"{what} must be a list of names", doc.location(node), "write it as [name1, name2]"
        )
    return node.value


def _group_sections(doc: YamlDocument, name: str, node: Node) -> list[tuple[ScalarNode, Node]]:
    """The (key, value) sections of group `name` (none for `name:` alone); ConfigError when
    the group is not a mapping."""
    if is_null(node):
        return []
    if not isinstance(node, MappingNode):
        raise _group_not_mapping(doc, name, node)
    return doc.items(node, f"group '{name}'")


def _group_not_mapping(doc: YamlDocument, name: str, node: Node) -> ConfigError:
    hosts = _scalar_items(node)[:3] or ["web1.example.com"]
    return ConfigError(
        f"group '{name}' must be a mapping with hosts, children and/or vars, not {describe(node)}",
        doc.location(node),
        "list hosts under 'hosts:', e.g."
        + _example(f"{name}:", "  hosts:", *(f"    {host}:" for host in hosts)),
    )


def _hosts_mapping_hint(node: Node) -> str:
    names = _scalar_items(node)[:3] or ["web1.example.com", "web2.example.com"]
    return (
        "in YAML inventories each host is a key, with its variables (if any) under it:"
        + _example("hosts:", *(f"  {name}:" for name in names))
    )


def _example(*lines: str) -> str:
    return "".join(_EXAMPLE_INDENT + line for line in lines)


def _host_value_hint(name: str, value: Node) -> str:
    address = next(iter(_scalar_items(value)), "10.0.0.5")
    return f"write `{name}:` alone, or `{name}: {{ansible_host: {address}}}` to set variables"


def _host_name_hint(name: str) -> str | None:
    """For INI habits in YAML ('web1 ansible_host=10.0.0.1:'), the YAML way to say the same."""
    host, *assignments = name.split()
    pairs = [item.partition("=") for item in assignments]
    if not pairs or not all(sep for _, sep, _ in pairs):
        return None
    variables = ", ".join(f"{key}: {value}" for key, _, value in pairs)
    return f"INI-style `key=value` does not work in YAML; write `{host}: {{{variables}}}`"


def _scalar_items(node: Node) -> list[str]:
    if isinstance(node, SequenceNode):
        return [item.value for item in node.value if isinstance(item, ScalarNode)]
    if isinstance(node, ScalarNode) and node.value:
        return [node.value]
    return []


def _plugin_config_error(doc: YamlDocument, plugin: Node) -> ConfigError:
    name = plugin.value if isinstance(plugin, ScalarNode) else "?"
    return ConfigError(
        f"this is a configuration for the dynamic inventory plugin '{name}', which checkrunner does not run",
        doc.location(plugin),
        f"export the hosts once with `ansible-inventory -i {doc.path} --list > inventory.json` and use that file",
    )
