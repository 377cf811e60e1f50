"""The frames of kept connections, read as data (transport/live.py's FrameReader): a recorded
answer of a real live target, fed whole and byte by byte, and every way a hostile target can
break a frame."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from pathlib import Path

import pytest

from checkrunner.errors import ProtocolError
from checkrunner.transport import ExecResult, read_answer
from checkrunner.transport.answer import RESULT_MARKER
from checkrunner.transport.live import (
    FRAME_HEADER,
    LIVE_GREETING,
    MAX_NOISE_BYTES,
    RETIRING,
    FrameReader,
    encode_frame,
)

RECORDED = Path(__file__).parent / "fixtures" / "live" / "memory_load_round.json"


def recorded() -> tuple[bytes, list[str]]:
    data = json.loads(RECORDED.read_text())
    return base64.b64decode(data["stdout_base64"]), data["ids"]


def frame_of(compressed: bytes) -> bytes:
    return FRAME_HEADER.pack(len(compressed), 0) + compressed


def frames_of(reader: FrameReader) -> list:
    found = []
    while (frame := reader.next_frame()) is not None:
        found.append(frame)
    return found


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_a_recorded_answer_parses_in_any_chunking(chunk: int):
    stream, ids = recorded()
    reader = FrameReader()
    frames = []
    for start in range(0, len(stream), chunk):
        reader.feed(stream[start : start + chunk])
        frames += frames_of(reader)
    (frame,) = frames
    assert frame.flags == 0 and reader.buffered == 0 and reader.received == len(stream)
    stdout = RESULT_MARKER.encode() + frame.body + b"\n"
    entries = read_answer(ExecResult(0, stdout, b""), ids)
    assert entries["0.0"]["result"]["measurements"]["total"] > 0
    assert set(json.loads(frame.body)) >= {"version", "pid", "results"}


def test_frames_follow_each_other_and_keep_their_flags():
    reader = FrameReader()
    reader.feed(LIVE_GREETING + encode_frame(b'{"a": 1}') + encode_frame(b"{}", RETIRING)[:3])
    assert [f.body for f in frames_of(reader)] == [b'{"a": 1}']
    assert reader.buffered == 3  # an answer has begun
    reader.feed(encode_frame(b"{}", RETIRING)[3:])
    (last,) = frames_of(reader)
    assert (last.flags, last.body) == (RETIRING, b"{}")


def test_noise_before_the_greeting_is_skipped_up_to_a_bound():
    reader = FrameReader()
    reader.feed(b"x" * MAX_NOISE_BYTES)
    assert reader.next_frame() is None
    reader.feed(LIVE_GREETING + encode_frame(b"{}"))
    assert frames_of(reader)[0].body == b"{}"
    flooded = FrameReader()
    flooded.feed(b"x" * (MAX_NOISE_BYTES + 1))
    with pytest.raises(ProtocolError, match="without the live greeting"):
        flooded.next_frame()


@pytest.mark.parametrize(
    ("after_greeting", "problem"),
    [
        (FRAME_HEADER.pack(2**31, 0), "announced a frame of 2147483648 bytes"),
        (FRAME_HEADER.pack(4, 0) + b"abcd", "unreadable frame"),
        (frame_of(zlib.compress(b"{}")[:-2]), "not one whole"),
        (frame_of(zlib.compress(b"{}") + b"tail"), "not one whole"),
    ],
)
def test_broken_frames_are_protocol_errors(after_greeting: bytes, problem: str):
    reader = FrameReader()
    reader.feed(LIVE_GREETING + after_greeting)
    with pytest.raises(ProtocolError, match=problem):
        reader.next_frame()


def test_a_frame_that_inflates_past_the_limit_is_refused_without_inflating_it_all():
    bomb = zlib.compress(b" " * (1024**2 + 1), 9)
    reader = FrameReader(max_body=1024**2)
    reader.feed(LIVE_GREETING + struct.pack(">IB", len(bomb), 0) + bomb)
    with pytest.raises(ProtocolError, match="more than 1 MiB"):
        reader.next_frame()
