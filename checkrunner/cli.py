"""Command line: arguments -> one command function each (checkrunner.app); no logic here."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import signal
import sys
import traceback
from typing import TYPE_CHECKING, Any

from checkrunner import __version__, settings
from checkrunner.config.coerce import bounds_text, coerce_value
from checkrunner.config.keywords import DELAY_SPEC, INTERVAL_SPEC, TIMEOUT_SPEC
from checkrunner.errors import CheckrunError, ConfigError, OptionValueError, flatten_problems
from checkrunner.report import format_help
from checkrunner.results import EXIT_BAD_INPUT, EXIT_INTERRUPTED, FAIL_ON_LEVELS
from checkrunner.safe_text import one_line, printable
from checkrunner.serve.events import LOG_FORMATS

# app (and with it the playbook, inventory and transport layers) is imported by the commands
# that need it: `checkrun history` starts without them.
if TYPE_CHECKING:
    from checkrunner import app
    from checkrunner.actions_command import ActionsQuery
    from checkrunner.history_command import HistoryQuery

SUBCOMMANDS = (
    "run",
    "validate",
    "schema",
    "doc",
    "notify",
    "alerts",
    "watch",
    "history",
    "actions",
    "merge",
    "init",
    "completion",
    "__complete",
)
HIDDEN_SUBCOMMANDS = ("__complete",)  # what the completion scripts call

EPILOG = """\
commands:
  checkrun PLAYBOOK [options]        run the playbook (same as `checkrun run PLAYBOOK`)
  checkrun validate PLAYBOOK [-i ..] check a playbook without running it (also --syntax-check)
  checkrun schema                    print the playbook JSON Schema (for editors)
  checkrun doc [NAME]                list the check modules and receivers, or document one
  checkrun notify PLAYBOOK --flush   deliver the outbox now (--test RECEIVER: a test message)
  checkrun alerts                    list firing alerts, failing checks, undelivered messages
  checkrun watch PLAYBOOK [options]  run the checks as they fall due, until stopped (--help)
  checkrun history --host H --check C  a check's recorded values and statuses (--help)
  checkrun actions [--host H]        what handlers ran, where, why, with what result (--help)
  checkrun merge RUN.json ... [-r ..] join the JSON reports of --shard K/N runs into one report
  checkrun init [-i INV -l HOST]     write a starter playbook from what runs on a live host
  checkrun completion bash|zsh|fish  print the shell completion script

exit codes: 0 ok, 1 warnings (--fail-on warning), 2 critical, 3 unknown, 4 unreachable,
            5 bad playbook/inventory/command line, 130 interrupted
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2; a wrong command line is exit 5 here
        raise ConfigError(f"command line: {message}", hint=f"see `{self.prog} --help`")


def _duration(spec: dict[str, str]):
    """An argparse type: a duration within the range of `spec` (the playbook's own rules)."""

    def duration(text: str) -> float:
        try:
            return coerce_value(text, spec)
        except OptionValueError as exc:
            allowed = "" if "allowed" in exc.message else f" (allowed: {bounds_text(spec)})"
            raise argparse.ArgumentTypeError(f"{exc.message}{allowed}") from None

    return duration


def _size(text: str) -> int:
    try:
        return coerce_value(text, {"type": "size"})
    except OptionValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} ({exc.hint})") from None


def _add_setting(parser: Any, *flags: str, setting: settings.Setting, **options: Any) -> None:
    """An option of `parser` (or of one of its groups) that sets `setting`: its default and
    help (which shows the default) come from the setting's one declaration."""
    options.setdefault("help", setting.help_text)
    parser.add_argument(*flags, default=setting.default, **options)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _shard(text: str):
    from checkrunner.shards import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run_parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description="Run declarative checks on hosts, agentless, and report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_target_arguments(parser)
    _add_run_arguments(parser)
    _add_state_arguments(parser)
    return parser


def _watch_parser(prog: str) -> argparse.ArgumentParser:
    """`checkrun watch`: the options of a run that keep their meaning in a long-running
    process (the same definitions), and the loop's own."""
    parser = _Parser(
        prog=prog,
        description="Run the playbook's checks as they fall due, until SIGTERM or SIGINT; "
        "SIGHUP re-reads the playbook, inventory and alerting.",
    )
    _add_target_arguments(parser)
    _add_setting(
        parser,
        "--interval",
        setting=settings.INTERVAL,
        type=_duration(INTERVAL_SPEC),
        metavar="DURATION",
    )
    _add_setting(parser, "--listen", setting=settings.LISTEN, metavar="ADDR:PORT")
    parser.add_argument(
        "--web-config",
        metavar="FILE",
        help="Prometheus web configuration file: basic auth (bcrypt hashes) and TLS",
    )
    _add_setting(parser, "--log-format", setting=settings.LOG_FORMAT, choices=LOG_FORMATS)
    _add_setting(
        parser,
        "--backoff-max",
        setting=settings.BACKOFF_MAX,
        type=_duration(INTERVAL_SPEC),
        metavar="DURATION",
    )
    _add_setting(
        parser,
        "--stop-grace",
        setting=settings.STOP_GRACE,
        type=_duration(DELAY_SPEC),
        metavar="DURATION",
    )
    parser.add_argument(
        "--ha",
        action="store_true",
        help="one of several replicas of this playbook sharing --state: it works while it "
        "holds the lease in the state database, else stands by and takes over when the "
        "leader dies (/-/ready tells which leads)",
    )
    _add_setting(
        parser,
        "--ha-ttl",
        setting=settings.HA_TTL,
        type=_duration(INTERVAL_SPEC),
        metavar="DURATION",
    )
    _add_state_arguments(parser)
    return parser


def _add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """What to check and how to reach it: the same for a run and for watch."""
    parser.add_argument("playbook", help="playbook YAML file")
    parser.add_argument(
        "-i",
        "--inventory",
        action="append",
        default=[],
        metavar="SOURCE",
        help="inventory file, directory or 'h1,h2,' list; repeatable (default: implicit localhost)",
    )
    parser.add_argument("-l", "--limit", metavar="PATTERN", help="further limit hosts by pattern")
    parser.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="run shard K of N: a stable share of the hosts (after --limit), chosen by a hash "
        "of the host name; join the shards' JSON reports with `checkrun merge`",
    )
    parser.add_argument(
        "-t",
        "--tags",
        action="append",
        default=[],
        metavar="TAGS",
        help="only checks with these tags (comma-separated; repeatable)",
    )
    parser.add_argument(
        "--skip-tags",
        action="append",
        default=[],
        metavar="TAGS",
        help="skip checks with these tags (comma-separated; repeatable)",
    )
    parser.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="VARS",
        help="k=v pairs, a JSON/YAML object, or @file.yml; repeatable; win over all",
    )
    _add_setting(parser, "-f", "--forks", setting=settings.FORKS, type=_positive_int)
    _add_setting(
        parser,
        "--host-timeout",
        setting=settings.HOST_TIMEOUT,
        type=_duration(TIMEOUT_SPEC),
        metavar="DURATION",
    )
    _add_ssh_arguments(parser)
    parser.add_argument(
        "-b", "--become", action="store_true", help="run the checks as root through `sudo -n`"
    )
    parser.add_argument(
        "--become-password-env",
        metavar="VAR",
        help="environment variable holding the sudo password, for hosts without "
        "ansible_become_password (never printed)",
    )


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """A one-shot run's own: --wait, reports, the exit code, listings."""
    _add_setting(
        parser,
        "--wait",
        setting=settings.WAIT,
        type=_duration(DELAY_SPEC),
        metavar="DURATION",
        help=settings.WAIT.help,
    )
    _add_setting(
        parser,
        "--wait-interval",
        setting=settings.WAIT_INTERVAL,
        type=_duration(TIMEOUT_SPEC),
        metavar="DURATION",
    )
    parser.add_argument(
        "-r",
        "--report",
        action="append",
        default=[],
        metavar="FORMAT[:PATH]",
        help=format_help(),
    )
    _add_setting(parser, "--fail-on", setting=settings.FAIL_ON, choices=FAIL_ON_LEVELS)
    parser.add_argument(
        "--list-hosts", action="store_true", help="print the matched hosts and exit"
    )
    parser.add_argument("--list-checks", action="store_true", help="print the checks and exit")
    parser.add_argument(
        "--syntax-check",
        action="store_true",
        help="validate the playbook and exit (same as `checkrun validate`)",
    )


_STATE_HELP = "the state database (a file, or a postgresql:// URL)"


def _add_state_arguments(parser: argparse.ArgumentParser) -> None:
    """State, alerting, the targets' limits, verbosity: the same for a run and for watch."""
    parser.add_argument(
        "--push",
        metavar="URL",
        help="push the metrics to this Prometheus Pushgateway (grouping key job, instance: "
        "this runner's host name, playbook): a run's, or in watch mode every host's latest "
        "after each round; a push the gateway did not take waits in the state database",
    )
    _add_setting(parser, "--push-job", setting=settings.PUSH_JOB, metavar="NAME")
    state = parser.add_mutually_exclusive_group()
    _add_setting(state, "--state", setting=settings.STATE, metavar="PATH|URL")
    state.add_argument(
        "--no-state",
        action="store_true",
        help="keep nothing between runs: log checks start at `start`, cgroup checks have no earlier OOM-kill count",
    )
    remediation = parser.add_mutually_exclusive_group()
    remediation.add_argument(
        "--remediate",
        nargs="?",
        const="on",
        choices=("on", "dry-run"),
        help="run the handlers that firing alerts notify (the default, except with --wait); "
        "--remediate=dry-run prints what would run and runs nothing",
    )
    remediation.add_argument(
        "--no-remediate", action="store_true", help="run no handler, whatever fires"
    )
    parser.add_argument(
        "--no-notify",
        action="store_true",
        help="dry run of the alerting: say what would be sent, send and remember nothing",
    )
    _add_setting(parser, "--target-nice", setting=settings.TARGET_NICE, type=int, metavar="N")
    _add_setting(
        parser,
        "--target-memory-limit",
        setting=settings.TARGET_MEMORY_LIMIT,
        type=_size,
        metavar="SIZE",
    )
    parser.add_argument(
        "--no-psutil",
        dest="use_psutil",
        action="store_false",
        help="read procfs directly even where psutil is installed on a target",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more detail; -vvv shows tracebacks"
    )
    parser.add_argument("--version", action="version", version=f"checkrun {__version__}")


def _add_ssh_arguments(parser: argparse.ArgumentParser) -> None:
    from checkrunner.transport.base import CHECKING_MODES

    parser.add_argument(
        "-u",
        "--user",
        metavar="USER",
        help="SSH login user where the inventory sets no ansible_user",
    )
    parser.add_argument(
        "--private-key",
        "--key-file",
        dest="private_key",
        metavar="FILE",
        help="private key to offer (after ansible_ssh_private_key_file)",
    )
    parser.add_argument(
        "--known-hosts",
        action="append",
        default=[],
        metavar="FILE",
        help="known_hosts file to use instead of ~/.ssh/known_hosts; repeatable",
    )
    parser.add_argument(
        "--host-key-checking",
        choices=CHECKING_MODES,
        help="strict (default), accept-new (record new hosts' keys in "
        "~/.local/state/checkrunner/known_hosts) or off",
    )
    parser.add_argument(
        "--ssh-config",
        metavar="FILE",
        help="ssh config file (default: ~/.ssh/config if present; 'none' for none)",
    )
    parser.add_argument(
        "-T",
        "--timeout",
        type=_duration(TIMEOUT_SPEC),
        metavar="DURATION",
        help=settings.CONNECT_TIMEOUT.help_text,
    )


def _split_tags(values: list[str]) -> list[str]:
    return [tag.strip() for value in values for tag in value.split(",") if tag.strip()]


def _common_fields(ns: argparse.Namespace) -> dict[str, Any]:
    """The fields of RunCommand that the arguments shared by a run and watch set."""
    return dict(
        playbook=ns.playbook,
        inventories=ns.inventory,
        extra_vars=ns.extra_vars,
        limit=ns.limit,
        shard=ns.shard,
        tags=_split_tags(ns.tags),
        skip_tags=_split_tags(ns.skip_tags),
        become=ns.become,
        become_password_env=ns.become_password_env,
        user=ns.user,
        private_key=ns.private_key,
        known_hosts=ns.known_hosts,
        host_key_checking=ns.host_key_checking,
        ssh_config=ns.ssh_config,
        connect_timeout=ns.timeout,
        forks=ns.forks,
        host_timeout=ns.host_timeout,
        verbose=ns.verbose,
        use_psutil=ns.use_psutil,
        target_nice=ns.target_nice,
        target_memory_limit=ns.target_memory_limit,
        state=ns.state,
        no_state=ns.no_state,
        no_notify=ns.no_notify,
        push=ns.push,
        push_job=ns.push_job,
        remediate=ns.remediate,
        no_remediate=ns.no_remediate,
    )


def _run_command(ns: argparse.Namespace) -> app.RunCommand:
    from checkrunner import app

    return app.RunCommand(
        **_common_fields(ns),
        wait=ns.wait,
        wait_interval=ns.wait_interval,
        reports=ns.report,
        fail_on=ns.fail_on,
        list_hosts=ns.list_hosts,
        list_checks=ns.list_checks,
        syntax_check=ns.syntax_check,
    )


def _watch_command(ns: argparse.Namespace) -> app.WatchCommand:
    from checkrunner import app

    return app.WatchCommand(
        **_common_fields(ns),
        interval=ns.interval,
        listen=ns.listen,
        web_config=ns.web_config,
        log_format=ns.log_format,
        backoff_max=ns.backoff_max,
        stop_grace=ns.stop_grace,
        ha=ns.ha,
        ha_ttl=ns.ha_ttl,
    )


def _dispatch(argv: list[str]) -> int:
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "run"
    rest = argv[1:] if argv and argv[0] in SUBCOMMANDS else argv
    if command == "history":
        from checkrunner.history_command import history

        return history(_history_query(_history_parser().parse_args(rest)))
    if command == "actions":
        from checkrunner.actions_command import actions

        return actions(_actions_query(_actions_parser().parse_args(rest)))
    if command == "merge":
        from checkrunner.merge_command import MergeCommand, merge

        ns = _merge_parser().parse_args(rest)
        return merge(MergeCommand(inputs=ns.inputs, reports=ns.report, verbose=ns.verbose))
    from checkrunner import app

    if command == "completion":
        return _completion(_completion_parser().parse_args(rest).shell)
    if command == "__complete":
        return _complete(rest)
    if command == "init":
        from checkrunner.init_command import init

        return init(_init_request(_init_parser().parse_args(rest)))
    if command == "schema":
        _schema_parser().parse_args(rest)
        return app.schema()
    if command == "doc":
        return app.doc(_doc_parser().parse_args(rest).name)
    if command == "notify":
        ns = _notify_parser().parse_args(rest)
        cmd = app.RunCommand(playbook=ns.playbook, state=ns.state)
        return app.notify(cmd, flush=ns.flush, test_receiver=ns.test)
    if command == "alerts":
        ns = _alerts_parser().parse_args(rest)
        return app.alerts(app.RunCommand(playbook="", state=ns.state))
    if command == "watch":
        return app.watch(_watch_command(_watch_parser("checkrun watch").parse_args(rest)))
    if command == "validate":
        return _validate_each(_validate_parser().parse_args(rest))
    return app.run(_run_command(_run_parser("checkrun").parse_args(rest)))


def _validate_parser() -> argparse.ArgumentParser:
    """A run's options, with any number of playbooks (pre-commit passes the changed ones)."""
    parser = _run_parser("checkrun validate")
    for action in parser._actions:
        if action.dest == "playbook":
            action.nargs = "+"
            action.help = "playbook YAML files; each is checked (against the -i inventories)"
    return parser


def _validate_each(ns: argparse.Namespace) -> int:
    """Each playbook validated on its own: every one's errors are shown, the worst exit wins."""
    from checkrunner import app

    cmd = _run_command(ns)
    worst = 0
    for playbook in ns.playbook:
        try:
            code = app.validate(dataclasses.replace(cmd, playbook=playbook))
        except CheckrunError as exc:
            if ns.verbose >= 3:
                traceback.print_exc()
            print(f"checkrun: error: {error_text(exc)}", file=sys.stderr)
            code = exc.exit_code
        worst = max(worst, code)
    return worst


def _schema_parser() -> argparse.ArgumentParser:
    return _Parser(prog="checkrun schema", description="Print the playbook JSON Schema.")


def _doc_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="checkrun doc", description="Document the check modules and the receivers."
    )
    parser.add_argument("name", nargs="?", help="module or receiver; none lists them all")
    return parser


def _notify_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="checkrun notify",
        description="Deliver what the outbox holds (--flush), or send a test message.",
    )
    parser.add_argument("playbook", help="the playbook whose receivers to use")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--flush", action="store_true", help="deliver the outbox now")
    action.add_argument("--test", metavar="RECEIVER", help="send a test message")
    parser.add_argument("--state", metavar="PATH|URL", help=_STATE_HELP)
    return parser


def _alerts_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="checkrun alerts",
        description="List firing alerts, failing checks and undelivered notifications.",
    )
    parser.add_argument("--state", metavar="PATH|URL", help=_STATE_HELP)
    return parser


def _completion_parser() -> argparse.ArgumentParser:
    from checkrunner.completion import SHELLS

    parser = _Parser(
        prog="checkrun completion",
        description="Print the shell completion script. Install it with one line: bash: "
        "checkrun completion bash > ~/.local/share/bash-completion/completions/checkrun; "
        'zsh: checkrun completion zsh > "${fpath[1]}/_checkrun"; fish: checkrun '
        "completion fish > ~/.config/fish/completions/checkrun.fish",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to print the script for")
    return parser


def _init_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="checkrun init",
        description="Look at a live host (the implicit localhost, or one host of the "
        "inventory, over the same one-exec batch the checks use) and write a starter "
        "playbook: filesystems, memory, load, listening services, long-running processes, "
        "active logs, each threshold with the reason it was chosen.",
    )
    parser.add_argument(
        "-i",
        "--inventory",
        action="append",
        default=[],
        metavar="SOURCE",
        help="inventory file, directory or 'h1,h2,' list; repeatable (default: implicit localhost)",
    )
    parser.add_argument(
        "-l", "--limit", metavar="PATTERN", help="the host to look at (exactly one must match)"
    )
    parser.add_argument(
        "-o",
        "--output",
        default="playbook.yml",
        metavar="FILE",
        help="where to write the playbook (default: playbook.yml; refused if it exists)",
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite the output file if it exists"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the playbook instead of writing it"
    )
    parser.add_argument(
        "--min-age",
        type=_duration(DELAY_SPEC),
        default=60.0,
        metavar="DURATION",
        help="only processes (and their listening ports) running at least this long: "
        "long-lived services, not a passing job (default: 1m)",
    )
    _add_ssh_arguments(parser)
    parser.add_argument(
        "-b", "--become", action="store_true", help="look as root through `sudo -n`"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more detail; -vvv shows tracebacks"
    )
    return parser


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by name, the way _dispatch parses it: what completion reads."""
    return {
        "run": _run_parser("checkrun"),
        "validate": _validate_parser(),
        "schema": _schema_parser(),
        "doc": _doc_parser(),
        "notify": _notify_parser(),
        "alerts": _alerts_parser(),
        "watch": _watch_parser("checkrun watch"),
        "history": _history_parser(),
        "actions": _actions_parser(),
        "merge": _merge_parser(),
        "init": _init_parser(),
        "completion": _completion_parser(),
    }


def _completion(shell: str) -> int:
    from checkrunner.completion import SCRIPTS

    sys.stdout.write(SCRIPTS[shell])
    return 0


def _complete(rest: list[str]) -> int:
    """`checkrun __complete [--breaks CHARS] (--line LINE | -- WORD...)`: the candidates,
    one a line, for the completion scripts."""
    from checkrunner.completion import complete, default_sources, trimmed, words_of_line

    parser = _Parser(prog="checkrun __complete", add_help=False)
    parser.add_argument("--breaks", default="")
    parser.add_argument("--line")
    parser.add_argument("words", nargs="*")
    ns = parser.parse_args(rest)
    words = words_of_line(ns.line) if ns.line is not None else ns.words
    found = complete(command_parsers(), words, default_sources(), hidden=HIDDEN_SUBCOMMANDS)
    for value in trimmed(found, (words or [""])[-1], ns.breaks):
        print(value)
    return 0


def _init_request(ns: argparse.Namespace):
    from checkrunner.app import RunCommand
    from checkrunner.init_command import InitRequest

    connection = RunCommand(
        playbook="",
        inventories=ns.inventory,
        limit=ns.limit,
        become=ns.become,
        user=ns.user,
        private_key=ns.private_key,
        known_hosts=ns.known_hosts,
        host_key_checking=ns.host_key_checking,
        ssh_config=ns.ssh_config,
        connect_timeout=ns.timeout,
        verbose=ns.verbose,
    )
    return InitRequest(
        connection=connection,
        output=ns.output,
        dry_run=ns.dry_run,
        force=ns.force,
        min_age=ns.min_age,
    )


def _history_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="checkrun history",
        description="Show the recorded values and statuses of one check on one host.",
    )
    parser.add_argument("playbook", nargs="?", help="only the series of this playbook's plays")
    parser.add_argument("--host", required=True, help="the host (inventory name)")
    parser.add_argument("--check", required=True, help="the check's name")
    parser.add_argument("--metric", help="one of the check's measurements (default: all)")
    parser.add_argument(
        "--since",
        type=_duration({"type": "duration", "min": "1s"}),
        default=86400.0,
        metavar="DURATION",
        help="how far back (default: 24h)",
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of the table")
    parser.add_argument("--state", metavar="PATH|URL", help=_STATE_HELP)
    return parser


def _merge_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="checkrun merge",
        description="Join the JSON reports of the shards of one run (--shard K/N) into the "
        "report the unsharded run would have written, with its exit code. A shard whose "
        "report is missing or unreadable makes its hosts UNKNOWN.",
    )
    parser.add_argument("inputs", nargs="+", metavar="RUN.json", help="each shard's JSON report")
    parser.add_argument(
        "-r",
        "--report",
        action="append",
        default=[],
        metavar="FORMAT[:PATH]",
        help=format_help(),
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail")
    return parser


def _actions_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="checkrun actions",
        description="List the remediation audit: every handler action, its trigger, exit "
        "status, output tail and verify result.",
    )
    parser.add_argument("--host", help="only this host's actions (inventory name)")
    parser.add_argument(
        "--since",
        type=_duration({"type": "duration", "min": "1s"}),
        default=7 * 86400.0,
        metavar="DURATION",
        help="how far back (default: 7d)",
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of the table")
    parser.add_argument("--state", metavar="PATH|URL", help=_STATE_HELP)
    return parser


def _actions_query(ns: argparse.Namespace) -> ActionsQuery:
    from checkrunner.actions_command import ActionsQuery

    return ActionsQuery(host=ns.host, since=ns.since, as_json=ns.json, state=ns.state)


def _history_query(ns: argparse.Namespace) -> HistoryQuery:
    from checkrunner.history_command import HistoryQuery

    return HistoryQuery(
        host=ns.host,
        check=ns.check,
        metric=ns.metric,
        since=ns.since,
        as_json=ns.json,
        playbook=ns.playbook,
        state=ns.state,
    )


def _verbosity(argv: list[str]) -> int:
    count = 0
    for arg in argv:
        if arg == "--verbose":
            count += 1
        elif arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) == {"v"}:
            count += len(arg) - 1
    return count


def error_text(exc: CheckrunError) -> str:
    """The error as printed. Its file, message and hint may quote playbook keys, host names
    or values: each is kept on one line and every control character shown escaped, so that
    neither an escape sequence nor a newline from an input reaches the terminal raw."""
    if not isinstance(exc, ConfigError):
        return printable(str(exc))
    return "\n".join(str(_one_line_fields(error)) for error in flatten_problems([exc]))


def _one_line_fields(error: ConfigError) -> ConfigError:
    shown = copy.copy(error)
    shown.message = one_line(error.message)
    shown.hint = one_line(error.hint) if error.hint else error.hint
    if error.location is not None:
        shown.location = dataclasses.replace(error.location, file=one_line(error.location.file))
    return shown


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        _run_parser("checkrun").print_help()
        return EXIT_BAD_INPUT
    try:
        return _dispatch(argv)
    except CheckrunError as exc:
        if _verbosity(argv) >= 3:
            traceback.print_exc()
        print(f"checkrun: error: {error_text(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("checkrun: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        return 0
