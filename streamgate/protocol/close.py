"""Every WebSocket close the gateway sends: one ``(code, reason)`` each, in one place.

RFC 6455 section 7.4 codes, and the 4000..4999 private range for the protocols'
own (PROTOCOL.md section 1: 4001, 4002; the extensions 4008 and 4009, recorded in
docs/protocol-notes.md). Both endpoints send the same close for the same cause; the
AsyncAPI document lists them per endpoint (``x-close-codes``).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "ABUSE",
    "INTERNAL_ERROR",
    "INVALID_TOKEN",
    "MISSING_TOKEN",
    "PING_TIMEOUT",
    "READ_ONLY",
    "SERVICE_RESTART",
    "SLOW_CONSUMER",
    "STREAM_FAILED",
    "STREAM_INTERRUPTED",
    "TOO_MANY",
    "TRY_AGAIN",
    "Close",
]


class Close(NamedTuple):
    """A close frame's code and reason; ``conn.close(*close)`` sends it."""

    code: int
    reason: str


# Push protocol (/ws), PROTOCOL.md section 1.
MISSING_TOKEN = Close(4001, "Missing token")
INVALID_TOKEN = Close(4001, "Invalid token")
READ_ONLY = Close(4002, "Read-only")
TOO_MANY = Close(4008, "Too many")  # max_sockets_per_sub_user sockets are open

# Both protocols.
SLOW_CONSUMER = Close(4009, "Slow consumer")  # the outbound queue passed its bytes limit
SERVICE_RESTART = Close(1012, "Service restart")  # the node drains
STREAM_INTERRUPTED = Close(1012, "Stream interrupted")  # a stream lost continuity: resume
PING_TIMEOUT = Close(1011, "Ping timeout")
INTERNAL_ERROR = Close(1011, "Internal error")
TRY_AGAIN = Close(1013, "Try again later")  # the broker or presence store is unreachable

# Stream protocol (/ws/public, /ws/private).
ABUSE = Close(1008, "Too many refused requests")  # abuse_refusals within abuse_window
STREAM_FAILED = Close(1008, "Internal error")  # a stream command failed unexpectedly
