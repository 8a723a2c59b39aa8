"""Push sockets across nodes: the per-sub-user socket limit and tenant notices span the cluster."""

from __future__ import annotations

import asyncio
import time

import pytest

from .harness import (
    WAIT,
    Cluster,
    Feed,
    publish_ok,
    ticket,
    until,
)
from support import notice

pytestmark = pytest.mark.redis


async def test_push_socket_limit_and_tenant_notices_span_nodes(cluster: Cluster) -> None:
    a, b, c = await cluster.start("a", "b", "c", STREAMGATE_MAX_SOCKETS_PER_SUB_USER="2")
    key = cluster.api_key("acme")
    alice = await ticket(a, key, "alice")
    first = await Feed.open(a.ws("/ws"), alice)
    second = await Feed.open(b.ws("/ws"), alice)
    for feed in (first, second):
        assert (await feed.connected())["data"] == {"userId": "alice"}
    third = await Feed.open(c.ws("/ws"), alice)
    await third.wait_closed()
    assert (third.close_code, third.close_reason) == (4008, "Too many")
    assert not third.messages

    await first.close()
    # The count is released a moment after the close: retry, bounded.
    deadline = time.monotonic() + WAIT
    while True:
        again = await Feed.open(c.ws("/ws"), alice)
        if await again.first_frame():
            break
        assert again.close_code == 4008, (again.close_code, again.close_reason)
        assert time.monotonic() < deadline, "the closed socket was never uncounted"
        await asyncio.sleep(0.1)
    assert (await again.connected())["data"] == {"userId": "alice"}

    bob = await Feed.open(b.ws("/ws"), await ticket(b, key, "bob"))
    carol = await Feed.open(c.ws("/ws"), await ticket(c, key, "carol"))
    for feed in (bob, carol):
        await feed.connected()
    assert await publish_ok(a, [notice("acme", None, "maintenance at noon")]) == {
        "accepted": 1,
        "duplicates": 0,
    }
    everyone = {"alice@b": second, "alice@c": again, "bob@b": bob, "carol@c": carol}
    for who, feed in everyone.items():
        await until(lambda f=feed: bool(f.pushes()), f"the notice for {who}")  # type: ignore[misc]
    await asyncio.sleep(0.1)
    for who, feed in everyone.items():
        [push] = feed.pushes()
        assert push["event"] == "system.notice", who
        assert push["data"] == {"severity": "info", "message": "maintenance at noon"}
        assert push["offset"] == 1, who
        await feed.close()
