"""Bearer JWTs: the gateway issues its own (HS256) and verifies its own and the platform's.

PROTOCOL.md section 5: a bearer carries the account address as ``sub``. The gateway's
own tokens are HS256 under kid ``"streamgate"`` with a secret kept in
``data_dir/jwt.secret`` (:func:`load_or_create_secret`), so a restart logs nobody out.
They carry ``iss``, ``aud``, ``sub``, ``iat``, ``nbf``, ``exp``, ``jti`` and ``purpose``.

:class:`BearerVerifier` routes a token by its header, then checks it:

1. Own tokens (kid ``"streamgate"``, or no kid and ``iss`` equal to ``settings.issuer``)
   verify with the secret as HS256 only, must come from ``settings.issuer`` and carry a
   ``purpose``.
2. Other tokens select a platform key by kid (:mod:`streamgate.auth.keys`); a token
   without a kid may verify with a plain ``hs256_secrets`` entry. Unknown kid: refused.
3. The header ``alg`` must be the selected key's one algorithm.
4. The signature (PyJWT), then ``iss`` (``settings.issuer`` or ``trusted_issuers``), ``aud``
   (``settings.audience``), ``sub`` (a non-empty string), ``purpose`` (when present, the
   verifier's), ``nbf`` and ``iat`` (not in the future), and ``exp`` last, all against the
   injected clock with ``settings.leeway``.

Every refusal is :class:`InvalidToken` with a short ``reason``; an otherwise valid but
expired token is :class:`TokenExpired`, so the caller can tell the client to re-authorize.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from streamgate.auth.keys import (
    ALGORITHMS,
    OWN_KID,
    KeyRing,
    RemoteKeys,
    VerifyKey,
    check_secret,
)
from streamgate.auth.settings import AuthSettings
from streamgate.errors import ConfigError, StreamgateError

__all__ = [
    "MAX_TOKEN_CHARS",
    "OWN_KID",
    "SECRET_FILE",
    "STREAM_PURPOSE",
    "BearerVerifier",
    "Claims",
    "InvalidToken",
    "TokenExpired",
    "TokenIssuer",
    "load_or_create_secret",
]

STREAM_PURPOSE = "stream"
SECRET_FILE = "jwt.secret"  # noqa: S105 (a file name)
SECRET_BYTES = 32
MAX_TOKEN_CHARS = 8192  # longer tokens are refused before any parsing
_RESERVED = frozenset({"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "purpose"})


class InvalidToken(StreamgateError):
    """A bearer that does not verify; ``reason`` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenExpired(InvalidToken):
    """A bearer that verified in every respect but has expired."""


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified bearer: its subject (the user id), expiry and every claim."""

    subject: str
    expires_at: float  # unix seconds
    claims: dict[str, Any]


def load_or_create_secret(data_dir: Path) -> bytes:
    """Return the gateway's signing secret, creating ``data_dir/jwt.secret`` the first time.

    The file is created with mode 0600 holding 32 random bytes: written to a private
    temporary file first, then linked into place (``link`` fails if the name exists, like
    ``O_EXCL``), so concurrent first starts agree on one secret and nobody ever reads a
    half-written file. On a file system without hard links the file is created in place
    with ``O_EXCL`` instead (a racing start may then see it short and refuse to start).
    The file is then read back; an operator may put any secret of 32 bytes or more there.

    Raises:
        ConfigError: the directory or file cannot be used, or the secret is too short.
    """
    path = Path(data_dir) / SECRET_FILE
    try:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create_secret(path)
        secret = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot use {path}: {exc}") from None
    try:
        return check_secret(secret, str(path))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _create_secret(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        _write_new(tmp)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: its secret it is
        except OSError:  # no hard links here
            with contextlib.suppress(FileExistsError):
                _write_new(path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_new(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(SECRET_BYTES))
        f.flush()
        os.fsync(f.fileno())


class TokenIssuer:
    """Issue the gateway's own HS256 bearers (kid ``"streamgate"``)."""

    def __init__(
        self, secret: bytes, settings: AuthSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        """Raises ``ValueError`` when ``secret`` is under 32 bytes or looks like a key."""
        self._secret = check_secret(secret, "the signing secret")
        self._settings = settings
        self._clock = clock

    def issue(
        self,
        subject: str,
        *,
        purpose: str = STREAM_PURPOSE,
        ttl: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Return a signed bearer for ``subject`` valid for ``ttl`` (default ``bearer_ttl``).

        Raises:
            ValueError: empty subject or purpose, a non-positive ttl, or ``extra``
                naming a registered claim.
        """
        if not subject or not purpose:
            raise ValueError("subject and purpose must not be empty")
        ttl = self._settings.bearer_ttl if ttl is None else ttl
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl must be positive, got {ttl!r}")
        clash = _RESERVED.intersection(extra or ())
        if clash:
            raise ValueError(f"extra claims may not set {sorted(clash)}")
        now = self._clock()
        payload: dict[str, Any] = {
            **(extra or {}),
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": subject,
            "iat": math.floor(now),
            "nbf": math.floor(now),
            "exp": math.floor(now + ttl),
            "jti": secrets.token_urlsafe(16),
            "purpose": purpose,
        }
        return jwt.encode(payload, self._secret, algorithm="HS256", headers={"kid": OWN_KID})


_PYJWT_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.exceptions.InvalidSubjectError, "bad sub"),
    (jwt.exceptions.InvalidJTIError, "bad jti"),
    (jwt.InvalidKeyError, "bad key"),
)


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing {exc.claim}"
    for kind, reason in _PYJWT_REASONS:
        if isinstance(exc, kind):
            return reason
    return "malformed"


def _time_claim(claims: Mapping[str, Any], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"bad {name}")
    try:
        seconds = float(value)
    except OverflowError:  # an integer too large for a float
        raise InvalidToken(f"bad {name}") from None
    if not math.isfinite(seconds):
        raise InvalidToken(f"bad {name}")
    return seconds


class BearerVerifier:
    """Verify bearers: the gateway's own and, when configured, the platform's.

    Construction loads every configured key (files are read here, once). When
    ``settings.jwks_url`` is set, :meth:`verify` may block on a fetch for a token whose
    kid is unknown (see :class:`~streamgate.auth.keys.RemoteKeys`): :attr:`may_block`
    tells the caller to run it in a thread. ``jwks_client`` replaces the ``PyJWKClient``
    (tests). Thread-safe.
    """

    def __init__(
        self,
        secret: bytes,
        settings: AuthSettings,
        *,
        purpose: str = STREAM_PURPOSE,
        own_only: bool = False,
        clock: Callable[[], float] = time.time,
        jwks_client: jwt.PyJWKClient | None = None,
    ) -> None:
        """Raises ``ValueError`` for a bad secret, ``ConfigError`` for a bad platform key.

        ``own_only``: accept only tokens signed with ``secret`` (the gateway's own), never a
        platform key's: push tickets are minted by the gateway alone.
        """
        self._own = VerifyKey(
            OWN_KID, "HS256", check_secret(secret, "the signing secret"), "the signing secret"
        )
        self._settings = settings
        self._purpose = purpose
        self._own_only = own_only
        self._clock = clock
        self._ring = KeyRing.from_settings(
            settings.hs256_secrets, settings.public_key_files, settings.jwks_file
        )
        self._remote = (
            RemoteKeys(settings.jwks_url, client=jwks_client, clock=clock)
            if settings.jwks_url
            else None
        )
        self._platform_issuers = (settings.issuer, *settings.trusted_issuers)
        self._jwt = jwt.PyJWT(
            {
                "verify_signature": True,
                "verify_exp": False,  # time claims: checked below with the injected clock
                "verify_nbf": False,
                "verify_iat": False,
                "verify_iss": True,
                "verify_aud": True,
                "verify_sub": True,
                "verify_jti": True,
                "require": ["exp", "iat", "sub", "iss", "aud"],
                "enforce_minimum_key_length": True,
            }
        )

    @property
    def may_block(self) -> bool:
        """True when :meth:`verify` can fetch a JWKS URL (blocking I/O)."""
        return self._remote is not None

    def verify(self, token: str) -> Claims:
        """Verify ``token`` and return its claims.

        Raises:
            TokenExpired: a valid token past ``exp`` (plus leeway).
            InvalidToken: anything else wrong with it.
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise InvalidToken("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise InvalidToken("malformed") from None
        alg, kid = header.get("alg"), header.get("kid")
        # before any key lookup, so that garbage never makes the JWKS URL be fetched
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise InvalidToken("algorithm not allowed")
        issuers: tuple[str, ...]
        own = kid == OWN_KID or (kid is None and self._peek_issuer(token) == self._settings.issuer)
        if own:
            candidates, issuers = [self._own], (self._settings.issuer,)
        elif self._own_only:
            raise InvalidToken("not signed by this gateway")
        else:
            candidates, issuers = self._platform_keys(kid), self._platform_issuers
        if alg != candidates[0].algorithm:
            raise InvalidToken("algorithm not allowed")
        claims = self._decode(token, candidates, issuers)
        return self._check(claims, own)

    def _peek_issuer(self, token: str) -> object:
        try:
            payload = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise InvalidToken("malformed") from None
        return payload.get("iss")

    def _platform_keys(self, kid: object) -> list[VerifyKey]:
        if kid is None:
            if not self._ring.anonymous:
                raise InvalidToken("missing kid")
            return self._ring.anonymous
        assert isinstance(kid, str)  # PyJWT refuses a non-string kid
        key = self._ring.by_kid.get(kid)
        if key is None and self._remote is not None:
            key = self._remote.get(kid)
        if key is None:
            raise InvalidToken("unknown kid")
        return [key]

    def _decode(
        self, token: str, candidates: list[VerifyKey], issuers: tuple[str, ...]
    ) -> dict[str, Any]:
        for key in candidates:  # one key, or plain secrets of one algorithm
            try:
                claims: dict[str, Any] = self._jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.algorithm],
                    audience=self._settings.audience,
                    issuer=issuers,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise InvalidToken(_reason(exc)) from None
            except (ValueError, TypeError, RecursionError):
                raise InvalidToken("malformed") from None
            return claims
        raise InvalidToken("bad signature")

    def _check(self, claims: dict[str, Any], own: bool) -> Claims:
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("bad sub")
        purpose = claims.get("purpose")
        if purpose is None and own:
            raise InvalidToken("missing purpose")
        if purpose is not None and purpose != self._purpose:
            raise InvalidToken("wrong purpose")
        now, leeway = self._clock(), self._settings.leeway
        expires_at = _time_claim(claims, "exp")
        if _time_claim(claims, "iat") > now + leeway:
            raise InvalidToken("issued in the future")
        if "nbf" in claims and _time_claim(claims, "nbf") > now + leeway:
            raise InvalidToken("not yet valid")
        if expires_at <= now - leeway:
            raise TokenExpired("expired")
        return Claims(subject=subject, expires_at=expires_at, claims=claims)
