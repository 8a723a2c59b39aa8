"""Topics nobody publishes to and nobody watches hold no memory (issue 11, point 5).

The issue: 50 ``/ws/public`` clients subscribing and unsubscribing 100,000 distinct
topics left about 1.1 KB per topic behind for good (a history object per subscribed
topic). The rule now (Centrifugo's): a channel gets a stream on its first publish only;
a stream whose publications all expired and that nobody watches is dropped; a resume
against a dropped stream answers ``recovered: false``. These tests check it on both
brokers, through real sockets, and from outside a real gateway process (its VmRSS).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from streamgate.brokers.base import Outgoing
from streamgate.brokers.memory import MemoryBroker
from streamgate.brokers.redis import RedisBroker
from streamgate.core.publication import Publication, StreamPosition

from support import UNIT, running_gateway
from support.redis_server import REDIS_URL, delete_prefix, ensure_redis

T0 = 1_700_000_000_000
TTL = 60.0
WAIT = 15.0 * UNIT
FAST = {"ops_per_second": 1_000_000.0, "ops_burst": 1_000_000}  # the churn is not abuse


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class Sink:
    """A BrokerHandler that keeps nothing."""

    def deliver(self, channel: str, pubs: Any) -> None:
        pass

    def lost(self, channel: str, position: StreamPosition) -> None:
        pass


# -- the workload: many clients, many distinct topics, subscribed and unsubscribed --------


async def _ack(ws: ClientConnection, op: str, req_id: str) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {op} ack for {req_id}"
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), left))
        if msg.get("req_id") == req_id:
            assert msg["op"] == op, msg
            return


async def churn(port: int, *, clients: int, rounds: int, per: int, tag: str) -> int:
    """``clients`` sockets each subscribe then unsubscribe ``rounds`` x ``per`` new topics.

    Returns how many distinct topics were subscribed (orderbook, trade and ticker).
    """
    kinds = ("trade", "ticker", "orderbook")

    async def one(c: int) -> None:
        url = f"ws://127.0.0.1:{port}/ws/public"
        async with connect(url, ping_interval=None, open_timeout=WAIT, max_size=None) as ws:
            for r in range(rounds):
                topics = [f"{kinds[i % 3]}/0x{tag}c{c}r{r}t{i}" for i in range(per)]
                for op in ("subscribe", "unsubscribe"):
                    req_id = f"{op[0]}{r}"
                    await ws.send(
                        orjson.dumps({"op": op, "args": topics, "req_id": req_id}).decode()
                    )
                    await _ack(ws, f"{op}d", req_id)

    await asyncio.gather(*(one(c) for c in range(clients)))
    return clients * rounds * per


async def until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT:.0f} s: {what}"
        await asyncio.sleep(0.02)


# -- over real sockets: the broker's per-channel state comes back to where it was ---------


async def test_many_clients_churning_topics_leave_no_channel_state(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, **FAST) as gw:
        broker = gw.broker
        assert isinstance(broker, MemoryBroker)
        before = broker.channel_count
        started = time.monotonic()
        topics = await churn(gw.port, clients=50, rounds=4, per=100, tag="a")
        took = time.monotonic() - started
        await until(lambda: gw.hub.channel_count == 0, "the hub let go of every channel")
        await asyncio.sleep(0.1)  # the hub's release tasks reach the broker
        print(
            f"\nmemory broker: {topics} topics by 50 clients in {took:.2f} s; "
            f"channels with state {before} -> {broker.channel_count}"
        )
        await until(lambda: broker.channel_count == before, "the broker let go too")


@pytest.mark.redis
async def test_redis_subscribes_write_no_keys_for_unpublished_topics(tmp_path: Path) -> None:
    await ensure_redis()
    prefix = f"sgtest-mem-{secrets.token_hex(4)}:"
    settings = {"broker": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix, **FAST}
    admin = Redis.from_url(REDIS_URL)
    try:
        async with running_gateway(tmp_path, **settings) as gw:
            topics = await churn(gw.port, clients=10, rounds=2, per=100, tag="r")
            await until(lambda: gw.hub.channel_count == 0, "the hub let go of every channel")
            keys = sorted([k.decode() async for k in admin.scan_iter(match=f"{prefix}*")])
            per_topic = [k for k in keys if re.search(r":(meta|hist|book):", k)]
            print(f"\nredis broker: {topics} topics; keys under the prefix: {keys}")
            assert per_topic == []
    finally:
        await admin.aclose()
        await delete_prefix(prefix)


# -- from outside: a gateway process's resident memory ------------------------------------


def vm_rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None, status
    return int(found.group(1))


def _spawn_gateway(out: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "streamgate", "serve", "--host", "127.0.0.1", "--port", "0"]
    with out.open("wb") as stdout:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT, env=env
        )


@pytest.fixture
async def gateway_process(tmp_path: Path) -> AsyncIterator[tuple[int, int]]:
    """A ``streamgate serve`` process on the memory broker: (pid, port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMGATE_")}
    env.update(
        STREAMGATE_DATA_DIR=str(tmp_path / "data"),
        STREAMGATE_PRODUCER_KEY="rss-producer-key",
        STREAMGATE_OPS_PER_SECOND=str(FAST["ops_per_second"]),
        STREAMGATE_OPS_BURST=str(FAST["ops_burst"]),
    )
    out = tmp_path / "gateway.out"
    proc = _spawn_gateway(out, env)
    try:
        deadline = time.monotonic() + WAIT
        listening = re.compile(rb"streamgate listening on http://127\.0\.0\.1:(\d+)")
        while (found := listening.search(out.read_bytes())) is None:
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            await asyncio.sleep(0.05)
        yield proc.pid, int(found.group(1))
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)


async def test_a_gateway_process_does_not_grow_with_topics_nobody_uses(
    gateway_process: tuple[int, int],
) -> None:
    pid, port = gateway_process
    await churn(port, clients=50, rounds=1, per=100, tag="warm")  # code paths, buffers
    before = vm_rss_kb(pid)
    started = time.monotonic()
    topics = await churn(port, clients=50, rounds=10, per=100, tag="m")
    took = time.monotonic() - started
    await asyncio.sleep(0.5)  # the hub releases channels in tasks of its own
    after = vm_rss_kb(pid)
    growth = after - before
    print(
        f"\ngateway pid {pid}: {topics} distinct topics by 50 clients in {took:.2f} s; "
        f"VmRSS {before / 1024:.1f} MB -> {after / 1024:.1f} MB "
        f"(+{growth / 1024:.1f} MB, {growth * 1024 / topics:.0f} B per topic)"
    )
    # Before the fix this grew by about 1.1 KB per topic (~55 MB here); allocator noise
    # is a few MB at most.
    assert growth < 16 * 1024, f"VmRSS grew by {growth} kB for {topics} topics"


# -- the broker rules, on the memory broker with a clock of the test's own ------------------


def out(channel: str, *payloads: Any) -> list[Outgoing]:
    return [Outgoing(channel, p) for p in payloads]


@pytest.fixture
async def memory() -> AsyncIterator[tuple[MemoryBroker, Clock]]:
    clock = Clock()
    broker = MemoryBroker(history_size=10, history_ttl=TTL, clock_ms=clock)
    await broker.start(Sink())
    try:
        yield broker, clock
    finally:
        await broker.close()


async def test_reads_and_subscribes_create_no_stream(memory: tuple[MemoryBroker, Clock]) -> None:
    broker, _ = memory
    idle = await broker.position("trade/q")
    assert idle.offset == 0
    assert await broker.history("trade/q", idle) == ([], idle)
    assert await broker.history("trade/q", StreamPosition(3, "other")) is None
    assert await broker.book("orderbook/q") is None
    await broker.subscribe("trade/q")
    assert broker.channel_count == 1  # while watched
    await broker.unsubscribe("trade/q")
    assert broker.channel_count == 0
    assert await broker.position("trade/other") == idle  # one idle epoch, no state


async def test_an_expired_stream_nobody_watches_is_dropped(
    memory: tuple[MemoryBroker, Clock],
) -> None:
    broker, clock = memory
    before = await broker.position("trade/x")  # a client subscribed before any publish
    first = await broker.publish(out("trade/x", 1, 2))
    await broker.subscribe("trade/w")
    watched = await broker.publish(out("trade/w", 1))
    clock.now += int(TTL * 1000)
    assert broker.sweep() == 0  # exactly ttl old: still replayable
    clock.now += 1
    assert broker.sweep() == 1
    assert broker.channel_count == 1  # trade/w is watched: it keeps its stream
    assert await broker.position("trade/w") == watched[-1].position
    # A resume against the dropped stream is refused, never replayed from the next one.
    second = await broker.publish(out("trade/x", 3))
    assert (second[0].offset, second[0].epoch != first[0].epoch) == (1, True)
    assert await broker.history("trade/x", first[-1].position) is None
    assert await broker.history("trade/x", before) is None
    got = await broker.history("trade/x", StreamPosition(0, second[0].epoch))
    assert got is not None and got[0] == second


async def test_a_position_from_before_the_first_publish_resumes_within_its_window(
    memory: tuple[MemoryBroker, Clock],
) -> None:
    broker, clock = memory
    early = await broker.position("trade/y")
    clock.now += 1
    pubs = await broker.publish(out("trade/y", "a"))
    assert await broker.history("trade/y", early) == (pubs, pubs[0].position)
    # A position from the previous window cannot tell whether a stream came and went.
    old = await broker.position("trade/z")
    clock.now += int(TTL * 1000)
    await broker.publish(out("trade/z", "b"))
    assert await broker.history("trade/z", old) is None


async def test_an_order_book_keeps_its_stream(memory: tuple[MemoryBroker, Clock]) -> None:
    broker, clock = memory
    snap = {"type": "orderbook_snapshot", "seq": 1, "asks": [[101, 1]], "bids": [[99, 1]]}
    pubs = await broker.publish(out("orderbook/b", snap))
    clock.now += int(TTL * 1000) + 1
    assert broker.sweep() == 0
    book = await broker.book("orderbook/b")
    assert book is not None and book.position == pubs[0].position


# -- Redis: a channel's keys come only with a publish and go with redis_keep ----------------


@pytest.mark.redis
async def test_redis_channel_keys_come_with_a_publish_and_expire() -> None:
    await ensure_redis()
    prefix = f"sgtest-mem-{secrets.token_hex(4)}:"
    keep = 0.5  # seconds: the keys' life after the last publish, and the idle window
    broker = RedisBroker(REDIS_URL, prefix=prefix, history_size=10, history_ttl=keep, keep=keep)
    admin = Redis.from_url(REDIS_URL)

    async def channel_keys() -> list[bytes]:
        return [k async for k in admin.scan_iter(match=f"{prefix}*:*")]

    try:
        await broker.start(Sink())
        await broker.subscribe("trade/k")
        before = await broker.position("trade/k")
        assert await broker.history("trade/k", before) == ([], before)
        assert await channel_keys() == []
        first: list[Publication] = await broker.publish(out("trade/k", 1))
        assert await broker.history("trade/k", before) == (first, first[0].position)
        assert await channel_keys() != []
        deadline = time.monotonic() + WAIT
        while await channel_keys():
            assert time.monotonic() < deadline, "the channel's keys never expired"
            await asyncio.sleep(0.05)
        second = await broker.publish(out("trade/k", 2))
        assert (second[0].offset, second[0].epoch != first[0].epoch) == (1, True)
        assert await broker.history("trade/k", first[0].position) is None
        assert await broker.history("trade/k", before) is None  # an earlier idle window
        await broker.unsubscribe("trade/k")
    finally:
        await broker.close()
        await admin.aclose()
        await delete_prefix(prefix)
