"""POST /api/v1/authorize, sans-I/O: the full matrix (PROTOCOL.md section 2)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgate.auth.accounts import account_address
from streamgate.auth.authorize import (
    MAX_BODY_BYTES,
    Authorized,
    AuthorizeError,
    Authorizer,
    authorize_message,
    wallet_message_ok,
)
from streamgate.auth.settings import AuthSettings
from streamgate.auth.tokens import BearerVerifier, TokenIssuer
from streamgate.errors import StreamgateError

SECRET = bytes(range(1, 33))
NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)
IP = "198.51.100.7"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Signer:
    """A client holding an Ed25519 key."""

    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        self.public = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def fields(self, timestamp_ms: int = NOW_MS, nonce: str = "n-1") -> dict[str, Any]:
        signature = self.private.sign(authorize_message(timestamp_ms, nonce))
        return {
            "public_key": "0x" + self.public.hex(),
            "signature": "0x" + signature.hex(),
            "timestamp_ms": timestamp_ms,
            "nonce": nonce,
        }

    def body(self, timestamp_ms: int = NOW_MS, nonce: str = "n-1", **changes: Any) -> bytes:
        return orjson.dumps({**self.fields(timestamp_ms, nonce), **changes})


def make(clock: Clock, **kwargs: Any) -> Authorizer:
    settings = AuthSettings(**{k: v for k, v in kwargs.items() if not k.startswith("max_")})
    limits = {k: v for k, v in kwargs.items() if k.startswith("max_")}
    return Authorizer(TokenIssuer(SECRET, settings, clock=clock), settings, clock=clock, **limits)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def authorizer(clock: Clock) -> Authorizer:
    return make(clock)


@pytest.fixture
def signer() -> Signer:
    return Signer()


def refused(authorizer: Authorizer, body: bytes, ip: str = IP) -> AuthorizeError:
    with pytest.raises(AuthorizeError) as info:
        authorizer.authorize(body, ip)
    return info.value


# --- success ------------------------------------------------------------------------------


def test_good(clock: Clock, authorizer: Authorizer, signer: Signer) -> None:
    result = authorizer.authorize(signer.body(), IP)
    assert isinstance(result, Authorized)
    assert result.user_id == account_address(signer.public)
    claims = BearerVerifier(SECRET, AuthSettings(), clock=clock).verify(result.token)
    assert claims.subject == result.user_id
    assert claims.expires_at == NOW + 7 * 24 * 3600
    assert claims.claims["purpose"] == "stream"


@pytest.mark.parametrize(
    "form",
    [
        lambda h: h,
        lambda h: "0x" + h,
        lambda h: "0X" + h,
        lambda h: h.upper(),
        lambda h: "0x" + h.upper(),
    ],
)
def test_hex_forms(authorizer: Authorizer, signer: Signer, form: Any) -> None:
    fields = signer.fields()
    fields["public_key"] = form(signer.public.hex())
    fields["signature"] = form(fields["signature"][2:])
    assert authorizer.authorize(orjson.dumps(fields), IP).user_id == account_address(signer.public)


@pytest.mark.parametrize("nonce", ["x", "n" * 128, "ünïcødé-🔑", "a|b|c", " spaces ", "0"])
def test_nonce_forms(authorizer: Authorizer, signer: Signer, nonce: str) -> None:
    assert authorizer.authorize(signer.body(nonce=nonce), IP)


def test_extra_fields_ignored(authorizer: Authorizer, signer: Signer) -> None:
    assert authorizer.authorize(signer.body(client="sdk/1.0"), IP)


@pytest.mark.parametrize("offset_ms", [-30_000, -29_999, 0, 29_999, 30_000])
def test_timestamp_window_edges(authorizer: Authorizer, signer: Signer, offset_ms: int) -> None:
    assert authorizer.authorize(signer.body(NOW_MS + offset_ms), IP)


def test_window_is_configurable(clock: Clock, signer: Signer) -> None:
    authorizer = make(clock, authorize_window=5.0)
    assert authorizer.authorize(signer.body(NOW_MS - 5000), IP)
    assert refused(authorizer, signer.body(NOW_MS - 5001, nonce="n-2")).error_code == 2002


# --- replay -------------------------------------------------------------------------------


def test_replayed_nonce(authorizer: Authorizer, signer: Signer) -> None:
    body = signer.body()
    authorizer.authorize(body, IP)
    error = refused(authorizer, body)
    assert (error.error_code, error.status, error.retry_after) == (2001, 400, None)
    assert error.body() == {"error_code": 2001, "error_message": error.message}
    assert "nonce already used" in error.message
    # the same nonce with a new timestamp and signature is still a reuse
    assert refused(authorizer, signer.body(NOW_MS + 1000), ip="203.0.113.9").error_code == 2001


def test_nonce_is_per_key(authorizer: Authorizer, signer: Signer) -> None:
    authorizer.authorize(signer.body(nonce="shared"), IP)
    assert authorizer.authorize(Signer().body(nonce="shared"), IP)
    assert authorizer.authorize(signer.body(nonce="other"), IP)


def test_failed_signature_does_not_burn_the_nonce(authorizer: Authorizer, signer: Signer) -> None:
    attacker = Signer()
    fields = attacker.fields(nonce="victims-nonce")
    fields["public_key"] = signer.public.hex()
    assert refused(authorizer, orjson.dumps(fields)).error_code == 2001
    assert authorizer.remembered_nonces == 0
    assert authorizer.authorize(signer.body(nonce="victims-nonce"), IP)


def test_replay_remembered_for_the_whole_window(
    clock: Clock, authorizer: Authorizer, signer: Signer
) -> None:
    future = signer.body(NOW_MS + 30_000)  # the latest timestamp accepted now
    authorizer.authorize(future, IP)
    for step in range(0, 61):  # until its timestamp is stale, it is remembered
        clock.now = NOW + step
        assert refused(authorizer, future).error_code == 2001
    clock.now = NOW + 60.001
    assert refused(authorizer, future).error_code == 2002


def test_pair_signed_again_after_its_memory_expired(
    clock: Clock, authorizer: Authorizer, signer: Signer
) -> None:
    """Memory is bounded: once a pair is forgotten, a new signature over it works (documented)."""
    authorizer.authorize(signer.body(nonce="n"), IP)
    clock.now = NOW + 31
    assert refused(authorizer, signer.body(NOW_MS + 31_000, "n")).error_code == 2001
    clock.now = NOW + 31.5
    assert authorizer.authorize(signer.body(NOW_MS + 31_500, "n"), IP)


def test_replay_after_expiry_is_stale(clock: Clock, authorizer: Authorizer, signer: Signer) -> None:
    body = signer.body()
    authorizer.authorize(body, IP)
    clock.now = NOW + 3600
    assert refused(authorizer, body).error_code == 2002
    assert authorizer.remembered_nonces == 0  # forgotten, and harmless


SIGNER = Signer()
REQUESTS = [  # signed once, replayed at will: timestamps around NOW, nonces shared
    SIGNER.body(NOW_MS + offset_ms, f"nonce-{i % 3}")
    for i, offset_ms in enumerate(range(-45_000, 45_001, 7_500))
]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=20),  # clock advance, seconds
            st.integers(min_value=0, max_value=len(REQUESTS) - 1),  # which request
        ),
        max_size=60,
    ),
    st.floats(min_value=-60, max_value=0),  # where the clock starts, relative to NOW
)
def test_a_signed_request_is_accepted_at_most_once(
    steps: list[tuple[float, int]], start: float
) -> None:
    clock = Clock(NOW + start)
    authorizer = make(clock, rate_limit=10_000)
    accepted: list[int] = []
    codes: set[int] = set()
    for advance, index in steps:
        clock.now += advance
        try:
            authorizer.authorize(REQUESTS[index], IP)
        except AuthorizeError as exc:
            codes.add(exc.error_code)
        else:
            accepted.append(index)
    assert len(accepted) == len(set(accepted))
    assert codes <= {2001, 2002}


# --- timestamps -----------------------------------------------------------------------


@pytest.mark.parametrize("offset_ms", [-30_001, 30_001, -3_600_000, 86_400_000])
def test_stale_and_future_timestamps(
    authorizer: Authorizer, signer: Signer, offset_ms: int
) -> None:
    error = refused(authorizer, signer.body(NOW_MS + offset_ms))
    assert (error.error_code, error.status) == (2002, 400)
    assert authorizer.remembered_nonces == 0


@pytest.mark.parametrize("timestamp_ms", [0, -1, 2**63 - 1, NOW_MS // 1000])
def test_absurd_timestamps(authorizer: Authorizer, signer: Signer, timestamp_ms: int) -> None:
    assert refused(authorizer, signer.body(timestamp_ms)).error_code == 2002


def test_stale_is_checked_before_the_signature(authorizer: Authorizer, signer: Signer) -> None:
    fields = signer.fields(NOW_MS - 60_000)
    fields["signature"] = "00" * 64
    assert refused(authorizer, orjson.dumps(fields)).error_code == 2002


# --- signatures ---------------------------------------------------------------------------


def test_wrong_key(authorizer: Authorizer, signer: Signer) -> None:
    fields = Signer().fields()
    fields["public_key"] = signer.public.hex()  # claims to be signer, signed by someone else
    error = refused(authorizer, orjson.dumps(fields))
    assert (error.error_code, error.status) == (2001, 400)
    assert error.message == "authentication failed"


@pytest.mark.parametrize(
    "signed",
    [
        (NOW_MS, "other-nonce"),
        (NOW_MS + 1, "n-1"),
    ],
)
def test_signature_over_another_message(
    authorizer: Authorizer, signer: Signer, signed: tuple[int, str]
) -> None:
    fields = signer.fields(*signed)
    fields.update(timestamp_ms=NOW_MS, nonce="n-1")
    assert refused(authorizer, orjson.dumps(fields)).error_code == 2001


def test_signature_over_another_format(authorizer: Authorizer, signer: Signer) -> None:
    for message in (b"AUTHORIZE|%d|n-1\n" % NOW_MS, b"authorize|%d|n-1" % NOW_MS, b"n-1"):
        fields = signer.fields()
        fields["signature"] = signer.private.sign(message).hex()
        assert refused(authorizer, orjson.dumps(fields)).error_code == 2001


def test_tampered_signature(authorizer: Authorizer, signer: Signer) -> None:
    fields = signer.fields()
    raw = bytearray.fromhex(fields["signature"][2:])
    raw[10] ^= 0x01
    fields["signature"] = raw.hex()
    assert refused(authorizer, orjson.dumps(fields)).error_code == 2001


@pytest.mark.parametrize("public_key", ["00" * 32, "ff" * 32, "01" + "00" * 31])
def test_degenerate_public_keys(authorizer: Authorizer, signer: Signer, public_key: str) -> None:
    fields = signer.fields()
    fields["public_key"] = public_key
    assert refused(authorizer, orjson.dumps(fields)).error_code == 2001


# --- malformed requests ---------------------------------------------------------------


def with_fields(signer: Signer, **changes: Any) -> bytes:
    fields = signer.fields()
    for name, value in changes.items():
        if value is ...:
            del fields[name]
        else:
            fields[name] = value
    return orjson.dumps(fields)


MALFORMED_FIELDS: list[dict[str, Any]] = [
    {"public_key": ...},
    {"signature": ...},
    {"timestamp_ms": ...},
    {"nonce": ...},
    {"public_key": None},
    {"public_key": 12345},
    {"public_key": "0x" + "ab" * 31},
    {"public_key": "0x" + "ab" * 33},
    {"public_key": "0x" + "zz" * 32},
    {"public_key": "ab " * 32},
    {"public_key": ""},
    {"signature": "0x" + "ab" * 63},
    {"signature": "0x" + "ab" * 65},
    {"signature": "0xab"},
    {"signature": ["ab"] * 64},
    {"timestamp_ms": str(NOW_MS)},
    {"timestamp_ms": float(NOW_MS)},
    {"timestamp_ms": NOW_MS + 0.5},
    {"timestamp_ms": True},
    {"timestamp_ms": None},
    {"nonce": ""},
    {"nonce": "n" * 129},
    {"nonce": 7},
    {"nonce": None},
    {"nonce": ["n-1"]},
]


@pytest.mark.parametrize("changes", MALFORMED_FIELDS)
def test_malformed_fields(authorizer: Authorizer, signer: Signer, changes: dict[str, Any]) -> None:
    error = refused(authorizer, with_fields(signer, **changes))
    assert (error.error_code, error.status, error.retry_after) == (2000, 400, None)
    assert error.message.startswith("invalid request")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"string"',
        b"null",
        b"42",
        b"{",
        b"\xff\xfe{}",
        b'{"nonce": "\\ud800"}',
        b'{"timestamp_ms": 1e400}',
        b'{"timestamp_ms": 123456789012345678901234567890}',
        b"{}" + b" " * MAX_BODY_BYTES,
    ],
)
def test_malformed_bodies(authorizer: Authorizer, body: bytes) -> None:
    assert refused(authorizer, body).error_code == 2000


# --- rate limit -----------------------------------------------------------------------


def test_rate_limit(clock: Clock, authorizer: Authorizer, signer: Signer) -> None:
    codes: set[int] = set()
    for i in range(100):  # every request counts, good or bad
        body = signer.body(nonce=f"n{i}") if i % 2 else b"junk"
        try:
            authorizer.authorize(body, IP)
        except AuthorizeError as exc:
            codes.add(exc.error_code)
    assert codes == {2000}
    error = refused(authorizer, signer.body(nonce="fresh"))
    assert (error.error_code, error.status, error.retry_after) == (2003, 429, 10)
    assert error.body() == {"error_code": 2003, "error_message": "rate limit exceeded"}
    clock.now = NOW + 7.5
    assert refused(authorizer, signer.body(NOW_MS + 7500, "fresh")).retry_after == 3
    assert authorizer.authorize(signer.body(NOW_MS + 7500, "fresh"), "203.0.113.1")
    clock.now = NOW + 10
    assert authorizer.authorize(signer.body(NOW_MS + 10_000, "fresh-2"), IP)


def test_rate_limit_is_configurable(clock: Clock, signer: Signer) -> None:
    authorizer = make(clock, rate_limit=2, rate_window=60.0)
    authorizer.authorize(signer.body(nonce="a"), IP)
    authorizer.authorize(signer.body(nonce="b"), IP)
    assert refused(authorizer, signer.body(nonce="c")).retry_after == 60


def test_rate_limit_comes_first(clock: Clock) -> None:
    authorizer = make(clock, rate_limit=1)
    assert refused(authorizer, b"junk").error_code == 2000
    assert refused(authorizer, b"junk").error_code == 2003


# --- memory bounds --------------------------------------------------------------------


def test_idle_clients_and_old_nonces_are_forgotten(clock: Clock, signer: Signer) -> None:
    authorizer = make(clock)
    for i in range(500):
        authorizer.authorize(signer.body(nonce=f"n{i}"), f"10.1.{i // 250}.{i % 250}")
    assert (authorizer.tracked_clients, authorizer.remembered_nonces) == (500, 500)
    clock.now = NOW + 61.5  # past rate_window and timestamp + authorize_window + 1
    authorizer.authorize(signer.body(int(clock.now * 1000), "late"), IP)
    assert (authorizer.tracked_clients, authorizer.remembered_nonces) == (1, 1)


def test_client_cap(clock: Clock, signer: Signer) -> None:
    authorizer = make(clock, rate_limit=1, max_clients=10)
    for i in range(100):
        assert refused(authorizer, b"junk", ip=f"10.0.0.{i}").error_code == 2000
    assert authorizer.tracked_clients == 10


def test_nonce_cap_refuses_rather_than_forgets(clock: Clock, signer: Signer) -> None:
    authorizer = make(clock, max_nonces=3)
    for nonce in ("a", "b", "c"):
        authorizer.authorize(signer.body(nonce=nonce), IP)
    error = refused(authorizer, signer.body(nonce="d"))
    assert (error.error_code, error.status, error.retry_after) == (2003, 429, 31)
    assert refused(authorizer, signer.body(nonce="a")).error_code == 2001  # still remembered
    clock.now = NOW + 31.5
    assert authorizer.authorize(signer.body(int(clock.now * 1000), "d"), IP)
    assert authorizer.remembered_nonces == 1


# --- the error type -------------------------------------------------------------------


def test_error_type() -> None:
    error = AuthorizeError(2004, "not found")
    assert isinstance(error, StreamgateError)
    assert (error.status, error.retry_after) == (404, None)
    assert error.body() == {"error_code": 2004, "error_message": "not found"}
    assert AuthorizeError(2003, "slow down", retry_after=5).status == 429
    assert AuthorizeError(2000, "bad").status == 400
    assert AuthorizeError(2001, "x", status=401).status == 401


# -- the Aptos wallet-standard full_message (PROTOCOL.md section 2) ------------------------


def wallet_body(signer: Signer, full: str, nonce: str = "k3j9x") -> bytes:
    fields = signer.fields(NOW_MS, nonce)
    fields["signature"] = "0x" + signer.private.sign(full.encode()).hex()
    return orjson.dumps({**fields, "full_message": full})


def test_a_wallet_signed_full_message_authorizes_as_the_sdk_example_sends_it(
    authorizer: Authorizer, signer: Signer
) -> None:
    full = f"APTOS\nmessage: AUTHORIZE|{NOW_MS}|k3j9x\nnonce: k3j9x"
    result = authorizer.authorize(wallet_body(signer, full), IP)
    assert result.user_id == account_address(signer.public)


def test_the_optional_wallet_lines_are_accepted_in_order(
    authorizer: Authorizer, signer: Signer
) -> None:
    full = (
        f"APTOS\nmessage: AUTHORIZE|{NOW_MS}|k3j9x\naddress: 0xabc\n"
        "application: https://app.example\nchainId: 1\nnonce: k3j9x"
    )
    assert authorizer.authorize(wallet_body(signer, full), IP).user_id


@pytest.mark.parametrize(
    "full",
    [
        f"APTOS\nmessage: AUTHORIZE|{NOW_MS + 1}|k3j9x\nnonce: k3j9x",  # other timestamp
        f"APTOS\nmessage: AUTHORIZE|{NOW_MS}|other\nnonce: k3j9x",  # other nonce
        f"APTOS\nmessage: AUTHORIZE|{NOW_MS}|k3j9x\nnonce: other",
        f"APTOS\nmessage: AUTHORIZE|{NOW_MS}|k3j9x\nsend: 100 APT\nnonce: k3j9x",  # extra
        f"APTOS\nmessage: AUTHORIZE|{NOW_MS}|k3j9x\nchainId: 1\naddress: 0x1\nnonce: k3j9x",
        f"APTOS\nmessage: AUTHORIZE|{NOW_MS}|k3j9x\naddress: \nnonce: k3j9x",  # empty value
        f"APTOS\nmessage: AUTHORIZE|{NOW_MS}|k3j9x\nnonce: k3j9x\n",  # trailing line
        f"aptos\nmessage: AUTHORIZE|{NOW_MS}|k3j9x\nnonce: k3j9x",
        f"AUTHORIZE|{NOW_MS}|k3j9x",
    ],
)
def test_a_full_message_that_says_anything_else_is_refused(
    authorizer: Authorizer, signer: Signer, full: str
) -> None:
    assert not wallet_message_ok(full, NOW_MS, "k3j9x")
    with pytest.raises(AuthorizeError) as refused:
        authorizer.authorize(wallet_body(signer, full), IP)  # signed, but not our message
    assert refused.value.error_code == 2001


def test_a_full_message_not_signed_is_refused(authorizer: Authorizer, signer: Signer) -> None:
    full = f"APTOS\nmessage: AUTHORIZE|{NOW_MS}|n-1\nnonce: n-1"
    body = signer.body(full_message=full)  # signature over the plain message, not full_message
    with pytest.raises(AuthorizeError) as refused:
        authorizer.authorize(body, IP)
    assert refused.value.error_code == 2001


def test_full_message_must_be_a_string(authorizer: Authorizer, signer: Signer) -> None:
    with pytest.raises(AuthorizeError) as refused:
        authorizer.authorize(signer.body(full_message=["APTOS"]), IP)
    assert refused.value.error_code == 2000


# -- keys nobody holds (RFC 8032 checks) ----------------------------------------------------

# Small-order points of edwards25519, canonical and non-canonical encodings (as libsodium
# lists them); with any of them an identity-R, zero-S signature verifies in OpenSSL.
SMALL_ORDER_KEYS = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
]
IDENTITY_R_ZERO_S = "01" + "00" * 31 + "00" * 32


@pytest.mark.parametrize("key", SMALL_ORDER_KEYS)
def test_small_order_and_non_canonical_keys_never_authorize(
    authorizer: Authorizer, key: str
) -> None:
    body = orjson.dumps(
        {
            "public_key": "0x" + key,
            "signature": "0x" + IDENTITY_R_ZERO_S,
            "timestamp_ms": NOW_MS,
            "nonce": "forged",
        }
    )
    with pytest.raises(AuthorizeError) as refused:
        authorizer.authorize(body, IP)
    assert refused.value.error_code == 2001
