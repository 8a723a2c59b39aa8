"""JSON that passes numbers on exactly as a producer wrote them.

Producers send amounts as JSON numbers (SkinShark's ``payAmountToken``, Ekiden's u64 trade
ids) and clients must get the same literal back: no float rounding, no re-encoding
(``12.10`` stays ``12.10``, ``18446744073709551615`` stays exact). orjson alone turns a
fraction into a float and an integer past 64 bits into a float, so :func:`loads` keeps
such literals as :class:`JsonNumber` (its text) and :func:`dumps` writes that text back
verbatim. A document with neither (the common case: scaled integer prices and sizes) is
read by orjson alone, at orjson's speed.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["JsonNumber", "dumps", "loads"]


class JsonNumber:
    """A JSON number literal kept as its text: a fraction, an exponent, or a big integer."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __float__(self) -> float:
        return float(self.text)

    @property
    def negative(self) -> bool:
        return self.text.startswith("-")

    def __eq__(self, other: object) -> bool:
        """Equal to a number of the same value: an int exactly, a float as the literal reads."""
        if isinstance(other, JsonNumber):
            return Decimal(self.text) == Decimal(other.text)
        if isinstance(other, bool) or not isinstance(other, int | float):
            return NotImplemented
        if isinstance(other, float):
            return float(self.text) == other
        return Decimal(self.text) == other

    def __hash__(self) -> int:
        value = Decimal(self.text)  # hashes as the int or float it equals
        return hash(int(value)) if value == value.to_integral_value() else hash(float(value))

    def __repr__(self) -> str:
        return f"JsonNumber({self.text!r})"


# Every fraction or exponent has a digit right before its '.', 'e' or 'E'; an integer
# orjson cannot hold exactly has 20 digits or more. Strings can match too (they only
# cost the exact, slower parse); a document that does not match has neither.
_INEXACT = re.compile(rb"[0-9][.eE]|[0-9]{20}")
_I64_MIN, _U64_END = -(2**63), 2**64


def _integer(text: str) -> int | JsonNumber:
    value = int(text)
    return value if _I64_MIN <= value < _U64_END else JsonNumber(text)


def loads(data: bytes) -> Any:
    """Parse strict JSON (as orjson does), numbers kept exact.

    Raises:
        orjson.JSONDecodeError: not valid JSON, or nested too deeply to read exactly.
    """
    doc = orjson.loads(data)  # strict: no NaN, no lone surrogates, valid UTF-8
    if _INEXACT.search(data) is None:
        return doc
    try:
        return json.loads(data, parse_float=JsonNumber, parse_int=_integer)
    except RecursionError:
        raise orjson.JSONDecodeError("the document is nested too deeply", "", 0) from None


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, JsonNumber):
        return orjson.Fragment(value.text.encode())
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(value: Any, option: int = 0) -> bytes:
    """Write ``value`` as orjson does, :class:`JsonNumber` literals verbatim."""
    return orjson.dumps(value, default=_fragment, option=option)
