"""A Redis that hangs: every call of the node is bounded (issue 11, point 4).

The test runs a redis-server of its own and freezes it with SIGSTOP (by its PID): the
TCP connections stay open, nothing answers. A publish (plain, and keyed: the
idempotency store's path) must answer 503 within a bound, and a subscribe to a new
topic must be refused with ``UNAVAILABLE``, instead of hanging. After SIGCONT the node
serves again, and the keyed publish that was refused goes through on its retry.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from streamgate.client.http import HttpClient, HttpResult

from support import PRODUCER_KEY, UNIT, base_url, open_ws, recv_json, running_gateway, trade_event

pytestmark = pytest.mark.redis

TIMEOUT = 0.5 * UNIT  # the gateway's redis_timeout
BOUND = 8 * TIMEOUT  # a refused call answers well within this
WAIT = 15.0 * UNIT  # what anything else may take
AUTH = {"authorization": f"Bearer {PRODUCER_KEY}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


async def _answering(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(await client.ping())
    except (OSError, RedisError):
        return False
    finally:
        await client.aclose()


@pytest.fixture
async def frozen_redis(tmp_path: Path) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own; it is resumed and stopped whatever happens."""
    port = _free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(tmp_path)]
    proc = _spawn(argv, tmp_path / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + WAIT
        while not await _answering(url):
            assert proc.poll() is None, (tmp_path / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not answer"
            await asyncio.sleep(0.05)
        yield url, proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 5)
            except subprocess.TimeoutExpired:
                proc.kill()
        await asyncio.to_thread(proc.wait, 5)


async def _publish(client: HttpClient, events: list[dict[str, Any]]) -> HttpResult:
    return await asyncio.wait_for(
        client.post_json("/api/v1/publish", {"events": events}, AUTH), BOUND
    )


async def test_a_hung_redis_fails_publishes_and_subscribes_within_a_bound(
    tmp_path: Path, frozen_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, redis_proc = frozen_redis
    settings: dict[str, Any] = {
        "broker": "redis",
        "redis_url": url,
        "redis_prefix": "sgtest-hang:",
        "redis_timeout": TIMEOUT,
    }
    async with running_gateway(tmp_path / "data", **settings) as gw:
        client = HttpClient(base_url(gw), timeout=WAIT)
        try:
            assert (await _publish(client, [trade_event("H", 1)])).status == 200
            keyed = trade_event("H", 2, idempotency_key="hang-2")
            assert (
                await _publish(client, [trade_event("H", 0, idempotency_key="k0")])
            ).status == 200
            async with open_ws(gw) as ws:
                await ws.send(orjson.dumps({"op": "subscribe", "args": ["trade/H"]}).decode())
                assert (await recv_json(ws))["op"] == "subscribed"

                os.kill(redis_proc.pid, signal.SIGSTOP)
                for events in ([trade_event("H", 3)], [keyed]):
                    refused = await _publish(client, events)
                    assert refused.status == 503, refused.body
                    assert refused.json()["error"]["code"] == "UNAVAILABLE"
                # A new topic needs Redis to confirm the node's subscription.
                await ws.send(
                    orjson.dumps({"op": "subscribe", "args": ["trade/N"], "req_id": "n"}).decode()
                )
                frame = await asyncio.wait_for(recv_json(ws), BOUND)
                assert (frame["op"], frame["message"]) == ("error", "UNAVAILABLE"), frame

                os.kill(redis_proc.pid, signal.SIGCONT)
                # The keyed event was refused before anything claimed its key: its retry
                # publishes it once the node is back (the reconnect backs off meanwhile).
                deadline = time.monotonic() + WAIT
                while (result := await _publish(client, [keyed])).status != 200:
                    assert result.status == 503, result.body
                    assert time.monotonic() < deadline, "the node did not come back"
                    await asyncio.sleep(0.1)
                assert result.json() == {"accepted": 1, "duplicates": 0}
                deadline = time.monotonic() + WAIT
                while True:  # the live subscriber gets it (events 1..3 may come before)
                    event = await recv_json(ws, within=WAIT)
                    assert time.monotonic() < deadline
                    if event.get("op") == "event" and event["data"]["seq"] == 2:
                        break
        finally:
            await client.close()
