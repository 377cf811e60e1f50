# The grep -F prefilter: candidate lines of a large region found by the target's grep.
#
# Part of the log module (modules/log.py), shipped with it. Runs on the target: standard
# library only, Python 3.6 syntax.
import os
import subprocess
import threading

from . import logmatch


class GrepFailed(Exception):
    pass


class GrepFeed(object):
    """grep -F finds the candidate lines of a region fed through a pipe; Python confirms them
    with the real patterns (so the semantics stay Python's)."""

    def __init__(self, grep, matcher, path):
        self.matcher = matcher
        self.path = path
        self.tally = logmatch.Tally(len(matcher.patterns), matcher.samples)
        argv = [grep, "-F", "-a"]
        if any(p.icase for p in matcher.patterns):
            argv.append("-i")
        for literal in sorted(set(p.literal for p in matcher.patterns)):
            argv += ["-e", literal]
        env = dict(os.environ, LC_ALL="C")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        try:
            import fcntl

            fcntl.fcntl(self.proc.stdin.fileno(), 1031, 1024 * 1024)  # F_SETPIPE_SZ
        except Exception:
            pass
        self.error = None
        self.thread = threading.Thread(target=self._drain, name="log-grep")
        self.thread.daemon = True
        self.thread.start()

    def _drain(self):
        scan = self.matcher.scan
        try:
            for line in self.proc.stdout:
                end = len(line) - 1 if line.endswith(b"\n") else len(line)
                scan(self.tally, line, end, self.path, count_lines=False)
        except Exception as exc:  # reported by close()
            self.error = exc

    def write(self, data):
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError) as exc:
            self.abort()
            raise GrepFailed("grep stopped reading: %s" % exc) from None

    def close(self, tally):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.thread.join()
        code = self.proc.wait()
        if code > 1 or self.error is not None:
            raise GrepFailed(
                "grep failed (exit %s%s)" % (code, self.error and ", %s" % self.error or "")
            )
        tally.merge(self.tally)

    def abort(self):
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.thread.join(5)
        self.proc.wait()
