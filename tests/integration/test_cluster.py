"""Several gateway processes on one Redis act as one, and a node's death loses nothing (issue 7).

Every gateway here is a real ``python -m streamgate serve`` process with
``STREAMGATE_BROKER=redis``, a key prefix of the test's own and a shared data directory
(producer key, bearer secret, API keys). Each process writes its output to files in
``tmp_path``; every wait is bounded; teardown stops only the processes the test started
(terminate, then kill) and deletes the prefix's keys. The shared Redis on 127.0.0.1:6379 is
never restarted or flushed: the restart tests run a redis-server of their own.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis_support import REDIS_URL, delete_prefix, ensure_redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from streamgate.auth.apikeys import ApiKeyStore
from streamgate.client.http import HttpClient, HttpResult

from support import UNIT, notice

pytestmark = pytest.mark.redis

PRODUCER_KEY = "cluster-producer-key"
AUTH = {"authorization": f"Bearer {PRODUCER_KEY}"}
WAIT = 15.0 * UNIT  # seconds any bounded wait may take before the test fails
LISTENING = re.compile(rb"streamgate listening on http://127\.0\.0\.1:(\d+)")


# -- processes -----------------------------------------------------------------------


@dataclass
class Proc:
    """A subprocess this test started, its output going to files."""

    name: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    def tail(self) -> str:
        text = self.out.read_bytes() + b"\n--- stderr ---\n" + self.err.read_bytes()
        return text.decode(errors="replace")[-2000:]


def _stop(proc: Proc) -> None:
    """Terminate, then kill after a timeout; always reap."""
    if proc.popen.poll() is None:
        proc.popen.terminate()
        try:
            proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
    proc.popen.wait(timeout=5)


@dataclass
class Procs:
    """Everything one test started: at teardown the gateways (all at once), then the rest."""

    tmp: Path
    started: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        out, err = self.tmp / f"{name}.out", self.tmp / f"{name}.err"
        with out.open("ab") as stdout, err.open("ab") as stderr:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env
            )
        proc = Proc(name, popen, out, err)
        self.started.append(proc)
        return proc

    async def stop_all(self) -> None:
        gateways = [p for p in self.started if not p.name.startswith("redis")]
        await asyncio.gather(*(asyncio.to_thread(_stop, p) for p in gateways))
        for proc in reversed(self.started):
            await asyncio.to_thread(_stop, proc)


async def until(check: Callable[[], bool], what: str, within: float = WAIT) -> None:
    """Poll ``check`` until it holds, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {what}"
        await asyncio.sleep(0.02)


async def listening_port(proc: Proc, within: float = WAIT) -> int:
    """Wait for the process's ``streamgate listening on`` line; return its port."""
    deadline = time.monotonic() + within
    while (found := LISTENING.search(proc.out.read_bytes())) is None:
        assert proc.popen.poll() is None, f"{proc.name} exited early:\n{proc.tail()}"
        assert time.monotonic() < deadline, f"{proc.name} did not listen:\n{proc.tail()}"
        await asyncio.sleep(0.05)
    return int(found.group(1))


@dataclass
class Node:
    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@dataclass
class Cluster:
    """Starts gateway processes sharing one Redis prefix and one data directory."""

    procs: Procs
    data: Path
    prefix: str
    redis_url: str = REDIS_URL

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMGATE_")}
        env.update(
            STREAMGATE_BROKER="redis",
            STREAMGATE_REDIS_URL=self.redis_url,
            STREAMGATE_REDIS_PREFIX=self.prefix,
            STREAMGATE_DATA_DIR=str(self.data),
            STREAMGATE_PRODUCER_KEY=PRODUCER_KEY,
            STREAMGATE_DRAIN_TIMEOUT="1",
            **extra,
        )
        return env

    async def start(self, *names: str, **extra: str) -> list[Node]:
        """Start one gateway per name, all at once; return them once each listens."""
        argv = [sys.executable, "-m", "streamgate", "serve", "--host", "127.0.0.1", "--port", "0"]
        procs = [self.procs.spawn(name, argv, self.env(**extra)) for name in names]
        ports = await asyncio.gather(*(listening_port(p) for p in procs))
        return [Node(p, port) for p, port in zip(procs, ports, strict=True)]

    def api_key(self, tenant: str) -> str:
        with ApiKeyStore.in_data_dir(self.data) as store:
            key, _ = store.create(tenant)
        return key


@pytest.fixture
async def procs(tmp_path: Path) -> AsyncIterator[Procs]:
    started = Procs(tmp_path)
    try:
        yield started
    finally:
        await started.stop_all()


@pytest.fixture
async def cluster(procs: Procs, tmp_path: Path) -> AsyncIterator[Cluster]:
    await ensure_redis()
    c = Cluster(procs, tmp_path / "data", prefix=f"sgtest-{secrets.token_hex(6)}:")
    try:
        yield c
    finally:
        await procs.stop_all()
        await delete_prefix(c.prefix)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _answering(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except (OSError, RedisError):
        return False
    finally:
        await client.aclose()


@dataclass
class OwnRedis:
    """A redis-server of this test's own, which it may restart (it comes back empty)."""

    procs: Procs
    port: int
    proc: Proc | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.starts += 1
        argv = ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        argv += ["--bind", "127.0.0.1"]
        self.proc = self.procs.spawn(f"redis-{self.starts}", argv)
        deadline = time.monotonic() + WAIT
        while not await _answering(self.url):
            assert self.proc.popen.poll() is None, f"redis-server exited:\n{self.proc.tail()}"
            assert time.monotonic() < deadline, "redis-server did not answer"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        assert self.proc is not None
        await asyncio.to_thread(_stop, self.proc)


@pytest.fixture
async def own_redis(procs: Procs) -> OwnRedis:
    redis = OwnRedis(procs, _free_port())
    await redis.start()
    return redis


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


# -- 1, 2: one order and one idempotency window across nodes ---------------------------


async def test_three_nodes_deliver_the_same_order_with_the_same_offsets(cluster: Cluster) -> None:
    nodes = await cluster.start("a", "b", "c")
    market, batches, size = "0xc1", 10, 10
    topic = f"trade/{market}"
    feeds = [await stream_feed(node, [topic]) for node in nodes]

    async def produce(k: int, node: Node) -> None:
        client = HttpClient(node.url, timeout=WAIT)
        try:
            for b in range(batches):
                events = [trade(market, f"p{k}-{b * size + i}", b * size + i) for i in range(size)]
                assert await publish_ok(client, events) == {"accepted": size, "duplicates": 0}
        finally:
            await client.close()

    await asyncio.gather(*(produce(k, node) for k, node in enumerate(nodes)))
    total = len(nodes) * batches * size
    await until(lambda: all(len(f.events(topic)) >= total for f in feeds), f"{total} events each")
    await asyncio.sleep(0.2)  # nothing more may come
    reference = feeds[0].events(topic)
    assert offsets(reference) == list(range(1, total + 1))
    assert len({e["epoch"] for e in reference}) == 1
    for feed in feeds[1:]:
        got = feed.events(topic)
        assert [(e["offset"], e["epoch"], e["data"]) for e in got] == [
            (e["offset"], e["epoch"], e["data"]) for e in reference
        ]
    ids = [trade_id(e) for e in reference]
    for k in range(len(nodes)):
        # Each producer's batches went in one after the other: its events keep their order.
        assert [i for i in ids if i.startswith(f"p{k}-")] == [
            f"p{k}-{n}" for n in range(batches * size)
        ]
    for feed in feeds:
        await feed.close()


async def test_an_idempotency_key_holds_across_nodes(cluster: Cluster) -> None:
    a, b, c = await cluster.start("a", "b", "c")
    market = "0xid"
    topic = f"trade/{market}"
    feeds = [await stream_feed(a, [topic]), await stream_feed(c, [topic])]
    once = trade(market, "once", 1, idempotency_key="order-42-filled")
    assert await publish_ok(a, [once]) == {"accepted": 1, "duplicates": 0}
    assert await publish_ok(b, [once]) == {"accepted": 0, "duplicates": 1}
    assert await publish_ok(c, [once, once]) == {"accepted": 0, "duplicates": 2}
    assert await publish_ok(b, [trade(market, "marker", 2)]) == {"accepted": 1, "duplicates": 0}
    for feed in feeds:
        await until(lambda f=feed: len(f.events(topic)) >= 2, "the marker")  # type: ignore[misc]
        await asyncio.sleep(0.1)
        events = feed.events(topic)
        assert [(trade_id(e), e["offset"]) for e in events] == [("once", 1), ("marker", 2)]
        await feed.close()


# -- 3: one order book across nodes ------------------------------------------------------


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


async def test_an_order_book_is_continuous_across_nodes(cluster: Cluster) -> None:
    a, b, c = await cluster.start("a", "b", "c")
    market, first, deltas = "0xb00c", 100, 200
    topic = f"orderbook/{market}"
    rng = random.Random(7)
    model: tuple[Levels, Levels] = (
        {1000 + i: 5 for i in range(10)},
        {900 + i: 5 for i in range(10)},
    )
    await publish_ok(b, [book_event(market, "snapshot", first, *model)])
    halfway = asyncio.Event()

    async def produce() -> None:
        client = HttpClient(b.url, timeout=WAIT)
        try:
            for n in range(1, deltas + 1):
                change = random_delta(rng, model)
                await publish_ok(client, [book_event(market, "delta", first + n, *change)])
                if n == deltas // 5:
                    halfway.set()
        finally:
            await client.close()

    producer = asyncio.create_task(produce())
    await asyncio.wait_for(halfway.wait(), WAIT)
    feed = await stream_feed(a, [topic])  # while deltas keep coming through b
    await asyncio.wait_for(producer, WAIT)
    last = first + deltas
    await until(lambda: book_seq(feed, topic) == last, f"seq {last} on a")
    events = feed.events(topic)
    assert events[0]["data"]["seq"] > first  # it joined mid-stream
    book = check_book_stream(events)
    assert book == model

    fresh = await stream_feed(c, [topic])
    await until(lambda: bool(fresh.events(topic)), "a snapshot on c")
    snap = fresh.events(topic)[0]
    assert snap["data"]["type"] == "orderbook_snapshot"
    assert snap["data"]["seq"] == last
    assert (snap["offset"], snap["epoch"]) == (events[-1]["offset"], events[-1]["epoch"])
    assert snap["data"]["asks"] == sorted([p, s] for p, s in book[0].items())
    assert snap["data"]["bids"] == sorted([p, s] for p, s in book[1].items())

    # The book is cluster-wide: a gap is refused by any node, the right seq taken by any.
    for node, seq in ((c, last + 2), (a, last)):
        refused = await publish(node, [book_event(market, "delta", seq, {1000: 1}, {})])
        assert refused.status == 409, refused.body
        assert refused.json()["error"]["code"] == "SEQ_GAP"
    await publish_ok(a, [book_event(market, "delta", last + 1, {1000: 0}, {})])
    for f in (feed, fresh):
        await until(lambda f=f: book_seq(f, topic) == last + 1, "the last delta")  # type: ignore[misc]
        await f.close()


# -- 4: push sockets across nodes --------------------------------------------------------


async def test_push_socket_limit_and_tenant_notices_span_nodes(cluster: Cluster) -> None:
    a, b, c = await cluster.start("a", "b", "c", STREAMGATE_MAX_SOCKETS_PER_SUB_USER="2")
    key = cluster.api_key("acme")
    alice = await ticket(a, key, "alice")
    first = await Feed.open(a.ws("/ws"), alice)
    second = await Feed.open(b.ws("/ws"), alice)
    for feed in (first, second):
        assert (await feed.connected())["data"] == {"userId": "alice"}
    third = await Feed.open(c.ws("/ws"), alice)
    await third.wait_closed()
    assert (third.close_code, third.close_reason) == (4008, "Too many")
    assert not third.messages

    await first.close()
    # The count is released a moment after the close: retry, bounded.
    deadline = time.monotonic() + WAIT
    while True:
        again = await Feed.open(c.ws("/ws"), alice)
        if await again.first_frame():
            break
        assert again.close_code == 4008, (again.close_code, again.close_reason)
        assert time.monotonic() < deadline, "the closed socket was never uncounted"
        await asyncio.sleep(0.1)
    assert (await again.connected())["data"] == {"userId": "alice"}

    bob = await Feed.open(b.ws("/ws"), await ticket(b, key, "bob"))
    carol = await Feed.open(c.ws("/ws"), await ticket(c, key, "carol"))
    for feed in (bob, carol):
        await feed.connected()
    assert await publish_ok(a, [notice("acme", None, "maintenance at noon")]) == {
        "accepted": 1,
        "duplicates": 0,
    }
    everyone = {"alice@b": second, "alice@c": again, "bob@b": bob, "carol@c": carol}
    for who, feed in everyone.items():
        await until(lambda f=feed: bool(f.pushes()), f"the notice for {who}")  # type: ignore[misc]
    await asyncio.sleep(0.1)
    for who, feed in everyone.items():
        [push] = feed.pushes()
        assert push["event"] == "system.notice", who
        assert push["data"] == {"severity": "info", "message": "maintenance at noon"}
        assert push["offset"] == 1, who
        await feed.close()


# -- 5: kill -9 of a node ------------------------------------------------------------------


async def test_clients_of_a_killed_node_resume_on_another_without_loss(cluster: Cluster) -> None:
    a, b, c = await cluster.start("a", "b", "c")
    key = cluster.api_key("acme")
    token = await ticket(b, key, "alice")
    market, total, kill_at = "0xdead", 150, 40
    topic = f"trade/{market}"
    stream = await stream_feed(a, [topic])
    push = await Feed.open(a.ws("/ws"), token)
    await push.connected()
    at_kill = asyncio.Event()

    async def produce() -> None:
        client = HttpClient(b.url, timeout=WAIT)
        try:
            for n in range(1, total + 1):
                events = [trade(market, f"t{n}", n), notice("acme", "alice", f"n{n}")]
                await publish_ok(client, events)
                if n == kill_at:
                    at_kill.set()
                await asyncio.sleep(0.005)
        finally:
            await client.close()

    producer = asyncio.create_task(produce())
    await asyncio.wait_for(at_kill.wait(), WAIT)
    a.proc.popen.send_signal(signal.SIGKILL)
    await asyncio.to_thread(a.proc.popen.wait, WAIT)
    await stream.wait_closed()
    await push.wait_closed()
    assert stream.close_code is None and push.close_code is None  # no goodbye from a dead node
    before = stream.events(topic)
    pushed = push.pushes()
    assert before and pushed, "a delivered nothing before it died"
    assert offsets(before) == list(range(1, len(before) + 1))
    assert offsets(pushed) == list(range(1, len(pushed) + 1))

    last = before[-1]
    resume = {topic: {"offset": last["offset"], "epoch": last["epoch"]}}
    stream2 = await Feed.open(c.ws("/ws/public"))
    ack = await stream2.subscribe([topic], resume=resume)
    assert ack["recovered"] == {topic: True}
    query = f"?offset={pushed[-1]['offset']}&epoch={pushed[-1]['epoch']}"
    push2 = await Feed.open(c.ws("/ws") + query, token)
    assert (await push2.connected())["data"] == {"userId": "alice", "recovered": True}

    await asyncio.wait_for(producer, WAIT)
    await until(lambda: len(before) + len(stream2.events(topic)) >= total, "every trade")
    await until(lambda: len(pushed) + len(push2.pushes()) >= total, "every push")
    await asyncio.sleep(0.1)
    trades = before + stream2.events(topic)
    assert offsets(trades) == list(range(1, total + 1))
    assert [trade_id(e) for e in trades] == [f"t{n}" for n in range(1, total + 1)]
    assert {e["epoch"] for e in trades} == {last["epoch"]}
    pushes = pushed + push2.pushes()
    assert offsets(pushes) == list(range(1, total + 1))
    assert [p["data"]["message"] for p in pushes] == [f"n{n}" for n in range(1, total + 1)]
    assert {p["epoch"] for p in pushes} == {pushed[-1]["epoch"]}
    for feed in (stream2, push2):
        await feed.close()


# -- 6: Redis restarts mid-stream --------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = WAIT) -> None:
    """Poll the async ``check`` until it holds, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {what}"
        await asyncio.sleep(0.05)


@dataclass
class Watch:
    """Where a client is in one topic, and whether it was told its stream broke."""

    epoch: str | None = None
    offset: int = 0
    seq: int | None = None  # an order book's seq
    told: bool = False


class Follower:
    """A /ws/public client that reconnects and resumes until stopped, checking every event.

    The rule: an event continues its topic (same epoch, offset + 1; for order-book deltas
    also seq + 1), or the client was told first: a resume answered ``recovered: false``
    (then any trade may follow), or the event is a fresh ``orderbook_snapshot``.
    """

    def __init__(self, node: Node, topics: list[str]) -> None:
        self.node = node
        self.topics = topics
        self.watch = {t: Watch() for t in topics}
        self.events: list[dict[str, Any]] = []
        self.closes: list[tuple[int | None, str]] = []
        self.recovered: list[dict[str, bool]] = []
        self.violations: list[str] = []
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self.stop.is_set():
            feed = await Feed.open(self.node.ws("/ws/public"))
            resume = {
                t: {"offset": w.offset, "epoch": w.epoch}
                for t, w in self.watch.items()
                if w.epoch is not None
            }
            extra = {"resume": resume} if resume else {}
            reply = await feed.request({"op": "subscribe", "args": self.topics, **extra})
            if reply["op"] == "error":
                assert reply["message"] == "UNAVAILABLE", reply
                await feed.close()
                await asyncio.sleep(0.1)
                continue
            assert reply["op"] == "subscribed", reply
            recovered: dict[str, bool] = reply.get("recovered", {})
            assert set(recovered) == set(resume), reply
            self.recovered.append(recovered)
            for topic, ok in recovered.items():
                self.watch[topic].told |= not ok
            assert feed.messages[0] == reply, "the ack comes before any event"
            seen = 1
            while True:
                done = feed.closed.is_set()
                for msg in feed.messages[seen:]:
                    if msg.get("op") == "event":
                        self._check(msg)
                seen = len(feed.messages)
                if done:
                    break
                if self.stop.is_set():
                    await feed.close()
                    return
                await asyncio.sleep(0.01)
            self.closes.append((feed.close_code, feed.close_reason))

    def _check(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        w = self.watch[event["topic"]]
        data = event["data"]
        continuous = w.epoch == event["epoch"] and event["offset"] == w.offset + 1
        kind = data.get("type")
        if kind == "orderbook_snapshot":
            ok = True
        elif kind == "orderbook_delta":
            ok = continuous and w.seq is not None and data["seq"] == w.seq + 1
        else:
            ok = continuous or w.told or w.epoch is None
        if not ok:
            where = f"after {w.epoch}/{w.offset} seq {w.seq} (told: {w.told})"
            self.violations.append(f"{event['topic']} {event['epoch']}/{event['offset']} {where}")
        if kind is not None:
            w.seq = data["seq"]
        w.epoch, w.offset, w.told = event["epoch"], event["offset"], False

    def of(self, topic: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["topic"] == topic]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, WAIT)


@dataclass
class Producer:
    """Publishes a trade and an order-book event per round through one node, until stopped.

    A refused delta (503, or 409 after Redis came back without the book) is followed by
    a snapshot of the producer's own book, so the book in Redis is always the model.
    """

    node: Node
    market: str
    rng: random.Random = field(default_factory=lambda: random.Random(11))
    model: tuple[Levels, Levels] = field(default_factory=lambda: ({1000: 5}, {900: 5}))
    seq: int = 0
    rounds: int = 0
    accepted: list[str] = field(default_factory=list)  # trade ids answered 200
    statuses: list[int] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        client = HttpClient(self.node.url, timeout=WAIT)
        resnapshot = True
        try:
            while not self.stop.is_set():
                self.rounds += 1
                tid = f"t{self.rounds}"
                if self._ok(await publish(client, [trade(self.market, tid, self.rounds)])):
                    self.accepted.append(tid)
                if resnapshot:
                    event = book_event(self.market, "snapshot", self.seq + 1, *self.model)
                else:
                    change = random_delta(self.rng, self.model)
                    event = book_event(self.market, "delta", self.seq + 1, *change)
                if self._ok(await publish(client, [event])):
                    self.seq += 1
                    resnapshot = False
                else:
                    resnapshot = True
                await asyncio.sleep(0.01)
        finally:
            await client.close()

    def _ok(self, result: HttpResult) -> bool:
        self.statuses.append(result.status)
        if result.status == 200:
            return True
        code = result.json()["error"]["code"]
        assert (result.status, code) in ((503, "UNAVAILABLE"), (409, "NO_BOOK")), result.body
        return False


@dataclass
class Followed:
    """Nodes a and b on the test's own Redis; a client on a follows a market b publishes."""

    a: Node
    b: Node
    trades: str
    book: str
    follower: Follower
    producer: Producer
    producing: asyncio.Task[None]

    @classmethod
    async def start(cls, cluster: Cluster, own_redis: OwnRedis, market: str) -> Followed:
        cluster.redis_url = own_redis.url
        a, b = await cluster.start("a", "b")
        trades, book = f"trade/{market}", f"orderbook/{market}"
        follower = Follower(a, [trades, book])
        await until(lambda: bool(follower.recovered), "the first subscribe")
        producer = Producer(b, market)
        producing = asyncio.create_task(producer.run())
        await until(
            lambda: len(follower.of(trades)) >= 20 and len(follower.of(book)) >= 20, "events"
        )
        return cls(a, b, trades, book, follower, producer, producing)

    async def finish(self) -> None:
        """Stop publishing; wait until a's client has the last trade and delta; stop it."""
        producer, follower = self.producer, self.follower
        producer.stop.set()
        await asyncio.wait_for(self.producing, WAIT)
        last_trade, last_seq = producer.accepted[-1], producer.seq

        def caught_up() -> bool:
            if follower.task.done():
                follower.task.result()  # the follower failed: say why
            t, o = follower.of(self.trades), follower.of(self.book)
            return (
                bool(t and o) and trade_id(t[-1]) == last_trade and o[-1]["data"]["seq"] == last_seq
            )

        await until(caught_up, "the last trade and delta on a")
        await follower.finish()


async def test_a_redis_restart_never_leaves_a_silent_gap(
    cluster: Cluster, own_redis: OwnRedis
) -> None:
    market = "0xr3d"
    f = await Followed.start(cluster, own_redis, market)
    a, b, follower, producer, producing = f.a, f.b, f.follower, f.producer, f.producing

    await own_redis.stop()
    for node in (a, b):
        await eventually(lambda n=node: _status(n, 503), f"{node.proc.name} unready")  # type: ignore[misc]
    refused = await publish(b, [trade(market, "while-down", 0)])
    assert refused.status == 503 and refused.json()["error"]["code"] == "UNAVAILABLE"
    assert refused.headers.get("retry-after") == "1"
    await asyncio.sleep(0.3)
    accepted_before = len(producer.accepted)
    await own_redis.start()
    for node in (a, b):
        await eventually(lambda n=node: _status(n, 200), f"{node.proc.name} ready again")  # type: ignore[misc]
    await until(
        lambda: len(producer.accepted) >= accepted_before + 30 or producing.done(),
        "publishing again",
    )
    assert not producing.done(), producing
    await f.finish()
    assert follower.violations == []
    # Redis came back empty: the trade stream is in a new epoch, which the client was told.
    assert len({e["epoch"] for e in follower.of(f.trades)}) == 2
    assert {False} <= {ok for r in follower.recovered for ok in r.values()}
    assert all(close == (1012, "Stream interrupted") for close in follower.closes), follower.closes
    assert 503 in producer.statuses


async def _status(node: Node, status: int) -> bool:
    return await ready(node) == status


async def test_a_dropped_pubsub_connection_is_recovered_from_history(
    cluster: Cluster, own_redis: OwnRedis
) -> None:
    """Redis keeps its data, the nodes lose their pub/sub connections: nothing is lost."""
    f = await Followed.start(cluster, own_redis, "0xd0p")
    follower, producer = f.follower, f.producer
    admin = Redis.from_url(own_redis.url)
    try:
        assert await admin.client_kill_filter(_type="pubsub") == 1  # b has no channel
    finally:
        await admin.aclose()
    accepted_before = len(producer.accepted)
    for node in (f.a, f.b):
        await eventually(lambda n=node: _status(n, 200), f"{node.proc.name} ready again")  # type: ignore[misc]
    await until(lambda: len(producer.accepted) >= accepted_before + 30, "publishing again")
    await f.finish()
    # Continuity was proven from the history: one socket, one epoch, every offset.
    assert (follower.violations, follower.closes, follower.recovered) == ([], [], [{}])
    assert len({e["epoch"] for e in follower.of(f.trades)}) == 1
    assert [trade_id(e) for e in follower.of(f.trades)] == producer.accepted


# -- 7: serve --workers ----------------------------------------------------------------------


async def test_workers_serve_one_port_and_stop_together(cluster: Cluster) -> None:
    argv = [sys.executable, "-m", "streamgate", "serve", "--workers", "2"]
    argv += ["--host", "127.0.0.1", "--port", "0"]
    supervisor = cluster.procs.spawn("supervisor", argv, cluster.env())
    port = await listening_port(supervisor)
    line = f"streamgate listening on http://127.0.0.1:{port} (2 workers)\n"
    assert line in supervisor.out.read_text(), supervisor.tail()
    node = Node(supervisor, port)
    assert (await call(node, "GET", "/readyz")).json() == {"status": "ready"}
    topic = "trade/0xw0"
    feeds = [await stream_feed(node, [topic]) for _ in range(4)]  # one after the other
    assert await publish_ok(node, [trade("0xw0", "w1", 1)]) == {"accepted": 1, "duplicates": 0}
    for feed in feeds:
        await until(lambda f=feed: bool(f.events(topic)), "the trade")  # type: ignore[misc]
    assert {(trade_id(e), e["offset"], e["epoch"]) for f in feeds for e in f.events(topic)} == {
        ("w1", 1, feeds[0].events(topic)[0]["epoch"])
    }

    pgrep = shutil.which("pgrep")
    assert pgrep is not None
    argv = [pgrep, "-P", str(supervisor.popen.pid)]
    found = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=5)
    workers = [int(pid) for pid in found.stdout.split()]
    assert len(workers) == 2, found
    supervisor.popen.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(supervisor.popen.wait, WAIT) == 0
    for feed in feeds:
        await feed.wait_closed()
        assert (feed.close_code, feed.close_reason) == (1012, "Service restart")
    await until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), "every worker gone"
    )


# -- a refused publish and its idempotency key -------------------------------------------------


async def test_a_publish_answered_503_can_be_retried_with_its_idempotency_key(
    cluster: Cluster, own_redis: OwnRedis
) -> None:
    """The 503 says "nothing is published" and asks for a retry: the retry must publish.

    Redis keeps answering commands while the node's pub/sub connection cannot come
    back (``maxclients`` reached after that connection was killed), so the node is
    not ready and the publish is refused after its idempotency key was checked.
    """
    cluster.redis_url = own_redis.url
    [a] = await cluster.start("a")
    market = "0x1dem"
    topic = f"trade/{market}"
    feed = await stream_feed(a, [topic])
    warm = trade(market, "warm", 1, idempotency_key="warm")
    assert await publish_ok(a, [warm]) == {"accepted": 1, "duplicates": 0}
    await until(lambda: len(feed.events(topic)) == 1, "the first trade")
    admin = Redis.from_url(own_redis.url)
    try:
        clients = await admin.client_list()
        await admin.config_set("maxclients", len(clients) - 1)
        await admin.client_kill_filter(_type="pubsub")
        await eventually(lambda: _status(a, 503), "a unready")
        keyed = trade(market, "keyed", 2, idempotency_key="deposit-7-completed")
        refused = await publish(a, [keyed])
        assert refused.status == 503, refused.body
        assert refused.json()["error"]["code"] == "UNAVAILABLE"
        await admin.config_set("maxclients", 10_000)
    finally:
        await admin.aclose()
    await eventually(lambda: _status(a, 200), "a ready again")
    retried = await publish_ok(a, [keyed])
    await asyncio.sleep(0.3)
    delivered = [trade_id(e) for e in feed.events(topic)]
    assert (retried, delivered) == ({"accepted": 1, "duplicates": 0}, ["warm", "keyed"])
    await feed.close()
