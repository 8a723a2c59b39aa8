"""Topics as a person types them: markets by symbol or by address."""

from __future__ import annotations

from streamgate.cli.common import CliError
from streamgate.client.markets import resolve_market

__all__ = ["MARKET_KINDS", "PRIVATE_TOPICS", "resolve_topics"]

MARKET_KINDS = ("orderbook", "trade", "ticker")
PRIVATE_TOPICS = frozenset({"order", "fill", "position"})


async def resolve_topics(base: str, given: list[str]) -> dict[str, str]:
    """Wire topic -> the name to show, for each of ``given``.

    ``trade/BTC-PERP`` and ``trade/0x...`` name one topic; a bare market (``BTC-PERP``)
    names its three topics; ``order``, ``fill``, ``position`` are private.

    Raises:
        CliError: an unknown kind of topic.
        MarketNotFound: no market of that symbol or address (from resolve_market).
    """
    wanted: list[tuple[str, tuple[str, ...], str]] = []  # (market, kinds, as typed)
    for text in given:
        if text in PRIVATE_TOPICS:
            wanted.append(("", (text,), text))
            continue
        kind, slash, market = text.partition("/")
        kinds: tuple[str, ...]
        if not slash:
            kind, market, kinds = "", text, MARKET_KINDS
        elif kind in MARKET_KINDS:
            kinds = (kind,)
        else:
            kinds = ()
        if not kinds or not market or "/" in market or any(c.isspace() for c in market):
            raise CliError(
                f"bad topic {text!r}: need orderbook/M, trade/M, ticker/M, a market M,"
                " or order, fill, position",
                2,
            )
        wanted.append((market, kinds, text))
    out: dict[str, str] = {}
    resolved: dict[str, str] = {}
    for market, kinds, _text in wanted:
        if not market:
            out[kinds[0]] = kinds[0]
            continue
        if market not in resolved:
            resolved[market] = await resolve_market(base, market)
        for k in kinds:
            out[f"{k}/{resolved[market]}"] = f"{k}/{market}"
    return out
