"""Who a request comes from: the ``Authorization: Bearer`` header and the tenant ``api-key``.

Read here once for every route: the producer key and the demo's stream bearer
(``bearer_token``), the tenant routes (``/auth/ws-token``, ``/webhooks``) and their head
checks (``tenant_key``, ``tenant_key_check``). Verifying a bearer is the caller's: a
producer key is compared in constant time, a stream bearer is a signed token.
"""

from __future__ import annotations

from typing import Final

from streamgate.auth.apikeys import ApiKeyError, ApiKeyInfo, ApiKeyStore
from streamgate.server.messages import HttpRequest
from streamgate.server.router import HeadCheck

__all__ = ["API_KEY_HEADER", "bearer_token", "tenant_key", "tenant_key_check"]

API_KEY_HEADER: Final = "api-key"  # PROTOCOL.md section 1


def bearer_token(request: HttpRequest) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (RFC 6750 section 2.1), or None.

    The scheme is case-insensitive (RFC 9110 section 11.1) and the token is stripped of
    surrounding spaces; None when the header is absent, has another scheme, or no token.
    """
    scheme, _, token = (request.header("authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def tenant_key(keys: ApiKeyStore, request: HttpRequest) -> ApiKeyInfo:
    """The active API key in the request's ``api-key`` header.

    Raises:
        ApiKeyError: MISSING_API_KEY, INVALID_API_KEY or API_KEY_REVOKED (401).
    """
    return keys.authenticate(request.header(API_KEY_HEADER))


def tenant_key_check(keys: ApiKeyStore) -> HeadCheck:
    """A head check (``Router.check_head``): True when the ``api-key`` is active."""

    def check(request: HttpRequest) -> bool:
        try:
            tenant_key(keys, request)
        except ApiKeyError:
            return False
        return True

    return check
