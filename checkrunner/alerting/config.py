"""`receivers`, `route` and `inhibit_rules` of a playbook, in Alertmanager's own form.

They sit beside `plays:` in the mapping form of a playbook, or in a shared file named by
`alerting: FILE` (relative to the playbook) so that many playbooks use one alerting file.
Every mistake is a ConfigError at its file:line:column, found before anything runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from checkrunner.alerting.matchers import Matcher, parse_matcher
from checkrunner.alerting.route import InhibitRule, Route, build_route
from checkrunner.config.coerce import OptionValueError, kind_of, parse_duration_value
from checkrunner.config.yaml_loader import (
    key_location,
    location_of,
    read_yaml,
    value_location,
)
from checkrunner.errors import ConfigError, Location, did_you_mean

ALERTING_KEYS = ("receivers", "route", "inhibit_rules")
ROUTE_KEYS = ("receiver", "matchers", "group_by", "continue", "repeat_interval", "routes")
INHIBIT_KEYS = ("source_matchers", "target_matchers", "equal")
RECEIVER_HINT = "write receivers: [{name: ops, webhook_configs: [{url: 'http://...'}]}]"


@dataclass
class ReceiverConfig:
    """One entry of a receiver's `<kind>_configs` list, as written (templates unrendered)."""

    receiver: str
    kind: str
    index: int
    options: dict[str, Any]
    location: Location


@dataclass
class AlertingSpec:
    receivers: dict[str, list[ReceiverConfig]]
    route: Route
    inhibit_rules: list[InhibitRule] = field(default_factory=list)
    file: str = ""


class AlertingParser:
    """Parses the alerting keys of one document; `problems` holds what is wrong."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[ConfigError] = []

    def parse(self, document: Mapping[Any, Any], root: Location) -> AlertingSpec | None:
        if "receivers" not in document and "route" not in document:
            return None
        receivers = self._receivers(document, root)
        if "route" not in document:
            self._add(
                "alerting needs a route:",
                key_location(document, "receivers", root),
                "add route: {receiver: NAME}",
            )
            return None
        route = self._route(
            document["route"], value_location(document, "route", root), None, receivers
        )
        rules = self._inhibit_rules(document, root)
        if route is None:
            return None
        return AlertingSpec(receivers=receivers, route=route, inhibit_rules=rules, file=self.file)

    # -- receivers -------------------------------------------------------------------------

    def _receivers(
        self, document: Mapping[Any, Any], root: Location
    ) -> dict[str, list[ReceiverConfig]]:
        from checkrunner.alerting import receivers as registry

        value = document.get("receivers")
        at = value_location(document, "receivers", root)
        if not isinstance(value, list) or not value:
            self._add(
                f"receivers: expected a list of receivers, not {kind_of(value)}", at, RECEIVER_HINT
            )
            return {}
        found: dict[str, list[ReceiverConfig]] = {}
        kinds = {f"{kind}_configs": kind for kind in registry.kinds()}
        for index, node in enumerate(value):
            where = value_location(value, index, at)
            if not isinstance(node, Mapping) or not isinstance(node.get("name"), str):
                self._add(f"receiver {index + 1} needs a name", where, RECEIVER_HINT)
                continue
            name = node["name"]
            if name in found:
                self._add(
                    f"receiver '{name}' is defined twice", where, "give each receiver its own name"
                )
            configs: list[ReceiverConfig] = []
            for key, entries in node.items():
                if key == "name":
                    continue
                if key not in kinds:
                    self._add(
                        _suggesting(f"receiver '{name}': unknown key '{key}'", key, kinds),
                        key_location(node, key, where),
                        f"a receiver has a name and any of: {', '.join(kinds)}",
                    )
                    continue
                configs += self._receiver_configs(name, kinds[key], entries, node, key, where)
            found[name] = configs
        return found

    def _receiver_configs(
        self, name: str, kind: str, entries: Any, node: Mapping[Any, Any], key: str, where: Location
    ) -> list[ReceiverConfig]:
        from checkrunner.config.normalize import check_option_set

        at = value_location(node, key, where)
        if not isinstance(entries, list):
            self._add(
                f"receiver '{name}': {key} is a list, not {kind_of(entries)}",
                at,
                f"write {key}: [{{...}}]",
            )
            return []
        configs = []
        for index, entry in enumerate(entries):
            entry_at = value_location(entries, index, at)
            if not isinstance(entry, Mapping):
                self._add(
                    f"receiver '{name}': {key} item {index + 1} must be a mapping",
                    entry_at,
                    f"see `checkrun doc` for {kind}",
                )
                continue
            owner = receiver_option_set(kind, index, name)
            _, problems = check_option_set(owner, entry, entry_at, keep_templates=True)
            self.problems.extend(problems)
            configs.append(ReceiverConfig(name, kind, index, dict(entry), entry_at))
        return configs

    # -- route -----------------------------------------------------------------------------

    def _route(
        self,
        node: Any,
        where: Location,
        parent: Route | None,
        receivers: dict[str, list[ReceiverConfig]],
    ) -> Route | None:
        if not isinstance(node, Mapping):
            self._add(
                f"route: expected a mapping, not {kind_of(node)}",
                where,
                "write route: {receiver: NAME}",
            )
            return None
        for key in node:
            if key not in ROUTE_KEYS:
                self._unknown(node, key, ROUTE_KEYS, "a route", where)
        receiver = node.get("receiver")
        if parent is None and not receiver:
            self._add(
                "the root route needs a receiver",
                where,
                "add receiver: NAME (every alert that no child route takes goes there)",
            )
        if receiver is not None and receiver not in receivers:
            self._add(
                _suggesting(f"route: no receiver named '{receiver}'", receiver, receivers),
                value_location(node, "receiver", where),
                f"receivers: {', '.join(receivers) or 'none defined'}",
            )
        matchers = self._matchers(node, "matchers", where)
        if parent is None and matchers:
            self._add(
                "the root route matches every alert: it takes no matchers",
                value_location(node, "matchers", where),
                "move the matchers to a child route under routes:",
            )
        group_by = self._names(node, "group_by", where)
        repeat = self._duration(node, "repeat_interval", where)
        continue_ = node.get("continue", False)
        if not isinstance(continue_, bool):
            self._add(
                "continue: expected true or false",
                value_location(node, "continue", where),
                "write continue: true",
            )
            continue_ = False
        route = build_route(receiver, matchers, group_by, repeat, continue_, [], parent)
        children = node.get("routes") or []
        children_at = value_location(node, "routes", where)
        if not isinstance(children, list):
            self._add(
                "routes: expected a list of routes",
                children_at,
                "write routes: [{matchers: [...], receiver: NAME}]",
            )
            children = []
        for index, child in enumerate(children):
            built = self._route(
                child, value_location(children, index, children_at), route, receivers
            )
            if built is not None:
                route.routes.append(built)
        return route

    def _matchers(self, node: Mapping[Any, Any], key: str, where: Location) -> tuple[Matcher, ...]:
        value = node.get(key)
        if value is None:
            return ()
        at = value_location(node, key, where)
        if not isinstance(value, list):
            value = [value]
        parsed = []
        for index, text in enumerate(value):
            try:
                parsed.append(parse_matcher(text))
            except ValueError as exc:
                self._add(
                    f"{key}: {exc}",
                    value_location(value, index, at),
                    'e.g. severity="critical" or team=~"db|infra"',
                )
        return tuple(parsed)

    def _names(self, node: Mapping[Any, Any], key: str, where: Location) -> tuple[str, ...] | None:
        value = node.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._add(
                f"{key}: expected a list of label names",
                value_location(node, key, where),
                f"write {key}: [alertname, host]",
            )
            return None
        return tuple(value)

    def _duration(self, node: Mapping[Any, Any], key: str, where: Location) -> float | None:
        if node.get(key) is None:
            return None
        try:
            return parse_duration_value(node[key])
        except OptionValueError as exc:
            self._add(f"{key}: {exc.message}", value_location(node, key, where), exc.hint)
            return None

    # -- inhibit_rules -------------------------------------------------------------------------

    def _inhibit_rules(self, document: Mapping[Any, Any], root: Location) -> list[InhibitRule]:
        value = document.get("inhibit_rules") or []
        at = value_location(document, "inhibit_rules", root)
        if not isinstance(value, list):
            self._add(
                "inhibit_rules: expected a list",
                at,
                "write inhibit_rules: [{source_matchers: [...], target_matchers: [...], equal: [host]}]",
            )
            return []
        rules = []
        for index, node in enumerate(value):
            where = value_location(value, index, at)
            if not isinstance(node, Mapping):
                self._add(
                    f"inhibit rule {index + 1} must be a mapping",
                    where,
                    "see Alertmanager's inhibit_rules",
                )
                continue
            for key in node:
                if key not in INHIBIT_KEYS:
                    self._unknown(node, key, INHIBIT_KEYS, "an inhibit rule", where)
            source = self._matchers(node, "source_matchers", where)
            target = self._matchers(node, "target_matchers", where)
            if not source or not target:
                self._add(
                    "an inhibit rule needs source_matchers and target_matchers",
                    where,
                    'e.g. source_matchers: [severity="critical"], target_matchers: [severity="warning"]',
                )
                continue
            rules.append(InhibitRule(source, target, self._names(node, "equal", where) or ()))
        return rules

    # -- helpers --------------------------------------------------------------------------------

    def _unknown(
        self, node: Mapping[Any, Any], key: Any, known: tuple[str, ...], what: str, where: Location
    ) -> None:
        self._add(
            _suggesting(f"unknown key '{key}' in {what}", key, known),
            key_location(node, key, where),
            f"{what} takes: {', '.join(known)}",
        )

    def _add(self, message: str, location: Location, hint: str | None = None) -> None:
        self.problems.append(ConfigError(message, location, hint))


def _suggesting(message: str, word: Any, choices: Any) -> str:
    suggestion = did_you_mean(str(word), list(choices))
    return f"{message} — {suggestion}" if suggestion else message


def receiver_option_set(kind: str, index: int, receiver: str):
    """The option spec of one `<kind>_configs` entry, for checking it (OptionSet)."""
    from checkrunner.alerting import receivers as registry
    from checkrunner.config.normalize import OptionSet

    module = registry.get(kind)
    return OptionSet(
        f"{kind}_configs item {index + 1} of receiver '{receiver}'",
        module.OPTIONS,
        getattr(module, "REQUIRED_ONE_OF", ()),
        getattr(module, "MUTUALLY_EXCLUSIVE", ()),
        takes=f"{kind} takes: {', '.join(module.OPTIONS)}",
    )


def parse_alerting_file(
    path: str, referenced_at: Location
) -> tuple[AlertingSpec | None, list[ConfigError]]:
    """The alerting keys of a shared file named by `alerting: FILE`."""
    if not os.path.exists(path):
        return None, [
            ConfigError(
                f"alerting file {path} does not exist",
                referenced_at,
                "fix the path (relative to the playbook)",
            )
        ]
    document, problems = read_yaml(path, "alerting file")
    if problems:
        return None, problems
    root = location_of(document, Location(path, 1, 1))
    if not isinstance(document, Mapping):
        return None, [
            ConfigError(
                f"an alerting file is a mapping with receivers: and route:, not {kind_of(document)}",
                root,
                "write receivers: [{name: ops, webhook_configs: [...]}] and route: {receiver: ops}",
            )
        ]
    parser = AlertingParser(path)
    for key in document:
        if key not in ALERTING_KEYS:
            parser._unknown(document, key, ALERTING_KEYS, "an alerting file", root)
    spec = parser.parse(document, root)
    if spec is None and not parser.problems:
        parser._add("the alerting file has no receivers: or route:", root, RECEIVER_HINT)
    return spec, parser.problems
