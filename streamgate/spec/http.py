"""Building blocks of the OpenAPI document: operations, answers, the push API's envelope."""

from __future__ import annotations

from typing import Any

from streamgate.spec.schemas import Schema, closed, ref

__all__ = [
    "API_KEY_KEYS",
    "ISO",
    "JSON",
    "TENANT",
    "WEBHOOK_KEYS",
    "answer",
    "content",
    "envelope",
    "failures",
    "operation",
    "path_param",
    "query",
]

JSON = "application/json"
WEBHOOK_KEYS = ("VALIDATION_ERROR", "NOT_FOUND", "METHOD_NOT_ALLOWED", "RATE_LIMITED")
API_KEY_KEYS = ("MISSING_API_KEY", "INVALID_API_KEY", "API_KEY_REVOKED")
ISO = {"type": "string", "description": "ISO-8601 UTC with milliseconds"}


def envelope(data: Schema) -> Schema:
    return closed(
        {
            "requestId": {"type": "string", "pattern": "^req_[0-9a-f]{16}$"},
            "success": {"const": True},
            "data": data,
        }
    )


def content(schema: Schema, media: str = JSON) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def answer(description: str, schema: Schema, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, **content(schema)}
    if headers:
        out["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return out


def failures(*statuses: int) -> dict[str, Any]:
    text = {
        400: "refused: the message names the field",
        401: "no, unknown or revoked api-key",
        404: "no such endpoint or message (another tenant's neither)",
        405: "method not allowed here",
        429: "too many requests",
    }
    out = {str(s): answer(text[s], ref("Failure")) for s in statuses}
    if 429 in statuses:
        out["429"]["headers"] = {"retry-after": {"schema": {"type": "string"}}}
    return out


TENANT: list[dict[str, list[str]]] = [{"apiKey": []}]


def operation(
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
        op["requestBody"] = {"required": True, **content(body)}
    op["responses"] = responses
    return op


def path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": "^[^/]+$"},
    }


def query(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,  # ?limit= is as if absent
        "description": description,
        "schema": schema,
    }
