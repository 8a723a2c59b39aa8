"""Redis restarts mid-stream, or the nodes lose their pub/sub connections: never a silent gap."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from .follower import Followed
from .harness import (
    Cluster,
    eventually,
    has_status,
    publish,
    trade,
    trade_id,
    until,
)
from support.cluster import OwnRedis

pytestmark = pytest.mark.redis


async def test_a_redis_restart_never_leaves_a_silent_gap(
    cluster: Cluster, own_redis: OwnRedis
) -> None:
    market = "0xr3d"
    f = await Followed.start(cluster, own_redis, market)
    a, b, follower, producer, producing = f.a, f.b, f.follower, f.producer, f.producing

    await own_redis.stop()
    for node in (a, b):
        await eventually(lambda n=node: has_status(n, 503), f"{node.proc.name} unready")  # type: ignore[misc]
    refused = await publish(b, [trade(market, "while-down", 0)])
    assert refused.status == 503 and refused.json()["error"]["code"] == "UNAVAILABLE"
    assert refused.headers.get("retry-after") == "1"
    await asyncio.sleep(0.3)
    accepted_before = len(producer.accepted)
    await own_redis.start()
    for node in (a, b):
        await eventually(lambda n=node: has_status(n, 200), f"{node.proc.name} ready again")  # type: ignore[misc]
    # The follower is told (1012) once its node recovered, and resubscribes. What b
    # published in between is gone for it (it is told: recovered false); what b publishes
    # after its resubscribe must reach it, so publishing goes on past that point.
    await until(lambda: len(follower.recovered) >= 2 or producing.done(), "the resubscribe")
    resubscribed_at = len(producer.accepted)
    await until(
        lambda: (
            len(producer.accepted) >= max(accepted_before, resubscribed_at) + 30 or producing.done()
        ),
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
        await eventually(lambda n=node: has_status(n, 200), f"{node.proc.name} ready again")  # type: ignore[misc]
    await until(lambda: len(producer.accepted) >= accepted_before + 30, "publishing again")
    await f.finish()
    # Continuity was proven from the history: one socket, one epoch, every offset.
    assert (follower.violations, follower.closes, follower.recovered) == ([], [], [{}])
    assert len({e["epoch"] for e in follower.of(f.trades)}) == 1
    assert [trade_id(e) for e in follower.of(f.trades)] == producer.accepted
