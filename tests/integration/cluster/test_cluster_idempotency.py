"""One idempotency window across nodes, and a 503 that a retry with its key publishes."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from .harness import (
    Cluster,
    eventually,
    has_status,
    publish,
    publish_ok,
    stream_feed,
    trade,
    trade_id,
    until,
)
from support.cluster import OwnRedis

pytestmark = pytest.mark.redis


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
        await eventually(lambda: has_status(a, 503), "a unready")
        keyed = trade(market, "keyed", 2, idempotency_key="deposit-7-completed")
        refused = await publish(a, [keyed])
        assert refused.status == 503, refused.body
        assert refused.json()["error"]["code"] == "UNAVAILABLE"
        await admin.config_set("maxclients", 10_000)
    finally:
        await admin.aclose()
    await eventually(lambda: has_status(a, 200), "a ready again")
    retried = await publish_ok(a, [keyed])
    await asyncio.sleep(0.3)
    delivered = [trade_id(e) for e in feed.events(topic)]
    assert (retried, delivered) == ({"accepted": 1, "duplicates": 0}, ["warm", "keyed"])
    await feed.close()
