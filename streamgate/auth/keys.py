"""Verification keys for platform bearers, each bound to the one algorithm its type allows.

A key's algorithm is fixed here, when the key is loaded, by what the key is: an HS256
secret, an RSA key (RS256, 2048 bits or more), an EC P-256 key (ES256) or an Ed25519 key
(EdDSA). A token's header ``alg`` must equal it; the header never chooses the algorithm,
so ``alg: none`` and algorithm confusion (HS256 with a public key as the secret) cannot
verify. A JWK's own ``alg`` member, when present, must agree too.

:class:`KeyRing` holds the configured keys by ``kid``; :class:`RemoteKeys` adds the keys
of a JWKS URL, fetched with PyJWT's ``PyJWKClient`` only when a ``kid`` is unknown (or the
fetched set is older than :data:`JWKS_MAX_AGE`), at most once per :data:`JWKS_COOLDOWN`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import HMACAlgorithm

from streamgate.errors import ConfigError

__all__ = [
    "ALGORITHMS",
    "JWKS_COOLDOWN",
    "JWKS_MAX_AGE",
    "MIN_RSA_BITS",
    "MIN_SECRET_BYTES",
    "OWN_KID",
    "KeyRing",
    "PublicKey",
    "RemoteKeys",
    "VerifyKey",
    "algorithm_for",
    "check_secret",
    "jwks_keys",
    "load_pem_key",
    "parse_secret",
]

log = logging.getLogger(__name__)

OWN_KID = "streamgate"  # kid of the gateway's own tokens; reserved
MIN_SECRET_BYTES = 32  # RFC 7518 section 3.2: an HS256 key is at least the hash size
MIN_RSA_BITS = 2048
JWKS_COOLDOWN = 30.0  # seconds between two fetches of the JWKS URL
JWKS_MAX_AGE = 3600.0  # a fetched set older than this is fetched again when used

ALGORITHMS = frozenset({"HS256", "RS256", "ES256", "EdDSA"})  # the only ones ever verified

PublicKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey

_HMAC = HMACAlgorithm(HMACAlgorithm.SHA256)


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """One key and the only algorithm it verifies."""

    kid: str | None  # None: a plain secret, for tokens without a kid
    algorithm: str  # "HS256", "RS256", "ES256" or "EdDSA"
    key: bytes | PublicKey
    source: str  # where it came from, for messages


def check_secret(secret: bytes, what: str) -> bytes:
    """Return ``secret`` if it can be an HS256 key, else raise ``ValueError``.

    It must be at least :data:`MIN_SECRET_BYTES` long and must not look like a public
    key, a certificate or a JWK (PyJWT refuses those as HMAC secrets).
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{what} is {len(secret)} bytes; HS256 needs {MIN_SECRET_BYTES} or more")
    try:
        _HMAC.prepare_key(secret)
    except jwt.InvalidKeyError as exc:
        raise ValueError(f"{what} cannot be an HMAC secret: {exc}") from None
    return secret


def parse_secret(entry: str, index: int) -> VerifyKey:
    """Parse an ``hs256_secrets`` entry: ``"kid=secret"`` or a plain secret.

    The text before the first ``=`` is a kid when what follows is long enough to be a
    secret; a plain base64 secret (``=`` only as trailing padding) is therefore never
    mistaken for ``kid=secret``.

    Raises:
        ConfigError: the secret is shorter than :data:`MIN_SECRET_BYTES` bytes.
    """
    what = f"hs256_secrets[{index}]"
    kid, sep, rest = entry.partition("=")
    named = bool(sep) and bool(kid) and len(rest.encode()) >= MIN_SECRET_BYTES
    secret = (rest if named else entry).encode()
    try:
        check_secret(secret, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return VerifyKey(kid if named else None, "HS256", secret, what)


def algorithm_for(key: object) -> str:
    """Return the one algorithm a public key verifies.

    Raises:
        ValueError: an unsupported key type or curve, or an RSA key under 2048 bits.
    """
    if isinstance(key, RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RSA key of {key.key_size} bits; {MIN_RSA_BITS} or more needed")
        return "RS256"
    if isinstance(key, EllipticCurvePublicKey):
        if not isinstance(key.curve, SECP256R1):
            raise ValueError(f"EC curve {key.curve.name} not supported; only P-256 (ES256)")
        return "ES256"
    if isinstance(key, Ed25519PublicKey):
        return "EdDSA"
    raise ValueError(f"unsupported key type {type(key).__name__}")


def load_pem_key(entry: str) -> VerifyKey:
    """Load a ``public_key_files`` entry: ``"kid=path"``, or a path whose stem is the kid.

    The file holds a PEM public key (``BEGIN PUBLIC KEY``) or certificate; private keys
    are refused.

    Raises:
        ConfigError: unreadable file, not a public key, unsupported type.
    """
    kid, sep, rest = entry.partition("=")
    if sep and kid and "/" not in kid and "\\" not in kid:
        path = Path(rest)
    else:
        path = Path(entry)
        kid = path.stem
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"public_key_files: cannot read {path}: {exc}") from None
    if b"PRIVATE KEY-----" in data:
        raise ConfigError(f"public_key_files: {path} holds a private key; give the public key")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
        algorithm = algorithm_for(key)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"public_key_files: {path}: {exc}") from None
    assert isinstance(key, RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey)
    return VerifyKey(kid, algorithm, key, str(path))


_JWK_TYPES = {("RSA", None): "RS256", ("EC", "P-256"): "ES256", ("OKP", "Ed25519"): "EdDSA"}


def _jwk_key(jwk: Mapping[str, Any], source: str) -> VerifyKey:
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("a key without a kid cannot be selected")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    algorithm = _JWK_TYPES.get((str(kty), None if kty == "RSA" else str(crv)))
    if algorithm is None:
        raise ValueError(f"kid {kid!r}: kty {kty!r} crv {jwk.get('crv')!r} not supported")
    declared = jwk.get("alg")
    if declared is not None and declared != algorithm:
        raise ValueError(f"kid {kid!r}: alg {declared!r} does not match its {kty} key")
    if "d" in jwk:
        raise ValueError(f"kid {kid!r} holds private key material")
    try:
        key = jwt.PyJWK(dict(jwk), algorithm).key
    except jwt.PyJWTError as exc:
        raise ValueError(f"kid {kid!r}: {exc}") from None
    algorithm_for(key)  # size and curve checks
    return VerifyKey(kid, algorithm, key, source)


def jwks_keys(data: object, source: str) -> tuple[list[VerifyKey], list[str]]:
    """Read the signing keys of a JWK set; return them and the problems met.

    Keys for encryption (``use`` other than ``sig``) are left out silently; keys that
    cannot be used (no kid, unsupported type, ``alg`` not matching the type, private
    material, a kid seen before) are left out and described in the problems.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        return [], [f"{source}: not a JWK set (an object with a 'keys' array)"]
    keys: list[VerifyKey] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, jwk in enumerate(data["keys"]):
        if not isinstance(jwk, Mapping):
            problems.append(f"{source}: keys[{i}] is not an object")
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        try:
            key = _jwk_key(jwk, source)
        except ValueError as exc:
            problems.append(f"{source}: keys[{i}]: {exc}")
            continue
        assert key.kid is not None
        if key.kid in seen:
            problems.append(f"{source}: keys[{i}]: kid {key.kid!r} appears twice")
            continue
        seen.add(key.kid)
        keys.append(key)
    return keys, problems


class KeyRing:
    """The configured platform keys: by kid, plus plain secrets for kid-less tokens."""

    def __init__(self, keys: Iterable[VerifyKey]) -> None:
        self.by_kid: dict[str, VerifyKey] = {}
        self.anonymous: list[VerifyKey] = []
        for key in keys:
            if key.kid is None:
                self.anonymous.append(key)
            elif key.kid == OWN_KID:
                raise ConfigError(f"{key.source}: kid {OWN_KID!r} is reserved for own tokens")
            elif key.kid in self.by_kid:
                raise ConfigError(
                    f"kid {key.kid!r} is given twice ({self.by_kid[key.kid].source}, {key.source})"
                )
            else:
                self.by_kid[key.kid] = key

    @classmethod
    def from_settings(
        cls, hs256_secrets: Iterable[str], public_key_files: Iterable[str], jwks_file: str
    ) -> KeyRing:
        """Load every configured key.

        Raises:
            ConfigError: any entry that cannot be used (the gateway should not start).
        """
        keys = [parse_secret(entry, i) for i, entry in enumerate(hs256_secrets)]
        keys += [load_pem_key(entry) for entry in public_key_files]
        if jwks_file:
            try:
                data = json.loads(Path(jwks_file).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"jwks_file: cannot read {jwks_file}: {exc}") from None
            found, problems = jwks_keys(data, jwks_file)
            if problems:
                raise ConfigError("; ".join(problems))
            keys += found
        return cls(keys)


class RemoteKeys:
    """The keys of a JWKS URL, fetched lazily and cached.

    :meth:`get` fetches when the kid is unknown or the cached set is older than
    :data:`JWKS_MAX_AGE`, and never twice within :data:`JWKS_COOLDOWN` (an attacker
    sending random kids cannot make the gateway hammer the identity service). A failed
    fetch keeps the keys fetched before. Fetching blocks (up to ``timeout``): callers on
    an event loop run :meth:`get` in a thread. Thread-safe.
    """

    def __init__(
        self,
        url: str,
        *,
        client: jwt.PyJWKClient | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 5.0,
    ) -> None:
        try:
            self._client = client or jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout)
        except jwt.PyJWKClientError as exc:
            raise ConfigError(f"jwks_url: {exc}") from None
        self._url = url
        self._clock = clock
        self._keys: dict[str, VerifyKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt
        self._lock = threading.Lock()

    def get(self, kid: str) -> VerifyKey | None:
        """Return the key for ``kid``, fetching the set first if needed and allowed."""
        with self._lock:
            now = self._clock()
            key = self._keys.get(kid)
            stale = self._fetched_at is None or now - self._fetched_at > JWKS_MAX_AGE
            if key is not None and not stale:
                return key
            if self._tried_at is None or now - self._tried_at >= JWKS_COOLDOWN:
                self._tried_at = now
                self._fetch(now)
            return self._keys.get(kid)

    def _fetch(self, now: float) -> None:
        try:
            data = self._client.fetch_data()
        except (jwt.PyJWTError, OSError, ValueError) as exc:
            log.warning("! jwks_url %s: fetch failed: %s", self._url, exc)
            return
        keys, problems = jwks_keys(data, self._url)
        for problem in problems:
            log.warning("! %s", problem)
        if not keys:
            log.warning(
                "! jwks_url %s: no usable signing keys; keeping the previous set", self._url
            )
            return
        if any(key.kid == OWN_KID for key in keys):
            log.warning("! jwks_url %s: kid %r is reserved; key ignored", self._url, OWN_KID)
        self._keys = {key.kid: key for key in keys if key.kid is not None and key.kid != OWN_KID}
        self._fetched_at = now
