"""The webhook routes of the OpenAPI document (``/webhooks...``, a tenant's ``api-key``)."""

from __future__ import annotations

from typing import Any

from streamgate.spec.asyncapi import PUSH_EVENTS
from streamgate.spec.http import (
    ISO,
    TENANT,
    answer,
    envelope,
    failures,
    operation,
    path_param,
    query,
)
from streamgate.spec.schemas import Schema, closed, nullable, ref

__all__ = ["WEBHOOK_SCHEMAS", "webhook_paths"]

WEBHOOK_SCHEMAS: dict[str, Schema] = {
    "WebhookEndpoint": closed(
        {
            "id": {"type": "string"},
            "url": {"type": "string"},
            "eventTypes": nullable({"type": "array", "items": {"type": "string"}}),
            "enabled": {"type": "boolean"},
            "createdAt": ISO,
            "failingSince": nullable(ISO),
            "disabledReason": nullable({"type": "string"}),
        }
    ),
    "WebhookMessage": closed(
        {
            "id": {"type": "string"},
            "type": {"type": "string", "enum": list(PUSH_EVENTS)},
            "createdAt": ISO,
            "pending": {"type": "integer", "minimum": 0},
            "succeeded": {"type": "integer", "minimum": 0},
            "failed": {"type": "integer", "minimum": 0},
        }
    ),
    "WebhookAttempt": closed(
        {
            "endpointId": {"type": "string"},
            "at": ISO,
            "statusCode": {"type": ["integer", "null"], "description": "null: no response"},
            "latencyMs": {"type": "number"},
            "error": {"type": ["string", "null"]},
        }
    ),
}
WEBHOOK_SCHEMAS["WebhookEndpointCreated"] = closed(
    {
        **WEBHOOK_SCHEMAS["WebhookEndpoint"]["properties"],
        "secret": {"type": "string", "pattern": "^whsec_", "description": "shown only here"},
    }
)


def webhook_paths() -> dict[str, Any]:
    endpoint_id = path_param("id", "the endpoint's id (ep_...)")
    message_id = path_param("msg", "the message's id (msg_...)")
    one = envelope(ref("WebhookEndpoint"))
    queued = envelope(closed({"queued": {"type": "integer", "minimum": 0}}))
    common: dict[str, Any] = {"tags": "webhooks", "security": TENANT}
    return {
        "/webhooks": {
            "post": operation(
                "Create an endpoint; its secret is shown only here",
                {
                    "201": answer("created", envelope(ref("WebhookEndpointCreated"))),
                    **failures(400, 401),
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
            "get": operation(
                "List endpoints (no secrets)",
                {
                    "200": answer(
                        "the endpoints",
                        envelope({"type": "array", "items": ref("WebhookEndpoint")}),
                    ),
                    **failures(401),
                },
                op_id="listWebhooks",
                **common,
            ),
        },
        "/webhooks/messages": {
            "get": operation(
                "The tenant's messages, oldest first",
                {
                    "200": answer(
                        "messages", envelope({"type": "array", "items": ref("WebhookMessage")})
                    ),
                    **failures(400, 401),
                },
                params=[
                    query("since", {"type": "string"}, "ISO-8601 (no offset: UTC) or Unix s"),
                    query(
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
            "get": operation(
                "One endpoint",
                {"200": answer("the endpoint", one), **failures(401, 404)},
                op_id="getWebhook",
                **common,
            ),
            "patch": operation(
                "Enable or disable",
                {"200": answer("the endpoint", one), **failures(400, 401, 404)},
                body=closed({"enabled": {"type": "boolean"}}),
                op_id="patchWebhook",
                **common,
            ),
            "delete": operation(
                "Delete; pending deliveries are canceled",
                {
                    "200": answer(
                        "deleted",
                        envelope(closed({"id": {"type": "string"}, "deleted": {"const": True}})),
                    ),
                    **failures(401, 404),
                },
                op_id="deleteWebhook",
                **common,
            ),
        },
        "/webhooks/{id}/rotate-secret": {
            "parameters": [endpoint_id],
            "post": operation(
                "A new secret; the old one keeps signing for overlapSeconds",
                {
                    "200": answer(
                        "the new secret",
                        envelope(
                            closed(
                                {
                                    "id": {"type": "string"},
                                    "secret": {"type": "string", "pattern": "^whsec_"},
                                }
                            )
                        ),
                    ),
                    **failures(400, 401, 404),
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
            "post": operation(
                "Redeliver every message since a time",
                {"202": answer("queued", queued), **failures(400, 401, 404)},
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
            "get": operation(
                "Every attempt of a message",
                {
                    "200": answer(
                        "attempts", envelope({"type": "array", "items": ref("WebhookAttempt")})
                    ),
                    **failures(401),
                },
                op_id="listWebhookAttempts",
                **common,
            ),
        },
        "/webhooks/messages/{msg}/resend": {
            "parameters": [message_id],
            "post": operation(
                "Deliver a message again (to one endpoint, or to every one it went to)",
                {"202": answer("queued", queued), **failures(400, 401, 404)},
                body=closed(
                    {"endpointId": {"type": "string", "minLength": 1}}, optional=("endpointId",)
                ),
                op_id="resendWebhookMessage",
                **common,
            ),
        },
    }
