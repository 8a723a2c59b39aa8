"""The one error tree of streamgate.

StreamgateError
├── ConfigError            bad configuration file or environment value
├── RefusedError           a client-visible refusal; carries its wire ``code``
│   ├── StreamRefusal      stream protocol: becomes an ``{"op":"error"}`` frame
│   └── HttpRefusal        an HTTP ``status`` (and headers): ``{"error": {code, message}}``
│       ├── ProducerRefusal  producer API: adds ``index`` and ``field`` to that body
│       └── TenantRefusal  tenant API (``/auth/ws-token``, ``/webhooks``): the envelope
│                          ``{"requestId", "success": false, "error": {code, key, ...}}``
├── BrokerUnavailable      the broker cannot take or serve publications now (503)
├── BookRefused            an order-book event that does not follow its book (the
│                          producer API turns it into a 409 ProducerRefusal)
├── OutboxUnavailable      published, but the webhook outbox cannot be written (503)
├── NodeDraining           this node is shutting down and takes no new publish (503)
├── auth.tokens.InvalidToken     a bearer or ticket that does not verify
│   └── auth.tokens.TokenExpired its ``exp`` (plus leeway) has passed
├── auth.authorize.AuthorizeError  ``POST /api/v1/authorize`` refusal: ``error_code``
│                                  2000..2004 and its HTTP status
└── auth.apikeys.ApiKeyError       a refused ``api-key`` (401): MISSING_API_KEY,
                                   INVALID_API_KEY or API_KEY_REVOKED

The sans-I/O layers (``protocol/``, ``hub/``) raise these; ``server/errors.py`` maps
each class to its HTTP body or close code, in one place.
"""

from __future__ import annotations

__all__ = [
    "BookRefused",
    "BrokerUnavailable",
    "ConfigError",
    "HttpRefusal",
    "NodeDraining",
    "OutboxUnavailable",
    "ProducerRefusal",
    "RefusedError",
    "StreamRefusal",
    "StreamgateError",
    "TenantRefusal",
]


class StreamgateError(Exception):
    """Root of every error streamgate raises on purpose."""


class ConfigError(StreamgateError):
    """A configuration value is missing, malformed or out of range."""


class RefusedError(StreamgateError):
    """A request refused with a stable, documented ``code``."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class StreamRefusal(RefusedError):
    """A stream protocol op refused; the connection stays open.

    Raised while a frame is parsed (``protocol/stream.py``) and answered there as an
    ``{"op": "error"}`` frame: ``code`` is the frame's ``message``, ``detail`` its detail.
    """


class HttpRefusal(RefusedError):
    """An HTTP request refused with ``status``; ``headers`` go on the answer.

    The body is ``{"error": {"code": code, "message": detail}}`` (``server/errors.py``).
    """

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int = 400,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(code, detail)
        self.status = status
        self.headers = headers


class ProducerRefusal(HttpRefusal):
    """A publish batch refused whole; nothing of it was delivered.

    ``index`` is the position of the first bad event in ``events`` (None when the
    batch itself is bad) and ``field`` the dotted path of the bad field; both are in
    the body, null or not.
    """

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        index: int | None = None,
        field: str | None = None,
        status: int = 400,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(code, detail, status=status, headers=headers)
        self.index = index
        self.field = field


class TenantRefusal(HttpRefusal):
    """A tenant API request refused: answered in the push API's envelope instead.

    ``code`` is the envelope's error ``key`` (``VALIDATION_ERROR``, ``NOT_FOUND``...),
    ``detail`` its ``message``; ``status`` is both the HTTP status and the error's
    ``code`` (PROTOCOL.md section 1).
    """


class BrokerUnavailable(StreamgateError):
    """The broker is not connected; publish and history cannot be served."""


class BookRefused(StreamgateError):
    """Item ``position`` of a publish is a delta that does not follow its order book.

    ``code`` is ``NO_BOOK`` (no snapshot yet) or ``SEQ_GAP``; ``field`` the data field.
    """

    def __init__(self, position: int, code: str, detail: str, field: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.position = position
        self.code = code
        self.detail = detail
        self.field = field


class OutboxUnavailable(StreamgateError):
    """The webhook outbox could not take a published batch's push events (503).

    The batch is published; its idempotency keys stay claimed, so the producer's retry
    writes the outbox again without publishing again.
    """


class NodeDraining(StreamgateError):
    """This node is shutting down: it takes no new publish (503); use another node."""
