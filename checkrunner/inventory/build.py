"""From parsed drafts to the Inventory: group tree checks, implicit groups, and Ansible's variable precedence.

Variables merge lowest to highest exactly as Ansible's documented precedence (levels 3-10):

1. the inventory file's vars for 'all'
2. the inventory file's vars for the host's other groups, in group order
3. group_vars/all beside each inventory source, then beside the playbook
4. group_vars/GROUP beside each inventory source, then beside the playbook, in group order
5. the inventory file's vars for the host
6. host_vars/HOST beside each inventory source, then beside the playbook

Group order is Ansible's: shallower groups first (parents before children), ties broken by
ansible_group_priority (higher wins) and then by name. Note levels 2 < 3: group_vars/all.yml
beats `[web:vars]` written in the inventory file, as in Ansible.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from checkrunner.errors import ConfigError, Location, did_you_mean, suggest
from checkrunner.inventory.data import ALL, UNGROUPED, GroupDraft, HostDraft, InventoryData
from checkrunner.inventory.inventory import Inventory
from checkrunner.inventory.model import LOCALHOST_NAMES, Group, Host, InventoryWarning
from checkrunner.inventory.vars_dirs import LoadedVars, VarsDirectory

GROUP_PRIORITY_VAR = "ansible_group_priority"


@dataclass
class VarsSource:
    """The group_vars/ and host_vars/ directories of one base directory."""

    base: str
    group_vars: VarsDirectory
    host_vars: VarsDirectory

    @classmethod
    def at(cls, base: str, warnings: list[InventoryWarning]) -> VarsSource:
        return cls(
            base,
            VarsDirectory(os.path.join(base, "group_vars"), warnings),
            VarsDirectory(os.path.join(base, "host_vars"), warnings),
        )


def build_inventory(
    data: InventoryData, vars_sources: list[VarsSource], sources: list[str]
) -> Inventory:
    """vars_sources: inventory-side directories first, the playbook's last (it wins)."""
    _check_references(data)
    _attach_top_level_groups(data)
    depths = _group_depths(data)
    _reconcile_ungrouped(data)
    merger = _VarsMerger(data, vars_sources, depths)
    groups = {name: merger.group(name) for name in data.groups}
    hosts = {name: merger.host(draft) for name, draft in data.hosts.items()}
    implicit = {
        name: merger.implicit_localhost(name) for name in LOCALHOST_NAMES if name not in hosts
    }
    data.warnings.extend(_unused_vars_files(vars_sources, groups, hosts))
    return Inventory(hosts, groups, implicit, sources, data.warnings)


def _check_references(data: InventoryData) -> None:
    declared = [name for name, group in data.groups.items() if group.declared]
    for ref in data.references:
        if data.groups[ref.group].declared:
            continue
        if ref.parent is None:
            message = f"[{ref.group}:vars] sets variables for group '{ref.group}', which is defined nowhere"
        else:
            message = (
                f"[{ref.parent}:children] lists '{ref.group}', which is not defined as a group"
            )
        hint = (
            did_you_mean(ref.group, declared)
            or f"add a [{ref.group}] section listing its hosts (it may be empty)"
        )
        raise ConfigError(message, ref.location, hint)


def _attach_top_level_groups(data: InventoryData) -> None:
    for name, group in list(data.groups.items()):
        if name != ALL and not group.parents:
            data.add_child(ALL, name, group.location or Location("<inventory>"))


def _group_depths(data: InventoryData) -> dict[str, int]:
    """Longest distance of each group from 'all'; a cycle among children is an error."""
    waiting = {name: len(group.parents) for name, group in data.groups.items()}
    depths = {ALL: 0}
    ready = [ALL]
    while ready:
        name = ready.pop()
        for child in data.groups[name].children:
            depths[child] = max(depths.get(child, 0), depths[name] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    stuck = [name for name, count in waiting.items() if count > 0]
    if stuck:
        raise _cycle_error(data, stuck)
    return depths


def _cycle_error(data: InventoryData, stuck: list[str]) -> ConfigError:
    stuck_set = set(stuck)
    path = [stuck[0]]
    while True:
        child = next(c for c in data.groups[path[-1]].children if c in stuck_set)
        if child in path:
            cycle = path[path.index(child) :] + [child]
            location = data.edges.get((path[-1], child))
            return ConfigError(
                "groups contain each other: " + " -> ".join(cycle),
                location,
                "a group cannot be its own ancestor; remove one of these children entries",
            )
        path.append(child)


def _reconcile_ungrouped(data: InventoryData) -> None:
    """'ungrouped' holds exactly the hosts that are in no group other than 'all'."""
    ungrouped = data.groups[UNGROUPED]
    for host in data.hosts.values():
        in_other_groups = any(name not in (ALL, UNGROUPED) for name in host.groups)
        if in_other_groups and UNGROUPED in host.groups:
            del host.groups[UNGROUPED]
            del ungrouped.hosts[host.name]
        elif not in_other_groups and UNGROUPED not in host.groups:
            host.groups[UNGROUPED] = None
            ungrouped.hosts[host.name] = None


class _VarsMerger:
    def __init__(self, data: InventoryData, vars_sources: list[VarsSource], depths: dict[str, int]):
        self._data = data
        self._sources = vars_sources
        self._depths = depths
        self._own: dict[str, LoadedVars] = {}
        self._ancestors: dict[str, frozenset[str]] = {}
        self._by_membership: dict[tuple[str, ...], tuple[list[str], LoadedVars]] = {}

    def group(self, name: str) -> Group:
        draft = self._data.groups[name]
        own = self._own_group_vars(name)
        return Group(
            name=name,
            hosts=list(draft.hosts),
            children=list(draft.children),
            parents=list(draft.parents),
            vars=own.values,
            depth=self._depths[name],
            priority=self._priority(name),
            location=draft.location,
            var_locations=own.locations,
        )

    def host(self, draft: HostDraft) -> Host:
        group_names, merged = self._membership_vars(tuple(draft.groups))
        values, locations = dict(merged.values), dict(merged.locations)
        values.update(draft.vars)
        locations.update(draft.var_locations)
        self._apply_host_vars(draft.name, values, locations)
        return Host(draft.name, values, group_names, draft.location, locations, draft.source)

    def implicit_localhost(self, name: str) -> Host:
        """Ansible's implicit localhost: local connection, this interpreter, in no group but 'all' vars apply."""
        _, merged = self._membership_vars(())
        values, locations = dict(merged.values), dict(merged.locations)
        values.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
        for key in ("ansible_connection", "ansible_python_interpreter"):
            locations.pop(key, None)
        self._apply_host_vars(name, values, locations)
        return Host(name, values, [], None, locations, None, implicit=True)

    def _membership_vars(self, direct_groups: tuple[str, ...]) -> tuple[list[str], LoadedVars]:
        """Group names (sorted) and group-level merged vars for hosts with these direct groups; cached."""
        cached = self._by_membership.get(direct_groups)
        if cached is None:
            names: set[str] = set()
            for group in direct_groups:
                names |= self._ancestors_of(group)
            names.discard(ALL)
            cached = (sorted(names), self._merge_group_levels(self._precedence_order(names)))
            self._by_membership[direct_groups] = cached
        return cached

    def _merge_group_levels(self, ordered_groups: list[str]) -> LoadedVars:
        merged = LoadedVars()
        _apply(merged, self._inventory_vars(ALL))
        for group in ordered_groups:
            _apply(merged, self._inventory_vars(group))
        for source in self._sources:
            _apply(merged, source.group_vars.vars_for(ALL))
        for source in self._sources:
            for group in ordered_groups:
                _apply(merged, source.group_vars.vars_for(group))
        return merged

    def _apply_host_vars(
        self, name: str, values: dict[str, Any], locations: dict[str, Location]
    ) -> None:
        for source in self._sources:
            loaded = source.host_vars.vars_for(name)
            if loaded is not None:
                values.update(loaded.values)
                locations.update(loaded.locations)

    def _precedence_order(self, names: set[str]) -> list[str]:
        return sorted(names, key=lambda name: (self._depths[name], self._priority(name), name))

    def _priority(self, name: str) -> int:
        own = self._own_group_vars(name)
        value = own.values.get(GROUP_PRIORITY_VAR, 1)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, str))
            or not str(value).strip().lstrip("-").isdigit()
        ):
            raise ConfigError(
                f"group '{name}': {GROUP_PRIORITY_VAR} must be an integer, got {value!r}",
                own.locations.get(GROUP_PRIORITY_VAR) or self._data.groups[name].location,
                f"write {GROUP_PRIORITY_VAR}=10 (a higher priority wins)",
            )
        return int(value)

    def _own_group_vars(self, name: str) -> LoadedVars:
        """The group's inventory-file vars, then its group_vars/ files (inventory side, then playbook)."""
        if name not in self._own:
            own = LoadedVars()
            _apply(own, self._inventory_vars(name))
            for source in self._sources:
                _apply(own, source.group_vars.vars_for(name))
            self._own[name] = own
        return self._own[name]

    def _inventory_vars(self, name: str) -> LoadedVars:
        draft: GroupDraft = self._data.groups[name]
        return LoadedVars(draft.vars, draft.var_locations)

    def _ancestors_of(self, name: str) -> frozenset[str]:
        if name not in self._ancestors:
            found = {name}
            for parent in self._data.groups[name].parents:
                found |= self._ancestors_of(parent)
            self._ancestors[name] = frozenset(found)
        return self._ancestors[name]


def _apply(target: LoadedVars, layer: LoadedVars | None) -> None:
    if layer is not None:
        target.values.update(layer.values)
        target.locations.update(layer.locations)


def _unused_vars_files(
    vars_sources: list[VarsSource], groups: dict[str, Group], hosts: dict[str, Host]
) -> list[InventoryWarning]:
    """Vars files whose name is close to, but not, a group or host name: almost always a typo."""
    warnings = []
    for source in vars_sources:
        for directory, known, kind in (
            (source.group_vars, groups, "group"),
            (source.host_vars, hosts, "host"),
        ):
            for name in directory.entity_names():
                if name in known or name in LOCALHOST_NAMES:
                    continue
                close = suggest(name, known)
                if close:
                    warnings.append(
                        InventoryWarning(
                            f"{os.path.basename(directory.path)}/{name} matches no {kind}; did you mean '{close}'?",
                            Location(os.path.join(directory.path, name)),
                        )
                    )
    return warnings
