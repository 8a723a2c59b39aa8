"""Webhook durability across processes (issue 6): kill -9 and restart, two nodes on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamgate.auth.apikeys import ApiKeyStore
from streamgate.client.http import HttpClient

from support import UNIT
from support.webhook_receiver import Receiver

KEY = "test-producer-key"


class Node:
    """A gateway process of its own (so that it can be killed with -9)."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "STREAMGATE_DATA_DIR": str(data_dir),
            "STREAMGATE_PRODUCER_KEY": KEY,
            "STREAMGATE_PORT": "0",
            "STREAMGATE_WEBHOOKS_ALLOW_LOOPBACK": "1",
            "STREAMGATE_WEBHOOKS_RETRY_SCHEDULE": "0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
            # A killed node's leases lapse after webhooks_lease: keep the test short.
            "STREAMGATE_WEBHOOKS_TIMEOUT": "1",
            "STREAMGATE_WEBHOOKS_LEASE": "2",
            "STREAMGATE_LOG_LEVEL": "WARNING",
            **env,
        }
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> Node:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamgate", "serve"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("streamgate listening"), line
        self.port = int(line.rsplit(":", 1)[1])
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    async def call(self, method: str, path: str, doc: Any, headers: dict[str, str]) -> Any:
        client = HttpClient(f"http://127.0.0.1:{self.port}")
        try:
            result = await client.request(method, path, body=orjson.dumps(doc), headers=headers)
        finally:
            await client.close()
        assert result.status in (200, 201), result.body
        return result.json()


def notices(tenant: str, start: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "event": "system.notice",
            "tenant": tenant,
            "sub_user": "u",
            "data": {"severity": "info", "message": f"m{i}"},
        }
        for i in range(start, start + count)
    ]


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()


async def test_kill9_with_undelivered_messages_then_restart_delivers_all(
    tmp_path: Path, nodes: list[Node], receiver: Receiver
) -> None:
    with ApiKeyStore.in_data_dir(tmp_path) as keys:
        api_key, _ = keys.create("acme")
    receiver.script = lambda path, n: (503, {}, 0)  # down: nothing gets through yet
    node = Node(tmp_path).start()
    nodes.append(node)
    auth = {"api-key": api_key, "content-type": "application/json"}
    await node.call("POST", "/webhooks", {"url": receiver.url("k")}, auth)
    producer = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    for batch in range(4):
        await node.call(
            "POST", "/api/v1/publish", {"events": notices("acme", batch * 5, 5)}, producer
        )
    await receiver.wait_for("k", 1, 5 * UNIT)  # it is trying, and failing
    node.kill9()
    receiver.received.clear()
    receiver.script = lambda path, n: (200, {}, 0)
    node = Node(tmp_path).start()
    nodes.append(node)
    delivered: set[str] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20 * UNIT
    while len(delivered) < 20 and loop.time() < deadline:
        await asyncio.sleep(0.1)
        delivered = {orjson.loads(r.body)["data"]["message"] for r in receiver.at("k")}
    assert delivered == {f"m{i}" for i in range(20)}


async def test_a_restarted_node_takes_back_its_leases_at_once(
    tmp_path: Path, nodes: list[Node], receiver: Receiver
) -> None:
    # The lease is long: only taking it back, not its expiry, can explain a prompt retry.
    with ApiKeyStore.in_data_dir(tmp_path) as keys:
        api_key, _ = keys.create("acme")
    receiver.script = lambda path, n: (200, {}, 30.0 if n == 0 else 0)  # the first hangs
    env = {"STREAMGATE_WEBHOOKS_LEASE": "120", "STREAMGATE_WEBHOOKS_TIMEOUT": "60"}
    node = Node(tmp_path, **env).start()
    nodes.append(node)
    auth = {"api-key": api_key, "content-type": "application/json"}
    await node.call("POST", "/webhooks", {"url": receiver.url("t")}, auth)
    producer = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    await node.call("POST", "/api/v1/publish", {"events": notices("acme", 0, 1)}, producer)
    [first] = await receiver.wait_for("t", 1, 5 * UNIT)  # in flight, leased for 120 s
    node.kill9()
    node = Node(tmp_path, **env).start()
    nodes.append(node)
    got = await receiver.wait_for("t", 2, 10 * UNIT)
    assert got[1].headers["webhook-id"] == first.headers["webhook-id"]


@pytest.mark.postgres
async def test_two_nodes_on_one_postgres_outbox_deliver_each_message_once(
    tmp_path: Path, nodes: list[Node], receiver: Receiver, postgres_dsn: str
) -> None:
    with ApiKeyStore.in_data_dir(tmp_path) as keys:
        api_key, _ = keys.create("acme")
    env = {"STREAMGATE_WEBHOOKS_POSTGRES_DSN": postgres_dsn}
    a = Node(tmp_path, STREAMGATE_NODE_NAME="a", **env).start()
    nodes.append(a)
    b = Node(tmp_path, STREAMGATE_NODE_NAME="b", **env).start()
    nodes.append(b)
    auth = {"api-key": api_key, "content-type": "application/json"}
    await a.call("POST", "/webhooks", {"url": receiver.url("pg")}, auth)
    producer = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    for i in range(10):
        node = a if i % 2 == 0 else b
        await node.call("POST", "/api/v1/publish", {"events": notices("acme", i * 3, 3)}, producer)
    got = await receiver.wait_for("pg", 30, 20 * UNIT)
    await asyncio.sleep(1.0)  # anything delivered twice would show up by now
    ids = [r.headers["webhook-id"] for r in receiver.at("pg")]
    assert len(ids) == 30 and len(set(ids)) == 30, (len(ids), len(set(ids)))
    assert {orjson.loads(r.body)["data"]["message"] for r in got} == {f"m{i}" for i in range(30)}
