"""What a stream yields: events, and what happened to the connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamgate.client.models import parse

__all__ = ["Disconnected", "Event", "Reconnected", "StreamItem"]


@dataclass(frozen=True)
class Event:
    """One event frame as received.

    ``topic`` is the stream topic (``trade/0xabc...``, ``order``) or, on a push socket,
    the event name (``deposit.completed``). ``data`` is the payload exactly as the wire
    gave it: numbers that a float cannot hold are ``core.exact_json.JsonNumber``.
    ``seq`` is the payload's ``seq`` when it has one (market data); ``offset`` and
    ``epoch`` are the envelope's resume position (PROTOCOL.md section 3).
    """

    topic: str
    data: Any
    offset: int | None
    epoch: str | None
    seq: int | None
    received_at: float
    raw: bytes | str

    @property
    def model_name(self) -> str | None:
        """The name of the payload's model in :mod:`streamgate.client.models` (None: unknown).

        Private topics carry arrays: the name is that of their items.
        """
        data = self.data
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            return _MARKET_MODELS.get(data["type"])
        if self.topic in _PRIVATE_MODELS:
            return _PRIVATE_MODELS[self.topic]
        if self.topic.startswith("trade."):
            return "TradeObject"
        if self.topic in _PUSH_MODELS and isinstance(data, dict):
            gateway, crypto = _PUSH_MODELS[self.topic]
            return crypto if "depositId" in data else gateway
        return None

    def model(self) -> Any:
        """The payload checked against its model (``models.parse``): typed, same object.

        Raises:
            ValueError: the payload does not have its model's members, or has no model.
        """
        name = self.model_name
        if name is None:
            raise ValueError(f"no model for {self.topic!r}")
        if isinstance(self.data, list):
            return [parse(name, item) for item in self.data]
        return parse(name, self.data)


_MARKET_MODELS = {
    "orderbook_snapshot": "OrderbookSnapshot",
    "orderbook_delta": "OrderbookDelta",
    "trades": "AggregatedTrades",
    "ticker": "TickerSnapshot",
}
_PRIVATE_MODELS = {"order": "OrderResponse", "fill": "FillResponse", "position": "PositionResponse"}
# push event -> (gateway-hosted model, self-hosted crypto model): told apart by depositId
_PUSH_MODELS = {
    "deposit.transfer": ("DepositTransfer", "DepositTransfer"),
    "deposit.pending": ("DepositPending", "DepositPending"),
    "deposit.completed": ("GatewayDepositCompleted", "CryptoDepositCompleted"),
    "deposit.failed": ("GatewayDepositFailed", "CryptoDepositFailed"),
    "deposit.refunded": ("DepositRefunded", "DepositRefunded"),
    "system.notice": ("SystemNotice", "SystemNotice"),
}


@dataclass(frozen=True)
class Reconnected:
    """Yielded after a reconnect, once every topic is resubscribed.

    ``recovered`` is False when some topic's missed events could not be replayed
    (history too old, or another epoch); ``not_recovered`` names those topics.
    """

    attempt: int
    recovered: bool
    not_recovered: tuple[str, ...]


@dataclass(frozen=True)
class Disconnected:
    """Yielded when the connection drops; ``retry_in`` is None when it will not retry."""

    code: int | None
    reason: str
    retry_in: float | None


StreamItem = Event | Reconnected | Disconnected
