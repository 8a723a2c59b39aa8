"""Sample events as producers publish them: one place for the shapes tests reuse."""

from __future__ import annotations

from typing import Any

__all__ = ["delta_event", "notice", "snapshot_event", "trade_event"]


def trade_event(market: str, seq: int, **extra: Any) -> dict[str, Any]:
    trade = {"id": f"t{seq}", "side": "buy", "price": 100 + seq, "size": 1, "seq": seq}
    return {"topic": f"trade/{market}", "data": {"seq": seq, "trades": [trade]}, **extra}


def snapshot_event(
    market: str, seq: int, asks: list[list[int]], bids: list[list[int]]
) -> dict[str, Any]:
    return {
        "topic": f"orderbook/{market}",
        "data": {"type": "orderbook_snapshot", "seq": seq, "asks": asks, "bids": bids},
    }


def delta_event(
    market: str, seq: int, asks: list[list[int]], bids: list[list[int]]
) -> dict[str, Any]:
    return {
        "topic": f"orderbook/{market}",
        "data": {"type": "orderbook_delta", "seq": seq, "asks": asks, "bids": bids},
    }


def notice(tenant: str, sub_user: str | None, message: str) -> dict[str, Any]:
    """A push ``system.notice``: to one sub-user, or with ``None`` tenant-wide."""
    event: dict[str, Any] = {
        "event": "system.notice",
        "tenant": tenant,
        "data": {"severity": "info", "message": message},
    }
    if sub_user is not None:
        event["sub_user"] = sub_user
    return event
