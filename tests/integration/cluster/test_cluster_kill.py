"""kill -9 of a node: its stream and push clients resume on another node, losing nothing."""

from __future__ import annotations

import asyncio
import signal

import pytest

from streamgate.client.http import HttpClient

from .harness import (
    WAIT,
    Cluster,
    Feed,
    offsets,
    publish_ok,
    stream_feed,
    ticket,
    trade,
    trade_id,
    until,
)
from support import notice

pytestmark = pytest.mark.redis


async def test_clients_of_a_killed_node_resume_on_another_without_loss(cluster: Cluster) -> None:
    a, b, c = await cluster.start("a", "b", "c")
    key = cluster.api_key("acme")
    token = await ticket(b, key, "alice")
    market, total, kill_at = "0xdead", 150, 40
    topic = f"trade/{market}"
    stream = await stream_feed(a, [topic])
    push = await Feed.open(a.ws("/ws"), token)
    await push.connected()
    at_kill = asyncio.Event()

    async def produce() -> None:
        client = HttpClient(b.url, timeout=WAIT)
        try:
            for n in range(1, total + 1):
                events = [trade(market, f"t{n}", n), notice("acme", "alice", f"n{n}")]
                await publish_ok(client, events)
                if n == kill_at:
                    at_kill.set()
                await asyncio.sleep(0.005)
        finally:
            await client.close()

    producer = asyncio.create_task(produce())
    await asyncio.wait_for(at_kill.wait(), WAIT)
    a.proc.popen.send_signal(signal.SIGKILL)
    await asyncio.to_thread(a.proc.popen.wait, WAIT)
    await stream.wait_closed()
    await push.wait_closed()
    assert stream.close_code is None and push.close_code is None  # no goodbye from a dead node
    before = stream.events(topic)
    pushed = push.pushes()
    assert before and pushed, "a delivered nothing before it died"
    assert offsets(before) == list(range(1, len(before) + 1))
    assert offsets(pushed) == list(range(1, len(pushed) + 1))

    last = before[-1]
    resume = {topic: {"offset": last["offset"], "epoch": last["epoch"]}}
    stream2 = await Feed.open(c.ws("/ws/public"))
    ack = await stream2.subscribe([topic], resume=resume)
    assert ack["recovered"] == {topic: True}
    query = f"?offset={pushed[-1]['offset']}&epoch={pushed[-1]['epoch']}"
    push2 = await Feed.open(c.ws("/ws") + query, token)
    assert (await push2.connected())["data"] == {"userId": "alice", "recovered": True}

    await asyncio.wait_for(producer, WAIT)
    await until(lambda: len(before) + len(stream2.events(topic)) >= total, "every trade")
    await until(lambda: len(pushed) + len(push2.pushes()) >= total, "every push")
    await asyncio.sleep(0.1)
    trades = before + stream2.events(topic)
    assert offsets(trades) == list(range(1, total + 1))
    assert [trade_id(e) for e in trades] == [f"t{n}" for n in range(1, total + 1)]
    assert {e["epoch"] for e in trades} == {last["epoch"]}
    pushes = pushed + push2.pushes()
    assert offsets(pushes) == list(range(1, total + 1))
    assert [p["data"]["message"] for p in pushes] == [f"n{n}" for n in range(1, total + 1)]
    assert {p["epoch"] for p in pushes} == {pushed[-1]["epoch"]}
    for feed in (stream2, push2):
        await feed.close()
