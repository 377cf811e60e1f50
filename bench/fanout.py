#!/usr/bin/env python3
"""SSH fan-out benchmark: checkrun vs ansible-playbook vs a paramiko floor on loopback hosts.

The same 8 checks run on N loopback sshd hosts with checkrun, ansible-playbook and a paramiko
floor; prints wall time, control-node CPU, target CPU and the ratios.

Hosts are addresses 127.0.X.1-16 (X = 10, 11, ...): one sshd per 16 addresses, all on this
machine, with a fresh host key per sshd and one client key. The checks: cpu over 0.2 s,
memory, disk /, load, an HTTP health endpoint and a TCP port served by this script on
127.0.0.1, the number of sshd processes, and `grep -c ' ERROR '` on an 18 MB log file.

1. checkrun (forks 32), strict host key checking against a known_hosts file written here.
2. ansible-playbook with an equivalent playbook (forks 32, gather_facts false, pipelining,
   ControlPersist; host key checking off for Ansible only). ansible-core lives in the bench's
   own virtualenv bench/.venv-ansible (created when missing).
3. the floor: paramiko connect + authenticate + one exec of `true` per host, in this process,
   with a pool of 32 threads.

checkrun is installed from this repository into bench/.venv-checkrun (as a user gets it)
unless --checkrun PATH names a binary. Control-node CPU is user + system time: for the
subprocess legs the RUSAGE_CHILDREN delta (Ansible's ControlPersist masters included: this
process is made their subreaper and reaps them), for the in-process floor the RUSAGE_SELF
delta. Run by hand: python3 bench/fanout.py [--hosts 16,64] [--runs 3]
"""

from __future__ import annotations

import argparse
import ctypes
import http.server
import json
import math
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ANSIBLE_VENV = REPO / "bench" / ".venv-ansible"
CHECKRUN_VENV = REPO / "bench" / ".venv-checkrun"

SSHD = "/usr/sbin/sshd"
SSH = shutil.which("ssh") or "/usr/bin/ssh"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
GREP = shutil.which("grep") or "/usr/bin/grep"
# The same interpreter for both tools on the targets: a shell rc file that puts a slow shim
# (pyenv) first on PATH would otherwise be measured instead of the tools.
TARGET_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else "python3"

ADDRESSES_PER_SSHD = 16  # OpenSSH's MAX_LISTEN_SOCKS
FIRST_SUBNET = 10  # hosts are 127.0.10.1-16, 127.0.11.1-16, ...
FORKS = 32
CPU_SAMPLE = 0.2
LOG_BYTES = 18 * 1024 * 1024
ERROR_EVERY = 997  # one ' ERROR ' line in this many

# Every subprocess is bounded.
QUICK_TIMEOUT = 30.0  # ssh-keygen, --help, grep, ssh -O
INSTALL_TIMEOUT = 900.0  # venv + pip
RUN_TIMEOUT = 900.0  # one checkrun or ansible-playbook run
SSHD_START_TIMEOUT = 10.0
SSHD_STOP_TIMEOUT = 5.0
CONNECT_TIMEOUT = 30.0  # the floor's connect, handshake, auth and exec


class LegFailed(Exception):
    """A leg could not produce honest numbers; the message says why."""


SSHD_PIDS: set[int] = set()  # the listening sshd processes this script runs


def reap_exited_children() -> int:
    """Reap exited children of this process (orphans it adopted as subreaper: Ansible's ssh
    helpers, sshd sessions), never the sshd listeners that subprocess.Popen waits for."""
    me = str(os.getpid())
    reaped = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in SSHD_PIDS:
            continue
        try:
            fields = proc_stat(entry)
        except (OSError, IndexError):
            continue
        if fields[0] == "Z" and fields[1] == me:
            with suppress(ChildProcessError):
                reaped += bool(os.waitpid(int(entry), os.WNOHANG)[0])
    return reaped


# --- targets: sshd processes on loopback addresses ---------------------------------------


@dataclass
class Target:
    name: str
    address: str
    port: int
    host_key_pub: Path


@dataclass
class SSHDGroup:
    """One sshd listening on up to 16 addresses, and the files it uses."""

    directory: Path
    addresses: list[str]
    host_key: Path
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.directory / "sshd.log"

    def stop(self) -> None:
        """Stop the sshd this script started, by its pid, and reap it."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.poll() is not None:
                return
            with suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=SSHD_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=SSHD_STOP_TIMEOUT)
        finally:
            SSHD_PIDS.discard(process.pid)


def generate_key(path: Path, comment: str) -> Path:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=QUICK_TIMEOUT,
    )
    return path


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def sshd_config(group: SSHDGroup, authorized_keys: Path, permit_env: bool) -> str:
    listen = "\n".join(f"ListenAddress {a}" for a in group.addresses)
    user_env = "HOME" if permit_env else "no"
    return f"""\
Port {group.port}
{listen}
HostKey {group.host_key}
PidFile {group.directory / "sshd.pid"}
AuthorizedKeysFile {authorized_keys}
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 1024:100:2048
MaxSessions 64
LoginGraceTime 60
UseDNS no
PrintMotd no
PrintLastLog no
PermitUserEnvironment {user_env}
LogLevel ERROR
Subsystem sftp internal-sftp
"""


def start_sshd(group: SSHDGroup, authorized_keys: Path, permit_env: bool) -> None:
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    for attempt in range(3):
        group.port = free_port(group.addresses[0])
        config = group.directory / "sshd_config"
        config.write_text(sshd_config(group, authorized_keys, permit_env))
        group.process = subprocess.Popen(
            [SSHD, "-D", "-f", str(config), "-E", str(group.log)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        SSHD_PIDS.add(group.process.pid)
        try:
            wait_listening(group)
            return
        except RuntimeError:
            group.stop()
            log = group.log.read_text(errors="replace") if group.log.exists() else ""
            if "Address already in use" not in log or attempt == 2:
                raise


def wait_listening(group: SSHDGroup) -> None:
    deadline = time.monotonic() + SSHD_START_TIMEOUT
    pending = list(group.addresses)
    while pending:
        if group.process is None or group.process.poll() is not None:
            log = group.log.read_text(errors="replace") if group.log.exists() else ""
            raise RuntimeError(f"sshd exited while starting:\n{log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd not listening on {pending} after {SSHD_START_TIMEOUT}s")
        pending = [a for a in pending if not answers_ssh(a, group.port)]
        if pending:
            time.sleep(0.02)


def answers_ssh(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5) as sock:
            sock.settimeout(2.0)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@contextmanager
def running_targets(
    directory: Path, count: int, client_key: Path, home: Path | None = None
) -> Iterator[Fleet]:
    """ceil(count/16) sshd processes, 16 addresses each; stopped (by pid) on the way out.

    With `home`, sessions get HOME=home (authorized_keys environment=): the login shell then
    reads no ~/.bashrc, as on a plain server, instead of this machine's (pyenv init costs
    ~100 ms of CPU per exec, which Ansible would pay once per task and host)."""
    authorized_keys = directory / "authorized_keys"
    options = f'environment="HOME={home}" ' if home is not None else ""
    authorized_keys.write_text(options + Path(f"{client_key}.pub").read_text())
    authorized_keys.chmod(0o600)
    groups: list[SSHDGroup] = []
    targets: list[Target] = []
    try:
        for index in range(math.ceil(count / ADDRESSES_PER_SSHD)):
            subnet = FIRST_SUBNET + index
            size = min(ADDRESSES_PER_SSHD, count - index * ADDRESSES_PER_SSHD)
            group_dir = directory / f"sshd-{subnet}"
            group_dir.mkdir()
            group = SSHDGroup(
                directory=group_dir,
                addresses=[f"127.0.{subnet}.{i}" for i in range(1, size + 1)],
                host_key=generate_key(group_dir / "ssh_host_ed25519_key", f"bench-{subnet}"),
            )
            groups.append(group)
            start_sshd(group, authorized_keys, permit_env=home is not None)
            for i, address in enumerate(group.addresses, 1):
                targets.append(
                    Target(f"h{subnet}-{i:02d}", address, group.port, Path(f"{group.host_key}.pub"))
                )
        yield Fleet(targets, groups)
    finally:
        for group in groups:
            with suppress(subprocess.TimeoutExpired):  # an unkillable sshd must not stop the rest
                group.stop()
        reap_exited_children()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int | str) -> list[str]:
    """Fields of /proc/PID/stat after the command name: [0] is field 3 (state)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


@dataclass
class Fleet:
    targets: list[Target]
    groups: list[SSHDGroup]

    def target_cpu(self) -> float:
        """CPU seconds of the sshd listeners and every session they have reaped: sshd, the
        login shell and whatever it ran (python3, grep, ...), on all targets together."""
        total = 0
        for group in self.groups:
            if group.process is not None:
                fields = proc_stat(group.process.pid)
                total += sum(int(fields[i]) for i in (11, 12, 13, 14))  # u/s time, cu/cs time
        return total / CLOCK_TICKS

    def wait_sessions_done(self, timeout: float = 10.0) -> bool:
        """Wait until no sshd listener has a session child left (their CPU is then counted)."""
        listeners = {str(g.process.pid) for g in self.groups if g.process is not None}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = False
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        if proc_stat(entry)[1] in listeners:
                            busy = True
                            break
                    except (OSError, IndexError):
                        continue
            if not busy:
                return True
            time.sleep(0.02)
        return False


def known_hosts_text(targets: list[Target]) -> str:
    lines = []
    for target in targets:
        keytype, blob = target.host_key_pub.read_text().split()[:2]
        lines.append(f"[{target.address}]:{target.port} {keytype} {blob}")
    return "\n".join(lines) + "\n"


# --- services the checks probe: HTTP health endpoint, TCP port, log file -----------------


class HealthHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = b"ok\n" if self.path == "/health" else b"not found\n"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class HealthServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def tcp_acceptor(listener: socket.socket, stop: threading.Event) -> None:
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        conn.close()


@contextmanager
def running_services() -> Iterator[tuple[int, int]]:
    """(http_port, tcp_port) on 127.0.0.1, served from threads of this process."""
    http_server = HealthServer(("127.0.0.1", 0), HealthHandler)
    http_thread = threading.Thread(target=http_server.serve_forever, daemon=True)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    stop = threading.Event()
    tcp_thread = threading.Thread(target=tcp_acceptor, args=(listener, stop), daemon=True)
    http_thread.start()
    tcp_thread.start()
    try:
        yield http_server.server_address[1], listener.getsockname()[1]
    finally:
        stop.set()
        http_server.shutdown()
        http_server.server_close()
        tcp_thread.join(timeout=2)
        listener.close()


def write_log(path: Path, size: int = LOG_BYTES) -> int:
    """An application log of `size` bytes; returns how many lines contain ' ERROR '."""
    errors = 0
    written = 0
    with path.open("w") as out:
        chunk: list[str] = []
        n = 0
        while written < size:
            if n % ERROR_EVERY == 0:
                line = (
                    f"2024-05-01T12:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z ERROR "
                    f"app.db request_id={n:08x} upstream timed out after 30000ms\n"
                )
                errors += 1
            else:
                line = (
                    f"2024-05-01T12:{n // 60 % 60:02d}:{n % 60:02d}.{n % 1000:03d}Z INFO  "
                    f"app.http request_id={n:08x} GET /api/v1/items/{n % 5000} 200 {n % 97}ms\n"
                )
            chunk.append(line)
            written += len(line)
            n += 1
            if len(chunk) >= 10000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    return errors


def grep_seconds(log: Path, expected: int, runs: int = 5) -> float:
    """Median wall time of the grep the checks run, here, with the file in the page cache."""
    argv = [GREP, "-c", " ERROR ", str(log)]
    env = {**os.environ, "LC_ALL": "C"}  # sshd sessions get no locale (UsePAM no)
    times = []
    for _ in range(runs + 1):  # the first run warms the page cache
        started = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=QUICK_TIMEOUT)
        times.append(time.perf_counter() - started)
        if proc.stdout.strip() != str(expected):
            raise SystemExit(f"grep counted {proc.stdout.strip()!r}, expected {expected}")
    return statistics.median(times[1:])


# --- the playbooks -----------------------------------------------------------------------


@dataclass
class Scenario:
    directory: Path
    targets: list[Target]
    client_key: Path
    http_port: int
    tcp_port: int
    log: Path
    log_errors: int
    forks: int = FORKS
    known_hosts: Path = field(init=False)
    inventory: Path = field(init=False)

    def __post_init__(self) -> None:
        self.known_hosts = self.directory / "known_hosts"
        self.known_hosts.write_text(known_hosts_text(self.targets))
        self.inventory = self.directory / "inventory.yml"
        self.inventory.write_text(inventory_text(self.targets, self.client_key))


def inventory_text(targets: list[Target], client_key: Path) -> str:
    """One YAML inventory, read by both tools."""
    lines = ["all:", "  hosts:"]
    for t in targets:
        lines += [
            f"    {t.name}:",
            "      ansible_connection: ssh",
            f"      ansible_host: {t.address}",
            f"      ansible_port: {t.port}",
            "      ansible_user: root",
            f"      ansible_ssh_private_key_file: {client_key}",
            f"      ansible_python_interpreter: {TARGET_PYTHON}",
        ]
    return "\n".join(lines) + "\n"


def checkrun_playbook(s: Scenario) -> str:
    # Thresholds are loose on purpose: every check must come back OK on a busy 2-core machine,
    # so a non-OK result means something broke, not that the machine was loaded.
    # process: sample 0s, or its default 1 s cpu window would become the batch's shared window.
    return f"""\
- name: fanout bench
  hosts: all
  checks:
    - name: cpu busy
      cpu: {{sample: 200ms}}
      warn: 101  # not 100: busy is a float ratio that can come out as 100.00000000000001
    - name: memory
      memory: {{}}
      crit: 99
    - name: root filesystem
      disk: {{path: /}}
      crit: 99.5
    - name: load per core
      load: {{}}
      crit: 1000
    - name: health endpoint
      http: {{url: "http://127.0.0.1:{s.http_port}/health", status: [200], body: ok, timeout: 10s}}
    - name: tcp port
      tcp: {{host: 127.0.0.1, port: {s.tcp_port}, timeout: 10s}}
    - name: sshd processes
      process: {{name: sshd, sample: 0s}}
      crit: "1:"
    - name: errors in app log
      command: {{cmd: "grep -c ' ERROR ' {s.log}", exit_codes: [0, 1]}}
"""


def ansible_playbook(s: Scenario) -> str:
    return f"""\
- name: fanout bench
  hosts: all
  gather_facts: false
  tasks:
    - name: cpu busy
      ansible.builtin.shell: "head -n1 /proc/stat; sleep {CPU_SAMPLE}; head -n1 /proc/stat"
      changed_when: false
    - name: memory
      ansible.builtin.command: grep -E '^(MemTotal|MemAvailable):' /proc/meminfo
      register: mem
      changed_when: false
      failed_when: >-
        mem.rc != 0 or
        (mem.stdout_lines[1].split()[1] | int) < (mem.stdout_lines[0].split()[1] | int) * 0.01
    - name: root filesystem
      ansible.builtin.command: df -P /
      register: df
      changed_when: false
      failed_when: df.rc != 0 or (df.stdout_lines[1].split()[4] | replace('%', '') | int) > 99
    - name: load
      ansible.builtin.command: cat /proc/loadavg
      register: load
      changed_when: false
      failed_when: load.rc != 0 or (load.stdout.split()[0] | float) > 1000
    - name: health endpoint
      ansible.builtin.uri:
        url: "http://127.0.0.1:{s.http_port}/health"
        status_code: [200]
        return_content: true
        timeout: 10
      register: health
      failed_when: health.status != 200 or 'ok' not in health.content
    - name: tcp port
      ansible.builtin.wait_for: {{host: 127.0.0.1, port: {s.tcp_port}, timeout: 10}}
    - name: sshd processes
      ansible.builtin.command: pgrep -c -x sshd
      register: sshd
      changed_when: false
      failed_when: sshd.rc != 0 or (sshd.stdout | int) < 1
    - name: errors in app log
      ansible.builtin.command: grep -c ' ERROR ' {s.log}
      register: errors
      changed_when: false
      failed_when: errors.rc not in [0, 1]
"""


CHECKS = 8


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Sample:
    wall: float
    cpu: float  # control node
    target_cpu: float = 0.0  # all sshd sessions together
    peak_rss_mb: float = 0.0  # the tool's process (checkrun leg): VmHWM
    peak_fds: int = 0  # its open file descriptors at most (sampled every 20 ms)


class ProcessPeaks:
    """Samples a running process's peak RSS (VmHWM) and open file descriptors from /proc."""

    def __init__(self, pid: int):
        self.pid = pid
        self.rss_kb = 0
        self.fds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            with suppress(OSError, ValueError):
                self.fds = max(self.fds, len(os.listdir(f"/proc/{self.pid}/fd")))
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.rss_kb = max(self.rss_kb, int(line.split()[1]))
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_bounded(
    argv: list[str], env: dict[str, str], timeout: float, peaks: list[ProcessPeaks] | None = None
) -> subprocess.CompletedProcess:
    """`peaks`: gets the process's ProcessPeaks, sampled until it exits."""
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    ) as proc:
        sampler = ProcessPeaks(proc.pid) if peaks is not None else None
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            raise LegFailed(f"{argv[0]} did not finish within {timeout:g}s") from exc
        finally:
            if sampler is not None:
                sampler.stop()
                peaks.append(sampler)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def become_subreaper() -> bool:
    """Orphaned descendants (Ansible's backgrounded ControlPersist masters) become our
    children, so their CPU lands in RUSAGE_CHILDREN once reaped."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


# checkrun ------------------------------------------------------------------------------


def install_checkrun() -> Path:
    """checkrunner as a user gets it: `pip install .` into its own venv (bytecode compiled)."""
    pip = CHECKRUN_VENV / "bin" / "pip"
    if not (CHECKRUN_VENV / "bin" / "python").exists():
        subprocess.run(
            [sys.executable, "-m", "venv", str(CHECKRUN_VENV)], check=True, timeout=INSTALL_TIMEOUT
        )
    subprocess.run(
        [str(pip), "install", "-q", "--force-reinstall", "--no-deps", str(REPO)],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    subprocess.run([str(pip), "install", "-q", str(REPO)], check=True, timeout=INSTALL_TIMEOUT)
    return CHECKRUN_VENV / "bin" / "checkrun"


def checkrun_argv(
    checkrun: Path, s: Scenario, report: Path, extra: list[str] | None = None
) -> list[str]:
    """The command line, or LegFailed when this checkrun cannot reach ssh hosts yet."""
    proc = run_bounded([str(checkrun), "--help"], dict(os.environ), QUICK_TIMEOUT)
    help_text = proc.stdout + proc.stderr
    missing = [o for o in ("--host-key-checking", "--known-hosts") if o not in help_text]
    if missing:
        raise LegFailed(
            f"{checkrun} has no {' / '.join(missing)} option: the ssh transport is not wired "
            "into the command line yet (checkrunner/transport/pool.py Transports.for_host must "
            "return the SSH transport for connection ssh). No checkrun figures were measured."
        )
    playbook = s.directory / "checkrun.yml"
    playbook.write_text(checkrun_playbook(s))
    return [
        str(checkrun),
        str(playbook),
        "-i",
        str(s.inventory),
        "-f",
        str(s.forks),
        "--host-key-checking",
        "strict",
        "--known-hosts",
        str(s.known_hosts),
        "-r",
        "terminal",
        "-r",
        f"json:{report}",
        *(extra or []),
    ]


def run_checkrun(argv: list[str], report: Path, s: Scenario) -> Sample:
    report.unlink(missing_ok=True)
    env = dict(os.environ)
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    peaks: list[ProcessPeaks] = []
    proc = run_bounded(argv, env, RUN_TIMEOUT, peaks)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - before
    output = tail(proc.stdout + "\n" + proc.stderr)
    if proc.returncode == 5 or not report.exists():
        raise LegFailed(f"checkrun did not run (exit {proc.returncode}):\n{output}")
    data = json.loads(report.read_text())
    problems = []
    hosts = {h["host"]: h for h in data["hosts"]}
    for t in s.targets:
        host = hosts.get(t.name)
        if host is None:
            problems.append(f"{t.name}: missing from the report")
        elif not host["reachable"]:
            problems.append(f"{t.name}: UNREACHABLE ({host['reason']}) {host['message']}")
        elif len(host["checks"]) != CHECKS:
            problems.append(f"{t.name}: {len(host['checks'])} checks, expected {CHECKS}")
        else:
            problems += [
                f"{t.name} / {c['name']}: {c['status']} {c['message']}"
                for c in host["checks"]
                if c["status"] != "OK"
            ]
            counted = [c for c in host["checks"] if c["module"] == "command"]
            if counted and counted[0].get("value") != s.log_errors:
                problems.append(
                    f"{t.name}: grep counted {counted[0].get('value')}, expected {s.log_errors}"
                )
    if problems or proc.returncode != 0:
        shown = "\n".join(problems[:15]) or output
        raise LegFailed(f"checkrun exit {proc.returncode}, {len(problems)} problems:\n{shown}")
    return Sample(wall, cpu, peak_rss_mb=peaks[0].rss_kb / 1024, peak_fds=peaks[0].fds)


def run_checkrun_startup(argv: list[str]) -> Sample:
    """`checkrun --list-hosts` with the same playbook and inventory: start-up, loading and
    host selection, no SSH; the fixed cost the in-process floor does not pay."""
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = run_bounded(
        [*argv[:4], "--list-hosts"], dict(os.environ), QUICK_TIMEOUT
    )  # checkrun PB -i INV
    wall = time.perf_counter() - started
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - before
    if proc.returncode != 0:
        raise LegFailed(f"checkrun --list-hosts exit {proc.returncode}:\n{tail(proc.stderr)}")
    return Sample(wall, cpu)


# ansible --------------------------------------------------------------------------------


def ensure_ansible() -> Path:
    binary = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not binary.exists():
        subprocess.run(
            [sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True, timeout=INSTALL_TIMEOUT
        )
        subprocess.run(
            [str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", "ansible-core"],
            check=True,
            timeout=INSTALL_TIMEOUT,
        )
    return binary


def ansible_config(s: Scenario, control_dir: Path) -> Path:
    config = s.directory / "ansible.cfg"
    # UserKnownHostsFile: with checking off, ssh would otherwise record the bench's throwaway
    # host keys in ~/.ssh/known_hosts.
    config.write_text(f"""\
[defaults]
forks = {s.forks}
host_key_checking = False
gathering = explicit
retry_files_enabled = False
deprecation_warnings = False
interpreter_python = {TARGET_PYTHON}
local_tmp = {s.directory / "ansible-local"}
timeout = 30

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={s.directory / "ansible_known_hosts"}
control_path_dir = {control_dir}
""")
    return config


RECAP = re.compile(
    r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE
)
MASTER_PID = re.compile(r"pid=(\d+)")


def close_control_masters(control_dir: Path) -> int:
    """Stop the ControlPersist masters of this run (by their sockets) and reap them, so the
    next run connects afresh and their CPU is counted. Returns how many were reaped."""
    pids = []
    for socket_path in sorted(control_dir.iterdir()) if control_dir.exists() else []:
        check = subprocess.run(
            [SSH, "-o", f"ControlPath={socket_path}", "-O", "check", "bench-master"],
            capture_output=True,
            text=True,
            timeout=QUICK_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        match = MASTER_PID.search(check.stderr + check.stdout)
        subprocess.run(
            [SSH, "-o", f"ControlPath={socket_path}", "-O", "exit", "bench-master"],
            capture_output=True,
            timeout=QUICK_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        if match:
            pids.append(int(match.group(1)))
    reaped = 0
    deadline = time.monotonic() + SSHD_STOP_TIMEOUT
    for pid in pids:
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break  # not our child (no subreaper): its CPU is not counted
            if done:
                reaped += 1
                break
            if time.monotonic() > deadline:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                reaped += 1
                break
            time.sleep(0.01)
    return reaped


def run_ansible(ansible: Path, s: Scenario, control_dir: Path, config: Path) -> Sample:
    playbook = s.directory / "ansible.yml"
    playbook.write_text(ansible_playbook(s))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
    }
    argv = [str(ansible), "-i", str(s.inventory), "-f", str(s.forks), str(playbook)]
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        proc = run_bounded(argv, env, RUN_TIMEOUT)
        wall = time.perf_counter() - started
    finally:
        close_control_masters(control_dir)
        reap_exited_children()
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - before
    recap = {m.group(1): m.groups()[1:] for m in RECAP.finditer(proc.stdout)}
    problems = []
    for t in s.targets:
        counts = recap.get(t.name)
        if counts is None:
            problems.append(f"{t.name}: missing from the recap")
        elif counts[0] != str(CHECKS) or counts[2] != "0" or counts[3] != "0":
            problems.append(f"{t.name}: ok={counts[0]} unreachable={counts[2]} failed={counts[3]}")
    if problems or proc.returncode != 0:
        detail = "\n".join(problems[:10])
        raise LegFailed(
            f"ansible-playbook exit {proc.returncode}:\n{detail}\n{tail(proc.stdout + proc.stderr)}"
        )
    return Sample(wall, cpu)


# the floor ------------------------------------------------------------------------------


def run_floor(
    s: Scenario, batches: dict[tuple[str, int], tuple[str, bytes]] | None = None
) -> Sample:
    """paramiko connect + authenticate + one exec per host, with a pool of `forks` threads.

    Without `batches` the exec is `true` (the bare floor). With them it is the very command
    and stdin checkrun sends that host (its batch program), read to the end: the floor plus
    the checks' own work on the targets, without checkrun's control-node work.
    """
    try:
        import paramiko
    except ImportError as exc:
        raise LegFailed(
            "the floor needs paramiko in the Python running this script: "
            f"run it with {CHECKRUN_VENV / 'bin' / 'python'}"
        ) from exc
    expected = {}
    for t in s.targets:
        keytype, blob = t.host_key_pub.read_text().split()[:2]
        expected[(t.address, t.port)] = (keytype, blob)

    def one(target: Target, key: paramiko.PKey) -> int:
        try:
            return connect_and_exec(target, key)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise LegFailed(f"{target.name}: {type(exc).__name__}: {exc}") from exc

    def connect_and_exec(target: Target, key: paramiko.PKey) -> int:
        sock = socket.create_connection((target.address, target.port), timeout=CONNECT_TIMEOUT)
        transport = paramiko.Transport(sock)
        try:
            transport.start_client(timeout=CONNECT_TIMEOUT)
            server_key = transport.get_remote_server_key()
            if (server_key.get_name(), server_key.get_base64()) != expected[
                (target.address, target.port)
            ]:
                raise LegFailed(f"{target.name}: host key does not match")
            transport.auth_publickey("root", key)
            channel = transport.open_session(timeout=CONNECT_TIMEOUT)
            if batches is None:
                channel.exec_command("true")
            else:
                command, payload = batches[(target.address, target.port)]
                channel.exec_command(command)
                channel.sendall(payload)
                channel.shutdown_write()
                output = bytearray()
                while chunk := channel.recv(65536):
                    output += chunk
                if b"__CHECKRUN_RESULT__" not in output:
                    raise LegFailed(f"{target.name}: the batch printed no result")
            if not channel.status_event.wait(CONNECT_TIMEOUT):
                raise LegFailed(f"{target.name}: the command did not finish")
            return channel.recv_exit_status()
        finally:
            transport.close()

    before = cpu_seconds(resource.RUSAGE_SELF)
    started = time.perf_counter()
    key = paramiko.Ed25519Key.from_private_key_file(str(s.client_key))
    with ThreadPoolExecutor(max_workers=s.forks) as pool:
        statuses = list(pool.map(lambda t: one(t, key), s.targets))
    wall = time.perf_counter() - started
    cpu = cpu_seconds(resource.RUSAGE_SELF) - before
    if any(statuses):
        raise LegFailed(f"the exec exited non-zero on {sum(1 for x in statuses if x)} hosts")
    return Sample(wall, cpu)


def checkrun_batches(s: Scenario, playbook: Path) -> dict[tuple[str, int], tuple[str, bytes]]:
    """What checkrun sends each host (command and stdin), from checkrunner's own plan."""
    try:
        from checkrunner.inventory import load_inventories
        from checkrunner.plan import PlanOptions, build_plan
        from checkrunner.playbook import load_playbook
        from checkrunner.transport import Batch, build_payload
        from checkrunner.transport.payload import BOOTSTRAP
    except ImportError as exc:
        raise LegFailed(f"the floor+batch leg needs checkrunner importable: {exc}") from exc
    plan = build_plan(
        load_playbook(str(playbook)), load_inventories([str(s.inventory)]), PlanOptions()
    )
    batches = {}
    for host_plan in plan.hosts:
        host = host_plan.host
        payload = build_payload(Batch(checks=[c.batch for c in host_plan.runnable]))
        command = shlex.join([host.python_interpreter, "-c", BOOTSTRAP])
        batches[(host.address, host.port)] = (command, payload)
    return batches


# --- driver ------------------------------------------------------------------------------


LEGS = ("checkrun", "ansible", "floor", "floor+batch")
STARTUP = "checkrun start-up"  # measured along with the checkrun leg, for information


@dataclass
class Leg:
    name: str
    fleet: Fleet
    run: Callable[[], Sample] | None = None
    samples: list[Sample] = field(default_factory=list)
    failure: str | None = None

    def measure(self, keep: bool) -> None:
        if self.failure is not None or self.run is None:
            return
        if not self.fleet.wait_sessions_done():
            print("warning: sshd sessions of an earlier run still open", file=sys.stderr)
        before = self.fleet.target_cpu()
        try:
            sample = self.run()
        except LegFailed as exc:
            self.failure = str(exc)
            print(f"\n!!! {self.name} FAILED: {exc}\n", file=sys.stderr, flush=True)
            return
        if not self.fleet.wait_sessions_done():
            print(f"warning: {self.name}: sshd sessions still open", file=sys.stderr)
        sample.target_cpu = self.fleet.target_cpu() - before
        if keep:
            self.samples.append(sample)
        print(
            f"    {self.name:17s} {'run' if keep else 'warm-up':7s} wall {sample.wall:7.2f} s"
            f"  cpu {sample.cpu:7.2f} s  target cpu {sample.target_cpu:7.2f} s",
            file=sys.stderr,
            flush=True,
        )

    def median(self, what: str) -> float | None:
        values = [getattr(s, what) for s in self.samples]
        return statistics.median(values) if values else None

    def wall(self) -> float | None:
        return self.median("wall")

    def cpu(self) -> float | None:
        return self.median("cpu")


@dataclass
class Environment:
    root: Path
    services: tuple[int, int]
    log: Path
    log_errors: int
    checkrun: Path
    ansible: Path


def load_text() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def bench_hosts(
    count: int, args: argparse.Namespace, env: Environment, warmup: int
) -> dict[str, Leg]:
    directory = env.root / f"n{count}"
    directory.mkdir()
    client_key = generate_key(directory / "client_key", "bench-client")
    home = None
    if not args.real_home:
        home = directory / "home"
        home.mkdir()
    with running_targets(directory, count, client_key, home) as fleet:
        targets = fleet.targets
        s = Scenario(
            directory, targets, client_key, *env.services, env.log, env.log_errors, args.forks
        )
        legs = {name: Leg(name, fleet) for name in LEGS if name in args.legs}
        if "checkrun" in legs:
            report = directory / "checkrun-report.json"
            try:
                argv = checkrun_argv(env.checkrun, s, report, shlex.split(args.checkrun_args))
                legs["checkrun"].run = lambda: run_checkrun(argv, report, s)
                legs[STARTUP] = Leg(STARTUP, fleet, lambda: run_checkrun_startup(argv))
            except LegFailed as exc:
                legs["checkrun"].failure = str(exc)
                print(f"\n!!! checkrun FAILED: {exc}\n", file=sys.stderr, flush=True)
        if "ansible" in legs:
            control_dir = directory / "cp"
            control_dir.mkdir()
            config = ansible_config(s, control_dir)
            legs["ansible"].run = lambda: run_ansible(env.ansible, s, control_dir, config)
        if "floor" in legs:
            legs["floor"].run = lambda: run_floor(s)
        if "floor+batch" in legs:
            playbook = directory / "checkrun.yml"
            playbook.write_text(checkrun_playbook(s))
            try:
                batches = checkrun_batches(s, playbook)
                legs["floor+batch"].run = lambda: run_floor(s, batches)
            except LegFailed as exc:
                legs["floor+batch"].failure = str(exc)
        print(
            f"{count} hosts on {math.ceil(count / ADDRESSES_PER_SSHD)} sshd "
            f"(ports {sorted({t.port for t in targets})}); load {load_text()}",
            file=sys.stderr,
            flush=True,
        )
        for _ in range(warmup):
            for leg in legs.values():
                leg.measure(keep=False)
        for _ in range(args.runs):
            for leg in legs.values():
                leg.measure(keep=True)
    return legs


def fmt(value: float | None, spec: str = "7.2f") -> str:
    return format(value, spec) if value is not None else "n/a".rjust(len(format(0.0, spec)))


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def print_table(
    results: dict[int, dict[str, Leg]],
    work: float,
    grep: float,
    runs: int,
    loads: list[str],
    forks: int = FORKS,
) -> None:
    def median(count: int, name: str, what: str) -> float | None:
        leg = results[count].get(name)
        return getattr(leg, what)() if leg is not None else None

    print()
    print(
        f"SSH fan-out: {CHECKS} checks per host, forks {forks}, median of {runs} run(s), "
        f"{os.cpu_count()} CPUs, load average before/after: {loads[0]} / {loads[1]}"
    )
    print(
        "cpu = user + system seconds on the control node (the tool and its children); "
        "target cpu = the same for all sshd sessions together (sshd, shell, python, grep)"
    )
    print(
        f"checks' own work = {CPU_SAMPLE:.1f} s cpu window + {grep * 1000:.0f} ms grep of the "
        f"{LOG_BYTES // (1024 * 1024)} MB log = {work:.3f} s"
    )
    print()
    print(
        f"{'hosts':>5}  {'':<17} {'wall s':>8} {'cpu s':>8} {'target cpu s':>13}"
        f" {'peak RSS MB':>12} {'peak fds':>9}"
    )
    for count, legs in results.items():
        for leg in legs.values():
            note = "  FAILED: " + leg.failure.splitlines()[0] if leg.failure else ""
            rss, fds = leg.median("peak_rss_mb"), leg.median("peak_fds")
            print(
                f"{count:>5}  {leg.name:<17} {fmt(leg.wall(), '8.2f')} {fmt(leg.cpu(), '8.2f')}"
                f" {fmt(leg.median('target_cpu'), '13.2f')}"
                f" {fmt(rss or None, '12.1f')} {fmt(fds or None, '9.0f')}{note}"
            )
        floor = median(count, "floor", "wall")
        if floor is not None:
            print(f"{count:>5}  {'floor + work':<17} {fmt(floor + work, '8.2f')}")
    print()
    print(
        f"{'hosts':>5}  {'ansible/checkrun':>16} {'(cpu)':>7}   {'checkrun/(floor+work)':>21}"
        f"   {'checkrun/(floor+batch)':>22}"
    )
    for count in results:
        speed = ratio(median(count, "ansible", "wall"), median(count, "checkrun", "wall"))
        cpu = ratio(median(count, "ansible", "cpu"), median(count, "checkrun", "cpu"))
        floor = median(count, "floor", "wall")
        overhead = ratio(
            median(count, "checkrun", "wall"), floor + work if floor is not None else None
        )
        batch_overhead = ratio(
            median(count, "checkrun", "wall"), median(count, "floor+batch", "wall")
        )
        print(
            f"{count:>5}  {fmt(speed, '16.1f')} {fmt(cpu, '7.1f')}   {fmt(overhead, '21.2f')}"
            f"   {fmt(batch_overhead, '22.2f')}   {verdict(speed, overhead)}"
        )
    print(f"{'':>5}  {'target >= 15':>16} {'':>7}   {'target <= 1.3':>21}   {'target <= 1.3':>22}")
    print(
        "floor+work adds a fixed 0.2 s window and the grep time to the `true` floor; "
        "floor+batch runs the very batch checkrun sends each host (python start, imports and "
        "the checks themselves), so checkrun/(floor+batch) is checkrun's own overhead."
    )


def verdict(speed: float | None, overhead: float | None) -> str:
    parts = []
    if speed is not None:
        parts.append("speed target met" if speed >= 15 else "speed target MISSED")
    if overhead is not None:
        parts.append("overhead target met" if overhead <= 1.3 else "overhead target MISSED")
    return "; ".join(parts)


def stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="16,64", help="host counts, comma-separated (16,64)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per leg (median)")
    parser.add_argument("--forks", type=int, default=FORKS, help=f"every tool's forks ({FORKS})")
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured runs per leg before the first count"
    )
    parser.add_argument("--legs", default=",".join(LEGS), help="checkrun,ansible,floor,floor+batch")
    parser.add_argument(
        "--checkrun", type=Path, help="use this checkrun binary instead of installing the repo"
    )
    parser.add_argument(
        "--checkrun-args",
        default="",
        help="extra checkrun options for the checkrun leg, e.g. '--target-nice 0'",
    )
    parser.add_argument(
        "--real-home",
        action="store_true",
        help="let ssh sessions use the login user's real HOME (and its ~/.bashrc)",
    )
    args = parser.parse_args()
    args.legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    unknown = set(args.legs) - set(LEGS)
    if unknown or not args.legs:
        parser.error(f"--legs: choose from {', '.join(LEGS)}")
    try:
        counts = [int(n) for n in args.hosts.split(",")]
    except ValueError:
        parser.error("--hosts: comma-separated numbers, such as 16,64")
    limit = ADDRESSES_PER_SSHD * (256 - FIRST_SUBNET)
    if not all(1 <= n <= limit for n in counts):
        parser.error(f"--hosts: each count must be between 1 and {limit}")
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    if os.geteuid() != 0 or not os.access(SSHD, os.X_OK):
        raise SystemExit("needs root and /usr/sbin/sshd (apt-get install openssh-server)")
    # Both tools run from their own virtualenvs, called by path, with bytecode caches allowed,
    # as on a user's machine.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    signal.signal(signal.SIGTERM, stop_on_sigterm)  # so the finally blocks stop the sshds
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not become_subreaper():
        print(
            "warning: not a subreaper; Ansible's ssh masters' CPU is not counted", file=sys.stderr
        )

    checkrun = args.checkrun or (install_checkrun() if "checkrun" in args.legs else Path())
    ansible = ensure_ansible() if "ansible" in args.legs else Path()
    results: dict[int, dict[str, Leg]] = {}
    loads = [load_text()]
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp, running_services() as services:
        root = Path(tmp)
        log = root / "app.log"
        log_errors = write_log(log)
        grep = grep_seconds(log, log_errors)
        env = Environment(root, services, log, log_errors, checkrun, ansible)
        for n, count in enumerate(counts):
            # page cache and bytecode caches are warm after the first count's warm-up
            results[count] = bench_hosts(count, args, env, args.warmup if n == 0 else 0)
    loads.append(load_text())
    print_table(results, CPU_SAMPLE + grep, grep, args.runs, loads, args.forks)
    failures = [
        (count, leg) for count, legs in results.items() for leg in legs.values() if leg.failure
    ]
    for count, leg in failures:
        print(
            f"\n!!! {leg.name} FAILED at {count} hosts, no figures for it:\n{leg.failure}",
            file=sys.stderr,
        )
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
