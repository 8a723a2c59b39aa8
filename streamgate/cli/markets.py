"""``streamgate markets [MARKET]``: the markets a gateway knows, or one market's address."""

from __future__ import annotations

import argparse

import orjson

from streamgate.cli.common import Formatter, add_url, http_base, run
from streamgate.client.markets import list_markets, resolve_market

__all__ = ["register"]

_EPILOG = """\
examples:
  streamgate markets                     symbol and address of every market, a line each
  streamgate markets --json              the gateway's list as it answers it
  MARKET=$(streamgate markets BTC-PERP)  one market's address alone (symbol or address)
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "markets",
        help="list the gateway's markets, or print one market's address",
        description="The markets a gateway knows (configured or published to).",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    cmd.add_argument("market", nargs="?", metavar="MARKET", help="a symbol or an address")
    add_url(cmd)
    cmd.add_argument("--json", action="store_true", help="the list as JSON")
    cmd.set_defaults(run=lambda args: run(_markets(args)))


async def _markets(args: argparse.Namespace) -> int:
    base = http_base(args.url)
    if args.market is not None:
        print(await resolve_market(base, args.market))
        return 0
    listed = await list_markets(base)
    if args.json:
        print(orjson.dumps(listed).decode())
        return 0
    for market in listed:
        print(f"{market.get('symbol') or '-'}\t{market.get('market_addr')}")
    return 0
