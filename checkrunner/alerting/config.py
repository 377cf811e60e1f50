"""`receivers`, `route` and `inhibit_rules` of a playbook, in Alertmanager's own form.

They sit beside `plays:` in the mapping form of a playbook, or in a shared file named by
`alerting: FILE` (relative to the playbook) so that many playbooks use one alerting file;
that file may be an Alertmanager 0.25 configuration as it is (`global`, the legacy
`match`/`match_re`/`source_match`/`target_match`, `time_intervals`, `http_config`, the
timers). What Alertmanager rejects is rejected, each mistake a ConfigError at its
file:line:column found before anything runs; what checkrun does not do (Go `templates`,
PagerDuty, Opsgenie, ...) is a warning that names the alternative.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from checkrunner.alerting.matchers import (
    LABEL_NAME,
    MATCHER_HINT,
    Matcher,
    new_matcher,
    parse_matchers,
    sort_matchers,
)
from checkrunner.alerting.route import GROUP_BY_ALL, InhibitRule, Route, RouteTimers, build_route
from checkrunner.alerting.timeinterval import NamedInterval, parse_interval
from checkrunner.config.coerce import kind_of
from checkrunner.errors import ConfigError, Location, did_you_mean
from checkrunner.yamlio.marked import (
    MarkedMap,
    key_location,
    location_of,
    read_yaml,
    value_location,
)

ALERTING_KEYS = (
    "receivers",
    "route",
    "inhibit_rules",
    "global",
    "templates",
    "time_intervals",
    "mute_time_intervals",
)
ROUTE_KEYS = (
    "receiver",
    "matchers",
    "match",
    "match_re",
    "group_by",
    "continue",
    "group_wait",
    "group_interval",
    "repeat_interval",
    "mute_time_intervals",
    "active_time_intervals",
    "routes",
)
INHIBIT_KEYS = (
    "source_matchers",
    "source_match",
    "source_match_re",
    "target_matchers",
    "target_match",
    "target_match_re",
    "equal",
)
GLOBAL_KEYS = (
    "resolve_timeout",
    "http_config",
    "smtp_from",
    "smtp_hello",
    "smtp_smarthost",
    "smtp_auth_username",
    "smtp_auth_password",
    "smtp_auth_password_file",
    "smtp_auth_secret",
    "smtp_auth_identity",
    "smtp_require_tls",
    "slack_api_url",
    "slack_api_url_file",
    "pagerduty_url",
    "opsgenie_api_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "wechat_api_url",
    "wechat_api_secret",
    "wechat_api_corp_id",
    "victorops_api_url",
    "victorops_api_key",
    "victorops_api_key_file",
    "telegram_api_url",
    "webex_api_url",
)
# What a receiver's config takes from `global` when it does not say it itself.
GLOBAL_DEFAULTS = {
    "email": {
        "from": "smtp_from",
        "smarthost": "smtp_smarthost",
        "hello": "smtp_hello",
        "auth_username": "smtp_auth_username",
        "auth_password": "smtp_auth_password",
        "auth_password_file": "smtp_auth_password_file",
        "require_tls": "smtp_require_tls",
    },
    "slack": {"api_url": "slack_api_url", "api_url_file": "slack_api_url_file"},
}
# Alertmanager's integrations that checkrun does not send to itself.
FOREIGN_RECEIVERS = {
    "discord": "Discord",
    "pagerduty": "PagerDuty",
    "opsgenie": "Opsgenie",
    "wechat": "WeChat (the WeCom app API)",
    "pushover": "Pushover",
    "victorops": "VictorOps",
    "sns": "Amazon SNS",
    "telegram": "Telegram",
    "webex": "Webex",
    "msteams": "Microsoft Teams",
}
# An option and its `_file` twin: global fills in neither when the receiver gives one.
_PAIRED_OPTIONS = {
    "auth_password": "auth_password_file",
    "auth_password_file": "auth_password",
    "api_url": "api_url_file",
    "api_url_file": "api_url",
}
DEFAULT_RESOLVE_TIMEOUT = 300.0
RECEIVER_HINT = "write receivers: [{name: ops, webhook_configs: [{url: 'http://...'}]}]"
DURATION_HINT = "write a duration with a unit, as Alertmanager does: 30s, 5m, 4h, 1d, 1w, 1y, 1h30m"
ZERO_HINTS = {
    "group_interval": "to tell every change in the next round of `checkrun watch`, write the "
    "check interval (e.g. group_interval: 5s)",
    "repeat_interval": "write how often a group still firing is told again, e.g. 4h",
}
_AM_DURATION = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?"
    r"(?:([0-9]+)s)?(?:([0-9]+)ms)?\Z"
)
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


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
    time_intervals: dict[str, NamedInterval] = field(default_factory=dict)
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT
    warnings: list[str] = field(default_factory=list)  # "file:line:col: what is ignored, why"


def parse_am_duration(value: Any) -> float:
    """Seconds of an Alertmanager duration (model.ParseDuration): units y w d h m s ms, in that
    order, integers only; "0" alone may go without a unit. ValueError otherwise."""
    text = str(value).strip() if isinstance(value, (str, int)) and value is not True else None
    if text == "0":
        return 0.0
    found = _AM_DURATION.match(text) if text else None
    if not found:
        raise ValueError(f"{value!r} is not a duration")
    return sum(int(n) * unit for n, unit in zip(found.groups(), _UNIT_SECONDS) if n)


class AlertingParser:
    """Parses the alerting keys of one document; `problems` holds what is wrong."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[ConfigError] = []
        self.warnings: list[str] = []
        self.global_config: dict[str, Any] = {}
        self.resolve_timeout = DEFAULT_RESOLVE_TIMEOUT
        self.time_intervals: dict[str, NamedInterval] = {}

    def parse(self, document: Mapping[Any, Any], root: Location) -> AlertingSpec | None:
        if "receivers" not in document and "route" not in document:
            return None
        self.global_config = self._global(document, root)
        self._templates(document, root)
        self.time_intervals = self._time_intervals(document, root)
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
        return AlertingSpec(
            receivers=receivers,
            route=route,
            inhibit_rules=rules,
            file=self.file,
            time_intervals=self.time_intervals,
            resolve_timeout=self.resolve_timeout,
            warnings=self.warnings,
        )

    # -- global, templates, time intervals -----------------------------------------------------

    def _global(self, document: Mapping[Any, Any], root: Location) -> dict[str, Any]:
        node = document.get("global")
        if node is None:
            return {}
        where = value_location(document, "global", root)
        if not isinstance(node, Mapping):
            self._add(f"global: expected a mapping, not {kind_of(node)}", where)
            return {}
        for key in node:
            if key not in GLOBAL_KEYS:
                self._unknown(node, key, GLOBAL_KEYS, "global", where)
        if node.get("http_config") is not None:
            self._global_http_config(node, where)
        timeout = self._duration(node, "resolve_timeout", where)
        if timeout is not None:
            self.resolve_timeout = timeout
        for key in ("smtp_auth_secret", "smtp_auth_identity"):
            if node.get(key):
                self._warn(
                    f"global.{key} is ignored: checkrun's email receiver authenticates with "
                    "smtp_auth_username and smtp_auth_password (or _file) only",
                    key_location(node, key, where),
                )
        for one, other in (
            ("slack_api_url", "slack_api_url_file"),
            ("smtp_auth_password", "smtp_auth_password_file"),
            ("opsgenie_api_key", "opsgenie_api_key_file"),
            ("victorops_api_key", "victorops_api_key_file"),
        ):
            if node.get(one) and node.get(other):
                self._add(
                    f"global: at most one of {one} and {other} may be set",
                    key_location(node, other, where),
                    f"keep {one} or {other}",
                )
        return dict(node)

    def _global_http_config(self, node: Mapping[Any, Any], where: Location) -> None:
        from checkrunner.alerting.receivers.http import HTTP_CONFIG_OPTION
        from checkrunner.config.normalize import OptionSet, check_option_set

        owner = OptionSet(
            "global.http_config",
            HTTP_CONFIG_OPTION["options"],
            (),
            HTTP_CONFIG_OPTION["mutually_exclusive"],
            takes=f"http_config takes: {', '.join(HTTP_CONFIG_OPTION['options'])}",
        )
        value = node["http_config"]
        at = value_location(node, "http_config", where)
        if not isinstance(value, Mapping):
            self._add(f"global.http_config: expected a mapping, not {kind_of(value)}", at)
            return
        _, problems = check_option_set(owner, value, at, keep_templates=True)
        self.problems.extend(problems)

    def _templates(self, document: Mapping[Any, Any], root: Location) -> None:
        if not document.get("templates"):
            return
        self._warn(
            "templates: checkrun does not read Alertmanager's Go templates; they are ignored. "
            "Write receiver messages as Jinja2 options (e.g. a webhook's payload, an email's "
            "subject and html), or forward alerts to a real Alertmanager that uses these "
            "templates with alertmanager_configs: [{urls: [...]}]",
            key_location(document, "templates", root),
        )

    def _time_intervals(
        self, document: Mapping[Any, Any], root: Location
    ) -> dict[str, NamedInterval]:
        found: dict[str, NamedInterval] = {}
        for key in ("mute_time_intervals", "time_intervals"):
            given = self._given(
                document,
                key,
                root,
                lambda v: isinstance(v, list),
                "expected a list of named time intervals",
                f"write {key}: [{{name: maintenance, time_intervals: [{{weekdays: [saturday]}}]}}]",
            )
            if given is None:
                continue
            value, at = given
            for index, node in enumerate(value):
                named = self._named_interval(key, node, value_location(value, index, at))
                if named is None:
                    continue
                if named.name in found:
                    self._add(
                        f"{key}: time interval '{named.name}' is not unique",
                        value_location(value, index, at),
                        "give each time interval its own name",
                    )
                found[named.name] = named
        return found

    def _named_interval(self, key: str, node: Any, where: Location) -> NamedInterval | None:
        if (
            not isinstance(node, Mapping)
            or not node.get("name")
            or not isinstance(node["name"], str)
        ):
            self._add(
                f"{key}: missing name in time interval",
                where,
                "write {name: maintenance, time_intervals: [{times: [{start_time: '22:00', "
                "end_time: '24:00'}]}]}",
            )
            return None
        for extra in node:
            if extra not in ("name", "time_intervals"):
                self._unknown(node, extra, ("name", "time_intervals"), "a time interval", where)
        named = NamedInterval(node["name"])
        entries = node.get("time_intervals") or []
        entries_at = value_location(node, "time_intervals", where)
        if not isinstance(entries, list):
            self._add("time_intervals: expected a list", entries_at)
            return named
        for index, entry in enumerate(entries):
            entry_at = value_location(entries, index, entries_at)
            try:
                if not isinstance(entry, Mapping):
                    raise ValueError("expected a mapping of times, weekdays, days_of_month, ...")
                named.intervals.append(parse_interval(entry))
            except ValueError as exc:
                self._add(
                    f"time interval '{named.name}': {exc}",
                    entry_at,
                    "see Alertmanager's time_interval: times, weekdays, days_of_month, months, "
                    "years, location",
                )
        return named

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
        kinds = {registry.config_key(kind): kind for kind in registry.kinds()}
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
                foreign = FOREIGN_RECEIVERS.get(str(key).removesuffix("_configs"))
                if foreign and str(key).endswith("_configs"):
                    self._warn(
                        f"receiver '{name}': checkrun does not send to {foreign}, so {key} is "
                        "ignored. Forward alerts to a real Alertmanager, which does, with "
                        "alertmanager_configs: [{urls: ['http://alertmanager:9093']}], or use "
                        "webhook_configs or apprise_configs",
                        key_location(node, key, where),
                    )
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
        from checkrunner.alerting.receivers.template_check import receiver_template_errors
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
        for index, entry, entry_at in self._mappings(
            entries,
            at,
            f"receiver '{name}': {key} item {{number}} must be a mapping",
            f"see `checkrun doc` for {kind}",
        ):
            options = self._with_global(kind, entry)
            owner = receiver_option_set(kind, index, name)
            _, problems = check_option_set(owner, options, entry_at, keep_templates=True)
            self.problems.extend(problems)
            self.problems.extend(receiver_template_errors(kind, options, entry_at, name, index))
            configs.append(
                ReceiverConfig(name, kind, index, self._with_http_config(kind, options), entry_at)
            )
        return configs

    def _with_global(self, kind: str, entry: Mapping[Any, Any]) -> dict[str, Any]:
        """The entry with what `global` gives its kind (as Alertmanager fills it in)."""
        options = MarkedMap(entry, location=location_of(entry, None))
        if isinstance(entry, MarkedMap):
            options.copy_marks_from(entry)
        for option, key in GLOBAL_DEFAULTS.get(kind, {}).items():
            paired = _PAIRED_OPTIONS.get(option)
            given = options.get(option) is not None or (paired and options.get(paired) is not None)
            if not given and self.global_config.get(key) is not None:
                options[option] = self.global_config[key]
        return options

    def _with_http_config(self, kind: str, options: dict[str, Any]) -> dict[str, Any]:
        """global.http_config for an HTTP receiver that has none (checked once, in global)."""
        from checkrunner.alerting import receivers as registry

        wants_http = "http_config" in registry.get(kind).OPTIONS
        inherits = wants_http and options.get("http_config") is None
        if inherits and self.global_config.get("http_config"):
            options["http_config"] = self.global_config["http_config"]
        return options

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
        receiver = self._route_receiver(node, where, parent, receivers)
        matchers = self._route_matchers(node, where)
        mute = self._interval_names(node, "mute_time_intervals", where)
        active = self._interval_names(node, "active_time_intervals", where)
        if parent is None:
            self._root_rules(node, where, matchers, mute, active)
        group_by = self._group_by(node, where)
        timers = RouteTimers(
            group_wait=self._duration(node, "group_wait", where),
            group_interval=self._duration(node, "group_interval", where, nonzero=True),
            repeat_interval=self._duration(node, "repeat_interval", where, nonzero=True),
        )
        continue_ = node.get("continue", False)
        if not isinstance(continue_, bool):
            self._add(
                "continue: expected true or false",
                value_location(node, "continue", where),
                "write continue: true",
            )
            continue_ = False
        route = build_route(
            receiver,
            matchers,
            group_by,
            timers.repeat_interval,
            continue_,
            [],
            parent,
            timers=timers,
            mute_time_intervals=mute,
            active_time_intervals=active,
        )
        self._children(node, where, route, receivers)
        return route

    def _route_receiver(
        self,
        node: Mapping[Any, Any],
        where: Location,
        parent: Route | None,
        receivers: dict[str, list[ReceiverConfig]],
    ) -> str | None:
        receiver = node.get("receiver") or None  # "" inherits, as in Alertmanager
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
        return receiver

    def _children(
        self,
        node: Mapping[Any, Any],
        where: Location,
        route: Route,
        receivers: dict[str, list[ReceiverConfig]],
    ) -> None:
        children = node.get("routes") or []
        children_at = value_location(node, "routes", where)
        if not isinstance(children, list):
            self._add(
                "routes: expected a list of routes",
                children_at,
                "write routes: [{matchers: [...], receiver: NAME}]",
            )
            return
        for index, child in enumerate(children):
            built = self._route(
                child, value_location(children, index, children_at), route, receivers
            )
            if built is not None:
                route.routes.append(built)

    def _root_rules(
        self,
        node: Mapping[Any, Any],
        where: Location,
        matchers: tuple[Matcher, ...],
        mute: tuple[str, ...],
        active: tuple[str, ...],
    ) -> None:
        """What Alertmanager refuses on the root route, which takes every alert."""
        if matchers:
            key = next(k for k in ("matchers", "match", "match_re") if node.get(k))
            self._add(
                "the root route matches every alert: it takes no matchers",
                key_location(node, key, where),
                "move the matchers to a child route under routes:",
            )
        if node.get("continue") is True:
            self._add(
                "the root route cannot have continue (there is nothing after it)",
                key_location(node, "continue", where),
                "remove continue: from the root route",
            )
        for key, names in (("mute_time_intervals", mute), ("active_time_intervals", active)):
            if names:
                self._add(
                    f"the root route must not have any {key}",
                    key_location(node, key, where),
                    f"move {key} to a child route",
                )

    def _route_matchers(
        self, node: Mapping[Any, Any], where: Location, prefix: str = ""
    ) -> tuple[Matcher, ...]:
        """`matchers`, and the legacy `match` (equality) and `match_re` (regex), together;
        an inhibit rule's are `source_...` and `target_...` (prefix)."""
        return sort_matchers(
            self._matchers(node, f"{prefix}matchers", where)
            + self._legacy_matchers(node, f"{prefix}match", "=", where)
            + self._legacy_matchers(node, f"{prefix}match_re", "=~", where)
        )

    def _given(
        self,
        node: Mapping[Any, Any],
        key: str,
        where: Location,
        fits: Callable[[Any], bool],
        expected: str,
        hint: str | None = None,
    ) -> tuple[Any, Location] | None:
        """(node[key], where it is) when it is given and fits; None when it is not given, or
        does not fit (then "key: expected", with {kind} the kind of value found, is reported)."""
        value = node.get(key)
        if value is None:
            return None
        at = value_location(node, key, where)
        if not fits(value):
            self._add(f"{key}: {expected.replace('{kind}', kind_of(value))}", at, hint)
            return None
        return value, at

    def _label_name_ok(self, key: str, name: Any, location: Location) -> bool:
        if isinstance(name, str) and LABEL_NAME.match(name):
            return True
        self._add(
            f"{key}: invalid label name {name!r}",
            location,
            "a label name is letters, digits and _, not starting with a digit",
        )
        return False

    def _matchers(self, node: Mapping[Any, Any], key: str, where: Location) -> tuple[Matcher, ...]:
        given = self._given(
            node,
            key,
            where,
            lambda v: isinstance(v, list),
            "expected a list of matcher strings, not {kind}",
            f"write {key}: ['severity=\"critical\"']",
        )
        if given is None:
            return ()
        value, at = given
        parsed: list[Matcher] = []
        for index, text in enumerate(value):
            try:
                parsed += parse_matchers(text)
            except ValueError as exc:
                self._add(f"{key}: {exc}", value_location(value, index, at), MATCHER_HINT)
        return sort_matchers(parsed)

    def _legacy_matchers(
        self, node: Mapping[Any, Any], key: str, op: str, where: Location
    ) -> tuple[Matcher, ...]:
        """Alertmanager's deprecated `match: {label: value}` / `match_re: {label: regex}`."""
        given = self._given(
            node,
            key,
            where,
            lambda v: isinstance(v, Mapping),
            "expected a mapping of label names to values, not {kind}",
            f"write {key}: {{severity: critical}} (or matchers: ['severity=\"critical\"'])",
        )
        if given is None:
            return ()
        value, at = given
        found = []
        for name, wanted in value.items():
            if not self._label_name_ok(key, name, key_location(value, name, at)):
                continue
            if isinstance(wanted, (Mapping, list)) or wanted is None:
                self._add(
                    f"{key}: the value of {name} must be text, not {kind_of(wanted)}",
                    value_location(value, name, at),
                )
                continue
            text = _scalar_text(wanted)
            try:
                found.append(new_matcher(name, op, text))
            except ValueError as exc:
                self._add(f"{key}: {name}: {exc}", value_location(value, name, at))
        return tuple(found)

    def _group_by(self, node: Mapping[Any, Any], where: Location) -> tuple[str, ...] | None:
        names = self._names(node, "group_by", where)
        if names is None:
            return None
        at = value_location(node, "group_by", where)
        if GROUP_BY_ALL in names and len(names) > 1:
            self._add(
                "group_by: '...' (every label) cannot be combined with other labels",
                at,
                "write group_by: ['...'] alone, or list the labels",
            )
        seen: set[str] = set()
        for name in names:
            if name in seen:
                self._add(f"group_by: duplicated label '{name}'", at, "list each label once")
            seen.add(name)
        return names

    def _names(self, node: Mapping[Any, Any], key: str, where: Location) -> tuple[str, ...] | None:
        """A list of label names (`...` allowed in group_by), each valid as Alertmanager wants."""
        given = self._given(
            node,
            key,
            where,
            _is_list_of_text,
            "expected a list of label names",
            f"write {key}: [alertname, host]",
        )
        if given is None:
            return None
        value, at = given
        for index, name in enumerate(value):
            if not (key == "group_by" and name == GROUP_BY_ALL):
                self._label_name_ok(key, name, value_location(value, index, at))
        return tuple(value)

    def _interval_names(
        self, node: Mapping[Any, Any], key: str, where: Location
    ) -> tuple[str, ...]:
        given = self._given(
            node, key, where, _is_list_of_text, "expected a list of time interval names"
        )
        if given is None:
            return ()
        value, at = given
        for index, name in enumerate(value):
            if name not in self.time_intervals:
                self._add(
                    _suggesting(
                        f"{key}: undefined time interval '{name}'", name, self.time_intervals
                    ),
                    value_location(value, index, at),
                    "define it under time_intervals: [{name: ..., time_intervals: [...]}]",
                )
        return tuple(value)

    def _duration(
        self, node: Mapping[Any, Any], key: str, where: Location, nonzero: bool = False
    ) -> float | None:
        if node.get(key) is None:
            return None
        at = value_location(node, key, where)
        try:
            seconds = parse_am_duration(node[key])
        except ValueError as exc:
            self._add(f"{key}: {exc}", at, DURATION_HINT)
            return None
        if nonzero and seconds == 0:
            self._add(f"{key} cannot be zero (Alertmanager refuses it too)", at, ZERO_HINTS[key])
            return None
        return seconds

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
        for _, node, where in self._mappings(
            value, at, "inhibit rule {number} must be a mapping", "see Alertmanager's inhibit_rules"
        ):
            for key in node:
                if key not in INHIBIT_KEYS:
                    self._unknown(node, key, INHIBIT_KEYS, "an inhibit rule", where)
            source = self._route_matchers(node, where, "source_")
            target = self._route_matchers(node, where, "target_")
            rules.append(InhibitRule(source, target, self._names(node, "equal", where) or ()))
        return rules

    # -- helpers --------------------------------------------------------------------------------

    def _mappings(
        self, items: list[Any], at: Location, problem: str, hint: str
    ) -> Iterator[tuple[int, Mapping[Any, Any], Location]]:
        """(index, item, where it is) for each item that is a mapping; any other is reported
        as `problem`, with {number} its 1-based number."""
        for index, item in enumerate(items):
            where = value_location(items, index, at)
            if isinstance(item, Mapping):
                yield index, item, where
            else:
                self._add(problem.replace("{number}", str(index + 1)), where, hint)

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

    def _warn(self, message: str, location: Location) -> None:
        self.warnings.append(f"{location}: {message}")


def _is_list_of_text(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _scalar_text(value: Any) -> str:
    """A YAML scalar as the text Alertmanager reads (yaml.v2 into a Go string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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


def parse_inline_alerting(
    file: str, document: Mapping[Any, Any], root: Location
) -> tuple[AlertingSpec | None, list[ConfigError]]:
    """The alerting keys a playbook carries itself (receivers:, route: ... beside plays:)."""
    parser = AlertingParser(file)
    spec = parser.parse(document, root)
    return spec, parser.problems


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
                f"an alerting file is a mapping with receivers: and route:, not {kind_of(document, show_text=False)}",
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
