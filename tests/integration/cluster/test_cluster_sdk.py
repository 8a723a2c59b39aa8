"""The SDK across a cluster: a StreamClient survives kill -9 of its node, every event once."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from streamgate.client import Backoff, Event, Reconnected, StreamClient

from .harness import WAIT, Cluster, publish_ok, trade

pytestmark = pytest.mark.redis


async def test_stream_client_resumes_on_another_node_after_kill_9(cluster: Cluster) -> None:
    a, b = await cluster.start("a", "b")
    market, total, kill_at = "0x5d1c", 120, 30
    topic = f"trade/{market}"
    client = StreamClient([a.ws(), b.ws()], backoff=Backoff(initial=0.05, maximum=0.3))
    await client.connect()
    await client.subscribe(topic)
    seqs: list[int] = []
    reconnects: list[Reconnected] = []
    killed = asyncio.Event()

    async def produce() -> None:
        for n in range(1, total + 1):
            await publish_ok(b, [trade(market, f"t{n}", n)])
            if n == kill_at:
                await killed.wait()  # the rest is published while a is dead

    producer = asyncio.create_task(produce())
    try:
        async with asyncio.timeout(WAIT * 3):
            async for item in client:
                if isinstance(item, Reconnected):
                    reconnects.append(item)
                if not isinstance(item, Event):
                    continue
                assert item.seq is not None
                seqs.append(item.seq)
                if item.seq == kill_at - 10 and not killed.is_set():
                    os.kill(a.proc.popen.pid, signal.SIGKILL)
                    killed.set()
                if len(seqs) >= total or seqs[-1] == total:
                    break
        await producer
    finally:
        producer.cancel()
        await client.close()
    assert seqs == list(range(1, total + 1))  # every event once, in order
    assert reconnects and reconnects[0].recovered and reconnects[0].not_recovered == ()
    assert client.url == b.ws()
