"""A slow consumer made on purpose: subscribes, never reads, and is cut with 4009."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from streamgate.server.app import Gateway

from support import RawClient, ws_url
from support.cluster import until
from support.events import trade_event

Publish = Callable[[list[dict[str, Any]]], Awaitable[object]]


async def cut_slow_consumer(gw: Gateway, publish: Publish, market: str = "0xslow") -> RawClient:
    """Subscribe a client with a tiny receive buffer to ``trade/<market>`` that never
    reads, and publish batches of 1 KB trades through ``publish`` until ``gw`` cuts it
    (at most 3,000 trades). Returns the client, not closed: its frames are the caller's.
    """
    slow = await RawClient.connect(ws_url(gw), rcvbuf=4096)
    topic = f"trade/{market}"
    slow.send_text({"op": "subscribe", "args": [topic], "req_id": "slow"})
    await until(lambda: gw.hub.subscriber_count(topic) == 1, "slow subscribed")
    cuts, seq = gw.sockets.slow_consumers, 0
    while gw.sockets.slow_consumers == cuts:
        assert seq < 3000, "the slow consumer was never cut"
        batch = []
        for _ in range(50):
            seq += 1
            event = trade_event(market, seq)
            event["data"]["trades"][0]["id"] = "x" * 1000 + str(seq)
            batch.append(event)
        await publish(batch)
    return slow
