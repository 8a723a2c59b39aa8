"""The AsyncAPI 3.0 document of ``/ws/public``, ``/ws/private`` and ``/ws``.

The application described is the gateway: an operation it ``receive``s is a client op
(answered by its ``reply`` messages), one it ``send``s comes unasked (events, pushes,
``TOKEN_EXPIRED``). Every frame the gateway can send on a channel is one of the messages
of that channel's send operations and replies; the tests hold the gateway to that.
Close codes are in each channel's ``x-close-codes`` (AsyncAPI has no field for them).
"""

from __future__ import annotations

from typing import Any

from streamgate.protocol.push_events import TRADE_STATUSES
from streamgate.spec.schemas import (
    PUSH_DATA,
    STREAM_DATA,
    Schema,
    closed,
    ext,
    ref,
)

__all__ = ["PRIVATE_ERROR_CODES", "PUBLIC_ERROR_CODES", "PUSH_EVENTS", "asyncapi_document"]

VERSION = "1.0.0"

_COMMON_CODES = (
    "INVALID_JSON",
    "INVALID_REQUEST",
    "MISSING_FIELD",
    "INVALID_FIELD",
    "UNKNOWN_OP",
    "INVALID_TOPIC",
    "TOPIC_NOT_ALLOWED",
    "TOO_MANY_SUBSCRIPTIONS",
    "RATE_LIMITED",
    "FRAME_TOO_LARGE",
    "BINARY_NOT_SUPPORTED",
    "UNAVAILABLE",
)
PUBLIC_ERROR_CODES = (*_COMMON_CODES, "OP_NOT_ALLOWED")
PRIVATE_ERROR_CODES = (*_COMMON_CODES, "UNAUTHORIZED", "TOKEN_EXPIRED")

# push event name -> schema of its data (PROTOCOL.md section 1, Events)
PUSH_EVENTS: dict[str, Schema] = {
    "deposit.transfer": ref("DepositTransfer"),
    "deposit.pending": ref("DepositPending"),
    "deposit.completed": {"anyOf": [ref("GatewayDepositCompleted"), ref("CryptoDepositCompleted")]},
    "deposit.failed": {"anyOf": [ref("GatewayDepositFailed"), ref("CryptoDepositFailed")]},
    "deposit.refunded": ref("DepositRefunded"),
    **{
        f"trade.{status}": {
            "allOf": [ref("TradeObject"), {"properties": {"status": {"const": status}}}]
        }
        for status in TRADE_STATUSES
    },
    "system.notice": ref("SystemNotice"),
}

_REQ_ID = {"type": "string", "description": "echoed in the answer; omitted when absent"}
_OFFSET = ext(
    {"type": "integer", "minimum": 1},
    "grows by one per event within its stream (one market topic, one user's private topic, "
    "one sub-user's push stream); offsets start at 1",
)
_EPOCH = ext(
    {"type": "string"},
    "changes whenever the gateway lost the stream's history; offsets of another epoch mean nothing",
)


def _topics(topic: Schema) -> Schema:
    return {"type": "array", "items": topic, "minItems": 1}


def _stream_frames(prefix: str, topic: Schema, codes: tuple[str, ...]) -> dict[str, Schema]:
    """Schemas of the frames of one stream endpoint (``Public`` or ``Private``)."""
    topics = _topics(topic)
    resume = ext(
        {
            "type": "object",
            "additionalProperties": closed(
                {"offset": {"type": "integer", "minimum": 0}, "epoch": {"type": "string"}}
            ),
        },
        'resume after these positions: {"<topic>": {"offset": N, "epoch": "E"}}; every '
        "key must be among args",
    )
    return {
        f"{prefix}Subscribe": closed(
            {"op": {"const": "subscribe"}, "args": topics, "req_id": _REQ_ID, "resume": resume},
            optional=("req_id", "resume"),
        ),
        f"{prefix}Unsubscribe": closed(
            {"op": {"const": "unsubscribe"}, "args": topics, "req_id": _REQ_ID},
            optional=("req_id",),
        ),
        f"{prefix}Subscribed": closed(
            {
                "op": {"const": "subscribed"},
                "args": topics | {"description": "the topics subscribed"},
                "req_id": _REQ_ID,
                "recovered": ext(
                    {"type": "object", "additionalProperties": {"type": "boolean"}},
                    "for each topic that had a resume entry: whether every event after "
                    "its offset is replayed",
                ),
            },
            optional=("req_id", "recovered"),
        ),
        f"{prefix}Unsubscribed": closed(
            {"op": {"const": "unsubscribed"}, "args": topics, "req_id": _REQ_ID},
            optional=("req_id",),
        ),
        f"{prefix}Error": closed(
            {
                "op": {"const": "error"},
                "message": {"type": "string", "enum": list(codes)},
                "detail": ext({"type": "string"}, "what exactly was wrong, for people"),
                "req_id": _REQ_ID,
                "args": ext(
                    _topics({"type": "string"}),
                    "the refused topics (as sent), only when a subscribe or unsubscribe took the "
                    "others (that ack came first, with the same req_id)",
                ),
            },
            optional=("req_id", "args"),
        ),
    }


def _event(topic: Schema, data: Schema) -> Schema:
    return closed(
        {
            "op": {"const": "event"},
            "topic": topic,
            "data": data,
            "offset": _OFFSET,
            "epoch": _EPOCH,
            "server_ts_ms": ext({"type": "integer", "minimum": 0}, "publish time, Unix ms"),
        }
    )


def _items(name: str) -> Schema:
    return {"type": "array", "items": ref(name), "minItems": 1}


def _public_kind(kind: str) -> Schema:
    return {"type": "string", "pattern": f"^{kind}/[^/\\s]+$"}


FRAMES: dict[str, Schema] = {
    "PublicTopic": {"type": "string", "pattern": "^(orderbook|trade|ticker)/[^/\\s]+$"},
    "PrivateTopic": {"type": "string", "enum": ["order", "fill", "position"]},
    **_stream_frames("Public", ref("PublicTopic"), PUBLIC_ERROR_CODES),
    **_stream_frames("Private", ref("PrivateTopic"), PRIVATE_ERROR_CODES),
    "Ping": closed(
        {
            "op": {"const": "ping"},
            "ts": {"type": "integer", "description": "Unix nanoseconds"},
            "req_id": _REQ_ID,
        },
        optional=("ts", "req_id"),
    ),
    "Pong": closed(
        {
            "op": {"const": "pong"},
            "server_ts": {"type": "integer", "description": "Unix nanoseconds"},
            "client_ts": {
                "type": "integer",
                "description": "the ping's ts; omitted when the ping carried none",
            },
            "req_id": _REQ_ID,
        },
        optional=("client_ts", "req_id"),
    ),
    "Auth": closed(
        {"op": {"const": "auth"}, "bearer": {"type": "string"}, "req_id": _REQ_ID},
        optional=("req_id",),
    ),
    "AuthSucceeded": closed(
        {
            "op": {"const": "auth"},
            "success": {"const": True},
            "user_id": {"type": "string", "minLength": 1},
            "req_id": _REQ_ID,
        },
        optional=("req_id",),
    ),
    "AuthFailed": closed(
        {
            "op": {"const": "auth"},
            "success": {"const": False},
            "message": {"const": "INVALID_TOKEN"},
            "detail": ext({"type": "string"}, "why (expired, bad signature, ...)"),
            "req_id": _REQ_ID,
        },
        optional=("detail", "req_id"),
    ),
    "OrderbookEvent": _event(
        _public_kind("orderbook"),
        {"anyOf": [ref("OrderbookSnapshot"), ref("OrderbookDelta")]},
    ),
    "TradeEvent": _event(_public_kind("trade"), ref("AggregatedTrades")),
    "TickerEvent": _event(_public_kind("ticker"), ref("TickerSnapshot")),
    "OrderEvent": _event({"const": "order"}, _items("OrderResponse")),
    "FillEvent": _event({"const": "fill"}, _items("FillResponse")),
    "PositionEvent": _event({"const": "position"}, _items("PositionResponse")),
    "Connected": closed(
        {
            "event": {"const": "connected"},
            "data": closed(
                {
                    "userId": {"type": "string", "minLength": 1},
                    "recovered": ext(
                        {"type": "boolean"},
                        "present when the socket asked to resume (?offset=&epoch=)",
                    ),
                },
                optional=("recovered",),
            ),
            "ts": {"type": "integer", "minimum": 0, "description": "Unix ms"},
        }
    ),
}


def _push_name(event: str) -> str:
    return "Push" + "".join(part.capitalize() for part in event.split("."))


def _push_frame(event: str, data: Schema) -> Schema:
    return closed(
        {
            "event": {"const": event},
            "data": data,
            "ts": {"type": "integer", "minimum": 0, "description": "Unix ms"},
            "offset": _OFFSET,
            "epoch": _EPOCH,
        }
    )


PUSH_FRAMES = {_push_name(name): _push_frame(name, data) for name, data in PUSH_EVENTS.items()}

# -- messages, channels, operations -------------------------------------------------------------


def _message(name: str, title: str, summary: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "payload": ref(name),
    }


def _close(code: int, reason: str, when: str, extension: bool) -> dict[str, Any]:
    return {"code": code, "reason": reason, "when": when, "extension": extension}


_STREAM_CLOSES = [
    _close(
        1008,
        "Too many refused requests",
        "more than abuse_refusals refused frames within abuse_window",
        True,
    ),
    _close(1009, "", "a message larger than hard_max_frame_bytes", True),
    _close(1011, "", "no pong within ping_timeout of a server ping, or an internal error", True),
    _close(
        1012,
        "Service restart",
        "the node is draining (SIGTERM); with reason "
        "'Stream interrupted', a topic lost continuity: reconnect and resume",
        True,
    ),
    _close(4009, "Slow consumer", "the outbound queue passed outbound_buffer_bytes", True),
]
_PUSH_CLOSES = [
    _close(4001, "Missing token", "no ticket in the subprotocol nor in ?token=", False),
    _close(4001, "Invalid token", "bad signature, expired, wrong purpose, malformed", False),
    _close(4002, "Read-only", "the client sent a data frame", False),
    _close(4008, "Too many", "max_sockets_per_sub_user sockets are open", True),
    _close(4009, "Slow consumer", "the outbound queue passed outbound_buffer_bytes", True),
    _close(1011, "", "no pong within ping_timeout of a server ping, or an internal error", True),
    _close(
        1012,
        "Service restart",
        "the node is draining; with reason 'Stream "
        "interrupted', the stream lost continuity: reconnect with ?offset=&epoch=",
        True,
    ),
    _close(1013, "Try again later", "the broker or the presence store is unreachable", True),
]


def _close_text(closes: list[dict[str, Any]]) -> str:
    return "Close codes: " + "; ".join(
        f"{c['code']}{' ' + repr(c['reason']) if c['reason'] else ''}: {c['when']}"
        f"{' (extension)' if c['extension'] else ''}"
        for c in closes
    )


# channel -> {message id: (schema name, title, summary)}
_STREAM_IN = {
    "subscribe": ("Subscribe", "subscribe", "subscribe to topics"),
    "unsubscribe": ("Unsubscribe", "unsubscribe", "unsubscribe from topics"),
}
_CHANNELS: dict[str, dict[str, tuple[str, str, str]]] = {
    "public": {
        **{k: (f"Public{n}", t, s) for k, (n, t, s) in _STREAM_IN.items()},
        "ping": ("Ping", "ping", "application-level ping"),
        "subscribed": ("PublicSubscribed", "subscribed", "a subscribe's acknowledgement"),
        "unsubscribed": ("PublicUnsubscribed", "unsubscribed", "an unsubscribe's ack"),
        "pong": ("Pong", "pong", "the answer to ping"),
        "error": ("PublicError", "error", "a refused frame (the socket stays open)"),
        "orderbookEvent": ("OrderbookEvent", "order book", "a snapshot, then deltas"),
        "tradeEvent": ("TradeEvent", "trades", "aggregated trades"),
        "tickerEvent": ("TickerEvent", "ticker", "ticker snapshot"),
    },
    "private": {
        "auth": ("Auth", "auth", "authenticate with a bearer"),
        **{k: (f"Private{n}", t, s) for k, (n, t, s) in _STREAM_IN.items()},
        "ping": ("Ping", "ping", "application-level ping"),
        "authSucceeded": ("AuthSucceeded", "auth succeeded", "the bearer verified"),
        "authFailed": ("AuthFailed", "auth failed", "the bearer did not verify"),
        "subscribed": ("PrivateSubscribed", "subscribed", "a subscribe's acknowledgement"),
        "unsubscribed": ("PrivateUnsubscribed", "unsubscribed", "an unsubscribe's ack"),
        "pong": ("Pong", "pong", "the answer to ping"),
        "error": ("PrivateError", "error", "a refused frame, or TOKEN_EXPIRED"),
        "orderEvent": ("OrderEvent", "orders", "the user's OrderResponse[]"),
        "fillEvent": ("FillEvent", "fills", "the user's FillResponse[]"),
        "positionEvent": ("PositionEvent", "positions", "the user's PositionResponse[]"),
    },
    "push": {
        "connected": ("Connected", "connected", "always the first frame"),
        **{
            _push_name(event)[0].lower() + _push_name(event)[1:]: (
                _push_name(event),
                event,
                f"the {event} push",
            )
            for event in PUSH_EVENTS
        },
    },
}


def _chan(channel: str) -> dict[str, str]:
    return {"$ref": f"#/channels/{channel}"}


def _msgs(channel: str, *ids: str) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{channel}/messages/{i}"} for i in ids]


def _receive(channel: str, op: str, summary: str, replies: tuple[str, ...]) -> dict[str, Any]:
    return {
        "action": "receive",
        "channel": _chan(channel),
        "summary": summary,
        "messages": _msgs(channel, op),
        "reply": {"channel": _chan(channel), "messages": _msgs(channel, *replies)},
    }


def _send(channel: str, summary: str, ids: tuple[str, ...]) -> dict[str, Any]:
    return {
        "action": "send",
        "channel": _chan(channel),
        "summary": summary,
        "messages": _msgs(channel, *ids),
    }


def _operations() -> dict[str, Any]:
    ops: dict[str, Any] = {}
    for channel in ("public", "private"):
        events = tuple(k for k in _CHANNELS[channel] if k.endswith("Event"))
        ops[f"{channel}Subscribe"] = _receive(
            channel,
            "subscribe",
            "Subscribe: the ack lists the topics subscribed, then each topic's catch-up "
            "(a book snapshot, a replay, the latest ticker); refused topics get one error "
            "frame with the same req_id",
            ("subscribed", "error"),
        )
        ops[f"{channel}Unsubscribe"] = _receive(
            channel, "unsubscribe", "Unsubscribe (idempotent)", ("unsubscribed", "error")
        )
        ops[f"{channel}Ping"] = _receive(channel, "ping", "Ping", ("pong", "error"))
        ops[f"{channel}Events"] = _send(channel, "Events of the subscribed topics", events)
        ops[f"{channel}Refusals"] = _send(
            channel, "Any refused frame is answered with an error frame", ("error",)
        )
    ops["privateAuth"] = _receive(
        "private",
        "auth",
        "Authenticate; after an expiry, a success is followed by a subscribed frame (same "
        "req_id) listing the topics brought back",
        ("authSucceeded", "authFailed", "subscribed", "error"),
    )
    ops["pushConnected"] = _send("push", "The first frame of a push socket", ("connected",))
    ops["pushEvents"] = _send(
        "push",
        "The sub-user's pushes, in order",
        tuple(k for k in _CHANNELS["push"] if k != "connected"),
    )
    return ops


def _channel(
    channel: str, address: str, title: str, description: str, closes: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "address": address,
        "title": title,
        "description": f"{description}\n\n{_close_text(closes)}",
        "messages": {
            key: {"$ref": f"#/components/messages/{name}"}
            for key, (name, _, _) in _CHANNELS[channel].items()
        },
        "x-close-codes": closes,
    }


def asyncapi_document() -> dict[str, Any]:
    channels = {
        "public": _channel(
            "public",
            "/ws/public",
            "Stream protocol, public",
            "Market data: topics orderbook/<m>, trade/<m>, ticker/<m>. Ops of one "
            "connection take effect in the order sent.",
            _STREAM_CLOSES,
        ),
        "private": _channel(
            "private",
            "/ws/private",
            "Stream protocol, private",
            "The public protocol plus auth; per-user topics order, fill, position, only "
            "after a successful auth.",
            _STREAM_CLOSES,
        ),
        "push": _channel(
            "push",
            "/ws",
            "Push protocol",
            "Read-only socket of one sub-user of one tenant. The ticket (POST "
            "/auth/ws-token) goes in the subprotocol bearer.<jwt> (selected in the answer) "
            "or in ?token=. ?offset=N&epoch=E (together; extension) replays what came "
            "after N; malformed, the upgrade is refused with HTTP 400 INVALID_OFFSET.",
            _PUSH_CLOSES,
        ),
    }
    channels["push"]["bindings"] = {
        "ws": {
            "method": "GET",
            "query": {
                "type": "object",
                "properties": {
                    "token": {
                        "type": "string",
                        "description": "the ticket, if not offered as the subprotocol bearer.<jwt>",
                    },
                    "offset": {
                        "type": "string",
                        "pattern": "^[0-9]{1,19}$",
                        "description": "Extension: resume after this offset",
                        "x-extension": True,
                    },
                    "epoch": {
                        "type": "string",
                        "description": "Extension: of that offset",
                        "x-extension": True,
                    },
                },
            },
            "bindingVersion": "0.1.0",
        }
    }
    messages = {
        name: _message(name, title, summary)
        for chan in _CHANNELS.values()
        for name, title, summary in chan.values()
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "streamgate WebSocket protocols",
            "version": VERSION,
            "description": (
                "The stream protocol (/ws/public, /ws/private) and the push protocol (/ws) "
                "as streamgate speaks them. Members marked x-extension are not in the "
                "platforms' own documents; a client that ignores them keeps working. "
                "The HTTP API is in /openapi.json."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8080",
                "protocol": "ws",
                "description": "streamgate serve, on its defaults",
            }
        },
        "channels": channels,
        "operations": _operations(),
        "components": {
            "schemas": {**STREAM_DATA, **PUSH_DATA, **FRAMES, **PUSH_FRAMES},
            "messages": messages,
        },
    }
