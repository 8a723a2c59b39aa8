"""The tenant API's answers (PROTOCOL.md section 1): API key first, then the envelope.

``{"requestId", "success": true, "data"}`` or, built by ``server/errors.py``,
``{"requestId", "success": false, "error": {"code": <http status>, "key", "message"}}``.
``/auth/ws-token`` and every ``/webhooks`` route answer through :func:`tenant_answer`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from streamgate.auth.apikeys import ApiKeyError, ApiKeyInfo, ApiKeyStore
from streamgate.errors import TenantRefusal
from streamgate.server.auth import tenant_key
from streamgate.server.errors import envelope_error
from streamgate.server.messages import HttpRequest, HttpResponse, json_response

__all__ = ["TenantRun", "new_request_id", "success", "tenant_answer"]

# The work of a tenant route: the caller's key in, (HTTP status, data) out; refuses
# with TenantRefusal.
TenantRun = Callable[[ApiKeyInfo], Awaitable[tuple[int, Any]]]


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


def success(request_id: str, status: int, data: Any) -> HttpResponse:
    return json_response(status, {"requestId": request_id, "success": True, "data": data})


async def tenant_answer(keys: ApiKeyStore, request: HttpRequest, run: TenantRun) -> HttpResponse:
    """Authenticate the ``api-key``, then ``run`` it; answer either in the envelope.

    The key is checked before anything else is said about the request (its path
    included), so an unauthenticated client learns nothing of the routes.
    """
    request_id = new_request_id()
    try:
        status, data = await run(tenant_key(keys, request))
    except (ApiKeyError, TenantRefusal) as exc:
        return envelope_error(request_id, exc)
    return success(request_id, status, data)
