"""``streamgate bench``: a quick fan-out check of a running gateway, from the SDK.

``--subscribers`` stream clients subscribe one trade topic of a market of their own;
a producer publishes to it at ``--rate`` events a second for ``--seconds``. Each trade's
id carries the time it was sent, so every delivery gives a latency (send to receive,
one clock: all runs in this process). Bounded: the publishing stops after ``--seconds``,
the count after one more second at most, and every socket is then closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from streamgate.cli.common import CliError, Formatter, add_url, http_base, producer_key_of, run
from streamgate.client.errors import ConnectError
from streamgate.client.events import Event
from streamgate.client.producer import Producer, PublishError
from streamgate.client.stream import StreamClient
from streamgate.config import load_config

__all__ = ["Tally", "percentile", "register"]

GRACE = 1.0  # seconds to wait for deliveries in flight after the last publish
TICK = 0.02  # seconds between publishes (rate / 50 events each)

_EPILOG = """\
examples:
  streamgate bench                                     10 subscribers, 5 s, 1000 events/s
  streamgate bench --url http://10.0.0.5:8080 --subscribers 200 --seconds 10 --rate 500

Prints what was published and delivered, delivered messages a second, and the latency
of a delivery (publish to receive) at p50, p90, p99 and max. A subscriber that lost
events (the gateway closed it as slow, 4009) shows as missing deliveries. The producer
key as for `streamgate publish`. For figures to compare, run it alone on the machine.
"""


@dataclass
class Tally:
    """Deliveries counted by every subscriber."""

    latencies: list[float] = field(default_factory=list)  # seconds
    delivered: int = 0
    disconnects: int = 0
    expected: float = float("inf")  # set once the publishing is over
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, latency: float) -> None:
        self.latencies.append(latency)
        self.delivered += 1
        if self.delivered >= self.expected:
            self.complete.set()


def percentile(sorted_values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ascending ``sorted_values``."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(p / 100 * len(sorted_values))))
    return sorted_values[rank - 1]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser(
        "bench",
        help="a quick fan-out check against a running gateway",
        description="Fan-out check: subscribers on one topic, a producer publishing to it.",
        epilog=_EPILOG,
        formatter_class=Formatter,
    )
    add_url(cmd)
    cmd.add_argument("--subscribers", type=int, default=10, help="stream clients (default 10)")
    cmd.add_argument("--seconds", type=float, default=5.0, help="publishing time (default 5)")
    cmd.add_argument("--rate", type=int, default=1000, help="events a second (default 1000)")
    cmd.add_argument("--key", help="the producer key")
    cmd.add_argument("--key-file", help="a file holding the producer key")
    cmd.add_argument("--config", help="TOML configuration file (producer_key, data_dir)")
    cmd.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    if not 1 <= args.subscribers <= 10_000:
        raise CliError("--subscribers must be within 1..10000", 2)
    if not 0 < args.seconds <= 3600:
        raise CliError("--seconds must be within 0..3600", 2)
    if not 1 <= args.rate <= 1_000_000:
        raise CliError("--rate must be within 1..1000000", 2)
    key = producer_key_of(load_config(args.config), args.key, args.key_file)
    return run(_bench(args, key))


async def _consume(client: StreamClient, tally: Tally) -> None:
    async for item in client:
        if isinstance(item, Event) and isinstance(item.data, dict):
            for trade in item.data.get("trades", ()):
                sent = str(trade.get("id", "")).rpartition("-")[2]
                if sent.isdigit():
                    tally.count(item.received_at - int(sent) / 1e9)
        elif not isinstance(item, Event):
            tally.disconnects += 1


async def _bench(args: argparse.Namespace, key: str) -> int:
    base = http_base(args.url)
    ws = base.replace("http", "ws", 1) + "/ws/public"
    market = "0xbench" + secrets.token_hex(8)
    topic = f"trade/{market}"
    console = Console(stderr=True)
    tally = Tally()
    clients = [StreamClient(ws, reconnect=False) for _ in range(args.subscribers)]
    consumers: list[asyncio.Task[None]] = []
    published = 0
    try:
        with console.status(f"connecting {args.subscribers} subscribers"):
            for client in clients:
                try:
                    await client.connect()
                except ConnectError as exc:
                    cause = exc.__cause__ or exc
                    raise CliError(f"cannot reach the gateway at {ws}: {cause}") from None
                await client.subscribe(topic)
                consumers.append(asyncio.create_task(_consume(client, tally)))
        async with Producer(base, key, auto_keys=False, retries=2) as producer:
            published = await _publish(producer, topic, args, console, tally)
        tally.expected = published * args.subscribers
        if tally.delivered >= tally.expected:
            tally.complete.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tally.complete.wait(), GRACE)
    except PublishError as exc:
        raise CliError(f"the gateway refused the benchmark's events: {exc}") from None
    finally:
        for client in clients:
            await client.close()
        await asyncio.gather(*consumers, return_exceptions=True)
    _report(args, published, tally)
    return 0


async def _publish(
    producer: Producer, topic: str, args: argparse.Namespace, console: Console, tally: Tally
) -> int:
    per_tick = max(1, round(args.rate * TICK))
    progress = Progress(
        TextColumn("publishing"),
        BarColumn(),
        TextColumn("{task.fields[delivered]} delivered"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    published, seq = 0, 0
    start = time.monotonic()
    with progress:
        task = progress.add_task("bench", total=args.seconds, delivered=0)
        while (elapsed := time.monotonic() - start) < args.seconds:
            due = min(round(elapsed * args.rate) + per_tick, round(args.seconds * args.rate))
            events: list[dict[str, Any]] = []
            while published + len(events) < due:
                seq += 1
                sent = time.time_ns()
                trade = {"id": f"b{seq}-{sent}", "side": "buy", "price": 1, "size": 1, "seq": seq}
                events.append({"topic": topic, "data": {"seq": seq, "trades": [trade]}})
            if events:
                await producer.publish(*events)
                published += len(events)
            progress.update(task, completed=min(elapsed, args.seconds), delivered=tally.delivered)
            await asyncio.sleep(TICK)
    return published


def _report(args: argparse.Namespace, published: int, tally: Tally) -> None:
    expected = published * args.subscribers
    values = sorted(tally.latencies)
    ms = [percentile(values, p) * 1000 for p in (50, 90, 99, 100)]
    print(f"published {published} events in {args.seconds:g} s to {args.subscribers} subscribers")
    print(
        f"delivered {tally.delivered} of {expected} messages"
        f" ({expected - tally.delivered} missing): {tally.delivered / args.seconds:,.0f} msgs/s"
    )
    if values:
        print("latency ms: p50 {:.2f}  p90 {:.2f}  p99 {:.2f}  max {:.2f}".format(*ms))
