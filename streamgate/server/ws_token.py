"""``POST /auth/ws-token``: a tenant mints a push ticket for one sub-user (PROTOCOL.md s. 1).

Answers in the push API's envelope: ``{"requestId", "success": true, "data": {...}}`` or
``{"requestId", "success": false, "error": {"code", "key", "message"}}``.
"""

from __future__ import annotations

import time
from typing import Any

from streamgate.auth.apikeys import ApiKeyInfo, ApiKeyStore
from streamgate.auth.limits import WindowLimiter
from streamgate.auth.tokens import TokenIssuer
from streamgate.core.identifiers import MAX_SUB_USER, id_problem
from streamgate.errors import TenantRefusal
from streamgate.protocol.push import PUSH_PURPOSE, SCOPES
from streamgate.server.envelope import tenant_answer
from streamgate.server.messages import HttpRequest, HttpResponse

__all__ = ["WsTokenEndpoint", "valid_sub_user"]


def valid_sub_user(value: str | None) -> str | None:
    """Return why an On-Behalf-Of value is refused, or None when it is fine."""
    if not value:
        return "On-Behalf-Of header is required"
    problem = id_problem(value, MAX_SUB_USER)
    return None if problem is None else f"On-Behalf-Of {problem}"


class WsTokenEndpoint:
    """Checks the tenant's API key and signs a 1-hour ticket for (tenant, sub-user)."""

    def __init__(
        self,
        keys: ApiKeyStore,
        issuer: TokenIssuer,
        *,
        ttl: float,
        rate_limit: int,
        rate_window: float,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._ttl = ttl
        self._limiter = WindowLimiter(rate_limit, rate_window)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        return await tenant_answer(self._keys, request, lambda key: self._mint(request, key))

    async def _mint(self, request: HttpRequest, key: ApiKeyInfo) -> tuple[int, Any]:
        wait = self._limiter.hit(key.key_id, time.monotonic())
        if wait is not None:
            message = f"too many tickets for this API key; retry in {wait} s"
            raise TenantRefusal(
                "RATE_LIMITED", message, status=429, headers=(("retry-after", str(wait)),)
            )
        sub_user = request.header("on-behalf-of")
        problem = valid_sub_user(sub_user)
        if problem is not None or sub_user is None:
            raise TenantRefusal("VALIDATION_ERROR", problem or "")
        token = self._issuer.issue(
            sub_user,
            purpose=PUSH_PURPOSE,
            ttl=self._ttl,
            extra={"tenant": key.tenant, "scopes": list(SCOPES)},
        )
        return 200, {"token": token, "expiresIn": _duration(self._ttl)}


def _duration(seconds: float) -> str:
    """``3600`` -> ``"1h"``, ``90`` -> ``"90s"``: the document's ``expiresIn`` style."""
    whole = int(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"
