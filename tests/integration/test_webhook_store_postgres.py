"""The PostgreSQL webhook outbox with several processes, broken connections and migrations.

The behaviour shared with SQLite is tested in tests/unit/webhooks/test_store.py. These tests
use a database of their own (``streamgate_test_<random>``, dropped after) and a schema per
test; PostgreSQL is started with the machine's command when it is not answering.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from streamgate.errors import ConfigError
from streamgate.webhooks.store import COMPONENT, MIGRATIONS, Attempt, OutboxMessage
from streamgate.webhooks.store_postgres import PostgresWebhookStore

pytestmark = pytest.mark.postgres

NOW = 1_700_000_000.0
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[PostgresWebhookStore]:
    opened = PostgresWebhookStore(dsn, clock=lambda: NOW)
    yield opened
    await opened.close()


async def fill(store: PostgresWebhookStore, endpoints: int, messages: int) -> list[str]:
    """``messages`` messages spread over new endpoints of tenant acme; the endpoint ids."""
    eps = [
        (await store.create_endpoint("acme", f"https://h{i}.example/", None, "whsec_x")).id
        for i in range(endpoints)
    ]
    batch = [
        OutboxMessage(f"msg_{i}", "acme", "deposit.completed", NOW, b"{}", (eps[i % endpoints],))
        for i in range(messages)
    ]
    assert await store.enqueue(batch) == messages
    return eps


def spawn(script: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )


NODE = """
import asyncio, sys
from streamgate.webhooks.store import Attempt
from streamgate.webhooks.store_postgres import PostgresWebhookStore

async def main(dsn, node):
    store = PostgresWebhookStore(dsn)
    await store.list_endpoints("acme")  # connected
    print("ready", flush=True)
    sys.stdin.readline()  # go: one claim each, so that both take part whatever the scheduler
    first = True
    idle = 0
    while idle < 3:
        got = await store.claim_due(2e9, limit=7, lease=600.0, node=node, per_endpoint=4)
        idle = 0 if got else idle + 1
        for d in got:
            print(d.id, flush=True)
            attempt = Attempt(d.id, d.message_id, d.endpoint_id, 2.0, 200, 1.0, None)
            await store.record(d, attempt, outcome="succeeded", next_attempt_at=None)
        if first:
            print("first", flush=True)
            sys.stdin.readline()  # race: both drain the rest at once
            first = False
        await asyncio.sleep(0 if got else 0.02)
    await store.close()

asyncio.run(main(*sys.argv[1:]))
"""


async def first_claim(node: subprocess.Popen[bytes]) -> bytes:
    """Send ``go`` and read the ids of the node's first claim, up to its ``first`` line."""
    assert node.stdin is not None and node.stdout is not None
    node.stdin.write(b"go\n")
    node.stdin.flush()
    ids = b""
    while True:
        line = await asyncio.wait_for(asyncio.to_thread(node.stdout.readline), 30)
        assert line, (node.stderr.read() if node.stderr else b"").decode()
        if line == b"first\n":
            return ids
        ids += line


async def test_two_gateway_processes_deliver_each_message_once(
    store: PostgresWebhookStore, dsn: str
) -> None:
    await fill(store, endpoints=5, messages=400)
    nodes = [spawn(NODE, dsn, f"node-{k}") for k in range(2)]
    try:
        for node in nodes:
            assert node.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(node.stdout.readline), 30)
            assert line == b"ready\n", (node.stderr.read() if node.stderr else b"").decode()
        firsts = await asyncio.gather(*(first_claim(node) for node in nodes))
        outputs = await asyncio.gather(
            *(asyncio.to_thread(node.communicate, b"race\n", 30) for node in nodes)
        )
        outputs = [(head + out, err) for head, (out, err) in zip(firsts, outputs, strict=True)]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
                await asyncio.to_thread(node.communicate)
    claimed: list[list[int]] = []
    for node, (out, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err.decode()
        claimed.append([int(line) for line in out.split()])
    a, b = claimed
    assert a and b, "both nodes took part"
    assert not set(a) & set(b)
    assert sorted(a + b) == list(range(1, 401))  # each delivery claimed once, none left
    listed = await store.messages("acme", since=None, limit=1000)
    assert len(listed) == 400
    assert all((m.pending, m.succeeded, m.failed) == (0, 1, 0) for m in listed)
    for m in listed[::37]:
        assert len(await store.attempts("acme", m.message_id)) == 1


GREEDY = """
import asyncio, sys
from streamgate.webhooks.store_postgres import PostgresWebhookStore

async def main(dsn, now):
    store = PostgresWebhookStore(dsn)
    while True:
        got = await store.claim_due(float(now), limit=1, lease=60.0, node="doomed", per_endpoint=99)
        for d in got:
            print(d.id, flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_kill_9_of_a_node_mid_claim_loses_nothing(
    store: PostgresWebhookStore, dsn: str
) -> None:
    await fill(store, endpoints=2, messages=200)
    node = spawn(GREEDY, dsn, str(NOW + 1))
    assert node.stdout is not None
    printed: set[int] = set()

    async def read() -> None:
        assert node.stdout is not None
        while len(printed) < 30:
            line = await asyncio.to_thread(node.stdout.readline)
            assert line, (node.stderr.read() if node.stderr else b"").decode()
            printed.add(int(line))

    try:
        await asyncio.wait_for(read(), 30)
    finally:
        os.kill(node.pid, signal.SIGKILL)  # likely inside a claim transaction
        await asyncio.to_thread(node.wait)
        printed.update(int(line) for line in node.stdout.read().split())  # printed, unread
        node.stdout.close()
        if node.stderr is not None:
            node.stderr.close()

    # Before the dead node's leases expire, the rest is claimable (one claim may have been
    # committed but not yet printed); after, everything is.
    free = await store.claim_due(NOW + 2, limit=999, lease=10.0, node="heir", per_endpoint=999)
    free_ids = {d.id for d in free}
    assert not free_ids & printed
    assert 200 - len(printed) - 1 <= len(free_ids) <= 200 - len(printed)
    later = await store.claim_due(NOW + 62, limit=999, lease=10.0, node="heir", per_endpoint=999)
    assert {d.id for d in later} == set(range(1, 201))


async def _terminate_others(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = await cur.fetchone()
    assert row is not None
    await asyncio.sleep(0.05)  # let the terminations land
    return int(row[0])


async def test_broken_connections_are_replaced(store: PostgresWebhookStore, dsn: str) -> None:
    (ep,) = await fill(store, endpoints=1, messages=3)
    assert await _terminate_others(dsn) >= 1
    # Safe to repeat: retried once on a fresh connection, unseen by the caller.
    assert [e.id for e in await store.list_endpoints("acme")] == [ep]
    got = await store.claim_due(NOW, limit=10, lease=5.0, node="n", per_endpoint=10)
    assert len(got) == 3

    await _terminate_others(dsn)
    # Not safe to repeat (it might have committed): the caller sees the error once.
    d = got[0]
    attempt = Attempt(d.id, d.message_id, d.endpoint_id, NOW, 200, 1.0, None)
    with pytest.raises(psycopg.OperationalError):
        await store.record(d, attempt, outcome="succeeded", next_attempt_at=None)
    await store.record(d, attempt, outcome="succeeded", next_attempt_at=None)
    assert len(await store.attempts("acme", d.message_id)) == 1


async def test_nodes_starting_together_migrate_once(dsn: str) -> None:
    stores = [PostgresWebhookStore(dsn) for _ in range(6)]
    try:
        assert await asyncio.gather(*(s.list_endpoints("acme") for s in stores)) == [[]] * 6
    finally:
        for s in stores:
            await s.close()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT component, version FROM schema_versions").fetchall()
    assert rows == [(COMPONENT, len(MIGRATIONS))]


async def test_a_newer_schema_is_refused(store: PostgresWebhookStore, dsn: str) -> None:
    await store.list_endpoints("acme")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE schema_versions SET version = 99 WHERE component = %s", (COMPONENT,))
    newer = PostgresWebhookStore(dsn)
    try:
        with pytest.raises(ConfigError, match="newer"):
            await newer.list_endpoints("acme")
    finally:
        await newer.close()


async def test_an_unreachable_server_is_an_operational_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = sock.getsockname()[1]
        store = PostgresWebhookStore(f"host=127.0.0.1 port={port} connect_timeout=2")
        with pytest.raises(psycopg.OperationalError):
            await store.list_endpoints("acme")
        await store.close()
