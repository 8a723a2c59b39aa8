"""PostgreSQL restarted under webhook load: nothing lost, one ``webhook-id`` per event.

A PostgreSQL of the test's own (``initdb`` into a temporary directory, run as the
``postgres`` user on a port of its own, so the machine's shared server is never touched)
holds the webhook outbox of a gateway. Producers publish push events with idempotency keys
as fast as the gateway answers, retrying a 503 with the same batch as a producer should.
PostgreSQL is stopped (``-m immediate``: as if it crashed) mid-load, left down a moment
and started again. Every event must reach the real receiver, and the receiver's dedupe by
``webhook-id`` must find exactly one id per event (the same id twice is a redelivery,
which at-least-once allows; two ids for one event is the bug this guards against).
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamgate.client.http import HttpClient
from streamgate.server.app import Gateway

from support import PRODUCER_KEY, UNIT, notice, running_gateway
from support.cluster import free_port
from support.webhook_receiver import Receiver

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

PRODUCERS = 4
BATCHES = 30  # per producer
BATCH = 5  # events per batch
WAIT = 20.0 * UNIT
FAST = ",".join(["0.1"] * 10)


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.skip(f"no PostgreSQL binaries ({name}) under /usr/lib/postgresql/*/bin")
    return found[-1]


class OwnPostgres:
    """A PostgreSQL cluster of this test's own, run as ``postgres`` on 127.0.0.1."""

    def __init__(self) -> None:
        if os.geteuid() != 0 or shutil.which("runuser") is None:
            pytest.skip("starting a PostgreSQL of its own needs root (runuser -u postgres)")
        self.root = Path(tempfile.mkdtemp(prefix="sg-pg-"))
        shutil.chown(self.root, "postgres")
        self.data = self.root / "data"
        self.port = free_port()

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=2"

    def _as_postgres(self, *argv: str) -> None:
        runuser = shutil.which("runuser")
        assert runuser is not None
        done = subprocess.run(
            [runuser, "-u", "postgres", "--", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"{argv[0]} exited {done.returncode}: {done.stderr[-500:]}")

    def init(self) -> None:
        self._as_postgres(
            _bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        log = str(self.root / "log")
        pg_ctl = _bin("pg_ctl")
        self._as_postgres(pg_ctl, "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.remove()


def batch(producer: int, n: int) -> list[dict[str, Any]]:
    events = []
    for i in range(BATCH):
        name = f"p{producer}-b{n}-e{i}"
        events.append({**notice("acme", f"u{producer}", name), "idempotency_key": name})
    return events


async def produce(gw: Gateway, producer: int, stats: Counter[str]) -> None:
    """Publish BATCHES batches; retry each on 503 with the same batch (bounded)."""
    client = HttpClient(f"http://127.0.0.1:{gw.port}")
    auth = {"authorization": f"Bearer {PRODUCER_KEY}"}
    try:
        for n in range(BATCHES):
            events = batch(producer, n)
            deadline = time.monotonic() + WAIT
            while True:
                result = await client.post_json("/api/v1/publish", {"events": events}, auth)
                stats[str(result.status)] += 1
                if result.status == 200:
                    break
                assert result.status == 503, result.body
                assert time.monotonic() < deadline, "publishes failed for too long"
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.01)
    finally:
        await client.close()


async def test_postgres_restart_under_webhook_load(
    tmp_path: Path, own_postgres: OwnPostgres, receiver: Receiver
) -> None:
    stats: Counter[str] = Counter()
    total = PRODUCERS * BATCHES * BATCH
    async with running_gateway(
        tmp_path,
        webhooks_postgres_dsn=own_postgres.dsn,
        webhooks_allow_loopback=1,
        webhooks_retry_schedule=FAST,
        webhooks_timeout=2.0,
        webhooks_lease=3.0,
        webhooks_per_endpoint=8,
    ) as gw:
        await gw.webhook_store.create_endpoint(
            "acme", receiver.url("pg"), None, "whsec_" + "A" * 43
        )
        started = time.monotonic()
        producers = [asyncio.create_task(produce(gw, p, stats)) for p in range(PRODUCERS)]
        await receiver.wait_for("pg", total // 4, WAIT)  # under load
        down_at = time.monotonic()
        await asyncio.to_thread(own_postgres.stop, "immediate")
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_postgres.start)
        outage = time.monotonic() - down_at
        await asyncio.wait_for(asyncio.gather(*producers), WAIT)
        published = time.monotonic() - started
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while len({r.headers["webhook-id"] for r in receiver.at("pg")}) < total:
            assert loop.time() < deadline, f"{len(receiver.at('pg'))} of {total} delivered"
            await asyncio.sleep(0.05)
        delivered = time.monotonic() - started
        await asyncio.sleep(0.5)  # a late second id would show up by now
    ids: dict[str, set[str]] = defaultdict(set)
    for got in receiver.at("pg"):
        ids[orjson.loads(got.body)["data"]["message"]].add(got.headers["webhook-id"])
    expected = {
        e["idempotency_key"] for p in range(PRODUCERS) for n in range(BATCHES) for e in batch(p, n)
    }
    two_ids = {event: len(v) for event, v in ids.items() if len(v) > 1}
    requests = len(receiver.at("pg"))
    print(
        f"\npg restart under webhook load: {total} events in {PRODUCERS * BATCHES} batches,"
        f" {stats['200']} accepted, {stats['503']} answered 503 and retried;"
        f" PostgreSQL down {outage:.2f} s (stop -m immediate, 0.5 s, start);"
        f" published in {published:.2f} s, all delivered after {delivered:.2f} s;"
        f" {requests} POSTs, {requests - total} redeliveries of an id,"
        f" {len(two_ids)} events with two ids"
    )
    assert set(ids) == expected, f"lost: {sorted(expected - set(ids))[:10]}"
    assert two_ids == {}
