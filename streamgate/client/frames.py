"""Frames as the SDK reads them: JSON objects with exact numbers, events, the item queue."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from streamgate.client.errors import ProtocolError
from streamgate.client.events import Event, StreamItem
from streamgate.core import exact_json

__all__ = ["ItemQueue", "decode_frame", "parse_event"]


def decode_frame(raw: bytes | str) -> dict[str, Any]:
    """Decode one JSON object frame, numbers exact.

    Raises:
        ProtocolError: not JSON, or not an object.
    """
    try:
        frame = exact_json.loads(raw.encode() if isinstance(raw, str) else raw)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {raw[:200]!r}") from exc
    if not isinstance(frame, dict):
        raise ProtocolError(f"not a JSON object: {raw[:200]!r}")
    return frame


def parse_event(frame: dict[str, Any], raw: bytes | str, *, topic_key: str = "topic") -> Event:
    """Build an :class:`Event` from a decoded event frame (stream or push)."""
    data = frame.get("data")
    seq = data.get("seq") if isinstance(data, dict) else None
    offset, epoch = frame.get("offset"), frame.get("epoch")
    return Event(
        topic=str(frame.get(topic_key)),
        data=data,
        offset=offset if isinstance(offset, int) else None,
        epoch=epoch if isinstance(epoch, str) else None,
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        received_at=time.time(),
        raw=raw,
    )


class ItemQueue:
    """What a client's iterator yields: an unbounded FIFO with an end marker."""

    def __init__(self) -> None:
        self._items: deque[StreamItem] = deque()
        self._wake = asyncio.Event()
        self.ended = False

    def put(self, item: StreamItem) -> None:
        self._items.append(item)
        self._wake.set()

    def end(self) -> None:
        self.ended = True
        self._wake.set()

    async def get(self) -> StreamItem | None:
        while not self._items:
            if self.ended:
                return None
            self._wake.clear()
            await self._wake.wait()
        return self._items.popleft()
