"""JSON Schemas of the wire formats, shared by the AsyncAPI and the OpenAPI document.

Written in the subset on which JSON Schema draft-07 (AsyncAPI 3.0's schema format) and
2020-12 (OpenAPI 3.1's) agree: no tuple ``items``, no ``$defs``, nothing beside a
``$ref``. References point at ``#/components/schemas/<Name>``, which both documents
have. A field the source documents do not have (PROTOCOL.md "extension") carries
``"x-extension": true`` and a description that begins "Extension:".

Types follow the platforms' own (PROTOCOL.md, CLIENTS.md): prices and sizes are scaled
integers, trade ids unsigned 64-bit integers or strings, push amounts JSON numbers or
decimal strings as the producer sent them.
"""

from __future__ import annotations

from typing import Any

from streamgate.protocol.market_events import TICKER_NUMBERS
from streamgate.protocol.private_events import ORDER_STATUSES
from streamgate.protocol.push_events import TRADE_ITEM_ERROR_CODES, TRADE_STATUSES

__all__ = [
    "PUSH_DATA",
    "STREAM_DATA",
    "Schema",
    "closed",
    "ext",
    "nullable",
    "ref",
]

Schema = dict[str, Any]

# -- building blocks ---------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def ext(schema: Schema, text: str) -> Schema:
    """Mark ``schema`` as an extension of the source documents."""
    base = {"allOf": [schema]} if "$ref" in schema else dict(schema)
    return {**base, "x-extension": True, "description": f"Extension: {text}"}


def nullable(schema: Schema) -> Schema:
    """``schema`` or null."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = {**schema, "type": [schema["type"], "null"]}
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def closed(
    props: dict[str, Schema], *, optional: tuple[str, ...] = (), description: str = ""
) -> Schema:
    """An object with exactly these members, all required but ``optional``."""
    unknown = set(optional) - set(props)
    assert not unknown, unknown
    out: Schema = {"type": "object"}
    if description:
        out["description"] = description
    # required before properties: a validator trying alternatives rejects one at once
    out["required"] = [name for name in props if name not in optional]
    out["properties"] = props
    out["additionalProperties"] = False
    return out


def const(value: str) -> Schema:
    return {"type": "string", "const": value}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def text(description: str = "", *, max_length: int | None = None) -> Schema:
    out: Schema = {"type": "string", "minLength": 1}
    if max_length is not None:
        out["maxLength"] = max_length
    if description:
        out["description"] = description
    return out


def integer(description: str = "", *, minimum: int | None = None) -> Schema:
    out: Schema = {"type": "integer"}
    if minimum is not None:
        out["minimum"] = minimum
    if description:
        out["description"] = description
    return out


def number(description: str = "") -> Schema:
    return {"type": "number", **({"description": description} if description else {})}


def array(items: Schema, *, min_items: int = 0, max_items: int | None = None) -> Schema:
    out: Schema = {"type": "array", "items": items}
    if min_items:
        out["minItems"] = min_items
    if max_items is not None:
        out["maxItems"] = max_items
    return out


UINT64_MAX = 2**64 - 1
SEQ = integer("sequence number", minimum=0)
SECONDS = integer("Unix seconds (deprecated; use timestamp_ms)", minimum=0)
MILLIS = integer("Unix milliseconds", minimum=0)
PRICE = integer("price, an integer scaled per market", minimum=0)
SIDE = enum("buy", "sell")
BOOL = {"type": "boolean"}

# -- stream protocol data (PROTOCOL.md section 2), as the gateway sends it -----------------------

_LEVEL = {
    "type": "array",
    "description": "[price, size]: integers scaled per market; size 0 deletes the level",
    "items": {"type": "integer", "minimum": 0},
    "minItems": 2,
    "maxItems": 2,
}
_SNAPSHOT_LEVEL = {
    "type": "array",
    "description": "[price, size]: positive integers scaled per market",
    "items": {"type": "integer", "minimum": 1},
    "minItems": 2,
    "maxItems": 2,
}


def _book(kind: str, level: Schema, what: str) -> Schema:
    return closed(
        {
            "type": const(kind),
            "market_addr": text(),
            "seq": integer("strictly increasing within the book", minimum=0),
            "asks": array(level) | {"description": f"{what}, ascending by price"},
            "bids": array(level) | {"description": f"{what}, ascending by price"},
            "timestamp": SECONDS,
            "timestamp_ms": MILLIS,
            "matched_at": integer(
                "the matching time, Unix milliseconds (the gateway fills it with "
                "timestamp_ms when the producer gives none)",
                minimum=0,
            ),
            "checksum": integer(
                "extension: CRC32 (unsigned) of the book's top 25 levels per side after this "
                "event, best first, as 'bid:size:ask:size:...' (docs/protocol-notes.md, "
                "Book checksum)",
                minimum=0,
            )
            | {"maximum": 2**32 - 1},
        }
    )


TRADE_ID: Schema = {
    "description": (
        "stable when replayed: an unsigned 64-bit integer (the stream's trade documentation) "
        "or a non-empty string, passed on exactly as the producer sent it"
    ),
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": UINT64_MAX},
        {"type": "string", "minLength": 1},
    ],
}

_PNL = integer("quote amount, signed, scaled like margin")
_PROTECTIVE = nullable(integer("a price, or null when unset", minimum=0))
_OPTIONAL_NUMBER = nullable(number())

STREAM_DATA: dict[str, Schema] = {
    "OrderbookSnapshot": _book("orderbook_snapshot", _SNAPSHOT_LEVEL, "every level"),
    "OrderbookDelta": _book("orderbook_delta", _LEVEL, "changed levels"),
    "TradeId": TRADE_ID,
    "Trade": closed(
        {
            "id": ref("TradeId"),
            "side": SIDE,
            "price": integer(minimum=1),
            "size": integer(minimum=1),
            "seq": SEQ,
            "timestamp": SECONDS,
        }
    ),
    "AggregatedTrades": closed(
        {
            "type": const("trades"),
            "market_addr": text(),
            "seq": SEQ,
            "trades": array(ref("Trade"), min_items=1),
            "timestamp": SECONDS,
            "timestamp_ms": MILLIS,
        },
        optional=("timestamp", "timestamp_ms"),
        description="timestamp and timestamp_ms are present only when the producer sent them",
    ),
    "TickerSnapshot": closed(
        {
            "type": const("ticker"),
            "symbol": text(),
            "market_addr": text(),
            "ts": MILLIS,
            **{name: number() for name in TICKER_NUMBERS},
        }
    ),
    "OrderResponse": closed(
        {
            "sid": text(),
            "side": SIDE,
            "size": integer(minimum=0),
            "price": PRICE,
            "leverage": {"type": "number", "exclusiveMinimum": 0},
            "type": text(),
            "status": enum(*ORDER_STATUSES),
            "user_addr": text(),
            "market_addr": text(),
            "seq": SEQ,
            "timestamp": SECONDS,
            "timestamp_ms": MILLIS,
            "stop_loss": _PROTECTIVE,
            "take_profit": _PROTECTIVE,
        }
    ),
    "FillResponse": closed(
        {
            "sid": text(),
            "side": SIDE,
            "size": integer(minimum=0),
            "price": PRICE,
            "maker_fee": number("negative: a rebate"),
            "taker_fee": number("negative: a rebate"),
            "taker_order_sid": text(),
            "taker_addr": text(),
            "maker_order_sid": text(),
            "maker_addr": text(),
            "market_addr": text(),
            "seq": SEQ,
            "maker_leverage": number(),
            "taker_leverage": number(),
            "maker_is_cross": BOOL,
            "taker_is_cross": BOOL,
            "timestamp": SECONDS,
            "timestamp_ms": MILLIS,
        }
    ),
    "PositionResponse": closed(
        {
            "sid": text(),
            "market_addr": text(),
            "user_addr": text(),
            "size": integer("signed: negative is short"),
            "price": integer("the entry price", minimum=0),
            "entry_price": integer("equals price (hummingbot's connector reads it)", minimum=0),
            "margin": integer(),
            "funding_index": number(),
            "epoch": integer(),
            "is_cross": BOOL,
            "initial_margin": _OPTIONAL_NUMBER,
            "initial_margin_mark": _OPTIONAL_NUMBER,
            "maintenance_margin": _OPTIONAL_NUMBER,
            "leverage": _OPTIONAL_NUMBER,
            "liq_price": _OPTIONAL_NUMBER,
            "mark_price": PRICE,
            "seq": SEQ,
            "side": {**SIDE, "description": '"buy" is a long position, "sell" a short'},
            "unrealized_pnl": _PNL,
            "realized_pnl_delta": nullable(_PNL),
            "realized_pnl_cum": nullable(_PNL),
            "stop_loss": _PROTECTIVE,
            "take_profit": _PROTECTIVE,
            "timestamp": SECONDS,
            "timestamp_ms": MILLIS,
        },
        optional=(
            "initial_margin",
            "initial_margin_mark",
            "maintenance_margin",
            "leverage",
            "liq_price",
            "realized_pnl_delta",
            "realized_pnl_cum",
            "stop_loss",
            "take_profit",
        ),
    ),
}

# -- push protocol data (PROTOCOL.md section 1): what the producer sends is what the socket gets --

_DECIMAL = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"
AMOUNT: Schema = {
    "description": (
        "a JSON number (as the push API's OpenAPI document types it) or a decimal string "
        'such as "25.50"; passed on as the producer sent it'
    ),
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": _DECIMAL, "maxLength": 100},
    ],
}
_INTEGER_TEXT = {
    "type": "string",
    "description": "a decimal integer string (wei and cents overflow JSON numbers)",
    "pattern": r"^(0|[1-9][0-9]*)$",
    "maxLength": 100,
}
TIMESTAMP: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 date-time with an offset, delivered as sent",
    "pattern": (
        r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
        r"(Z|[+-][0-9]{2}:[0-9]{2})$"
    ),
}
_ON_CHAIN = nullable(text("may be null"))
_COUNT = integer(minimum=0)

PUSH_DATA: dict[str, Schema] = {
    "Amount": AMOUNT,
    "DepositTransfer": closed(
        {
            "fundingId": text(),
            "status": const("pending"),
            "transfer": closed({"txHash": _ON_CHAIN, "amount": ref("Amount"), "chain": _ON_CHAIN}),
        }
    ),
    "DepositPending": closed(
        {
            "depositId": text(),
            "chain": _ON_CHAIN,
            "token": _ON_CHAIN,
            "txHash": _ON_CHAIN,
            "amountWei": _INTEGER_TEXT,
        },
        description="self-hosted crypto deposit",
    ),
    "GatewayDepositCompleted": closed(
        {
            "fundingId": text(),
            "status": const("completed"),
            "payAmountToken": ref("Amount"),
            "receiveAmountUsd": ref("Amount"),
            "completedAt": TIMESTAMP,
        },
        description="gateway-hosted deposit (fundingId)",
    ),
    "CryptoDepositCompleted": closed(
        {
            "depositId": text(),
            "chain": _ON_CHAIN,
            "token": _ON_CHAIN,
            "txHash": _ON_CHAIN,
            "amountWei": _INTEGER_TEXT,
            "amountUsdCents": _INTEGER_TEXT,
            "confirmations": _COUNT,
            "completedAt": TIMESTAMP,
        },
        description="self-hosted crypto deposit (depositId)",
    ),
    "GatewayDepositFailed": closed(
        {"fundingId": text(), "status": enum("expired", "failed", "partial"), "reason": text()},
        description="gateway-hosted deposit (fundingId)",
    ),
    "CryptoDepositFailed": closed(
        {
            "depositId": text(),
            "chain": _ON_CHAIN,
            "token": _ON_CHAIN,
            "txHash": _ON_CHAIN,
            "reason": text(),
            "confirmations": _COUNT,
        },
        description="self-hosted crypto deposit (depositId)",
    ),
    "DepositRefunded": closed({"fundingId": text(), "status": const("refunded")}),
    "SystemNotice": closed({"severity": enum("info", "warning", "critical"), "message": text()}),
    "TradeItem": ext(
        closed(
            {
                "id": text("unique within the trade"),
                "name": text(),
                "price": ref("Amount"),
                "status": enum("pending", "delivered", "completed", "failed", "canceled"),
                "error": closed(
                    {"code": enum(*TRADE_ITEM_ERROR_CODES), "message": text()},
                    optional=("message",),
                ),
            },
            optional=("error",),
        ),
        "PROTOCOL.md lists no item fields; these are docs/protocol-notes.md's",
    ),
    "TradeObject": closed(
        {
            "id": text(),
            "type": SIDE,
            "userId": text("the sub-user"),
            "steamId": {
                "type": "string",
                "description": "SteamID64",
                "pattern": "^[0-9]{1,20}$",
            },
            "tradeUrl": {"type": "string", "pattern": "^https://[!-~]+$", "maxLength": 2048},
            "offerId": nullable(text()),
            "externalId": nullable(text()),
            "status": enum(*TRADE_STATUSES),
            "game": text(),
            "items": array(ref("TradeItem"), min_items=1, max_items=1000),
            "summary": closed(
                {"total": _COUNT, "delivered": _COUNT, "completed": _COUNT, "failed": _COUNT}
            ),
            "totalPrice": ref("Amount"),
            "currency": enum("USD", "EUR"),
            "holdEndDate": nullable(TIMESTAMP),
            "settledAt": nullable(TIMESTAMP),
            "revertedBy": nullable(enum("supplier", "user")),
            "error": nullable(
                closed(
                    {
                        "code": {
                            "type": "string",
                            "pattern": "^[A-Z][A-Z0-9_]{0,63}$",
                        },
                        "message": text(),
                    },
                    optional=("message",),
                )
            ),
            "createdAt": TIMESTAMP,
            "updatedAt": TIMESTAMP,
        },
        optional=(
            "offerId",
            "externalId",
            "holdEndDate",
            "settledAt",
            "revertedBy",
            "error",
        ),
        description="the full Trade object; optional members absent stay absent, null stays null",
    ),
}
