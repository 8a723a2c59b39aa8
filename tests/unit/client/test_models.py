"""The SDK's typed payloads match the AsyncAPI schemas both ways, member for member."""

from __future__ import annotations

import typing

import pytest

from streamgate.client import models
from streamgate.spec.schemas import PUSH_DATA, STREAM_DATA

OBJECTS = {n: s for n, s in {**STREAM_DATA, **PUSH_DATA}.items() if s.get("type") == "object"}


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_every_schema_member_is_a_model_member_and_back(name: str) -> None:
    schema, model = OBJECTS[name], models.MODELS[name]
    required = set(schema.get("required", []))
    assert model.__required_keys__ == required  # type: ignore[attr-defined]
    assert model.__optional_keys__ == set(schema["properties"]) - required  # type: ignore[attr-defined]


def test_every_model_has_a_schema() -> None:
    assert set(models.MODELS) == set(OBJECTS)


def test_integers_stay_integers() -> None:
    hints = typing.get_type_hints(models.Trade)
    assert hints["price"] is int and hints["size"] is int
    assert typing.get_type_hints(models.OrderbookDelta)["checksum"] is int


def test_parse_checks_members() -> None:
    trade = {"id": 1, "side": "buy", "price": 5, "size": 2, "seq": 1, "timestamp": 0}
    assert models.parse("Trade", trade) is trade
    with pytest.raises(ValueError, match=r"missing \['timestamp'\]"):
        models.parse("Trade", {k: v for k, v in trade.items() if k != "timestamp"})
    with pytest.raises(ValueError, match=r"unknown \['x'\]"):
        models.parse("Trade", {**trade, "x": 1})
