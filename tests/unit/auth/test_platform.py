"""Platform bearers: HS256 secrets, RS256/ES256/EdDSA keys, JWKS file and URL, by kid."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from streamgate.auth.keys import JWKS_COOLDOWN, JWKS_MAX_AGE
from streamgate.auth.settings import AuthSettings
from streamgate.auth.tokens import BearerVerifier, InvalidToken, TokenExpired, TokenIssuer
from streamgate.errors import ConfigError

SECRET = bytes(range(1, 33))
NOW = 1_700_000_000.0
PLATFORM_SECRET = "p" * 40

RSA1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC1 = ec.generate_private_key(ec.SECP256R1())
EC2 = ec.generate_private_key(ec.SECP256R1())
ED1 = ed25519.Ed25519PrivateKey.generate()
ED2 = ed25519.Ed25519PrivateKey.generate()

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def claims(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "iss": "idp",
        "aud": "streamgate",
        "sub": "0xuser",
        "iat": int(NOW),
        "exp": int(NOW) + 600,
    }
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def sign(key: PrivateKey | str | bytes, alg: str, kid: str | None, **changes: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**changes), key, algorithm=alg, headers=headers)


def forge(
    header: dict[str, Any], payload: dict[str, Any], sign: Callable[[bytes], bytes] | None = None
) -> str:
    """Build a compact JWS by hand, as an attacker would."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(signature)}"


def pem(path: Path, key: PrivateKey) -> str:
    path.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return str(path)


def jwk(key: PrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    public = key.public_key()
    data: dict[str, Any]
    if isinstance(public, rsa.RSAPublicKey):
        data = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        data = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**data, "kid": kid, **extra}


def verifier_for(clock: Clock | None = None, **settings: Any) -> BearerVerifier:
    settings.setdefault("trusted_issuers", ("idp",))
    return BearerVerifier(SECRET, AuthSettings(**settings), clock=clock or Clock())


def refused(verifier: BearerVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    assert not isinstance(info.value, TokenExpired)
    return info.value.reason


@pytest.fixture
def pems(tmp_path: Path) -> tuple[str, ...]:
    return (
        f"rsa1={pem(tmp_path / 'a.pem', RSA1)}",
        pem(tmp_path / "ec1.pem", EC1),  # kid from the file stem
        f"ed1={pem(tmp_path / 'c.pem', ED1)}",
    )


# --- PEM public keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg", "kid"), [(RSA1, "RS256", "rsa1"), (EC1, "ES256", "ec1"), (ED1, "EdDSA", "ed1")]
)
def test_pem_keys_good(pems: tuple[str, ...], key: PrivateKey, alg: str, kid: str) -> None:
    verifier = verifier_for(public_key_files=pems)
    result = verifier.verify(sign(key, alg, kid))
    assert result.subject == "0xuser"
    assert result.expires_at == NOW + 600
    assert not verifier.may_block


@pytest.mark.parametrize(
    ("key", "alg", "kid"), [(RSA2, "RS256", "rsa1"), (EC2, "ES256", "ec1"), (ED2, "EdDSA", "ed1")]
)
def test_pem_keys_wrong_signer(pems: tuple[str, ...], key: PrivateKey, alg: str, kid: str) -> None:
    assert refused(verifier_for(public_key_files=pems), sign(key, alg, kid)) == "bad signature"


@pytest.mark.parametrize(
    ("key", "alg", "kid"),
    [
        (RSA1, "RS512", "rsa1"),  # same key, another hash
        (RSA1, "PS256", "rsa1"),
        (RSA1, "RS256", "ec1"),  # a valid RS256 token sent to an EC key's kid
        (EC1, "ES256", "rsa1"),
        (ED1, "EdDSA", "ec1"),
        (PLATFORM_SECRET, "HS256", "ed1"),
    ],
)
def test_pem_keys_algorithm_is_the_keys(
    pems: tuple[str, ...], key: PrivateKey | str, alg: str, kid: str
) -> None:
    assert refused(verifier_for(public_key_files=pems), sign(key, alg, kid)) == (
        "algorithm not allowed"
    )


def test_hs256_with_the_public_key_pem_as_secret(tmp_path: Path, pems: tuple[str, ...]) -> None:
    """Algorithm confusion against a configured RSA key, by kid."""
    public_pem = (tmp_path / "a.pem").read_bytes()
    token = forge(
        {"alg": "HS256", "kid": "rsa1"},
        claims(),
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )
    assert refused(verifier_for(public_key_files=pems), token) == "algorithm not allowed"


def test_alg_none_with_platform_kid(pems: tuple[str, ...]) -> None:
    token = forge({"alg": "none", "kid": "rsa1"}, claims())
    assert refused(verifier_for(public_key_files=pems), token) == "algorithm not allowed"


def test_certificate_pem(tmp_path: Path) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(EC1.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(EC1, hashes.SHA256())
    )
    path = tmp_path / "idp-cert.pem"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    verifier = verifier_for(public_key_files=(str(path),))
    assert verifier.verify(sign(EC1, "ES256", "idp-cert")).subject == "0xuser"


# --- issuer, audience, time, purpose for platform tokens ------------------------------------


def test_issuers(pems: tuple[str, ...]) -> None:
    untrusting = verifier_for(public_key_files=pems, trusted_issuers=())
    assert refused(untrusting, sign(RSA1, "RS256", "rsa1")) == "wrong issuer"
    assert untrusting.verify(sign(RSA1, "RS256", "rsa1", iss="streamgate")).subject == "0xuser"
    trusting = verifier_for(public_key_files=pems, trusted_issuers=("other", "idp"))
    assert trusting.verify(sign(RSA1, "RS256", "rsa1")).subject == "0xuser"
    assert refused(trusting, sign(RSA1, "RS256", "rsa1", iss="evil")) == "wrong issuer"
    assert refused(trusting, sign(RSA1, "RS256", "rsa1", iss=None)) == "missing iss"


def test_audience(pems: tuple[str, ...]) -> None:
    verifier = verifier_for(public_key_files=pems)
    assert refused(verifier, sign(ED1, "EdDSA", "ed1", aud="billing")) == "wrong audience"
    assert refused(verifier, sign(ED1, "EdDSA", "ed1", aud=None)) == "missing aud"
    assert verifier.verify(sign(ED1, "EdDSA", "ed1", aud=["billing", "streamgate"]))


def test_time_and_leeway(pems: tuple[str, ...]) -> None:
    clock = Clock()
    verifier = verifier_for(clock, public_key_files=pems, leeway=5)
    token = sign(EC1, "ES256", "ec1")
    clock.now = NOW + 604
    assert verifier.verify(token).subject == "0xuser"
    clock.now = NOW + 605
    with pytest.raises(TokenExpired):
        verifier.verify(token)
    clock.now = NOW
    assert refused(verifier, sign(EC1, "ES256", "ec1", nbf=int(NOW) + 6)) == "not yet valid"
    assert verifier.verify(sign(EC1, "ES256", "ec1", nbf=int(NOW) + 5))


def test_purpose(pems: tuple[str, ...]) -> None:
    verifier = verifier_for(public_key_files=pems)
    assert verifier.verify(sign(ED1, "EdDSA", "ed1")).claims.get("purpose") is None
    assert verifier.verify(sign(ED1, "EdDSA", "ed1", purpose="stream"))
    assert refused(verifier, sign(ED1, "EdDSA", "ed1", purpose="admin")) == "wrong purpose"


def test_unknown_and_missing_kid(pems: tuple[str, ...]) -> None:
    verifier = verifier_for(public_key_files=pems)
    assert refused(verifier, sign(RSA1, "RS256", "rsa9")) == "unknown kid"
    assert refused(verifier, sign(RSA1, "RS256", None)) == "missing kid"


def test_platform_cannot_use_own_kid(pems: tuple[str, ...]) -> None:
    """A platform key signing under kid "streamgate" is checked against our secret."""
    verifier = verifier_for(public_key_files=pems)
    assert refused(verifier, sign(RSA1, "RS256", "streamgate")) == "algorithm not allowed"
    assert refused(verifier, sign("x" * 40, "HS256", "streamgate", iss="streamgate")) == (
        "bad signature"
    )


def test_own_tokens_still_verify_next_to_platform_keys(pems: tuple[str, ...]) -> None:
    clock = Clock()
    token = TokenIssuer(SECRET, AuthSettings(), clock=clock).issue("0xme")
    assert verifier_for(clock, public_key_files=pems).verify(token).subject == "0xme"


# --- HS256 platform secrets -----------------------------------------------------------


def test_hs256_secrets() -> None:
    other = "q" * 32
    padded = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="  # base64, "=" only as padding
    verifier = verifier_for(hs256_secrets=(f"k1={PLATFORM_SECRET}", other, padded))
    assert verifier.verify(sign(PLATFORM_SECRET, "HS256", "k1")).subject == "0xuser"
    assert refused(verifier, sign(other, "HS256", "k1")) == "bad signature"
    # kid-less tokens: each plain secret is tried (rotation)
    assert verifier.verify(sign(other, "HS256", None)).subject == "0xuser"
    assert verifier.verify(sign(padded, "HS256", None)).subject == "0xuser"
    assert refused(verifier, sign(PLATFORM_SECRET, "HS256", None)) == "bad signature"
    assert refused(verifier, sign(RSA1, "RS256", None)) == "algorithm not allowed"
    assert refused(verifier, sign("k1=" + PLATFORM_SECRET, "HS256", None)) == "bad signature"


RSA1_PEM = RSA1.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.mark.parametrize(
    "entry",
    [
        "short",
        "k1=short",
        "x" * 31,
        RSA1_PEM,
        "k1=" + RSA1_PEM,
        '{"kty":"oct","k":"' + "A" * 40 + '"}',
    ],
)
def test_hs256_secret_refused(entry: str) -> None:
    with pytest.raises(ConfigError, match="hs256_secrets"):
        verifier_for(hs256_secrets=(entry,))


# --- configuration errors -----------------------------------------------------------------


def test_pem_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        verifier_for(public_key_files=(str(tmp_path / "missing.pem"),))
    private = tmp_path / "private.pem"
    private.write_bytes(ED1.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with pytest.raises(ConfigError, match="private key"):
        verifier_for(public_key_files=(str(private),))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ConfigError, match=r"garbage\.pem"):
        verifier_for(public_key_files=(str(garbage),))


def test_weak_and_unsupported_keys(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with pytest.raises(ConfigError, match="2048"):
        verifier_for(public_key_files=(pem(tmp_path / "weak.pem", weak),))
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ConfigError, match="P-256"):
        verifier_for(public_key_files=(pem(tmp_path / "p384.pem", p384),))


def test_duplicate_and_reserved_kids(tmp_path: Path) -> None:
    a = pem(tmp_path / "a.pem", RSA1)
    with pytest.raises(ConfigError, match="twice"):
        verifier_for(public_key_files=(f"k={a}",), hs256_secrets=(f"k={PLATFORM_SECRET}",))
    with pytest.raises(ConfigError, match="reserved"):
        verifier_for(public_key_files=(f"streamgate={a}",))


# --- JWKS file --------------------------------------------------------------------------


def write_jwks(tmp_path: Path, *keys: dict[str, Any]) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": list(keys)}))
    return str(path)


def test_jwks_file_rotation(tmp_path: Path) -> None:
    """Two kids at once: tokens of the old and the new key both verify."""
    path = write_jwks(
        tmp_path,
        jwk(RSA1, "2024-old", use="sig", alg="RS256"),
        jwk(RSA2, "2025-new"),
        jwk(EC1, "ec"),
        jwk(ED1, "ed"),
        jwk(RSA2, "enc-key", use="enc"),  # not for signatures: left out
    )
    verifier = verifier_for(jwks_file=path)
    assert verifier.verify(sign(RSA1, "RS256", "2024-old")).subject == "0xuser"
    assert verifier.verify(sign(RSA2, "RS256", "2025-new")).subject == "0xuser"
    assert verifier.verify(sign(EC1, "ES256", "ec")).subject == "0xuser"
    assert verifier.verify(sign(ED1, "EdDSA", "ed")).subject == "0xuser"
    assert refused(verifier, sign(RSA1, "RS256", "2025-new")) == "bad signature"
    assert refused(verifier, sign(RSA2, "RS256", "enc-key")) == "unknown kid"
    assert refused(verifier, sign(RSA2, "RS256", "2026-next")) == "unknown kid"
    assert refused(verifier, sign(RSA1, "RS384", "2024-old")) == "algorithm not allowed"


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (jwk(RSA1, "k", alg="RS512"), "does not match"),
        (jwk(RSA1, "k", alg="HS256"), "does not match"),
        ({"kty": "oct", "k": "c2VjcmV0", "kid": "k"}, "not supported"),
        (jwk(ec.generate_private_key(ec.SECP384R1()), "k"), "not supported"),
        ({k: v for k, v in jwk(RSA1, "k").items() if k != "kid"}, "without a kid"),
        ({**jwk(ED1, "k"), "d": "AAAA"}, "private"),
        ({"kty": "RSA", "kid": "k", "n": "AQAB"}, "kid 'k'"),
        ("not an object", "not an object"),
    ],
)
def test_jwks_file_bad_keys(tmp_path: Path, key: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        verifier_for(jwks_file=write_jwks(tmp_path, jwk(RSA2, "good"), key))


def test_jwks_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        verifier_for(jwks_file=str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read"):
        verifier_for(jwks_file=str(bad))
    bad.write_text('{"keys": {}}')
    with pytest.raises(ConfigError, match="not a JWK set"):
        verifier_for(jwks_file=str(bad))
    with pytest.raises(ConfigError, match="twice"):
        verifier_for(jwks_file=write_jwks(tmp_path, jwk(RSA1, "k"), jwk(RSA2, "k")))
    pem_path = pem(tmp_path / "k.pem", EC1)
    with pytest.raises(ConfigError, match="twice"):
        verifier_for(jwks_file=write_jwks(tmp_path, jwk(RSA1, "k")), public_key_files=(pem_path,))


# --- JWKS URL ---------------------------------------------------------------------------


class FakeJWKSClient(jwt.PyJWKClient):
    """A PyJWKClient whose fetches return prepared JWK sets (or raise) instead of HTTP."""

    def __init__(self, *responses: dict[str, Any] | Exception) -> None:
        super().__init__("https://idp.example/.well-known/jwks.json")
        self.responses = list(responses)
        self.calls = 0

    def fetch_data(self) -> Any:
        response = self.responses[min(self.calls, len(self.responses) - 1)]
        self.calls += 1
        if isinstance(response, Exception):
            raise response
        return response


def url_verifier(client: FakeJWKSClient, clock: Clock) -> BearerVerifier:
    return BearerVerifier(
        SECRET,
        AuthSettings(jwks_url=client.uri, trusted_issuers=("idp",)),
        clock=clock,
        jwks_client=client,
    )


def test_jwks_url_fetched_lazily_and_cached() -> None:
    clock = Clock()
    client = FakeJWKSClient({"keys": [jwk(RSA1, "a"), jwk(ED1, "b")]})
    verifier = url_verifier(client, clock)
    assert verifier.may_block
    assert client.calls == 0  # nothing fetched at construction
    assert verifier.verify(sign(RSA1, "RS256", "a")).subject == "0xuser"
    assert verifier.verify(sign(ED1, "EdDSA", "b")).subject == "0xuser"
    assert verifier.verify(sign(RSA1, "RS256", "a")).subject == "0xuser"
    assert client.calls == 1


def test_jwks_url_rotation_refetches_once_per_cooldown() -> None:
    clock = Clock()
    client = FakeJWKSClient({"keys": [jwk(RSA1, "a")]}, {"keys": [jwk(RSA1, "a"), jwk(RSA2, "b")]})
    verifier = url_verifier(client, clock)
    assert verifier.verify(sign(RSA1, "RS256", "a"))
    assert client.calls == 1
    # kid "b" is new, but the set was just fetched: no second fetch within the cooldown
    for _ in range(50):
        assert refused(verifier, sign(RSA2, "RS256", "b")) == "unknown kid"
    assert client.calls == 1
    clock.now += JWKS_COOLDOWN
    assert verifier.verify(sign(RSA2, "RS256", "b")).subject == "0xuser"
    assert client.calls == 2
    # random kids cannot make it fetch again within the cooldown
    for i in range(50):
        assert refused(verifier, sign(RSA2, "RS256", f"random-{i}")) == "unknown kid"
    assert client.calls == 2
    # a token with an algorithm no key has never reaches the key lookup
    clock.now += JWKS_COOLDOWN
    assert refused(verifier, forge({"alg": "none", "kid": "zzz"}, claims())) == (
        "algorithm not allowed"
    )
    assert refused(verifier, sign(RSA2, "PS256", "zzz")) == "algorithm not allowed"
    assert client.calls == 2


def test_jwks_url_fetch_failure_keeps_keys() -> None:
    clock = Clock()
    client = FakeJWKSClient(
        {"keys": [jwk(EC1, "a")]},
        jwt.PyJWKClientConnectionError("connection refused"),
        {"keys": [jwk(EC1, "a"), jwk(EC2, "b")]},
    )
    verifier = url_verifier(client, clock)
    assert verifier.verify(sign(EC1, "ES256", "a"))
    clock.now += JWKS_COOLDOWN
    assert refused(verifier, sign(EC2, "ES256", "b")) == "unknown kid"  # the fetch failed
    assert client.calls == 2
    assert verifier.verify(sign(EC1, "ES256", "a"))  # old keys still served
    clock.now += JWKS_COOLDOWN
    assert verifier.verify(sign(EC2, "ES256", "b"))
    assert client.calls == 3


def test_jwks_url_first_fetch_failure() -> None:
    clock = Clock()
    client = FakeJWKSClient(OSError("down"), {"keys": [jwk(ED1, "a")]})
    verifier = url_verifier(client, clock)
    assert refused(verifier, sign(ED1, "EdDSA", "a")) == "unknown kid"
    clock.now += JWKS_COOLDOWN
    assert verifier.verify(sign(ED1, "EdDSA", "a"))


def test_jwks_url_stale_set_is_refetched() -> None:
    """A key removed from the set stops working once the cached set is too old."""
    clock = Clock()
    client = FakeJWKSClient({"keys": [jwk(RSA1, "a")]}, {"keys": [jwk(RSA2, "b")]})
    verifier = url_verifier(client, clock)
    assert verifier.verify(sign(RSA1, "RS256", "a"))
    clock.now += JWKS_MAX_AGE / 2
    assert verifier.verify(sign(RSA1, "RS256", "a", iat=int(clock.now), exp=int(clock.now) + 60))
    assert client.calls == 1
    clock.now = NOW + JWKS_MAX_AGE + 1
    late = {"iat": int(clock.now), "exp": int(clock.now) + 60}
    assert refused(verifier, sign(RSA1, "RS256", "a", **late)) == "unknown kid"
    assert verifier.verify(sign(RSA2, "RS256", "b", **late))
    assert client.calls == 2


def test_jwks_url_bad_keys_are_skipped_not_fatal() -> None:
    clock = Clock()
    client = FakeJWKSClient(
        {"keys": [jwk(RSA1, "a", alg="HS256"), {"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]},
        {"keys": [jwk(RSA1, "a", alg="HS256"), jwk(RSA2, "b"), jwk(ED1, "streamgate")]},
    )
    verifier = url_verifier(client, clock)
    assert refused(verifier, sign(RSA1, "RS256", "a")) == "unknown kid"
    assert refused(verifier, sign("secret" * 6, "HS256", "s")) == "unknown kid"
    clock.now += JWKS_COOLDOWN
    assert verifier.verify(sign(RSA2, "RS256", "b", iat=int(clock.now)))
    assert refused(verifier, sign(RSA1, "RS256", "a")) == "unknown kid"
    # a remote key cannot take the gateway's own kid
    assert refused(verifier, sign(ED1, "EdDSA", "streamgate")) == "algorithm not allowed"


def test_jwks_url_scheme_checked() -> None:
    with pytest.raises(ConfigError, match="jwks_url"):
        BearerVerifier(SECRET, AuthSettings(jwks_url="file:///etc/passwd"))
