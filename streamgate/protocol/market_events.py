"""Producer API market events: ``orderbook/<m>``, ``trade/<m>`` and ``ticker/<m>``.

:func:`market_event` checks an event of a public topic and returns its data, normalized:
``market_addr``, ``timestamp`` and ``timestamp_ms`` filled when absent (PROTOCOL.md
section 4), an order book's ``matched_at`` too (from ``timestamp_ms``, section 2), each
side of a book in ascending price order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamgate.core.books import DELTA, SNAPSHOT
from streamgate.protocol.fields import (
    FieldError,
    choice,
    data_object,
    integer,
    number,
    objects,
    only,
    side,
    stamps,
    string,
    trade_id,
)

__all__ = ["TICKER_NUMBERS", "market_event"]


def market_event(event: dict[str, Any], topic: str, now_ms: int) -> dict[str, Any]:
    """Check an event of the public ``topic`` (``<kind>/<market>``); return its data."""
    only(event, {"topic", "data", "idempotency_key"}, "")
    kind, market = topic.split("/", 1)
    data = data_object(event)
    return _MARKET[kind](data, market, now_ms)


def _market_addr(data: dict[str, Any], market: str) -> str:
    addr = data.get("market_addr", market)
    if addr != market:
        raise FieldError("data.market_addr", f"data.market_addr must match the topic's {market!r}")
    return market


def _levels(data: dict[str, Any], name: str, *, snapshot: bool) -> list[list[int]]:
    raw = data.get(name)
    where = f"data.{name}"
    if raw is None:
        raise FieldError(where, f"{where} is required (may be empty)")
    if not isinstance(raw, list):
        raise FieldError(where, f"{where} must be an array of [price, size]")
    seen: set[int] = set()
    levels = []
    for i, level in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(level, list) or len(level) != 2:
            raise FieldError(at, f"{at} must be [price, size]")
        price, size = level
        if not isinstance(price, int) or isinstance(price, bool) or price <= 0:
            raise FieldError(f"{at}[0]", f"{at}[0] (price) must be a positive integer")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FieldError(f"{at}[1]", f"{at}[1] (size) must be an integer >= 0")
        if snapshot and size == 0:
            raise FieldError(f"{at}[1]", f"{at}[1] (size) must be positive in a snapshot")
        if price in seen:
            raise FieldError(f"{at}[0]", f"{at}[0]: price {price} appears twice in {where}")
        seen.add(price)
        levels.append([price, size])
    levels.sort()
    return levels


def _orderbook(data: dict[str, Any], market: str, now_ms: int) -> dict[str, Any]:
    only(
        data,
        {"type", "market_addr", "seq", "asks", "bids", "timestamp", "timestamp_ms", "matched_at"},
        "data",
    )
    kind = choice(data, "type", "data", (SNAPSHOT, DELTA))
    addr = _market_addr(data, market)
    seq = integer(data, "seq", "data", minimum=0)
    snapshot = kind == SNAPSHOT
    asks = _levels(data, "asks", snapshot=snapshot)
    bids = _levels(data, "bids", snapshot=snapshot)
    sec, ms = stamps(data, now_ms)
    return {
        "type": kind,
        "market_addr": addr,
        "seq": seq,
        "asks": asks,
        "bids": bids,
        "timestamp": sec,
        "timestamp_ms": ms,
        # The matching time the SDK types as required; the event's own time when not given.
        "matched_at": integer(data, "matched_at", "data", minimum=0)
        if "matched_at" in data
        else ms,
    }


_TRADE_FIELDS = {"id", "side", "price", "size", "seq", "timestamp"}


def _trades(data: dict[str, Any], market: str, now_ms: int) -> dict[str, Any]:
    only(data, {"type", "market_addr", "seq", "trades", "timestamp", "timestamp_ms"}, "data")
    choice(data, "type", "data", ("trades",), "trades")
    addr = _market_addr(data, market)
    seq = integer(data, "seq", "data", minimum=0)
    raw = data.get("trades")
    if not isinstance(raw, list) or not raw:
        raise FieldError("data.trades", "data.trades must be a non-empty array")
    trades = []
    for at, trade in objects(raw, "data.trades"):
        only(trade, _TRADE_FIELDS, at)
        trade_side = side(trade, at)
        trades.append(
            {
                "id": trade_id(trade, "id", at),
                "side": trade_side,
                "price": integer(trade, "price", at, minimum=1),
                "size": integer(trade, "size", at, minimum=1),
                "seq": integer(trade, "seq", at, minimum=0),
                "timestamp": (
                    integer(trade, "timestamp", at, minimum=0)
                    if "timestamp" in trade
                    else now_ms // 1000
                ),
            }
        )
    out: dict[str, Any] = {"type": "trades", "market_addr": addr, "seq": seq, "trades": trades}
    if "timestamp" in data or "timestamp_ms" in data:
        out["timestamp"], out["timestamp_ms"] = stamps(data, now_ms)
    return out


TICKER_NUMBERS = (
    "last_price",
    "mark_price",
    "index_price",
    "open_interest",
    "open_interest_value",
    "funding_rate",
    "funding_rate_percentage",
    "next_funding_time",
    "volume_24h",
    "turnover_24h",
)


def _ticker(data: dict[str, Any], market: str, now_ms: int) -> dict[str, Any]:
    only(data, {"type", "symbol", "market_addr", "ts", *TICKER_NUMBERS}, "data")
    choice(data, "type", "data", ("ticker",), "ticker")
    out: dict[str, Any] = {
        "type": "ticker",
        "symbol": string(data, "symbol", "data"),
        "market_addr": _market_addr(data, market),
        "ts": integer(data, "ts", "data", minimum=0) if "ts" in data else now_ms,
    }
    for name in TICKER_NUMBERS:
        out[name] = number(data, name, "data")
    return out


_MARKET: dict[str, Callable[[dict[str, Any], str, int], dict[str, Any]]] = {
    "orderbook": _orderbook,
    "trade": _trades,
    "ticker": _ticker,
}
