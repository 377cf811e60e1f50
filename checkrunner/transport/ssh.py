"""The ssh transport: one paramiko connection and one exec per host per run.

The target runs `[sudo -n -u USER --] PYTHON -c BOOTSTRAP` with the compressed batch program
on stdin; stdout and stderr are read until the command ends or the host deadline passes. A
watchdog closes the connection at the deadline, so a hung target never holds the run (one
watchdog thread per transport serves every session: a timer thread per host would cost a
thread start each; it starts on first use and stops when the transport is closed).

Kept connections (run_kept) stay open across calls, with keepalives, and run the live program
(transport/live.py) in one channel; the same watchdog closes one whose round overruns.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import shlex
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paramiko

from checkrunner import settings
from checkrunner.errors import ConfigError, Unreachable
from checkrunner.results import UnreachableReason
from checkrunner.transport.answer import RESULT_MARKER
from checkrunner.transport.base import (
    ACCEPT_NEW,
    CHECKING_MODES,
    MAX_OUTPUT_BYTES,
    MAX_STDERR_BYTES,
    OFF,
    STRICT,
    ExecResult,
    Transport,
)
from checkrunner.transport.live import (
    KEEPALIVE_SECONDS,
    LIVE_BOOTSTRAP,
    READER_WAKE_SECONDS,
    KeptSessions,
    LiveChannel,
    opening_bytes,
)
from checkrunner.transport.payload import BOOTSTRAP, Batch, with_become_password
from checkrunner.transport.ssh_config import Endpoint, EndpointResolver, SSHOptions
from checkrunner.transport.ssh_connect import Connection, Connector
from checkrunner.transport.ssh_known_hosts import HostKeyChecker, KnownHostsStore

__all__ = [
    "ACCEPT_NEW",
    "CHECKING_MODES",
    "OFF",
    "STRICT",
    "SSHOptions",
    "SSHTransport",
    "remote_command",
    "target_failure",
]

# paramiko logs handshake failures with tracebacks; we report them as reasons instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

_CHUNK = 65536
DEFAULT_PYTHON = settings.PYTHON_INTERPRETER.default


class SSHTransport(Transport):
    """Runs batches over SSH; known_hosts and ~/.ssh/config are read once per transport, which
    owns the shared jump-host connections and the deadline watchdog (transport.Transports
    owns the transport)."""

    name = "ssh"

    def __init__(self, options: SSHOptions | None = None):
        self.options = options or SSHOptions()
        self.known_hosts = KnownHostsStore(self.options.accept_new_file)
        self._resolver = EndpointResolver(self.options)
        self._connector = Connector(self.options, HostKeyChecker(self.known_hosts))
        self._watchdog = _Watchdog()
        self._sessions: set[_Session] = set()
        self._kept = KeptSessions()
        self._aborted = False
        self._lock = threading.Lock()

    def run_batch(self, host: Any, payload: bytes, timeout: float) -> ExecResult:
        deadline = time.monotonic() + timeout
        endpoint = self._endpoint(host)
        interpreter = getattr(host, "python_interpreter", None) or DEFAULT_PYTHON
        password = _become_password(host, endpoint)
        command = _command_for(host, interpreter, endpoint, password is not None)
        session = _Session(endpoint, timeout, self._watchdog)
        with self._tracked(session):
            result = session.run(
                self._connector, command, with_become_password(payload, password), deadline
            )
        failure = target_failure(result, interpreter, endpoint)
        if failure is not None:
            raise failure
        return result

    def run_kept(self, host: Any, batch: Batch, timeout: float) -> ExecResult:
        deadline = time.monotonic() + timeout
        endpoint = self._endpoint(host)
        interpreter = getattr(host, "python_interpreter", None) or DEFAULT_PYTHON
        password = _become_password(host, endpoint)
        command = _command_for(host, interpreter, endpoint, password is not None, LIVE_BOOTSTRAP)
        guard = _Session(endpoint, timeout, self._watchdog)

        def open_channel(deadline: float) -> tuple[LiveChannel, bytes]:
            return _open_live(self._connector, guard, command, deadline), opening_bytes(password)

        identity = (endpoint, command, password)
        watch = self._watchdog.watch(guard, deadline)
        try:
            with self._tracked(guard):
                result = self._kept.run(
                    host, batch, deadline, timeout, identity, open_channel, guard
                )
        finally:
            self._watchdog.cancel(watch)
        if not result.stdout:  # the live process ended before answering: say why, as run_batch
            failure = target_failure(result, interpreter, endpoint)
            if failure is not None:
                raise failure
        return result

    def configure_kept(self, on_event: Any, idle_timeout: float) -> None:
        self._kept.on_event = on_event
        self._kept.idle_timeout = idle_timeout

    def forget(self, host_name: str) -> None:
        self._kept.forget(host_name)

    def abort(self) -> None:
        """Close every live connection (Ctrl-C); batches not yet started end at once."""
        with self._lock:
            self._aborted = True
            sessions = list(self._sessions)
        for session in sessions:
            session.abort()
        self._kept.abort()
        self._connector.abort()

    def close(self) -> None:
        """Close the kept connections (their live processes exit), the shared jump-host
        connections, and stop the watchdog thread; the transport may be used again
        afterwards."""
        self._kept.close()
        self._connector.close()
        self._watchdog.stop()
        with self._lock:
            self._aborted = False

    def endpoint(self, host: Any) -> Endpoint:
        """Where `host` is reached, after inventory, options and ~/.ssh/config are merged."""
        return self._resolver.resolve(host)

    def _endpoint(self, host: Any) -> Endpoint:
        try:
            return self.endpoint(host)
        except (ConfigError, ValueError) as exc:
            raise Unreachable(UnreachableReason.ERROR, f"bad connection settings: {exc}") from None

    @contextmanager
    def _tracked(self, session: _Session) -> Iterator[None]:
        with self._lock:
            if self._aborted:
                raise Unreachable(UnreachableReason.ERROR, "interrupted")
            self._sessions.add(session)
        try:
            yield
        finally:
            with self._lock:
                self._sessions.discard(session)


def _become_password(host: Any, endpoint: Endpoint) -> str | None:
    """The sudo password to send, only when sudo will actually run."""
    become_user = getattr(host, "become_user", None) or "root"
    if not getattr(host, "become", False) or endpoint.user == become_user:
        return None
    return getattr(host, "become_password", None) or None


def _command_for(
    host: Any, interpreter: str, endpoint: Endpoint, password: bool, bootstrap: str = BOOTSTRAP
) -> str:
    try:
        return remote_command(
            interpreter,
            become=bool(getattr(host, "become", False)),
            become_user=getattr(host, "become_user", None) or "root",
            become_method=getattr(host, "become_method", None) or "sudo",
            login_user=endpoint.user,
            password=password,
            bootstrap=bootstrap,
        )
    except ValueError as exc:  # unbalanced quotes in ansible_python_interpreter
        raise Unreachable(
            UnreachableReason.ERROR, f"bad ansible_python_interpreter {interpreter!r}: {exc}"
        ) from None


def remote_command(
    interpreter: str,
    become: bool,
    become_user: str,
    become_method: str,
    login_user: str,
    password: bool = False,
    bootstrap: str = BOOTSTRAP,
) -> str:
    """The one shell command a target runs, every word quoted.

    With `password`, sudo reads it from the first line of stdin (`-S`, no prompt text);
    otherwise `sudo -n` fails at once instead of waiting for a password nobody will type.
    """
    argv = [*(shlex.split(interpreter) or [DEFAULT_PYTHON]), "-c", bootstrap]
    if become and login_user != become_user:
        if become_method != "sudo":
            raise Unreachable(
                UnreachableReason.SUDO,
                f"become method '{become_method}' is not supported: checkrunner becomes "
                f"{become_user} with `sudo -n`; set ansible_become_method=sudo",
            )
        sudo = ["sudo", "-S", "-p", ""] if password else ["sudo", "-n"]
        argv = [*sudo, "-u", become_user, "--", *argv]
    return shlex.join(argv)


class _HostDeadline(Exception):
    """The host deadline passed while the batch was running."""


class _Session:
    """One host's connection and exec; the watchdog or Ctrl-C may close it from another thread."""

    def __init__(self, endpoint: Endpoint, timeout: float, watchdog: _Watchdog):
        self.endpoint = endpoint
        self.timeout = timeout
        self._watchdog = watchdog
        self.expired = False
        self.aborted = False
        self._transport: paramiko.Transport | None = None
        self._lock = threading.Lock()

    def run(
        self, connector: Connector, command: str, payload: bytes, deadline: float
    ) -> ExecResult:
        watch = self._watchdog.watch(self, deadline)
        connection: Connection | None = None
        try:
            connection = connector.connect(self.endpoint, deadline, on_transport=self.attach)
            result = _execute(connection.transport, command, payload, deadline)
        except Unreachable as exc:
            raise self._interrupted() or exc from None
        except _HostDeadline:
            raise self._interrupted() or self._deadline() from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._interrupted() or self._lost(exc) from None
        finally:
            self._watchdog.cancel(watch)
            if connection is not None:
                connection.close()
        interrupted = self._interrupted()
        if interrupted is not None and result.exit_status == -1:
            raise interrupted  # closed by the watchdog or Ctrl-C before the command ended
        return result

    def attach(self, transport: paramiko.Transport) -> None:
        with self._lock:
            self._transport = transport
            stop = self.expired or self.aborted
        if stop:
            transport.close()

    def expire(self) -> None:
        self._stop("expired")

    def abort(self) -> None:
        self._stop("aborted")

    def _stop(self, flag: str) -> None:
        with self._lock:
            setattr(self, flag, True)
            transport = self._transport
        if transport is not None:
            transport.close()

    def _interrupted(self) -> Unreachable | None:
        if self.aborted:
            return Unreachable(UnreachableReason.ERROR, "interrupted")
        if self.expired:
            return self._deadline()
        return None

    def _deadline(self) -> Unreachable:
        return Unreachable(
            UnreachableReason.TIMEOUT,
            f"no answer from {_where(self.endpoint)} within the host deadline of {self.timeout:g}s",
        )

    def _lost(self, exc: BaseException) -> Unreachable:
        return Unreachable(
            UnreachableReason.ERROR,
            f"connection to {_where(self.endpoint)} lost: {str(exc) or type(exc).__name__}",
        )


class _Watchdog:
    """Expires sessions whose host deadline has passed, from one thread started on first use
    and stopped by stop() (the next watch() starts another)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._deadlines: list[tuple[float, int, _Session]] = []  # a heap, earliest first
        self._watched: set[int] = set()  # entries not cancelled yet
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, session: _Session, deadline: float) -> int:
        """Expire `session` at `deadline` (time.monotonic()) unless cancelled before."""
        with self._condition:
            token = next(self._tokens)
            heapq.heappush(self._deadlines, (deadline, token, session))
            self._watched.add(token)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="checkrun-ssh-watchdog", daemon=True
                )
                self._thread.start()
            elif self._deadlines[0][1] == token:
                self._condition.notify()  # earlier than the deadline being waited for
        return token

    def cancel(self, token: int) -> None:
        with self._condition:
            self._watched.discard(token)
            if len(self._deadlines) > 2 * len(self._watched) + 64:
                self._deadlines = [e for e in self._deadlines if e[1] in self._watched]
                heapq.heapify(self._deadlines)

    def stop(self) -> None:
        """End the thread; deadlines still watched are kept for the next one."""
        with self._condition:
            thread, self._thread = self._thread, None
            self._condition.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while True:
            due = self._wait_for_due()
            if due is None:
                return
            for session in due:
                try:
                    session.expire()  # outside the lock: closing may take a moment
                except Exception:  # one failed close must not end the watch over the others
                    logging.getLogger(__name__).debug("closing a session failed", exc_info=True)

    def _wait_for_due(self) -> list[_Session] | None:
        """The sessions due now, or None once this thread has been stopped."""
        with self._condition:
            while True:
                if self._thread is not threading.current_thread():
                    return None
                while self._deadlines and self._deadlines[0][1] not in self._watched:
                    heapq.heappop(self._deadlines)
                if not self._deadlines:
                    self._condition.wait()
                    continue
                now = time.monotonic()
                if self._deadlines[0][0] > now:
                    self._condition.wait(self._deadlines[0][0] - now)
                    continue
                due = []
                while self._deadlines and self._deadlines[0][0] <= now:
                    _, token, session = heapq.heappop(self._deadlines)
                    if token in self._watched:
                        self._watched.discard(token)
                        due.append(session)
                return due


def _execute(
    transport: paramiko.Transport, command: str, payload: bytes, deadline: float
) -> ExecResult:
    channel = transport.open_session(timeout=_remaining(deadline))
    try:
        channel.exec_command(command)
        _send_input(channel, payload, deadline)
        stdout, stderr = _collect(channel, deadline)
        received = len(stdout) + len(stderr)
        if len(stdout) > MAX_OUTPUT_BYTES:  # stopped reading: the answer is rejected
            return ExecResult(-1, stdout, stderr, True, len(payload), received)
        status = _exit_status(channel, deadline)
    finally:
        channel.close()
    return ExecResult(status, stdout, stderr, sent_bytes=len(payload), received_bytes=received)


def _send_input(channel: paramiko.Channel, payload: bytes, deadline: float) -> None:
    channel.settimeout(_remaining(deadline))
    try:
        channel.sendall(payload)
        channel.shutdown_write()
    except OSError:
        pass  # the command ended without reading its input (no python?): its output says why


def _collect(channel: paramiko.Channel, deadline: float) -> tuple[bytes, bytes]:
    """All of stdout and stderr, until the command closes them, the deadline passes or stdout
    passes MAX_OUTPUT_BYTES."""
    stdout, stderr = bytearray(), bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(channel.fileno(), selectors.EVENT_READ)
        while True:
            _drain(channel, stdout, stderr)
            if len(stdout) > MAX_OUTPUT_BYTES:
                return bytes(stdout), bytes(stderr)
            if channel.eof_received or channel.closed:
                _drain(channel, stdout, stderr)
                return bytes(stdout), bytes(stderr)
            selector.select(_remaining(deadline))


def _drain(channel: paramiko.Channel, stdout: bytearray, stderr: bytearray) -> None:
    while channel.recv_ready() and len(stdout) <= MAX_OUTPUT_BYTES:
        stdout += channel.recv(_CHUNK)
    while channel.recv_stderr_ready():
        data = channel.recv_stderr(_CHUNK)
        stderr += data[: max(0, MAX_STDERR_BYTES - len(stderr))]


def _exit_status(channel: paramiko.Channel, deadline: float) -> int:
    if not channel.status_event.wait(_remaining(deadline)):
        raise _HostDeadline()
    return channel.recv_exit_status()


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _HostDeadline()
    return remaining


def _where(endpoint: Endpoint) -> str:
    return f"{endpoint.hostname}:{endpoint.port}"


def target_failure(result: ExecResult, interpreter: str, endpoint: Endpoint) -> Unreachable | None:
    """Why the batch never started on the target (no python, sudo), from its exit and stderr."""
    if result.overflow or RESULT_MARKER.encode() in result.stdout:
        return None
    text = result.stderr.decode("utf-8", errors="replace")
    lowered = text.lower()
    where = _where(endpoint)
    last = _last_line(text)
    sudo = _sudo_failure(lowered, where, endpoint.user, last)
    if sudo is not None:
        return sudo
    if _interpreter_missing(result.exit_status, lowered):
        return Unreachable(
            UnreachableReason.NO_PYTHON,
            f"'{interpreter}' cannot run on {where} ({last}): install Python 3 there, or set "
            f"ansible_python_interpreter to the path of a Python 3 interpreter",
        )
    if "has no attribute 'buffer'" in text:
        return Unreachable(
            UnreachableReason.NO_PYTHON,
            f"'{interpreter}' on {where} is Python 2 ({last}); set ansible_python_interpreter "
            f"to a Python 3.6+ interpreter",
        )
    if result.exit_status == -1:
        return Unreachable(
            UnreachableReason.ERROR, f"the connection to {where} closed before the batch finished"
        )
    return None


def _sudo_failure(lowered: str, where: str, user: str, last: str) -> Unreachable | None:
    if "sudo: command not found" in lowered or "sudo: not found" in lowered:
        problem = "sudo is not installed there"
    elif "sudo:" not in lowered:
        return None
    elif "password is required" in lowered:
        problem = f"sudo needs a password for '{user}' and `sudo -n` cannot prompt"
    elif "incorrect password" in lowered or "sorry, try again" in lowered:
        return Unreachable(
            UnreachableReason.SUDO,
            f"become failed on {where}: sudo rejected the become password for '{user}'; fix: "
            "check ansible_become_password or the variable named by --become-password-env",
        )
    elif "terminal is required" in lowered or "must have a tty" in lowered:
        problem = "sudoers requires a tty (Defaults requiretty)"
    elif "not in the sudoers file" in lowered or "not allowed to" in lowered:
        problem = f"'{user}' may not use sudo there"
    else:
        return None
    return Unreachable(
        UnreachableReason.SUDO,
        f"become failed on {where}: {problem} ({last}); fix: give '{user}' passwordless sudo "
        f"(NOPASSWD in sudoers, no requiretty), log in as the target user, or run without become",
    )


def _interpreter_missing(exit_status: int, lowered: str) -> bool:
    if exit_status in (126, 127):
        return any(s in lowered for s in ("not found", "no such file", "permission denied"))
    return "sudo:" in lowered and "command not found" in lowered


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def _open_live(connector: Connector, guard: _Session, command: str, deadline: float) -> _LiveSSH:
    """A kept connection running the live program, watched by `guard` while it opens."""
    connection: Connection | None = None
    try:
        connection = connector.connect(guard.endpoint, deadline, on_transport=guard.attach)
        connection.transport.set_keepalive(KEEPALIVE_SECONDS)
        connection.transport.sock.settimeout(READER_WAKE_SECONDS)
        channel = connection.transport.open_session(timeout=_remaining(deadline))
        channel.exec_command(command)
    except Unreachable as exc:
        _close_quietly(connection)
        raise guard._interrupted() or exc from None
    except _HostDeadline:
        _close_quietly(connection)
        raise guard._interrupted() or guard._deadline() from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        _close_quietly(connection)
        raise guard._interrupted() or guard._lost(exc) from None
    return _LiveSSH(connection, channel, guard)


def _close_quietly(connection: Connection | None) -> None:
    if connection is not None:
        connection.close()


class _LiveSSH(LiveChannel):
    """A kept ssh connection and the channel its live program runs in."""

    def __init__(self, connection: Connection, channel: paramiko.Channel, guard: _Session):
        self.connection = connection
        self.channel = channel
        self.guard = guard  # the current round's: the watchdog and Ctrl-C close through it
        self._selector = selectors.DefaultSelector()
        self._selector.register(channel.fileno(), selectors.EVENT_READ)
        self._closed = False
        self._lock = threading.Lock()

    def watch_with(self, guard: Any) -> None:
        self.guard = guard
        guard.attach(self.connection.transport)

    def send(self, data: bytes, deadline: float) -> bool:
        try:
            self.channel.settimeout(_remaining(deadline))
            self.channel.sendall(data)
        except (_HostDeadline, OSError, EOFError, paramiko.SSHException):
            return False
        return True

    def receive(self, deadline: float) -> tuple[bytes, bytes]:
        stdout, stderr = bytearray(), bytearray()
        try:
            if not self._ready():
                self._selector.select(max(0.0, deadline - time.monotonic()))
            _drain(self.channel, stdout, stderr)
        except (OSError, ValueError, EOFError, paramiko.SSHException):
            self.channel.close()  # closed under us (forget, close): the stream has ended
        return bytes(stdout), bytes(stderr)

    def _ready(self) -> bool:
        channel = self.channel
        return channel.recv_ready() or channel.recv_stderr_ready() or self.ended()

    def ended(self) -> bool:
        channel = self.channel
        return (channel.eof_received or channel.closed) and not channel.recv_ready()

    def alive(self) -> bool:
        channel = self.channel
        return self.connection.transport.is_active() and not (
            channel.closed or channel.eof_received or channel.exit_status_ready()
        )

    def exit_status(self) -> int:
        if self.channel.status_event.wait(1.0):
            return self.channel.recv_exit_status()
        return -1

    def stopped(self, timed_out: bool, timeout: float) -> Unreachable | None:
        interrupted = self.guard._interrupted()
        if interrupted is not None or not timed_out:
            return interrupted
        return self.guard._deadline()

    def abort(self) -> None:
        self.guard.abort()

    def close(self, graceful: bool = False) -> None:
        # Closing the connection ends the session: sshd closes the live program's stdin
        # and it exits (graceful or not, nothing more is needed over ssh).
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.channel.close()
        self.connection.close()
        self._selector.close()
