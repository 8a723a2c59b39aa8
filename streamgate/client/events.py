"""What a stream yields: events, and what happened to the connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Disconnected", "Event", "Reconnected", "StreamItem"]


@dataclass(frozen=True)
class Event:
    """One event frame as received.

    ``topic`` is the stream topic (``trade/0xabc...``, ``order``) or, on a push socket,
    the event name (``deposit.completed``). ``data`` is the payload exactly as the wire
    gave it: numbers that a float cannot hold are ``core.exact_json.JsonNumber``.
    ``seq`` is the payload's ``seq`` when it has one (market data); ``offset`` and
    ``epoch`` are the envelope's resume position (PROTOCOL.md section 3).
    """

    topic: str
    data: Any
    offset: int | None
    epoch: str | None
    seq: int | None
    received_at: float
    raw: bytes | str


@dataclass(frozen=True)
class Reconnected:
    """Yielded after a reconnect, once every topic is resubscribed.

    ``recovered`` is False when some topic's missed events could not be replayed
    (history too old, or another epoch); ``not_recovered`` names those topics.
    """

    attempt: int
    recovered: bool
    not_recovered: tuple[str, ...]


@dataclass(frozen=True)
class Disconnected:
    """Yielded when the connection drops; ``retry_in`` is None when it will not retry."""

    code: int | None
    reason: str
    retry_in: float | None


StreamItem = Event | Reconnected | Disconnected
