"""The markets the gateway knows: configured ones and those published to."""

from __future__ import annotations

from typing import Any

from streamgate.config import MarketConfig
from streamgate.core.channels import MARKET_KINDS

__all__ = ["MarketDirectory"]


class MarketDirectory:
    """The markets ``GET /api/v1/markets`` lists (PROTOCOL.md section 5).

    The publisher notes each market event it publishes; the server only reads the list.
    """

    def __init__(self, configured: tuple[MarketConfig, ...]) -> None:
        self._markets: dict[str, dict[str, Any]] = {m.market_addr: m.describe() for m in configured}

    def note(self, channel: str, data: Any) -> None:
        """Record a market seen in a published market event."""
        kind, _, market = channel.partition("/")
        if kind not in MARKET_KINDS or not market:
            return
        entry = self._markets.get(market)
        if entry is None:
            entry = self._markets[market] = {"market_addr": market, "symbol": market}
        if kind == "ticker" and isinstance(data, dict) and "symbol" in data:
            entry["symbol"] = data["symbol"]

    def list(self) -> list[dict[str, Any]]:
        return [dict(m) for m in self._markets.values()]
