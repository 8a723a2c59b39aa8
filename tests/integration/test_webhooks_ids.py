"""One event, one ``webhook-id`` (issue 11 point 2): across retries, races and nodes.

An event with an idempotency key has a message id derived from its tenant and key, and
the outbox skips a message id it holds; a publish that fails writes nothing to the outbox,
so the producer's retry makes the one message of an event without a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from streamgate.client.http import HttpResult
from streamgate.server.app import Gateway
from streamgate.webhooks.signing import keyed_message_id

from support import UNIT, notice, publish, publish_ok, running_gateway
from support.redis_server import delete_prefix
from support.webhook_receiver import Receiver


async def endpoint(gw: Gateway, tenant: str, url: str) -> None:
    """Add an endpoint for ``tenant`` straight in the store (the API is tested elsewhere)."""
    await gw.webhook_store.create_endpoint(tenant, url, None, "whsec_" + "A" * 43)


def keyed(message: str, key: str) -> dict[str, Any]:
    return {**notice("acme", "alice", message), "idempotency_key": key}


def ids_by_message(receiver: Receiver, name: str) -> dict[str, set[str]]:
    """For each event (its ``data.message``), the distinct ``webhook-id`` it came with."""
    ids: dict[str, set[str]] = defaultdict(set)
    for got in receiver.at(name):
        ids[orjson.loads(got.body)["data"]["message"]].add(got.headers["webhook-id"])
    return dict(ids)


async def flushed(gw: Gateway, receiver: Receiver, name: str, marker: str) -> None:
    """Publish ``marker`` and wait for it: with one delivery in flight per endpoint,
    oldest due first, everything enqueued before it has been delivered by then."""
    before = len(receiver.at(name))
    await publish_ok(gw, [notice("acme", "alice", marker)])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10 * UNIT
    while marker not in ids_by_message(receiver, name):
        assert loop.time() < deadline, f"{marker} not delivered ({before} before it)"
        await receiver.wait_for(name, len(receiver.at(name)) + 1, deadline - loop.time())


async def recorded(gw: Gateway, succeeded: int) -> None:
    """Wait until ``succeeded`` deliveries of acme's messages are recorded as such."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5 * UNIT
    while True:
        infos = await gw.webhook_store.messages("acme", since=None, limit=1000)
        if sum(i.succeeded for i in infos) >= succeeded:
            return
        assert loop.time() < deadline, infos
        await asyncio.sleep(0.02)


async def test_a_keyed_event_keeps_its_webhook_id_on_another_node(
    tmp_path: Path, receiver: Receiver
) -> None:
    # Node 1 publishes the event; node 2 (the same outbox, an idempotency store that never
    # saw the key: a retry landing elsewhere, or after the key's window) publishes it again.
    settings: dict[str, Any] = {"webhooks_allow_loopback": 1, "webhooks_per_endpoint": 1}
    async with running_gateway(tmp_path, **settings) as gw:
        await endpoint(gw, "acme", receiver.url("k"))
        await publish_ok(gw, [keyed("deposit seen", "evt-1")])
        [first] = await receiver.wait_for("k", 1, 5 * UNIT)
        await recorded(gw, 1)  # else node 2 rightly delivers it again, with the same id
    assert first.headers["webhook-id"] == keyed_message_id("acme", "evt-1")
    async with running_gateway(tmp_path, **settings) as gw:
        doc = await publish_ok(gw, [keyed("deposit seen", "evt-1")])
        assert doc["accepted"] == 1  # the stream has no memory of it here
        await flushed(gw, receiver, "k", "marker")
    assert ids_by_message(receiver, "k")["deposit seen"] == {first.headers["webhook-id"]}
    assert len(receiver.at("k")) == 2  # the event once, the marker once


async def test_the_same_keyed_batch_racing_makes_one_message_per_event(
    tmp_path: Path, receiver: Receiver
) -> None:
    events = [keyed(f"e{i}", f"key-{i}") for i in range(40)]
    async with running_gateway(tmp_path, webhooks_allow_loopback=1, webhooks_per_endpoint=1) as gw:
        await endpoint(gw, "acme", receiver.url("race"))
        results = await asyncio.gather(*(publish(gw, events) for _ in range(4)))
        assert [r.status for r in results] == [200] * 4, [r.body for r in results]
        assert sum(r.json()["accepted"] for r in results) == 40
        await flushed(gw, receiver, "race", "marker")
    ids = ids_by_message(receiver, "race")
    assert {m: len(v) for m, v in ids.items() if len(v) != 1} == {}
    assert set(ids) == {f"e{i}" for i in range(40)} | {"marker"}
    assert len(receiver.at("race")) == 41


# -- a publish that fails: Redis down between the outbox and the broker --------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OwnRedis:
    """A redis-server of this test's own on 127.0.0.1, stopped and started by its PID."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10 * UNIT
        while not await self._answering():
            assert self.proc.returncode is None, "redis-server exited"
            assert loop.time() < deadline, "redis-server did not answer"
            await asyncio.sleep(0.05)

    async def _answering(self) -> bool:
        client = Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            return bool(await client.ping())
        except (OSError, RedisError):
            return False
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
async def own_redis() -> AsyncIterator[OwnRedis]:
    redis = OwnRedis()
    await redis.start()
    try:
        yield redis
    finally:
        with contextlib.suppress(Exception):
            await delete_prefix("sg-ids:", redis.url)
        await redis.stop()


async def publish_until_ok(gw: Gateway, events: list[dict[str, Any]]) -> list[HttpResult]:
    """Publish as a producer does: retry 503s (bounded); every answer, the 200 last."""
    answers: list[HttpResult] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15 * UNIT
    while loop.time() < deadline:
        answers.append(await publish(gw, events))
        if answers[-1].status == 200:
            return answers
        assert answers[-1].status == 503, answers[-1].body
        await asyncio.sleep(0.1)
    raise AssertionError(f"never published: {[a.status for a in answers]}")


@pytest.mark.redis
async def test_a_failed_publish_leaves_nothing_its_retry_duplicates(
    tmp_path: Path, receiver: Receiver, own_redis: OwnRedis
) -> None:
    async with running_gateway(
        tmp_path,
        broker="redis",
        redis_url=own_redis.url,
        redis_prefix="sg-ids:",
        webhooks_allow_loopback=1,
        webhooks_per_endpoint=1,
    ) as gw:
        await endpoint(gw, "acme", receiver.url("f"))
        await own_redis.stop()
        failed = await publish(gw, [notice("acme", "alice", "no key")])
        assert failed.status == 503, failed.body
        await own_redis.start()
        answers = await publish_until_ok(gw, [notice("acme", "alice", "no key")])
        await flushed(gw, receiver, "f", "marker")
    assert answers[-1].json()["accepted"] == 1
    assert len(ids_by_message(receiver, "f")["no key"]) == 1
    assert len(receiver.at("f")) == 2  # the event once, the marker once
