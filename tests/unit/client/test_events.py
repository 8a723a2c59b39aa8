"""Event.model(): each payload checked against its model from the AsyncAPI schemas."""

from __future__ import annotations

from typing import Any

import pytest

from streamgate.client import Event


def event(topic: str, data: Any) -> Event:
    return Event(topic, data, 1, "e", None, 0.0, b"")


def test_model_names_follow_type_topic_and_event() -> None:
    assert event("orderbook/m", {"type": "orderbook_delta"}).model_name == "OrderbookDelta"
    assert event("trade/m", {"type": "trades"}).model_name == "AggregatedTrades"
    assert event("order", [{}]).model_name == "OrderResponse"
    assert event("trade.completed", {}).model_name == "TradeObject"
    assert event("deposit.completed", {"fundingId": "f"}).model_name == "GatewayDepositCompleted"
    assert event("deposit.completed", {"depositId": "d"}).model_name == "CryptoDepositCompleted"
    assert event("nope", {}).model_name is None


def test_model_checks_the_payload() -> None:
    notice = {"severity": "info", "message": "hi"}
    assert event("system.notice", notice).model() is notice
    with pytest.raises(ValueError, match="missing"):
        event("system.notice", {"severity": "info"}).model()
    with pytest.raises(ValueError, match="no model"):
        event("nope", {}).model()
