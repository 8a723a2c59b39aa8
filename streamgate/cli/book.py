"""``streamgate book MARKET``: a live top of book in the terminal (rich), redrawn in place.

The book is the SDK's :class:`~streamgate.client.book.LocalOrderBook` fed by
:func:`~streamgate.client.book.watch_book` (snapshot, deltas, ``seq`` and checksum
checked, a fresh snapshot on a gap); the last trade comes from a second subscription
(``trade/<market>``). Prices and sizes are shown in units when the gateway lists the
market's decimals (``GET /api/v1/markets``), as the integers of the wire otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from streamgate.cli.common import CliError, Formatter, add_url, http_base, run, ws_base
from streamgate.client.book import LocalOrderBook, watch_book
from streamgate.client.errors import ConnectError
from streamgate.client.events import Event, StreamItem
from streamgate.client.markets import list_markets, resolve_market
from streamgate.client.stream import StreamClient

__all__ = ["Scale", "register", "render"]

_EPILOG = """\
examples:
  streamgate book BTC-PERP                       the demo's market, by symbol
  streamgate book 0xb7cb7c...1 --depth 5          by address, five levels a side
  streamgate book BTC-PERP --seconds 30           stop after 30 s (Ctrl-C stops it too)

Asks above, bids below, best prices nearest the spread line; then the last trade and
the book's seq. The book is checked as it goes: a seq gap or a checksum that disagrees
with the gateway's is answered by a fresh snapshot (the footer counts these resyncs).
"""


@dataclass(frozen=True, slots=True)
class Scale:
    """How to print a market's integers: ``price_decimals``, ``size_decimals``."""

    price: int = 0
    size: int = 0

    @staticmethod
    def _fmt(value: int, decimals: int) -> str:
        if decimals <= 0:
            return f"{value:,}"
        sign, digits = ("-" if value < 0 else ""), str(abs(value)).rjust(decimals + 1, "0")
        return f"{sign}{int(digits[:-decimals]):,}.{digits[-decimals:]}"

    def price_text(self, value: int) -> str:
        return self._fmt(value, self.price)

    def size_text(self, value: int) -> str:
        return self._fmt(value, self.size)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "book",
        help="a live top-of-book view of a market (spread, last trade)",
        description="Watch a market's order book live: top levels, spread and last trade.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    cmd.add_argument("market", metavar="MARKET", help="a market's symbol or 0x address")
    add_url(cmd)
    cmd.add_argument("--depth", type=int, default=10, help="levels a side (default 10)")
    cmd.add_argument("--seconds", type=float, help="stop after this many seconds")
    cmd.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if not 1 <= args.depth <= 100:
        raise CliError("--depth must be within 1..100", 2)
    if args.seconds is not None and args.seconds <= 0:
        raise CliError("--seconds must be > 0", 2)
    return run(_watch(args))


async def _scale(base: str, address: str) -> tuple[str, Scale]:
    """The market's symbol and decimals, as the gateway lists them."""
    for market in await list_markets(base):
        if market.get("market_addr") == address:
            price, size = market.get("price_decimals"), market.get("size_decimals")
            return str(market.get("symbol") or address), Scale(
                price if isinstance(price, int) else 0, size if isinstance(size, int) else 0
            )
    return address, Scale()


@dataclass
class _Trade:
    side: str
    price: int
    size: int
    at: float


def render(
    name: str,
    book: LocalOrderBook | None,
    trade: _Trade | None,
    scale: Scale,
    depth: int,
) -> Group:
    """The screen: a title, the asks/bids table, the spread and the last trade."""
    title = Text(f"{name}  order book", style="bold")
    if book is None:
        return Group(title, Text("waiting for the snapshot ..."))
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("side")
    table.add_column("price", justify="right")
    table.add_column("size", justify="right")
    for price, size in reversed(book.asks(depth)):
        table.add_row(Text("ask", style="red"), scale.price_text(price), scale.size_text(size))
    spread = "-" if book.spread is None else scale.price_text(book.spread)
    table.add_row(Text("spread", style="bold"), spread, "")
    for price, size in book.bids(depth):
        table.add_row(Text("bid", style="green"), scale.price_text(price), scale.size_text(size))
    if trade is None:
        last = Text("last trade: none yet")
    else:
        clock = time.strftime("%H:%M:%S", time.localtime(trade.at))
        last = Text(
            f"last trade: {trade.side} {scale.size_text(trade.size)}"
            f" @ {scale.price_text(trade.price)} at {clock}"
        )
    footer = Text(f"seq {book.seq}  resyncs {book.resyncs}", style="dim")
    return Group(title, table, last, footer)


async def _watch(args: argparse.Namespace) -> int:
    base = http_base(args.url)
    address = await resolve_market(base, args.market)
    name, scale = await _scale(base, address)
    url = ws_base(args.url) + "/ws/public"
    client = StreamClient(url)
    try:
        await client.connect()
    except ConnectError as exc:
        raise CliError(f"cannot reach the gateway at {url}: {exc.__cause__ or exc}") from None
    last: list[_Trade] = []

    def on_item(item: StreamItem) -> None:
        """Trades (and the connection's news, which the next redraw reflects)."""
        if isinstance(item, Event) and isinstance(item.data, dict):
            for t in item.data.get("trades", ()):
                if isinstance(t, dict):
                    last[:] = [_Trade(str(t.get("side")), t["price"], t["size"], time.time())]

    try:
        await client.subscribe(f"trade/{address}")
        first = render(name, None, None, scale, args.depth)
        with Live(first, console=Console()) as live, contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.seconds):
                async for book in watch_book(client, address, on_item=on_item):
                    screen = render(name, book, last[0] if last else None, scale, args.depth)
                    live.update(screen, refresh=True)
    finally:
        await client.close()
    return 0
