"""Authentication, sans-I/O: Ed25519 authorize, bearer JWTs, account addresses.

- :mod:`.accounts`: ``user_id`` from an Ed25519 public key (PROTOCOL.md section 5).
- :mod:`.authorize`: ``POST /api/v1/authorize`` request in, bearer or error out.
- :mod:`.tokens`: issue the gateway's own bearers, verify own and platform bearers.
- :mod:`.keys`: platform verification keys, each bound to one algorithm.
- :mod:`.limits`: bounded rate limit and replay memory for authorize.
- :mod:`.settings`: :class:`AuthSettings`.
- :mod:`.apikeys`: tenants and their API keys (SQLite, hashes only).

Nothing here opens a socket, except that a configured JWKS URL is fetched (blocking) by
:class:`~.tokens.BearerVerifier` when a token names an unknown kid.
"""

from streamgate.auth.accounts import account_address, parse_hex
from streamgate.auth.apikeys import ApiKeyError, ApiKeyInfo, ApiKeyStore
from streamgate.auth.authorize import Authorized, AuthorizeError, Authorizer
from streamgate.auth.settings import AuthSettings
from streamgate.auth.tokens import (
    STREAM_PURPOSE,
    BearerVerifier,
    Claims,
    InvalidToken,
    TokenExpired,
    TokenIssuer,
    load_or_create_secret,
)

__all__ = [
    "STREAM_PURPOSE",
    "ApiKeyError",
    "ApiKeyInfo",
    "ApiKeyStore",
    "AuthSettings",
    "AuthorizeError",
    "Authorized",
    "Authorizer",
    "BearerVerifier",
    "Claims",
    "InvalidToken",
    "TokenExpired",
    "TokenIssuer",
    "account_address",
    "load_or_create_secret",
    "parse_hex",
]
