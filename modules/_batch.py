# Target-side entry point: runs one batch of checks and prints the results as JSON.
#
# The control node sends, on python3's stdin, a zlib-compressed program made of this file,
# the sources of the modules the batch needs and of the modules/_utils helpers they import,
# and the batch itself, followed by a call to _main(SOURCES, BATCH_JSON). Standard library
# only, Python 3.6 syntax: it runs on bare targets.
#
# Kept connections (watch mode) run _serve() instead: one process answers batch after batch
# on the same stdin/stdout, as length-prefixed frames (see checkrunner/transport/live.py).
import json
import math
import os
import struct
import sys
import threading
import time
import zlib

PROTOCOL_VERSION = 1
RESULT_MARKER = "__CHECKRUN_RESULT__"
MAX_PARALLEL = 16


class CheckContext(object):
    """What a module's run(args, ctx) may use besides its arguments."""

    def __init__(self, check_id, timeout, psutil_module, proc_root="/proc"):
        self.check_id = check_id
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.psutil = psutil_module  # None when psutil is missing or disabled: use procfs
        self.proc_root = proc_root
        self.before = None  # rate modules: snapshot from sample() at the window's start
        self.after = None  # ... and at its end
        self.elapsed = 0.0  # seconds between the two snapshots

    def remaining(self):
        """Seconds left before this check's timeout (never below 0.05)."""
        return max(0.05, self.deadline - time.monotonic())


def _load_psutil(enabled):
    if not enabled or os.environ.get("CHECKRUN_NO_PSUTIL"):
        return None
    try:
        import psutil  # noqa: F401

        return psutil
    except Exception:
        return None


# Modules and helpers run as one package, so that a module's `from ._utils import certs`
# finds the helper shipped beside it (Ansible's module_utils).
PACKAGE = "checkrun_modules"


class _SourceImporter(object):
    """Imports PACKAGE.NAME from the shipped sources: names are "cpu" or "_utils.certs"."""

    def __init__(self, sources):
        self.sources = sources

    def find_spec(self, fullname, path=None, target=None):
        head, _, name = fullname.partition(".")
        if head != PACKAGE or not (name in self.sources or name in ("", "_utils")):
            return None
        import importlib.util

        is_package = name in ("", "_utils")
        return importlib.util.spec_from_loader(fullname, self, is_package=is_package)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        name = module.__name__.partition(".")[2]
        if name in self.sources:
            module.__file__ = name.replace(".", "/") + ".py"
            exec(compile(self.sources[name], module.__file__, "exec"), module.__dict__)


def load_modules(sources):
    """The check modules among sources, imported; helpers are imported by the modules."""
    for name in [n for n in sys.modules if n.partition(".")[0] == PACKAGE]:
        del sys.modules[name]  # a fresh load per batch, even when one process runs several
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_SourceImporter"]
    sys.meta_path.insert(0, _SourceImporter(sources))
    names = [name for name in sources if not name.startswith("_")]
    return dict((name, __import__(PACKAGE + "." + name, fromlist=["run"])) for name in names)


def _error_text(exc):
    if isinstance(exc, (OSError, RuntimeError, ValueError)) and str(exc):
        return str(exc)
    return "%s: %s" % (type(exc).__name__, exc)


def _call(entry, fn, *fn_args):
    started = time.monotonic()
    try:
        entry["result"] = fn(*fn_args)
        if not isinstance(entry["result"], dict):
            raise TypeError("module returned %r, not a dict" % type(entry["result"]).__name__)
        _check_finite(entry["result"].get("measurements") or {})
    except Exception as exc:
        entry.pop("result", None)
        entry["error"] = _error_text(exc)
        entry["error_type"] = "exception"
        import traceback  # only when something failed: keeps the common batch start fast

        entry["traceback"] = traceback.format_exc(limit=6)[-2000:]
    entry["duration"] = time.monotonic() - started


def _check_finite(measurements):
    # The control node rejects NaN and infinities as a broken answer: say which check made one.
    for name, value in measurements.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("measurement %r is not a finite number (%r)" % (name, value))


class _CheckThread(threading.Thread):
    def __init__(self, entry, fn, fn_args, slots):
        threading.Thread.__init__(self, name="check-" + entry["id"])
        self.daemon = True  # a hung check must never keep the interpreter alive
        self.entry = entry
        self.fn = fn
        self.fn_args = fn_args
        self.slots = slots

    def run(self):
        try:
            _call(self.entry, self.fn, *self.fn_args)
        finally:
            self.slots.release()


def _timed_out(entry, timeout):
    return {
        "id": entry["id"],
        "module": entry["module"],
        "error": "timed out after %gs" % timeout,
        "error_type": "timeout",
        "duration": timeout,
    }


def run_batch(sources, batch):
    psutil_module = _load_psutil(batch.get("options", {}).get("psutil", True))
    return run_checks(load_modules(sources), batch, psutil_module)


def run_checks(modules, batch, psutil_module):
    """The result entries of the batch's checks, run with the imported `modules` by name."""
    options = batch.get("options", {})
    checks = batch["checks"]
    entries = [{"id": c["id"], "module": c["module"]} for c in checks]
    contexts = [CheckContext(c["id"], float(c.get("timeout", 30)), psutil_module) for c in checks]
    rate = [i for i, c in enumerate(checks) if getattr(modules[c["module"]], "sample", None)]
    window = max([float(checks[i].get("window", 1.0)) for i in rate] or [0.0])

    # Rate collectors share one sampling window: all take their first snapshot now...
    window_start = time.monotonic()
    for i in rate:
        try:
            contexts[i].before = modules[checks[i]["module"]].sample(checks[i]["args"], contexts[i])
        except Exception as exc:
            entries[i]["error"] = _error_text(exc)
            entries[i]["error_type"] = "exception"

    # ...the other checks run in threads meanwhile...
    slots = threading.BoundedSemaphore(int(options.get("max_parallel", MAX_PARALLEL)))
    threads = []
    for i, check in enumerate(checks):
        if i in rate:
            continue
        slots.acquire()
        thread = _CheckThread(
            entries[i], modules[check["module"]].run, (check["args"], contexts[i]), slots
        )
        thread.start()
        threads.append((i, thread))

    # ...and the window closes once for all of them.
    time.sleep(max(0.0, window_start + window - time.monotonic()))
    window_end = time.monotonic()
    for i in rate:
        if "error" in entries[i]:
            continue
        module = modules[checks[i]["module"]]
        ctx = contexts[i]
        started = time.monotonic()
        try:
            ctx.after = module.sample(checks[i]["args"], ctx)
            ctx.elapsed = window_end - window_start
            _call(entries[i], module.run, checks[i]["args"], ctx)
        except Exception as exc:
            entries[i]["error"] = _error_text(exc)
            entries[i]["error_type"] = "exception"
        entries[i]["duration"] = ctx.elapsed + (time.monotonic() - started)

    for i, thread in threads:
        thread.join(max(0.0, contexts[i].deadline - time.monotonic()))
        if thread.is_alive():
            entries[i] = _timed_out(entries[i], contexts[i].timeout)
    return entries


def _limit_resources(options):
    """Lower CPU priority and cap memory, so that checking a host never hurts it.

    The data-segment limit (heap and private writable mappings) is inherited by the
    commands the checks start; 0 means no limit.
    """
    try:
        os.nice(int(options.get("nice", 0)))
    except (AttributeError, OSError, ValueError):
        pass
    limit = int(options.get("memory_limit", 0) or 0)
    if limit <= 0:
        return
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        if soft == resource.RLIM_INFINITY or limit < soft:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def _answer(results, started):
    return {
        "version": PROTOCOL_VERSION,
        "hostname": os.uname()[1],
        "python": "%d.%d.%d" % tuple(sys.version_info[:3]),
        "duration": time.monotonic() - started,
        "results": results,
    }


def _main(sources, batch_json):
    started = time.monotonic()
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # modules' stray prints must not corrupt the result
    batch = json.loads(batch_json)
    _limit_resources(batch.get("options", {}))
    results = run_batch(sources, batch)
    out = _answer(results, started)
    real_stdout.write(RESULT_MARKER + json.dumps(out, default=str) + "\n")
    real_stdout.flush()
    sys.stderr.flush()
    # Hung check threads may still be running: leave without waiting for them.
    os._exit(0)


# --- the live process of a kept connection ----------------------------------------------------
#
# A frame is a 5-byte header (big-endian body length, one flags byte) and a zlib-compressed
# JSON body. Requests: {"sources": {the files not shipped yet}, "batch": {a batch as _main
# reads it}, "idle": seconds}. Answers: _main's answer plus "pid", flagged RETIRING when this
# process exits right after it (the control node then starts a fresh one).
LIVE_GREETING = b"__CHECKRUN_LIVE__1\n"
FRAME_HEADER = ">IB"
RETIRING = 1
MAX_REQUEST_BYTES = 64 * 1024 * 1024
# A live process that grew past this share of the memory cap is replaced before a check of
# a later round fails with MemoryError under RLIMIT_DATA.
RETIRE_MEMORY_SHARE = 0.5


class _KeptModules(object):
    """Modules imported once; a later request only adds the sources it ships."""

    def __init__(self):
        self.sources = {}
        self.loaded = {}
        sys.meta_path.insert(0, _SourceImporter(self.sources))

    def add(self, sources):
        self.sources.update(sources)
        for name in sources:
            if not name.startswith("_") and name not in self.loaded:
                self.loaded[name] = __import__(PACKAGE + "." + name, fromlist=["run"])
        return self.loaded


def _read_requests(stream, requests):
    # Its own thread, so that the end of stdin (the connection closed) ends the process at
    # once, even while a round runs or hung check threads linger.
    header_size = struct.calcsize(FRAME_HEADER)
    while True:
        header = stream.read(header_size)
        if len(header) < header_size:
            os._exit(0)
        size = struct.unpack(FRAME_HEADER, header)[0]
        if size > MAX_REQUEST_BYTES:
            os._exit(3)
        body = stream.read(size)
        if len(body) < size:
            os._exit(0)
        requests.put(body)


def _write_frame(stream, answer, flags):
    body = zlib.compress(json.dumps(answer, default=str).encode("utf-8"), 1)
    stream.write(struct.pack(FRAME_HEADER, len(body), flags) + body)
    stream.flush()


def _rss_bytes():
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _retire_reason(options):
    """Why this process should end after its answer, or None."""
    bound = int(options.get("max_parallel", MAX_PARALLEL))
    hung = sum(1 for t in threading.enumerate() if isinstance(t, _CheckThread) and t.is_alive())
    if hung >= bound:
        return "%d check threads hung" % hung
    limit = int(options.get("memory_limit", 0) or 0)
    rss = _rss_bytes()
    if limit > 0 and rss > limit * RETIRE_MEMORY_SHARE:
        return "resident memory %d MiB of a %d MiB cap" % (rss >> 20, limit >> 20)
    return None


def _serve():
    import queue

    real_stdout = sys.stdout.buffer
    sys.stdout = sys.stderr  # modules' stray prints must not corrupt the frames
    real_stdout.write(LIVE_GREETING)
    real_stdout.flush()
    requests = queue.Queue()
    reader = threading.Thread(target=_read_requests, args=(sys.stdin.buffer, requests))
    reader.daemon = True
    reader.start()
    modules = _KeptModules()
    psutil_module = None
    idle = None
    first = True
    while True:
        try:
            body = requests.get(timeout=idle)
        except queue.Empty:
            os._exit(0)  # the control node forgot us: leave nothing behind
        started = time.monotonic()
        request = json.loads(zlib.decompress(body).decode("utf-8"))
        idle = request.get("idle") or idle
        batch = request["batch"]
        options = batch.get("options", {})
        if first:
            _limit_resources(options)
            psutil_module = _load_psutil(options.get("psutil", True))
            first = False
        results = run_checks(modules.add(request.get("sources") or {}), batch, psutil_module)
        answer = _answer(results, started)
        answer["pid"] = os.getpid()
        retire = _retire_reason(options)
        if retire is not None:
            answer["retiring"] = retire
        _write_frame(real_stdout, answer, RETIRING if retire else 0)
        sys.stderr.flush()
        if retire is not None:
            os._exit(0)
