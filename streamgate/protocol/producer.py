"""Producer API wire format, sans-I/O: a ``POST /api/v1/publish`` body in, events out.

:func:`parse_batch` checks the whole batch before anything is published and raises
:class:`~streamgate.errors.ProducerRefusal` naming the first bad event (``index``) and
field (``field``, a dotted path into the event). The gateway fills ``market_addr``,
``timestamp`` and ``timestamp_ms`` when absent (PROTOCOL.md section 4) and puts each
side of a book in ascending price order. Unknown fields are refused, not dropped, so
a producer's typo never reaches clients silently.

This module dispatches each event by kind and keeps the entry points; the kinds are
checked in :mod:`~streamgate.protocol.market_events`, :mod:`~streamgate.protocol.private_events`
and :mod:`~streamgate.protocol.push_events`, with the field checkers they share in
:mod:`~streamgate.protocol.fields`.

Private events (``order``, ``fill``, ``position`` with a ``user_id``) carry an array of
OrderResponse, FillResponse or PositionResponse objects (PROTOCOL.md section 2), each
checked field by field, stamped like market events, and owned by ``user_id`` (an
order's or position's ``user_addr``, a fill's ``maker_addr`` or ``taker_addr``); they
go to the user's channel (:func:`~streamgate.core.channels.private_channel`).

Push events (``{"event", "tenant", "sub_user", "data", "idempotency_key"?}``, PROTOCOL.md
sections 1 and 4) have their ``data`` checked against the event's shape in the Events
table (both deposit variants, the Trade object for ``trade.<status>``, ``system.notice``)
and normalized to the table's key order. A push :class:`ProducerEvent` has:

- ``channel``: :func:`~streamgate.core.channels.push_channel` ``(tenant, sub_user)``; for
  a ``system.notice`` without ``sub_user``, :func:`~streamgate.core.channels.push_tenant_prefix`
  ``(tenant)`` instead (:func:`~streamgate.core.channels.is_push_tenant_wide` tells it):
  the publisher (:mod:`streamgate.publisher`) expands it into one push channel per
  connected sub-user of the tenant (through the cluster-wide presence) before publishing,
  never publishes it as it is;
- ``data``: ``{"event": <event name>, "data": <normalized data>}``, which the push
  encoder turns into the client frame ``{"event", "data", "ts"}``.

Refusal codes: ``INVALID_JSON``, ``INVALID_BATCH`` (``events`` missing, empty or over
the limit), ``INVALID_EVENT`` (a field; ``field`` names it), ``UNKNOWN_TOPIC``,
``UNKNOWN_EVENT`` (a push event name not in the table; ``field`` is ``event``);
:func:`check_book_sequences` adds ``NO_BOOK`` and ``SEQ_GAP`` (409).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streamgate.core import exact_json
from streamgate.core.books import check_chain
from streamgate.core.identifiers import MAX_SUB_USER, MAX_USER_ID
from streamgate.errors import BookRefused, ProducerRefusal
from streamgate.protocol.fields import FieldError
from streamgate.protocol.market_events import market_event
from streamgate.protocol.private_events import (
    MAX_PRIVATE_ITEMS,
    ORDER_STATUSES,
    private_event,
)
from streamgate.protocol.push_events import (
    DEPOSIT_FAILED_STATUSES,
    MAX_TRADE_ITEMS,
    NOTICE_SEVERITIES,
    PUSH_EVENTS,
    TENANT_WIDE_EVENTS,
    TRADE_ITEM_ERROR_CODES,
    TRADE_ITEM_STATUSES,
    TRADE_STATUSES,
    push_event,
)
from streamgate.protocol.topics import is_private_topic, is_public_topic

# The event kinds' constants are re-exported: this module is the producer API's surface.
__all__ = [
    "DEPOSIT_FAILED_STATUSES",
    "MAX_EVENTS",
    "MAX_PRIVATE_ITEMS",
    "MAX_SUB_USER",
    "MAX_TRADE_ITEMS",
    "MAX_USER_ID",
    "NOTICE_SEVERITIES",
    "ORDER_STATUSES",
    "PUSH_EVENTS",
    "TENANT_WIDE_EVENTS",
    "TRADE_ITEM_ERROR_CODES",
    "TRADE_ITEM_STATUSES",
    "TRADE_STATUSES",
    "ProducerEvent",
    "book_refusal",
    "check_book_sequences",
    "parse_batch",
]

MAX_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class ProducerEvent:
    """One validated event: the channel it goes to and its client-ready data.

    For a push event ``data`` is ``{"event": name, "data": {...}}`` and ``channel`` a
    push channel, or a tenant-wide prefix the server expands (see the module docstring).
    """

    index: int
    channel: str
    data: Any
    idempotency_key: str | None


def parse_batch(body: bytes, *, now_ms: int, max_events: int = MAX_EVENTS) -> list[ProducerEvent]:
    """Validate a publish body and return its events, normalized.

    Raises:
        ProducerRefusal: the first problem found; nothing of the batch may be published.
    """
    try:
        doc = exact_json.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProducerRefusal("INVALID_JSON", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ProducerRefusal("INVALID_BATCH", "the body must be an object", field="events")
    events = doc.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= max_events:
        raise ProducerRefusal(
            "INVALID_BATCH",
            f"events must be an array of 1..{max_events} events",
            field="events",
        )
    extra = set(doc) - {"events"}
    if extra:
        raise ProducerRefusal(
            "INVALID_BATCH", f"unknown field {sorted(extra)[0]!r}", field=sorted(extra)[0]
        )
    out = []
    for index, event in enumerate(events):
        try:
            out.append(_event(index, event, now_ms))
        except FieldError as bad:
            raise ProducerRefusal(bad.code, bad.message, index=index, field=bad.field) from None
    return out


def check_book_sequences(
    events: Sequence[ProducerEvent], book_seq: Callable[[str], int | None]
) -> None:
    """Check that each order-book delta follows its book (``seq == book.seq + 1``).

    ``book_seq`` returns a channel's current seq (None: no snapshot yet). Events of one
    batch chain: a snapshot sets the seq the next delta must follow.

    Raises:
        ProducerRefusal: ``NO_BOOK`` or ``SEQ_GAP`` with status 409.
    """
    try:
        check_chain(((ev.channel, ev.data) for ev in events), book_seq)
    except BookRefused as exc:
        raise book_refusal(exc, events[exc.position].index) from None


def book_refusal(exc: BookRefused, index: int) -> ProducerRefusal:
    """The 409 answer to a delta that does not follow its book (event ``index``)."""
    return ProducerRefusal(exc.code, exc.detail, index=index, field=exc.field, status=409)


# -- one event --------------------------------------------------------------------------


def _event(index: int, event: Any, now_ms: int) -> ProducerEvent:
    if not isinstance(event, dict):
        raise FieldError("", "each event must be an object")
    key = event.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= 256):
        raise FieldError("idempotency_key", "idempotency_key must be a string of 1..256 characters")
    data: Any
    if "event" in event:
        channel, data = push_event(event)
    else:
        topic = event.get("topic")
        if not isinstance(topic, str):
            raise FieldError(
                "topic",
                "topic (orderbook/<m>, trade/<m>, ticker/<m>, order, fill or position) "
                "or event (a push event name) is required",
                "UNKNOWN_TOPIC",
            )
        if is_private_topic(topic):
            channel, data = private_event(event, topic, now_ms)
        elif is_public_topic(topic):
            channel, data = topic, market_event(event, topic, now_ms)
        else:
            raise FieldError("topic", f"unknown topic {topic!r}", "UNKNOWN_TOPIC")
    return ProducerEvent(index, channel, data, key)
