"""A fake target interpreter: it reads the batch program as the real bootstrap does and
answers with whatever a test wants, after the result marker (see test_hostile_target.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from checkrunner.transport.base import MAX_OUTPUT_BYTES

# `{expression}` is Python source for the text printed after the marker. It may use `ids`
# (the batch's check ids), `answer(ids, body)` (a well-formed answer giving each check the
# result `body`), `json` and `MAX` (the control node's output limit).
SCRIPT = """#!{python}
import ast, json, sys, zlib
MAX = {max_output}
data = sys.stdin.buffer.read()
program = zlib.decompress(data if data[:2] == b"x\\x9c" else data[data.find(b"\\n") + 1:])
call = ast.parse(program.decode().strip().splitlines()[-1]).body[0].value
ids = [c["id"] for c in json.loads(ast.literal_eval(call.args[1]))["checks"]]

def answer(ids, body):
    return {{"version": 1, "duration": 0, "results": [
        {{"id": i, "module": "memory", "duration": 0.1, "result": body}} for i in ids]}}

sys.stdout.write("motd\\n__CHECKRUN_RESULT__" + {expression} + "\\n")
"""


def fake_interpreter(path: Path, expression: str) -> Path:
    """An executable at `path` to use as ansible_python_interpreter."""
    path.write_text(
        SCRIPT.format(python=sys.executable, max_output=MAX_OUTPUT_BYTES, expression=expression)
    )
    path.chmod(0o755)
    return path


# A fake live target (kept connections, transport/live.py): it reads the opening (a become
# password line sudo left, the marker line, the program frame) and each request frame as the
# real one does, writes `greeting`, then answers every request with the bytes of `expression`.
# The expression may use `ids` (the request's check ids), `frame(body, flags)`,
# `answer(ids, flags)` (a valid answer frame), `HEADER` and `MAX`. It ends when stdin does, or
# after the first answer with `exit_after`.
LIVE_SCRIPT = """#!{python}
import json, struct, sys, zlib
MAX = {max_output}
HEADER = struct.Struct(">IB")
inp, out = sys.stdin.buffer, sys.stdout.buffer

def frame(body, flags=0):
    data = zlib.compress(body)
    return HEADER.pack(len(data), flags) + data

def answer(ids, flags=0):
    results = [{{"id": i, "module": "memory", "result": {{"measurements": {{"used": 1}}}}}}
               for i in ids]
    body = {{"version": 1, "pid": 4242, "results": results}}
    if flags:
        body["retiring"] = "2 check threads hung"
    return frame(json.dumps(body).encode(), flags)

if not inp.readline().startswith(b"#CHECKRUN_LIVE"):
    inp.readline()
inp.read(HEADER.unpack(inp.read(5))[0])
out.write(b"motd\\n" + {greeting!r})
out.flush()
while True:
    head = inp.read(5)
    if len(head) < 5:
        sys.exit(0)
    request = json.loads(zlib.decompress(inp.read(HEADER.unpack(head)[0])))
    ids = [c["id"] for c in request["batch"]["checks"]]
    out.write({expression})
    out.flush()
    if {exit_after}:
        sys.exit(0)
"""


def fake_live_interpreter(
    path: Path,
    expression: str,
    greeting: bytes = b"__CHECKRUN_LIVE__1\n",
    exit_after: bool = False,
) -> Path:
    """An executable at `path` to use as ansible_python_interpreter of a kept connection."""
    path.write_text(
        LIVE_SCRIPT.format(
            python=sys.executable,
            max_output=MAX_OUTPUT_BYTES,
            expression=expression,
            greeting=greeting,
            exit_after=exit_after,
        )
    )
    path.chmod(0o755)
    return path
