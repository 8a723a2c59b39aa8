"""Authentication settings: what the gateway issues and which bearers it accepts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from streamgate.errors import ConfigError

__all__ = ["AuthSettings"]


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Bearer issuance and verification, and ``POST /api/v1/authorize`` limits.

    Times are seconds. The gateway's own tokens are HS256 with its secret (kept in
    ``data_dir/jwt.secret``); tokens of the platform's identity service verify with the
    keys named here, selected by the token's ``kid``:

    - ``hs256_secrets``: ``"kid=secret"`` or a plain secret (used for tokens without a
      ``kid``); at least 32 bytes each (RFC 7518 section 3.2).
    - ``public_key_files``: PEM public keys or certificates, ``"kid=path"`` or a path whose
      file stem is the kid. RSA (2048 bits or more) verifies RS256 only, EC P-256 ES256
      only, Ed25519 EdDSA only.
    - ``jwks_file``, ``jwks_url``: JWK sets; each key's algorithm follows from its type
      the same way (``oct`` keys are ignored: secrets belong in ``hs256_secrets``).

    A token is accepted from ``issuer`` or one of ``trusted_issuers`` (the latter only
    for platform tokens) and must name ``audience`` in ``aud``.
    """

    issuer: str = "streamgate"
    audience: str = "streamgate"
    bearer_ttl: float = 7 * 24 * 3600.0
    leeway: float = 30.0
    authorize_window: float = 30.0
    rate_limit: int = 100
    rate_window: float = 10.0
    trusted_issuers: tuple[str, ...] = ()
    hs256_secrets: tuple[str, ...] = ()
    public_key_files: tuple[str, ...] = ()
    jwks_file: str = ""
    jwks_url: str = ""

    def __post_init__(self) -> None:
        for name in ("bearer_ttl", "authorize_window", "rate_window"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        if not (math.isfinite(self.leeway) and self.leeway >= 0):
            raise ConfigError(f"leeway must be a number >= 0, got {self.leeway!r}")
        if isinstance(self.rate_limit, bool) or self.rate_limit <= 0:
            raise ConfigError(f"rate_limit must be a positive integer, got {self.rate_limit!r}")
        if not self.issuer or not self.audience:
            raise ConfigError("issuer and audience must not be empty")
        for name in ("trusted_issuers", "hs256_secrets", "public_key_files"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{name} must be a tuple of non-empty strings")
