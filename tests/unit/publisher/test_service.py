"""The publishing service without HTTP: memory broker, memory idempotency, memory presence
and the real webhook outbox over SQLite in a temporary directory.

A gate on presence (``Gate``) holds a publish between its claim and its broker publish,
where the tenant-wide expansion asks who is connected: that is where races, a
cancellation and a drain meet a publish in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamgate.brokers.idempotency_memory import MemoryIdempotency
from streamgate.brokers.memory import MemoryBroker
from streamgate.brokers.presence_memory import MemoryPresence
from streamgate.config import MarketConfig
from streamgate.core.channels import push_channel, push_tenant_prefix
from streamgate.errors import NodeDraining, OutboxUnavailable, ProducerRefusal
from streamgate.hub.hub import Hub
from streamgate.publisher import MarketDirectory, Publisher, PublishResult, PushOutbox
from streamgate.webhooks.model import WebhookStore
from streamgate.webhooks.outbox import Outbox, PushEvent
from streamgate.webhooks.store import open_store

from support import UNIT, delta_event, notice, snapshot_event, trade_event

TENANT = "acme"
MARKET = "BTC-PERP"
NOW_MS = 1_700_000_000_000


def body(*events: dict[str, Any]) -> bytes:
    return orjson.dumps({"events": list(events)})


def deposit(sub_user: str, key: str | None = None) -> dict[str, Any]:
    data = {
        "fundingId": "fund_1",
        "status": "pending",
        "transfer": {"txHash": "0x" + "ab" * 32, "amount": "25.50", "chain": "ETH"},
    }
    event: dict[str, Any] = {
        "event": "deposit.transfer",
        "tenant": TENANT,
        "sub_user": sub_user,
        "data": data,
    }
    if key is not None:
        event["idempotency_key"] = key
    return event


class Gate:
    """Presence whose ``members`` waits at a gate while it is closed."""

    def __init__(self, presence: MemoryPresence) -> None:
        self.presence = presence
        self.opened = asyncio.Event()
        self.opened.set()
        self.reached = asyncio.Event()

    def close(self) -> None:
        self.opened.clear()
        self.reached.clear()

    async def members(self, group: str) -> list[str]:
        self.reached.set()
        await self.opened.wait()
        return await self.presence.members(group)


class Watched:
    """The real outbox, noting what the broker held of each push channel when it was called."""

    def __init__(self, outbox: Outbox, broker: MemoryBroker) -> None:
        self.outbox = outbox
        self.broker = broker
        self.calls: list[list[tuple[PushEvent, int]]] = []

    async def enqueue_push(self, events: Sequence[PushEvent]) -> int:
        held = [(e, len(await self.broker.latest(e.channel, 100))) for e in events]
        self.calls.append(held)
        return await self.outbox.enqueue_push(events)


@dataclass
class Env:
    broker: MemoryBroker
    idempotency: MemoryIdempotency
    presence: MemoryPresence
    gate: Gate
    store: WebhookStore
    outbox: Watched
    markets: MarketDirectory
    publisher: Publisher

    def node(self, outbox: PushOutbox | None) -> Publisher:
        """Another node's publisher on the same broker, keys and presence."""
        return Publisher(
            broker=self.broker,
            idempotency=self.idempotency,
            markets=MarketDirectory(()),
            connected=self.presence.members,
            outbox=outbox,
        )

    async def publish(self, *events: dict[str, Any]) -> PublishResult:
        return await self.publisher.publish(body(*events), now_ms=NOW_MS)

    async def held(self, channel: str) -> list[Any]:
        return [p.data for p in await self.broker.latest(channel, 100)]

    async def messages(self) -> list[dict[str, Any]]:
        infos = await self.store.messages(TENANT, since=None, limit=100)
        return [orjson.loads(m.body) for m in sorted(infos, key=lambda m: m.created_at)]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    broker = MemoryBroker(history_size=100, history_ttl=60)
    await broker.start(Hub(broker))
    idempotency = MemoryIdempotency(window=60, max_keys=1000)
    presence = MemoryPresence()
    gate = Gate(presence)
    store = open_store(tmp_path, None)
    await store.create_endpoint(TENANT, "https://hooks.example/in", None, "whsec_test")
    outbox = Watched(Outbox(store), broker)
    markets = MarketDirectory((MarketConfig("ETH-PERP", "ETH-PERP"),))
    publisher = Publisher(
        broker=broker,
        idempotency=idempotency,
        markets=markets,
        connected=gate.members,
        outbox=outbox,
    )
    yield Env(broker, idempotency, presence, gate, store, outbox, markets, publisher)
    gate.opened.set()
    await store.close()
    await broker.close()


async def started(env: Env, *events: dict[str, Any]) -> asyncio.Task[PublishResult]:
    """A publish held at the gate, its keys claimed."""
    env.gate.close()
    task = asyncio.create_task(env.publish(*events))
    await asyncio.wait_for(env.gate.reached.wait(), 5 * UNIT)
    return task


# -- duplicates ------------------------------------------------------------------------


async def test_a_repeated_key_is_answered_as_a_duplicate_and_not_published_again(
    env: Env,
) -> None:
    keyed = trade_event(MARKET, 1, idempotency_key="k1")
    first = await env.publish(keyed, keyed, trade_event(MARKET, 2))
    assert first == PublishResult(accepted=2, duplicates=1)  # the second k1: in the batch
    again = await env.publish(keyed, trade_event(MARKET, 3))
    assert again == PublishResult(accepted=1, duplicates=1)
    assert [d["seq"] for d in await env.held(f"trade/{MARKET}")] == [1, 2, 3]


async def test_a_key_claimed_by_a_publish_in_flight_is_a_duplicate_elsewhere(env: Env) -> None:
    keyed = deposit("alice", key="d1")
    held = await started(env, notice(TENANT, None, "hello"), keyed)  # d1 claimed, not out
    other = await env.node(env.outbox).publish(body(keyed), now_ms=NOW_MS)
    assert other == PublishResult(accepted=0, duplicates=1)
    env.gate.opened.set()
    assert (await held) == PublishResult(accepted=2, duplicates=0)
    assert len(await env.held(push_channel(TENANT, "alice"))) == 1
    # The duplicate wrote d1 to the outbox first; its message id is the key's, so the held
    # publish adds only the notice's (tenant-wide: no subUser).
    messages = await env.messages()
    assert sorted((m["type"], m.get("subUser", "")) for m in messages) == [
        ("deposit.transfer", "alice"),
        ("system.notice", ""),
    ]


# -- refusals --------------------------------------------------------------------------


async def test_a_refused_batch_publishes_nothing_claims_nothing_notes_no_market(
    env: Env,
) -> None:
    with pytest.raises(ProducerRefusal) as bad_json:
        await env.publisher.publish(b"{", now_ms=NOW_MS)
    assert (bad_json.value.code, bad_json.value.status) == ("INVALID_JSON", 400)
    trade = trade_event("SOL-PERP", 1, idempotency_key="k1")
    with pytest.raises(ProducerRefusal) as no_book:
        await env.publish(trade, delta_event(MARKET, 2, [[101, 1]], []))
    refusal = no_book.value
    assert (refusal.code, refusal.status, refusal.index, refusal.field) == (
        "NO_BOOK",
        409,
        1,
        "data.type",
    )
    assert await env.held(trade["topic"]) == []
    assert await env.idempotency.seen(["k1"]) == set()
    assert "SOL-PERP" not in {m["market_addr"] for m in env.markets.list()}
    await env.publish(snapshot_event(MARKET, 1, [[101, 1]], [[99, 1]]))
    with pytest.raises(ProducerRefusal) as gap:
        await env.publish(delta_event(MARKET, 2, [], []), delta_event(MARKET, 4, [], []))
    assert (gap.value.code, gap.value.index, gap.value.field) == ("SEQ_GAP", 1, "data.seq")
    assert len(await env.held(f"orderbook/{MARKET}")) == 1
    # Nothing was claimed: the corrected batch publishes.
    assert await env.publish(trade) == PublishResult(accepted=1, duplicates=0)
    assert {"market_addr": "SOL-PERP", "symbol": "SOL-PERP"} in env.markets.list()


async def test_the_brokers_own_book_check_refuses_a_race_lost_and_releases_the_keys(
    env: Env,
) -> None:
    await env.presence.acquire(push_tenant_prefix(TENANT), push_channel(TENANT, "alice"), 1)
    await env.presence.acquire(push_tenant_prefix(TENANT), push_channel(TENANT, "bob"), 1)
    await env.publish(snapshot_event(MARKET, 1, [[101, 1]], [[99, 1]]))
    batch = (
        {**notice(TENANT, None, "book moves"), "idempotency_key": "n1"},
        {**delta_event(MARKET, 2, [[101, 2]], []), "idempotency_key": "b2"},
    )
    held = await started(env, *batch)  # passed the pre-check at seq 1
    await env.node(None).publish(body(delta_event(MARKET, 2, [[101, 3]], [])), now_ms=NOW_MS)
    env.gate.opened.set()
    with pytest.raises(ProducerRefusal) as lost:
        await held
    # The notice became two publications; the refused one is the delta, event 1.
    assert (lost.value.code, lost.value.status, lost.value.index) == ("SEQ_GAP", 409, 1)
    assert await env.idempotency.seen(["n1", "b2"]) == set()
    assert await env.held(push_channel(TENANT, "alice")) == []
    assert await env.messages() == []  # nothing of a refused publish reaches the outbox
    retry = ({**batch[0]}, {**delta_event(MARKET, 3, [[101, 2]], []), "idempotency_key": "b2"})
    assert await env.publish(*retry) == PublishResult(accepted=2, duplicates=0)
    assert len(await env.messages()) == 1


async def test_a_cancelled_publish_releases_its_keys(env: Env) -> None:
    keyed = {**notice(TENANT, None, "x"), "idempotency_key": "n1"}
    held = await started(env, keyed)
    assert await env.idempotency.seen(["n1"]) == {"n1"}
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    assert await env.idempotency.seen(["n1"]) == set()
    await asyncio.wait_for(env.publisher.settled(), 5 * UNIT)
    env.gate.opened.set()
    assert await env.publish(keyed) == PublishResult(accepted=1, duplicates=0)


# -- the outbox ------------------------------------------------------------------------


async def test_the_outbox_is_written_after_the_publish_in_batch_order(env: Env) -> None:
    batch = (
        deposit("alice", key="a1"),
        trade_event(MARKET, 1),
        notice(TENANT, "bob", "hi bob"),
        deposit("carol"),
    )
    assert await env.publish(*batch) == PublishResult(accepted=4, duplicates=0)
    [call] = env.outbox.calls
    assert [(e.channel, e.payload["event"], n) for e, n in call] == [
        (push_channel(TENANT, "alice"), "deposit.transfer", 1),
        (push_channel(TENANT, "bob"), "system.notice", 1),
        (push_channel(TENANT, "carol"), "deposit.transfer", 1),
    ]
    assert [m.get("subUser") for m in await env.messages()] == ["alice", "bob", "carol"]


async def test_an_outbox_failure_after_the_publish_keeps_the_keys_and_the_retry_writes_it(
    env: Env, tmp_path: Path
) -> None:
    await env.store.close()  # the outbox's store fails: a real error from a closed store
    keyed = deposit("alice", key="a1")
    with pytest.raises(OutboxUnavailable):
        await env.publish(keyed)
    assert len(await env.held(push_channel(TENANT, "alice"))) == 1  # published
    assert await env.idempotency.seen(["a1"]) == {"a1"}  # still claimed
    # The retry lands on another node, whose outbox works: not published again, written.
    store = open_store(tmp_path, None)
    try:
        other = env.node(Outbox(store))
        assert await other.publish(body(keyed), now_ms=NOW_MS) == PublishResult(0, 1)
        assert await other.publish(body(keyed), now_ms=NOW_MS) == PublishResult(0, 1)
        assert len(await env.held(push_channel(TENANT, "alice"))) == 1
        [message] = await store.messages(TENANT, since=None, limit=100)
        assert orjson.loads(message.body)["subUser"] == "alice"
    finally:
        await store.close()


# -- tenant-wide notices ---------------------------------------------------------------


async def test_a_tenant_wide_notice_goes_to_each_connected_sub_user_and_once_to_the_outbox(
    env: Env,
) -> None:
    for tenant, sub_user in ((TENANT, "alice"), (TENANT, "bob"), ("other", "carol")):
        await env.presence.acquire(push_tenant_prefix(tenant), push_channel(tenant, sub_user), 1)
    assert await env.publish(notice(TENANT, None, "maintenance")) == PublishResult(1, 0)
    for sub_user in ("alice", "bob"):
        [data] = await env.held(push_channel(TENANT, sub_user))
        assert data == {
            "event": "system.notice",
            "data": {"severity": "info", "message": "maintenance"},
        }
    assert await env.held(push_channel("other", "carol")) == []
    [call] = env.outbox.calls
    assert [e.channel for e, _ in call] == [push_tenant_prefix(TENANT)]
    [message] = await env.messages()
    assert message["type"] == "system.notice" and "subUser" not in message


# -- drain -----------------------------------------------------------------------------


async def test_stop_refuses_new_publishes_and_settled_waits_for_those_in_flight(
    env: Env,
) -> None:
    await env.publisher.settled()  # nothing in flight: returns at once
    held = await started(env, notice(TENANT, None, "x"), trade_event(MARKET, 1))
    settled = asyncio.create_task(env.publisher.settled())
    env.publisher.stop()
    with pytest.raises(NodeDraining):
        await env.publish(trade_event(MARKET, 2))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not settled.done()
    env.gate.opened.set()
    assert await held == PublishResult(accepted=2, duplicates=0)
    await asyncio.wait_for(settled, 5 * UNIT)
    assert [d["seq"] for d in await env.held(f"trade/{MARKET}")] == [1]
