"""The multi-node tests' parts: a cluster of gateway processes, HTTP calls, events, clients.

The processes themselves come from ``tests/support/cluster.py`` (shared with the fault
suite); every wait here is bounded by ``WAIT``.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from streamgate.auth.apikeys import ApiKeyStore
from streamgate.client.http import HttpClient, HttpResult

from support import UNIT
from support import cluster as cluster_support
from support.cluster import Node, Procs, gateway_env
from support.redis_server import REDIS_URL

PRODUCER_KEY = "cluster-producer-key"
AUTH = {"authorization": f"Bearer {PRODUCER_KEY}"}
WAIT = 15.0 * UNIT  # seconds any bounded wait may take before the test fails


async def until(
    check: Callable[[], bool], what: str | Callable[[], str], within: float = WAIT
) -> None:
    """Poll ``check`` until it holds, for at most ``within`` seconds."""
    await cluster_support.until(check, what, within)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = WAIT) -> None:
    """Poll the async ``check`` until it holds, for at most ``within`` seconds."""
    await cluster_support.eventually(check, what, within)


@dataclass
class Cluster:
    """Starts gateway processes sharing one Redis prefix and one data directory."""

    procs: Procs
    data: Path
    prefix: str
    redis_url: str = REDIS_URL

    def env(self, **extra: str) -> dict[str, str]:
        return gateway_env(
            self.data,
            PRODUCER_KEY,
            STREAMGATE_BROKER="redis",
            STREAMGATE_REDIS_URL=self.redis_url,
            STREAMGATE_REDIS_PREFIX=self.prefix,
            STREAMGATE_DRAIN_TIMEOUT="1",
            **extra,
        )

    async def start(self, *names: str, **extra: str) -> list[Node]:
        """Start one gateway per name, all at once; return them once each listens."""
        return await self.procs.gateways(list(names), self.env(**extra), WAIT)

    def api_key(self, tenant: str) -> str:
        with ApiKeyStore.in_data_dir(self.data) as store:
            key, _ = store.create(tenant)
        return key


# -- HTTP ----------------------------------------------------------------------------


async def call(
    node: Node, method: str, path: str, headers: dict[str, str] | None = None
) -> HttpResult:
    client = HttpClient(node.url, timeout=WAIT)
    try:
        return await client.request(method, path, headers=headers)
    finally:
        await client.close()


async def publish(node: Node | HttpClient, events: list[dict[str, Any]]) -> HttpResult:
    client = HttpClient(node.url, timeout=WAIT) if isinstance(node, Node) else node
    try:
        return await client.post_json("/api/v1/publish", {"events": events}, AUTH)
    finally:
        if isinstance(node, Node):
            await client.close()


async def publish_ok(node: Node | HttpClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    result = await publish(node, events)
    assert result.status == 200, result.body
    doc: dict[str, Any] = result.json()
    return doc


async def ready(node: Node) -> int:
    return (await call(node, "GET", "/readyz")).status


async def ticket(node: Node, key: str, sub_user: str) -> str:
    result = await call(node, "POST", "/auth/ws-token", {"api-key": key, "On-Behalf-Of": sub_user})
    assert result.status == 200, result.body
    token: str = result.json()["data"]["token"]
    return token


def trade(market: str, trade_id: str, seq: int, **extra: Any) -> dict[str, Any]:
    item = {"id": trade_id, "side": "buy", "price": 100 + seq % 50, "size": 1, "seq": seq}
    return {"topic": f"trade/{market}", "data": {"seq": seq, "trades": [item]}, **extra}


def trade_id(event: dict[str, Any]) -> str:
    tid: str = event["data"]["trades"][0]["id"]
    return tid


Levels = dict[int, int]


def book_event(market: str, kind: str, seq: int, asks: Levels, bids: Levels) -> dict[str, Any]:
    data = {
        "type": f"orderbook_{kind}",
        "seq": seq,
        "asks": [[p, s] for p, s in asks.items()],
        "bids": [[p, s] for p, s in bids.items()],
    }
    return {"topic": f"orderbook/{market}", "data": data}


# -- WebSocket clients -----------------------------------------------------------------


class Feed:
    """A WebSocket client whose every message is kept by a reader task."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None  # None: no close frame (or still open)
        self.close_reason = ""
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str | None = None) -> Feed:
        protocols = [Subprotocol(f"bearer.{token}")] if token is not None else None
        ws = await connect(url, subprotocols=protocols, ping_interval=None, open_timeout=WAIT)
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.messages.append(orjson.loads(raw))
        except ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            if rcvd is not None:
                self.close_code, self.close_reason = rcvd.code, rcvd.reason
            self.closed.set()

    async def close(self) -> None:
        await asyncio.wait_for(self.ws.close(), WAIT)
        await asyncio.wait_for(self._reader, WAIT)

    async def wait_closed(self) -> None:
        await asyncio.wait_for(self.closed.wait(), WAIT)

    # stream protocol

    async def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send an op with a fresh req_id; return the reply carrying it."""
        req_id = secrets.token_hex(4)
        seen = len(self.messages)
        await self.ws.send(orjson.dumps({**msg, "req_id": req_id}).decode())

        def reply() -> dict[str, Any] | None:
            return next((m for m in self.messages[seen:] if m.get("req_id") == req_id), None)

        await until(lambda: reply() is not None or self.closed.is_set(), f"a reply to {msg}")
        got = reply()
        assert got is not None, f"closed ({self.close_code}) before replying to {msg}"
        return got

    async def subscribe(self, topics: list[str], **extra: Any) -> dict[str, Any]:
        ack = await self.request({"op": "subscribe", "args": topics, **extra})
        assert ack["op"] == "subscribed", ack
        return ack

    def events(self, topic: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("op") == "event" and m["topic"] == topic]

    # push protocol

    def pushes(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if "event" in m and m["event"] != "connected"]

    async def first_frame(self) -> bool:
        """Wait for a first message or the close; True when a message came."""
        await until(lambda: bool(self.messages) or self.closed.is_set(), "a first frame")
        return bool(self.messages)

    async def connected(self) -> dict[str, Any]:
        """The push socket's ``connected`` frame (fails if it closed instead)."""
        got = await self.first_frame()
        assert got, f"closed with {self.close_code} {self.close_reason!r}"
        first = self.messages[0]
        assert first["event"] == "connected", first
        return first


async def stream_feed(node: Node, topics: list[str]) -> Feed:
    feed = await Feed.open(node.ws("/ws/public"))
    await feed.subscribe(topics)
    return feed


def offsets(events: list[dict[str, Any]]) -> list[int]:
    return [e["offset"] for e in events]


def apply(book: tuple[Levels, Levels], data: dict[str, Any]) -> None:
    """What a client does with one orderbook event."""
    asks, bids = book
    if data["type"] == "orderbook_snapshot":
        asks.clear()
        bids.clear()
    for side, levels in ((asks, data["asks"]), (bids, data["bids"])):
        for price, size in levels:
            if size == 0:
                side.pop(price, None)
            else:
                side[price] = size


def random_delta(rng: random.Random, book: tuple[Levels, Levels]) -> tuple[Levels, Levels]:
    """One to three level changes per side (size 0 deletes), applied to ``book`` too."""
    change: tuple[Levels, Levels] = ({}, {})
    for side, low, levels in ((0, 1000, book[0]), (1, 900, book[1])):
        for price in rng.sample(range(low, low + 20), rng.randint(1, 3)):
            size = rng.choice([0, 1, 2, 5, 8]) if price in levels else rng.randint(1, 9)
            change[side][price] = size
            if size:
                levels[price] = size
            else:
                levels.pop(price, None)
    return change


def book_seq(feed: Feed, topic: str) -> int | None:
    """The seq of the last order-book event ``feed`` got (None before any)."""
    events = feed.events(topic)
    return events[-1]["data"]["seq"] if events else None


def check_book_stream(events: list[dict[str, Any]]) -> tuple[Levels, Levels]:
    """A snapshot, then deltas continuous in seq and offset; return the book they make."""
    assert events and events[0]["data"]["type"] == "orderbook_snapshot", events[:1]
    book: tuple[Levels, Levels] = ({}, {})
    previous: dict[str, Any] | None = None
    for event in events:
        data = event["data"]
        if previous is not None:
            assert data["type"] == "orderbook_delta", event
            assert data["seq"] == previous["data"]["seq"] + 1, (previous, event)
            assert event["offset"] == previous["offset"] + 1, (previous, event)
            assert event["epoch"] == previous["epoch"]
        assert [p for p, _ in data["asks"]] == sorted(p for p, _ in data["asks"])
        assert [p for p, _ in data["bids"]] == sorted(p for p, _ in data["bids"])
        apply(book, data)
        previous = event
    return book


async def has_status(node: Node, status: int) -> bool:
    """Whether ``/readyz`` on ``node`` answers ``status``."""
    return await ready(node) == status
