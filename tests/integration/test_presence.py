"""Presence of push sockets: per-member limits and members, in memory and on Redis.

The shared tests run on MemoryPresence and on RedisPresence (marker ``redis``, a real
Redis on loopback, found and started as in test_broker_contract). Each Redis test gets
a key prefix of its own and deletes its keys afterwards; the shared Redis itself is
never restarted or flushed. Then Redis-only tests: two nodes sharing limits, a node
that stops heartbeating, keys lost as in a restart, and an unreachable Redis.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from streamgate.brokers.presence import Presence
from streamgate.brokers.presence_memory import MemoryPresence
from streamgate.brokers.presence_redis import RedisPresence
from streamgate.errors import BrokerUnavailable

from support.redis_server import REDIS_URL, delete_prefix, ensure_redis

GROUP = "push:acme:"
ALICE = "push:acme:alice"
BOB = "push:acme:bob"
SHORT_TTL = 0.3  # seconds: a heartbeat every 0.1 s
LONG_TTL = 10.0  # a node that must stay alive through the test
WAIT = 5.0  # seconds a bounded poll may take before the test fails


@dataclass
class Backend:
    """Makes presence nodes of one kind; Redis ones share this test's prefix."""

    kind: str
    prefix: str
    opened: list[Presence] = field(default_factory=list)

    async def node(self, name: str = "a", *, ttl: float = LONG_TTL) -> Presence:
        presence: Presence
        if self.kind == "memory":
            presence = MemoryPresence()
            await presence.start()
            self.opened.append(presence)
            return presence
        return await self.redis(name, ttl=ttl)

    async def redis(
        self, name: str, *, ttl: float = LONG_TTL, url: str = REDIS_URL
    ) -> RedisPresence:
        presence = RedisPresence(url, prefix=self.prefix, node=name, ttl=ttl)
        await presence.start()
        self.opened.append(presence)
        return presence

    async def close(self) -> None:
        for presence in reversed(self.opened):
            await presence.close()


def _prefix() -> str:
    return f"sgtest:presence:{secrets.token_hex(6)}:"


async def _keys(prefix: str) -> list[bytes]:
    client = Redis.from_url(REDIS_URL)
    try:
        return [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    kind: str = request.param
    if kind == "redis":
        await ensure_redis()
    b = Backend(kind, _prefix())
    try:
        yield b
    finally:
        await b.close()
        if kind == "redis":
            await delete_prefix(b.prefix)


@pytest.fixture
async def redis_backend() -> AsyncIterator[Backend]:
    await ensure_redis()
    b = Backend("redis", _prefix())
    try:
        yield b
    finally:
        await b.close()
        await delete_prefix(b.prefix)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds, for at most WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while not await check():
        assert time.monotonic() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.02)


# -- both backends -------------------------------------------------------------------


async def test_limit_is_enforced_per_member(backend: Backend) -> None:
    node = await backend.node()
    assert await node.members(GROUP) == []
    assert [await node.acquire(GROUP, ALICE, 2) for _ in range(3)] == [True, True, False]
    assert await node.acquire(GROUP, BOB, 2)  # another member has a limit of its own
    assert await node.members(GROUP) == [ALICE, BOB]
    assert await node.members("push:other:") == []
    await node.release(GROUP, ALICE)
    assert await node.acquire(GROUP, ALICE, 2)
    assert not await node.acquire(GROUP, ALICE, 2)
    await node.release(GROUP, BOB)
    assert await node.members(GROUP) == [ALICE]
    await node.release(GROUP, ALICE)
    await node.release(GROUP, ALICE)
    assert await node.members(GROUP) == []
    assert not await node.acquire(GROUP, ALICE, 0)
    assert await node.members(GROUP) == []


async def test_release_of_a_member_never_acquired_does_nothing(backend: Backend) -> None:
    node = await backend.node()
    await node.release(GROUP, ALICE)
    await node.release("push:other:", ALICE)
    assert await node.members(GROUP) == []
    assert await node.acquire(GROUP, ALICE, 1)
    await node.release(GROUP, BOB)
    await node.release("push:other:", ALICE)
    assert await node.members(GROUP) == [ALICE]
    assert not await node.acquire(GROUP, ALICE, 1)
    await node.release(GROUP, ALICE)
    await node.release(GROUP, ALICE)  # once more than acquired: nothing
    assert await node.acquire(GROUP, ALICE, 1)


async def test_close_forgets_the_nodes_sockets(backend: Backend) -> None:
    node = await backend.node("a")
    assert await node.acquire(GROUP, ALICE, 1)
    await node.close()
    other = await backend.node("b")
    assert await other.members(GROUP) == []
    assert await other.acquire(GROUP, ALICE, 1)


# -- Redis: several nodes ------------------------------------------------------------


@pytest.mark.redis
async def test_two_nodes_share_the_limit_and_see_the_members(redis_backend: Backend) -> None:
    a = await redis_backend.redis("a")
    b = await redis_backend.redis("b")
    assert await a.acquire(GROUP, ALICE, 2)
    assert await b.acquire(GROUP, ALICE, 2)
    assert not await a.acquire(GROUP, ALICE, 2)
    assert not await b.acquire(GROUP, ALICE, 2)
    assert await b.acquire(GROUP, BOB, 2)
    assert await a.members(GROUP) == [ALICE, BOB]
    assert await b.members(GROUP) == [ALICE, BOB]
    await b.release(GROUP, ALICE)
    assert await a.acquire(GROUP, ALICE, 2)  # A now holds both
    assert not await b.acquire(GROUP, ALICE, 2)
    await b.release(GROUP, ALICE)  # B holds none of alice's: nothing
    assert not await a.acquire(GROUP, ALICE, 2)
    await b.release(GROUP, BOB)
    assert await a.members(GROUP) == [ALICE]
    await a.release(GROUP, ALICE)
    await a.release(GROUP, ALICE)
    assert await b.members(GROUP) == []
    assert await _keys(f"{redis_backend.prefix}pres:") == []  # emptied hashes are gone


@pytest.mark.redis
async def test_concurrent_acquires_on_two_nodes_never_exceed_the_limit(
    redis_backend: Backend,
) -> None:
    a = await redis_backend.redis("a")
    b = await redis_backend.redis("b")
    got = await asyncio.gather(*(n.acquire(GROUP, ALICE, 5) for n in (a, b) * 20))
    assert sum(got) == 5
    assert not await a.acquire(GROUP, ALICE, 5)


@pytest.mark.redis
async def test_a_node_that_stops_heartbeating_stops_counting(redis_backend: Backend) -> None:
    a = await redis_backend.redis("a", ttl=SHORT_TTL)
    b = await redis_backend.redis("b")
    assert await a.acquire(GROUP, ALICE, 2)
    assert await a.acquire(GROUP, ALICE, 2)
    assert not await b.acquire(GROUP, ALICE, 2)
    await asyncio.sleep(SHORT_TTL * 2)  # a beating node outlives its ttl
    assert await b.members(GROUP) == [ALICE]
    assert a._beat is not None
    a._beat.cancel()  # a node frozen or gone without close()
    started = time.monotonic()

    async def alice_gone() -> bool:
        return await b.members(GROUP) == []

    await until(alice_gone, "alice, held by a dead node only, leaves members")
    assert time.monotonic() - started < SHORT_TTL + 1.0
    assert await b.acquire(GROUP, ALICE, 2)
    assert await b.acquire(GROUP, ALICE, 2)
    assert not await b.acquire(GROUP, ALICE, 2)
    client = Redis.from_url(REDIS_URL)
    try:
        hashes = await _keys(f"{redis_backend.prefix}pres:")
        assert len(hashes) == 1
        assert await client.hgetall(hashes[0]) == {b"b": b"2"}  # the dead field was cleaned
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_lost_keys_are_written_back_by_the_heartbeat(redis_backend: Backend) -> None:
    a = await redis_backend.redis("a", ttl=SHORT_TTL)
    b = await redis_backend.redis("b", ttl=SHORT_TTL)
    assert await a.acquire(GROUP, ALICE, 3)
    assert await a.acquire(GROUP, ALICE, 3)
    assert await b.acquire(GROUP, BOB, 3)
    await delete_prefix(redis_backend.prefix)  # as a Redis restart without persistence
    assert await _keys(redis_backend.prefix) == []

    async def healed() -> bool:
        return len(await _keys(f"{redis_backend.prefix}node:")) == 2

    await until(healed, "both liveness keys are back")
    assert await a.members(GROUP) == [ALICE, BOB]
    assert await b.acquire(GROUP, ALICE, 3)  # a's two sockets count again
    assert not await b.acquire(GROUP, ALICE, 3)
    assert not await a.acquire(GROUP, ALICE, 3)
    assert not await a.acquire(GROUP, BOB, 1)


@pytest.mark.redis
async def test_a_cancelled_acquire_is_undone(redis_backend: Backend) -> None:
    a = await redis_backend.redis("a", ttl=SHORT_TTL)
    b = await redis_backend.redis("b")
    task = asyncio.create_task(a.acquire(GROUP, ALICE, 1))
    await asyncio.sleep(0)  # the script is under way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(asyncio.gather(*a._ops), WAIT)  # the script ran to its end
    assert a._counts == {}  # undone here; Redis is corrected by the next heartbeat

    async def freed() -> bool:
        return await b.members(GROUP) == [] and await b.acquire(GROUP, ALICE, 1)

    await until(freed, "the cancelled acquire is written back as none")


# -- Redis unreachable ---------------------------------------------------------------


async def test_unreachable_redis_raises_and_the_heartbeat_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = Backend("redis", _prefix())
    try:
        node = await backend.redis("down", ttl=SHORT_TTL, url="redis://127.0.0.1:1/0")
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await node.acquire(GROUP, ALICE, 1)
        with pytest.raises(BrokerUnavailable):
            await node.members(GROUP)
        await node.release(GROUP, ALICE)  # holds none: nothing, not even Redis
        assert time.monotonic() - started < 1.0
        await asyncio.sleep(SHORT_TTL * 2)  # several failed heartbeats
        assert node._beat is not None
        assert not node._beat.done()
        assert any("heartbeat failed" in r.getMessage() for r in caplog.records)
    finally:
        await backend.close()  # best effort: no error either
