"""What the inventory parsers fill in: groups, hosts and variables with where each was defined."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checkrunner.errors import ConfigError, Location, quote
from checkrunner.inventory.hostnames import is_ascii_number
from checkrunner.inventory.model import InventoryWarning

ALL = "all"
UNGROUPED = "ungrouped"
GROUP_PRIORITY_VAR = "ansible_group_priority"
HOST_LIST = "<host list>"  # the location file of hosts from `-i web1,web2`


@dataclass
class GroupDraft:
    name: str
    location: Location | None = None
    declared: bool = False  # by [name], [name:children], a YAML group, or being implicit
    hosts: dict[str, None] = field(default_factory=dict)  # an ordered set
    children: dict[str, None] = field(default_factory=dict)
    parents: dict[str, None] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    var_locations: dict[str, Location] = field(default_factory=dict)
    priority: int = 1  # ansible_group_priority, from the inventory source only (as Ansible)


@dataclass
class HostDraft:
    name: str
    location: Location
    source: str | None
    groups: dict[str, None] = field(default_factory=dict)  # direct memberships
    vars: dict[str, Any] = field(default_factory=dict)
    var_locations: dict[str, Location] = field(default_factory=dict)


@dataclass
class GroupReference:
    """An INI section that names a group which must be declared somewhere in the inventory."""

    group: str
    location: Location
    parent: str | None = None  # set for [parent:children] entries; None for [group:vars]


@dataclass
class InventoryData:
    groups: dict[str, GroupDraft] = field(default_factory=dict)
    hosts: dict[str, HostDraft] = field(default_factory=dict)
    references: list[GroupReference] = field(default_factory=list)
    edges: dict[tuple[str, str], Location] = field(default_factory=dict)  # (parent, child) -> where
    warnings: list[InventoryWarning] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in (ALL, UNGROUPED):
            self.groups[name] = GroupDraft(name, declared=True)
        # Ansible's InventoryData starts with this edge: 'ungrouped' is all's first child
        self.groups[ALL].children[UNGROUPED] = None
        self.groups[UNGROUPED].parents[ALL] = None

    def group(self, name: str, location: Location, declare: bool = True) -> GroupDraft:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = GroupDraft(name, location)
        if group.location is None:
            group.location = location
        group.declared = group.declared or declare
        return group

    def add_host(
        self,
        name: str,
        group_name: str,
        location: Location,
        source: str | None,
        port: int | None = None,
    ) -> HostDraft:
        """The host, made on first sight; a `name:port` port counts only then (as in Ansible, a
        host listed again with another port keeps the first; ansible_port= still overrides)."""
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = HostDraft(name, location, source)
            if port is not None:
                self.set_host_vars(host, {"ansible_port": port}, {"ansible_port": location})
        group = self.group(group_name, location, declare=False)
        group.hosts[name] = None
        host.groups[group_name] = None
        return host

    def add_child(self, parent: str, child: str, location: Location) -> None:
        if child == ALL:
            raise ConfigError(
                "group 'all' cannot be a child of another group",
                location,
                "every group is already inside 'all'",
            )
        if child == parent:
            raise ConfigError(
                f"group '{child}' cannot be a child of itself",
                location,
                "remove it from its own :children list",
            )
        self.group(parent, location, declare=False).children[child] = None
        self.group(child, location, declare=False).parents[parent] = None
        self.edges.setdefault((parent, child), location)

    def set_group_var(self, group: str, key: str, value: Any, location: Location) -> None:
        draft = self.group(group, location, declare=False)
        if key == GROUP_PRIORITY_VAR:  # Ansible makes it the group's priority, not a variable
            draft.priority = _priority(group, value, location)
            return
        draft.vars[key] = value
        draft.var_locations[key] = location

    def set_host_vars(
        self, host: HostDraft, values: dict[str, Any], locations: dict[str, Location]
    ) -> None:
        host.vars.update(values)
        host.var_locations.update(locations)


def _priority(group: str, value: Any, location: Location) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and is_ascii_number(value.strip().removeprefix("-")):
        return int(value)
    raise ConfigError(
        f"group '{group}': {GROUP_PRIORITY_VAR} must be an integer, got {quote(value)}",
        location,
        f"write {GROUP_PRIORITY_VAR}=10 (a higher priority wins)",
    )
