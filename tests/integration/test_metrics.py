"""``GET /metrics`` after real traffic (issue 15): every series with the value it must have.

One gateway on a Redis of the test's own drives what an operator asks about: publishes
(accepted, refused, unauthorized), subscriptions, a resume recovered and one not, a slow
consumer cut, ops past the rate limit, push tickets, an authorize, webhook endpoints that
fail (500) or hang, and a Redis restart. The scrape is parsed with prometheus_client's
parser and each series is checked against what the test itself counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.asyncio.client import ClientConnection
from websockets.frames import Opcode

from streamgate.client.http import HttpClient
from streamgate.server.app import Gateway

from support import (
    UNIT,
    base_url,
    notice,
    open_ws,
    publish,
    publish_ok,
    recv_json,
    running_gateway,
    send_json,
    subscribe,
    trade_event,
)
from support.cluster import OwnRedis, Procs, until
from support.metrics import Scrape, scrape
from support.slow import cut_slow_consumer
from support.webhook_receiver import Receiver

pytestmark = pytest.mark.redis


async def post(gw: Gateway, path: str, doc: Any, headers: dict[str, str]) -> tuple[int, Any]:
    client = HttpClient(base_url(gw))
    try:
        result = await client.post_json(path, doc, headers)
    finally:
        await client.close()
    return result.status, result.json()


async def ready_status(gw: Gateway) -> tuple[int, Any]:
    client = HttpClient(base_url(gw))
    try:
        result = await client.request("GET", "/readyz")
    finally:
        await client.close()
    return result.status, result.json()


def authorize_body() -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ts_ms, nonce = time.time_ns() // 1_000_000, secrets.token_hex(8)
    return {
        "public_key": "0x" + public.hex(),
        "signature": key.sign(f"AUTHORIZE|{ts_ms}|{nonce}".encode()).hex(),
        "timestamp_ms": ts_ms,
        "nonce": nonce,
    }


async def events(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    got = [await recv_json(ws) for _ in range(count)]
    assert all(e["op"] == "event" for e in got), got
    return got


def histogram_seen(s: Scrape, name: str, at_least: int) -> float:
    """Check a histogram is whole (cumulative buckets, +Inf = count); return its count."""
    count = s.value(f"{name}_count")
    assert count >= at_least, (name, count)
    assert s.value(f"{name}_bucket", le="+Inf") == count
    assert s.value(f"{name}_sum") >= 0
    buckets = [v for (n, labels), v in s.samples.items() if n == f"{name}_bucket"]
    assert max(buckets) == count and len(buckets) > 2
    return count


async def test_metrics_answer_the_operators_questions(
    tmp_path: Path, procs: Procs, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamgate")
    redis = OwnRedis(procs)
    await redis.start()
    # "hang" holds its delivery (in flight); "fail" answers 500 at once.
    receiver.script = lambda path, n: (200, {}, 60.0) if path == "hang" else (500, {}, 0)
    settings: dict[str, Any] = {
        "broker": "redis",
        "redis_url": redis.url,
        "webhooks_allow_loopback": 1,
        "webhooks_retry_schedule": "600",  # one attempt per delivery within the test
        "webhooks_per_endpoint": 1,
        "webhooks_timeout": 120.0,
        "outbound_buffer_bytes": 64 * 1024,
        "send_buffer_bytes": 16_384,
        "close_timeout": 10.0,
        "ops_per_second": 0.5,
        "ops_burst": 4,
    }
    async with running_gateway(tmp_path, **settings) as gw, contextlib.AsyncExitStack() as st:
        base = base_url(gw)
        publishes = {200: 0, 400: 0, 401: 0}

        async def published(batch: list[dict[str, Any]]) -> None:
            await publish_ok(gw, batch)
            publishes[200] += 1

        # -- subscriptions and publishes; a resume recovered, one not ---------------
        idle = await st.enter_async_context(open_ws(gw))
        a = await st.enter_async_context(open_ws(gw))
        await subscribe(a, ["trade/0xm1"])
        for seq in range(1, 6):
            await published([trade_event("0xm1", seq)])
        seen = await events(a, 5)
        b = await st.enter_async_context(open_ws(gw))
        third = seen[2]
        resume = {"trade/0xm1": {"offset": third["offset"], "epoch": third["epoch"]}}
        ack = await subscribe(b, ["trade/0xm1"], resume=resume)
        assert ack["recovered"] == {"trade/0xm1": True}
        assert [e["offset"] for e in await events(b, 2)] == [4, 5]
        c = await st.enter_async_context(open_ws(gw))
        ack = await subscribe(c, ["trade/0xm1"], resume={"trade/0xm1": {"offset": 3, "epoch": "x"}})
        assert ack["recovered"] == {"trade/0xm1": False}
        await published([trade_event("0xm1", 6)])
        for ws in (a, b, c):
            assert (await events(ws, 1))[0]["offset"] == 6

        # -- refused publishes -------------------------------------------------------
        assert (await publish(gw, [{"topic": "trade/0xm1", "data": {}}])).status == 400
        publishes[400] += 1
        assert (await publish(gw, [trade_event("0xm1", 7)], key="not-the-key")).status == 401
        publishes[401] += 1

        # -- ops past the rate limit -------------------------------------------------
        pinger = await st.enter_async_context(open_ws(gw))
        for i in range(10):
            await send_json(pinger, {"op": "ping", "req_id": str(i)})
        answers = [await recv_json(pinger) for _ in range(10)]
        limited = sum(1 for m in answers if m.get("message") == "RATE_LIMITED")
        assert 0 < limited < 10

        # -- a slow consumer: subscribes, never reads --------------------------------
        slow = await cut_slow_consumer(gw, published)
        frames = await slow.read_frames(3 * UNIT)
        slow.close()
        closes = [f for f in frames if f.opcode is Opcode.CLOSE]
        assert closes and int.from_bytes(closes[0].data[:2], "big") == 4009

        # -- tickets and an authorize ------------------------------------------------
        key, _ = gw.api_keys.create("acme")
        tenant = {"api-key": key}
        status, _ = await post(gw, "/auth/ws-token", {}, {**tenant, "on-behalf-of": "alice"})
        assert status == 200
        status, _ = await post(
            gw, "/auth/ws-token", {}, {"api-key": "sk_wrong", "on-behalf-of": "a"}
        )
        assert status == 401
        status, _ = await post(gw, "/api/v1/authorize", authorize_body(), {})
        assert status == 200
        status, _ = await post(gw, "/api/v1/authorize", {"public_key": "0x00"}, {})
        assert status == 400

        # -- webhooks: one endpoint failing, one hanging -----------------------------
        for name in ("fail", "hang"):
            status, doc = await post(gw, "/webhooks", {"url": receiver.url(name)}, tenant)
            assert status == 201, doc
        failing_id = (await gw.webhook_store.list_endpoints("acme"))[0].id
        await published([notice("acme", "alice", "one")])
        await published([notice("acme", "alice", "two")])
        await receiver.wait_for("fail", 2, 10 * UNIT)
        await receiver.wait_for("hang", 1, 10 * UNIT)
        await until(lambda: gw.dispatcher.stats.attempts["5xx"] == 2, "both failures recorded")

        # -- a scrape before the Redis restart ---------------------------------------
        s = await scrape(base)
        assert s.value("streamgate_connections", endpoint="public") == 5  # idle a b c pinger
        assert s.value("streamgate_connections", endpoint="private") == 0
        assert s.value("streamgate_connections", endpoint="push") == 0
        assert s.value("streamgate_connections_opened_total", endpoint="public") == 6
        assert s.value("streamgate_subscriptions", kind="trade") == 3
        assert s.value("streamgate_subscribes_total", kind="trade") == 4
        assert s.value("streamgate_resumes_total", recovered="true") == 1
        assert s.value("streamgate_resumes_total", recovered="false") == 1
        for code, n in publishes.items():
            assert s.value("streamgate_publish_requests_total", code=str(code)) == n
        histogram_seen(s, "streamgate_publish_duration_seconds", sum(publishes.values()))
        assert s.value("streamgate_publish_duration_seconds_count") == sum(publishes.values())
        assert s.value("streamgate_ws_token_requests_total", code="200") == 1
        assert s.value("streamgate_ws_token_requests_total", code="401") == 1
        assert s.value("streamgate_authorize_requests_total", code="200") == 1
        assert s.value("streamgate_authorize_requests_total", code="400") == 1
        assert s.value("streamgate_rate_limited_total", kind="ops") == limited
        assert s.value("streamgate_slow_consumer_disconnects_total", endpoint="public") == 1
        assert s.value("streamgate_disconnects_total", endpoint="public", code="4009") == 1
        # a: ack and 6 events; b: ack, replay, 1; c: ack, 1; pinger: 10 answers.
        assert s.value("streamgate_messages_written_total", endpoint="public") >= 7 + 3 + 2 + 10
        received = sum(len(orjson.dumps(e)) for e in seen)
        assert s.value("streamgate_bytes_written_total", endpoint="public") > received
        # m1's 6, and the slow topic's at least up to its 64 KiB of 1 KiB events.
        assert s.value("streamgate_publications_total") >= 6 + 64
        histogram_seen(s, "streamgate_fanout_duration_seconds", 6)
        histogram_seen(s, "streamgate_publish_to_write_seconds", 1)
        histogram_seen(s, "streamgate_write_queue_bytes", 1)
        histogram_seen(s, "streamgate_broker_pubsub_lag_seconds", 6)
        assert s.value("streamgate_webhook_attempts_total", result="5xx") == 2
        histogram_seen(s, "streamgate_webhook_attempt_duration_seconds", 2)
        assert s.value("streamgate_webhook_deliveries_in_flight") == 1  # hang's first
        assert s.value("streamgate_webhook_deliveries_due") == 1  # hang's second: per_endpoint
        assert s.value("streamgate_webhook_endpoints_disabled_total", reason="gone") == 0
        assert s.value("streamgate_broker_reconnects_total") == 0
        assert s.value("streamgate_ready") == 1
        assert failing_id in gw.dispatcher.stats.failing

        # -- Redis restarts: not ready meanwhile, then back; its channels are lost ---
        channels = gw.hub.channel_count
        await redis.stop()
        await until(lambda: not gw.broker.ready, "the broker noticed Redis is gone")
        status, doc = await ready_status(gw)
        assert status == 503 and "broker unavailable" in doc["reasons"], doc
        assert (await scrape(base)).value("streamgate_ready") == 0
        await redis.start()
        await until(lambda: gw.broker.ready, "the broker reconnected")
        assert (await ready_status(gw))[0] == 200
        # Interrupted: a, b and c lose their stream (1012) and are closed.
        for ws in (a, b, c):
            await asyncio.wait_for(ws.wait_closed(), 10 * UNIT)
            assert ws.close_code == 1012
        await until(lambda: len(gw.sockets.conns) == 2, "only idle and pinger open")

        said = [r.getMessage() for r in caplog.records if r.name == "streamgate.broker"]
        assert said[0] == "! redis pub/sub connection lost: not ready until it is back"
        assert said[1].startswith("= redis pub/sub connection back after ")
        assert said[1].endswith(f"ready; {channels} of {channels} channels lost")
        s = await scrape(base)
        assert s.value("streamgate_broker_reconnects_total") == 1
        assert s.value("streamgate_broker_lost_channels_total") == channels
        assert s.value("streamgate_disconnects_total", endpoint="public", code="1012") == 3
        assert s.value("streamgate_connections", endpoint="public") == 2
        assert s.value("streamgate_ready") == 1
        for ws in (idle, pinger):
            await ws.close()
        await until(lambda: not gw.sockets.conns, "every socket closed")
        s = await scrape(base)
        assert s.value("streamgate_disconnects_total", endpoint="public", code="1000") == 2
        assert s.value("streamgate_connections", endpoint="public") == 0
