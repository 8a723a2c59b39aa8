"""Push protocol, sans-I/O (PROTOCOL.md section 1): tickets in, ``{event, data, ts}`` out.

The socket is read-only: the server speaks, the client only answers WebSocket pings.
Close codes (``protocol/close.py``): 4001 ``Missing token`` / ``Invalid token``, 4002
``Read-only``, and the extensions 4008 ``Too many``, 4009 ``Slow consumer``, 1012 on drain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from streamgate.core import exact_json
from streamgate.core.publication import Publication, StreamPosition

__all__ = [
    "BEARER_PREFIX",
    "PUSH_PURPOSE",
    "SCOPES",
    "BadResume",
    "encode_connected",
    "encode_push",
    "parse_resume",
    "ticket_from",
]

PUSH_PURPOSE = "ws-push"
SCOPES = ("deposit", "trade", "market")
BEARER_PREFIX = "bearer."


class BadResume(ValueError):
    """``offset``/``epoch`` in the query are malformed (answered with HTTP 400)."""


def ticket_from(
    subprotocols: Sequence[str], query_token: str | None
) -> tuple[str | None, str | None]:
    """Find the ticket: the ``bearer.<jwt>`` subprotocol first, else ``?token=``.

    Returns ``(ticket, subprotocol)``: the subprotocol the answer must select so that a
    browser accepts the handshake (None when the ticket came in the query).
    """
    for offered in subprotocols:
        if offered.startswith(BEARER_PREFIX) and len(offered) > len(BEARER_PREFIX):
            return offered[len(BEARER_PREFIX) :], offered
    if query_token:
        return query_token, None
    return None, None


def parse_resume(query: Mapping[str, Sequence[str]]) -> StreamPosition | None:
    """Read ``?offset=N&epoch=E`` (both or neither; N an integer >= 0).

    Raises:
        BadResume: one without the other, or an offset that is not an integer >= 0.
    """
    offsets, epochs = query.get("offset"), query.get("epoch")
    if not offsets and not epochs:
        return None
    if not offsets or not epochs:
        raise BadResume("offset and epoch go together")
    raw = offsets[0]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise BadResume("offset must be an integer >= 0")
    return StreamPosition(int(raw), epochs[0])


def encode_connected(user_id: str, ts_ms: int, recovered: bool | None) -> bytes:
    data: dict[str, Any] = {"userId": user_id}
    if recovered is not None:
        data["recovered"] = recovered
    return orjson.dumps({"event": "connected", "data": data, "ts": ts_ms})


def encode_push(pub: Publication) -> bytes:
    """Encode one push: ``pub.data`` is ``{"event": name, "data": {...}}``."""
    payload = pub.data
    return exact_json.dumps(
        {
            "event": payload["event"],
            "data": payload["data"],
            "ts": pub.ts_ms,
            "offset": pub.offset,
            "epoch": pub.epoch,
        }
    )
