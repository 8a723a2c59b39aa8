"""resolve_market against a real gateway with configured markets."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamgate.client import ConnectError, MarketNotFound, resolve_market
from streamgate.config import MarketConfig

from support import base_url, running_gateway
from support.cluster import free_port

ADDR = "0x" + "ab" * 32


async def test_symbol_or_address_resolves_and_unknown_names_are_refused(tmp_path: Path) -> None:
    markets = (MarketConfig(ADDR, "BTC-PERP", price_decimals=2, size_decimals=3),)
    async with running_gateway(tmp_path, markets=markets) as gw:
        url = base_url(gw)
        assert await resolve_market(url, "BTC-PERP") == ADDR
        assert await resolve_market(url, "btc-perp") == ADDR
        assert await resolve_market(url, ADDR.upper().replace("0X", "0x")) == ADDR  # any case
        with pytest.raises(MarketNotFound, match="symbols: BTC-PERP"):
            await resolve_market(url, "ETH-PERP")
    with pytest.raises(ConnectError):
        await resolve_market(f"http://127.0.0.1:{free_port()}", "BTC-PERP", within=2)
