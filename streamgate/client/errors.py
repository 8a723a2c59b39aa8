"""The SDK's errors: one root, :class:`ClientError`.

ClientError
├── ConnectError        the gateway cannot be reached or refused the handshake
├── AuthError           ``op: auth`` refused, or a push ticket refused (4001) twice in a row
├── SubscribeError      every topic of a subscribe was refused; ``refused`` maps topic -> code
├── ClosedError         the client was closed, or the server closed it for good
├── ProtocolError       a frame the SDK cannot read (not JSON, missing fields)
├── MarketNotFound      ``resolve_market`` found no market of that symbol or address
└── BookOutOfSync       a local order book no longer follows the gateway's
    ├── BookGap         a delta's ``seq`` does not follow the book's
    └── ChecksumMismatch  the book's CRC32 differs from the event's ``checksum``

The producer's ``PublishError`` (its refusals) lives in ``producer.py``.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BookGap",
    "BookOutOfSync",
    "ChecksumMismatch",
    "ClientError",
    "ClosedError",
    "ConnectError",
    "MarketNotFound",
    "ProtocolError",
    "SubscribeError",
]


class ClientError(Exception):
    """Root of every error the SDK raises on purpose."""


class ConnectError(ClientError):
    """The gateway could not be reached, or it refused the WebSocket handshake."""


class AuthError(ClientError):
    """The gateway refused the credentials (a bearer, an API key or a ticket).

    ``code`` is the wire's: ``INVALID_TOKEN`` of an ``op: auth``, an HTTP error key of
    ``POST /auth/ws-token`` (``INVALID_API_KEY``...), or ``"4001"`` for a push close.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


class SubscribeError(ClientError):
    """No topic of a subscribe was accepted; ``refused`` maps each topic to its error code."""

    def __init__(self, refused: dict[str, str]) -> None:
        super().__init__(", ".join(f"{t}: {c}" for t, c in refused.items()) or "refused")
        self.refused = refused


class ClosedError(ClientError):
    """The client is closed (by the application, or for good by the server)."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"closed ({code} {reason})".strip() if code else "closed")
        self.code = code
        self.reason = reason


class ProtocolError(ClientError):
    """The gateway sent a frame the SDK cannot read."""


class MarketNotFound(ClientError):
    """No market of the gateway has that symbol or address."""


class BookOutOfSync(ClientError):
    """The local order book no longer equals the gateway's: resubscribe for a snapshot."""


class BookGap(BookOutOfSync):
    """A delta's ``seq`` does not follow the last one applied (or no snapshot came first)."""

    def __init__(self, expected: int | None, got: int) -> None:
        super().__init__(f"seq gap: expected {expected}, got {got}")
        self.expected = expected
        self.got = got


class ChecksumMismatch(BookOutOfSync):
    """The book's CRC32 after applying an event differs from the event's ``checksum``."""

    def __init__(self, expected: int, computed: int, seq: int) -> None:
        super().__init__(f"checksum mismatch at seq {seq}: gateway {expected}, local {computed}")
        self.expected = expected
        self.computed = computed
        self.seq = seq
