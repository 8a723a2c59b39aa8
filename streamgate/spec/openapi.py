"""The OpenAPI 3.1 document of streamgate's HTTP API.

Publish, authorize, push tickets, webhooks, markets, history, health. The stream and
push data schemas are the AsyncAPI document's (:mod:`streamgate.spec.schemas`), so
``GET /api/v1/history`` answers with exactly the event frames the stream sends.
"""

from __future__ import annotations

from typing import Any

from streamgate.spec.asyncapi import FRAMES, VERSION
from streamgate.spec.http import (
    API_KEY_KEYS,
    TENANT,
    WEBHOOK_KEYS,
    answer,
    content,
    envelope,
    failures,
    operation,
    query,
)
from streamgate.spec.operations import ADMIN_SCHEMAS, operations_paths
from streamgate.spec.producer import PRODUCER_SCHEMAS
from streamgate.spec.schemas import PUSH_DATA, STREAM_DATA, Schema, closed, ext, ref
from streamgate.spec.webhooks import WEBHOOK_SCHEMAS, webhook_paths

__all__ = ["openapi_document"]


_SCHEMAS: dict[str, Schema] = {
    "HttpError": closed(
        {
            "error": closed(
                {"code": {"type": "string"}, "message": {"type": "string"}},
            )
        },
        description="routing and transport refusals (404, 405, 413, 426, 431, 500)",
    ),
    "Failure": closed(
        {
            "requestId": {"type": "string", "pattern": "^req_[0-9a-f]{16}$"},
            "success": {"const": False},
            "error": closed(
                {
                    "code": {"type": "integer", "description": "the HTTP status"},
                    "key": {"type": "string", "enum": [*API_KEY_KEYS, *WEBHOOK_KEYS]},
                    "message": {"type": "string"},
                }
            ),
        },
        description="the push API's error envelope",
    ),
    "AuthorizeRequest": {
        "type": "object",
        "required": ["public_key", "signature", "timestamp_ms", "nonce"],
        "properties": {
            "public_key": {
                "type": "string",
                "pattern": "^(0[xX])?[0-9a-fA-F]{64}$",
                "description": "Ed25519 public key, 32 bytes of hex",
            },
            "signature": {
                "type": "string",
                "pattern": "^(0[xX])?[0-9a-fA-F]{128}$",
                "description": "Ed25519 over AUTHORIZE|{timestamp_ms}|{nonce} (or full_message)",
            },
            "timestamp_ms": {"type": "integer", "description": "near server time"},
            "nonce": {"type": "string", "minLength": 1, "maxLength": 128},
            "full_message": {
                "type": "string",
                "description": (
                    "the Aptos wallet-standard form the wallet signed: APTOS\\nmessage: "
                    "AUTHORIZE|{timestamp_ms}|{nonce}\\n[address: ...\\n][application: "
                    "...\\n][chainId: ...\\n]nonce: {nonce}"
                ),
            },
        },
    },
    "Authorized": closed(
        {
            "token": {"type": "string", "description": "the stream bearer (7 days)"},
            "user_id": {"type": "string", "pattern": "^0x[0-9a-f]{64}$"},
        }
    ),
    "AuthorizeError": closed(
        {
            "error_code": {
                "type": "integer",
                "enum": [2000, 2001, 2002, 2003, 2004],
                "description": "2000 invalid request, 2001 authentication failed, 2002 "
                "signature expired, 2003 rate limit exceeded, 2004 not found",
            },
            "error_message": {"type": "string"},
        }
    ),
    "Ticket": envelope(
        closed(
            {
                "token": {"type": "string", "description": "JWT for GET /ws"},
                "expiresIn": {"type": "string", "pattern": "^[0-9]+[smhd]$"},
            }
        )
    ),
    "Market": {
        "type": "object",
        "required": ["market_addr", "symbol"],
        "properties": {
            "market_addr": {"type": "string"},
            "symbol": {"type": "string"},
            "price_decimals": {"type": "integer"},
            "size_decimals": {"type": "integer"},
        },
    },
    "History": ext(
        closed(
            {
                "topic": ref("PublicTopic"),
                "epoch": {"type": "string"},
                "offset": {"type": "integer", "minimum": 0, "description": "the stream's last"},
                "events": {
                    "type": "array",
                    "description": "oldest first, exactly as the stream sends them",
                    "items": {
                        "anyOf": [ref("OrderbookEvent"), ref("TradeEvent"), ref("TickerEvent")]
                    },
                },
            },
        ),
        "the latest events of a public topic (GET /api/v1/history)",
    ),
    "HistoryError": closed(
        {
            "error": closed(
                {
                    "code": {"type": "string", "enum": ["INVALID_TOPIC", "INVALID_FIELD"]},
                    "message": {"type": "string"},
                }
            )
        }
    ),
}


def _paths() -> dict[str, Any]:
    status = closed({"status": {"type": "string"}}, description="")
    producer_error = ref("ProducerError")
    return {
        "/api/v1/publish": {
            "post": operation(
                "Publish a batch of 1..1000 events",
                {
                    "200": answer("published", ref("PublishAccepted")),
                    "400": answer(
                        "refused: index and field name the first bad one", producer_error
                    ),
                    "401": answer("no or wrong producer key", producer_error),
                    "409": answer(
                        "NO_BOOK or SEQ_GAP: a delta does not follow its book", producer_error
                    ),
                    "413": answer("body over max_publish_bytes", ref("HttpError")),
                    "503": answer(
                        "the broker or the outbox cannot take it now; retry",
                        producer_error,
                        **{"retry-after": "seconds"},
                    ),
                },
                body=ref("PublishRequest"),
                security=[{"producerKey": []}],
                tags="producer",
                op_id="publish",
            )
        },
        "/api/v1/authorize": {
            "post": operation(
                "Ed25519-signed request in, stream bearer out",
                {
                    "200": answer("the bearer", ref("Authorized")),
                    "400": answer("2000, 2001 or 2002", ref("AuthorizeError")),
                    "429": answer("2003", ref("AuthorizeError"), **{"retry-after": "seconds"}),
                    "503": answer(
                        "used nonces cannot be checked now (2000)",
                        ref("AuthorizeError"),
                        **{"retry-after": "seconds"},
                    ),
                },
                body=ref("AuthorizeRequest"),
                security=[],
                tags="stream",
                op_id="authorize",
            )
        },
        "/auth/ws-token": {
            "post": operation(
                "Mint a 1-hour push ticket for one sub-user",
                {"200": answer("the ticket", ref("Ticket")), **failures(400, 401, 429)},
                params=[
                    {
                        "name": "On-Behalf-Of",
                        "in": "header",
                        "required": True,
                        "description": "the sub-user: 1..128 characters, no whitespace, "
                        "control characters or ':'",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                    }
                ],
                security=TENANT,
                tags="push",
                op_id="mintPushTicket",
            )
        },
        **webhook_paths(),
        "/api/v1/markets": {
            "get": operation(
                "Markets configured or published to",
                {"200": answer("markets", {"type": "array", "items": ref("Market")})},
                security=[],
                tags="stream",
                op_id="listMarkets",
            )
        },
        "/api/v1/history": {
            "get": operation(
                "Extension: the latest events of a public topic, as the stream sends them",
                {
                    "200": answer("events", ref("History")),
                    "400": answer("a bad topic or limit", ref("HistoryError")),
                    "503": answer(
                        "history is unavailable (UNAVAILABLE); retry",
                        ref("HttpError"),
                        **{"retry-after": "seconds"},
                    ),
                },
                params=[
                    {
                        "name": "topic",
                        "in": "query",
                        "required": True,
                        "description": "a public topic",
                        "schema": ref("PublicTopic"),
                    },
                    query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                        "at most this many, the latest",
                    ),
                ],
                security=[],
                tags="stream",
                op_id="history",
            )
        },
        "/api/v1/stats": {
            "get": operation(
                "Live figures of this node (the live page reads them)",
                {
                    "200": answer(
                        "figures",
                        closed(
                            {
                                "connections": closed(
                                    {
                                        k: {"type": "integer", "minimum": 0}
                                        for k in ("public", "private", "push")
                                    }
                                ),
                                "published_total": {"type": "integer", "minimum": 0},
                                "delivered_total": {"type": "integer", "minimum": 0},
                                "published_per_s": {"type": "number", "minimum": 0},
                                "delivered_per_s": {"type": "number", "minimum": 0},
                                "channels": {"type": "integer", "minimum": 0},
                            }
                        ),
                    )
                },
                security=[],
                tags="operations",
                op_id="stats",
            )
        },
        "/healthz": {
            "get": operation(
                "Alive",
                {"200": answer("alive", status)},
                security=[],
                tags="operations",
                op_id="healthz",
            )
        },
        **operations_paths(),
        "/metrics": {
            "get": operation(
                "Prometheus exposition",
                {
                    "200": {
                        "description": "metrics",
                        **content({"type": "string"}, "text/plain"),
                    }
                },
                security=[],
                tags="operations",
                op_id="metrics",
            )
        },
        "/asyncapi.json": {
            "get": operation(
                "The AsyncAPI 3.0 document of the WebSocket protocols",
                {"200": answer("the document", {"type": "object"})},
                security=[],
                tags="operations",
                op_id="asyncapiDocument",
            )
        },
        "/openapi.json": {
            "get": operation(
                "This document",
                {"200": answer("the document", {"type": "object"})},
                security=[],
                tags="operations",
                op_id="openapiDocument",
            )
        },
    }


def openapi_document() -> dict[str, Any]:
    frames = {k: FRAMES[k] for k in ("PublicTopic", "OrderbookEvent", "TradeEvent", "TickerEvent")}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "streamgate HTTP API",
            "version": VERSION,
            "description": (
                "The producer API, stream bearers, push tickets, webhooks and the gateway's "
                "own endpoints. The WebSocket protocols are in /asyncapi.json. Members marked "
                "x-extension are not in the platforms' own documents."
            ),
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "streamgate serve"}],
        "security": [],
        "tags": [{"name": n} for n in ("producer", "stream", "push", "webhooks", "operations")],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "producerKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the producer key (STREAMGATE_PRODUCER_KEY)",
                },
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the admin key (STREAMGATE_ADMIN_KEY)",
                },
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "api-key",
                    "description": "a tenant's API key (streamgate apikey create)",
                },
            },
            "schemas": {
                **STREAM_DATA,
                **PUSH_DATA,
                **frames,
                **PRODUCER_SCHEMAS,
                **_SCHEMAS,
                **WEBHOOK_SCHEMAS,
                **ADMIN_SCHEMAS,
            },
        },
    }
