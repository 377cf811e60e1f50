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
