"""LocalOrderBook fed a full-speed delta stream, with forced disconnects, on both brokers.

The book the SDK builds must equal the gateway's: every event's checksum is verified
on the way, and at the end the local book equals the producer's model and a fresh
subscriber's snapshot (levels and checksum).
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamgate.client import (
    Backoff,
    BookGap,
    ChecksumMismatch,
    Event,
    LocalOrderBook,
    StreamClient,
    watch_book,
)
from streamgate.server.app import Gateway

from support import UNIT, delta_event, publish_ok, running_gateway, snapshot_event, ws_url
from support.redis_server import REDIS_URL, delete_prefix, ensure_redis

WAIT = 30.0 * UNIT
FAST = Backoff(initial=0.02, maximum=0.1)
MARKET = "0xb00c"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Gateway]:
    if request.param == "memory":
        async with running_gateway(tmp_path) as gw:
            yield gw
        return
    await ensure_redis()
    prefix = f"sgtest:{secrets.token_hex(6)}:"
    try:
        async with running_gateway(
            tmp_path, broker="redis", redis_url=REDIS_URL, redis_prefix=prefix
        ) as gw:
            yield gw
    finally:
        await delete_prefix(prefix)


def levels(side: dict[int, int]) -> list[list[int]]:
    return [[p, s] for p, s in sorted(side.items())]


async def test_local_book_equals_the_gateways_after_forced_disconnects(gateway: Gateway) -> None:
    rng = random.Random(13)
    asks = {1000 + i: 5 for i in range(30)}
    bids = {900 + i: 5 for i in range(30)}
    await publish_ok(gateway, [snapshot_event(MARKET, 1, levels(asks), levels(bids))])
    seq, batches, per_batch = 1, 40, 25
    last = seq + batches * per_batch

    async def produce() -> None:
        nonlocal seq
        for _ in range(batches):
            events = []
            for _ in range(per_batch):
                seq += 1
                side, base = (asks, 1000) if rng.random() < 0.5 else (bids, 900)
                price, size = base + rng.randrange(40), rng.choice([0, 0, 1, 2, 7])
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
                change = [[price, size]]
                a, b = (change, []) if side is asks else ([], change)
                events.append(delta_event(MARKET, seq, a, b))
            await publish_ok(gateway, events)

    client = StreamClient(ws_url(gateway), backoff=FAST)
    await client.connect()
    cuts = 0
    book: LocalOrderBook | None = None
    producer: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(WAIT):
            async for book in watch_book(client, MARKET):
                if producer is None:
                    producer = asyncio.create_task(produce())
                if book.seq in (200, 500, 800) and cuts < 3 and client._ws is not None:
                    cuts += 1
                    client._ws.transport.abort()  # the TCP connection dropped under it
                if book.seq == last:
                    break
        assert producer is not None
        await producer
    finally:
        await client.close()
    assert book is not None and book.seq == last and cuts == 3
    assert book.checked > 0 and book.resyncs == 0  # every event's checksum agreed
    assert (book.ask_sizes, book.bid_sizes) == (asks, bids)

    async with StreamClient(ws_url(gateway)) as fresh:
        await fresh.subscribe(f"orderbook/{MARKET}")
        async with asyncio.timeout(WAIT):
            snap = await aiter(fresh).__anext__()
        assert isinstance(snap, Event) and snap.data["type"] == "orderbook_snapshot"
        assert snap.data["seq"] == last
        assert snap.data["checksum"] == book.checksum()
        assert (snap.data["asks"], snap.data["bids"]) == (levels(asks), levels(bids))


def event(data: dict[str, object], offset: int) -> Event:
    return Event(f"orderbook/{MARKET}", data, offset, "e", data.get("seq"), 0.0, b"")  # type: ignore[arg-type]


async def test_a_gap_or_a_wrong_checksum_resubscribes_for_a_fresh_snapshot(
    gateway: Gateway,
) -> None:
    book = LocalOrderBook(MARKET)
    with pytest.raises(BookGap):
        book.apply(event({"type": "orderbook_delta", "seq": 2, "asks": [], "bids": []}, 1))
    snap = {"type": "orderbook_snapshot", "seq": 5, "asks": [[10, 1]], "bids": [[9, 2]]}
    book.apply(event(snap, 1))
    assert (book.best_bid, book.best_ask, book.spread) == ((9, 2), (10, 1), 1)
    with pytest.raises(ChecksumMismatch):
        book.apply(
            event({"type": "orderbook_delta", "seq": 6, "asks": [], "bids": [], "checksum": 1}, 2)
        )
    assert not book.synced
    # Against the gateway: the snapshot it sends on a resubscribe makes the book whole.
    await publish_ok(gateway, [snapshot_event(MARKET, 1, [[10, 1]], [[9, 2]])])
    async with StreamClient(ws_url(gateway)) as client:
        books = watch_book(client, MARKET)
        got = await anext(books)
        assert got.synced and got.seq == 1 and got.checked == 1
        got.ask_sizes[50] = 1  # a local book gone wrong: the next checksum disagrees
        await publish_ok(gateway, [delta_event(MARKET, 2, [[11, 3]], [])])
        got = await anext(books)  # the fresh snapshot of the resubscription
        assert got.resyncs == 1 and got.seq == 2 and got.synced
        assert got.asks(5) == [(10, 1), (11, 3)] and got.bids(5) == [(9, 2)]
