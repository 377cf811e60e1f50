"""The keys a playbook, a play and a check may have: one table for the parser, schema and docs."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CHECK_TIMEOUT = 30.0  # seconds, when neither the check nor its play sets `timeout`
DEFAULT_RETRY_DELAY = 1.0  # seconds between attempts, when a check sets `retries` but no `delay`
CONNECTIONS = ("local", "ssh")
LABEL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # Prometheus/Alertmanager label names
# Ranges of the durations checks, plays and the command line take (timers in the runner and on
# targets overflow far beyond them; a check longer than a day is a mistake).
TIMEOUT_SPEC = {"type": "duration", "min": "1ms", "max": "1d"}
DELAY_SPEC = {"type": "duration", "min": "0s", "max": "1d"}
MAX_RETRIES = 100
MAX_FOR_RUNS = 10_000  # consecutive failing runs before an alert fires
# How often watch mode runs a check: at least a second apart (a round trip), at most a day.
INTERVAL_SPEC = {"type": "duration", "min": "1s", "max": "1d"}
INTERVAL_HELP = (
    "How often `checkrun watch` runs the check: a duration (5s), or {min: 5s, max: 1m} to "
    "sample at min while the check fails, nears a threshold or moves, and back off toward "
    "max while it is stable"
)


@dataclass(frozen=True)
class Keyword:
    kind: str  # how the value is validated; see parse.py and schema.py
    description: str


PLAYBOOK_KEYWORDS = {
    "plays": Keyword("plays", "The plays, in order."),
    "receivers": Keyword(
        "receivers",
        "Where alerts go, in Alertmanager's form: [{name: ops, webhook_configs: [...], "
        "wecom_configs: [...], email_configs: [...]}].",
    ),
    "route": Keyword(
        "route",
        "Alertmanager's routing tree: receiver, group_by, repeat_interval, and child routes "
        "with matchers and continue.",
    ),
    "inhibit_rules": Keyword(
        "inhibit_rules",
        "Alertmanager's inhibition: [{source_matchers: [...], target_matchers: [...], equal: [...]}].",
    ),
    "global": Keyword(
        "mapping",
        "Alertmanager's global settings: resolve_timeout, http_config, smtp_* and "
        "slack_api_url defaults for the receivers.",
    ),
    "templates": Keyword(
        "list",
        "Alertmanager's Go template files: accepted and ignored, with a warning (receivers "
        "take Jinja2 templates).",
    ),
    "time_intervals": Keyword(
        "list",
        "Named time intervals (Alertmanager's): [{name, time_intervals: [{times, weekdays, "
        "days_of_month, months, years, location}]}], for a route's mute_time_intervals and "
        "active_time_intervals.",
    ),
    "mute_time_intervals": Keyword(
        "list", "The older name of time_intervals (Alertmanager still reads both)."
    ),
    "alerting": Keyword(
        "file",
        "A shared file (relative to the playbook) with receivers, route and inhibit_rules.",
    ),
}

PLAY_KEYWORDS = {
    "name": Keyword("text", "Name of the play in reports; defaults to its host pattern."),
    "hosts": Keyword(
        "hosts",
        "Ansible host pattern: all, a group, a host, web:&prod (both), web:!canary (except), "
        "or a list of patterns (any of them).",
    ),
    "vars": Keyword("vars", "Variables for the templates of this play's checks."),
    "vars_files": Keyword(
        "vars_files",
        "YAML files of variables, relative to the playbook's folder; they override `vars`.",
    ),
    "tags": Keyword(
        "tags", "Tags given to every check of the play (select with -t / --skip-tags)."
    ),
    "labels": Keyword("labels", "Labels added to every check's results and alerts."),
    "become": Keyword("bool", "Run this play's checks through sudo (overrides the inventory)."),
    "for": Keyword(
        "runs",
        "Default `for` of this play's checks: consecutive failing runs before an alert fires.",
    ),
    "connection": Keyword(
        "connection", "How to reach the hosts: local or ssh (overrides the inventory)."
    ),
    "interval": Keyword(
        "interval",
        f"Default interval of this play's checks. {INTERVAL_HELP}; --interval when unset.",
    ),
    "timeout": Keyword(
        "duration",
        f"Default timeout of this play's checks (checks without their own); {DEFAULT_CHECK_TIMEOUT:g}s when unset.",
    ),
    "checks": Keyword("checks", "The checks to run on every host of the play."),
    "handlers": Keyword(
        "handlers",
        "Actions a check's `notify:` runs on a host when its alert fires (Ansible's word): "
        "[{name: restart app, service: app.service}], each with exactly one of command, "
        "service and webhook, and guard rails (settle, max_runs, cooldown, max_hosts).",
    ),
    "score": Keyword(
        "score",
        "A weighted 0-100 host score over checks of this play, reported as the check "
        "`host score`: {weights: {cpu: 0.4, memory: 0.3}, warn: 70, crit: 90}.",
    ),
}

SCORE_CHECK_NAME = "host score"
# Keys of a play's `score:`.
SCORE_KEYWORDS = {
    "weights": Keyword(
        "weights",
        "Check name: positive weight. Percentages count as they are; other values as a "
        "percentage of their check's crit threshold.",
    ),
    "warn": Keyword("threshold", "WARNING threshold of the score (0-100), e.g. 70."),
    "crit": Keyword("threshold", "CRITICAL threshold of the score (0-100), e.g. 90."),
}

CHECK_KEYWORDS = {
    "name": Keyword("text", "Name of the check in reports; defaults to the module name."),
    "warn": Keyword(
        "threshold",
        "WARNING threshold for the metric: a number (alert above it) or a Nagios range "
        '(10: below, ~:10 above, 10:20 outside, "@10:20" inside); units like 500ms, 2GB, 80% allowed. '
        "Or a dynamic threshold against the measurement's own history: {baseline: 7d, factor: 1.8} "
        "(above 1.8 × the 7-day mean), {baseline: 7d, sigma: 3} (mean ± 3σ) or "
        "{baseline: 7d, mad: 3} (median ± 3 × scaled MAD); see the baseline keys.",
    ),
    "crit": Keyword("threshold", "CRITICAL threshold for the metric; same syntax as warn."),
    "metric": Keyword(
        "metric", "The measurement warn and crit apply to; defaults to the module's default metric."
    ),
    "thresholds": Keyword(
        "thresholds",
        "Thresholds for several measurements at once: {latency: {warn: 500ms}, status_code: {crit: 200:399}}.",
    ),
    "timeout": Keyword(
        "duration",
        f"Time the check may take on the target; the play's timeout, else {DEFAULT_CHECK_TIMEOUT:g}s.",
    ),
    "retries": Keyword(
        "retries", "How many more times to try before a failure counts (default 0)."
    ),
    "delay": Keyword(
        "duration", f"Pause between attempts when retrying (default {DEFAULT_RETRY_DELAY:g}s)."
    ),
    "interval": Keyword("interval", f"{INTERVAL_HELP}; the play's, else --interval (60s)."),
    "tags": Keyword("tags", "Tags of this check, added to the play's tags."),
    "labels": Keyword("labels", "Labels of this check, over the play's labels."),
    "when": Keyword(
        "when",
        "Run the check only when this Jinja2 expression (or every one of a list) is true, "
        "e.g. when: level | int > 5; otherwise it is SKIPPED.",
    ),
    "become": Keyword("bool", "Run this check through sudo (overrides the play)."),
    "for": Keyword(
        "runs",
        "Consecutive failing runs before its alert fires (default 1; 3 = three missed heartbeats).",
    ),
    "depends_on": Keyword(
        "names",
        "Names of checks on the same host this one depends on: while one of them fails, "
        "this check's alert is suppressed (the root cause is what pages).",
    ),
    "notify": Keyword(
        "names",
        "Names of the play's handlers to run on the host when this check's alert fires "
        "(after `for:`); the check is run again after the handler's settle time and its "
        "result says remediated or remediation failed.",
    ),
}

DEFAULT_MIN_SAMPLES = 30  # history samples a baseline needs before it judges
# Keys of a dynamic threshold (`warn: {baseline: 7d, factor: 1.8}`); config/baselines.py.
BASELINE_KEYWORDS = {
    "baseline": Keyword(
        "duration",
        "The window of history the threshold is computed from, e.g. 7d. Beyond the raw "
        "retention (8d) the hourly rows count, each weighted by its sample count.",
    ),
    "factor": Keyword(
        "number",
        "Breach above factor × the window's mean (direction below: under mean / factor).",
    ),
    "sigma": Keyword("number", "Breach beyond the window's mean ± sigma standard deviations."),
    "mad": Keyword(
        "number",
        "Breach beyond the window's median ± mad × 1.4826·MAD (the median absolute deviation, "
        "scaled to match σ on normal data): robust, a few spikes barely move it.",
    ),
    "seasonal": Keyword(
        "choice",
        "hour_of_week or hour_of_day: only samples in the same hour of the week (or day) as "
        "now, in the control node's local time, count.",
    ),
    "direction": Keyword(
        "choice", "above (default), below or both: which side of the baseline breaches."
    ),
    "min_samples": Keyword(
        "number",
        f"History samples needed before the baseline judges (default {DEFAULT_MIN_SAMPLES}); "
        "until then it is warming up and only the fallback applies. An hourly row counts "
        "its samples.",
    ),
    "fallback": Keyword(
        "threshold", "A static threshold (number or range) applied while warming up."
    ),
}

# Keys of an adaptive `interval:`.
INTERVAL_KEYWORDS = {
    "min": Keyword("duration", "The interval while the check fails, nears a threshold or moves."),
    "max": Keyword("duration", "The longest interval it backs off to while stable."),
}

# Keys of one entry of `thresholds:`.
THRESHOLD_KEYWORDS = {
    "warn": CHECK_KEYWORDS["warn"],
    "crit": CHECK_KEYWORDS["crit"],
}

# Keys from Ansible that people will write by habit, with what to write instead.
ANSIBLE_HABITS = {
    "tasks": "checkrunner lists a play's work under checks:",
    "gather_facts": "checkrunner does not gather facts; remove it",
    "roles": "checkrunner has no roles; put the checks in the play or in another playbook",
    "register": "every check's result is in the reports already; remove it",
    "loop": "loops are not supported: write one check per item",
    "with_items": "loops are not supported: write one check per item",
    "ignore_errors": "use --fail-on to choose which statuses fail the run",
    "vars_prompt": "pass values with -e name=value instead",
}

# -- handlers (self-healing) --------------------------------------------------------------------
HANDLER_ACTIONS = ("command", "service", "webhook")
DEFAULT_SETTLE = 10.0  # seconds between a handler and the re-run of its notifying checks
DEFAULT_MAX_RUNS = 3  # runs of one handler on one host per MAX_RUNS_WINDOW
MAX_RUNS_WINDOW = 3600.0
DEFAULT_COOLDOWN = 300.0  # seconds after a run before the handler may run on that host again
DEFAULT_MAX_HOSTS = "10%"  # of the play's hosts acted on by one handler in one run
DEFAULT_HANDLER_TIMEOUT = 60.0
SETTLE_SPEC = {"type": "duration", "min": "0s", "max": "1h"}
COOLDOWN_SPEC = {"type": "duration", "min": "0s", "max": "7d"}
MAX_HANDLER_RUNS = 1000
WEBHOOK_METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")

HANDLER_KEYWORDS = {
    "name": Keyword(
        "text", "The handler's name, as checks' notify: lists it (unique in the play)."
    ),
    "command": Keyword(
        "command",
        "Run a command on the host, in the command module's form: a string split like a "
        "shell would (no shell), a list of arguments, or {cmd: ..., shell: true}.",
    ),
    "service": Keyword(
        "text",
        "Restart this unit on the host with its init system: systemctl restart UNIT where "
        "systemctl exists, else service UNIT restart.",
    ),
    "webhook": Keyword(
        "webhook",
        "Call a URL from the control node (an autoscaler, a runbook automation): "
        "{url, method: POST, headers: {}, body: ..., timeout: 10s}; any 2xx is success.",
    ),
    "become": Keyword(
        "bool", "Run the action through sudo (command and service); the play's else."
    ),
    "timeout": Keyword(
        "duration", f"Time the action may take (default {DEFAULT_HANDLER_TIMEOUT:g}s)."
    ),
    "settle": Keyword(
        "duration",
        f"Wait after the action before the notifying checks run again (default {DEFAULT_SETTLE:g}s).",
    ),
    "max_runs": Keyword(
        "count",
        f"At most this many runs per host per hour (default {DEFAULT_MAX_RUNS}); past it the "
        "alert carries remediation=suppressed.",
    ),
    "cooldown": Keyword(
        "duration",
        f"After a run on a host, wait this long before running again there (default "
        f"{DEFAULT_COOLDOWN:g}s).",
    ),
    "max_hosts": Keyword(
        "max_hosts",
        f"At most this many of the play's hosts acted on in one run: a number or a "
        f"percentage (default {DEFAULT_MAX_HOSTS}); a fleet-wide failure pages instead.",
    ),
}

# Keys of a handler's `webhook:`.
WEBHOOK_KEYWORDS = {
    "url": Keyword("text", "The URL to call (http or https)."),
    "method": Keyword("choice", f"HTTP method: {', '.join(WEBHOOK_METHODS)} (default POST)."),
    "headers": Keyword(
        "headers", "Request headers, e.g. {Authorization: 'Bearer {{ env.TOKEN }}'}."
    ),
    "body": Keyword("any", "The request body: text as is, or a mapping/list sent as JSON."),
    "timeout": Keyword("duration", "Time the call may take (default 10s)."),
}
