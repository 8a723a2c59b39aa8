"""The one map from streamgate's errors to what a client gets: an HTTP answer or a close.

Three HTTP body shapes, each built here and nowhere else:

- REST: ``{"error": {"code", "message"}}``: the router and the transport's limits,
  history, the demo, static files, refused upgrades. The producer API's adds
  ``"index"`` and ``"field"`` (null or not; PROTOCOL.md section 4).
- Tenant envelope (``/auth/ws-token``, ``/webhooks``; PROTOCOL.md section 1):
  ``{"requestId", "success": false, "error": {"code": <status>, "key", "message"}}``.
- Authorize (``/api/v1/authorize``; PROTOCOL.md section 2): ``{"error_code",
  "error_message"}``.

==============================  ===========================================================
exception                       answer
==============================  ===========================================================
``HttpRefusal``                 its ``status`` and ``headers``, the REST body
``ProducerRefusal``             the same, with ``index`` and ``field``
``BrokerUnavailable``,          (producer API) 503 ``UNAVAILABLE``, ``retry-after: 1``
``OutboxUnavailable``,
``NodeDraining``
``TenantRefusal``               its ``status`` and ``headers``, the envelope
``ApiKeyError``                 401 and the envelope
``AuthorizeError``              its ``status``, the authorize body, ``retry-after`` if set
``InvalidToken`` (push ticket)  close 4001 ``Invalid token``
``BrokerUnavailable`` (push)    close 1013 ``Try again later``
anything else (push)            close 1011 ``Internal error``
==============================  ===========================================================
"""

from __future__ import annotations

from typing import Final

import orjson

from streamgate.auth.apikeys import ApiKeyError
from streamgate.auth.authorize import AuthorizeError
from streamgate.auth.tokens import InvalidToken
from streamgate.errors import (
    BrokerUnavailable,
    HttpRefusal,
    NodeDraining,
    OutboxUnavailable,
    ProducerRefusal,
    StreamgateError,
    TenantRefusal,
)
from streamgate.protocol import close
from streamgate.server.messages import HttpResponse, json_response

__all__ = [
    "PRODUCER_UNAUTHORIZED",
    "RETRY_SOON",
    "authorize_error",
    "envelope_error",
    "http_error",
    "producer_error",
    "push_close",
    "refusal_response",
]

RETRY_SOON: Final = (("retry-after", "1"),)  # a 503 the client may retry in a second

PRODUCER_UNAUTHORIZED: Final = ProducerRefusal(
    "UNAUTHORIZED",
    "a valid producer key is required",
    status=401,
    headers=(("www-authenticate", "Bearer"),),
)


def http_error(
    status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> HttpResponse:
    """The REST error answer: ``{"error": {"code", "message"}}``."""
    return json_response(status, {"error": {"code": code, "message": message}}, list(headers))


def refusal_response(exc: HttpRefusal) -> HttpResponse:
    """``exc``'s answer: the REST body, with ``index`` and ``field`` for the producer API."""
    if not isinstance(exc, ProducerRefusal):
        return http_error(exc.status, exc.code, exc.detail, exc.headers)
    error = {"code": exc.code, "message": exc.detail, "index": exc.index, "field": exc.field}
    return json_response(exc.status, {"error": error}, list(exc.headers))


def producer_error(exc: StreamgateError) -> HttpResponse:
    """The producer API's answer to ``exc``: a refusal, or 503 when it cannot serve now.

    Raises:
        TypeError: ``exc`` is none of the classes the producer API answers.
    """
    if isinstance(exc, ProducerRefusal):
        return refusal_response(exc)
    if isinstance(exc, BrokerUnavailable | OutboxUnavailable | NodeDraining):
        message = str(exc) or "broker unavailable"
        return refusal_response(
            ProducerRefusal("UNAVAILABLE", message, status=503, headers=RETRY_SOON)
        )
    raise TypeError(f"the producer API has no answer for {type(exc).__name__}")


def envelope_error(request_id: str, exc: TenantRefusal | ApiKeyError) -> HttpResponse:
    """The tenant envelope of a refusal (PROTOCOL.md section 1)."""
    headers: tuple[tuple[str, str], ...] = ()
    if isinstance(exc, ApiKeyError):
        status, key, message = exc.status, exc.key, exc.message
    else:
        status, key, message, headers = exc.status, exc.code, exc.detail, exc.headers
    error = {"code": status, "key": key, "message": message}
    doc = {"requestId": request_id, "success": False, "error": error}
    return json_response(status, doc, list(headers))


def authorize_error(exc: AuthorizeError) -> HttpResponse:
    """``POST /api/v1/authorize``'s refusal: ``{error_code, error_message}``."""
    headers = [] if exc.retry_after is None else [("retry-after", str(exc.retry_after))]
    return HttpResponse(exc.status, orjson.dumps(exc.body()), headers=headers)


def push_close(exc: Exception) -> close.Close:
    """The close a push socket gets when binding it to its stream raised ``exc``."""
    if isinstance(exc, InvalidToken):
        return close.INVALID_TOKEN
    if isinstance(exc, BrokerUnavailable):
        return close.TRY_AGAIN
    return close.INTERNAL_ERROR
