# Run a command on the target and check its exit code, its output, or the number it prints.
#
# Runs on the target: standard library only, Python 3.6 syntax. Playbook values never pass
# through a shell unless the check says `shell: true`.
import math
import os
import re
import subprocess
import time

from ._utils import patterns, subprocess_budget, timing

MODULE = {
    "summary": "Run a command: exit code, stdout/stderr patterns, or the number it prints",
    "description": [
        "Runs `cmd` on the target without a shell: a string is split like a shell would "
        "(shlex) but never interpreted, so `;`, `|`, `$(...)` and globs are plain "
        "arguments. Say `shell: true` to run it with /bin/sh -c, for pipes and redirections.",
        "The check fails (CRITICAL) when the exit code is not in `exit_codes`, a `stdout` or "
        "`stderr` pattern does not match, or a `stdout_not`/`stderr_not` pattern matches. A "
        "command that is not found, or that runs past the timeout, makes the check UNKNOWN; "
        "on timeout the command's whole process group is killed.",
        "When stdout is a single number it becomes the measurement `value`, the default "
        "metric: `command: {cmd: 'wc -l < /var/spool/app/queue', shell: true}` with "
        "`warn: 100` and `crit: 1000` alerts on a long queue. If thresholds are set and "
        "the output is not a number, use `metric:` to pick exit_code, duration or "
        "stdout_lines instead.",
        "The command's stdin is empty unless `stdin` is given. At most `max_output` bytes "
        "of each stream are kept; the first 4 KB of stdout and the last 4 KB of stderr are "
        "returned as facts.",
    ],
    "free_form": "cmd",
    "options": {
        "cmd": {
            "type": "argv",
            "required": True,
            "description": "The command: a string (split with shell quoting rules, or given "
            "to /bin/sh -c with shell: true) or a list of arguments.",
        },
        "shell": {
            "type": "bool",
            "default": False,
            "description": "Run cmd (a string) with /bin/sh -c.",
        },
        "chdir": {"type": "str", "description": "Working directory."},
        "env": {
            "type": "dict",
            "elements": "str",
            "default": {},
            "description": "Environment variables to add to (or override in) the "
            "inherited environment.",
        },
        "stdin": {"type": "str", "description": "Text written to the command's stdin."},
        "exit_codes": {
            "type": "list",
            "elements": "int",
            "default": [0],
            "description": "Exit codes that count as success.",
        },
        "stdout": {
            "type": "list",
            "format": "regex",
            "elements": "str",
            "default": [],
            "description": "Regular expressions that must all be found in stdout "
            "(re.search, multiline: ^ and $ match at line boundaries).",
        },
        "stdout_not": {
            "type": "list",
            "format": "regex",
            "elements": "str",
            "default": [],
            "description": "Regular expressions that must not be found in stdout.",
        },
        "stderr": {
            "type": "list",
            "format": "regex",
            "elements": "str",
            "default": [],
            "description": "Regular expressions that must all be found in stderr.",
        },
        "stderr_not": {
            "type": "list",
            "format": "regex",
            "elements": "str",
            "default": [],
            "description": "Regular expressions that must not be found in stderr.",
        },
        "max_output": {
            "type": "size",
            "default": "1MB",
            "description": "Keep at most this much of each of stdout and stderr "
            "(the rest is read and dropped).",
        },
        "timeout": {
            "type": "duration",
            "min": "1ms",
            "max": "1d",
            "description": "Kill the command after this long (UNKNOWN). It never exceeds "
            "the check's own timeout.",
        },
    },
    "measurements": {
        "value": {
            "unit": "",
            "description": "The number stdout consists of, when it is one number.",
        },
        "exit_code": {"unit": "", "description": "The command's exit code."},
        "duration": {"unit": "s", "description": "How long the command ran."},
        "stdout_lines": {"unit": "", "description": "Lines written to stdout."},
        "stdout_bytes": {"unit": "B", "description": "Bytes written to stdout."},
    },
    "default_metric": "value",
    "facts": {
        "stdout": "The command's standard output, its first 4096 bytes.",
        "stderr": "Its standard error, the last 4096 bytes.",
        "stdout_truncated": "True when stdout was longer than the module kept (max_output).",
        "stderr_truncated": "True when stderr was longer than the module kept (max_output).",
        "argv": "The argument vector run (without shell).",
        "shell_command": "The command line given to /bin/sh -c (with shell: true).",
    },
}

EXAMPLES = """
- name: mail queue length
  command: {cmd: "postqueue -j | wc -l", shell: true}
  warn: 100
  crit: 1000

- name: nginx configuration is valid
  command: nginx -t
  become: true

- name: database answers
  command:
    cmd: [psql, -tAc, "select 1", app]
    env: {PGCONNECT_TIMEOUT: "3"}
    stdout: ["^1$"]
    timeout: 5s

- name: no failed systemd units
  command: {cmd: "systemctl --failed --plain --no-legend", stdout_not: ["\\\\S"]}

- name: backup script reports success
  command:
    cmd: /usr/local/bin/check-backup --json
    exit_codes: [0, 1]
    stdout: ['"state": "(ok|running)"']
    stderr_not: ["(?i)error"]
"""

SHELL = "/bin/sh"
FACT_BYTES = 4096
# re.ASCII: \\d would otherwise also read Arabic-Indic or full-width digits as a number.
NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$", re.ASCII)
INTEGER = re.compile(r"^[-+]?\d{1,18}$", re.ASCII)  # longer ones become floats


class Finished(object):
    def __init__(self, exit_code, stdout, stderr, timed_out, duration):
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.timed_out = timed_out
        self.duration = duration


# ------------------------------------------------------------------------------- process


def _argv(args):
    cmd = args["cmd"]
    if args["shell"]:
        if not isinstance(cmd, str):
            raise ValueError("cmd: with shell: true give the command as one string")
        return [SHELL, "-c", cmd]
    return subprocess_budget.split_command(cmd, "cmd")


def _spawn(argv, args):
    chdir = args.get("chdir")
    if chdir and not os.path.isdir(chdir):
        raise RuntimeError("chdir: no such directory: %s" % chdir)
    try:
        return subprocess.Popen(
            argv,
            cwd=chdir or None,
            env=subprocess_budget.environment(args.get("env")),
            stdin=subprocess.PIPE if args.get("stdin") else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,  # its own process group, so a timeout kills it all
        )
    except FileNotFoundError:
        raise RuntimeError("command not found: %s" % argv[0]) from None
    except PermissionError:
        raise RuntimeError("cannot execute %s: permission denied" % argv[0]) from None


def execute(argv, args, deadline):
    """Run argv to completion or until deadline; the process group is killed on timeout."""
    started = time.monotonic()
    proc = _spawn(argv, args)
    stdin_data = str(args.get("stdin") or "").encode("utf-8")
    stdout, stderr, timed_out = subprocess_budget.communicate(
        proc, stdin_data, deadline, args["max_output"]
    )
    return Finished(proc.returncode, stdout, stderr, timed_out, time.monotonic() - started)


# ----------------------------------------------------------------------------- evaluation


def parse_number(text):
    """The number a command printed, when its whole output is one number; else None."""
    text = text.strip()
    if not NUMBER.match(text):
        return None
    if INTEGER.match(text):
        return int(text)
    value = float(text)
    return value if math.isfinite(value) else None


def _last_line(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _exit_failure(finished, expected, stderr_text, shell):
    if finished.exit_code in expected:
        return []
    if finished.exit_code < 0:
        what = "killed by signal %d" % -finished.exit_code
    else:
        what = "exit code %d" % finished.exit_code
    message = "%s, expected %s" % (what, "/".join(str(code) for code in expected))
    if shell and finished.exit_code == 127:
        message += " (command not found?)"
    hint = _last_line(stderr_text)
    if hint:
        message += " (stderr: %r)" % hint
    return [message]


def _timeout_error(finished, budget):
    message = "timed out after %s; killed the command's process group" % timing.seconds(budget)
    partial = _last_line(finished.stderr.text()) or _last_line(finished.stdout.text())
    if partial:
        message += " (last output: %r)" % partial
    return RuntimeError(message)


def _facts(argv, args, finished, stdout_text, stderr_text):
    facts = {
        "stdout": stdout_text[:FACT_BYTES],
        "stderr": stderr_text[-FACT_BYTES:],
        "stdout_truncated": finished.stdout.truncated,
        "stderr_truncated": finished.stderr.truncated,
    }
    if args["shell"]:
        facts["shell_command"] = argv[-1]
    else:
        facts["argv"] = argv
    return facts


def _summary(finished, value, stdout_text, failures):
    text = "exit %d in %s" % (finished.exit_code, timing.milliseconds(finished.duration))
    if failures:
        return text + ": " + "; ".join(failures)
    if value is not None:
        return text + ": %s" % value
    first = next((line for line in stdout_text.splitlines() if line.strip()), "")
    return text + (": " + first.strip()[:120] if first else "")


def run(args, ctx):
    argv = _argv(args)
    stdout_rules = (
        patterns.compile_option(args, "stdout"),
        patterns.compile_option(args, "stdout_not"),
    )
    stderr_rules = (
        patterns.compile_option(args, "stderr"),
        patterns.compile_option(args, "stderr_not"),
    )
    expected = [int(code) for code in patterns.as_list(args["exit_codes"])]
    budget = timing.budget(args, ctx)
    finished = execute(argv, args, time.monotonic() + budget)
    if finished.timed_out:
        raise _timeout_error(finished, budget)
    stdout_text = finished.stdout.text()
    stderr_text = finished.stderr.text()
    failures = _exit_failure(finished, expected, stderr_text, args["shell"])
    failures += patterns.failures("stdout", stdout_text, *stdout_rules)
    failures += patterns.failures("stderr", stderr_text, *stderr_rules)
    measurements = {
        "exit_code": finished.exit_code,
        "duration": finished.duration,
        "stdout_lines": finished.stdout.lines,
        "stdout_bytes": finished.stdout.total,
    }
    value = None if finished.stdout.truncated else parse_number(stdout_text)
    if value is not None:
        measurements["value"] = value
    return {
        "measurements": measurements,
        "facts": _facts(argv, args, finished, stdout_text, stderr_text),
        "failures": failures,
        "message": _summary(finished, value, stdout_text, failures),
    }
