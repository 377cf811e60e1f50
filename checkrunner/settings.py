"""Every setting of a run, declared once: its default, its environment variable, its help.

In the manner of Ansible's config/base.yml: the command line (cli) takes its defaults and
help texts from here, app's RunCommand and the layers that apply a setting (runner,
transport, state) take their defaults from here, and nothing else spells a default out.
Standard library only: cli imports this at every start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Setting(Generic[T]):
    default: T
    help: str  # what the setting does, without its default
    shown: str | None = None  # the default as a user writes it, when not str(default)
    env: str | None = None  # the environment variable that sets it, if any

    @property
    def help_text(self) -> str:
        """The help with its default, as `checkrun --help` shows it."""
        return f"{self.help} (default: {self.shown if self.shown is not None else self.default})"

    def from_environment(self) -> str | None:
        """The value of the setting's environment variable; None when it is unset or empty."""
        return (os.environ.get(self.env) or None) if self.env else None


HOST_DEADLINE_SLACK = (
    10.0  # seconds: interpreter start, module import and transfer on a slow target
)

FORKS = Setting(50, "hosts checked at once")
PYTHON_INTERPRETER = Setting(
    "python3", "the interpreter batches run with where ansible_python_interpreter is not set"
)
HOST_TIMEOUT = Setting(
    None,
    "deadline for one host's batch",
    shown=f"longest check timeout + sample window + {HOST_DEADLINE_SLACK:g}s",
)
WAIT = Setting(0.0, "re-run failing checks until they pass or DURATION is up (deploy gating)")
WAIT_INTERVAL = Setting(2.0, "pause between --wait rounds", shown="2s")
INTERVAL = Setting(
    60.0, "watch: how often a check runs when neither it nor its play sets interval:", shown="60s"
)
BACKOFF_MAX = Setting(
    300.0,
    "watch: the longest pause before an unreachable host is tried again (the backoff doubles "
    "from its interval up to this)",
    shown="5m",
)
STOP_GRACE = Setting(
    10.0,
    "watch: on SIGTERM, how long the checks in flight may take to finish before they are "
    "abandoned (their results are then not recorded, their log lines read again next time)",
    shown="10s",
)
HA_TTL = Setting(
    5.0,
    "watch --ha: how long the lease lasts without renewal (renewed every third of it): a "
    "standby takes over at most this plus a third of it after the leader dies",
    shown="5s",
)
LISTEN = Setting(
    "127.0.0.1:9650", "watch: address and port of /metrics, /healthz and /api/v1/results"
)
LOG_FORMAT = Setting("text", "watch: the events log on stderr, one line per event")
FAIL_ON = Setting("critical", "lowest level that makes the exit code non-zero")
CONNECT_TIMEOUT = Setting(10.0, "SSH connect timeout", shown="10s; ansible_timeout wins")
TARGET_NICE = Setting(10, "CPU niceness of the checks on the targets")
TARGET_MEMORY_LIMIT = Setting(
    512 * 1024**2,
    "memory cap (RLIMIT_DATA) of the checks on the targets, inherited by the commands they run",
    shown="512MiB; 0 for none",
)
PUSH_JOB = Setting("checkrun", "the job label of --push")
INVENTORY_SCRIPT_TIMEOUT = Setting(
    60.0,
    "seconds an executable inventory script may take to answer `--list` (and each `--host`)",
    shown="60",
    env="CHECKRUN_INVENTORY_SCRIPT_TIMEOUT",
)
STATE = Setting(
    None,
    "state database: log offsets and history (a file, or a postgresql:// URL shared by runners)",
    shown="$CHECKRUN_STATE, else ~/.local/state/checkrunner/state.db",
    env="CHECKRUN_STATE",
)
STATE_HOME = Setting(
    "~/.local/state",
    "where checkrunner keeps what it remembers (checkrunner/ under it)",
    env="XDG_STATE_HOME",
)


def state_directory() -> str:
    """$XDG_STATE_HOME/checkrunner, else ~/.local/state/checkrunner: the state database and
    the host keys accepted with --host-key-checking accept-new live here."""
    home = STATE_HOME.from_environment() or os.path.expanduser(STATE_HOME.default)
    return os.path.join(home, "checkrunner")


def state_path() -> str:
    """The state database: $CHECKRUN_STATE, else state.db in state_directory()."""
    return STATE.from_environment() or os.path.join(state_directory(), "state.db")


HISTORY_RAW = Setting(
    8 * 86400.0,
    "history: how long every measurement is kept as measured, before only its hourly "
    "min/avg/max/count is",
    shown="8d",
    env="CHECKRUN_HISTORY_RAW",
)
HISTORY_HOURLY = Setting(
    90 * 86400.0,
    "history: how long the hourly min/avg/max/count of a measurement is kept",
    shown="90d",
    env="CHECKRUN_HISTORY_HOURLY",
)
HISTORY_MAINTENANCE_EVERY = 3600.0  # seconds: downsampling and pruning at most this often
