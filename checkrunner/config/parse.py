"""A loaded playbook document -> Play and CheckSpec objects, collecting every problem on the way.

Each problem is a ConfigError at the exact node (file:line:column) with a hint; the parser
carries on after a problem so that one run reports all of them.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from typing import Any, Protocol

from checkrunner import catalog
from checkrunner.catalog import ModuleInfo
from checkrunner.config.baselines import is_baseline, parse_baseline
from checkrunner.config.coerce import VARIABLE_NAME, coerce_value, is_templated, kind_of, parse_bool
from checkrunner.config.keywords import (
    ANSIBLE_HABITS,
    CHECK_KEYWORDS,
    CONNECTIONS,
    COOLDOWN_SPEC,
    DEFAULT_CHECK_TIMEOUT,
    DEFAULT_COOLDOWN,
    DEFAULT_HANDLER_TIMEOUT,
    DEFAULT_MAX_HOSTS,
    DEFAULT_MAX_RUNS,
    DEFAULT_RETRY_DELAY,
    DEFAULT_SETTLE,
    DELAY_SPEC,
    HANDLER_ACTIONS,
    HANDLER_KEYWORDS,
    INTERVAL_KEYWORDS,
    INTERVAL_SPEC,
    LABEL_NAME_PATTERN,
    MAX_FOR_RUNS,
    MAX_HANDLER_RUNS,
    MAX_RETRIES,
    PLAY_KEYWORDS,
    PLAYBOOK_KEYWORDS,
    SCORE_KEYWORDS,
    SETTLE_SPEC,
    THRESHOLD_KEYWORDS,
    TIMEOUT_SPEC,
    WEBHOOK_KEYWORDS,
    WEBHOOK_METHODS,
    Keyword,
)
from checkrunner.config.model import (
    CheckSpec,
    HandlerSpec,
    Interval,
    Play,
    ScoreSpec,
    ThresholdSpec,
    WebhookAction,
)
from checkrunner.config.normalize import check_args, expand_args
from checkrunner.config.ranges import SYNTAX_HINT as RANGE_HINT
from checkrunner.config.ranges import Range, parse_range
from checkrunner.config.templating import (
    bare_expression,
    expression_syntax_error,
    template_syntax_error,
)
from checkrunner.errors import (
    BaselineError,
    ConfigError,
    Location,
    OptionValueError,
    did_you_mean,
    suggest,
)
from checkrunner.yamlio.marked import (
    MarkedMap,
    key_location,
    location_of,
    merge_marked,
    read_yaml,
    value_location,
)

_LABEL_NAME = re.compile(LABEL_NAME_PATTERN)
_MEASUREMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
EMPTY_PLAYBOOK_HINT = "a playbook is a list of plays, e.g.: - {name: basics, hosts: all, checks: [{name: memory, memory: {}}]}"


def measurement_pattern_matches(info: ModuleInfo, metric: str) -> str | None:
    """The declared measurement (a name, or a pattern like busy_cpu*) that `metric` is, if any."""
    if metric in info.measurements:
        return metric
    for declared in info.measurements:
        if "*" in declared and fnmatch.fnmatchcase(metric, declared):
            return declared
    return None


def metric_unit(info: ModuleInfo, metric: str) -> str:
    declared = measurement_pattern_matches(info, metric)
    return info.unit_of(declared) if declared else ""


def measurement_flag(info: ModuleInfo, metric: str) -> str:
    """Why `metric` has no level a baseline could learn ('' when it has one)."""
    if info.is_flag(metric):
        return "a yes/no flag (1 or 0)"
    return ""


class AlertingSection(Protocol):
    """How a playbook's alerting keys are read. The caller that knows alerting hands it in
    (`checkrunner.playbook`), so that config, a layer below alerting, never imports it."""

    keys: tuple[str, ...]  # the keys that make a playbook carry its own alerting

    def parse_inline(
        self, file: str, document: Mapping[Any, Any], root: Location
    ) -> tuple[Any, list[ConfigError]]:
        """The alerting spec of the playbook's own keys, and what is wrong with them."""
        ...

    def parse_file(self, path: str, referenced_at: Location) -> tuple[Any, list[ConfigError]]:
        """The alerting spec of the shared file `alerting: FILE` names."""
        ...


class PlaybookParser:
    """Turns a playbook document into plays; `problems` holds everything found wrong."""

    def __init__(self, file: str, alerting: AlertingSection):
        self.file = file
        self.alerting_section = alerting
        self.directory = os.path.dirname(file)
        self.problems: list[ConfigError] = []
        self.modules = catalog.module_names()
        self._item_names: set[str] = set()  # measurements the items of the current check define
        self.alerting: Any = None  # AlertingSpec of the playbook, if it has one

    def parse(self, document: Any) -> list[Play]:
        if document is None:
            self._add("playbook is empty", Location(self.file), EMPTY_PLAYBOOK_HINT)
            return []
        plays = self._plays_node(document)
        if plays is None:
            return []
        parsed = [self._play(plays, index) for index in range(len(plays))]
        return [play for play in parsed if play is not None]

    # -- the playbook -------------------------------------------------------------------------

    def _plays_node(self, document: Any) -> list[Any] | None:
        root = location_of(document, Location(self.file, 1, 1))
        if isinstance(document, Mapping):
            document = self._playbook_mapping(document, root)
            if document is None:
                return None
        if not isinstance(document, list):
            self._add(
                f"a playbook is a list of plays or a mapping with plays:, "
                f"not {kind_of(document, show_text=False)}",
                location_of(document, root),
                EMPTY_PLAYBOOK_HINT,
            )
            return None
        if not document:
            self._add("the playbook has no plays", location_of(document, root), EMPTY_PLAYBOOK_HINT)
            return None
        return document

    def _playbook_mapping(self, document: Mapping[Any, Any], root: Location) -> Any:
        looks_like_a_play = "hosts" in document or "checks" in document
        misspelt = False
        for key in document:
            if key not in PLAYBOOK_KEYWORDS and not looks_like_a_play:
                self._unknown_key(document, key, PLAYBOOK_KEYWORDS, "the playbook", root)
                misspelt = True
        if looks_like_a_play:
            self._add(
                "a playbook is a list of plays, but this is a single play",
                root,
                "start the play with '- ' (a list of one play), or put it under plays:",
            )
            return None
        if "plays" not in document:
            if not misspelt:
                self._add("the playbook has no plays:", root, "list the plays under plays:")
            return None
        self.alerting = self._alerting(document, root)
        return document["plays"] if document["plays"] is not None else []

    def _alerting(self, document: Mapping[Any, Any], root: Location) -> Any:
        """receivers/route/inhibit_rules here, or in the shared file `alerting:` names."""
        section = self.alerting_section
        inline = any(key in document for key in section.keys)
        if "alerting" in document:
            at = value_location(document, "alerting", root)
            if inline:
                self._add(
                    "alerting: names a shared file, and this playbook has its own receivers/route too",
                    at,
                    "keep one of the two",
                )
                return None
            name = document["alerting"]
            if not isinstance(name, str) or not name:
                self._add("alerting: expected a file name", at, "write alerting: alerting.yml")
                return None
            spec, problems = section.parse_file(os.path.join(self.directory, name), at)
            self.problems.extend(problems)
            return spec
        if not inline:
            return None
        spec, problems = section.parse_inline(self.file, document, root)
        self.problems.extend(problems)
        return spec

    # -- plays ---------------------------------------------------------------------------------

    def _play(self, plays: list[Any], index: int) -> Play | None:
        where = value_location(plays, index, Location(self.file, 1, 1))
        node = plays[index]
        if not isinstance(node, Mapping):
            self._add(
                f"play {index + 1} must be a mapping with hosts: and checks:, not {kind_of(node)}",
                where,
                EMPTY_PLAYBOOK_HINT,
            )
            return None
        label = _label(node, "play", index)
        for key in node:
            if key not in PLAY_KEYWORDS:
                self._unknown_key(node, key, PLAY_KEYWORDS, label, where)
        hosts = self._hosts(node, label, where)
        tags = self._tags(node, where)
        labels = self._labels(node, where)
        become = self._bool(node, "become", where)
        for_runs = self._runs(node, where)
        interval = self._interval(node, where)
        timeout = self._duration(node, "timeout", where, TIMEOUT_SPEC)
        variables = self._play_variables(node, where)
        play = Play(
            name=self._text(node, "name", where) or hosts,
            hosts=hosts,
            vars=variables,
            vars_files=self._vars_file_names(node, where),
            tags=tags,
            checks=[],
            location=where,
            index=index,
            become=become,
            for_runs=for_runs,
            interval=interval,
            connection=self._connection(node, where),
            timeout=timeout,
            labels=labels,
            key_locations={str(k): value_location(node, k, where) for k in node},
        )
        play.handlers = self._handlers(node, play, where)
        play.checks = self._checks(node, play, label, where)
        play.score = self._score(node, play.checks, where)
        return play

    def _score(
        self, node: Mapping[Any, Any], checks: list[CheckSpec], where: Location
    ) -> ScoreSpec | None:
        if "score" not in node:
            return None
        value = node["score"]
        at = value_location(node, "score", where)
        example = "write score: {weights: {cpu: 0.4, memory: 0.6}, warn: 70, crit: 90}"
        if not isinstance(value, Mapping):
            self._add(f"score: expected a mapping with weights:, not {kind_of(value)}", at, example)
            return None
        for key in value:
            if key not in SCORE_KEYWORDS:
                self._unknown_key(value, key, SCORE_KEYWORDS, "score", at)
        weights = self._score_weights(value, checks, at, example)
        limits = {
            key: self._score_threshold(value[key], key, value_location(value, key, at))
            for key in ("warn", "crit")
            if key in value
        }
        if weights is None:
            return None
        return ScoreSpec(weights, limits.get("warn"), limits.get("crit"), at)

    def _score_weights(
        self, score: Mapping[Any, Any], checks: list[CheckSpec], where: Location, example: str
    ) -> dict[str, tuple[str, float]] | None:
        value = score.get("weights")
        at = value_location(score, "weights", where)
        if not isinstance(value, Mapping) or not value:
            shown = "an empty mapping" if isinstance(value, Mapping) else kind_of(value)
            self._add(f"score: weights: expected check name: weight, not {shown}", at, example)
            return None
        by_name = {str(check.name): check for check in checks}
        weights: dict[str, tuple[str, float]] = {}
        for key, weight in value.items():
            name, name_at = str(key), key_location(value, key, at)
            check = by_name.get(name)
            if check is None:
                message = f"score: weights: the play has no check named '{name}'"
                suggestion = did_you_mean(name, list(by_name))
                self._add(
                    f"{message} — {suggestion}" if suggestion else message,
                    name_at,
                    f"weigh checks of this play: {', '.join(by_name) or '(none)'}",
                )
                continue
            if (
                not isinstance(weight, (int, float))
                or isinstance(weight, bool)
                or not weight > 0
                or weight == float("inf")
            ):
                self._add(
                    f"score: weight of '{name}' must be a positive number, not {weight!r}",
                    value_location(value, key, at),
                    f"write e.g. {name}: 0.5, or remove '{name}' from the weights",
                )
                continue
            weights[check.id] = (name, float(weight))
        return weights if len(weights) == len(value) else None

    def _score_threshold(self, value: Any, key: str, where: Location) -> Any:
        try:
            parse_range(value, "%")
        except ValueError as exc:
            self._add(f"score: {key}: {exc}", where, f"{RANGE_HINT}; the score runs 0-100")
            return None
        return value

    def _hosts(self, node: Mapping[Any, Any], label: str, where: Location) -> str:
        value = node.get("hosts")
        at = value_location(node, "hosts", where)
        if (
            isinstance(value, list)
            and value
            and all(isinstance(p, str) and p.strip() for p in value)
        ):
            self._check_template_syntax(value, at)
            return ":".join(p.strip() for p in value)
        if isinstance(value, str) and value.strip():
            self._check_template_syntax(value, at)
            return value.strip()
        if value is None or value == "" or value == []:
            self._add(
                f"{label} has no hosts", where, "add hosts: all or a pattern such as web:&prod"
            )
        else:
            self._add(
                f"hosts: expected a host pattern, not {kind_of(value)}",
                at,
                "write hosts: all or a pattern such as web:&prod",
            )
        return ""

    def _play_variables(self, node: Mapping[Any, Any], where: Location) -> MarkedMap:
        layers = (
            [self._variables(node["vars"], value_location(node, "vars", where))]
            if "vars" in node
            else []
        )
        files = node.get("vars_files")
        files_at = value_location(node, "vars_files", where)
        # Anything but a name or a list of names is reported once, by _vars_file_names.
        names = _as_list(files) if isinstance(files, (str, list)) else []
        for position, name in enumerate(names):
            layers.append(self._vars_file(name, value_location(files, position, files_at)))
        return merge_marked(*layers)

    def _vars_file_names(self, node: Mapping[Any, Any], where: Location) -> list[str]:
        files = node.get("vars_files")
        if files is None or isinstance(files, (str, list)):
            return [str(name) for name in _as_list(files)]
        self._add(
            f"vars_files: expected a list of file names, not {kind_of(files)}",
            value_location(node, "vars_files", where),
            "write vars_files: [vars/common.yml]",
        )
        return []

    def _vars_file(self, name: Any, where: Location) -> MarkedMap:
        if not isinstance(name, str) or not name.strip():
            self._add(
                f"vars_files: expected a file name, not {kind_of(name)}",
                where,
                "write vars_files: [vars/common.yml] (paths relative to the playbook)",
            )
            return MarkedMap()
        if is_templated(name):
            self._add(
                "vars_files: file names cannot be templates",
                where,
                "write the path itself, relative to the playbook",
            )
            return MarkedMap()
        path = os.path.join(self.directory, os.path.expanduser(name))
        if not os.path.exists(path):
            self._add(
                f"vars file not found: {os.path.abspath(path)}",
                where,
                f"vars_files paths are relative to the playbook's folder ({os.path.abspath(self.directory)})",
            )
            return MarkedMap()
        try:
            data, problems = read_yaml(path, "vars file")
        except ConfigError as exc:
            self._add(exc.message, exc.location or where, exc.hint)
            return MarkedMap()
        self.problems.extend(problems)
        if data is None:
            return MarkedMap()
        if not isinstance(data, Mapping):
            self._add(
                f"vars file {path} must be a mapping of name: value, not {kind_of(data, show_text=False)}",
                location_of(data, Location(path, 1, 1)),
                "write one `name: value` per line",
            )
            return MarkedMap()
        return self._variables(data, location_of(data, Location(path, 1, 1)))

    def _variables(self, value: Any, where: Location) -> MarkedMap:
        if value is None:
            return MarkedMap(location=where)
        if not isinstance(value, Mapping):
            self._add(
                f"variables must be a mapping of name: value, not {kind_of(value)}",
                where,
                "write one `name: value` per line, e.g. vars: {port: 8080}",
            )
            return MarkedMap()
        for name in value:
            if not isinstance(name, str) or not VARIABLE_NAME.fullmatch(name):
                fixed = "".join(c if c.isalnum() or c == "_" else "_" for c in str(name))
                self._add(
                    f"'{name}' is not a valid variable name",
                    key_location(value, name, where),
                    f"use letters, digits and _ (not first a digit), e.g. {fixed}",
                )
        self._check_template_syntax(value, where)
        return value if isinstance(value, MarkedMap) else MarkedMap(value, location=where)

    # -- checks --------------------------------------------------------------------------------

    def _checks(
        self, node: Mapping[Any, Any], play: Play, label: str, where: Location
    ) -> list[CheckSpec]:
        checks = node.get("checks")
        at = value_location(node, "checks", where)
        if checks is None or checks == []:
            if "tasks" not in node:  # already reported as Ansible's word for checks
                self._add(
                    f"{label} has no checks",
                    at if "checks" in node else where,
                    "add checks: with at least one check",
                )
            return []
        if not isinstance(checks, list):
            self._add(
                f"checks: expected a list of checks, not {kind_of(checks)}",
                at,
                "start each check with '- '",
            )
            return []
        parsed = [self._check(checks, index, play, at) for index in range(len(checks))]
        return [check for check in parsed if check is not None]

    def _check(
        self, checks: list[Any], index: int, play: Play, list_at: Location
    ) -> CheckSpec | None:
        node = checks[index]
        where = value_location(checks, index, list_at)
        if not isinstance(node, Mapping):
            self._add(
                f"check {index + 1} must be a mapping with a name and a module, not {kind_of(node)}",
                where,
                "write - {name: memory, memory: {}}",
            )
            return None
        label = _label(node, "check", index)
        module = self._check_module(node, label, where)
        info = catalog.get(module) if module else None
        common = self._check_settings(node, play, where)
        if info is None:
            return None
        args = self._module_args(info, node, where)
        self._item_measurements(info, args, where)
        metric = self._metric(node, info, where)
        warn = self._threshold_key(node, "warn", info, metric, where)
        crit = self._threshold_key(node, "crit", info, metric, where)
        thresholds = self._thresholds(node, info, metric, where)
        name = self._text(node, "name", where) or _default_name(info, args)
        return CheckSpec(
            name=name,
            module=info.name,
            args=args,
            warn=warn,
            crit=crit,
            metric=metric,
            thresholds=thresholds,
            location=where,
            play_index=play.index,
            index=index,
            module_location=key_location(node, info.name, where),
            key_locations={str(k): value_location(node, k, where) for k in node},
            **common,
        )

    def _check_module(self, node: Mapping[Any, Any], label: str, where: Location) -> str | None:
        present = [key for key in node if key in self.modules]
        blamed_module = False
        for key in node:
            if key not in CHECK_KEYWORDS and key not in self.modules:
                blamed_module |= self._unknown_check_key(
                    node, key, label, where, has_module=bool(present)
                )
        if len(present) == 1:
            return present[0]
        if len(present) > 1:
            names = " and ".join(f"'{m}'" for m in present)
            self._add(
                f"{label} has {'both ' if len(present) == 2 else ''}{names}; split it into "
                f"{'two' if len(present) == 2 else len(present)} checks",
                where,
                "a check runs exactly one module; give each its own name, warn and crit",
            )
        elif not blamed_module:
            self._add(
                f"{label} has no module: a check needs exactly one module: {', '.join(self.modules)}",
                where,
                "add one as a key, e.g. memory: {} (`checkrun doc MODULE` lists its options)",
            )
        return None

    def _unknown_check_key(
        self, node: Mapping[Any, Any], key: Any, label: str, where: Location, has_module: bool
    ) -> bool:
        """Report an unknown key of a check; True when it was reported as a misspelt module."""
        at = key_location(node, key, where)
        if key in ANSIBLE_HABITS:
            self._add(f"'{key}' is not a check keyword", at, ANSIBLE_HABITS[key])
            return False
        nearest = suggest(str(key), [*CHECK_KEYWORDS, *self.modules])
        if not has_module and nearest not in CHECK_KEYWORDS:
            message = f"unknown module '{key}'" + (
                f" — did you mean '{nearest}'?" if nearest else ""
            )
            self._add(message, at, f"modules: {', '.join(self.modules)} (see `checkrun doc`)")
            return True
        message = f"unknown key '{key}' in {label}" + (
            f" — did you mean '{nearest}'?" if nearest else ""
        )
        self._add(message, at, f"a check has one module and any of: {', '.join(CHECK_KEYWORDS)}")
        return False

    def _module_args(self, info: ModuleInfo, node: Mapping[Any, Any], where: Location) -> MarkedMap:
        at = value_location(node, info.name, where)
        try:
            args = expand_args(info, node[info.name], at)
        except ConfigError as exc:
            self.problems.append(exc)
            return MarkedMap(location=at)
        _, problems = check_args(info, args, at, keep_templates=True)
        self.problems.extend(problems)
        self._check_template_syntax(args, at)
        return args

    def _check_settings(
        self, node: Mapping[Any, Any], play: Play, where: Location
    ) -> dict[str, Any]:
        """The keys of a check that do not depend on its module, with the play's defaults applied."""
        timeout = self._duration(node, "timeout", where, TIMEOUT_SPEC)
        delay = self._duration(node, "delay", where, DELAY_SPEC)
        become = self._bool(node, "become", where)
        own_labels = self._labels(node, where)
        return {
            "timeout": timeout or play.timeout or DEFAULT_CHECK_TIMEOUT,
            "retries": self._retries(node, where),
            "delay": DEFAULT_RETRY_DELAY if delay is None else delay,
            "tags": list(dict.fromkeys([*play.tags, *self._tags(node, where)])),
            "labels": merge_marked(play.labels, own_labels),
            "when": self._when(node, where),
            "become": play.become if become is None else become,
            "for_runs": self._runs(node, where) or play.for_runs or 1,
            "interval": self._interval(node, where) or play.interval,
            "depends_on": self._check_names(node, "depends_on", where),
            "notify": self._notify(node, play, where),
        }

    def _notify(self, node: Mapping[Any, Any], play: Play, where: Location) -> list[str]:
        """`notify:` names, each a handler of the play (did-you-mean otherwise)."""
        names = self._check_names(node, "notify", where, noun="handler names")
        if not names:
            return []
        at = value_location(node, "notify", where)
        known = [handler.name for handler in play.handlers]
        value = node["notify"]
        for position, name in enumerate(names):
            if name in known:
                continue
            name_at = value_location(value, position, at) if isinstance(value, list) else at
            message = f"notify: the play has no handler named '{name}'"
            suggestion = did_you_mean(name, known)
            self._add(
                f"{message} — {suggestion}" if suggestion else message,
                name_at,
                f"handlers of this play: {', '.join(known)}"
                if known
                else f"add handlers: [{{name: {name}, service: app.service}}] to the play",
            )
        return [name for name in names if name in known]

    # -- handlers ------------------------------------------------------------------------------

    def _handlers(self, node: Mapping[Any, Any], play: Play, where: Location) -> list[HandlerSpec]:
        value = node.get("handlers")
        if value is None:
            return []
        at = value_location(node, "handlers", where)
        if not isinstance(value, list):
            self._add(
                f"handlers: expected a list of handlers, not {kind_of(value)}",
                at,
                "write handlers: [{name: restart app, service: app.service}]",
            )
            return []
        handlers: list[HandlerSpec] = []
        for index in range(len(value)):
            handler = self._handler(value, index, play, at)
            if handler is None:
                continue
            if any(other.name == handler.name for other in handlers):
                self._add(
                    f"handlers: the name '{handler.name}' is used twice",
                    handler.location,
                    "give each handler its own name: checks' notify: lists them by name",
                )
                continue
            handlers.append(handler)
        return handlers

    def _handler(
        self, handlers: list[Any], index: int, play: Play, list_at: Location
    ) -> HandlerSpec | None:
        node = handlers[index]
        where = value_location(handlers, index, list_at)
        example = "write - {name: restart app, service: app.service}"
        if not isinstance(node, Mapping):
            self._add(
                f"handler {index + 1} must be a mapping with a name and an action, not {kind_of(node)}",
                where,
                example,
            )
            return None
        label = _label(node, "handler", index)
        for key in node:
            if key not in HANDLER_KEYWORDS:
                self._unknown_key(node, key, HANDLER_KEYWORDS, label, where)
        name = self._text(node, "name", where)
        action = self._handler_action(node, label, where)
        settings = self._handler_settings(node, play, where)
        if not name:
            self._add(
                f"{label} has no name", where, "add name: restart app (checks notify it by name)"
            )
        if not name or action is None or settings is None:
            return None
        # The action's value is read by its own reader and kept in the field of its name.
        readers = {
            "command": self._handler_command,
            "service": self._handler_service,
            "webhook": self._webhook,
        }
        value = readers[action](node[action], value_location(node, action, where))
        if value is None:
            return None
        return HandlerSpec(
            name=name,
            action=action,
            location=where,
            play_index=play.index,
            index=index,
            **{action: value},
            **settings,
        )

    def _handler_action(self, node: Mapping[Any, Any], label: str, where: Location) -> str | None:
        present = [key for key in node if key in HANDLER_ACTIONS]
        if len(present) == 1:
            return present[0]
        if present:
            self._add(
                f"{label} has {' and '.join(present)}: a handler has exactly one action",
                key_location(node, present[1], where),
                "split it into handlers of their own and notify each",
            )
        else:
            self._add(
                f"{label} has no action: a handler needs one of {', '.join(HANDLER_ACTIONS)}",
                where,
                "add e.g. service: app.service, command: [systemctl, restart, app], or "
                "webhook: {url: https://...}",
            )
        return None

    def _handler_settings(
        self, node: Mapping[Any, Any], play: Play, where: Location
    ) -> dict[str, Any] | None:
        become = self._bool(node, "become", where)
        timeout = self._duration(node, "timeout", where, TIMEOUT_SPEC)
        settle = self._duration(node, "settle", where, SETTLE_SPEC)
        cooldown = self._duration(node, "cooldown", where, COOLDOWN_SPEC)
        max_runs = self._count(node, "max_runs", where, DEFAULT_MAX_RUNS)
        limit = self._max_hosts(node, where)
        if max_runs is None or limit is None:
            return None
        return {
            "become": play.become if become is None else become,
            "timeout": DEFAULT_HANDLER_TIMEOUT if timeout is None else timeout,
            "settle": DEFAULT_SETTLE if settle is None else settle,
            "cooldown": DEFAULT_COOLDOWN if cooldown is None else cooldown,
            "max_runs": max_runs,
            "max_hosts": limit[0],
            "max_hosts_is_fraction": limit[1],
        }

    def _count(
        self, node: Mapping[Any, Any], key: str, where: Location, default: int
    ) -> int | None:
        value = node.get(key)
        if value is None:
            return default
        try:
            count = coerce_value(value, {"type": "int"})
        except OptionValueError:
            count = 0
        if not 1 <= count <= MAX_HANDLER_RUNS:
            self._add(
                f"{key}: expected a whole number from 1 to {MAX_HANDLER_RUNS}, not {kind_of(value)}",
                value_location(node, key, where),
                f"write {key}: {default}",
            )
            return None
        return count

    def _max_hosts(self, node: Mapping[Any, Any], where: Location) -> tuple[float, bool] | None:
        """(a count, False) or (a fraction of the play's hosts, True)."""
        value = node.get("max_hosts", DEFAULT_MAX_HOSTS)
        text = (
            str(value).strip()
            if isinstance(value, (str, int)) and not isinstance(value, bool)
            else ""
        )
        match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(%?)", text)
        if match and match.group(2) and 0 < float(match.group(1)) <= 100:
            return float(match.group(1)) / 100, True
        if match and not match.group(2) and "." not in text and int(text) >= 1:
            return float(int(text)), False
        self._add(
            f"max_hosts: expected a number of hosts (1 or more) or a percentage (1% to 100%), "
            f"not {kind_of(value)}",
            value_location(node, "max_hosts", where),
            f"write max_hosts: 2 or max_hosts: 25% (default {DEFAULT_MAX_HOSTS})",
        )
        return None

    def _handler_command(self, value: Any, where: Location) -> Mapping[str, Any] | None:
        """The command module's arguments (so the action runs as that module on the host)."""
        info = catalog.get("command")
        try:
            args = expand_args(info, value, where)
        except ConfigError as exc:
            self.problems.append(exc)
            return None
        _, problems = check_args(info, args, where, keep_templates=True)
        self.problems.extend(problems)
        self._check_template_syntax(args, where)
        return None if problems else args

    def _handler_service(self, value: Any, where: Location) -> str | None:
        if (
            isinstance(value, str)
            and re.fullmatch(r"[A-Za-z0-9_.@:{}\- ]+", value)
            and value.strip()
        ):
            self._check_template_syntax(value, where)
            return value.strip()
        self._add(
            f"service: expected a unit name, not {kind_of(value)}",
            where,
            "write service: app.service (letters, digits and . _ - @ :)",
        )
        return None

    def _webhook(self, value: Any, where: Location) -> WebhookAction | None:
        example = "write webhook: {url: 'https://scaler.example/api/scale', method: POST}"
        if not isinstance(value, Mapping):
            self._add(
                f"webhook: expected a mapping with url:, not {kind_of(value)}", where, example
            )
            return None
        for key in value:
            if key not in WEBHOOK_KEYWORDS:
                self._unknown_key(value, key, WEBHOOK_KEYWORDS, "webhook", where)
        url = value.get("url")
        if not isinstance(url, str) or not (is_templated(url) or re.match(r"https?://", url)):
            self._add(
                f"webhook: url: expected an http(s) URL, not {kind_of(url)}",
                value_location(value, "url", where),
                example,
            )
            return None
        method = str(value.get("method", "POST")).upper()
        if method not in WEBHOOK_METHODS:
            suggestion = did_you_mean(method, WEBHOOK_METHODS)
            self._add(
                f"webhook: method: {value.get('method')!r} is not one of {', '.join(WEBHOOK_METHODS)}"
                + (f" — {suggestion}" if suggestion else ""),
                value_location(value, "method", where),
                "write method: POST",
            )
            return None
        headers = value.get("headers") or {}
        if not isinstance(headers, Mapping) or not all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in headers.values()
        ):
            self._add(
                f"webhook: headers: expected a mapping of name: text, not {kind_of(headers)}",
                value_location(value, "headers", where),
                "write headers: {Authorization: 'Bearer {{ env.TOKEN }}'}",
            )
            return None
        timeout = self._duration(value, "timeout", where, TIMEOUT_SPEC)
        self._check_template_syntax(value, where)
        return WebhookAction(
            url=url,
            method=method,
            headers={str(k): str(v) for k, v in headers.items()},
            body=value.get("body"),
            timeout=10.0 if timeout is None else timeout,
        )

    # -- thresholds ----------------------------------------------------------------------------

    def _item_measurements(
        self, info: ModuleInfo, args: Mapping[Any, Any], where: Location
    ) -> None:
        """Items that define measurements (log patterns): names unique identifiers that no
        declared measurement uses, warn/crit valid ranges. Sets the names `metric:` may use."""
        self._item_names = set()
        option = info.item_measurements_option
        items = args.get(option) if option else None
        if not isinstance(items, list):
            return
        at = value_location(args, option, where)
        for index, item in enumerate(items):
            if not isinstance(item, Mapping):
                continue
            item_at = value_location(items, index, at)
            name = item.get("name")
            if not isinstance(name, str) or is_templated(name):
                continue
            name_at = value_location(item, "name", item_at)
            if not _MEASUREMENT_NAME.match(name) or name in info.measurements:
                reason = (
                    f"'{name}' is one of {info.name}'s own measurements"
                    if name in info.measurements
                    else f"'{name}' is not a measurement name"
                )
                self._add(
                    f"{option}: item {index + 1}: {reason}",
                    name_at,
                    "use letters, digits and _ (not first a digit), and none of: "
                    + ", ".join(info.measurements),
                )
            elif name in self._item_names:
                self._add(
                    f"{option}: item {index + 1}: the name '{name}' is used twice",
                    name_at,
                    "give each item its own name: it names the count in reports and metrics",
                )
            self._item_names.add(name)
            for level in THRESHOLD_KEYWORDS:
                if item.get(level) is not None:
                    self._threshold(
                        item[level], level, info, name, value_location(item, level, item_at)
                    )

    def _metric(self, node: Mapping[Any, Any], info: ModuleInfo, where: Location) -> str | None:
        if "metric" not in node:
            return info.default_metric
        value = node["metric"]
        at = value_location(node, "metric", where)
        if not isinstance(value, str) or not value or is_templated(value):
            self._add(
                f"metric: expected the name of a measurement, not {kind_of(value)}",
                at,
                f"{info.name} measures: {', '.join(info.measurements)}",
            )
            return info.default_metric
        self._known_metric(info, value, at)
        return value

    def _known_metric(self, info: ModuleInfo, metric: str, where: Location) -> bool:
        if not info.measurements or measurement_pattern_matches(info, metric):
            return True
        if metric in self._item_names:
            return True
        message = f"module '{info.name}' does not measure '{metric}'"
        suggestion = did_you_mean(metric, info.measurements)
        self._add(
            f"{message} — {suggestion}" if suggestion else message,
            where,
            f"{info.name} measures: {', '.join(info.measurements)}",
        )
        return False

    def _threshold_key(
        self,
        node: Mapping[Any, Any],
        key: str,
        info: ModuleInfo,
        metric: str | None,
        where: Location,
    ) -> Any:
        if key not in node:
            return None
        at = value_location(node, key, where)
        if metric is None:
            self._add(
                f"{key}: module '{info.name}' has no default metric, so say which one the threshold is for",
                at,
                f"add metric: one of {', '.join(info.measurements)}",
            )
            return None
        return self._threshold(node[key], key, info, metric, at)

    def _threshold(
        self, value: Any, key: str, info: ModuleInfo, metric: str, where: Location
    ) -> Any:
        if is_baseline(value):
            return self._baseline(value, key, info, metric, where)
        if is_templated(value):
            self._check_template_syntax(value, where)
            return value
        try:
            parsed = parse_range(value)
        except ValueError as exc:
            self._add(f"{key}: {exc}", where, RANGE_HINT)
            return None
        self._threshold_unit(parsed, key, info, metric, where)
        return value

    def _baseline(
        self, value: Mapping[Any, Any], key: str, info: ModuleInfo, metric: str, where: Location
    ) -> Any:
        """A dynamic threshold: its keys checked, on a measurement that varies."""
        try:
            spec = parse_baseline(value)
        except BaselineError as exc:
            at = where
            if exc.key is not None and exc.key in value:
                at = (key_location if exc.at_key else value_location)(value, exc.key, where)
            self._add(f"{key}: {exc}", at, exc.hint)
            return None
        flag = measurement_flag(info, metric)
        if flag:
            self._add(
                f"{key}: a baseline needs a numeric measurement that varies, but '{metric}' of "
                f"module '{info.name}' is {flag}",
                where,
                "compare it with a static threshold (e.g. crit: 1:), or put the baseline on "
                f"another measurement with metric: ({', '.join(info.measurements)})",
            )
            return None
        if spec.fallback is not None:
            at = value_location(value, "fallback", where)
            self._threshold_unit(parse_range(spec.fallback), f"{key} fallback", info, metric, at)
        return value

    def _threshold_unit(
        self, parsed: Range, key: str, info: ModuleInfo, metric: str, where: Location
    ) -> None:
        unit = metric_unit(info, metric)
        try:
            parsed.for_unit(unit)
        except ValueError as exc:
            fix = f"write a number in {unit}" if unit else "write a plain number"
            self._add(f"{key} of '{metric}': {exc}", where, fix)

    def _thresholds(
        self, node: Mapping[Any, Any], info: ModuleInfo, metric: str | None, where: Location
    ) -> dict[str, ThresholdSpec]:
        value = node.get("thresholds")
        at = value_location(node, "thresholds", where)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self._add(
                f"thresholds: expected a mapping of measurement: {{warn, crit}}, not {kind_of(value)}",
                at,
                "write thresholds: {latency: {warn: 500ms}, status_code: {crit: 200:399}}",
            )
            return {}
        has_primary = "warn" in node or "crit" in node
        result: dict[str, ThresholdSpec] = {}
        for key, pair in value.items():
            name, name_at = str(key), key_location(value, key, at)
            if not self._known_metric(info, name, name_at):
                continue
            if has_primary and name == metric:
                self._add(
                    f"thresholds: '{name}' already has warn/crit on the check itself",
                    name_at,
                    "keep one of the two: either warn/crit on the check, or this entry",
                )
                continue
            result[name] = self._threshold_pair(pair, name, info, value_location(value, key, at))
        return result

    def _threshold_pair(
        self, pair: Any, metric: str, info: ModuleInfo, where: Location
    ) -> ThresholdSpec:
        if not isinstance(pair, Mapping) or not pair:
            self._add(
                f"thresholds: '{metric}' needs a mapping with warn and/or crit, not {kind_of(pair)}",
                where,
                f"write {metric}: {{warn: ..., crit: ...}}",
            )
            return ThresholdSpec()
        for key in pair:
            if key not in THRESHOLD_KEYWORDS:
                self._unknown_key(
                    pair, key, THRESHOLD_KEYWORDS, f"the thresholds of '{metric}'", where
                )
        values = {
            key: self._threshold(pair[key], key, info, metric, value_location(pair, key, where))
            for key in THRESHOLD_KEYWORDS
            if key in pair
        }
        return ThresholdSpec(warn=values.get("warn"), crit=values.get("crit"))

    # -- values shared by plays and checks ------------------------------------------------------

    def _text(self, node: Mapping[Any, Any], key: str, where: Location) -> str | None:
        value = node.get(key)
        if value is None:
            return None
        at = value_location(node, key, where)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self._add(f"{key}: expected text, not {kind_of(value)}", at, "put the value in quotes")
            return None
        self._check_template_syntax(value, at)
        return str(value)

    def _tags(self, node: Mapping[Any, Any], where: Location) -> list[str]:
        value = node.get("tags")
        if value is None:
            return []
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list) and all(
            isinstance(t, (str, int)) and not isinstance(t, bool) for t in items
        ):
            return [str(t).strip() for t in items if str(t).strip()]
        self._add(
            f"tags: expected a list of tags, not {kind_of(value)}",
            value_location(node, "tags", where),
            "write tags: [fast, disk]",
        )
        return []

    def _labels(self, node: Mapping[Any, Any], where: Location) -> MarkedMap:
        """Label names and values (text; templates are rendered per host, like names)."""
        value = node.get("labels")
        at = value_location(node, "labels", where)
        labels = MarkedMap(location=at)
        if value is None:
            return labels
        if not isinstance(value, Mapping):
            self._add(
                f"labels: expected a mapping of name: value, not {kind_of(value)}",
                at,
                "write labels: {team: web}",
            )
            return labels
        for name, text in value.items():
            text_at = value_location(value, name, at)
            if not isinstance(name, str) or not _LABEL_NAME.match(name):
                self._add(
                    f"'{name}' is not a valid label name",
                    key_location(value, name, at),
                    "label names use letters, digits and _ and do not start with a digit",
                )
            elif isinstance(text, (str, int, float, bool)):
                labels[name] = str(text).lower() if isinstance(text, bool) else str(text)
                labels.value_locations[name] = text_at
                self._check_template_syntax(text, text_at)
            else:
                self._add(
                    f"label '{name}': expected text, not {kind_of(text)}",
                    text_at,
                    f"write {name}: some-text (quote it if it looks like a number or yes/no)",
                )
        return labels

    def _bool(self, node: Mapping[Any, Any], key: str, where: Location) -> bool | None:
        if node.get(key) is None:
            return None
        try:
            return parse_bool(node[key])
        except OptionValueError as exc:
            self._add(f"{key}: {exc.message}", value_location(node, key, where), exc.hint)
            return None

    def _connection(self, node: Mapping[Any, Any], where: Location) -> str | None:
        value = node.get("connection")
        if value is None or value in CONNECTIONS:
            return value
        message = f"connection: {value!r} is not one of {', '.join(CONNECTIONS)}"
        suggestion = did_you_mean(str(value), CONNECTIONS)
        self._add(
            f"{message} — {suggestion}" if suggestion else message,
            value_location(node, "connection", where),
            "write connection: ssh or connection: local",
        )
        return None

    def _duration(
        self, node: Mapping[Any, Any], key: str, where: Location, spec: Mapping[str, Any]
    ) -> float | None:
        if node.get(key) is None:
            return None
        value, at = node[key], value_location(node, key, where)
        if is_templated(value):
            self._add(
                f"{key}: cannot be a template",
                at,
                f"{key} is needed before any host is known: write it like 30s",
            )
            return None
        try:
            return coerce_value(value, spec)
        except OptionValueError as exc:
            self._add(f"{key}: {exc.message}", at, exc.hint)
            return None

    def _interval(self, node: Mapping[Any, Any], where: Location) -> Interval | None:
        """`interval: 5s`, or `interval: {min: 5s, max: 1m}` (adaptive)."""
        value = node.get("interval")
        if not isinstance(value, Mapping):
            seconds = self._duration(node, "interval", where, INTERVAL_SPEC)
            return None if seconds is None else Interval.fixed(seconds)
        at = value_location(node, "interval", where)
        hint = "write interval: 30s, or interval: {min: 5s, max: 1m}"
        for key in value:
            if key not in INTERVAL_KEYWORDS:
                self._unknown_key(value, key, INTERVAL_KEYWORDS, "interval", at)
        missing = [key for key in INTERVAL_KEYWORDS if value.get(key) is None]
        if missing:
            self._add(f"interval: {' and '.join(missing)} missing", at, hint)
            return None
        low = self._duration(value, "min", at, INTERVAL_SPEC)
        high = self._duration(value, "max", at, INTERVAL_SPEC)
        if low is None or high is None:
            return None
        if low > high:
            self._add(
                f"interval: min ({value['min']}) is longer than max ({value['max']})",
                value_location(value, "min", at),
                hint,
            )
            return None
        return Interval(low, high)

    def _retries(self, node: Mapping[Any, Any], where: Location) -> int:
        value = node.get("retries")
        if value is None:
            return 0
        at = value_location(node, "retries", where)
        try:
            retries = coerce_value(value, {"type": "int"})
        except OptionValueError as exc:
            self._add(
                f"retries: {exc.message}",
                at,
                "write how many more attempts to make, e.g. retries: 3",
            )
            return 0
        if not 0 <= retries <= MAX_RETRIES:
            self._add(
                f"retries: {retries} is out of range: allowed 0 to {MAX_RETRIES}",
                at,
                "write how many more attempts to make; 0 for a single attempt",
            )
            return 0
        return retries

    def _runs(self, node: Mapping[Any, Any], where: Location) -> int | None:
        value = node.get("for")
        if value is None:
            return None
        at = value_location(node, "for", where)
        try:
            runs = coerce_value(value, {"type": "int"})
        except OptionValueError:
            runs = 0
        if not 1 <= runs <= MAX_FOR_RUNS:
            self._add(
                f"for: expected a number of consecutive failing runs (1 to {MAX_FOR_RUNS}), "
                f"not {kind_of(value)}",
                at,
                "write for: 3 (the alert fires on the third failing run in a row)",
            )
            return None
        return runs

    def _check_names(
        self, node: Mapping[Any, Any], key: str, where: Location, noun: str = "check names"
    ) -> list[str]:
        value = node.get(key)
        if value is None:
            return []
        names = value if isinstance(value, list) else [value]
        if not all(isinstance(n, str) and n for n in names):
            example = (
                "[restart app] (names of the play's handlers)"
                if noun == "handler names"
                else "[database port] (names of checks on the same host)"
            )
            self._add(
                f"{key}: expected {noun}, not {kind_of(value)}",
                value_location(node, key, where),
                f"write {key}: {example}",
            )
            return []
        return list(names)

    def _when(self, node: Mapping[Any, Any], where: Location) -> Any:
        value = node.get("when")
        at = value_location(node, "when", where)
        if not isinstance(value, list):
            if value is not None:
                self._condition(value, at)
            return value
        for position, condition in enumerate(value):
            self._condition(condition, value_location(value, position, at))
        return value

    def _condition(self, condition: Any, where: Location) -> None:
        if isinstance(condition, bool):
            return
        if not isinstance(condition, str) or not condition.strip():
            self._add(
                f"when: expected an expression, not {kind_of(condition)}",
                where,
                "write e.g. when: level | int > 5",
            )
        elif is_templated(condition):
            self._add(
                "when: is an expression already; it must not contain {{ }}",
                where,
                f"write when: {bare_expression(condition)}",
            )
        else:
            problem = expression_syntax_error(condition)
            if problem:
                self._add(
                    f"when: {condition!r} is not a valid expression: {problem}",
                    where,
                    "write a Jinja2 expression, e.g. when: level | int > 5",
                )

    def _check_template_syntax(self, value: Any, where: Location) -> None:
        if isinstance(value, str):
            problem = template_syntax_error(value) if is_templated(value) else None
            if problem:
                self._add(
                    f"template syntax error in {value!r}: {problem}",
                    where,
                    "Jinja2 syntax: {{ variable }}, {{ value | filter }}",
                )
        elif isinstance(value, Mapping):
            for key, item in value.items():
                self._check_template_syntax(item, value_location(value, key, where))
        elif isinstance(value, list):
            for position, item in enumerate(value):
                self._check_template_syntax(item, value_location(value, position, where))

    def _unknown_key(
        self,
        node: Mapping[Any, Any],
        key: Any,
        allowed: Mapping[str, Keyword],
        owner: str,
        where: Location,
    ) -> None:
        at = key_location(node, key, where)
        if key in ANSIBLE_HABITS:
            self._add(f"'{key}' is not a keyword of {owner}", at, ANSIBLE_HABITS[key])
            return
        message = f"unknown key '{key}' in {owner}"
        suggestion = did_you_mean(str(key), allowed)
        self._add(
            f"{message} — {suggestion}" if suggestion else message,
            at,
            f"allowed keys: {', '.join(allowed)}",
        )

    def _add(self, message: str, location: Location, hint: str | None = None) -> None:
        self.problems.append(ConfigError(message, location, hint))


def _label(node: Mapping[Any, Any], kind: str, index: int) -> str:
    name = node.get("name")
    if isinstance(name, (str, int, float)) and not isinstance(name, bool) and str(name).strip():
        return f"{kind} '{name}'"
    return f"{kind} {index + 1}"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _default_name(info: ModuleInfo, args: Mapping[str, Any]) -> str:
    """The module's name, followed by its free-form argument when there is one (`disk /`)."""
    if info.free_form and isinstance(args.get(info.free_form), (str, int, float)):
        return f"{info.name} {args[info.free_form]}"
    return info.name
