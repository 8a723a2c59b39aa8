"""One order book across nodes: continuous deltas, one snapshot, one seq rule."""

from __future__ import annotations

import asyncio
import random

import pytest

from streamgate.client import LocalOrderBook
from streamgate.client.frames import parse_event
from streamgate.client.http import HttpClient
from streamgate.core.books import book_checksum

from .harness import (
    WAIT,
    Cluster,
    Levels,
    book_event,
    book_seq,
    check_book_stream,
    publish,
    publish_ok,
    random_delta,
    stream_feed,
    until,
)

pytestmark = pytest.mark.redis


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
    # The book checksum (protocol-notes): every event a delivered verifies against the
    # SDK's local book, and c's snapshot carries the checksum a's last delta carried.
    local = LocalOrderBook(market)
    for event in events:
        local.apply(parse_event(event, b""))
    assert local.checked == len(events)
    expected = book_checksum(book[1], book[0])
    assert snap["data"]["checksum"] == events[-1]["data"]["checksum"] == expected

    # The book is cluster-wide: a gap is refused by any node, the right seq taken by any.
    for node, seq in ((c, last + 2), (a, last)):
        refused = await publish(node, [book_event(market, "delta", seq, {1000: 1}, {})])
        assert refused.status == 409, refused.body
        assert refused.json()["error"]["code"] == "SEQ_GAP"
    await publish_ok(a, [book_event(market, "delta", last + 1, {1000: 0}, {})])
    for f in (feed, fresh):
        await until(lambda f=f: book_seq(f, topic) == last + 1, "the last delta")  # type: ignore[misc]
        await f.close()
