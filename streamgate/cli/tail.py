"""``streamgate tail TOPIC...``: events of the stream protocol, a line each."""

from __future__ import annotations

import argparse
import asyncio
import sys

from streamgate.cli.common import CliError, Formatter, add_url, http_base, run, ws_base
from streamgate.cli.show import disconnected_line, event_line, json_line, reconnected_line
from streamgate.cli.topics import PRIVATE_TOPICS, resolve_topics
from streamgate.client.errors import ConnectError, SubscribeError
from streamgate.client.events import Disconnected, Event, Reconnected
from streamgate.client.stream import StreamClient

__all__ = ["register"]

_EPILOG = """\
examples:
  streamgate tail trade/BTC-PERP                 one market's trades (symbol or 0x address)
  streamgate tail BTC-PERP                       its orderbook, trade and ticker topics
  streamgate tail --json ticker/ETH-PERP | jq .data.last_price
  streamgate tail --bearer "$BEARER" order fill position    the private stream
  streamgate tail --count 10 --seconds 30 trade/BTC-PERP    stop after 10 events or 30 s

Each line: local time, topic, the payload's seq, the stream offset, and the gist of the
event. When the connection drops it says so on stderr, reconnects, resumes every topic
from the last offset it saw, and says whether every missed event was replayed
("recovered") or which topics lost events. --json prints one JSON object an event
(topic, offset, epoch, seq, received_at, data; numbers exact) and news on stderr only.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "tail",
        help="print the events of stream topics (public, or private with --bearer)",
        description="Print the events of stream-protocol topics as they arrive.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    cmd.add_argument("topics", nargs="+", metavar="TOPIC", help="a topic or a market")
    add_url(cmd)
    cmd.add_argument("--bearer", help="a bearer JWT: /ws/private, for order, fill, position")
    cmd.add_argument("--json", action="store_true", help="one JSON object a line")
    cmd.add_argument("--count", type=int, help="stop after this many events")
    cmd.add_argument("--seconds", type=float, help="stop after this many seconds")
    cmd.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise CliError("--count must be >= 1", 2)
    if args.seconds is not None and args.seconds <= 0:
        raise CliError("--seconds must be > 0", 2)
    if args.bearer is None and any(t in PRIVATE_TOPICS for t in args.topics):
        raise CliError("order, fill and position are private topics: give --bearer", 2)
    return run(_tail(args))


def news(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _tail(args: argparse.Namespace) -> int:
    base = http_base(args.url)
    names = await resolve_topics(base, args.topics)
    path = "/ws/private" if args.bearer else "/ws/public"
    url = ws_base(args.url) + path
    client = StreamClient(url, bearer=args.bearer)
    try:
        await client.connect()
    except ConnectError as exc:
        raise CliError(f"cannot reach the gateway at {url}: {exc.__cause__ or exc}") from None
    seen = 0
    try:
        try:
            acked = await client.subscribe(*names)
        except SubscribeError as exc:
            refused = ", ".join(f"{names.get(t, t)}: {c}" for t, c in exc.refused.items())
            raise CliError(f"the gateway refused every topic ({refused})", 1) from None
        for topic in names:
            if topic not in acked:
                news(f"-- not subscribed: {names[topic]} (refused by the gateway)")
        news("-- subscribed: " + ", ".join(names[t] for t in acked if t in names))
        try:
            async with asyncio.timeout(args.seconds):
                async for item in client:
                    if isinstance(item, Event):
                        line = (
                            json_line(item)
                            if args.json
                            else event_line(item, names.get(item.topic))
                        )
                        print(line, flush=True)
                        seen += 1
                        if args.count is not None and seen >= args.count:
                            break
                    elif isinstance(item, Reconnected):
                        news(reconnected_line(item, names))
                    elif isinstance(item, Disconnected):
                        news(disconnected_line(item))
                        if item.retry_in is None:
                            failure = client.failure
                            raise CliError(
                                f"the stream ended: {failure or 'closed by the gateway'}"
                            )
        except TimeoutError:
            pass
    finally:
        await client.close()
    return 0
