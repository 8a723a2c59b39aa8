"""The push API's response envelope (PROTOCOL.md section 1), shared by its HTTP routes.

``{"requestId", "success": true, "data"}`` or
``{"requestId", "success": false, "error": {"code": <http status>, "key", "message"}}``.
"""

from __future__ import annotations

import secrets
from typing import Any

from streamgate.server.http import HttpResponse, json_response

__all__ = ["failure", "new_request_id", "success"]


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


def success(request_id: str, status: int, data: Any) -> HttpResponse:
    return json_response(status, {"requestId": request_id, "success": True, "data": data})


def failure(
    request_id: str, status: int, key: str, message: str, headers: dict[str, str] | None = None
) -> HttpResponse:
    """An error envelope; ``headers`` such as ``{"retry-after": "3"}`` go on the response."""
    error = {"code": status, "key": key, "message": message}
    return json_response(
        status,
        {"requestId": request_id, "success": False, "error": error},
        headers=list((headers or {}).items()),
    )
