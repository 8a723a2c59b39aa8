"""What flows through the hub: publications and stream positions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Publication", "StreamPosition"]


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A point in one stream: the last ``offset`` seen within ``epoch``.

    Offsets from one epoch mean nothing in another (PROTOCOL.md section 3).
    """

    offset: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Publication:
    """One event of one channel, as the broker numbered it.

    ``data`` is the JSON-ready payload exactly as it goes to clients; the hub never
    looks inside it except for order-book channels.
    """

    channel: str
    offset: int
    epoch: str
    data: Any
    ts_ms: int

    @property
    def position(self) -> StreamPosition:
        return StreamPosition(self.offset, self.epoch)
