"""Short webhook leases, renewed while in flight (issue 11 point 3).

Two dispatchers ("nodes") on one SQLite outbox and a real receiver: a slow attempt keeps
its delivery though it outlasts the lease several times over, and a dispatcher that dies
mid-attempt loses the delivery to the other within about one lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from streamgate.webhooks.sender import Dispatcher
from streamgate.webhooks.store import OutboxMessage, SqliteWebhookStore, WebhookStore

from support import UNIT
from support.webhook_receiver import Receiver

LEASE = 0.6  # seconds; the slow attempt takes 2 s, the attempt timeout is 5 s


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[WebhookStore]:
    opened = SqliteWebhookStore.in_data_dir(tmp_path)
    yield opened
    await opened.close()


def dispatcher(store: WebhookStore, node: str) -> Dispatcher:
    return Dispatcher(store, node=node, allow_private=True, lease=LEASE, timeout=5.0, poll=0.05)


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def enqueue(store: WebhookStore, endpoint_id: str, n: int) -> None:
    body = b'{"n":%d}' % n
    await store.enqueue(
        [OutboxMessage(f"msg_{n}", "acme", "system.notice", 0.0, body, (endpoint_id,))]
    )


async def succeeded(store: WebhookStore, count: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10 * UNIT
    while sum(m.succeeded for m in await store.messages("acme", since=None, limit=10)) < count:
        assert loop.time() < deadline, "not recorded"
        await asyncio.sleep(0.02)


async def test_a_slow_attempt_keeps_its_lease_and_a_dead_nodes_resumes_soon(
    store: WebhookStore, receiver: Receiver
) -> None:
    # n 0: slower than three leases; n 1: the attempt node a dies in; then at once.
    delays = {0: 2.0, 1: 3.0}
    receiver.script = lambda path, n: (200, {}, delays.get(n, 0.0))
    ep = await store.create_endpoint("acme", receiver.url("l"), None, "whsec_" + "A" * 43)
    await enqueue(store, ep.id, 0)
    a = asyncio.create_task(dispatcher(store, "a").run())
    b: asyncio.Task[None] | None = None
    try:
        await receiver.wait_for("l", 1, 5 * UNIT)  # a holds it now
        b = asyncio.create_task(dispatcher(store, "b").run())
        await succeeded(store, 1)
        # a renewed its lease every LEASE / 3: b never took the delivery meanwhile.
        assert len(receiver.at("l")) == 1
        [attempt] = await store.attempts("acme", "msg_0")
        assert attempt.status_code == 200

        await stop(b)
        await enqueue(store, ep.id, 1)
        await receiver.wait_for("l", 2, 5 * UNIT)  # a's attempt, hanging for 3 s
        await stop(a)  # a dies mid-attempt: its lease is no longer renewed
        b = asyncio.create_task(dispatcher(store, "b").run())
        # b takes over once the lease lapses, long before a's attempt would have ended.
        got = await receiver.wait_for("l", 3, 2.0 * UNIT)
        assert got[2].headers["webhook-id"] == got[1].headers["webhook-id"] == "msg_1"
        await succeeded(store, 2)
    finally:
        for task in (a, b):
            if task is not None:
                await stop(task)
