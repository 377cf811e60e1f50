"""What the inventory parsers fill in: groups, hosts and variables with where each was defined."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from checkrunner.errors import ConfigError, Location
from checkrunner.inventory.model import InventoryWarning

ALL = "all"
UNGROUPED = "ungrouped"


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

    def group(self, name: str, location: Location, declare: bool = True) -> GroupDraft:
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = GroupDraft(name, location)
        if group.location is None:
            group.location = location
        group.declared = group.declared or declare
        return group

    def add_host(
        self, name: str, group_name: str, location: Location, source: str | None
    ) -> HostDraft:
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = HostDraft(name, location, source)
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
        draft.vars[key] = value
        draft.var_locations[key] = location

    def set_host_vars(
        self, host: HostDraft, values: dict[str, Any], locations: dict[str, Location]
    ) -> None:
        host.vars.update(values)
        host.var_locations.update(locations)
