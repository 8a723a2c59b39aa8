"""Hub + MemoryBroker: fan-out, encode once, catch-up, two-phase subscribe."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from streamgate.brokers.base import Outgoing
from streamgate.brokers.memory import MemoryBroker
from streamgate.core.publication import Publication, StreamPosition
from streamgate.hub.hub import Encoder, Hub

T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class CountingEncoder:
    """``offset;`` per publication, counting calls."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self.calls = 0

    def __call__(self, pub: Publication) -> bytes:
        self.calls += 1
        return f"{self.tag}{pub.offset};".encode()


def offset_encoder(pub: Publication) -> bytes:
    return f"{pub.offset};".encode()


def typed_encoder(pub: Publication) -> bytes:
    kind = pub.data.get("type", "?") if isinstance(pub.data, dict) else "?"
    return f"{pub.offset}:{kind};".encode()


class FakeSub:
    def __init__(self, encoder: Encoder = offset_encoder) -> None:
        self.encoder: Encoder = encoder
        self.chunks: list[bytes] = []
        self.interruptions: list[str] = []

    def enqueue(self, data: bytes) -> None:
        self.chunks.append(data)

    def interrupted(self, channel: str) -> None:
        self.interruptions.append(channel)

    def items(self) -> list[str]:
        return [x for x in b"".join(self.chunks).decode().split(";") if x]

    def offsets(self) -> list[int]:
        return [int(x.split(":")[0]) for x in self.items()]


@dataclass
class Env:
    broker: MemoryBroker
    hub: Hub
    clock: Clock

    def publish(self, channel: str, *payloads: Any) -> list[Publication]:
        return self.broker.publish_now([Outgoing(channel, p) for p in payloads])


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = Clock()
    broker = MemoryBroker(history_size=100, history_ttl=60.0, clock_ms=clock)
    hub = Hub(broker)
    await broker.start(hub)
    yield Env(broker, hub, clock)
    await broker.close()


async def join(
    hub: Hub, channel: str, sub: FakeSub, since: StreamPosition | None = None
) -> bool | None:
    catchup = await hub.subscribe(channel, sub, since)
    assert hub.go_live(catchup)
    return catchup.recovered


def book_data(kind: str, seq: int, asks: list[list[int]], bids: list[list[int]]) -> dict[str, Any]:
    return {
        "type": kind,
        "market_addr": "M",
        "seq": seq,
        "asks": asks,
        "bids": bids,
        "timestamp": T0 // 1000,
        "timestamp_ms": T0,
    }


# -- fan-out ---------------------------------------------------------------------------


async def test_encode_once_per_encoder(env: Env) -> None:
    shared, other = CountingEncoder(), CountingEncoder("x")
    a, b, c = FakeSub(shared), FakeSub(shared), FakeSub(other)
    for sub in (a, b, c):
        await join(env.hub, "trade/A", sub)
    env.publish("trade/A", {"n": 1})
    assert (shared.calls, other.calls) == (1, 1)
    assert a.chunks[0] is b.chunks[0]  # the very same bytes object
    assert c.chunks == [b"x1;"]
    env.publish("trade/A", {"n": 2}, {"n": 3}, {"n": 4})  # one batch
    assert (shared.calls, other.calls) == (4, 4)
    assert a.chunks[1] is b.chunks[1]
    assert a.chunks == b.chunks == [b"1;", b"2;3;4;"]
    assert c.chunks == [b"x1;", b"x2;x3;x4;"]
    assert (env.hub.stats.published, env.hub.stats.delivered) == (4, 12)


async def test_only_the_channel_subscribers_receive(env: Env) -> None:
    a, b = FakeSub(), FakeSub()
    await join(env.hub, "trade/A", a)
    await join(env.hub, "trade/B", b)
    env.publish("trade/A", {"n": 1})
    env.publish("trade/B", {"n": 1}, {"n": 2})
    env.publish("trade/C", {"n": 1})
    assert a.offsets() == [1]
    assert b.offsets() == [1, 2]
    assert env.hub.stats.published == 4
    assert env.hub.stats.delivered == 3


async def test_subscribe_without_resume_gets_only_live(env: Env) -> None:
    env.publish("trade/A", {"n": 1}, {"n": 2})
    sub = FakeSub()
    catchup = await env.hub.subscribe("trade/A", sub)
    assert (catchup.pubs, catchup.position, catchup.recovered) == ([], None, None)
    assert env.hub.go_live(catchup)
    assert sub.chunks == []
    env.publish("trade/A", {"n": 3})
    assert sub.offsets() == [3]


# -- resume ----------------------------------------------------------------------------


async def test_resume_recovered(env: Env) -> None:
    pubs = env.publish("trade/A", *({"n": i} for i in range(5)))
    epoch = pubs[0].epoch
    sub = FakeSub()
    catchup = await env.hub.subscribe("trade/A", sub, StreamPosition(2, epoch))
    assert catchup.recovered is True
    assert catchup.pubs == pubs[2:]
    assert catchup.position == StreamPosition(5, epoch)
    assert env.hub.go_live(catchup)
    assert sub.chunks == [b"3;4;5;"]  # the replay is one write
    env.publish("trade/A", {"n": 5})
    assert sub.offsets() == [3, 4, 5, 6]


async def test_resume_at_top_recovers_nothing_to_replay(env: Env) -> None:
    pubs = env.publish("trade/A", {"n": 0}, {"n": 1})
    sub = FakeSub()
    assert await join(env.hub, "trade/A", sub, pubs[-1].position) is True
    assert sub.chunks == []
    env.publish("trade/A", {"n": 2})
    assert sub.offsets() == [3]


async def test_resume_other_epoch_not_recovered(env: Env) -> None:
    env.publish("trade/A", {"n": 0}, {"n": 1})
    sub = FakeSub()
    assert await join(env.hub, "trade/A", sub, StreamPosition(1, "another-epoch")) is False
    assert sub.chunks == []  # not a book: nothing to catch up with
    env.publish("trade/A", {"n": 2})
    assert sub.offsets() == [3]


async def test_resume_from_the_future_not_recovered(env: Env) -> None:
    pubs = env.publish("trade/A", {"n": 0}, {"n": 1})
    sub = FakeSub()
    assert await join(env.hub, "trade/A", sub, StreamPosition(3, pubs[0].epoch)) is False
    assert sub.chunks == []
    env.publish("trade/A", {"n": 2})
    assert sub.offsets() == [3]


async def test_resume_evicted_history_not_recovered() -> None:
    clock = Clock()
    broker = MemoryBroker(history_size=2, history_ttl=60.0, clock_ms=clock)
    hub = Hub(broker)
    await broker.start(hub)
    try:
        pubs = broker.publish_now([Outgoing("trade/A", {"n": i}) for i in range(5)])
        sub = FakeSub()
        assert await join(hub, "trade/A", sub, StreamPosition(1, pubs[0].epoch)) is False
        other = FakeSub()
        assert await join(hub, "trade/A", other, StreamPosition(3, pubs[0].epoch)) is True
        assert other.offsets() == [4, 5]
        clock.now += 61_000
        late = FakeSub()
        assert await join(hub, "trade/A", late, StreamPosition(3, pubs[0].epoch)) is False
    finally:
        await broker.close()


# -- order books -----------------------------------------------------------------------


async def test_late_subscriber_gets_a_book_snapshot(env: Env) -> None:
    env.clock.now = T0 + 5_000
    env.publish(
        "orderbook/M",
        book_data("orderbook_snapshot", 10, [[103, 1], [101, 2]], [[99, 1]]),
        book_data("orderbook_delta", 11, [[102, 5], [103, 0]], []),
    )
    env.publish("orderbook/M", book_data("orderbook_delta", 12, [], [[98, 4]]))
    sub = FakeSub(typed_encoder)
    catchup = await env.hub.subscribe("orderbook/M", sub)
    assert catchup.recovered is None
    [snap] = catchup.pubs
    assert snap.data == {
        "type": "orderbook_snapshot",
        "market_addr": "M",
        "seq": 12,
        "asks": [[101, 2], [102, 5]],
        "bids": [[98, 4], [99, 1]],
        "timestamp": T0 // 1000,
        "timestamp_ms": T0,
        "matched_at": T0,
        "checksum": zlib.crc32(b"99:1:101:2:98:4:102:5"),  # the book checksum extension
    }
    assert (snap.offset, snap.ts_ms) == (3, T0 + 5_000)
    assert catchup.position == snap.position
    assert env.hub.go_live(catchup)
    env.publish("orderbook/M", book_data("orderbook_delta", 13, [[104, 1]], []))
    assert sub.items() == ["3:orderbook_snapshot", "4:orderbook_delta"]


async def test_book_channel_without_a_book_has_no_catchup(env: Env) -> None:
    sub = FakeSub(typed_encoder)
    catchup = await env.hub.subscribe("orderbook/M", sub)
    assert catchup.pubs == [] and catchup.position is None
    env.hub.go_live(catchup)
    env.publish("orderbook/M", book_data("orderbook_snapshot", 1, [[5, 1]], []))
    assert sub.items() == ["1:orderbook_snapshot"]


async def test_book_resume_not_recovered_gets_a_snapshot(env: Env) -> None:
    env.publish("orderbook/M", book_data("orderbook_snapshot", 1, [[5, 1]], []))
    env.publish("orderbook/M", book_data("orderbook_delta", 2, [[6, 1]], []))
    sub = FakeSub(typed_encoder)
    assert await join(env.hub, "orderbook/M", sub, StreamPosition(1, "old-epoch")) is False
    assert sub.items() == ["2:orderbook_snapshot"]


async def test_book_resume_recovered_gets_deltas_not_a_snapshot(env: Env) -> None:
    pubs = env.publish(
        "orderbook/M",
        book_data("orderbook_snapshot", 1, [[5, 1]], []),
        book_data("orderbook_delta", 2, [[6, 1]], []),
        book_data("orderbook_delta", 3, [[7, 1]], []),
    )
    sub = FakeSub(typed_encoder)
    assert await join(env.hub, "orderbook/M", sub, pubs[0].position) is True
    assert sub.items() == ["2:orderbook_delta", "3:orderbook_delta"]


# -- a broker that lost a channel's continuity (issue 7) --------------------------------


async def test_lost_book_channel_gives_live_subscribers_a_fresh_snapshot(env: Env) -> None:
    env.publish("orderbook/M", book_data("orderbook_snapshot", 1, [[5, 1]], []))
    sub = FakeSub(typed_encoder)
    await join(env.hub, "orderbook/M", sub)
    # The broker missed offsets 2..3 for this node (its pub/sub was down): the hub is told.
    env.broker.publish_now(
        [Outgoing("orderbook/M", book_data("orderbook_delta", s, [[5 + s, 1]], [])) for s in (2, 3)]
    )
    sub.chunks.clear()
    position = await env.broker.position("orderbook/M")
    env.hub.lost("orderbook/M", position)
    await asyncio.sleep(0)  # the fresh snapshot is fetched in a task
    await asyncio.sleep(0)
    assert sub.items() == ["3:orderbook_snapshot"] and sub.interruptions == []
    env.publish("orderbook/M", book_data("orderbook_delta", 4, [[9, 1]], []))
    assert sub.items() == ["3:orderbook_snapshot", "4:orderbook_delta"]
    assert env.hub.delivered_position("orderbook/M") == StreamPosition(4, position.epoch)


async def test_lost_channel_interrupts_its_subscribers_only(env: Env) -> None:
    a, b, other = FakeSub(), FakeSub(), FakeSub()
    await join(env.hub, "trade/A", a)
    await join(env.hub, "trade/A", b)
    await join(env.hub, "trade/B", other)
    env.hub.lost("trade/A", StreamPosition(7, "new-epoch"))
    assert a.interruptions == ["trade/A"] and b.interruptions == ["trade/A"]
    assert other.interruptions == []
    assert env.hub.delivered_position("trade/A") == StreamPosition(7, "new-epoch")


async def test_lost_book_channel_without_a_book_interrupts(env: Env) -> None:
    sub = FakeSub(typed_encoder)
    await join(env.hub, "orderbook/M", sub)
    env.hub.lost("orderbook/M", StreamPosition(0, "e"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert sub.interruptions == ["orderbook/M"]
    assert env.hub.subscriber_count("orderbook/M") == 0


async def test_lost_channel_without_subscribers_is_ignored(env: Env) -> None:
    env.hub.lost("trade/Z", StreamPosition(1, "e"))
    assert env.hub.delivered_position("trade/Z") is None


# -- two-phase subscribe ---------------------------------------------------------------


async def test_publication_between_subscribe_and_go_live_delivered_once(env: Env) -> None:
    env.publish("trade/A", {"n": 0})
    sub, live = FakeSub(), FakeSub()
    await join(env.hub, "trade/A", live)
    catchup = await env.hub.subscribe("trade/A", sub)
    env.publish("trade/A", {"n": 1}, {"n": 2})
    assert sub.chunks == []  # pending: buffered, not delivered
    assert live.offsets() == [2, 3]
    assert env.hub.go_live(catchup)
    env.publish("trade/A", {"n": 3})
    assert sub.offsets() == [2, 3, 4]


async def test_resume_with_publication_before_go_live_delivered_once(env: Env) -> None:
    pubs = env.publish("trade/A", {"n": 0}, {"n": 1}, {"n": 2})
    sub = FakeSub()
    catchup = await env.hub.subscribe("trade/A", sub, pubs[0].position)
    env.publish("trade/A", {"n": 3})
    assert env.hub.go_live(catchup)
    env.publish("trade/A", {"n": 4})
    assert sub.offsets() == [2, 3, 4, 5]


async def test_book_publication_before_go_live_follows_the_snapshot(env: Env) -> None:
    env.publish("orderbook/M", book_data("orderbook_snapshot", 1, [[5, 1]], []))
    sub = FakeSub(typed_encoder)
    catchup = await env.hub.subscribe("orderbook/M", sub)
    env.publish("orderbook/M", book_data("orderbook_delta", 2, [[6, 1]], []))
    assert env.hub.go_live(catchup)
    assert sub.items() == ["1:orderbook_snapshot", "2:orderbook_delta"]
    assert catchup.pubs[0].data["asks"] == [[5, 1]]  # taken before the delta


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass
class GatedSource:
    """A broker whose history answer is held until the test lets it go.

    Its node-level subscribe is confirmed at once, or once ``listening`` is set when a
    test clears it first.
    """

    broker: MemoryBroker
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    unsubscribed: list[str] = field(default_factory=list)
    listening: asyncio.Event = field(default_factory=_set_event)
    listen_waits: int = 0

    async def history(
        self, channel: str, since: StreamPosition
    ) -> tuple[list[Publication], StreamPosition] | None:
        self.entered.set()
        await self.gate.wait()
        return await self.broker.history(channel, since)

    async def position(self, channel: str) -> StreamPosition:
        return await self.broker.position(channel)

    async def latest(self, channel: str, limit: int) -> list[Publication]:
        return await self.broker.latest(channel, limit)

    async def book(self, channel: str) -> Publication | None:
        return await self.broker.book(channel)

    async def subscribe(self, channel: str) -> None:
        self.listen_waits += 1
        await self.listening.wait()
        await self.broker.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.unsubscribed.append(channel)
        await self.broker.unsubscribe(channel)


async def test_publication_during_history_fetch_not_duplicated() -> None:
    broker = MemoryBroker(history_size=100, history_ttl=60.0)
    source = GatedSource(broker)
    hub = Hub(source)
    await broker.start(hub)
    try:
        pubs = broker.publish_now([Outgoing("trade/A", {"n": i}) for i in range(3)])
        sub = FakeSub()
        task = asyncio.create_task(hub.subscribe("trade/A", sub, pubs[0].position))
        await source.entered.wait()
        # Both in the history the fetch will read and in the subscriber's buffer.
        broker.publish_now([Outgoing("trade/A", {"n": 3})])
        source.gate.set()
        catchup = await task
        assert [p.offset for p in catchup.pubs] == [2, 3, 4]
        assert hub.go_live(catchup)
        broker.publish_now([Outgoing("trade/A", {"n": 4})])
        assert sub.offsets() == [2, 3, 4, 5]
    finally:
        await broker.close()


# -- unsubscribe -----------------------------------------------------------------------


async def test_unsubscribe_stops_delivery(env: Env) -> None:
    a, b = FakeSub(), FakeSub()
    await join(env.hub, "trade/A", a)
    await join(env.hub, "trade/A", b)
    assert env.hub.subscriber_count("trade/A") == 2
    env.hub.unsubscribe("trade/A", a)
    assert env.hub.subscriber_count("trade/A") == 1
    env.publish("trade/A", {"n": 1})
    assert a.chunks == []
    assert b.offsets() == [1]
    env.hub.unsubscribe("trade/A", b)
    assert env.hub.subscriber_count("trade/A") == 0
    assert env.hub.channel_count == 0
    env.publish("trade/A", {"n": 2})
    assert b.offsets() == [1]
    env.hub.unsubscribe("trade/A", b)  # no-op
    env.hub.unsubscribe("trade/Z", b)  # no-op


async def test_unsubscribe_while_pending(env: Env) -> None:
    sub = FakeSub()
    catchup = await env.hub.subscribe("trade/A", sub)
    assert env.hub.subscriber_count("trade/A") == 1
    env.hub.unsubscribe("trade/A", sub)
    env.publish("trade/A", {"n": 1})
    assert env.hub.go_live(catchup) is False
    env.publish("trade/A", {"n": 2})
    assert sub.chunks == []


async def test_last_unsubscribe_releases_the_broker_channel() -> None:
    broker = MemoryBroker(history_size=10, history_ttl=60.0)
    source = GatedSource(broker)
    source.gate.set()
    hub = Hub(source)
    await broker.start(hub)
    try:
        a, b = FakeSub(), FakeSub()
        await join(hub, "trade/A", a)
        await join(hub, "trade/A", b)
        hub.unsubscribe("trade/A", a)
        await asyncio.sleep(0)
        assert source.unsubscribed == []
        hub.unsubscribe("trade/A", b)
        await asyncio.sleep(0)
        assert source.unsubscribed == ["trade/A"]
        # Coming back before the release runs keeps the interest.
        await join(hub, "trade/A", a)
        hub.unsubscribe("trade/A", a)
        await join(hub, "trade/A", b)
        await asyncio.sleep(0)
        assert source.unsubscribed == ["trade/A"]
        broker.publish_now([Outgoing("trade/A", {"n": 1})])
        assert b.offsets() == [1]
    finally:
        await broker.close()


async def test_resubscribe_while_live_is_not_duplicated(env: Env) -> None:
    sub = FakeSub()
    await join(env.hub, "trade/A", sub)
    env.publish("trade/A", {"n": 1})
    await join(env.hub, "trade/A", sub)
    env.publish("trade/A", {"n": 2})
    assert sub.offsets() == [1, 2]
    assert env.hub.subscriber_count("trade/A") == 1


async def test_second_subscriber_waits_for_the_node_subscription_too() -> None:
    broker = MemoryBroker(history_size=10, history_ttl=60.0)
    source = GatedSource(broker)
    source.listening.clear()
    hub = Hub(source)
    first = asyncio.ensure_future(hub.subscribe("trade/A", FakeSub()))
    second = asyncio.ensure_future(hub.subscribe("trade/A", FakeSub()))
    for _ in range(5):
        await asyncio.sleep(0)
    # Neither may go live on a stream this node does not receive yet.
    assert source.listen_waits == 2 and not first.done() and not second.done()
    source.listening.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)


# -- a catch-up ahead of the node's deliveries (issue 11) --------------------------------


@dataclass
class Relay:
    """Stands between the broker and the hub; holds deliveries while ``holding``.

    What Redis pub/sub does to a node under load: the broker's state (book, history)
    already has a batch whose delivery has not reached this node yet.
    """

    hub: Hub | None = None
    holding: bool = False
    held: list[tuple[str, list[Publication]]] = field(default_factory=list)

    def deliver(self, channel: str, pubs: Sequence[Publication]) -> None:
        assert self.hub is not None
        if self.holding:
            self.held.append((channel, list(pubs)))
        else:
            self.hub.deliver(channel, pubs)

    def lost(self, channel: str, position: StreamPosition) -> None:
        assert self.hub is not None
        self.hub.lost(channel, position)

    def release(self) -> None:
        assert self.hub is not None
        self.holding = False
        held, self.held = self.held, []
        for channel, pubs in held:
            self.hub.deliver(channel, pubs)


@pytest.fixture
async def relayed() -> AsyncIterator[tuple[MemoryBroker, Relay]]:
    broker = MemoryBroker(history_size=100, history_ttl=60.0)
    relay = Relay(Hub(broker))
    await broker.start(relay)
    yield broker, relay
    await broker.close()


def deltas(first: int, count: int) -> list[Outgoing]:
    return [
        Outgoing("orderbook/M", book_data("orderbook_delta", s, [[100 + s, 1]], []))
        for s in range(first, first + count)
    ]


async def test_snapshot_ahead_of_delivery_skips_what_it_contains(
    relayed: tuple[MemoryBroker, Relay],
) -> None:
    broker, relay = relayed
    assert relay.hub is not None
    [snap] = broker.publish_now(
        [Outgoing("orderbook/M", book_data("orderbook_snapshot", 1, [], []))]
    )
    early = FakeSub(typed_encoder)
    await join(relay.hub, "orderbook/M", early)
    relay.holding = True
    broker.publish_now(deltas(2, 5))  # the book has seq 6; the node has not heard 2..6
    late = FakeSub(typed_encoder)
    await join(relay.hub, "orderbook/M", late)
    assert late.items() == ["6:orderbook_snapshot"]
    assert relay.hub.delivered_position("orderbook/M") == snap.position
    assert relay.hub.delivered_position("orderbook/M", late) == StreamPosition(6, snap.epoch)
    relay.release()  # the batch reaches the node after the snapshot went out
    broker.publish_now(deltas(7, 1))
    assert late.items() == ["6:orderbook_snapshot", "7:orderbook_delta"]
    assert early.offsets() == [1, 2, 3, 4, 5, 6, 7]
    assert relay.hub.delivered_position("orderbook/M") == StreamPosition(7, snap.epoch)
    assert relay.hub.subscriber_count("orderbook/M") == 2


async def test_resume_replay_ahead_of_delivery_skips_what_it_replayed(
    relayed: tuple[MemoryBroker, Relay],
) -> None:
    broker, relay = relayed
    assert relay.hub is not None
    pubs = broker.publish_now([Outgoing("trade/A", {"n": i}) for i in range(3)])
    live = FakeSub()
    await join(relay.hub, "trade/A", live)
    relay.holding = True
    broker.publish_now([Outgoing("trade/A", {"n": i}) for i in range(3, 6)])  # 4..6
    sub = FakeSub()
    assert await join(relay.hub, "trade/A", sub, pubs[0].position) is True
    assert sub.offsets() == [2, 3, 4, 5, 6]
    relay.release()
    broker.publish_now([Outgoing("trade/A", {"n": 6})])
    assert sub.offsets() == [2, 3, 4, 5, 6, 7]
    assert live.offsets() == [4, 5, 6, 7]


async def test_ahead_subscriber_gets_only_the_newer_part_of_a_delivery(
    relayed: tuple[MemoryBroker, Relay],
) -> None:
    broker, relay = relayed
    assert relay.hub is not None
    broker.publish_now([Outgoing("orderbook/M", book_data("orderbook_snapshot", 1, [], []))])
    early = FakeSub(typed_encoder)
    await join(relay.hub, "orderbook/M", early)
    relay.holding = True
    broker.publish_now(deltas(2, 2))
    late = FakeSub(typed_encoder)
    await join(relay.hub, "orderbook/M", late)  # a snapshot at offset 3
    broker.publish_now(deltas(4, 2))
    # One delivery of 2..5 (as a Redis reconnect's recovery from history delivers).
    relay.holding = False
    relay.hub.deliver("orderbook/M", [p for _, pubs in relay.held for p in pubs])
    relay.held.clear()
    broker.publish_now(deltas(6, 1))
    assert late.items() == ["3:orderbook_snapshot", *(f"{o}:orderbook_delta" for o in (4, 5, 6))]
    assert early.offsets() == [1, 2, 3, 4, 5, 6]


async def test_first_subscriber_of_a_channel_the_node_never_heard(
    relayed: tuple[MemoryBroker, Relay],
) -> None:
    broker, relay = relayed
    assert relay.hub is not None
    relay.holding = True  # published before this node listened: never delivered here
    broker.publish_now([Outgoing("orderbook/M", book_data("orderbook_snapshot", 1, [], []))])
    broker.publish_now(deltas(2, 2))
    relay.held.clear()
    relay.holding = False
    sub, other = FakeSub(typed_encoder), FakeSub(typed_encoder)
    await join(relay.hub, "orderbook/M", sub)
    await join(relay.hub, "orderbook/M", other)
    broker.publish_now(deltas(4, 1))
    for s in (sub, other):
        assert s.items() == ["3:orderbook_snapshot", "4:orderbook_delta"]


async def test_ahead_subscriber_lost_and_left(relayed: tuple[MemoryBroker, Relay]) -> None:
    broker, relay = relayed
    hub = relay.hub
    assert hub is not None
    broker.publish_now([Outgoing("orderbook/M", book_data("orderbook_snapshot", 1, [], []))])
    await join(hub, "orderbook/M", FakeSub(typed_encoder))
    relay.holding = True
    broker.publish_now(deltas(2, 2))
    sub = FakeSub(typed_encoder)
    await join(hub, "orderbook/M", sub)
    # A lost channel re-snapshots the ahead subscriber too; it is live on the fresh one.
    position = await broker.position("orderbook/M")
    hub.lost("orderbook/M", position)
    for _ in range(3):
        await asyncio.sleep(0)
    relay.held.clear()
    relay.holding = False
    broker.publish_now(deltas(4, 1))
    assert sub.items() == ["3:orderbook_snapshot", "3:orderbook_snapshot", "4:orderbook_delta"]
    # Leaving while ahead leaves nothing behind.
    relay.holding = True
    broker.publish_now(deltas(5, 1))
    gone = FakeSub(typed_encoder)
    await join(hub, "orderbook/M", gone)
    assert hub.subscriber_count("orderbook/M") == 3
    hub.unsubscribe("orderbook/M", gone)
    assert hub.subscriber_count("orderbook/M") == 2
    relay.release()
    assert gone.items() == ["5:orderbook_snapshot"]


# -- latest value on subscribe (PROTOCOL.md section 3, extension) -------------------------


async def test_latest_value_catchup_is_the_last_publication(env: Env) -> None:
    pubs = env.publish("ticker/A", {"n": 1}, {"n": 2}, {"n": 3})
    sub = FakeSub()
    catchup = await env.hub.subscribe("ticker/A", sub, latest=True)
    assert (catchup.pubs, catchup.position, catchup.recovered) == (
        [pubs[-1]],
        pubs[-1].position,
        None,
    )
    env.publish("ticker/A", {"n": 4})  # between the fetch and go_live: once, after it
    assert env.hub.go_live(catchup)
    env.publish("ticker/A", {"n": 5})
    assert sub.offsets() == [3, 4, 5]


async def test_latest_value_without_history_or_with_resume(env: Env) -> None:
    empty = FakeSub()
    catchup = await env.hub.subscribe("ticker/A", empty, latest=True)
    assert (catchup.pubs, catchup.position) == ([], None)
    assert env.hub.go_live(catchup)
    pubs = env.publish("ticker/A", {"n": 1}, {"n": 2})
    # A resume asked for is answered as a resume, never with the latest value.
    resumed, refused = FakeSub(), FakeSub()
    assert await join(env.hub, "ticker/A", resumed, pubs[-1].position) is True
    catchup = await env.hub.subscribe("ticker/A", refused, StreamPosition(1, "old"), latest=True)
    assert (catchup.pubs, catchup.recovered) == ([], False)
    assert env.hub.go_live(catchup)
    env.clock.now += 61_000  # past the history TTL: nothing left to show
    late = FakeSub()
    catchup = await env.hub.subscribe("ticker/A", late, latest=True)
    assert catchup.pubs == []
    env.hub.go_live(catchup)
    env.publish("ticker/A", {"n": 3})
    assert [s.offsets() for s in (empty, resumed, refused, late)] == [[1, 2, 3], [3], [3], [3]]


async def test_latest_value_ahead_of_delivery_is_not_repeated(
    relayed: tuple[MemoryBroker, Relay],
) -> None:
    broker, relay = relayed
    assert relay.hub is not None
    relay.holding = True
    broker.publish_now([Outgoing("ticker/A", {"n": i}) for i in range(2)])
    sub = FakeSub()
    catchup = await relay.hub.subscribe("ticker/A", sub, latest=True)
    assert relay.hub.go_live(catchup)
    assert sub.offsets() == [2]
    relay.release()
    broker.publish_now([Outgoing("ticker/A", {"n": 2})])
    assert sub.offsets() == [2, 3]


# -- figures for the scrape and the admin view (issue 15) --------------------------------


async def test_stats_count_subscribes_resumes_batches_and_channel_events(env: Env) -> None:
    hub, stats = env.hub, env.hub.stats
    a, b, c, d = FakeSub(), FakeSub(), FakeSub(), FakeSub()
    await join(hub, "trade/A", a)
    await join(hub, "user:0xu:order", d)
    assert stats.flush.oldest_ms == 0
    env.publish("trade/A", {"n": 1}, {"n": 2})  # one batch
    assert stats.fanout.count == 1
    assert stats.flush.oldest_ms == T0  # the batch's server time, for the writer's lag
    env.clock.now += 5
    env.publish("trade/A", {"n": 3})
    assert stats.flush.oldest_ms == T0  # the oldest since the writer's last pass stays
    env.publish("trade/Z", {"n": 1})  # nobody here: no fan-out
    assert stats.fanout.count == 2
    epoch = (await env.broker.position("trade/A")).epoch
    assert await join(hub, "trade/A", b, StreamPosition(1, epoch)) is True
    assert await join(hub, "trade/A", c, StreamPosition(1, "gone")) is False
    assert stats.resumes == {True: 1, False: 1}
    assert stats.subscribes == {"trade": 3, "order": 1}
    assert hub.subscriptions_by_kind() == {"trade": 3, "order": 1}
    figures = {f.channel: f for f in hub.channel_figures()}
    assert set(figures) == {"trade/A", "user:0xu:order"}
    assert (figures["trade/A"].subscribers, figures["trade/A"].events) == (3, 3)
    assert figures["user:0xu:order"].events == 0
    assert figures["trade/A"].age >= 0
