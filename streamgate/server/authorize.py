"""``POST /api/v1/authorize``: Ed25519-signed request in, stream bearer out (PROTOCOL.md s. 2).

With several nodes (the Redis broker) a (public key, nonce) pair must work once across
all of them: after this node's own checks pass, the pair is claimed in the shared
store (Redis ``SET NX``, kept as long as the node itself remembers it). A pair already
claimed elsewhere is 2001, like a replay on this node; a store that cannot be reached
is 503 with ``error_code`` 2000 and ``retry-after`` (no code of 2000..2004 fits better;
documented in docs/protocol-notes.md).
"""

from __future__ import annotations

from streamgate.auth.authorize import (
    AUTHENTICATION_FAILED,
    INVALID_REQUEST,
    AuthorizeError,
    Authorizer,
)
from streamgate.brokers.base import IdempotencyStore
from streamgate.errors import BrokerUnavailable
from streamgate.server.errors import authorize_error
from streamgate.server.messages import HttpRequest, HttpResponse, json_response
from streamgate.server.router import Handler

__all__ = ["authorize_endpoint"]

_NONCES_UNAVAILABLE = AuthorizeError(
    INVALID_REQUEST,
    "service unavailable: used nonces cannot be checked; retry",
    status=503,
    retry_after=1,
)


def authorize_endpoint(authorizer: Authorizer, shared: IdempotencyStore | None = None) -> Handler:
    """Return the route handler answering with ``{token, user_id}`` or ``{error_code, ...}``.

    ``shared``: where the nodes of a cluster claim used (public key, nonce) pairs.
    """

    async def authorize(request: HttpRequest) -> HttpResponse:
        try:
            result = authorizer.authorize(request.body, request.client)
            if shared is not None and await shared.claim([result.replay_key]):
                raise AuthorizeError(
                    AUTHENTICATION_FAILED, "authentication failed: nonce already used"
                )
        except AuthorizeError as exc:
            return authorize_error(exc)
        except BrokerUnavailable:
            return authorize_error(_NONCES_UNAVAILABLE)
        return json_response(200, {"token": result.token, "user_id": result.user_id})

    return authorize
