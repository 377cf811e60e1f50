"""The loaded inventory: hosts, groups, and host pattern selection as Ansible does it."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from checkrunner.errors import ConfigError, Location
from checkrunner.inventory.data import HOST_LIST
from checkrunner.inventory.model import LOCALHOST_NAMES, Group, Host, InventoryWarning
from checkrunner.inventory.patterns import Term, compile_matcher, is_plain_name, parse_terms

Pattern = Union[str, Sequence[str]]
LIMIT_LOCATION = Location("--limit")  # where a --limit pattern comes from, for its errors


@dataclass
class Selection:
    hosts: list[Host]
    unmatched: list[str] = field(default_factory=list)  # pattern parts that matched no host


class Inventory:
    """Hosts (name -> Host, definition order) and groups (name -> Group, 'all' and 'ungrouped' first)."""

    def __init__(
        self,
        hosts: dict[str, Host],
        groups: dict[str, Group],
        implicit_localhosts: dict[str, Host],
        sources: list[str],
        warnings: list[InventoryWarning],
    ):
        self.hosts = hosts
        self.groups = groups
        self.sources = sources
        self.warnings = warnings
        self.unmatched_patterns: list[str] = []  # every part of every select() that matched nothing
        self._implicit_localhosts = implicit_localhosts
        self._implicit_localhost: Host | None = None  # the one made, under the first name asked
        self._members: dict[str, list[Host]] = {}
        self._groups_var: dict[str, list[str]] | None = None

    def select(
        self, pattern: Pattern, *, limit: Pattern | None = None, location: Location | None = None
    ) -> list[Host]:
        """Hosts matching an Ansible host pattern (and the --limit pattern, if any), in Ansible's order.

        Parts that match nothing are not errors: they are added to `unmatched_patterns` so the
        caller can warn "host pattern 'x' matched no hosts".
        """
        selection = self.match(pattern, limit=limit, location=location)
        for part in selection.unmatched:
            if part not in self.unmatched_patterns:
                self.unmatched_patterns.append(part)
        return selection.hosts

    def match(
        self, pattern: Pattern, *, limit: Pattern | None = None, location: Location | None = None
    ) -> Selection:
        """Like select(), returning the unmatched parts instead of recording them."""
        selection = self._evaluate(parse_terms(pattern, location), location)
        if limit is None:
            return selection
        allowed = self._evaluate(
            parse_terms(self._limit_patterns(limit), LIMIT_LOCATION), LIMIT_LOCATION
        )
        names = {host.name for host in allowed.hosts}
        hosts = [host for host in selection.hosts if host.name in names]
        return Selection(hosts, selection.unmatched + allowed.unmatched)

    def list_hosts(self) -> list[Host]:
        """Every host the inventory defines, in definition order (not the implicit localhost)."""
        return list(self.hosts.values())

    def group_names(self) -> list[str]:
        return list(self.groups)

    def get_host(self, name: str) -> Host | None:
        """A host by name; 'localhost', '127.0.0.1' and '::1' give the implicit localhost if undefined."""
        return self.hosts.get(name) or self._implicit(name)

    def group_hosts(self, name: str) -> list[Host]:
        """Hosts of a group and its descendants: the group's own first, then each generation of children."""
        if name not in self._members:
            self._members[name] = self._collect_members(name)
        return self._members[name]

    def magic_vars(self, host: Host) -> dict[str, Any]:
        """Ansible's inventory magic variables for templates (the `groups` mapping is shared: do not mutate)."""
        return {
            "inventory_hostname": host.name,
            "inventory_hostname_short": host.name.split(".", 1)[0],
            "group_names": list(host.groups),
            "groups": self._groups_mapping(),
            "inventory_file": host.source,
            "inventory_dir": _inventory_dir(host),
        }

    def to_dict(self) -> dict[str, Any]:
        """The shape `ansible-inventory --list` prints, host vars fully merged; loadable as a source."""
        listing: dict[str, Any] = {
            "_meta": {"hostvars": {name: dict(h.vars) for name, h in self.hosts.items()}}
        }
        for group in self.groups.values():
            entry: dict[str, Any] = {}
            if group.hosts:
                entry["hosts"] = list(group.hosts)
            if group.children:
                entry["children"] = list(group.children)
            if group.vars:
                entry["vars"] = dict(group.vars)
            listing[group.name] = entry
        return listing

    def _evaluate(self, terms: list[Term], location: Location | None) -> Selection:
        hosts: list[Host] = []
        unmatched: list[str] = []
        for term in terms:
            matched = self._match_term(term, location)
            if not matched and not term.implicit:
                unmatched.append(term.text)
            hosts = _combine(hosts, matched, term.operator)
        return Selection(hosts, unmatched)

    def _match_term(self, term: Term, location: Location | None) -> list[Host]:
        if term.operator == "" and term.subscript is None and term.expression in self.hosts:
            return [self.hosts[term.expression]]
        matched = self._enumerate(term.expression, location)
        return term.subscript.apply(matched) if term.subscript else matched

    def _enumerate(self, expression: str, location: Location | None) -> list[Host]:
        """Hosts of the groups the expression names; hosts by name when no group matched or it is a glob."""
        if is_plain_name(expression):
            group_names = [expression] if expression in self.groups else []
        else:
            matcher = compile_matcher(expression, location)
            group_names = [name for name in self.groups if matcher(name)]
        results = [host for name in group_names for host in self.group_hosts(name)]
        if not group_names or not is_plain_name(expression) or "." in expression:
            results.extend(self._hosts_named(expression, location))
        if not results and expression in LOCALHOST_NAMES:
            results.append(self._implicit(expression))
        return _unique(results)

    def _implicit(self, name: str) -> Host | None:
        """As Ansible: 'localhost', '127.0.0.1' and '::1' are one implicit host, named by the
        first of them a pattern asked for (`hosts: localhost:127.0.0.1` runs it once)."""
        if name not in self._implicit_localhosts:
            return None
        if self._implicit_localhost is None:
            self._implicit_localhost = self._implicit_localhosts[name]
        return self._implicit_localhost

    def _hosts_named(self, expression: str, location: Location | None) -> list[Host]:
        if is_plain_name(expression):
            host = self.hosts.get(expression)
            return [host] if host else []
        matcher = compile_matcher(expression, location)
        return [host for name, host in self.hosts.items() if matcher(name)]

    def _collect_members(self, name: str) -> list[Host]:
        members: dict[str, Host] = {}
        queue = deque([name])
        visited = {name}
        while queue:
            group = self.groups[queue.popleft()]
            for host_name in group.hosts:
                members.setdefault(host_name, self.hosts[host_name])
            for child in group.children:
                if child not in visited:
                    visited.add(child)
                    queue.append(child)
        return list(members.values())

    def _groups_mapping(self) -> dict[str, list[str]]:
        if self._groups_var is None:
            self._groups_var = {
                name: [h.name for h in self.group_hosts(name)] for name in self.groups
            }
        return self._groups_var

    @staticmethod
    def _limit_patterns(limit: Pattern) -> list[str]:
        """--limit parts; '@file' reads one pattern per line, as Ansible's retry files are written."""
        items = [limit] if isinstance(limit, str) else list(limit)
        patterns: list[str] = []
        for item in items:
            if not item.startswith("@"):
                patterns.append(item)
                continue
            try:
                with open(item[1:], encoding="utf-8") as handle:
                    patterns.extend(line.strip() for line in handle if line.strip())
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the limit file '{item[1:]}': {exc.strerror}",
                    LIMIT_LOCATION,
                    "--limit @FILE reads one host or pattern per line",
                ) from None
        return patterns


def _combine(hosts: list[Host], matched: list[Host], operator: str) -> list[Host]:
    if operator == "&":
        keep = {host.name for host in matched}
        return [host for host in hosts if host.name in keep]
    if operator == "!":
        drop = {host.name for host in matched}
        return [host for host in hosts if host.name not in drop]
    return _unique(hosts + matched)


def _unique(hosts: list[Host]) -> list[Host]:
    seen: dict[str, Host] = {}
    for host in hosts:
        seen.setdefault(host.name, host)
    return list(seen.values())


def _inventory_dir(host: Host) -> str | None:
    """The inventory file's folder; None for `-i web1,web2` lists (whose inventory_file is the
    list itself) and the implicit localhost, as in Ansible."""
    if not host.source or (host.location is not None and host.location.file == HOST_LIST):
        return None
    return os.path.dirname(host.source)
