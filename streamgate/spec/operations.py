"""The OpenAPI paths of an operator's endpoints: ``/readyz`` and the admin view."""

from __future__ import annotations

from typing import Any

from streamgate.spec.http import answer, content, operation
from streamgate.spec.schemas import Schema, closed, ref

__all__ = ["ADMIN_SCHEMAS", "READY_REASONS", "operations_paths"]

READY_REASONS = ("starting", "draining", "broker unavailable", "outbox unavailable")

_COUNT = {"type": "integer", "minimum": 0}
_TIME = {"type": "number", "description": "Unix time, seconds"}
_CHANNEL = closed(
    {
        "channel": {"type": "string"},
        "subscribers": _COUNT,
        "events": _COUNT,
        "events_per_s": {"type": "number", "minimum": 0},
    }
)

ADMIN_SCHEMAS: dict[str, Schema] = {
    "AdminFigures": closed(
        {
            "node": {"type": "string"},
            "ready": {"type": "boolean"},
            "reasons": {"type": "array", "items": {"enum": list(READY_REASONS)}},
            "connections": closed({k: _COUNT for k in ("public", "private", "push")}),
            "published_per_s": {"type": "number", "minimum": 0},
            "delivered_per_s": {"type": "number", "minimum": 0},
            "channels": closed(
                {
                    "total": _COUNT,
                    "by_subscribers": {"type": "array", "items": _CHANNEL, "maxItems": 10},
                    "by_event_rate": {"type": "array", "items": _CHANNEL, "maxItems": 10},
                }
            ),
            "webhooks": closed(
                {
                    "due": {"type": ["integer", "null"], "minimum": 0},
                    "in_flight": _COUNT,
                    "attempts": {"type": "object", "additionalProperties": _COUNT},
                    "failing": {
                        "type": "array",
                        "maxItems": 100,
                        "items": closed(
                            {
                                "endpoint_id": {"type": "string"},
                                "tenant": {"type": "string"},
                                "target": {"type": "string"},
                                "failing_since": _TIME,
                                "last_error": {"type": "string"},
                                "last_at": _TIME,
                                "failures": {"type": "integer", "minimum": 1},
                            }
                        ),
                    },
                }
            ),
            "slow_consumers": closed(
                {
                    "total": _COUNT,
                    "recent": {
                        "type": "array",
                        "maxItems": 50,
                        "items": closed(
                            {
                                "at": _TIME,
                                "endpoint": {"enum": ["public", "private", "push"]},
                                "queued_bytes": _COUNT,
                                "client": {"type": "string"},
                            }
                        ),
                    },
                }
            ),
        },
        description="one node's figures for its operator (GET /admin/api)",
    ),
}

_ADMIN: list[dict[str, list[str]]] = [{"adminKey": []}]


def operations_paths() -> dict[str, Any]:
    status = closed({"status": {"type": "string"}})
    return {
        "/readyz": {
            "get": operation(
                "Ready to serve",
                {
                    "200": answer("ready", status),
                    "503": answer(
                        "not ready: reasons says why (reason is the first of them)",
                        closed(
                            {
                                "status": {"const": "not ready"},
                                "reason": {"enum": list(READY_REASONS)},
                                "reasons": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {"enum": list(READY_REASONS)},
                                },
                            }
                        ),
                    ),
                },
                security=[],
                tags="operations",
                op_id="readyz",
            )
        },
        "/admin/api": {
            "get": operation(
                "This node's figures for its operator (only with admin_key set)",
                {
                    "200": answer("the figures", ref("AdminFigures")),
                    "401": answer("no bearer", ref("HttpError")),
                    "403": answer("not the admin key", ref("HttpError")),
                    "404": answer("no admin_key is set: no admin view", ref("HttpError")),
                },
                security=_ADMIN,
                tags="operations",
                op_id="adminFigures",
            )
        },
        "/admin": {
            "get": operation(
                "The admin page (it asks for the key; only with admin_key set)",
                {
                    "200": {"description": "the page", **content({"type": "string"}, "text/html")},
                    "404": answer("no admin_key is set: no admin view", ref("HttpError")),
                },
                security=[],
                tags="operations",
                op_id="adminPage",
            )
        },
    }
