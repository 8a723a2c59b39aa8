"""``POST /api/v1/authorize``, sans-I/O: a signed request body in, a bearer or an error out.

PROTOCOL.md section 2, "Getting the bearer": the body is
``{public_key, signature, timestamp_ms, nonce}``; ``public_key`` (32 bytes) and
``signature`` (64 bytes) are hex with or without ``0x``; the signature is Ed25519 over the
UTF-8 bytes of ``AUTHORIZE|{timestamp_ms}|{nonce}``. 200 ``{token, user_id}``, the token
lasting ``bearer_ttl`` (7 days); else 400 ``{error_code, error_message}``.

A wallet that signs the Aptos wallet-standard form (Ekiden's SDK example for a root
account) sends what it signed as the optional ``full_message``:
``APTOS\nmessage: AUTHORIZE|{timestamp_ms}|{nonce}\n[address: ...\n][application: ...\n]
[chainId: ...\n]nonce: {nonce}``. The signature is then over its UTF-8 bytes; its
``message:`` and ``nonce:`` lines must equal the body's and nothing else may be in it
(2001 otherwise, as for a bad signature: the message proves nothing else).

Signatures are checked by libsodium (PyNaCl), which refuses what RFC 8032's checks refuse
and OpenSSL lets through: small-order and non-canonical public keys (with them, an
identity-R, zero-S signature verifies for any message, so a handful of fixed
``user_id`` values would be anyone's), non-canonical ``S``.

:meth:`Authorizer.authorize` checks, in this order, and refuses with the first failure:

====  ======  ==============================================================
code  status  when
====  ======  ==============================================================
2003  429     more than ``rate_limit`` requests from the client IP in its
              ``rate_window`` (see :class:`~streamgate.auth.limits.WindowLimiter`),
              or too many nonces remembered at once; ``retry_after`` set
2000  400     the body is not a JSON object with the four fields well-formed
              (``timestamp_ms`` an integer, ``nonce`` 1 to 128 characters)
2002  400     ``timestamp_ms`` more than ``authorize_window`` seconds before or
              after the server's clock
2001  400     the signature does not verify for ``public_key``
2001  400     the (public_key, nonce) pair was used before
====  ======  ==============================================================

A reused nonce is 2001 "authentication failed", not 2002 "signature expired": the
request is fresh (its timestamp passed), it is the proof of identity that is spent. The
reference documents only say "400 on ... reused nonce". 2004 (not found) is never
raised here; the server uses it for unknown ``/api/v1`` paths.

A pair is remembered only once its signature verified (nobody can spend another's nonce)
and until ``max(timestamp, now) + authorize_window + 1`` seconds: by then its timestamp
is refused as stale, so no replay can pass. Memory is bounded, so "each pair works once"
holds within that time: a pair the client signs again later, with a new timestamp,
works again (it is not a replay; clients use a fresh random nonce each time anyway). The user id is
:func:`~streamgate.auth.accounts.account_address` of the key (PROTOCOL.md section 5).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import VerifyKey

from streamgate.auth.accounts import account_address, parse_hex
from streamgate.auth.limits import NonceRegistry, WindowLimiter
from streamgate.auth.settings import AuthSettings
from streamgate.auth.tokens import TokenIssuer
from streamgate.errors import StreamgateError

__all__ = [
    "AUTHENTICATION_FAILED",
    "INVALID_REQUEST",
    "MAX_BODY_BYTES",
    "MAX_NONCE_CHARS",
    "NOT_FOUND",
    "RATE_LIMIT_EXCEEDED",
    "SIGNATURE_EXPIRED",
    "AuthorizeError",
    "Authorized",
    "Authorizer",
    "authorize_message",
    "wallet_message_ok",
]

INVALID_REQUEST = 2000
AUTHENTICATION_FAILED = 2001
SIGNATURE_EXPIRED = 2002
RATE_LIMIT_EXCEEDED = 2003
NOT_FOUND = 2004

MAX_NONCE_CHARS = 128
MAX_BODY_BYTES = 8192
_FIELDS = ("public_key", "signature", "timestamp_ms", "nonce")
# Lines a wallet-standard full message may hold between ``message:`` and ``nonce:``, in order.
_WALLET_LINES = ("address: ", "application: ", "chainId: ")
_STATUS = {RATE_LIMIT_EXCEEDED: 429, NOT_FOUND: 404}


class AuthorizeError(StreamgateError):
    """An authorize request refused: the body is ``{error_code, error_message}``.

    ``status`` is the HTTP status (400; 429 for 2003; 404 for 2004) and ``retry_after``
    the ``Retry-After`` seconds for 2003, else None.
    """

    def __init__(
        self,
        error_code: int,
        message: str,
        *,
        retry_after: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message
        self.retry_after = retry_after
        self.status = _STATUS.get(error_code, 400) if status is None else status

    def body(self) -> dict[str, Any]:
        """The response body: ``{"error_code": int, "error_message": str}``."""
        return {"error_code": self.error_code, "error_message": self.message}


@dataclass(frozen=True, slots=True)
class Authorized:
    """A successful authorize: the response body is ``{token, user_id}``.

    ``replay_key`` names the (public key, nonce) pair; several nodes claim it in a
    shared store too (``streamgate.server.authorize``), so a pair works once cluster-wide.
    """

    token: str
    user_id: str
    replay_key: str = ""


def authorize_message(timestamp_ms: int, nonce: str) -> bytes:
    """The bytes a client signs: ``AUTHORIZE|{timestamp_ms}|{nonce}`` in UTF-8."""
    return f"AUTHORIZE|{timestamp_ms}|{nonce}".encode()


def wallet_message_ok(full_message: str, timestamp_ms: int, nonce: str) -> bool:
    """True when ``full_message`` is the wallet-standard form of this request, nothing else."""
    lines = full_message.split("\n")
    if len(lines) < 3 or lines[0] != "APTOS" or lines[-1] != f"nonce: {nonce}":
        return False
    if lines[1] != f"message: {authorize_message(timestamp_ms, nonce).decode()}":
        return False
    # Each optional line at most once, in the standard's order, with a value: every line
    # must match a prefix later than the one the line before it matched.
    rest = iter(_WALLET_LINES)
    return all(any(line.startswith(p) and len(line) > len(p) for p in rest) for line in lines[2:-1])


@dataclass(frozen=True, slots=True)
class _Request:
    public_key: bytes
    signature: bytes
    timestamp_ms: int
    nonce: str
    full_message: str | None = None

    @property
    def signed(self) -> bytes:
        """The bytes the signature must cover."""
        if self.full_message is not None:
            return self.full_message.encode()
        return authorize_message(self.timestamp_ms, self.nonce)


def _invalid(detail: str) -> AuthorizeError:
    return AuthorizeError(INVALID_REQUEST, f"invalid request: {detail}")


def _parse(body: bytes) -> _Request:
    if len(body) > MAX_BODY_BYTES:
        raise _invalid(f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _invalid("body is not JSON") from None
    if not isinstance(data, dict):
        raise _invalid("body is not a JSON object")
    for name in _FIELDS:
        if name not in data:
            raise _invalid(f"missing {name}")
    try:
        public_key = parse_hex(data["public_key"], 32)
    except ValueError as exc:
        raise _invalid(f"public_key: {exc}") from None
    try:
        signature = parse_hex(data["signature"], 64)
    except ValueError as exc:
        raise _invalid(f"signature: {exc}") from None
    timestamp_ms = data["timestamp_ms"]
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int):
        raise _invalid("timestamp_ms must be an integer")
    nonce = data["nonce"]
    if not isinstance(nonce, str) or not 1 <= len(nonce) <= MAX_NONCE_CHARS:
        raise _invalid(f"nonce must be a string of 1 to {MAX_NONCE_CHARS} characters")
    full_message = data.get("full_message")
    if full_message is not None and not isinstance(full_message, str):
        raise _invalid("full_message must be a string")
    return _Request(public_key, signature, timestamp_ms, nonce, full_message)


class Authorizer:
    """Turn signed authorize requests into bearers; holds the rate limit and used nonces.

    ``max_clients`` bounds the client IPs tracked by the rate limit, ``max_nonces`` the
    pairs remembered (when full, new authorizations get 2003 until the oldest expires).
    Not thread-safe: call it from the event loop (it does no I/O and no blocking work
    beyond one Ed25519 verification and one HMAC).
    """

    def __init__(
        self,
        issuer: TokenIssuer,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] = time.time,
        max_clients: int = 100_000,
        max_nonces: int = 250_000,
    ) -> None:
        self._issuer = issuer
        self._window = settings.authorize_window
        self._clock = clock
        self._limiter = WindowLimiter(
            settings.rate_limit, settings.rate_window, max_clients=max_clients
        )
        self._nonces = NonceRegistry(max_nonces)

    @property
    def tracked_clients(self) -> int:
        """Client IPs with an open rate-limit window."""
        return len(self._limiter)

    @property
    def remembered_nonces(self) -> int:
        """(public_key, nonce) pairs remembered against replay."""
        return len(self._nonces)

    def authorize(self, body: bytes, client_ip: str) -> Authorized:
        """Check one request body from ``client_ip``; return the bearer and user id.

        Raises:
            AuthorizeError: the first check that fails (see the module docstring).
        """
        now = self._clock()
        wait = self._limiter.hit(client_ip, now)
        if wait is not None:
            raise AuthorizeError(RATE_LIMIT_EXCEEDED, "rate limit exceeded", retry_after=wait)
        self._nonces.expire(now)
        request = _parse(body)
        skew = request.timestamp_ms / 1000 - now
        if abs(skew) > self._window:
            raise AuthorizeError(
                SIGNATURE_EXPIRED,
                f"signature expired: timestamp_ms is {skew:+.0f} s from server time "
                f"(allowed: {self._window:g} s either side)",
            )
        if request.full_message is not None and not wallet_message_ok(
            request.full_message, request.timestamp_ms, request.nonce
        ):
            raise AuthorizeError(
                AUTHENTICATION_FAILED,
                "authentication failed: full_message is not the wallet-standard form of "
                "AUTHORIZE|{timestamp_ms}|{nonce} with this request's timestamp_ms and nonce",
            )
        try:
            VerifyKey(request.public_key).verify(request.signed, request.signature)
        except (BadSignatureError, CryptoError, ValueError):
            raise AuthorizeError(AUTHENTICATION_FAILED, "authentication failed") from None
        key = hashlib.sha256(request.public_key + request.nonce.encode()).digest()
        if key in self._nonces:
            raise AuthorizeError(AUTHENTICATION_FAILED, "authentication failed: nonce already used")
        if self._nonces.full():
            oldest = self._nonces.next_expiry() or now
            raise AuthorizeError(
                RATE_LIMIT_EXCEEDED,
                "rate limit exceeded: too many authorizations in flight",
                retry_after=max(1, math.ceil(oldest - now)),
            )
        self._nonces.add(key, max(request.timestamp_ms / 1000, now) + self._window + 1.0)
        user_id = account_address(request.public_key)
        return Authorized(token=self._issuer.issue(user_id), user_id=user_id, replay_key=key.hex())
