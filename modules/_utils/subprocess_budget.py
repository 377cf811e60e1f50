# Running a command within a deadline: drain its pipes (feeding stdin), and kill its whole
# process group when time is up. Used by the command and nagios modules.
import os
import select
import selectors
import shlex
import signal
import subprocess
import time

READ_CHUNK = 65536
POLL_INTERVAL = 0.1
# Children the command started in the background may keep its pipes open; once the
# command itself has exited, stop reading after this long.
EXIT_GRACE = 0.5
PIPE_BUF = getattr(select, "PIPE_BUF", 512)


class Output(object):
    """One stream of a command: the first `limit` bytes kept, everything counted."""

    def __init__(self, limit):
        self.limit = limit
        self.data = bytearray()
        self.total = 0
        self.newlines = 0
        self.last_byte = b""

    def add(self, chunk):
        self.total += len(chunk)
        self.newlines += chunk.count(b"\n")
        self.last_byte = chunk[-1:]
        room = self.limit - len(self.data)
        if room > 0:
            self.data.extend(chunk[:room])

    @property
    def lines(self):
        unterminated = 1 if self.total and self.last_byte != b"\n" else 0
        return self.newlines + unterminated

    @property
    def truncated(self):
        return self.total > len(self.data)

    def text(self):
        return bytes(self.data).decode("utf-8", "replace")


def split_command(command, option):
    """argv of a command given as a list, or as one string split with shell quoting rules
    (never interpreted); errors name the option."""
    if isinstance(command, (list, tuple)):
        argv = [str(part) for part in command]
    else:
        try:
            argv = shlex.split(str(command))
        except ValueError as exc:
            raise ValueError("%s: cannot split %r: %s" % (option, command, exc)) from None
    if not argv:
        raise ValueError("%s is empty" % option)
    return argv


def environment(extra):
    """This process's environment with the `env` option's variables added."""
    env = dict(os.environ)
    for name, value in (extra or {}).items():
        env[str(name)] = str(value)
    return env


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _pump(proc, stdin_data, deadline, limit):
    """Feed stdin and drain both pipes until they close, the command is gone, or time is up.

    Returns (stdout Output, stderr Output, timed_out)."""
    outputs = {proc.stdout.fileno(): Output(limit), proc.stderr.fileno(): Output(limit)}
    selector = selectors.DefaultSelector()
    for fd in outputs:
        selector.register(fd, selectors.EVENT_READ)
    pending = memoryview(stdin_data)
    if proc.stdin is not None:
        selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
    exited_at = None
    timed_out = False
    try:
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > EXIT_GRACE:
                break
            for key, _ in selector.select(min(POLL_INTERVAL, deadline - now)):
                if key.fd in outputs:
                    chunk = os.read(key.fd, READ_CHUNK)
                    if chunk:
                        outputs[key.fd].add(chunk)
                    else:
                        selector.unregister(key.fd)
                    continue
                try:
                    pending = pending[os.write(key.fd, pending[:PIPE_BUF]) :]
                except BrokenPipeError:
                    pending = pending[:0]
                if not len(pending):
                    selector.unregister(key.fd)
                    proc.stdin.close()
    finally:
        selector.close()
    return outputs[proc.stdout.fileno()], outputs[proc.stderr.fileno()], timed_out


def _close_pipes(proc):
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass


def communicate(proc, stdin_data, deadline, limit):
    """Run proc (started with start_new_session=True) to completion or until deadline, keeping
    the first `limit` bytes of each stream; its process group is killed on timeout.

    Returns (stdout Output, stderr Output, timed_out)."""
    try:
        stdout, stderr, timed_out = _pump(proc, stdin_data, deadline, limit)
        if not timed_out:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            kill_group(proc)
            proc.wait()
    finally:
        _close_pipes(proc)
    return stdout, stderr, timed_out
