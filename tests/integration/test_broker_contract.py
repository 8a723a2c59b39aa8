"""One broker suite for every backend (Centrifuge's map_broker_shared_test.go).

The same tests run on the MemoryBroker and on the RedisBroker (marker ``redis``, a real
Redis on loopback, started with the machine's command when it is not answering). Each
Redis test gets a prefix of its own and deletes its keys afterwards. Then Redis-only
tests: two nodes on one prefix, a lost history giving a new epoch, and faults (the
node's own pub/sub connection cut with CLIENT KILL ID; the shared Redis keeps running).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis

from streamgate.brokers.base import Broker, BrokerHandler, IdempotencyStore, Outgoing
from streamgate.brokers.idempotency_memory import MemoryIdempotency
from streamgate.brokers.idempotency_redis import RedisIdempotency
from streamgate.brokers.memory import MemoryBroker
from streamgate.brokers.redis import RedisBroker
from streamgate.core.publication import Publication, StreamPosition
from streamgate.errors import BookRefused, BrokerUnavailable

from support.redis_server import REDIS_URL, delete_prefix, ensure_redis

T0 = 1_700_000_000_000
SIZE = 5
TTL = 60.0
WAIT = 10.0  # seconds a bounded poll may take before the test fails


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Recorder:
    """A BrokerHandler that keeps what it is given."""

    pubs: list[Publication] = field(default_factory=list)
    gone: list[tuple[str, StreamPosition]] = field(default_factory=list)

    def deliver(self, channel: str, pubs: Sequence[Publication]) -> None:
        assert all(p.channel == channel for p in pubs)
        self.pubs.extend(pubs)

    def lost(self, channel: str, position: StreamPosition) -> None:
        self.gone.append((channel, position))

    def of(self, channel: str) -> list[Publication]:
        return [p for p in self.pubs if p.channel == channel]

    async def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.pubs) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


@dataclass
class Backend:
    """Makes brokers and stores of one kind; Redis ones share this test's prefix."""

    kind: str
    clock: Clock
    prefix: str = ""
    opened: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def broker(self, handler: BrokerHandler | None = None) -> Broker:
        broker: Broker
        if self.kind == "memory":
            broker = MemoryBroker(history_size=SIZE, history_ttl=TTL, clock_ms=self.clock)
        else:
            broker = RedisBroker(
                REDIS_URL,
                prefix=self.prefix,
                history_size=SIZE,
                history_ttl=TTL,
                clock_ms=self.clock,
            )
        await broker.start(handler or Recorder())
        self.opened.append(broker.close)
        return broker

    def store(self) -> IdempotencyStore:
        store: IdempotencyStore
        if self.kind == "memory":
            store = MemoryIdempotency(window=30.0, max_keys=1000)
        else:
            store = RedisIdempotency(REDIS_URL, prefix=self.prefix, window=30.0)
        self.opened.append(store.close)  # close is part of the seam, on both
        return store


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    kind: str = request.param
    if kind == "redis":
        await ensure_redis()
    b = Backend(kind, Clock(), prefix=f"sgtest:{secrets.token_hex(6)}:")
    try:
        yield b
    finally:
        for close in reversed(b.opened):
            await close()
        if kind == "redis":
            await delete_prefix(b.prefix)


@pytest.fixture
async def redis_backend() -> AsyncIterator[Backend]:
    await ensure_redis()
    b = Backend("redis", Clock(), prefix=f"sgtest:{secrets.token_hex(6)}:")
    try:
        yield b
    finally:
        for close in reversed(b.opened):
            await close()
        await delete_prefix(b.prefix)


def out(channel: str, *payloads: Any) -> list[Outgoing]:
    return [Outgoing(channel, p) for p in payloads]


# -- the shared contract -------------------------------------------------------------


async def test_offsets_count_per_channel(backend: Backend) -> None:
    broker = await backend.broker()
    assert broker.ready
    a = await broker.publish(out("trade/a", {"n": 1}, {"n": 2}))
    b = await broker.publish(out("trade/b", {"n": 1}))
    a += await broker.publish(out("trade/a", {"n": 3}))
    assert [p.offset for p in a] == [1, 2, 3]
    assert [p.offset for p in b] == [1]
    assert len({p.epoch for p in a}) == 1
    assert [p.data for p in a] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert all(p.ts_ms == T0 and p.channel == "trade/a" for p in a)


async def test_mixed_batch_keeps_order_per_channel(backend: Backend) -> None:
    broker = await backend.broker()
    pubs = await broker.publish(
        [Outgoing("x", 1), Outgoing("y", 1), Outgoing("x", 2), Outgoing("y", 2)]
    )
    assert [(p.channel, p.offset, p.data) for p in pubs] == [
        ("x", 1, 1),
        ("y", 1, 1),
        ("x", 2, 2),
        ("y", 2, 2),
    ]


async def test_handler_gets_every_publication_in_order(backend: Backend) -> None:
    rec = Recorder()
    broker = await backend.broker(rec)
    await broker.subscribe("ticker/a")
    await broker.subscribe("ticker/b")
    sent: list[Publication] = []
    for i in range(20):
        sent += await broker.publish([Outgoing("ticker/a", {"i": i}), Outgoing("ticker/b", i)])
    await rec.wait_for(40)
    assert rec.of("ticker/a") == [p for p in sent if p.channel == "ticker/a"]
    assert rec.of("ticker/b") == [p for p in sent if p.channel == "ticker/b"]


async def test_history_after_an_offset(backend: Backend) -> None:
    broker = await backend.broker()
    pubs = await broker.publish(out("c", "a", "b", "c", "d"))
    epoch = pubs[0].epoch
    got = await broker.history("c", StreamPosition(1, epoch))
    assert got is not None
    replay, pos = got
    assert [(p.offset, p.data) for p in replay] == [(2, "b"), (3, "c"), (4, "d")]
    assert replay == pubs[1:]
    assert pos == StreamPosition(4, epoch)
    assert await broker.history("c", StreamPosition(4, epoch)) == ([], pos)


async def test_history_from_another_epoch_or_the_future(backend: Backend) -> None:
    broker = await backend.broker()
    pubs = await broker.publish(out("c", 1, 2, 3))
    epoch = pubs[0].epoch
    assert await broker.history("c", StreamPosition(1, "other")) is None
    assert await broker.history("c", StreamPosition(0, "other")) is None
    assert await broker.history("c", StreamPosition(4, epoch)) is None


async def test_history_trimmed_by_size(backend: Backend) -> None:
    broker = await backend.broker()
    pubs = await broker.publish(out("c", *range(SIZE + 3)))  # offsets 1..8, 5 kept
    epoch = pubs[0].epoch
    top = SIZE + 3
    assert await broker.history("c", StreamPosition(1, epoch)) is None
    assert await broker.history("c", StreamPosition(top - SIZE - 1, epoch)) is None
    got = await broker.history("c", StreamPosition(top - SIZE, epoch))
    assert got is not None
    assert [p.offset for p in got[0]] == list(range(top - SIZE + 1, top + 1))


async def test_history_expired_by_age(backend: Backend) -> None:
    broker = await backend.broker()
    old = await broker.publish(out("c", "old"))
    backend.clock.now += int(TTL * 1000) + 1
    await broker.publish(out("c", "new"))
    epoch = old[0].epoch
    assert await broker.history("c", StreamPosition(0, epoch)) is None
    got = await broker.history("c", StreamPosition(1, epoch))
    assert got is not None
    assert [p.data for p in got[0]] == ["new"]


async def test_position(backend: Backend) -> None:
    broker = await backend.broker()
    before = await broker.position("p")
    assert before.offset == 0
    assert await broker.position("p") == before  # stable: a resume from it can work
    pubs = await broker.publish(out("p", 1, 2))
    assert await broker.position("p") == StreamPosition(2, pubs[0].epoch)
    # The stream got its own epoch; offset 0 of the idle epoch before it still resumes.
    got = await broker.history("p", before)
    assert got is not None
    assert got[0] == pubs


async def test_latest(backend: Backend) -> None:
    broker = await backend.broker()
    assert await broker.latest("c", 3) == []
    pubs = await broker.publish(out("c", "a", "b", "c"))
    assert await broker.latest("c", 2) == pubs[1:]
    assert await broker.latest("c", 1) == pubs[2:]
    assert await broker.latest("c", 0) == []
    assert await broker.latest("c", 10) == pubs
    pubs += await broker.publish(out("c", *range(SIZE)))  # 8 published, SIZE kept
    assert await broker.latest("c", 10) == pubs[-SIZE:]
    assert await broker.latest("other", 1) == []
    backend.clock.now += int(TTL * 1000) + 1
    assert await broker.latest("c", 1) == []  # too old to be held
    newest = await broker.publish(out("c", "new"))
    assert await broker.latest("c", 3) == newest


async def test_idempotency_seen_and_claim(backend: Backend) -> None:
    store = backend.store()
    assert await store.seen(["k1", "k2"]) == set()
    assert await store.claim(["k1", "k2"]) == set()
    assert await store.seen(["k1", "k2", "k3"]) == {"k1", "k2"}
    assert await store.claim(["k2", "k3", "k3"]) == {"k2"}
    assert await store.seen(["k3"]) == {"k3"}
    assert await store.claim([]) == set()
    await store.release(["k2", "never-claimed"])  # a failed publish gives its keys back
    assert await store.seen(["k1", "k2", "k3"]) == {"k1", "k3"}
    assert await store.claim(["k2"]) == set()


# -- order books: broker state, checked and applied with the publish (issue 7, item 2) --

BOOK = "orderbook/M"
BIG = 2**64 - 1  # the largest integer JSON carries here: no digit lost to a float


def book(kind: str, seq: int, asks: list[list[int]], bids: list[list[int]]) -> Outgoing:
    data = {"type": f"orderbook_{kind}", "seq": seq, "asks": asks, "bids": bids}
    return Outgoing(BOOK, data | {"timestamp_ms": T0 - seq})


async def test_book_is_the_state_at_its_offset(backend: Backend) -> None:
    broker = await backend.broker()
    assert await broker.book(BOOK) is None
    assert await broker.book_seqs([BOOK, "orderbook/N"]) == {}
    await broker.publish([book("snapshot", 10, [[103, 1], [101, 2]], [[99, 1], [BIG, BIG]])])
    pubs = await broker.publish(
        [book("delta", 11, [[102, 5], [103, 0]], [[BIG, 0]]), book("delta", 12, [], [[98, 4]])]
    )
    backend.clock.now = T0 + 500
    snap = await broker.book(BOOK)
    assert snap is not None
    assert snap.position == pubs[-1].position and snap.ts_ms == T0 + 500
    assert snap.data == {
        "type": "orderbook_snapshot",
        "market_addr": "M",
        "seq": 12,
        "asks": [[101, 2], [102, 5]],
        "bids": [[98, 4], [99, 1]],
        "timestamp": (T0 - 12) // 1000,
        "timestamp_ms": T0 - 12,
        "matched_at": T0 - 12,  # the last event's (filled from its timestamp_ms)
        "checksum": zlib.crc32(b"99:1:101:2:98:4:102:5"),
    }
    assert await broker.book_seqs([BOOK, "orderbook/N"]) == {BOOK: 12}
    await broker.publish([book("snapshot", 3, [[BIG, 1]], [])])  # a snapshot replaces
    snap = await broker.book(BOOK)
    assert snap is not None
    assert (snap.data["seq"], snap.data["asks"], snap.data["bids"]) == (3, [[BIG, 1]], [])


async def test_book_events_carry_the_checksum_of_the_book_after_them(backend: Backend) -> None:
    """Extension (protocol-notes "Book checksum"): published, delivered, replayed, snapshot."""
    recorder = Recorder()
    broker = await backend.broker(recorder)
    await broker.subscribe(BOOK)
    deep = [[p, p % 7 + 1] for p in range(1000, 1040)]  # 40 levels: only 25 count
    low = [[p, 3] for p in range(101, 131)]
    pubs = await broker.publish(
        [
            book("snapshot", 1, deep, low),
            book("delta", 2, [[1000, 0], [1041, 9]], [[BIG, 5]]),
            *out("trade/M", {"n": 1}),
        ]
    )

    def crc(asks: list[list[int]], bids: list[list[int]]) -> int:
        best_asks, best_bids = sorted(asks)[:25], sorted(bids, reverse=True)[:25]
        pairs = zip(best_bids, best_asks, strict=True)  # both sides are 25 deep here
        return zlib.crc32(":".join(f"{b[0]}:{b[1]}:{a[0]}:{a[1]}" for b, a in pairs).encode())

    first = crc(deep, low)
    expected = crc([[p, s] for p, s in deep if p != 1000] + [[1041, 9]], [*low, [BIG, 5]])
    assert [p.data.get("checksum") for p in pubs] == [first, expected, None]
    await recorder.wait_for(2)
    assert [p.data["checksum"] for p in recorder.of(BOOK)] == [first, expected]
    replay = await broker.history(BOOK, pubs[0].position)
    assert replay is not None and [p.data["checksum"] for p in replay[0]] == [expected]
    snap = await broker.book(BOOK)
    assert snap is not None and snap.data["checksum"] == expected
    await broker.publish([book("snapshot", 9, [], [])])
    snap = await broker.book(BOOK)
    assert snap is not None and snap.data["checksum"] == 0  # crc32 of ""


async def test_book_refusal_publishes_nothing(backend: Backend) -> None:
    broker = await backend.broker()
    with pytest.raises(BookRefused) as no_book:
        await broker.publish([*out("trade/M", {"n": 1}), book("delta", 1, [[1, 1]], [])])
    assert (no_book.value.position, no_book.value.code, no_book.value.field) == (
        1,
        "NO_BOOK",
        "data.type",
    )
    assert (await broker.position("trade/M")).offset == 0  # nothing of the batch
    await broker.publish([book("snapshot", 5, [[1, 1]], [])])
    # A batch chains: the snapshot sets the seq its delta follows; the gap is at item 3.
    batch = [
        book("delta", 6, [[2, 1]], []),
        book("snapshot", 20, [[3, 1]], []),
        book("delta", 21, [[4, 1]], []),
        book("delta", 23, [[5, 1]], []),
    ]
    with pytest.raises(BookRefused) as gap:
        await broker.publish(batch)
    assert (gap.value.position, gap.value.code, gap.value.field) == (3, "SEQ_GAP", "data.seq")
    assert "expected 22" in gap.value.detail
    assert (await broker.position(BOOK)).offset == 1
    snap = await broker.book(BOOK)
    assert snap is not None and snap.data["seq"] == 5 and snap.data["asks"] == [[1, 1]]


async def test_books_of_two_markets_chain_independently(backend: Backend) -> None:
    broker = await backend.broker()
    other = Outgoing(
        "orderbook/N", {"type": "orderbook_snapshot", "seq": 1, "asks": [], "bids": []}
    )
    await broker.publish([book("snapshot", 1, [], []), other])
    await broker.publish([book("delta", 2, [[1, 1]], [])])
    assert await broker.book_seqs([BOOK, "orderbook/N"]) == {BOOK: 2, "orderbook/N": 1}


@pytest.mark.redis
async def test_a_book_written_before_its_level_index_gets_the_right_checksum(
    redis_backend: Backend,
) -> None:
    """A book hash from before issue 13 (no level index, no 'z'): indexed on its next delta."""
    broker = await redis_backend.broker()
    asks, bids = [[200 + i, i + 1] for i in range(60)], [[100 - i, 2] for i in range(60)]
    await broker.publish([book("snapshot", 1, asks, bids)])
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.delete(f"{redis_backend.prefix}booklevels:{BOOK}")
        await redis.hdel(f"{redis_backend.prefix}book:{BOOK}", "z")
    finally:
        await redis.aclose()
    [pub] = await broker.publish([book("delta", 2, [[200, 0]], [[100, 9]])])
    memory = MemoryBroker(history_size=SIZE, history_ttl=TTL, clock_ms=redis_backend.clock)
    await memory.start(Recorder())
    await memory.publish([book("snapshot", 1, asks, bids)])
    [same] = await memory.publish([book("delta", 2, [[200, 0]], [[100, 9]])])
    await memory.close()
    assert pub.data["checksum"] == same.data["checksum"]
    snap = await broker.book(BOOK)
    assert snap is not None and snap.data["checksum"] == same.data["checksum"]


@pytest.mark.redis
async def test_racing_deltas_from_two_nodes_extend_the_book_once(redis_backend: Backend) -> None:
    a, b = await redis_backend.broker(), await redis_backend.broker()
    await a.publish([book("snapshot", 1, [], [])])
    results = await asyncio.gather(
        *(node.publish([book("delta", 2, [[n, 1]], [])]) for n, node in enumerate((a, b), 1)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, BookRefused)]
    assert len(refused) == 1 and refused[0].code == "SEQ_GAP"
    snap = await b.book(BOOK)
    assert snap is not None and snap.data["seq"] == 2 and len(snap.data["asks"]) == 1


# -- Redis only: several nodes -------------------------------------------------------


@pytest.mark.redis
async def test_publish_on_one_node_is_delivered_by_another(redis_backend: Backend) -> None:
    rec_b = Recorder()
    node_a = await redis_backend.broker()
    node_b = await redis_backend.broker(rec_b)
    await node_b.subscribe("trade/m")
    sent = await node_a.publish(out("trade/m", {"px": 1}, {"px": 2}))
    await rec_b.wait_for(2)
    assert rec_b.pubs == sent
    assert await node_b.position("trade/m") == sent[-1].position
    got = await node_b.history("trade/m", StreamPosition(0, sent[0].epoch))
    assert got is not None
    assert got[0] == sent
    await node_b.unsubscribe("trade/m")
    await node_a.publish(out("trade/m", {"px": 3}))
    await node_b.subscribe("trade/other")  # a round trip on B's pub/sub connection
    assert len(rec_b.pubs) == 2


@pytest.mark.redis
async def test_concurrent_publishes_from_two_nodes_interleave(redis_backend: Backend) -> None:
    rec_a, rec_b = Recorder(), Recorder()
    node_a = await redis_backend.broker(rec_a)
    node_b = await redis_backend.broker(rec_b)
    for node in (node_a, node_b):
        await node.subscribe("fill/u")

    async def producer(node: Broker, tag: str) -> list[Publication]:
        pubs: list[Publication] = []
        for i in range(50):
            pubs += await node.publish(out("fill/u", f"{tag}{i}", f"{tag}{i}'"))
        return pubs

    from_a, from_b = await asyncio.gather(producer(node_a, "a"), producer(node_b, "b"))
    offsets = sorted(p.offset for p in from_a + from_b)
    assert offsets == list(range(1, 201))
    assert {p.epoch for p in from_a + from_b} == {from_a[0].epoch}
    await rec_a.wait_for(200)
    await rec_b.wait_for(200)
    assert [p.offset for p in rec_a.pubs] == list(range(1, 201))
    assert rec_a.pubs == rec_b.pubs
    by_offset = {p.offset: p.data for p in from_a + from_b}
    assert [p.data for p in rec_a.pubs] == [by_offset[o] for o in range(1, 201)]


@pytest.mark.redis
async def test_lost_meta_gives_a_new_epoch(redis_backend: Backend) -> None:
    broker = await redis_backend.broker()
    old = await broker.publish(out("c", 1, 2, 3))
    client = Redis.from_url(REDIS_URL)
    try:
        await client.delete(f"{redis_backend.prefix}meta:c")  # as a restart without disk would
    finally:
        await client.aclose()
    new = await broker.publish(out("c", 4))
    assert new[0].offset == 1
    assert new[0].epoch != old[0].epoch
    assert await broker.history("c", old[-1].position) is None
    got = await broker.history("c", StreamPosition(0, new[0].epoch))
    assert got is not None
    assert got[0] == new


# -- Redis only: faults (issue 7, item 4) --------------------------------------------


async def fault_node(
    backend: Backend, handler: BrokerHandler, *, reconnect_min: float = 0.3
) -> tuple[RedisBroker, str]:
    """A RedisBroker with a client name of its own, so a test can cut just its pub/sub."""
    name = f"sgtest-{secrets.token_hex(6)}"
    broker = RedisBroker(
        REDIS_URL,
        prefix=backend.prefix,
        history_size=SIZE,
        history_ttl=TTL,
        clock_ms=backend.clock,
        name=name,
        reconnect_min=reconnect_min,
        reconnect_max=2.0,
    )
    await broker.start(handler)
    backend.opened.append(broker.close)
    return broker, name


async def cut(name: str) -> None:
    """Kill the pub/sub connection of the broker named ``name`` (CLIENT KILL ID)."""
    client = Redis.from_url(REDIS_URL)
    try:
        ids = [c["id"] for c in await client.client_list() if c.get("name") == f"{name}-sub"]
        assert ids, f"no pub/sub connection named {name}-sub"
        for client_id in ids:
            await client.client_kill_filter(_id=client_id)
    finally:
        await client.aclose()


async def until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def assert_unavailable_at_once(broker: Broker) -> None:
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await broker.publish(out("c", "x"))
    with pytest.raises(BrokerUnavailable):
        await broker.history("c", StreamPosition(0, "e"))
    with pytest.raises(BrokerUnavailable):
        await broker.position("c")
    with pytest.raises(BrokerUnavailable):
        await broker.subscribe("other")
    assert time.monotonic() - started < 0.1


@pytest.mark.redis
async def test_cut_recovers_what_was_published_meanwhile(redis_backend: Backend) -> None:
    rec = Recorder()
    node, name = await fault_node(redis_backend, rec)
    other = await redis_backend.broker()
    await node.subscribe("c")
    await node.subscribe("quiet")  # nothing delivered before the cut: from its position
    sent = await other.publish(out("c", 1, 2))
    await rec.wait_for(2)
    await cut(name)
    await until(lambda: not node.ready)
    await assert_unavailable_at_once(node)
    during = await other.publish(out("c", 3, 4, 5))
    during += await other.publish(out("quiet", "q"))
    assert not node.ready  # still in backoff: these reached no one here
    await until(lambda: node.ready)
    after = await other.publish(out("c", 6))
    await rec.wait_for(7)
    await asyncio.sleep(0.05)  # late duplicates would show up now
    assert rec.of("c") == sent + [p for p in during if p.channel == "c"] + after
    assert [p.offset for p in rec.of("c")] == [1, 2, 3, 4, 5, 6]
    assert rec.of("quiet") == [p for p in during if p.channel == "quiet"]
    assert rec.gone == []
    assert await node.position("c") == after[-1].position


@pytest.mark.redis
async def test_cut_with_lost_meta_reports_the_channel_lost(redis_backend: Backend) -> None:
    rec = Recorder()
    node, name = await fault_node(redis_backend, rec)
    other = await redis_backend.broker()
    await node.subscribe("c")
    old = await other.publish(out("c", 1, 2))
    await rec.wait_for(2)
    await cut(name)
    await until(lambda: not node.ready)
    client = Redis.from_url(REDIS_URL)
    try:
        await client.delete(f"{redis_backend.prefix}meta:c")  # as a restart without disk
    finally:
        await client.aclose()
    fresh = await other.publish(out("c", "n1"))
    assert fresh[0].epoch != old[0].epoch
    await until(lambda: node.ready)
    assert rec.gone == [("c", fresh[0].position)]
    after = await other.publish(out("c", "n2"))
    await rec.wait_for(3)
    assert rec.of("c") == old + after  # continues from the position it was told


@pytest.mark.redis
async def test_cut_longer_than_the_history_is_lost(redis_backend: Backend) -> None:
    rec = Recorder()
    node, name = await fault_node(redis_backend, rec)
    other = await redis_backend.broker()
    await node.subscribe("c")
    await cut(name)
    await until(lambda: not node.ready)
    during = await other.publish(out("c", *range(SIZE + 2)))
    await until(lambda: node.ready)
    assert rec.gone == [("c", during[-1].position)]
    assert rec.pubs == []


@pytest.mark.redis
async def test_close_during_backoff_returns_promptly(redis_backend: Backend) -> None:
    node, name = await fault_node(redis_backend, Recorder(), reconnect_min=30.0)
    await node.subscribe("c")
    await cut(name)
    await until(lambda: not node.ready)
    await assert_unavailable_at_once(node)
    started = time.monotonic()
    await node.close()
    assert time.monotonic() - started < 1.0
