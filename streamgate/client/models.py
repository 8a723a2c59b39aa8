"""Typed payloads of every event: generated from the AsyncAPI schemas, do not edit.

Rendered by tests/unit/client/modelgen.py from streamgate/spec/schemas.py (the contract's
source); tests/unit/client/test_models.py holds the two equal. Each payload is a
``TypedDict`` over the very dict the wire gave (:attr:`Event.data`): prices, sizes and
amounts stay the integers (or exact ``JsonNumber``) they were, nothing is converted.
``parse(name, data)`` checks the members and returns the typed view.
"""

# No ``from __future__ import annotations`` here: TypedDict reads NotRequired[] at runtime.
from typing import Any, Literal, NotRequired, TypedDict, cast

from streamgate.core.exact_json import JsonNumber

__all__ = [
    "MODELS",
    "AggregatedTrades",
    "Amount",
    "CryptoDepositCompleted",
    "CryptoDepositFailed",
    "DepositPending",
    "DepositRefunded",
    "DepositTransfer",
    "FillResponse",
    "GatewayDepositCompleted",
    "GatewayDepositFailed",
    "OrderResponse",
    "OrderbookDelta",
    "OrderbookSnapshot",
    "PositionResponse",
    "SystemNotice",
    "TickerSnapshot",
    "Trade",
    "TradeId",
    "TradeItem",
    "TradeObject",
    "parse",
]

TradeId = int | str
Amount = int | float | JsonNumber | str


class OrderbookSnapshot(TypedDict):
    """``OrderbookSnapshot`` of the AsyncAPI document."""

    type: Literal["orderbook_snapshot"]
    market_addr: str
    seq: int
    asks: list[list[int]]
    bids: list[list[int]]
    timestamp: int
    timestamp_ms: int
    matched_at: int
    checksum: int


class OrderbookDelta(TypedDict):
    """``OrderbookDelta`` of the AsyncAPI document."""

    type: Literal["orderbook_delta"]
    market_addr: str
    seq: int
    asks: list[list[int]]
    bids: list[list[int]]
    timestamp: int
    timestamp_ms: int
    matched_at: int
    checksum: int


class Trade(TypedDict):
    """``Trade`` of the AsyncAPI document."""

    id: TradeId
    side: Literal["buy", "sell"]
    price: int
    size: int
    seq: int
    timestamp: int


class AggregatedTrades(TypedDict):
    """``AggregatedTrades`` of the AsyncAPI document."""

    type: Literal["trades"]
    market_addr: str
    seq: int
    trades: list[Trade]
    timestamp: NotRequired[int]
    timestamp_ms: NotRequired[int]


class TickerSnapshot(TypedDict):
    """``TickerSnapshot`` of the AsyncAPI document."""

    type: Literal["ticker"]
    symbol: str
    market_addr: str
    ts: int
    last_price: int | float | JsonNumber
    mark_price: int | float | JsonNumber
    index_price: int | float | JsonNumber
    open_interest: int | float | JsonNumber
    open_interest_value: int | float | JsonNumber
    funding_rate: int | float | JsonNumber
    funding_rate_percentage: int | float | JsonNumber
    next_funding_time: int | float | JsonNumber
    volume_24h: int | float | JsonNumber
    turnover_24h: int | float | JsonNumber


class OrderResponse(TypedDict):
    """``OrderResponse`` of the AsyncAPI document."""

    sid: str
    side: Literal["buy", "sell"]
    size: int
    price: int
    leverage: int | float | JsonNumber
    type: str
    status: Literal[
        "created",
        "placed",
        "filled",
        "cancelled",
        "rejected",
        "partial_filled",
        "partial_filled_and_cancelled",
    ]
    user_addr: str
    market_addr: str
    seq: int
    timestamp: int
    timestamp_ms: int
    stop_loss: int | None
    take_profit: int | None


class FillResponse(TypedDict):
    """``FillResponse`` of the AsyncAPI document."""

    sid: str
    side: Literal["buy", "sell"]
    size: int
    price: int
    maker_fee: int | float | JsonNumber
    taker_fee: int | float | JsonNumber
    taker_order_sid: str
    taker_addr: str
    maker_order_sid: str
    maker_addr: str
    market_addr: str
    seq: int
    maker_leverage: int | float | JsonNumber
    taker_leverage: int | float | JsonNumber
    maker_is_cross: bool
    taker_is_cross: bool
    timestamp: int
    timestamp_ms: int


class PositionResponse(TypedDict):
    """``PositionResponse`` of the AsyncAPI document."""

    sid: str
    market_addr: str
    user_addr: str
    size: int
    price: int
    entry_price: int
    margin: int
    funding_index: int | float | JsonNumber
    epoch: int
    is_cross: bool
    initial_margin: NotRequired[int | float | JsonNumber | None]
    initial_margin_mark: NotRequired[int | float | JsonNumber | None]
    maintenance_margin: NotRequired[int | float | JsonNumber | None]
    leverage: NotRequired[int | float | JsonNumber | None]
    liq_price: NotRequired[int | float | JsonNumber | None]
    mark_price: int
    seq: int
    side: Literal["buy", "sell"]
    unrealized_pnl: int
    realized_pnl_delta: NotRequired[int | None]
    realized_pnl_cum: NotRequired[int | None]
    stop_loss: NotRequired[int | None]
    take_profit: NotRequired[int | None]
    timestamp: int
    timestamp_ms: int


class DepositTransfer(TypedDict):
    """``DepositTransfer`` of the AsyncAPI document."""

    fundingId: str
    status: Literal["pending"]
    transfer: dict[str, Any]


class DepositPending(TypedDict):
    """``DepositPending`` of the AsyncAPI document."""

    depositId: str
    chain: str | None
    token: str | None
    txHash: str | None
    amountWei: str


class GatewayDepositCompleted(TypedDict):
    """``GatewayDepositCompleted`` of the AsyncAPI document."""

    fundingId: str
    status: Literal["completed"]
    payAmountToken: Amount
    receiveAmountUsd: Amount
    completedAt: str


class CryptoDepositCompleted(TypedDict):
    """``CryptoDepositCompleted`` of the AsyncAPI document."""

    depositId: str
    chain: str | None
    token: str | None
    txHash: str | None
    amountWei: str
    amountUsdCents: str
    confirmations: int
    completedAt: str


class GatewayDepositFailed(TypedDict):
    """``GatewayDepositFailed`` of the AsyncAPI document."""

    fundingId: str
    status: Literal["expired", "failed", "partial"]
    reason: str


class CryptoDepositFailed(TypedDict):
    """``CryptoDepositFailed`` of the AsyncAPI document."""

    depositId: str
    chain: str | None
    token: str | None
    txHash: str | None
    reason: str
    confirmations: int


class DepositRefunded(TypedDict):
    """``DepositRefunded`` of the AsyncAPI document."""

    fundingId: str
    status: Literal["refunded"]


class SystemNotice(TypedDict):
    """``SystemNotice`` of the AsyncAPI document."""

    severity: Literal["info", "warning", "critical"]
    message: str


class TradeItem(TypedDict):
    """``TradeItem`` of the AsyncAPI document."""

    id: str
    name: str
    price: Amount
    status: Literal["pending", "delivered", "completed", "failed", "canceled"]
    error: NotRequired[dict[str, Any]]


class TradeObject(TypedDict):
    """``TradeObject`` of the AsyncAPI document."""

    id: str
    type: Literal["buy", "sell"]
    userId: str
    steamId: str
    tradeUrl: str
    offerId: NotRequired[str | None]
    externalId: NotRequired[str | None]
    status: Literal[
        "initiated",
        "pending",
        "active",
        "hold",
        "completed",
        "failed",
        "canceled",
        "declined",
        "reverted",
    ]
    game: str
    items: list[TradeItem]
    summary: dict[str, Any]
    totalPrice: Amount
    currency: Literal["USD", "EUR"]
    holdEndDate: NotRequired[str | None]
    settledAt: NotRequired[str | None]
    revertedBy: NotRequired[Literal["supplier", "user"] | None]
    error: NotRequired[dict[str, Any] | None]
    createdAt: str
    updatedAt: str


MODELS: dict[str, type] = {
    "OrderbookSnapshot": OrderbookSnapshot,
    "OrderbookDelta": OrderbookDelta,
    "Trade": Trade,
    "AggregatedTrades": AggregatedTrades,
    "TickerSnapshot": TickerSnapshot,
    "OrderResponse": OrderResponse,
    "FillResponse": FillResponse,
    "PositionResponse": PositionResponse,
    "DepositTransfer": DepositTransfer,
    "DepositPending": DepositPending,
    "GatewayDepositCompleted": GatewayDepositCompleted,
    "CryptoDepositCompleted": CryptoDepositCompleted,
    "GatewayDepositFailed": GatewayDepositFailed,
    "CryptoDepositFailed": CryptoDepositFailed,
    "DepositRefunded": DepositRefunded,
    "SystemNotice": SystemNotice,
    "TradeItem": TradeItem,
    "TradeObject": TradeObject,
}


def parse(name: str, data: Any) -> Any:
    """Check ``data`` has the members of model ``name`` (all required, none unknown).

    Returns ``data`` itself, to be read as that model: ``cast(Trade, parse("Trade", d))``.

    Raises:
        KeyError: no model of that name.
        ValueError: a required member is missing or an unknown one is present.
    """
    model = MODELS[name]
    if not isinstance(data, dict):
        raise ValueError(f"{name} must be an object")
    required: frozenset[str] = model.__required_keys__  # type: ignore[attr-defined]
    known = required | model.__optional_keys__  # type: ignore[attr-defined]
    missing, unknown = required - data.keys(), data.keys() - known
    if missing or unknown:
        raise ValueError(f"{name}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    return cast(Any, data)
