"""The Flusher's adaptive hold (issue 14): nothing waits under light load; a frame queued
soon after a saturated pass waits ``write_delay``, so the frames queued meanwhile share a
write."""

from __future__ import annotations

import asyncio
import time
from typing import cast

from streamgate.hub.queue import WriteQueue
from streamgate.server.websocket import Flusher, WsConnection


class Recorder:
    """Stands in for a connection: records when it was flushed; may take ``cost`` seconds."""

    def __init__(self, passes: list[float], cost: float = 0.0) -> None:
        self.passes = passes
        self.cost = cost
        self.queue = WriteQueue(1024)  # the pass samples one queue's size

    def flush(self) -> None:
        self.passes.append(time.monotonic())
        end = time.perf_counter() + self.cost
        while time.perf_counter() < end:  # a write's system call, in a saturated pass
            pass


def _conn(recorder: Recorder) -> WsConnection:
    return cast(WsConnection, recorder)


async def _marked_and_flushed(flusher: Flusher, *recorders: Recorder) -> float:
    """Mark ``recorders``; return how long until the last of them was flushed."""
    marked = time.monotonic()
    before = [len(r.passes) for r in recorders]
    for r in recorders:
        flusher.mark(_conn(r))
    for _ in range(200):  # at most 2 s
        if all(len(r.passes) > n for r, n in zip(recorders, before, strict=True)):
            break
        await asyncio.sleep(0.01)
    return max(r.passes[-1] for r in recorders) - marked


async def test_without_a_delay_every_pass_runs_on_the_next_loop_turn() -> None:
    flusher = Flusher(asyncio.get_running_loop(), write_delay=0.0)
    passes: list[float] = []
    slow = Recorder(passes, cost=0.005)
    await _marked_and_flushed(flusher, slow)
    assert await _marked_and_flushed(flusher, slow) < 0.02


async def test_short_passes_never_wait() -> None:
    flusher = Flusher(asyncio.get_running_loop(), write_delay=0.2, busy_after=0.01)
    passes: list[float] = []
    quick = Recorder(passes)
    for _ in range(5):
        assert await _marked_and_flushed(flusher, quick) < 0.1


async def test_after_a_saturated_pass_the_next_waits_and_takes_what_queued_meanwhile() -> None:
    flusher = Flusher(asyncio.get_running_loop(), write_delay=0.2, busy_after=0.002)
    first: list[float] = []
    second: list[float] = []
    slow, other = Recorder(first, cost=0.005), Recorder(second)
    await _marked_and_flushed(flusher, slow)  # a pass of 5 ms: saturated
    ended = time.monotonic()
    flusher.mark(_conn(slow))
    await asyncio.sleep(0.05)
    assert len(first) == 1, "held: the next pass waits for write_delay"
    flusher.mark(_conn(other))  # queued meanwhile: leaves in the same pass
    for _ in range(100):
        if len(first) == 2 and second:
            break
        await asyncio.sleep(0.01)
    assert len(first) == 2 and len(second) == 1
    assert first[1] - ended >= 0.19 and abs(second[0] - first[1]) < 0.01
    # The hold is bounded: once write_delay has passed, a new frame goes out at once.
    await asyncio.sleep(0.25)
    assert await _marked_and_flushed(flusher, other) < 0.1
