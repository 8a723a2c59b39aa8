"""The SDK's producer against a real gateway, through a real TCP proxy that loses answers.

Each lost answer is a batch the gateway published but the producer never heard of: the
retry (same idempotency keys) must be counted as duplicates, so every event is delivered
once. A refusal (4xx) is never retried and names the event of the whole call.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streamgate.client import Producer, PublishError, PublishUnavailable, SyncProducer
from streamgate.client.backoff import Backoff
from streamgate.server.app import Gateway

from support import PRODUCER_KEY, UNIT, running_gateway, topic_history, trade_event
from support.cluster import OwnRedis, Procs, free_port, until
from support.proxy import DroppingProxy

FAST = Backoff(initial=0.01, maximum=0.05)


@pytest.fixture
async def proxy(gw: Gateway) -> AsyncIterator[DroppingProxy]:
    p = await DroppingProxy(gw.port).start()
    try:
        yield p
    finally:
        await p.stop()


def trades(market: str, n: int) -> list[dict[str, Any]]:
    return [trade_event(market, seq) for seq in range(1, n + 1)]


async def test_lost_answers_are_retried_and_every_event_is_delivered_once(
    gw: Gateway, proxy: DroppingProxy
) -> None:
    market = "0x" + "a1" * 32
    proxy.drop_answers = 3  # the first three batches' answers never reach the producer
    async with Producer(proxy.url, PRODUCER_KEY, backoff=FAST, timeout=10 * UNIT) as producer:
        result = await producer.publish(*trades(market, 2500))
    assert proxy.dropped == 3
    assert result.retries == 3 and result.batches == 3
    # The first batch was published, then its answer lost three times: its fourth
    # attempt is answered, all duplicates; the next two batches go through.
    assert (result.accepted, result.duplicates) == (1500, 1000)
    offset, events = await topic_history(gw, f"trade/{market}")
    assert offset == 2500  # one offset per event: nothing published twice
    ids = [e["data"]["trades"][0]["id"] for e in events]
    assert ids == [f"t{seq}" for seq in range(2401, 2501)]


async def test_the_sync_producer_retries_the_same_way(gw: Gateway, proxy: DroppingProxy) -> None:
    market = "0x" + "b2" * 32
    proxy.drop_answers = 1
    events = trades(market, 40)

    def run() -> tuple[int, int, int]:
        with SyncProducer(proxy.url, PRODUCER_KEY, max_batch=25, backoff=FAST) as producer:
            result = producer.publish(*events)
            return result.accepted, result.duplicates, result.retries

    assert await asyncio.to_thread(run) == (15, 25, 1)
    assert "idempotency_key" not in events[0]  # the caller's events are left as they were
    offset, _ = await topic_history(gw, f"trade/{market}")
    assert offset == 40


async def test_a_given_idempotency_key_is_kept(gw: Gateway, proxy: DroppingProxy) -> None:
    market = "0x" + "c3" * 32
    once = trade_event(market, 1, idempotency_key="order-7-filled")
    async with Producer(proxy.url, PRODUCER_KEY, backoff=FAST) as producer:
        first = await producer.publish(once)
        again = await producer.publish(once)
    assert (first.accepted, again.accepted, again.duplicates) == (1, 0, 1)
    assert (await topic_history(gw, f"trade/{market}"))[0] == 1


async def test_a_refusal_is_not_retried_and_names_the_event_of_the_call(
    gw: Gateway, proxy: DroppingProxy
) -> None:
    market = "0x" + "d4" * 32
    events = trades(market, 1600)
    events[1500]["data"]["trades"][0]["side"] = "sideways"
    async with Producer(proxy.url, PRODUCER_KEY, backoff=FAST) as producer:
        with pytest.raises(PublishError) as refused:
            await producer.publish(*events)
    error = refused.value
    assert not isinstance(error, PublishUnavailable)
    assert (error.status, error.code, error.index) == (400, "INVALID_EVENT", 1500)
    assert error.field is not None and "side" in error.field
    assert error.published == 1000  # the first batch went; the refused one did not
    assert proxy.statuses == [200, 400]  # one attempt at the refused batch, no retry
    assert (await topic_history(gw, f"trade/{market}"))[0] == 1000


async def test_a_wrong_key_is_refused_once(gw: Gateway, proxy: DroppingProxy) -> None:
    async with Producer(proxy.url, "not-the-key", backoff=FAST) as producer:
        with pytest.raises(PublishError) as refused:
            await producer.publish(trade_event("0x" + "e5" * 32, 1))
    assert refused.value.status == 401
    assert proxy.statuses == [401]


async def test_no_gateway_raises_unavailable_after_the_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with Producer(url, PRODUCER_KEY, retries=2, backoff=FAST) as producer:
        with pytest.raises(PublishUnavailable) as failed:
            await producer.publish(trade_event("0x" + "f6" * 32, 1))
    assert (failed.value.status, failed.value.code) == (0, "CONNECTION")


@pytest.mark.redis
async def test_503_is_retried_after_its_retry_after_and_delivers_once(
    tmp_path: Path, procs: Procs
) -> None:
    """Redis stops: the gateway answers 503 with ``Retry-After: 1``; Redis comes back (empty,
    no persistence); the producer's retries, a second apart whatever its backoff, publish."""
    redis = OwnRedis(procs)
    await redis.start()
    settings = {"broker": "redis", "redis_url": redis.url, "redis_timeout": 1.0}
    async with running_gateway(tmp_path, **settings) as gw:
        proxy = await DroppingProxy(gw.port).start()
        try:
            market = "0x" + "a7" * 32
            async with Producer(proxy.url, PRODUCER_KEY, retries=60, backoff=FAST) as producer:
                await redis.stop()
                task = asyncio.create_task(producer.publish(*trades(market, 30)))
                await until(lambda: proxy.statuses.count(503) >= 3, "three 503 answers")
                await redis.start()
                result = await asyncio.wait_for(task, 60 * UNIT)
            assert result.accepted == 30 and result.retries >= 3
            assert proxy.statuses[-1] == 200 and set(proxy.statuses[:-1]) == {503}
            refused = [at for at, status in proxy.answered if status == 503]
            gaps = [b - a for a, b in itertools.pairwise(refused)]
            assert min(gaps) >= 0.9, gaps  # Retry-After: 1, not the 10-50 ms backoff
            offset, events = await topic_history(gw, f"trade/{market}")
            assert offset == 30  # a fresh Redis: one offset per event, none twice
            assert [e["data"]["trades"][0]["id"] for e in events] == [f"t{n}" for n in range(1, 31)]
        finally:
            await proxy.stop()
