"""Account addresses (PROTOCOL.md section 5) and strict hex parsing."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from streamgate.auth.accounts import account_address, parse_hex

# RFC 8032 section 7.1, TEST 1: the public key of the all-known secret key.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


def test_address_is_sha3_of_key_and_scheme_byte() -> None:
    address = account_address(RFC8032_PUBLIC)
    expected = hashlib.sha3_256(RFC8032_PUBLIC + b"\x00").hexdigest()
    assert address == "0x" + expected
    assert len(address) == 66
    assert address == address.lower()


def test_address_from_generated_key() -> None:
    private = Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert public == RFC8032_PUBLIC
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert account_address(public) != account_address(other)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_address_needs_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        account_address(b"\x01" * size)


@pytest.mark.parametrize(
    "value",
    ["0a" * 4, "0x" + "0a" * 4, "0X" + "0A" * 4, "aBcDeF01"],
)
def test_parse_hex_accepts(value: str) -> None:
    assert len(parse_hex(value, 4)) == 4


def test_parse_hex_value() -> None:
    assert parse_hex("0xdeadbeef", 4) == b"\xde\xad\xbe\xef"
    assert parse_hex("DEADBEEF", 4) == b"\xde\xad\xbe\xef"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0x",
        "0a0a0a",  # 3 bytes
        "0a0a0a0a0a",  # 5 bytes
        "0x0a0a0a0",  # odd digits
        "0a 0a0a0a",  # whitespace bytes.fromhex would take
        "0a0a0a0g",
        "0x0x0a0a0a",
        "+a0a0a0a",
        "０a0a0a0a",  # noqa: RUF001 (a fullwidth digit)
        "0a0a0a0a\n",
    ],
)
def test_parse_hex_refuses(value: str) -> None:
    with pytest.raises(ValueError, match="hex"):
        parse_hex(value, 4)


@pytest.mark.parametrize("value", [None, 1234, b"0a0a0a0a", ["0a0a0a0a"]])
def test_parse_hex_refuses_non_strings(value: object) -> None:
    with pytest.raises(ValueError, match="hex string"):
        parse_hex(value, 4)  # type: ignore[arg-type]


@given(st.binary(min_size=0, max_size=64), st.booleans(), st.booleans())
def test_parse_hex_round_trip(data: bytes, prefix: bool, upper: bool) -> None:
    text = data.hex().upper() if upper else data.hex()
    assert parse_hex(("0x" if prefix else "") + text, len(data)) == data
