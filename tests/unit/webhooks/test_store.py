"""The webhook outbox: one suite run against SQLite and PostgreSQL (marked ``postgres``).

PostgreSQL tests use a database of their own (``streamgate_test_<random>``, dropped after)
and a schema per test; PostgreSQL is started with the machine's command when it is not
answering, and the tests skip, saying why, only when it cannot be started.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from streamgate.auth.apikeys import DB_NAME, ApiKeyStore
from streamgate.errors import ConfigError
from streamgate.webhooks.store import (
    COMPONENT,
    MIGRATIONS,
    Attempt,
    Delivery,
    MessageInfo,
    OutboxMessage,
    SqliteWebhookStore,
    WebhookNotFound,
    WebhookStore,
    event_type_matches,
    open_store,
)
from streamgate.webhooks.store_postgres import PostgresWebhookStore

NOW = 1_700_000_000.0
ROOT = Path(__file__).resolve().parents[3]


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# the stores under test

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
Opener = Callable[[], WebhookStore]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def dsn(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL DSN for the postgres backend, None for SQLite."""
    return str(request.getfixturevalue("pg_schema")) if backend == "postgres" else None


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def opener(tmp_path: Path, dsn: str | None, clock: Clock) -> AsyncIterator[Opener]:
    """Opens stores ("nodes") on one outbox; all closed after the test."""
    opened: list[WebhookStore] = []

    def open_one() -> WebhookStore:
        store = open_store(tmp_path, dsn, clock=clock)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
def store(opener: Opener) -> WebhookStore:
    return opener()


def message(
    n: int,
    *endpoints: str,
    tenant: str = "acme",
    event_type: str = "deposit.completed",
    created_at: float = NOW,
) -> OutboxMessage:
    body = b'{"id":"msg_%d","type":"%s"}' % (n, event_type.encode())
    return OutboxMessage(f"msg_{n}", tenant, event_type, created_at, body, endpoints)


def attempt_for(
    d: Delivery, at: float, status: int | None = 200, error: str | None = None
) -> Attempt:
    return Attempt(d.id, d.message_id, d.endpoint_id, at, status, 12.5, error)


async def claim(store: WebhookStore, now: float = NOW, **kw: float | int | str) -> list[Delivery]:
    args: dict[str, float | int | str] = {
        "limit": 100,
        "lease": 30.0,
        "node": "n1",
        "per_endpoint": 100,
    }
    args.update(kw)
    return await store.claim_due(now, **args)  # type: ignore[arg-type]


async def endpoints(store: WebhookStore, n: int, tenant: str = "acme") -> list[str]:
    made = [
        await store.create_endpoint(tenant, f"https://h{i}.example/hook", None, f"whsec_{i}")
        for i in range(n)
    ]
    return [e.id for e in made]


# endpoints


async def test_endpoint_lifecycle(store: WebhookStore, clock: Clock) -> None:
    first = await store.create_endpoint("acme", "https://a.example/h", None, "whsec_a")
    clock.now += 1
    second = await store.create_endpoint(
        "acme", "https://b.example/h", ("deposit.*", "trade.completed"), "whsec_b"
    )
    other = await store.create_endpoint("other", "https://c.example/h", None, "whsec_c")
    assert first.id.startswith("ep_") and len(first.id) == 27
    assert len({first.id, second.id, other.id}) == 3
    assert (first.enabled, first.created_at, first.secret) == (True, NOW, "whsec_a")
    assert first.failing_since is None and first.disabled_reason is None
    assert first.previous_secret is None and first.previous_secret_until is None
    assert second.event_types == ("deposit.*", "trade.completed")

    assert await store.list_endpoints("acme") == [first, second]
    assert await store.list_endpoints("nobody") == []
    assert await store.get_endpoint("acme", second.id) == second
    assert await store.get_endpoint("other", second.id) is None  # tenants are apart
    assert await store.endpoint(second.id) == second  # any tenant's, for the sender
    assert await store.endpoint("ep_missing") is None
    assert not await store.delete_endpoint("other", first.id)
    assert await store.delete_endpoint("acme", first.id)
    assert not await store.delete_endpoint("acme", first.id)
    assert await store.list_endpoints("acme") == [second]
    assert await store.list_endpoints("other") == [other]

    with pytest.raises(ValueError, match="invalid tenant"):
        await store.create_endpoint("bad tenant", "https://x.example/", None, "whsec_x")


async def test_enable_disable_and_rotate(store: WebhookStore) -> None:
    (ep,) = await endpoints(store, 1)
    await store.set_enabled(ep, False, "410 Gone")
    got = await store.get_endpoint("acme", ep)
    assert got is not None and (got.enabled, got.disabled_reason) == (False, "410 Gone")

    await store.enqueue([message(1, ep)])
    assert await claim(store) == []  # disabled: not claimed
    await store.set_enabled(ep, True)
    (d,) = await claim(store)
    await store.record(d, attempt_for(d, NOW, 500), outcome="retry", next_attempt_at=NOW + 30)
    got = await store.get_endpoint("acme", ep)
    assert got is not None and got.failing_since == NOW
    await store.set_enabled(ep, False, "failing for 72 h")
    await store.set_enabled(ep, True)
    got = await store.get_endpoint("acme", ep)
    assert got is not None
    assert (got.enabled, got.disabled_reason, got.failing_since) == (True, None, None)

    rotated = await store.rotate_secret(ep, "whsec_new", NOW + 3600)
    assert (rotated.secret, rotated.previous_secret) == ("whsec_new", "whsec_0")
    assert rotated.previous_secret_until == NOW + 3600
    assert await store.get_endpoint("acme", ep) == rotated
    with pytest.raises(WebhookNotFound):
        await store.rotate_secret("ep_missing", "whsec_x", NOW)


# the outbox


async def test_enqueue_writes_messages_and_deliveries(store: WebhookStore) -> None:
    a, b = await endpoints(store, 2)
    (theirs,) = await endpoints(store, 1, tenant="other")
    created = await store.enqueue(
        [
            message(1, a, b, a),  # an endpoint named twice gets one delivery
            message(2, b, theirs, "ep_unknown"),  # not acme's, or not at all: skipped
            message(1, a),  # the same id again in the batch: skipped
            message(3),  # no endpoints: kept for recovery
        ]
    )
    assert created == 3
    assert await store.enqueue([message(1, a, b)]) == 0  # already stored: nothing twice
    assert await store.enqueue([]) == 0

    got = await claim(store)
    assert sorted((d.message_id, d.endpoint_id) for d in got) == sorted(
        [("msg_1", a), ("msg_1", b), ("msg_2", b)]
    )
    d = got[0]
    assert (d.attempts, d.next_attempt_at, d.event_type) == (0, NOW, "deposit.completed")
    assert d.body == message(1).body
    assert [m.message_id for m in await store.messages("acme", since=None, limit=10)] == [
        "msg_1",
        "msg_2",
        "msg_3",
    ]

    with pytest.raises(TypeError):
        await store.enqueue([OutboxMessage("m", "acme", "x", NOW, "text", ())])  # type: ignore[arg-type]


async def test_claim_due_orders_leases_and_expires(store: WebhookStore) -> None:
    (ep,) = await endpoints(store, 1)
    await store.enqueue(
        [message(i, ep, created_at=NOW + 10 - i) for i in range(3)]  # msg_2 due first
        + [message(9, ep, created_at=NOW + 60)]  # not due yet
    )
    first = await claim(store, NOW + 10, limit=2, lease=30.0)
    assert [d.message_id for d in first] == ["msg_2", "msg_1"]
    rest = await claim(store, NOW + 15)
    assert [d.message_id for d in rest] == ["msg_0"]
    assert await claim(store, NOW + 20) == []  # all leased, msg_9 not due

    # A lease that expires (its node died) makes the delivery claimable again.
    again = await claim(store, NOW + 40.5, node="n2")
    assert again == first
    assert await claim(store, NOW + 41) == []
    assert [d.message_id for d in await claim(store, NOW + 60)] == ["msg_0", "msg_9"]

    with pytest.raises(ValueError, match="lease"):
        await claim(store, lease=0.0)
    assert await claim(store, NOW + 1000, limit=0) == []
    assert await claim(store, NOW + 1000, per_endpoint=0) == []


async def test_renew_extends_only_the_leases_the_node_still_holds(store: WebhookStore) -> None:
    (ep,) = await endpoints(store, 1)
    await store.enqueue([message(i, ep) for i in range(3)])
    mine = await claim(store, NOW, node="n1", lease=10.0)
    assert len(mine) == 3
    # n1's lease on the first would expire at NOW + 10; renewed to NOW + 25 it is not due.
    assert await store.renew([d.id for d in mine[:2]], node="n1", until=NOW + 25) == 2
    assert [d.id for d in await claim(store, NOW + 12, node="n2")] == [mine[2].id]
    # n2 now holds the third: n1 cannot renew it, nor renew a delivery it has recorded.
    await store.record(
        mine[1], attempt_for(mine[1], NOW + 13), outcome="succeeded", next_attempt_at=None
    )
    assert await store.renew([d.id for d in mine], node="n1", until=NOW + 40) == 1
    assert await claim(store, NOW + 30, node="n2") == []  # the first: renewed to NOW + 40
    assert [d.id for d in await claim(store, NOW + 41, node="n2")] == [mine[0].id]
    assert await store.renew([], node="n1", until=NOW + 99) == 0


async def test_release_leases_makes_a_nodes_deliveries_due_at_once(
    store: WebhookStore,
) -> None:
    (ep,) = await endpoints(store, 1)
    await store.enqueue([message(i, ep) for i in range(3)])
    n1 = await claim(store, NOW, node="n1", limit=2, lease=600.0)
    n2 = await claim(store, NOW, node="n2", lease=600.0)
    assert await claim(store, NOW + 1) == []
    # n1 restarts under its name: its two leases end, n2's stays.
    assert await store.release_leases("n1") == 2
    again = await claim(store, NOW + 1, node="n1")
    assert sorted(d.id for d in again) == sorted(d.id for d in n1)
    assert n2[0].id not in {d.id for d in again}
    assert await store.release_leases("nobody") == 0


async def test_claim_per_endpoint_limit(store: WebhookStore) -> None:
    a, b = await endpoints(store, 2)
    await store.enqueue([message(i, a) for i in range(10)])
    await store.enqueue([message(100 + i, b, created_at=NOW + 1) for i in range(3)])

    got = await claim(store, NOW + 1, per_endpoint=2)
    assert Counter(d.endpoint_id for d in got) == {a: 2, b: 2}
    assert await claim(store, NOW + 1, per_endpoint=2) == []  # both full
    done = next(d for d in got if d.endpoint_id == a)
    await store.record(done, attempt_for(done, NOW + 2), outcome="succeeded", next_attempt_at=None)
    more = await claim(store, NOW + 2, per_endpoint=2)
    assert [d.endpoint_id for d in more] == [a]
    # Expired leases do not count against the limit.
    late = await claim(store, NOW + 40, per_endpoint=2, limit=3)
    assert Counter(d.endpoint_id for d in late) == {a: 2, b: 1}
    # b's first two leases expired too: with room for 3 each, a takes 1 more, b its last 2.
    more = await claim(store, NOW + 40, per_endpoint=3)
    assert Counter(d.endpoint_id for d in more) == {a: 1, b: 2}


async def test_disabled_endpoints_are_not_claimed(store: WebhookStore) -> None:
    a, b = await endpoints(store, 2)
    await store.enqueue([message(1, a, b)])
    await store.set_enabled(a, False, "manual")
    assert [d.endpoint_id for d in await claim(store)] == [b]
    await store.set_enabled(a, True)
    assert [d.endpoint_id for d in await claim(store)] == [a]


async def test_due_count_leaves_out_leased_later_and_disabled(store: WebhookStore) -> None:
    a, b = await endpoints(store, 2)
    await store.ping()
    assert await store.due_count(NOW) == 0
    await store.enqueue([message(i, a, b) for i in range(3)])
    assert await store.due_count(NOW) == 6
    assert await store.due_count(NOW - 1) == 0  # created at NOW: not due before
    got = await claim(store, NOW, per_endpoint=1)  # one lease per endpoint
    assert await store.due_count(NOW) == 4
    done = next(d for d in got if d.endpoint_id == a)
    await store.record(done, attempt_for(done, NOW), outcome="retry", next_attempt_at=NOW + 60)
    assert await store.due_count(NOW) == 4  # a's is due again only at NOW + 60
    assert await store.due_count(NOW + 60) == 6  # and b's lease has expired by then
    await store.set_enabled(b, False, "manual")
    assert await store.due_count(NOW + 60) == 3


async def test_record_outcomes_and_failing_since(store: WebhookStore) -> None:
    (ep,) = await endpoints(store, 1)
    await store.enqueue([message(1, ep), message(2, ep)])
    d1, d2 = await claim(store)

    await store.record(d1, attempt_for(d1, NOW + 1, 503), outcome="retry", next_attempt_at=NOW + 31)
    got = await store.get_endpoint("acme", ep)
    assert got is not None and got.failing_since == NOW + 1
    await store.record(
        d2, attempt_for(d2, NOW + 2, None, "timeout"), outcome="retry", next_attempt_at=NOW + 32
    )
    got = await store.get_endpoint("acme", ep)
    assert got is not None and got.failing_since == NOW + 1  # the first failure counts

    assert await claim(store, NOW + 30) == []  # released, but not due yet
    (r1,) = await claim(store, NOW + 31)
    assert (r1.id, r1.attempts, r1.next_attempt_at, r1.body) == (d1.id, 1, NOW + 31, d1.body)
    await store.record(r1, attempt_for(r1, NOW + 31), outcome="succeeded", next_attempt_at=None)
    got = await store.get_endpoint("acme", ep)
    assert got is not None and got.failing_since is None  # cleared by a success

    (r2,) = await claim(store, NOW + 32)
    await store.record(r2, attempt_for(r2, NOW + 33, 400), outcome="failed", next_attempt_at=None)
    got = await store.get_endpoint("acme", ep)
    assert got is not None and got.failing_since == NOW + 33  # first failure after a success
    assert await claim(store, NOW + 10_000) == []  # both ended

    assert await store.attempts("acme", "msg_1") == [
        Attempt(d1.id, "msg_1", ep, NOW + 1, 503, 12.5, None),
        Attempt(d1.id, "msg_1", ep, NOW + 31, 200, 12.5, None),
    ]
    assert [(a.status_code, a.error) for a in await store.attempts("acme", "msg_2")] == [
        (None, "timeout"),
        (400, None),
    ]
    assert await store.attempts("other", "msg_1") == []  # another tenant's message
    listed = await store.messages("acme", since=None, limit=10)
    assert [(m.pending, m.succeeded, m.failed) for m in listed] == [(0, 1, 0), (0, 0, 1)]

    with pytest.raises(ValueError, match="outcome"):
        await store.record(r2, attempt_for(r2, NOW), outcome="gone", next_attempt_at=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="next_attempt_at"):
        await store.record(r2, attempt_for(r2, NOW), outcome="retry", next_attempt_at=None)


async def test_late_record_of_an_expired_lease(store: WebhookStore) -> None:
    (ep,) = await endpoints(store, 1)
    await store.enqueue([message(1, ep)])
    (mine,) = await claim(store, NOW, lease=10.0, node="slow")
    (theirs,) = await claim(store, NOW + 11, node="fast")  # the slow node's lease expired
    assert theirs.id == mine.id

    await store.record(
        theirs, attempt_for(theirs, NOW + 12, 500), outcome="retry", next_attempt_at=NOW + 100
    )
    # The slow node's late retry is kept as an attempt but does not move the delivery.
    await store.record(
        mine, attempt_for(mine, NOW + 13, 500), outcome="retry", next_attempt_at=NOW + 14
    )
    assert await claim(store, NOW + 50) == []
    (later,) = await claim(store, NOW + 100)
    assert later.attempts == 1
    # A late success still ends it: the receiver has the message.
    await store.record(
        mine, attempt_for(mine, NOW + 101), outcome="succeeded", next_attempt_at=None
    )
    await store.record(
        later, attempt_for(later, NOW + 102, 500), outcome="failed", next_attempt_at=None
    )
    (info,) = await store.messages("acme", since=None, limit=5)
    assert (info.pending, info.succeeded, info.failed) == (0, 1, 0)
    assert len(await store.attempts("acme", "msg_1")) == 4


async def test_delete_endpoint_cancels_its_pending_deliveries(store: WebhookStore) -> None:
    a, b = await endpoints(store, 2)
    await store.enqueue([message(1, a, b)])
    assert await store.delete_endpoint("acme", a)
    assert [d.endpoint_id for d in await claim(store)] == [b]
    (info,) = await store.messages("acme", since=None, limit=5)
    assert info.pending == 1  # b's; a's was canceled


# visibility and replay


async def test_messages_listing(store: WebhookStore) -> None:
    (ep,) = await endpoints(store, 1)
    await store.enqueue([message(i, ep, created_at=NOW + i) for i in range(5)])
    await store.enqueue([message(9, tenant="other")])
    listed = await store.messages("acme", since=NOW + 1, limit=3)
    assert [m.message_id for m in listed] == ["msg_1", "msg_2", "msg_3"]
    assert listed[0] == MessageInfo(
        "msg_1", "acme", "deposit.completed", NOW + 1, message(1).body, 1, 0, 0
    )
    assert [m.message_id for m in await store.messages("other", since=None, limit=9)] == ["msg_9"]
    assert await store.messages("acme", since=NOW + 5, limit=9) == []
    assert await store.messages("acme", since=None, limit=0) == []


async def test_resend(store: WebhookStore, clock: Clock) -> None:
    a, b, c = await endpoints(store, 3)
    await store.enqueue([message(1, a, b)])
    for d in await claim(store):
        await store.record(d, attempt_for(d, NOW), outcome="succeeded", next_attempt_at=None)
    assert await store.delete_endpoint("acme", b)

    clock.now = NOW + 500
    assert await store.resend("acme", "msg_1", None) == 1  # to a; b is gone
    assert await store.resend("acme", "msg_1", c) == 1  # to any endpoint of the tenant
    got = await claim(store, NOW + 500)
    assert sorted(d.endpoint_id for d in got) == sorted([a, c])
    for d in got:
        assert (d.message_id, d.body, d.attempts, d.next_attempt_at) == (
            "msg_1",
            message(1).body,
            0,
            NOW + 500,
        )

    with pytest.raises(WebhookNotFound):
        await store.resend("acme", "msg_missing", None)
    with pytest.raises(WebhookNotFound):
        await store.resend("other", "msg_1", None)
    with pytest.raises(WebhookNotFound):
        await store.resend("acme", "msg_1", "ep_missing")
    (theirs,) = await endpoints(store, 1, tenant="other")
    with pytest.raises(WebhookNotFound):
        await store.resend("acme", "msg_1", theirs)


async def test_recover(store: WebhookStore, clock: Clock) -> None:
    (source,) = await endpoints(store, 1)
    target = await store.create_endpoint("acme", "https://r.example/", ("deposit.*",), "whsec_r")
    kinds = ["deposit.completed", "trade.completed", "deposit.failed", "system.notice"]
    await store.enqueue(
        [message(i, source, event_type=kinds[i % 4], created_at=NOW + i) for i in range(8)]
    )
    await store.enqueue([message(99, tenant="other", created_at=NOW + 5)])
    clock.now = NOW + 1000

    # deposits since NOW + 2: msg_2, msg_4, msg_6
    assert await store.recover("acme", target.id, NOW + 2) == 3
    got = await claim(store, NOW + 1000, node="r")
    assert sorted(d.message_id for d in got if d.endpoint_id == target.id) == [
        "msg_2",
        "msg_4",
        "msg_6",
    ]
    # Still pending there (leased): not added twice.
    assert await store.recover("acme", target.id, NOW + 2) == 0
    for d in got:
        await store.record(d, attempt_for(d, NOW + 1000), outcome="succeeded", next_attempt_at=None)
    # Delivered already: recovering sends them again, as asked.
    assert await store.recover("acme", target.id, NOW + 4) == 2

    # The caller's own matching rule, e.g. the delivery module's.
    seen: list[tuple[str, tuple[str, ...] | None]] = []

    def only_trades(event_type: str, filters: object) -> bool:
        seen.append((event_type, filters))  # type: ignore[arg-type]
        return event_type.startswith("trade.")

    assert await store.recover("acme", source, NOW, match=only_trades) == 2
    assert {f for _, f in seen} == {None}
    with pytest.raises(WebhookNotFound):
        await store.recover("other", target.id, NOW)


async def test_prune_keeps_pending_messages(store: WebhookStore) -> None:
    (ep,) = await endpoints(store, 1)
    await store.enqueue([message(i, ep, created_at=NOW + i) for i in range(3)])
    await store.enqueue([message(7, created_at=NOW)])  # no deliveries at all
    (d0, d1, _) = await claim(store, NOW + 10)
    await store.record(d0, attempt_for(d0, NOW + 10), outcome="succeeded", next_attempt_at=None)
    await store.record(d1, attempt_for(d1, NOW + 10), outcome="failed", next_attempt_at=None)
    assert await store.prune(NOW + 2) == 3  # msg_0, msg_1 and msg_7; msg_2 is pending
    assert [m.message_id for m in await store.messages("acme", since=None, limit=9)] == ["msg_2"]
    assert await store.attempts("acme", "msg_0") == []


def test_event_type_matches() -> None:
    assert event_type_matches("deposit.completed", None)
    assert event_type_matches("deposit.completed", ())
    assert event_type_matches("deposit.completed", ("deposit.*",))
    assert event_type_matches("trade.hold", ("deposit.completed", "trade.hold"))
    assert not event_type_matches("trade.hold", ("deposit.*", "trade.completed"))
    assert not event_type_matches("deposits.x", ("deposit.*",))


# durability


async def test_everything_survives_close_and_reopen(opener: Opener) -> None:
    first = opener()
    (ep,) = await endpoints(first, 1)
    await first.enqueue([message(i, ep) for i in range(3)])
    (d0, _, _) = await claim(first, lease=5.0)
    await first.record(d0, attempt_for(d0, NOW), outcome="retry", next_attempt_at=NOW + 4)
    await first.close()
    await first.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await first.list_endpoints("acme")

    second = opener()
    assert [e.id for e in await second.list_endpoints("acme")] == [ep]
    assert await claim(second, NOW + 2) == []  # msg_0 due at +4; the others leased till +5
    got = await claim(second, NOW + 5)
    assert [(d.message_id, d.attempts) for d in got] == [("msg_1", 0), ("msg_2", 0), ("msg_0", 1)]
    assert len(await second.attempts("acme", "msg_0")) == 1


def spawn(script: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


KILL_CHILD = """
import asyncio, sys
from pathlib import Path
from streamgate.webhooks.store import OutboxMessage, open_store

async def main(data_dir, dsn, endpoint):
    store = open_store(Path(data_dir), dsn or None)
    # Hold leases on the first deliveries, as a node busy delivering them would.
    await store.enqueue([OutboxMessage("msg_first", "acme", "deposit.completed", 0.0, b"{}",
                                       (endpoint,))])
    await store.claim_due(1.0, limit=10, lease=1e9, node="doomed", per_endpoint=10)
    i = 0
    while True:
        body = b'{"n":%d}' % i
        batch = [OutboxMessage(f"msg_{i}_{j}", "acme", "deposit.completed", 1.0, body,
                               (endpoint,)) for j in range(3)]
        await store.enqueue(batch)
        print(i, flush=True)  # acknowledged: committed
        i += 1

asyncio.run(main(*sys.argv[1:]))
"""


async def test_kill_9_loses_no_acknowledged_message(
    tmp_path: Path, opener: Opener, dsn: str | None
) -> None:
    store = opener()
    (ep,) = await endpoints(store, 1)
    child = spawn(KILL_CHILD, str(tmp_path), dsn or "", ep)
    assert child.stdout is not None
    acked = -1

    async def read() -> None:
        nonlocal acked
        assert child.stdout is not None
        while acked < 40:
            line = await asyncio.to_thread(child.stdout.readline)
            assert line, f"child ended: {child.stderr.read().decode() if child.stderr else ''}"
            acked = int(line)

    try:
        await asyncio.wait_for(read(), 30)
    finally:
        os.kill(child.pid, signal.SIGKILL)  # mid-enqueue of the next batch, likely
        await asyncio.to_thread(child.wait)
        child.stdout.close()
        if child.stderr is not None:
            child.stderr.close()

    # Every acknowledged batch is there; the dead node's lease still holds msg_first.
    got = await claim(store, 2.0, limit=10_000, per_endpoint=10_000)
    ids = {d.message_id for d in got}
    assert "msg_first" not in ids
    assert {f"msg_{i}_{j}" for i in range(acked + 1) for j in range(3)} <= ids
    assert len(ids) % 3 == 0  # batches are whole: one transaction each


# two nodes


async def test_two_nodes_never_hold_the_same_delivery(opener: Opener) -> None:
    node_a, node_b = opener(), opener()
    eps = await endpoints(node_a, 4)
    per_endpoint = 3
    n = 0
    for round_ in range(20):
        now = NOW + round_ * 100
        batch = [message(n + i, eps[i % 4], created_at=now) for i in range(12)]
        n += len(batch)
        await node_a.enqueue(batch)
        # Four claimers at once, two per node, each wanting more than there is room for.
        claims = await asyncio.gather(
            *(
                claim(s, now, node=f"node-{k}", per_endpoint=per_endpoint, limit=5)
                for k, s in enumerate((node_a, node_b, node_b, node_a))
            )
        )
        held = [d for got in claims for d in got]
        assert len({d.id for d in held}) == len(held), f"round {round_}: a delivery held twice"
        assert max(Counter(d.endpoint_id for d in held).values()) <= per_endpoint
        # A claimer may skip endpoints another is claiming for; nothing is left behind.
        held += await claim(node_b, now, per_endpoint=per_endpoint)
        assert sorted(d.id for d in held) == list(range(n - 11, n + 1))
        for i, d in enumerate(held):
            store = node_a if i % 2 else node_b
            await store.record(d, attempt_for(d, now), outcome="succeeded", next_attempt_at=None)
    listed = await node_b.messages("acme", since=None, limit=1000)
    assert len(listed) == n and all(m.succeeded == 1 and m.pending == 0 for m in listed)


# SQLite specifics


async def test_sqlite_shares_the_file_with_api_keys(tmp_path: Path) -> None:
    keys = ApiKeyStore.in_data_dir(tmp_path)
    store = open_store(tmp_path, None)
    assert isinstance(store, SqliteWebhookStore)
    try:
        key, _ = keys.create("acme")
        ep = await store.create_endpoint("acme", "https://a.example/", None, "whsec_a")
        assert keys.authenticate(key).tenant == "acme"
        assert await store.get_endpoint("acme", ep.id) == ep
    finally:
        keys.close()
        await store.close()
    path = tmp_path / DB_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as db:
        versions = dict(db.execute("SELECT component, version FROM schema_versions"))
        assert versions == {"apikeys": 1, COMPONENT: len(MIGRATIONS)}
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()

    # Opened the other way round, both still work on the same file.
    store = open_store(tmp_path, None)
    keys = ApiKeyStore.in_data_dir(tmp_path)
    try:
        assert keys.authenticate(key).tenant == "acme"
        assert [e.id for e in await store.list_endpoints("acme")] == [ep.id]
    finally:
        keys.close()
        await store.close()


async def test_sqlite_commits_with_full_sync(tmp_path: Path) -> None:
    store = SqliteWebhookStore.in_data_dir(tmp_path)
    try:
        assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    finally:
        await store.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    ApiKeyStore.in_data_dir(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("INSERT INTO schema_versions VALUES (?, ?)", (COMPONENT, len(MIGRATIONS) + 1))
    db.close()
    with pytest.raises(ConfigError, match="newer"):
        SqliteWebhookStore.in_data_dir(tmp_path)


def test_open_store_picks_postgres_for_a_dsn(tmp_path: Path) -> None:
    store = open_store(tmp_path, "host=127.0.0.1 dbname=nothing")  # connects on first use
    assert isinstance(store, PostgresWebhookStore)
    assert not (tmp_path / DB_NAME).exists()


# the schema, the same as release 1 made it

SCHEMA_TABLES = ("webhook_endpoints", "webhook_messages", "webhook_deliveries", "webhook_attempts")
# What release 1's hand-written migrations made, read back the way schema_of() reads it.
RELEASE_1 = {
    "sqlite": {
        "webhook_endpoints": "id TEXT NOT NULL PK, tenant TEXT NOT NULL, url TEXT NOT NULL,"
        " event_types TEXT, enabled INTEGER NOT NULL, secret TEXT NOT NULL, previous_secret"
        " TEXT, previous_secret_until REAL, created_at REAL NOT NULL, failing_since REAL,"
        " disabled_reason TEXT",
        "webhook_messages": "seq INTEGER PK, message_id TEXT NOT NULL, tenant TEXT NOT NULL,"
        " event_type TEXT NOT NULL, created_at REAL NOT NULL, body BLOB NOT NULL",
        "webhook_deliveries": "id INTEGER PK, message_id TEXT NOT NULL, endpoint_id TEXT NOT"
        " NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at REAL NOT NULL,"
        " lease_until REAL, lease_node TEXT, created_at REAL NOT NULL, done_at REAL",
        "webhook_attempts": "id INTEGER PK, delivery_id INTEGER NOT NULL, message_id TEXT NOT"
        " NULL, endpoint_id TEXT NOT NULL, at REAL NOT NULL, status_code INTEGER, latency_ms"
        " REAL NOT NULL, error TEXT",
        "indexes": "webhook_attempts_message, webhook_deliveries_due, webhook_deliveries_leased,"
        " webhook_deliveries_message, webhook_endpoints_tenant, webhook_messages_tenant",
    },
    "postgres": {
        "webhook_endpoints": "id text NOT NULL, tenant text NOT NULL, url text NOT NULL,"
        " event_types text, enabled boolean NOT NULL, secret text NOT NULL, previous_secret"
        " text, previous_secret_until double precision, created_at double precision NOT NULL,"
        " failing_since double precision, disabled_reason text",
        "webhook_messages": "seq bigint NOT NULL IDENTITY, message_id text NOT NULL, tenant text"
        " NOT NULL, event_type text NOT NULL, created_at double precision NOT NULL, body bytea"
        " NOT NULL",
        "webhook_deliveries": "id bigint NOT NULL IDENTITY, message_id text NOT NULL, endpoint_id"
        " text NOT NULL, state text NOT NULL, attempts integer NOT NULL, next_attempt_at double"
        " precision NOT NULL, lease_until double precision, lease_node text, created_at double"
        " precision NOT NULL, done_at double precision",
        "webhook_attempts": "id bigint NOT NULL IDENTITY, delivery_id bigint NOT NULL, message_id"
        " text NOT NULL, endpoint_id text NOT NULL, at double precision NOT NULL, status_code"
        " integer, latency_ms double precision NOT NULL, error text",
        "indexes": "webhook_attempts_message, webhook_attempts_pkey, webhook_deliveries_due,"
        " webhook_deliveries_leased, webhook_deliveries_message, webhook_deliveries_pkey,"
        " webhook_endpoints_pkey, webhook_endpoints_tenant, webhook_messages_message_id_key,"
        " webhook_messages_pkey, webhook_messages_tenant",
    },
}


def schema_of(backend: str, where: Path | str) -> dict[str, str]:
    """Each outbox table's columns (name, type, NOT NULL, key) and the index names."""
    out: dict[str, str] = {}
    if backend == "sqlite":
        with sqlite3.connect(where) as db:
            for t in SCHEMA_TABLES:
                cols = db.execute(f"PRAGMA table_info({t})").fetchall()
                out[t] = ", ".join(
                    f"{c[1]} {c[2]}{' NOT NULL' if c[3] else ''}{' PK' if c[5] else ''}"
                    for c in cols
                )
            rows = db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'webhook%'"
                " ORDER BY name"
            ).fetchall()
        db.close()
    else:
        import psycopg

        with psycopg.connect(str(where)) as conn:
            for t in SCHEMA_TABLES:
                found = conn.execute(
                    "SELECT column_name, data_type, is_nullable, is_identity"
                    " FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND table_name = %s"
                    " ORDER BY ordinal_position",
                    (t,),
                ).fetchall()
                out[t] = ", ".join(
                    f"{c[0]} {c[1]}{' NOT NULL' if c[2] == 'NO' else ''}"
                    f"{' IDENTITY' if c[3] == 'YES' else ''}"
                    for c in found
                )
            rows = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                " AND indexname LIKE 'webhook%' ORDER BY indexname"
            ).fetchall()
    out["indexes"] = ", ".join(str(r[0]) for r in rows)
    return out


async def test_the_schema_is_the_one_release_1_made(
    store: WebhookStore, backend: str, tmp_path: Path, dsn: str | None
) -> None:
    # One schema written for both databases renders to the tables each made by hand, so
    # databases made before keep working (their version row, 1, stays what it was).
    await store.list_endpoints("acme")  # migrated
    assert schema_of(backend, dsn or tmp_path / DB_NAME) == RELEASE_1[backend]
    assert len(MIGRATIONS) == 1
