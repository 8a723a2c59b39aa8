"""Three nodes deliver one order, with the same offsets and epoch, to every client."""

from __future__ import annotations

import asyncio

import pytest

from streamgate.client.http import HttpClient

from .harness import (
    WAIT,
    Cluster,
    offsets,
    publish_ok,
    stream_feed,
    trade,
    trade_id,
    until,
)
from support.cluster import Node

pytestmark = pytest.mark.redis


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
