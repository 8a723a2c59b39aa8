"""JSON Schemas of ``POST /api/v1/publish`` request bodies (PROTOCOL.md section 4).

What a producer sends: the stream data of :mod:`streamgate.spec.schemas` with the fields
the gateway fills made optional (``market_addr``, the timestamps, ``matched_at``, a
position's ``entry_price``), and push events whose ``data`` is delivered as sent.
"""

from __future__ import annotations

from typing import Any

from streamgate.spec.asyncapi import PUSH_EVENTS
from streamgate.spec.schemas import STREAM_DATA, Schema, closed, ref

__all__ = ["PRODUCER_ERROR_CODES", "PRODUCER_SCHEMAS"]

PRODUCER_ERROR_CODES = (
    "UNAUTHORIZED",
    "INVALID_JSON",
    "INVALID_BATCH",
    "UNKNOWN_TOPIC",
    "UNKNOWN_EVENT",
    "INVALID_EVENT",
    "NO_BOOK",
    "SEQ_GAP",
    "PAYLOAD_TOO_LARGE",
    "UNAVAILABLE",
)

# Characters an id that becomes part of a channel name must not hold: whitespace, control
# and the common invisible format characters (the server refuses every Unicode Cc, Cf, Z*)
# and ':'. ECMA-262 and Python regular expressions read this class alike.
_ID_CHARS = (
    r"[^\s:\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    r"\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)


def _id(max_length: int, description: str) -> Schema:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": f"^{_ID_CHARS}+$",
        "description": description,
    }


def _relaxed(name: str, *fillable: str) -> Schema:
    """The stream data ``name`` with ``fillable`` members optional."""
    schema = STREAM_DATA[name]
    required = [r for r in schema["required"] if r not in fillable]
    return {**schema, "required": required}


def _with(schema: Schema, **extra: Schema) -> Schema:
    return {**schema, "properties": {**schema["properties"], **extra}}


_STAMPS = ("timestamp", "timestamp_ms")
_IDEMPOTENCY = {
    "type": ["string", "null"],
    "minLength": 1,
    "maxLength": 256,
    "description": "a repeat within idempotency_window is not delivered again; null: none",
}
_TOPIC = {
    "orderbook": "^orderbook/[^/\\s]+$",
    "trade": "^trade/[^/\\s]+$",
    "ticker": "^ticker/[^/\\s]+$",
}


def _market(kind: str, data: Schema) -> Schema:
    return closed(
        {
            "topic": {"type": "string", "pattern": _TOPIC[kind]},
            "data": data,
            "idempotency_key": _IDEMPOTENCY,
        },
        optional=("idempotency_key",),
    )


def _private(topic: str, item: str) -> Schema:
    return closed(
        {
            "topic": {"const": topic},
            "user_id": _id(256, "the user whose stream this goes to; compared exactly"),
            "data": {"type": "array", "items": ref(item), "minItems": 1, "maxItems": 1000},
            "idempotency_key": _IDEMPOTENCY,
        },
        optional=("idempotency_key",),
    )


def _push(event: str, data: Schema) -> Schema:
    tenant_wide = event == "system.notice"
    return closed(
        {
            "event": {"const": event},
            "tenant": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
            "sub_user": _id(
                128,
                "the sub-user (On-Behalf-Of)"
                + ("; absent: every sub-user of the tenant connected now" if tenant_wide else ""),
            ),
            "data": data,
            "idempotency_key": _IDEMPOTENCY,
        },
        optional=("sub_user", "idempotency_key") if tenant_wide else ("idempotency_key",),
    )


def _book_input(name: str) -> Schema:
    """The book data without ``checksum``: the gateway computes it, a producer never sends it."""
    schema = _relaxed(name, "market_addr", *_STAMPS, "matched_at")
    props = {k: v for k, v in schema["properties"].items() if k != "checksum"}
    required = [r for r in schema["required"] if r != "checksum"]
    return {**schema, "required": required, "properties": props}


_TRADE_INPUT = _relaxed("Trade", "timestamp")
_TRADES_INPUT = _with(
    _relaxed("AggregatedTrades", "type", "market_addr"),
    trades={"type": "array", "items": ref("TradeInput"), "minItems": 1},
)
_TICKER_INPUT = _relaxed("TickerSnapshot", "type", "market_addr", "ts")

_EVENTS: dict[str, Schema] = {
    "OrderbookPublish": _market(
        "orderbook", {"anyOf": [ref("OrderbookSnapshotInput"), ref("OrderbookDeltaInput")]}
    ),
    "TradePublish": _market("trade", ref("AggregatedTradesInput")),
    "TickerPublish": _market("ticker", ref("TickerSnapshotInput")),
    "OrderPublish": _private("order", "OrderInput"),
    "FillPublish": _private("fill", "FillInput"),
    "PositionPublish": _private("position", "PositionInput"),
    **{
        "Publish" + "".join(p.capitalize() for p in event.split(".")): _push(event, data)
        for event, data in PUSH_EVENTS.items()
    },
}

PRODUCER_SCHEMAS: dict[str, Any] = {
    "OrderbookSnapshotInput": _book_input("OrderbookSnapshot"),
    "OrderbookDeltaInput": _book_input("OrderbookDelta"),
    "TradeInput": _TRADE_INPUT,
    "AggregatedTradesInput": _TRADES_INPUT,
    "TickerSnapshotInput": _TICKER_INPUT,
    "OrderInput": _relaxed("OrderResponse", *_STAMPS, "stop_loss", "take_profit"),
    "FillInput": _relaxed("FillResponse", *_STAMPS),
    "PositionInput": _relaxed("PositionResponse", *_STAMPS, "entry_price"),
    **_EVENTS,
    "PublishEvent": {"anyOf": [ref(name) for name in _EVENTS]},
    "PublishRequest": closed(
        {
            "events": {
                "type": "array",
                "items": ref("PublishEvent"),
                "minItems": 1,
                "maxItems": 1000,
                "description": "checked whole before anything of it is published",
            }
        }
    ),
    "PublishAccepted": closed(
        {
            "accepted": {"type": "integer", "minimum": 0},
            "duplicates": {
                "type": "integer",
                "minimum": 0,
                "description": "events skipped for an idempotency key seen before",
            },
        }
    ),
    "ProducerError": closed(
        {
            "error": closed(
                {
                    "code": {"type": "string", "enum": list(PRODUCER_ERROR_CODES)},
                    "message": {"type": "string"},
                    "index": {
                        "type": ["integer", "null"],
                        "minimum": 0,
                        "description": "the first bad event, or null",
                    },
                    "field": {
                        "type": ["string", "null"],
                        "description": "a dotted path into that event, or null",
                    },
                }
            )
        }
    ),
}
