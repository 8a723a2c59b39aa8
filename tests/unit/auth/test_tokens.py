"""The gateway's own bearers: issue, verify, the JWT attack matrix, the secret file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from streamgate.auth.settings import AuthSettings
from streamgate.auth.tokens import (
    MAX_TOKEN_CHARS,
    STREAM_PURPOSE,
    BearerVerifier,
    InvalidToken,
    TokenExpired,
    TokenIssuer,
    load_or_create_secret,
)
from streamgate.errors import ConfigError, StreamgateError

SECRET = bytes(range(1, 33))
OTHER_SECRET = bytes(range(2, 34))
NOW = 1_700_000_000.0
SETTINGS = AuthSettings()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PEM = RSA_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    sign: Callable[[bytes], bytes] | None = None,
) -> str:
    """Build a compact JWS by hand, as an attacker would."""
    parts = [
        part if isinstance(part, bytes) else json.dumps(part).encode() for part in (header, payload)
    ]
    signing_input = f"{b64(parts[0])}.{b64(parts[1])}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(signature)}"


def hs256(key: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(key, data, hashlib.sha256).digest()


def own_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": "streamgate",
        "aud": "streamgate",
        "sub": "0xabc",
        "iat": int(NOW),
        "nbf": int(NOW),
        "exp": int(NOW) + 3600,
        "jti": "j",
        "purpose": STREAM_PURPOSE,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def own_token(
    claims: dict[str, Any], secret: bytes = SECRET, kid: str | None = "streamgate"
) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issuer(clock: Clock) -> TokenIssuer:
    return TokenIssuer(SECRET, SETTINGS, clock=clock)


@pytest.fixture
def verifier(clock: Clock) -> BearerVerifier:
    return BearerVerifier(SECRET, SETTINGS, clock=clock)


def refused(verifier: BearerVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    assert not isinstance(info.value, TokenExpired)
    return info.value.reason


# --- issue and verify -------------------------------------------------------------------


def test_round_trip(issuer: TokenIssuer, verifier: BearerVerifier) -> None:
    token = issuer.issue("0xuser")
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": "streamgate", "typ": "JWT"}
    claims = verifier.verify(token)
    assert claims.subject == "0xuser"
    assert claims.expires_at == NOW + 7 * 24 * 3600
    assert claims.claims["iss"] == claims.claims["aud"] == "streamgate"
    assert claims.claims["iat"] == claims.claims["nbf"] == int(NOW)
    assert claims.claims["purpose"] == STREAM_PURPOSE
    assert isinstance(claims.claims["jti"], str) and len(claims.claims["jti"]) >= 16


def test_jti_is_random(issuer: TokenIssuer, verifier: BearerVerifier) -> None:
    jtis = {verifier.verify(issuer.issue("0xuser")).claims["jti"] for _ in range(20)}
    assert len(jtis) == 20


def test_issue_ttl_extra_purpose(clock: Clock, issuer: TokenIssuer) -> None:
    token = issuer.issue("0xu", purpose="ticket", ttl=60, extra={"tenant": "t1"})
    claims = BearerVerifier(SECRET, SETTINGS, purpose="ticket", clock=clock).verify(token)
    assert claims.expires_at == NOW + 60
    assert claims.claims["tenant"] == "t1"


def test_issue_uses_settings(clock: Clock) -> None:
    settings = AuthSettings(issuer="gw", audience="trading", bearer_ttl=120)
    token = TokenIssuer(SECRET, settings, clock=clock).issue("0xu")
    claims = BearerVerifier(SECRET, settings, clock=clock).verify(token)
    assert (claims.claims["iss"], claims.claims["aud"]) == ("gw", "trading")
    assert claims.expires_at == NOW + 120


@pytest.mark.parametrize(
    "kwargs",
    [
        {"extra": {"sub": "0xother"}},
        {"extra": {"exp": 1}},
        {"extra": {"purpose": "admin"}},
        {"ttl": 0},
        {"ttl": -5},
        {"ttl": float("inf")},
        {"purpose": ""},
    ],
)
def test_issue_refuses(issuer: TokenIssuer, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"extra|ttl|empty"):
        issuer.issue("0xu", **kwargs)


def test_issue_refuses_empty_subject(issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="empty"):
        issuer.issue("")


@pytest.mark.parametrize("secret", [b"", b"short", b"x" * 31, RSA_PEM])
def test_unusable_secret(secret: bytes) -> None:
    with pytest.raises(ValueError, match="secret"):
        TokenIssuer(secret, SETTINGS)
    with pytest.raises(ValueError, match="secret"):
        BearerVerifier(secret, SETTINGS)


def test_kidless_own_token(verifier: BearerVerifier) -> None:
    assert verifier.verify(own_token(own_claims(), kid=None)).subject == "0xabc"


def test_other_gateways_secret(verifier: BearerVerifier) -> None:
    assert refused(verifier, own_token(own_claims(), secret=OTHER_SECRET)) == "bad signature"
    assert refused(verifier, own_token(own_claims(), OTHER_SECRET, kid=None)) == "bad signature"


# --- time ---------------------------------------------------------------------------------


def test_expired(clock: Clock, issuer: TokenIssuer, verifier: BearerVerifier) -> None:
    token = issuer.issue("0xu", ttl=100)
    clock.now = NOW + 100 + SETTINGS.leeway - 1  # within leeway
    assert verifier.verify(token).subject == "0xu"
    clock.now = NOW + 100 + SETTINGS.leeway
    with pytest.raises(TokenExpired) as info:
        verifier.verify(token)
    assert isinstance(info.value, InvalidToken) and isinstance(info.value, StreamgateError)
    assert info.value.reason == "expired"


def test_expired_but_forged_is_not_expired(clock: Clock, verifier: BearerVerifier) -> None:
    """Only a token whose signature verified may be called expired."""
    token = own_token(own_claims(exp=int(NOW) - 3600, iat=int(NOW) - 7200), OTHER_SECRET)
    assert refused(verifier, token) == "bad signature"


def test_not_yet_valid(clock: Clock, verifier: BearerVerifier) -> None:
    token = own_token(own_claims(nbf=int(NOW) + 100))
    assert refused(verifier, token) == "not yet valid"
    clock.now = NOW + 100 - SETTINGS.leeway
    assert verifier.verify(token).subject == "0xabc"


def test_issued_in_the_future(clock: Clock, verifier: BearerVerifier) -> None:
    token = own_token(own_claims(iat=int(NOW) + 100, nbf=None))
    assert refused(verifier, token) == "issued in the future"
    clock.now = NOW + 70
    assert verifier.verify(token).subject == "0xabc"


def test_leeway_zero(clock: Clock) -> None:
    settings = AuthSettings(leeway=0)
    token = TokenIssuer(SECRET, settings, clock=clock).issue("0xu", ttl=10)
    verifier = BearerVerifier(SECRET, settings, clock=clock)
    clock.now = NOW + 9.5
    assert verifier.verify(token).subject == "0xu"
    clock.now = NOW + 10
    with pytest.raises(TokenExpired):
        verifier.verify(token)


@pytest.mark.parametrize("name", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["1700000000", True, [1], {"t": 1}])
def test_time_claims_must_be_numbers(verifier: BearerVerifier, name: str, value: object) -> None:
    assert refused(verifier, own_token(own_claims(**{name: value}))) == f"bad {name}"


@pytest.mark.parametrize("exp", [10**400, -(10**400)])
def test_huge_exp(verifier: BearerVerifier, exp: int) -> None:
    payload = json.dumps(own_claims(exp=exp)).encode()
    token = forge({"alg": "HS256", "kid": "streamgate"}, payload, hs256(SECRET))
    assert refused(verifier, token) == "bad exp"


def test_nan_exp(verifier: BearerVerifier) -> None:
    payload = json.dumps(own_claims(exp=float("nan"))).encode()  # json.dumps writes NaN
    token = forge({"alg": "HS256", "kid": "streamgate"}, payload, hs256(SECRET))
    assert refused(verifier, token) == "bad exp"


# --- the attack matrix -----------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "", None])
@pytest.mark.parametrize("kid", ["streamgate", None])
def test_alg_none(verifier: BearerVerifier, alg: str | None, kid: str | None) -> None:
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    assert refused(verifier, forge(header, own_claims())) == "algorithm not allowed"
    # a "signature" does not help
    token = forge(header, own_claims(), hs256(SECRET))
    assert refused(verifier, token) == "algorithm not allowed"


@pytest.mark.parametrize("alg", [["HS256"], {"HS256": 1}, 256, True, "hs256", "HS256 "])
def test_odd_alg_values(verifier: BearerVerifier, alg: object) -> None:
    token = forge({"alg": alg, "kid": "streamgate"}, own_claims(), hs256(SECRET))
    assert refused(verifier, token) == "algorithm not allowed"


def test_missing_alg(verifier: BearerVerifier) -> None:
    token = forge({"kid": "streamgate"}, own_claims(), hs256(SECRET))
    assert refused(verifier, token) == "algorithm not allowed"


@pytest.mark.parametrize("alg", ["HS384", "HS512", "RS256", "ES256", "EdDSA"])
def test_own_tokens_are_hs256_only(verifier: BearerVerifier, alg: str) -> None:
    token = forge({"alg": alg, "kid": "streamgate"}, own_claims(), hs256(SECRET))
    assert refused(verifier, token) == "algorithm not allowed"


@pytest.mark.parametrize("kid", ["streamgate", None])
def test_hs256_signed_with_a_public_key(verifier: BearerVerifier, kid: str | None) -> None:
    """Algorithm confusion: the attacker HMACs with a public key PEM as the secret."""
    header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    token = forge(header, own_claims(), hs256(RSA_PEM))
    assert refused(verifier, token) == "bad signature"


def test_wrong_issuer(clock: Clock, verifier: BearerVerifier) -> None:
    token = TokenIssuer(SECRET, AuthSettings(issuer="elsewhere"), clock=clock).issue("0xu")
    assert refused(verifier, token) == "wrong issuer"
    # own tokens come from settings.issuer only, even when the issuer is otherwise trusted
    trusting = BearerVerifier(SECRET, AuthSettings(trusted_issuers=("elsewhere",)), clock=clock)
    assert refused(trusting, token) == "wrong issuer"


def test_wrong_audience(clock: Clock, verifier: BearerVerifier) -> None:
    token = TokenIssuer(SECRET, AuthSettings(audience="admin-api"), clock=clock).issue("0xu")
    assert refused(verifier, token) == "wrong audience"
    assert refused(verifier, own_token(own_claims(aud=["admin-api"]))) == "wrong audience"
    assert verifier.verify(own_token(own_claims(aud=["x", "streamgate"]))).subject == "0xabc"


def test_unknown_kid(verifier: BearerVerifier) -> None:
    token = jwt.encode(own_claims(), SECRET, algorithm="HS256", headers={"kid": "k2"})
    assert refused(verifier, token) == "unknown kid"


def test_kidless_foreign_issuer_without_platform_secrets(verifier: BearerVerifier) -> None:
    assert refused(verifier, own_token(own_claims(iss="idp"), kid=None)) == "missing kid"


def test_tampered_payload(issuer: TokenIssuer, verifier: BearerVerifier) -> None:
    header, payload, signature = issuer.issue("0xvictim").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "0xattacker"
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    assert refused(verifier, forged) == "bad signature"


def test_tampered_signature(issuer: TokenIssuer, verifier: BearerVerifier) -> None:
    header, payload, signature = issuer.issue("0xu").split(".")
    flipped = b64(bytes([base64.urlsafe_b64decode(signature + "=")[0] ^ 1]) + b"\x00" * 31)
    assert refused(verifier, f"{header}.{payload}.{flipped}") == "bad signature"
    assert refused(verifier, f"{header}.{payload}.") == "bad signature"


def test_wrong_purpose(clock: Clock, issuer: TokenIssuer, verifier: BearerVerifier) -> None:
    ticket = issuer.issue("0xu", purpose="ws-ticket")
    assert refused(verifier, ticket) == "wrong purpose"
    stream = issuer.issue("0xu")
    ticket_verifier = BearerVerifier(SECRET, SETTINGS, purpose="ws-ticket", clock=clock)
    assert refused(ticket_verifier, stream) == "wrong purpose"
    assert ticket_verifier.verify(ticket).subject == "0xu"


def test_own_token_needs_purpose(verifier: BearerVerifier) -> None:
    assert refused(verifier, own_token(own_claims(purpose=None))) == "missing purpose"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud"])
def test_required_claims(verifier: BearerVerifier, claim: str) -> None:
    assert refused(verifier, own_token(own_claims(**{claim: None}))) == f"missing {claim}"


@pytest.mark.parametrize("sub", ["", 42, ["0xu"]])
def test_bad_subject(verifier: BearerVerifier, sub: object) -> None:
    assert refused(verifier, own_token(own_claims(sub=sub))) == "bad sub"


HS_HEADER = b64(b'{"alg":"HS256","kid":"streamgate"}')
INT_KID = b64(b'{"alg":"HS256","kid":5}')


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "...",
        "!!!.!!!.!!!",
        f"{HS_HEADER}.{b64(b'{}')}.%%%",
        f"{b64(b'not json')}.{b64(b'{}')}.",
        f"{b64(b'[1,2]')}.{b64(b'{}')}.",
        f"{INT_KID}.{b64(b'{}')}.",
        "x" * (MAX_TOKEN_CHARS + 1),
        f"{HS_HEADER}.{'A' * MAX_TOKEN_CHARS}.x",
        f"{b64(b'[' * 5000)}.{b64(b'{}')}.",
    ],
)
def test_malformed(verifier: BearerVerifier, token: str) -> None:
    assert refused(verifier, token) == "malformed"


@pytest.mark.parametrize("payload", [b"not json", b"[1,2]", b'"str"', b"[" * 3000])
def test_malformed_payload_signed(verifier: BearerVerifier, payload: bytes) -> None:
    """Correctly signed garbage is still refused."""
    token = forge({"alg": "HS256", "kid": "streamgate"}, payload, hs256(SECRET))
    assert refused(verifier, token) == "malformed"


def test_non_string_token(verifier: BearerVerifier) -> None:
    assert refused(verifier, b"a.b.c") == "malformed"  # type: ignore[arg-type]


# --- the secret file --------------------------------------------------------------------


def test_secret_created_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "nested"
    secret = load_or_create_secret(data_dir)
    path = data_dir / "jwt.secret"
    assert len(secret) >= 32 and path.read_bytes() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(data_dir) == secret
    assert os.listdir(data_dir) == ["jwt.secret"]  # no temporary file left


def test_secret_survives_restart(tmp_path: Path, clock: Clock) -> None:
    token = TokenIssuer(load_or_create_secret(tmp_path), SETTINGS, clock=clock).issue("0xu")
    verifier = BearerVerifier(load_or_create_secret(tmp_path), SETTINGS, clock=clock)
    assert verifier.verify(token).subject == "0xu"


def test_secret_differs_per_directory(tmp_path: Path) -> None:
    assert load_or_create_secret(tmp_path / "a") != load_or_create_secret(tmp_path / "b")


def test_operator_secret_kept(tmp_path: Path) -> None:
    (tmp_path / "jwt.secret").write_bytes(b"k" * 48)
    assert load_or_create_secret(tmp_path) == b"k" * 48


@pytest.mark.parametrize("content", [b"", b"short"])
def test_truncated_secret_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "jwt.secret").write_bytes(content)
    with pytest.raises(ConfigError):
        load_or_create_secret(tmp_path)


def test_unusable_data_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):
        load_or_create_secret(tmp_path / "file")


def test_secret_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: object, dst: object) -> None:
        raise PermissionError("hard links not supported")

    monkeypatch.setattr(os, "link", no_link)
    secret = load_or_create_secret(tmp_path)
    assert len(secret) == 32 and load_or_create_secret(tmp_path) == secret
    assert stat.S_IMODE((tmp_path / "jwt.secret").stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["jwt.secret"]


def test_concurrent_first_start(tmp_path: Path) -> None:
    results: list[bytes] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        results.append(load_or_create_secret(tmp_path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert os.listdir(tmp_path) == ["jwt.secret"]
