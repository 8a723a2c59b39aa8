"""Standard Webhooks signatures (PROTOCOL.md section 1, Webhooks).

A secret is ``whsec_`` followed by the standard base64 of :data:`SECRET_BYTES` random
bytes; the HMAC key is those decoded bytes. A delivery carries

- ``webhook-id``: the message id, the same on every retry of one message;
- ``webhook-timestamp``: the attempt's time in integer Unix seconds;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``, one
  per secret, separated by single spaces. During a secret rotation's overlap the endpoint
  holds the old and the new secret and both sign, so a receiver that knows either
  verifies (the specification allows several signatures for exactly this).

so the public ``standardwebhooks`` verifiers accept it. Receivers check the timestamp
against their clock (5 minutes of tolerance in the reference verifier), so the
timestamp is taken at each attempt and the headers are computed anew for each.

Message ids are ``msg_`` + 26 characters of Crockford base32 (ULID layout: 48 bits of
Unix milliseconds, then 80 bits that start random and are incremented for further ids
within the same millisecond of this process), so they sort by creation time as strings.
An event with an idempotency key gets :func:`keyed_message_id` instead: derived from its
tenant and key, the same on every node and every retry of the publish, so a receiver can
de-duplicate by ``webhook-id`` (those ids are not time-ordered).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections.abc import Sequence
from secrets import randbits, token_bytes
from typing import Final

__all__ = [
    "CONTENT_TYPE",
    "MESSAGE_ID_PREFIX",
    "SECRET_BYTES",
    "SECRET_PREFIX",
    "headers",
    "keyed_message_id",
    "new_message_id",
    "new_secret",
    "secret_key",
    "sign",
]

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES: Final = 32  # the specification asks for 24..64 bytes
MESSAGE_ID_PREFIX: Final = "msg_"
CONTENT_TYPE: Final = "application/json"

_MIN_KEY_BYTES: Final = 1  # received secrets are not ours to judge beyond "not empty"
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS: Final = 80


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of :data:`SECRET_BYTES` random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: its base64 part decoded (padding optional).

    Raises:
        ValueError: no ``whsec_`` prefix, bad base64, or an empty key.
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    encoded += "=" * (-len(encoded) % 4)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if len(key) < _MIN_KEY_BYTES:
        raise ValueError("a webhook secret may not be empty")
    return key


def _check_msg_id(msg_id: str) -> None:
    # It goes into a header and into the signed content: visible ASCII only, no spaces.
    if not msg_id or not all("!" <= c <= "~" for c in msg_id):
        raise ValueError("a webhook message id is 1+ visible ASCII characters")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, f"{msg_id}.{timestamp}.".encode() + body)>``."""
    _check_msg_id(msg_id)
    if timestamp < 0:
        raise ValueError("a webhook timestamp is Unix seconds >= 0")
    content = f"{msg_id}.{timestamp}.".encode("ascii") + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The headers of one delivery attempt: id, timestamp, signatures and content type.

    ``secrets`` are the endpoint's current secrets (two during a rotation's overlap),
    each signing once, in the given order; repeats sign once.

    Raises:
        ValueError: no secret, or a malformed secret, id or timestamp.
    """
    if isinstance(secrets, str):  # a lone secret would be signed character by character
        raise TypeError("secrets is a sequence of secrets, not one string")
    unique = list(dict.fromkeys(secrets))
    if not unique:
        raise ValueError("at least one secret signs a webhook")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in unique),
        "content-type": CONTENT_TYPE,
    }


class _MessageIds:
    """ULID-layout ids, strictly increasing within this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random = 0

    def next(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:  # same millisecond, or the clock stepped back
                ms = self._last_ms
                rand = self._last_random + 1
                if rand >> _RANDOM_BITS:  # 2**80 ids in one millisecond: borrow the next
                    ms += 1
                    rand = randbits(_RANDOM_BITS - 1)
            else:
                # One bit short of full width leaves room to increment without overflow.
                rand = randbits(_RANDOM_BITS - 1)
            self._last_ms, self._last_random = ms, rand
        value = (ms << _RANDOM_BITS) | rand
        chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)]
        return MESSAGE_ID_PREFIX + "".join(chars)


_ids = _MessageIds()


def new_message_id() -> str:
    """``msg_`` + a 26-character time-ordered unique id (ULID layout, module docstring)."""
    return _ids.next()


_KEYED_DOMAIN: Final = b"streamgate webhook-id v1\n"


def keyed_message_id(tenant: str, idempotency_key: str) -> str:
    """``msg_`` + 26 Crockford base32 characters of SHA-256 over the tenant and the key.

    One event (one tenant's idempotency key) has one id on every node, retry and race;
    the tenant is part of it because ids are unique across tenants. A tenant name has
    no newline, so ``tenant + "\\n" + key`` is unambiguous.
    """
    digest = hashlib.sha256(
        _KEYED_DOMAIN + tenant.encode() + b"\n" + idempotency_key.encode("utf-8", "surrogatepass")
    ).digest()
    value = int.from_bytes(digest[:16], "big")  # 128 bits, like a ULID
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5)]
    return MESSAGE_ID_PREFIX + "".join(chars)
