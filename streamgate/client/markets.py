"""Markets by symbol or address: ``GET /api/v1/markets`` (PROTOCOL.md section 5)."""

from __future__ import annotations

from typing import Any

from streamgate.client.errors import ConnectError, MarketNotFound
from streamgate.client.http import HttpClient

__all__ = ["list_markets", "resolve_market"]


async def list_markets(base_url: str, *, within: float = 10.0) -> list[dict[str, Any]]:
    """Every market the gateway knows: ``[{"market_addr", "symbol", ...}]``.

    Raises:
        ConnectError: the gateway could not be reached or did not answer a list.
    """
    http = HttpClient(base_url, timeout=within)
    try:
        result = await http.request("GET", "/api/v1/markets")
        doc = result.json()
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConnectError(f"cannot list markets at {base_url}: {exc}") from exc
    finally:
        await http.close()
    if result.status != 200 or not isinstance(doc, list):
        raise ConnectError(f"GET /api/v1/markets answered {result.status}")
    return [m for m in doc if isinstance(m, dict)]


async def resolve_market(base_url: str, name: str, *, within: float = 10.0) -> str:
    """The market address of ``name``: a symbol (``BTC-PERP``, any case) or an address.

    An address the gateway lists is returned as listed; ``0x...`` that it does not list is
    refused too (a typo would otherwise watch a silent topic).

    Raises:
        MarketNotFound: no market has that symbol or address (the message lists symbols).
        ConnectError: the gateway could not be reached.
    """
    markets = await list_markets(base_url, within=within)
    wanted = name.strip().lower()
    for market in markets:
        addr = str(market.get("market_addr", ""))
        if addr.lower() == wanted or str(market.get("symbol", "")).lower() == wanted:
            return addr
    known = ", ".join(sorted(str(m.get("symbol")) for m in markets if m.get("symbol"))) or "none"
    raise MarketNotFound(f"no market {name!r} on {base_url} (symbols: {known})")
