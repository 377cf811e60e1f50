"""Hosts x checks -> one batch per host, with every template rendered and every argument checked.

Everything that can be wrong with the input is found here, before anything runs (exit 5).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from checkrunner import catalog, settings
from checkrunner.config import (
    CheckSpec,
    Interval,
    Play,
    Playbook,
    Templater,
    merge_variables,
    normalize_args,
    parse_range,
    value_location,
)
from checkrunner.config.baselines import BaselineSpec, is_baseline, parse_baseline
from checkrunner.config.coerce import is_templated, kind_of
from checkrunner.config.keywords import SCORE_CHECK_NAME
from checkrunner.config.model import HandlerSpec
from checkrunner.errors import BaselineError, ConfigError, Location, quote
from checkrunner.evaluate.evaluate import CheckIdentity, MetricThresholds
from checkrunner.evaluate.score import SCORE_METRIC, ScorePlan
from checkrunner.inventory import Host, Inventory
from checkrunner.masking import errors_masked
from checkrunner.shards import ShardInfo, ShardSpec
from checkrunner.transport import BatchCheck, check_connection, unsupported_connection


@dataclass
class PlanOptions:
    extra_vars: dict[str, Any] = field(default_factory=dict)
    limit: str | None = None
    tags: list[str] = field(default_factory=list)
    skip_tags: list[str] = field(default_factory=list)
    become: bool = False
    interval: float = settings.INTERVAL.default  # watch: checks and plays without interval:
    shard: ShardSpec | None = None  # --shard K/N: only the hosts this shard owns


@dataclass
class PlannedCheck:
    identity: CheckIdentity
    batch: BatchCheck | None  # None when skipped
    skip_reason: str | None = None
    retries: int = 0
    delay: float = 0.0
    become: bool = False  # runs through sudo: its batch is separate from the others'
    name_template: str = ""  # the name as written, before rendering
    interval: Interval = Interval.fixed(settings.INTERVAL.default)  # watch mode's schedule


@dataclass
class HostPlan:
    host: Host
    checks: list[PlannedCheck] = field(default_factory=list)
    scores: list[ScorePlan] = field(default_factory=list)  # its plays' `score:`, if any
    # (play name, handler name) -> the handler with its templates rendered for this host
    handlers: dict[tuple[str, str], HandlerSpec] = field(default_factory=dict)

    @property
    def runnable(self) -> list[PlannedCheck]:
        return [c for c in self.checks if c.batch is not None]

    def identities(self) -> list[CheckIdentity]:
        """Every check the host reports: its planned checks, then its plays' `host score`."""
        return [c.identity for c in self.checks] + [s.identity for s in self.scores]


@dataclass
class Plan:
    playbook: str
    hosts: list[HostPlan]
    warnings: list[str] = field(default_factory=list)
    # environment values templates read; in a shard, the other shards' inventory passwords too
    secrets: set[str] = field(default_factory=set)
    alerting: Any = None  # the playbook's AlertingSpec, if it has receivers and a route
    # play name (as alerts carry it) -> handler name -> HandlerSpec (the play's `handlers:`)
    handlers: dict[str, dict[str, HandlerSpec]] = field(default_factory=dict)
    play_hosts: dict[str, int] = field(default_factory=dict)  # play name -> hosts it runs on
    shard: ShardInfo | None = None  # --shard: which shard, and every host of all shards

    @property
    def total_checks(self) -> int:
        return sum(len(h.checks) for h in self.hosts)


def build_plan(playbook: Playbook, inventory: Inventory, options: PlanOptions) -> Plan:
    templater = Templater()
    # An error can quote a rendered value (a type error): what came from the environment
    # is masked in it.
    with errors_masked(lambda: templater.environment_values_used):
        return _build_plan(templater, playbook, inventory, options)


def _build_plan(
    templater: Templater, playbook: Playbook, inventory: Inventory, options: PlanOptions
) -> Plan:
    host_plans: dict[str, HostPlan] = {}
    handlers: dict[str, dict[str, HandlerSpec]] = {}
    play_hosts: dict[str, int] = {}
    warnings: list[str] = [str(w) for w in inventory.warnings]
    planned_hosts: dict[str, None] = {}  # every host of every shard, in plan order
    # Masked in this shard's report too (the hosts every shard lists), so that all the
    # shards mask the same names.
    other_shards_secrets: set[str] = set()
    if playbook.alerting is not None:
        warnings += playbook.alerting.warnings
    for play in playbook.plays:
        hosts = inventory.select(
            play.hosts,
            limit=options.limit,
            location=play.key_locations.get("hosts", play.location),
        )
        if not hosts:
            warnings.append(
                f"{play.location}: play '{play.name}': host pattern '{play.hosts}' matched no hosts"
            )
            continue
        planned_hosts.update(dict.fromkeys(host.name for host in hosts))
        if options.shard is not None:  # after --limit: a share of what the run would plan
            others = [host for host in hosts if not options.shard.owns(host.name)]
            other_shards_secrets.update(_literal_passwords(others))
            hosts = [host for host in hosts if options.shard.owns(host.name)]
        checks = [c for c in play.checks if _selected_by_tags(play, c, options)]
        for inventory_host in hosts:
            host_plan = host_plans.get(inventory_host.name)
            if host_plan is None:
                host = _render_connection_vars(templater, inventory, inventory_host, options)
                check_connection(host)  # unusable connection settings are input errors: fail now
                unsupported = unsupported_connection(host)
                if unsupported is not None:
                    warnings.append(
                        f"host '{host.name}': {unsupported.message}; it is reported "
                        f"UNREACHABLE ({unsupported.reason.value})"
                    )
                host_plan = host_plans[host.name] = HostPlan(host=host)
            host = host_plan.host
            variables = _variables(inventory, host, play, options.extra_vars)
            if "env" in variables and not any("'env'" in w for w in warnings):
                warnings.append(
                    f"a variable named 'env' (host {host.name}) hides the environment: "
                    "{{ env.NAME }} reads that variable instead; rename it"
                )
            play_name = str(templater.render(play.name, variables, _play_name_location(play)))
            if play.handlers:
                handlers[play_name] = {handler.name: handler for handler in play.handlers}
                play_hosts[play_name] = len(hosts)
                for handler in play.handlers:
                    host_plan.handlers[(play_name, handler.name)] = _plan_handler(
                        templater, handler, variables
                    )
            for check in checks:
                planned = _plan_check(templater, host, play_name, check, variables)
                planned.become = _check_become(check, host, options)
                planned.name_template = str(check.name)
                planned.interval = check.interval or Interval.fixed(options.interval)
                host_plan.checks.append(planned)
            if play.score is not None:
                selected = {c.id for c in checks}
                host_plan.scores.append(
                    _plan_score(templater, host, play, play_name, selected, variables)
                )
    return Plan(
        playbook=playbook.path,
        hosts=list(host_plans.values()),
        warnings=warnings,
        secrets=templater.environment_values_used | other_shards_secrets,
        alerting=playbook.alerting,
        handlers=handlers,
        play_hosts=play_hosts,
        shard=_shard_info(options.shard, planned_hosts),
    )


def _literal_passwords(hosts: list[Host]) -> set[str]:
    """The inventory passwords of hosts another shard runs (those not templated: this
    shard renders none of their variables)."""
    found = (secret for host in hosts for secret in (host.password, host.become_password))
    return {secret for secret in found if secret and not is_templated(secret)}


def _shard_info(shard: ShardSpec | None, planned: dict[str, None]) -> ShardInfo | None:
    if shard is None:
        return None
    return ShardInfo.of(shard, list(planned))


def _render_connection_vars(
    templater: Templater, inventory: Inventory, host: Host, options: PlanOptions
) -> Host:
    """The host with its templated ansible_* settings rendered (ansible_become_password:
    "{{ env.SUDO_PASSWORD }}"); check arguments are rendered later, per play."""
    templated = {
        key: value
        for key, value in host.vars.items()
        if key.startswith("ansible_") and is_templated(value)
    }
    if not templated:
        return host
    variables = merge_variables(inventory.magic_vars(host), host.vars, options.extra_vars)
    rendered = dict(host.vars)
    for key, value in templated.items():
        location = host.var_locations.get(key) or host.location
        rendered[key] = templater.render(value, variables, location)
    return dataclasses.replace(host, vars=rendered)


def _selected_by_tags(play: Play, check: CheckSpec, options: PlanOptions) -> bool:
    tags = set(play.tags) | set(check.tags)
    if options.tags and not (tags & set(options.tags)) and "all" not in options.tags:
        return False
    return not (options.skip_tags and tags & set(options.skip_tags))


def _check_become(check: CheckSpec, host: Host, options: PlanOptions) -> bool:
    """--become, else the check's own (or its play's) `become`, else ansible_become."""
    if options.become:
        return True
    if check.become is not None:  # already the play's when the check says nothing
        return bool(check.become)
    return bool(host.become)


def _variables(
    inventory: Inventory, host: Host, play: Play, extra: dict[str, Any]
) -> dict[str, Any]:
    """Ansible's order, lowest first: inventory vars, play vars (and vars_files), extra vars."""
    return merge_variables(inventory.magic_vars(host), host.vars, play.vars, extra)


def _play_name_location(play: Play) -> Location:
    return play.key_locations.get("name") or play.key_locations.get("hosts") or play.location


def _labels(
    templater: Templater, check: CheckSpec, variables: dict[str, Any]
) -> tuple[tuple[str, str], ...]:
    """The check's labels (its play's under its own), their values rendered for the host."""
    location = check.key_locations.get("labels", check.location)
    rendered = templater.render(check.labels, variables, location)
    labels = {}
    for name, value in rendered.items():
        if isinstance(value, (Mapping, list)):
            raise ConfigError(
                f"label '{name}': the template gives {kind_of(value)}, not text",
                value_location(check.labels, name, location),
                "a label's value is one line of text",
            )
        labels[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return tuple(sorted(labels.items()))


def _plan_handler(
    templater: Templater, handler: HandlerSpec, variables: dict[str, Any]
) -> HandlerSpec:
    """The handler's action with its templates rendered for the host (like a check's args)."""
    at = handler.location
    if handler.webhook is not None:
        hook = handler.webhook
        rendered = templater.render(
            {"url": hook.url, "headers": dict(hook.headers), "body": hook.body}, variables, at
        )
        webhook = dataclasses.replace(
            hook,
            url=str(rendered["url"]),
            headers={str(k): str(v) for k, v in rendered["headers"].items()},
            body=rendered["body"],
        )
        return dataclasses.replace(handler, webhook=webhook)
    if handler.service is not None:
        return dataclasses.replace(
            handler, service=str(templater.render(handler.service, variables, at))
        )
    return dataclasses.replace(handler, command=templater.render(handler.command, variables, at))


def _plan_check(
    templater: Templater, host: Host, play_name: str, check: CheckSpec, variables: dict[str, Any]
) -> PlannedCheck:
    info = catalog.get(check.module)
    at = check.key_locations.get
    identity = CheckIdentity(
        host=host.name,
        play=play_name,
        name=str(templater.render(check.name, variables, at("name", check.location))),
        module=check.module,
        check_id=check.id,
        metric=check.metric,
        thresholds=_thresholds(templater, check, info, variables),
        declared_units={k: str(v.get("unit", "")) for k, v in info.measurements.items()},
        tags=tuple(check.tags),
        labels=_labels(templater, check, variables),
        for_runs=check.for_runs,
        depends_on=tuple(check.depends_on),
        notify=tuple(check.notify),
    )
    when_at = at("when", check.location)
    if check.when is not None and not templater.evaluate_when(check.when, variables, when_at):
        return PlannedCheck(identity=identity, batch=None, skip_reason=f"when: {check.when}")
    args = normalize_args(
        info, templater.render(check.args, variables, check.location), check.location
    )
    item_thresholds = _item_thresholds(info, args, check)
    if item_thresholds:
        identity = dataclasses.replace(identity, thresholds=identity.thresholds + item_thresholds)
    return PlannedCheck(
        identity=identity,
        batch=BatchCheck(id=check.id, module=check.module, args=args, timeout=check.timeout),
        retries=check.retries,
        delay=check.delay,
    )


def _plan_score(
    templater: Templater,
    host: Host,
    play: Play,
    play_name: str,
    selected: set[str],
    variables: dict[str, Any],
) -> ScorePlan:
    """The play's `score:` on one host; its thresholds are on the 0-100 score."""
    spec = play.score
    assert spec is not None
    texts = {
        level: _threshold_text(getattr(spec, level))
        for level in ("warn", "crit")
        if getattr(spec, level) is not None
    }
    ranges = {level: parse_range(text, "%") for level, text in texts.items()}
    location = play.key_locations.get("labels", play.location)
    labels = templater.render(play.labels, variables, location)
    identity = CheckIdentity(
        host=host.name,
        play=play_name,
        name=SCORE_CHECK_NAME,
        module="score",
        check_id=f"{play.index}.score",
        metric=SCORE_METRIC,
        thresholds=(
            MetricThresholds(
                SCORE_METRIC,
                ranges.get("warn"),
                ranges.get("crit"),
                texts.get("warn"),
                texts.get("crit"),
            ),
        ),
        declared_units={SCORE_METRIC: "%"},
        tags=tuple(play.tags),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
        for_runs=play.for_runs or 1,
    )
    inputs = tuple((check_id, name, weight) for check_id, (name, weight) in spec.weights.items())
    return ScorePlan(identity, inputs, frozenset(i for i, _, _ in inputs if i in selected))


def _thresholds(
    templater: Templater, check: CheckSpec, info: catalog.ModuleInfo, variables: dict[str, Any]
) -> tuple[MetricThresholds, ...]:
    parsed = []
    for metric, spec in check.threshold_map().items():
        levels = {}
        for level in ("warn", "crit"):
            value = getattr(spec, level)
            if value is None:
                continue
            location = check.key_locations.get(level, check.location)
            if not is_baseline(value):
                value = templater.render(value, variables, location)
            levels[level] = _level(value, info.unit_of(metric) or None, location, check.name, level)
        parsed.append(_metric_thresholds(metric, levels))
    return tuple(parsed)


@dataclass(frozen=True)
class _Level:
    """One level's threshold: its static range (a baseline's fallback), its baseline."""

    text: str
    range: Any = None  # Range | None
    baseline: BaselineSpec | None = None


def _level(value: Any, unit: str | None, location: Location, check: str, level: str) -> _Level:
    """A warn/crit value (rendered) as a range, or a baseline with its fallback range."""
    baseline = None
    if is_baseline(value):
        try:
            baseline = parse_baseline(value)
        except BaselineError as exc:  # the parser checked it; kept for plans built directly
            raise ConfigError(f"check '{check}': {level}: {exc}", location, exc.hint) from None
        text = baseline.fallback
    else:
        text = _threshold_text(value)
    try:
        limit = parse_range(text, unit) if text is not None else None
    except ValueError as exc:
        raise ConfigError(
            f"check '{check}': {level} threshold {quote(text)} is not a number or range: {exc}",
            location,
            hint="write a number (upper bound) or a Nagios range: 10:, ~:10, 10:20, @10:20",
        ) from None
    return _Level(baseline.text if baseline else str(text), limit, baseline)


def _metric_thresholds(metric: str, levels: dict[str, _Level]) -> MetricThresholds:
    warn, crit = levels.get("warn"), levels.get("crit")
    return MetricThresholds(
        metric=metric,
        warn=warn.range if warn else None,
        crit=crit.range if crit else None,
        warn_text=warn.text if warn else None,
        crit_text=crit.text if crit else None,
        warn_baseline=warn.baseline if warn else None,
        crit_baseline=crit.baseline if crit else None,
    )


def _item_thresholds(
    info: catalog.ModuleInfo, args: dict[str, Any], check: CheckSpec
) -> tuple[MetricThresholds, ...]:
    """warn/crit of the items that define their own measurements (each log pattern's count)."""
    option = info.item_measurements_option
    parsed = []
    for item in (args.get(option) or []) if option else []:
        name = f"{check.name}': {option} '{item.get('name')}"
        levels = {
            level: _level(item[level], None, check.location, name, level)
            for level in ("warn", "crit")
            if item.get(level) is not None
        }
        if levels:
            parsed.append(_metric_thresholds(str(item["name"]), levels))
    return tuple(parsed)


def _threshold_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
