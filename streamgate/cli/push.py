"""``streamgate push tail``: a sub-user's pushes (``/ws``), a line each."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from streamgate.cli.common import CliError, Formatter, add_url, http_base, run
from streamgate.cli.show import disconnected_line, event_line, json_line, reconnected_line
from streamgate.client.errors import AuthError, ConnectError
from streamgate.client.events import Disconnected, Event, Reconnected
from streamgate.client.push import PushClient

__all__ = ["register"]

_EPILOG = """\
examples:
  streamgate push tail --api-key "$KEY" --sub-user alice
  streamgate push tail --ticket "$TICKET"                  a ticket minted elsewhere
  streamgate push tail --api-key "$KEY" --sub-user alice --json --count 5

The API key mints a ticket (POST /auth/ws-token, On-Behalf-Of the sub-user) and mints a
fresh one when the gateway closes with 4001 (ticket expired). Each line: local time,
event name, offset, the gist of its data. On a reconnect it resumes from the last
offset and says whether every missed event was replayed.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "push",
        help="the push protocol: a sub-user's events (/ws)",
        description="The push protocol (/ws): a sub-user's deposits, trades and notices.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = actions.add_parser(
        "tail",
        help="print a sub-user's pushes as they arrive",
        description="Print a sub-user's pushes as they arrive.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    add_url(tail)
    tail.add_argument("--api-key", help="the tenant's API key (mints tickets)")
    tail.add_argument("--sub-user", help="the sub-user (On-Behalf-Of)")
    tail.add_argument("--ticket", help="a ticket, instead of --api-key and --sub-user")
    tail.add_argument("--json", action="store_true", help="one JSON object a line")
    tail.add_argument("--count", type=int, help="stop after this many events")
    tail.add_argument("--seconds", type=float, help="stop after this many seconds")
    tail.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if args.ticket is None and (args.api_key is None or args.sub_user is None):
        raise CliError("give --api-key and --sub-user, or --ticket", 2)
    if args.count is not None and args.count < 1:
        raise CliError("--count must be >= 1", 2)
    if args.seconds is not None and args.seconds <= 0:
        raise CliError("--seconds must be > 0", 2)
    return run(_tail(args))


def _news(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def _tail(args: argparse.Namespace) -> int:
    base = http_base(args.url)
    client = PushClient(base, api_key=args.api_key, sub_user=args.sub_user, ticket=args.ticket)
    seen = 0
    try:
        try:
            await client.connect()
        except AuthError as exc:
            raise CliError(f"the gateway refused the credentials: {exc}") from None
        except ConnectError as exc:
            raise CliError(f"cannot reach the gateway at {base}: {exc.__cause__ or exc}") from None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(args.seconds):
                async for item in client:
                    if isinstance(item, Event):
                        print(json_line(item) if args.json else event_line(item), flush=True)
                        seen += 1
                        if args.count is not None and seen >= args.count:
                            break
                    elif isinstance(item, Reconnected):
                        _news(reconnected_line(item))
                    elif isinstance(item, Disconnected):
                        _news(disconnected_line(item))
                        if item.retry_in is None:
                            raise CliError("the push stream ended (closed by the gateway)")
    finally:
        await client.close()
    return 0
