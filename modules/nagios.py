# Run any Nagios-compatible plugin on the target: its exit code is the status, its output
# the message and its performance data the measurements.
#
# Runs on the target: standard library only, Python 3.6 syntax. Playbook values never pass
# through a shell unless the check says `shell: true`.
import math
import os
import re
import shlex
import subprocess
import time

from ._utils import subprocess_budget, timing

MODULE = {
    "summary": "Run a Nagios/Monitoring Plugins check: exit code -> status, perfdata -> measurements",
    "description": [
        "Runs a plugin that follows the Nagios plugin API (check_disk, check_http, "
        "check_mysql_health, your own scripts...) without a shell, and takes its exit code "
        "as the status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; anything else, or death "
        "by a signal, is UNKNOWN. The first line of output (before '|') is the message and "
        "the lines after it are the long output.",
        "The performance data (after '|' on the first line, and after the first '|' in "
        "the long output, as Nagios 3 and later read it) become the measurements, named "
        "by their labels: `'/var'=8123MB;9000;9500;0;10000` is the measurement `/var` = "
        "8123 with unit MB. The plugin's own warn, crit, min and max are in the facts "
        "(facts.perfdata). Values given as 'U' are left out of the measurements.",
        "The plugin decides the status, so there is no default metric; warn/crit on a "
        "named metric (`metric: /var`) still apply, and the worse status wins. Besides the "
        "perfdata labels there are always exit_code and execution_time (a perfdata label "
        "of the same name takes their place).",
        "A bare plugin name is looked up in PATH and then in `plugin_dirs`, where "
        "distributions install the Monitoring Plugins. A plugin that is not found, or that "
        "runs past the timeout, makes the check UNKNOWN; on timeout its whole process group "
        "is killed.",
    ],
    "free_form": "plugin",
    "options": {
        "plugin": {
            "type": "argv",
            "required": True,
            "description": "The plugin and its arguments: a string (split with shell "
            "quoting rules, or given to /bin/sh -c with shell: true) or a list.",
        },
        "args": {
            "type": "list",
            "elements": "str",
            "default": [],
            "description": "More arguments, appended after those in `plugin` (quoted for "
            "the shell with shell: true).",
        },
        "shell": {
            "type": "bool",
            "default": False,
            "description": "Run the plugin string with /bin/sh -c.",
        },
        "env": {
            "type": "dict",
            "elements": "str",
            "default": {},
            "description": "Environment variables to add to the inherited environment.",
        },
        "plugin_dirs": {
            "type": "list",
            "elements": "str",
            "default": [
                "/usr/lib/nagios/plugins",
                "/usr/lib64/nagios/plugins",
                "/usr/lib/monitoring-plugins",
                "/usr/local/nagios/libexec",
                "/usr/local/libexec/nagios",
                "/opt/monitoring-plugins/libexec",
            ],
            "description": "Directories searched, after PATH, for a plugin given by name.",
        },
        "timeout": {
            "type": "duration",
            "min": "1ms",
            "max": "1d",
            "description": "Kill the plugin after this long (UNKNOWN). It never exceeds "
            "the check's own timeout.",
        },
    },
    "measurements": {
        "exit_code": {"unit": "", "description": "The plugin's exit code."},
        "execution_time": {"unit": "s", "description": "How long the plugin ran."},
        "*": {
            "unit": "",
            "description": "Every perfdata label, by its name (for example `/var` or "
            "`load1`), in the unit the plugin gave it.",
        },
    },
    "default_metric": None,
    "facts": {
        "exit_code": "The plugin's exit code.",
        "perfdata": "Per label: value, unit and the plugin's own warn, crit, min and max.",
        "long_output": "The plugin's lines after the first, up to 4096 bytes.",
        "stderr": "The plugin's standard error when not empty, the last 4096 bytes.",
    },
}

EXAMPLES = """
- name: root filesystem (check_disk)
  nagios: check_disk -w 10% -c 5% -p /

- name: load average
  nagios: {plugin: check_load, args: [-r, -w, "4,3,2", -c, "8,6,4"]}

- name: replication lag, with our own threshold on its perfdata
  nagios:
    plugin: /usr/lib/nagios/plugins/check_mysql_health
    args: [--mode, slave-lag, --warning, "30", --critical, "120"]
    env: {MYSQL_HOME: /etc/mysql}
    timeout: 20s
  metric: slave_lag
  crit: 60

- name: legacy script that needs a pipe
  nagios: {plugin: "/opt/legacy/check_queue.sh | tail -n 20", shell: true}
"""

SHELL = "/bin/sh"
STATES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
MAX_OUTPUT = 1000000
FACT_BYTES = 4096

# value[UOM]: a number (a decimal comma is tolerated, some plugins follow the locale) and
# letters or % after it.
# re.ASCII: \\d would otherwise also read Arabic-Indic or full-width digits as numbers.
PERF_VALUE = re.compile(
    r"^([-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?)([a-zA-Z%]*)$", re.ASCII
)
# What Nagios strips around the short output and the perfdata (its strip()): not the
# other characters Python counts as whitespace (\f, \v, \x1c-\x1f, U+0085, U+2028...).
PLUGIN_SPACE = " \t\r\n"


# ---------------------------------------------------------------------------- plugin output


def split_plugin_output(text):
    """(message, long output, perfdata text) of a plugin's stdout, per the Nagios 3 API.

    TEXT OUTPUT | PERFDATA
    LONG TEXT LINE 1
    LONG TEXT LINE N | PERFDATA LINE 2
    PERFDATA LINE 3
    """
    lines = plugin_lines(text)
    message, _, perfdata = lines[0].partition("|")
    perf_parts = [perfdata]
    long_lines = []
    in_perfdata = False
    for line in lines[1:]:
        if in_perfdata:
            perf_parts.append(line)
        elif "|" in line:
            text_part, _, perf_part = line.partition("|")
            if text_part.strip(PLUGIN_SPACE):
                long_lines.append(text_part.rstrip(PLUGIN_SPACE))
            perf_parts.append(perf_part)
            in_perfdata = True
        else:
            long_lines.append(line.rstrip(PLUGIN_SPACE))
    perf_text = " ".join(
        part.strip(PLUGIN_SPACE) for part in perf_parts if part.strip(PLUGIN_SPACE)
    )
    return message.strip(PLUGIN_SPACE), "\n".join(long_lines).strip("\n"), perf_text


def plugin_lines(text):
    """The lines of plugin output as Nagios reads them: split at \\n only, so \\f, \\v,
    \\x1c-\\x1e, U+0085, U+2028 and U+2029 stay inside their line (str.splitlines() would
    cut there and lose the perfdata after them). CRLF is a line end too: Nagios strips the
    \\r, Icinga 2 splits at it; a lone \\r inside a line is kept, as Nagios keeps it."""
    lines = text.split("\n")
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _token_end(text, pos):
    while pos < len(text) and not text[pos].isspace():
        pos += 1
    return pos


def _quoted_label(text, start):
    """(label, position after '=') of a 'quoted label'= at start, or (None, where to resume).

    Inside the quotes '' stands for one quote. A malformed label drops only the token it
    starts: what follows may still be good pairs."""
    chars = []
    pos = start + 1
    while pos < len(text):
        if text[pos] != "'":
            chars.append(text[pos])
            pos += 1
        elif text[pos + 1 : pos + 2] == "'":
            chars.append("'")
            pos += 2
        elif text[pos + 1 : pos + 2] == "=" and chars:
            return "".join(chars), pos + 2
        else:
            break
    return None, _token_end(text, start)


def _read_label(text, pos):
    if text[pos] == "'":
        return _quoted_label(text, pos)
    end = _token_end(text, pos)
    equals = text.find("=", pos, end)
    # Unquoted labels may not contain quotes (the plugin API asks for quoting then).
    if equals <= pos or "'" in text[pos:equals]:
        return None, end
    return text[pos:equals], equals + 1


def _perf_number(text):
    match = PERF_VALUE.match(text.strip())
    if not match:
        return None
    return _finite(match.group(1))


def _finite(number_text):
    """The number, or None (as for U) when it overflows a float: 1e999 is no measurement."""
    value = float(number_text.replace(",", "."))
    return value if math.isfinite(value) else None


def _perf_item(label, token):
    fields = token.split(";")
    if fields[0] == "U":
        value, uom = None, ""
    else:
        match = PERF_VALUE.match(fields[0])
        if not match:
            return None
        value, uom = _finite(match.group(1)), match.group(2)
    fields += [""] * (5 - len(fields))
    return {
        "label": label,
        "value": value,
        "uom": uom,
        "warn": fields[1] or None,
        "crit": fields[2] or None,
        "min": _perf_number(fields[3]),
        "max": _perf_number(fields[4]),
    }


def parse_perfdata(text):
    """Performance data as a list of {label, value, uom, warn, crit, min, max}.

    Pairs are 'label'=value[UOM];[warn];[crit];[min];[max] separated by spaces; value may be
    U (undetermined, value None); trailing fields may be left out. A malformed pair is
    skipped and the rest is still read."""
    items = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return items
        label, pos = _read_label(text, pos)
        if label is None:
            continue
        end = _token_end(text, pos)
        item = _perf_item(label, text[pos:end])
        pos = end
        if item is not None:
            items.append(item)


# -------------------------------------------------------------------------------- process


def _argv(args):
    plugin = args["plugin"]
    extra = [str(arg) for arg in (args.get("args") or [])]
    if args["shell"]:
        if not isinstance(plugin, str):
            raise ValueError("plugin: with shell: true give the command as one string")
        return [SHELL, "-c", " ".join([plugin] + [shlex.quote(arg) for arg in extra])]
    return subprocess_budget.split_command(plugin, "plugin") + extra


def _environment(args):
    env = subprocess_budget.environment(args.get("env"))
    # subprocess looks the program up in the PATH of the environment it is given.
    path = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p]
    path += [str(d) for d in (args.get("plugin_dirs") or []) if str(d) not in path]
    env["PATH"] = os.pathsep.join(path)
    return env


def _spawn(argv, env, plugin_dirs):
    try:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,  # its own process group, so a timeout kills it all
        )
    except FileNotFoundError:
        where = "PATH" + "".join(", " + d for d in plugin_dirs)
        raise RuntimeError("plugin not found: %s (looked in %s)" % (argv[0], where)) from None
    except PermissionError:
        raise RuntimeError("cannot execute %s: permission denied" % argv[0]) from None


def execute(argv, env, plugin_dirs, deadline):
    """(exit code, stdout Output, stderr Output, timed_out); the group is killed on timeout."""
    proc = _spawn(argv, env, plugin_dirs)
    stdout, stderr, timed_out = subprocess_budget.communicate(proc, b"", deadline, MAX_OUTPUT)
    return proc.returncode, stdout, stderr, timed_out


# ---------------------------------------------------------------------------------- result


def _last_line(text):
    lines = [line.strip() for line in plugin_lines(text) if line.strip()]
    return lines[-1][:200] if lines else ""


def _message(exit_code, first_line, stderr_text):
    message = first_line
    if not message:
        hint = _last_line(stderr_text)
        message = "(no output on stdout)" + (" stderr: %s" % hint if hint else "")
    if exit_code < 0:
        return "plugin killed by signal %d: %s" % (-exit_code, message)
    if exit_code not in STATES:
        return "plugin exited with code %d: %s" % (exit_code, message)
    return message


def _measurements(items):
    measurements, units, perfdata = {}, {}, {}
    for item in items:
        label = item["label"]
        if label in perfdata:
            continue  # Nagios keeps the first of duplicated labels too
        perfdata[label] = dict((k, v) for k, v in item.items() if k != "label")
        if item["value"] is not None:
            measurements[label] = item["value"]
            units[label] = item["uom"]
    return measurements, units, perfdata


def run(args, ctx):
    argv = _argv(args)
    env = _environment(args)
    budget = timing.budget(args, ctx)
    plugin_dirs = [str(d) for d in (args.get("plugin_dirs") or [])]
    started = time.monotonic()
    exit_code, stdout, stderr, timed_out = execute(argv, env, plugin_dirs, started + budget)
    execution_time = time.monotonic() - started
    stderr_text = stderr.text()
    if timed_out:
        raise RuntimeError(
            "plugin timed out after %s; killed its process group%s"
            % (
                timing.seconds(budget),
                (" (stderr: %r)" % _last_line(stderr_text)) if stderr_text.strip() else "",
            )
        )
    first_line, long_output, perf_text = split_plugin_output(stdout.text())
    perf_values, units, perfdata = _measurements(parse_perfdata(perf_text))
    measurements = {"exit_code": exit_code, "execution_time": execution_time}
    measurements.update(perf_values)
    facts = {"exit_code": exit_code, "perfdata": perfdata}
    if long_output:
        facts["long_output"] = long_output[:FACT_BYTES]
    if stderr_text.strip():
        facts["stderr"] = stderr_text[-FACT_BYTES:]
    return {
        "status": STATES.get(exit_code, "UNKNOWN"),
        "measurements": measurements,
        "units": units,
        "facts": facts,
        "failures": [],
        "message": _message(exit_code, first_line, stderr_text),
    }
