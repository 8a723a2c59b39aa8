"""``GET /api/v1/history``: the recent events of a public topic, as the stream sends them.

A page or bot that opens a market wants its recent trades at once (a trade tape that is
not empty until the next trade), then the live stream without a gap or a repeat. This
answers ``{"topic", "epoch", "offset", "events": [...]}`` with up to ``limit`` events
(oldest first) that history still holds, each the very frame ``/ws/public`` sends
(``op: event`` with ``offset``, ``epoch``, ``server_ts_ms``). The client then subscribes
with ``resume`` from the last event's ``offset`` and ``epoch`` (or from ``offset`` and
``epoch`` when ``events`` is empty): the replay continues exactly where this ended
(PROTOCOL.md section 3; the endpoint is an extension, docs/protocol-notes.md).
"""

from __future__ import annotations

from typing import Protocol

import orjson

from streamgate.core.publication import Publication, StreamPosition
from streamgate.errors import BrokerUnavailable, HttpRefusal
from streamgate.protocol.stream import encode_event
from streamgate.protocol.topics import is_public_topic
from streamgate.server.errors import RETRY_SOON, http_error, refusal_response
from streamgate.server.messages import HttpRequest, HttpResponse

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "HistoryEndpoint", "RecentSource"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 100


class RecentSource(Protocol):
    """The part of a broker this endpoint reads."""

    async def position(self, channel: str) -> StreamPosition: ...

    async def latest(self, channel: str, limit: int) -> list[Publication]: ...


_UNAVAILABLE = HttpRefusal(
    "UNAVAILABLE", "history is unavailable; retry", status=503, headers=RETRY_SOON
)


class HistoryEndpoint:
    """Serves recent events of public topics from the broker's history."""

    def __init__(self, source: RecentSource) -> None:
        self._source = source

    async def handle(self, request: HttpRequest) -> HttpResponse:
        topic = request.query_one("topic")
        if topic is None or not is_public_topic(topic):
            return http_error(
                400,
                "INVALID_TOPIC",
                "topic must be a public topic: orderbook/<m>, trade/<m>, ticker/<m>",
            )
        raw = request.query_one("limit")
        limit = DEFAULT_LIMIT
        if raw is not None:
            if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
                return http_error(400, "INVALID_FIELD", f"limit must be an integer 1..{MAX_LIMIT}")
            limit = int(raw)
        try:
            # The position first: events published meanwhile are in the answer, so a
            # resume from its last event (or from this position) misses nothing.
            position = await self._source.position(topic)
            pubs = await self._source.latest(topic, limit)
        except BrokerUnavailable:
            return refusal_response(_UNAVAILABLE)
        head = orjson.dumps({"topic": topic, "epoch": position.epoch, "offset": position.offset})
        frames = b",".join(encode_event(topic, pub) for pub in pubs)
        return HttpResponse(200, head[:-1] + b',"events":[' + frames + b"]}")
