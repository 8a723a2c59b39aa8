"""The OpenAPI 3.1 document of streamgate's HTTP API.

Publish, authorize, push tickets, webhooks, markets, history, health. The stream and
push data schemas are the AsyncAPI document's (:mod:`streamgate.spec.schemas`), so
``GET /api/v1/history`` answers with exactly the event frames the stream sends.
"""

from __future__ import annotations

from typing import Any

from streamgate.spec.asyncapi import FRAMES, PUSH_EVENTS, VERSION
from streamgate.spec.producer import PRODUCER_SCHEMAS
from streamgate.spec.schemas import PUSH_DATA, STREAM_DATA, Schema, closed, nullable, ref

__all__ = ["openapi_document"]

_JSON = "application/json"
_WEBHOOK_KEYS = ("VALIDATION_ERROR", "NOT_FOUND", "METHOD_NOT_ALLOWED", "RATE_LIMITED")
_API_KEY_KEYS = ("MISSING_API_KEY", "INVALID_API_KEY", "API_KEY_REVOKED")
_ISO = {"type": "string", "description": "ISO-8601 UTC with milliseconds"}


def _envelope(data: Schema) -> Schema:
    return closed(
        {
            "requestId": {"type": "string", "pattern": "^req_[0-9a-f]{16}$"},
            "success": {"const": True},
            "data": data,
        }
    )


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
                    "key": {"type": "string", "enum": [*_API_KEY_KEYS, *_WEBHOOK_KEYS]},
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
    "Ticket": _envelope(
        closed(
            {
                "token": {"type": "string", "description": "JWT for GET /ws"},
                "expiresIn": {"type": "string", "pattern": "^[0-9]+[smhd]$"},
            }
        )
    ),
    "WebhookEndpoint": closed(
        {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "eventTypes": nullable({"type": "array", "items": {"type": "string"}}),
            "enabled": {"type": "boolean"},
            "createdAt": _ISO,
            "failingSince": nullable(_ISO),
            "disabledReason": nullable({"type": "string"}),
        }
    ),
    "WebhookMessage": closed(
        {
            "id": {"type": "string"},
            "type": {"type": "string", "enum": list(PUSH_EVENTS)},
            "createdAt": _ISO,
            "pending": {"type": "integer", "minimum": 0},
            "succeeded": {"type": "integer", "minimum": 0},
            "failed": {"type": "integer", "minimum": 0},
        }
    ),
    "WebhookAttempt": closed(
        {
            "endpointId": {"type": "string"},
            "at": _ISO,
            "statusCode": {"type": ["integer", "null"], "description": "null: no response"},
            "latencyMs": {"type": "number"},
            "error": {"type": ["string", "null"]},
        }
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
    "History": closed(
        {
            "topic": ref("PublicTopic"),
            "epoch": {"type": "string"},
            "offset": {"type": "integer", "minimum": 0, "description": "the stream's last"},
            "events": {
                "type": "array",
                "description": "oldest first, exactly as the stream sends them",
                "items": {"anyOf": [ref("OrderbookEvent"), ref("TradeEvent"), ref("TickerEvent")]},
            },
        },
        description="Extension: the latest events of a public topic",
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


_SCHEMAS["WebhookEndpointCreated"] = closed(
    {
        **_SCHEMAS["WebhookEndpoint"]["properties"],
        "secret": {"type": "string", "pattern": "^whsec_", "description": "shown only here"},
    }
)


def _content(schema: Schema, media: str = _JSON) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _answer(description: str, schema: Schema, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, **_content(schema)}
    if headers:
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return out


def _failures(*statuses: int) -> dict[str, Any]:
    text = {
        400: "refused: the message names the field",
        401: "no, unknown or revoked api-key",
        404: "no such endpoint or message (another tenant's neither)",
        405: "method not allowed here",
        429: "too many requests",
    }
    out = {str(s): _answer(text[s], ref("Failure")) for s in statuses}
    if 429 in statuses:
        out["429"]["headers"] = {"retry-after": {"schema": {"type": "string"}}}
    return out


_TENANT: list[dict[str, list[str]]] = [{"apiKey": []}]


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    tags: str,
    body: Schema | None = None,
    params: list[dict[str, Any]] | None = None,
    security: list[dict[str, list[str]]] | None = None,
    op_id: str,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tags]}
    if security is not None:
        op["security"] = security
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, **_content(body)}
    op["responses"] = responses
    return op


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": "^[^/]+$"},
    }


def _query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _webhooks() -> dict[str, Any]:
    endpoint_id = _path_param("id", "the endpoint's id (ep_...)")
    message_id = _path_param("msg", "the message's id (msg_...)")
    one = _envelope(ref("WebhookEndpoint"))
    queued = _envelope(closed({"queued": {"type": "integer", "minimum": 0}}))
    common: dict[str, Any] = {"tags": "webhooks", "security": _TENANT}
    return {
        "/webhooks": {
            "post": _op(
                "Create an endpoint; its secret is shown only here",
                {
                    "201": _answer("created", _envelope(ref("WebhookEndpointCreated"))),
                    **_failures(400, 401),
                },
                body=closed(
                    {
                        "url": {"type": "string", "minLength": 1},
                        "eventTypes": nullable(
                            {
                                "type": "array",
                                "items": {"type": "string"},
                                "description": "event names or deposit.* / trade.* / "
                                "system.*; absent, null or empty: every event",
                            }
                        ),
                    },
                    optional=("eventTypes",),
                ),
                op_id="createWebhook",
                **common,
            ),
            "get": _op(
                "List endpoints (no secrets)",
                {
                    "200": _answer(
                        "the endpoints",
                        _envelope({"type": "array", "items": ref("WebhookEndpoint")}),
                    ),
                    **_failures(401),
                },
                op_id="listWebhooks",
                **common,
            ),
        },
        "/webhooks/messages": {
            "get": _op(
                "The tenant's messages, oldest first",
                {
                    "200": _answer(
                        "messages", _envelope({"type": "array", "items": ref("WebhookMessage")})
                    ),
                    **_failures(400, 401),
                },
                params=[
                    _query("since", {"type": "string"}, "ISO-8601 (no offset: UTC) or Unix s"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "at most this many",
                    ),
                ],
                op_id="listWebhookMessages",
                **common,
            ),
        },
        "/webhooks/{id}": {
            "parameters": [endpoint_id],
            "get": _op(
                "One endpoint",
                {"200": _answer("the endpoint", one), **_failures(401, 404)},
                op_id="getWebhook",
                **common,
            ),
            "patch": _op(
                "Enable or disable",
                {"200": _answer("the endpoint", one), **_failures(400, 401, 404)},
                body=closed({"enabled": {"type": "boolean"}}),
                op_id="patchWebhook",
                **common,
            ),
            "delete": _op(
                "Delete; pending deliveries are canceled",
                {
                    "200": _answer(
                        "deleted",
                        _envelope(closed({"id": {"type": "string"}, "deleted": {"const": True}})),
                    ),
                    **_failures(401, 404),
                },
                op_id="deleteWebhook",
                **common,
            ),
        },
        "/webhooks/{id}/rotate-secret": {
            "parameters": [endpoint_id],
            "post": _op(
                "A new secret; the old one keeps signing for overlapSeconds",
                {
                    "200": _answer(
                        "the new secret",
                        _envelope(
                            closed(
                                {
                                    "id": {"type": "string"},
                                    "secret": {"type": "string", "pattern": "^whsec_"},
                                }
                            )
                        ),
                    ),
                    **_failures(400, 401, 404),
                },
                body=closed(
                    {
                        "overlapSeconds": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 604800,
                            "default": 86400,
                        }
                    },
                    optional=("overlapSeconds",),
                ),
                op_id="rotateWebhookSecret",
                **common,
            ),
        },
        "/webhooks/{id}/recover": {
            "parameters": [endpoint_id],
            "post": _op(
                "Redeliver every message since a time",
                {"202": _answer("queued", queued), **_failures(400, 401, 404)},
                body=closed(
                    {
                        "since": {
                            "description": "ISO-8601 (no offset: UTC) or Unix seconds",
                            "anyOf": [{"type": "string"}, {"type": "number", "minimum": 0}],
                        }
                    }
                ),
                op_id="recoverWebhook",
                **common,
            ),
        },
        "/webhooks/messages/{msg}/attempts": {
            "parameters": [message_id],
            "get": _op(
                "Every attempt of a message",
                {
                    "200": _answer(
                        "attempts", _envelope({"type": "array", "items": ref("WebhookAttempt")})
                    ),
                    **_failures(401),
                },
                op_id="listWebhookAttempts",
                **common,
            ),
        },
        "/webhooks/messages/{msg}/resend": {
            "parameters": [message_id],
            "post": _op(
                "Deliver a message again (to one endpoint, or to every one it went to)",
                {"202": _answer("queued", queued), **_failures(400, 401, 404)},
                body=closed(
                    {"endpointId": {"type": "string", "minLength": 1}}, optional=("endpointId",)
                ),
                op_id="resendWebhookMessage",
                **common,
            ),
        },
    }


def _paths() -> dict[str, Any]:
    status = closed({"status": {"type": "string"}}, description="")
    producer_error = ref("ProducerError")
    return {
        "/api/v1/publish": {
            "post": _op(
                "Publish a batch of 1..1000 events",
                {
                    "200": _answer("published", ref("PublishAccepted")),
                    "400": _answer(
                        "refused: index and field name the first bad one", producer_error
                    ),
                    "401": _answer("no or wrong producer key", producer_error),
                    "409": _answer(
                        "NO_BOOK or SEQ_GAP: a delta does not follow its book", producer_error
                    ),
                    "413": _answer("body over max_publish_bytes", ref("HttpError")),
                    "503": _answer(
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
            "post": _op(
                "Ed25519-signed request in, stream bearer out",
                {
                    "200": _answer("the bearer", ref("Authorized")),
                    "400": _answer("2000, 2001 or 2002", ref("AuthorizeError")),
                    "429": _answer("2003", ref("AuthorizeError"), **{"retry-after": "seconds"}),
                    "503": _answer(
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
            "post": _op(
                "Mint a 1-hour push ticket for one sub-user",
                {"200": _answer("the ticket", ref("Ticket")), **_failures(400, 401, 429)},
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
                security=_TENANT,
                tags="push",
                op_id="mintPushTicket",
            )
        },
        **_webhooks(),
        "/api/v1/markets": {
            "get": _op(
                "Markets configured or published to",
                {"200": _answer("markets", {"type": "array", "items": ref("Market")})},
                security=[],
                tags="stream",
                op_id="listMarkets",
            )
        },
        "/api/v1/history": {
            "get": _op(
                "Extension: the latest events of a public topic, as the stream sends them",
                {
                    "200": _answer("events", ref("History")),
                    "400": _answer("a bad topic or limit", ref("HistoryError")),
                },
                params=[
                    {
                        "name": "topic",
                        "in": "query",
                        "required": True,
                        "description": "a public topic",
                        "schema": ref("PublicTopic"),
                    },
                    _query(
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
            "get": _op(
                "Live figures of this node (the live page reads them)",
                {
                    "200": _answer(
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
            "get": _op(
                "Alive",
                {"200": _answer("alive", status)},
                security=[],
                tags="operations",
                op_id="healthz",
            )
        },
        "/readyz": {
            "get": _op(
                "Ready to serve",
                {
                    "200": _answer("ready", status),
                    "503": _answer(
                        "draining, or no broker",
                        closed({"status": {"type": "string"}, "reason": {"type": "string"}}),
                    ),
                },
                security=[],
                tags="operations",
                op_id="readyz",
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus exposition",
                {
                    "200": {
                        "description": "metrics",
                        **_content({"type": "string"}, "text/plain"),
                    }
                },
                security=[],
                tags="operations",
                op_id="metrics",
            )
        },
        "/asyncapi.json": {
            "get": _op(
                "The AsyncAPI 3.0 document of the WebSocket protocols",
                {"200": _answer("the document", {"type": "object"})},
                security=[],
                tags="operations",
                op_id="asyncapiDocument",
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document",
                {"200": _answer("the document", {"type": "object"})},
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
            },
        },
    }
