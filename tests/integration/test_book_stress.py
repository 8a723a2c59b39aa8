"""Many late order-book subscribers at full publishing speed (issue 11, point 1).

A producer publishes deltas in batches of 5 as fast as the gateway answers; 120
subscribers join at random moments. Every subscriber's first book event must be a
snapshot and every later one a delta with seq = previous + 1: a snapshot followed by
deltas it already contains (the last batch again) leaves a client with a wrong book.
Run on the memory broker (one gateway) and on two gateways sharing one Redis, where the
snapshot is read from Redis while the node may not yet have received the batch's
pub/sub message. Each run prints its figures (subscribers, events, violations).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from streamgate.client.http import HttpClient

from support import PRODUCER_KEY, UNIT, open_ws, running_gateway
from support.redis_server import REDIS_URL, delete_prefix, ensure_redis

MARKET = "0xstress"
TOPIC = f"orderbook/{MARKET}"
SUBSCRIBERS = 120
BATCH = 5
JOIN_WINDOW = 2.0 * UNIT  # subscribers join at random moments within it
ROUNDS = 3  # subscriptions per subscriber, one after the other
MAX_BATCHES = 3_000  # the producer's bound, whatever the machine's speed
WAIT = 20.0 * UNIT
AUTH = {"authorization": f"Bearer {PRODUCER_KEY}"}


def _levels(book: dict[int, int]) -> list[list[int]]:
    return [[p, s] for p, s in sorted(book.items())]


@dataclass
class Watcher:
    """One subscriber connection; a task of its own reads every frame.

    It subscribes ``ROUNDS`` times (unsubscribing in between), so each connection
    takes several snapshots; ``runs`` holds each subscription's book events, split at
    the acknowledgements (the hub enqueues nothing of a subscription before its ack,
    nothing after its unsubscribe ack).
    """

    ws: ClientConnection
    runs: list[list[dict[str, Any]]] = field(default_factory=list)
    acks: int = 0
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                # websockets' own recv, not the frame-schema hook tests/conftest.py puts
                # on ClientConnection: checking each of some 50,000 frames (about 1.6 ms
                # each) would make this client, not the gateway, the bottleneck, and the
                # producer would publish too slowly to race the subscribes at all.
                raw = await Connection.recv(self.ws)
                msg = orjson.loads(raw)
                op = msg.get("op")
                if op == "event" and msg.get("topic") == TOPIC:
                    self.runs[-1].append(msg)
                elif op == "subscribed":
                    self.runs.append([])
                    self.acks += 1
                elif op == "unsubscribed":
                    self.acks += 1
        except ConnectionClosed:
            pass

    async def request(self, op: str) -> None:
        """Send ``op`` for the topic; return once its acknowledgement was read."""
        expected = self.acks + 1
        await self.ws.send(orjson.dumps({"op": op, "args": [TOPIC]}).decode())
        deadline = time.monotonic() + WAIT
        while self.acks < expected:
            assert time.monotonic() < deadline, f"no ack to {op}"
            await asyncio.sleep(0.005)

    def last_seq(self) -> int | None:
        last = self.runs[-1] if self.runs else []
        return last[-1]["data"]["seq"] if last else None

    def violations(self) -> list[str]:
        """Where a subscription's stream breaks the snapshot-then-seq+1 contract."""
        found: list[str] = []
        for run in self.runs:
            previous: int | None = None
            for event in run:
                data = event["data"]
                if previous is None:
                    if data["type"] != "orderbook_snapshot":
                        found.append(f"first event is a {data['type']} seq {data['seq']}")
                elif data["type"] != "orderbook_delta" or data["seq"] != previous + 1:
                    found.append(f"{data['type']} seq {data['seq']} after seq {previous}")
                previous = data["seq"]
        return found


async def _produce(client: HttpClient, joined: asyncio.Event) -> int:
    """Publish a snapshot, then batches of deltas until all joined; return the last seq."""
    rng = random.Random(11)
    asks, bids = {1000 + i: 5 for i in range(10)}, {900 + i: 5 for i in range(10)}
    snapshot = {
        "type": "orderbook_snapshot",
        "seq": 1,
        "asks": _levels(asks),
        "bids": _levels(bids),
    }
    seq = 1
    result = await client.post_json(
        "/api/v1/publish", {"events": [{"topic": TOPIC, "data": snapshot}]}, AUTH
    )
    assert result.status == 200, result.body
    after_join = 0
    for _ in range(MAX_BATCHES):
        events = []
        for _ in range(BATCH):
            seq += 1
            side, base = (asks, 1000) if rng.random() < 0.5 else (bids, 900)
            price = base + rng.randrange(20)
            size = 0 if price in side and rng.random() < 0.3 else rng.randint(1, 99)
            delta = {"type": "orderbook_delta", "seq": seq, "asks": [], "bids": []}
            delta["asks" if side is asks else "bids"] = [[price, size]]
            events.append({"topic": TOPIC, "data": delta})
        result = await client.post_json("/api/v1/publish", {"events": events}, AUTH)
        assert result.status == 200, result.body
        if joined.is_set():
            after_join += 1
            if after_join >= 10:  # a few batches after the last subscriber joined
                break
    return seq


async def _stress(nodes: list[int]) -> None:
    rng = random.Random(3)
    joined = asyncio.Event()
    watchers: list[Watcher] = []
    async with AsyncExitStack() as stack:

        async def join(i: int) -> None:
            await asyncio.sleep(rng.random() * JOIN_WINDOW / ROUNDS)
            ws = await stack.enter_async_context(open_ws(nodes[i % len(nodes)]))
            watcher = Watcher(ws)
            watcher.start()
            watchers.append(watcher)
            for round_ in range(ROUNDS):
                if round_:
                    await asyncio.sleep(rng.random() * JOIN_WINDOW / ROUNDS)
                    await watcher.request("unsubscribe")
                await watcher.request("subscribe")

        async def join_all() -> None:
            await asyncio.gather(*(join(i) for i in range(SUBSCRIBERS)))
            joined.set()

        client = HttpClient(f"http://127.0.0.1:{nodes[0]}", timeout=WAIT)
        try:
            _, last = await asyncio.wait_for(
                asyncio.gather(join_all(), _produce(client, joined)), 3 * WAIT
            )
        finally:
            await client.close()
        deadline = time.monotonic() + WAIT
        while any(w.last_seq() != last for w in watchers):
            assert time.monotonic() < deadline, "not every subscriber reached the last seq"
            await asyncio.sleep(0.02)
        for w in watchers:
            await w.ws.close()
            if w.task is not None:
                await asyncio.wait_for(w.task, WAIT)
    broken = {i: v for i, w in enumerate(watchers) if (v := w.violations())}
    events = sum(len(run) for w in watchers for run in w.runs)
    subscriptions = sum(len(w.runs) for w in watchers)
    print(
        f"\nbook stress ({len(nodes)} node(s)): subscribers={len(watchers)} "
        f"subscriptions={subscriptions} events={events} "
        f"last_seq={last} violations={sum(len(v) for v in broken.values())} "
        f"subscribers_with_violations={len(broken)}"
    )
    assert len(watchers) == SUBSCRIBERS
    assert not broken, (
        f"{len(broken)} subscribers broke the contract, e.g. {next(iter(broken.values()))[:3]}"
    )


async def test_late_book_subscribers_at_full_speed_memory(tmp_path: Path) -> None:
    async with running_gateway(tmp_path) as gw:
        await _stress([gw.port])


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    await ensure_redis()
    prefix = f"sgtest-stress-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        await delete_prefix(prefix)


@pytest.mark.redis
async def test_late_book_subscribers_at_full_speed_two_redis_nodes(
    tmp_path: Path, redis_prefix: str
) -> None:
    settings: dict[str, Any] = {
        "broker": "redis",
        "redis_url": REDIS_URL,
        "redis_prefix": redis_prefix,
    }
    async with (
        running_gateway(tmp_path / "a", **settings) as a,
        running_gateway(tmp_path / "b", **settings) as b,
    ):
        await _stress([a.port, b.port])
