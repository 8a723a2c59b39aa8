"""Account addresses from Ed25519 public keys, and strict hex parsing.

PROTOCOL.md section 5: a private-stream ``user_id`` is the address a single-signer
Ed25519 account has on the chain the stream document's addresses come from,
``"0x" + sha3_256(public_key || 0x00).hex()`` (0x00 is the single-Ed25519 scheme byte).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["ED25519_SCHEME", "account_address", "parse_hex"]

ED25519_SCHEME = b"\x00"
_HEX = re.compile(r"[0-9a-fA-F]*")


def account_address(public_key: bytes) -> str:
    """Return the account address of an Ed25519 public key: ``0x`` and 64 lowercase hex digits.

    Raises:
        ValueError: ``public_key`` is not 32 bytes.
    """
    if len(public_key) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return "0x" + hashlib.sha3_256(public_key + ED25519_SCHEME).hexdigest()


def parse_hex(value: str, size: int) -> bytes:
    """Decode ``value``, hex with or without a ``0x`` prefix, into exactly ``size`` bytes.

    Only hex digits are accepted (no whitespace, no sign); either case.

    Raises:
        ValueError: not a string, not hex, or not ``size`` bytes long.
    """
    if not isinstance(value, str):
        raise ValueError(f"expected a hex string, got {type(value).__name__}")
    digits = value[2:] if value[:2] in ("0x", "0X") else value
    if len(digits) != 2 * size:
        raise ValueError(f"expected {size} bytes ({2 * size} hex digits), got {len(digits)} digits")
    if _HEX.fullmatch(digits) is None:
        raise ValueError("not a hex string")
    return bytes.fromhex(digits)
