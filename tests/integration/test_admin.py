"""The admin view (issue 15): a node's figures as JSON behind ``admin_key``; /readyz's reasons."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from streamgate.client.http import HttpClient, HttpResult
from streamgate.server.app import Gateway

from support import (
    UNIT,
    RawClient,
    base_url,
    notice,
    open_ws,
    publish_ok,
    running_gateway,
    subscribe,
    trade_event,
    ws_url,
)
from support.cluster import until
from support.metrics import scrape
from support.slow import cut_slow_consumer
from support.webhook_receiver import Receiver

KEY = "admin-key-of-the-test"


async def get(gw: Gateway, path: str, headers: dict[str, str] | None = None) -> HttpResult:
    client = HttpClient(base_url(gw))
    try:
        return await client.request("GET", path, headers=headers or {})
    finally:
        await client.close()


async def figures(gw: Gateway) -> dict[str, Any]:
    result = await get(gw, "/admin/api", {"authorization": f"Bearer {KEY}"})
    assert result.status == 200, result.body
    doc: dict[str, Any] = result.json()
    return doc


async def test_no_admin_key_no_admin_view(gw: Gateway) -> None:
    for path in ("/admin", "/admin/api", "/admin/admin.js"):
        result = await get(gw, path, {"authorization": f"Bearer {KEY}"})
        assert result.status == 404, (path, result.body)
        assert result.json()["error"]["code"] == "NOT_FOUND"


async def test_the_key_is_required_and_checked(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, admin_key=KEY) as gw:
        missing = await get(gw, "/admin/api")
        assert missing.status == 401
        assert missing.json() == {
            "error": {
                "code": "UNAUTHORIZED",
                "message": "Authorization: Bearer <admin key> required",
            }
        }
        assert missing.headers["www-authenticate"].startswith("Bearer")
        for wrong in (KEY + "x", KEY[:-1], "admin"):
            result = await get(gw, "/admin/api", {"authorization": f"Bearer {wrong}"})
            assert result.status == 403, wrong
        result = await get(gw, "/admin/api", {"authorization": "Bearer not-it"})
        assert result.status == 403
        assert result.json()["error"]["code"] == "FORBIDDEN"
        page = await get(gw, "/admin")  # the page itself holds no figure: no key needed
        assert page.status == 200 and page.headers["content-type"].startswith("text/html")
        assert b'id="admin-key"' in page.body and KEY.encode() not in page.body


async def test_figures_of_the_node(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = lambda path, n: (500, {}, 0)
    settings: dict[str, Any] = {
        "admin_key": KEY,
        "webhooks_allow_loopback": 1,
        "webhooks_retry_schedule": "600",
        "outbound_buffer_bytes": 64 * 1024,
        "send_buffer_bytes": 16_384,
    }
    async with running_gateway(tmp_path, **settings) as gw, contextlib.AsyncExitStack() as st:
        busy = [await st.enter_async_context(open_ws(gw)) for _ in range(3)]
        for ws in busy:
            await subscribe(ws, ["trade/0xbusy"])
        quiet = await st.enter_async_context(open_ws(gw))
        await subscribe(quiet, ["trade/0xquiet", "ticker/0xquiet"])
        for seq in range(1, 4):
            await publish_ok(gw, [trade_event("0xbusy", seq)])
        await publish_ok(gw, [trade_event("0xquiet", 1)])
        first = await figures(gw)
        assert first["connections"] == {"public": 4, "private": 0, "push": 0}
        assert first["ready"] is True and first["reasons"] == []
        channels = first["channels"]
        assert channels["total"] == 3
        top = channels["by_subscribers"][0]
        assert (top["channel"], top["subscribers"], top["events"]) == ("trade/0xbusy", 3, 3)
        # Rates between two looks: only 0xquiet publishes in between.
        for seq in range(2, 12):
            await publish_ok(gw, [trade_event("0xquiet", seq)])
        second = await figures(gw)
        rated = second["channels"]["by_event_rate"]
        assert rated[0]["channel"] == "trade/0xquiet" and rated[0]["events"] == 11
        assert all(c["channel"] != "trade/0xbusy" for c in rated)  # nothing since the last look
        assert all(c["channel"] != "ticker/0xquiet" for c in rated)  # never published

        # A failing webhook endpoint, with its last error.
        key, _ = gw.api_keys.create("acme")
        client = HttpClient(base_url(gw))
        try:
            made = await client.post_json(
                "/webhooks", {"url": receiver.url("hook") + "?token=secret"}, {"api-key": key}
            )
        finally:
            await client.close()
        assert made.status == 201, made.body
        endpoint_id = made.json()["data"]["id"]
        await publish_ok(gw, [notice("acme", "alice", "x")])
        await receiver.wait_for("hook", 1, 10 * UNIT)
        await until(lambda: endpoint_id in gw.dispatcher.stats.failing, "the failure recorded")
        hooks = (await figures(gw))["webhooks"]
        [failing] = hooks["failing"]
        assert failing["endpoint_id"] == endpoint_id and failing["tenant"] == "acme"
        assert failing["last_error"] == "HTTP 500" and failing["failures"] == 1
        assert failing["target"] == receiver.url("hook")  # no query: it may hold a secret
        assert hooks["due"] == 0 and hooks["in_flight"] == 0
        assert hooks["attempts"] == {"5xx": 1}

        # A slow consumer cut, in the recent ones.
        slow = await cut_slow_consumer(gw, lambda batch: publish_ok(gw, batch))
        slow.close()
        cuts = (await figures(gw))["slow_consumers"]
        assert cuts["total"] == 1
        [cut] = cuts["recent"]
        assert cut["endpoint"] == "public" and cut["client"] == "127.0.0.1"
        assert 0 < cut["queued_bytes"] <= 64 * 1024


async def test_readyz_says_why(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, drain_timeout=5.0, close_timeout=5.0) as gw:
        ready = await get(gw, "/readyz")
        assert (ready.status, ready.json()) == (200, {"status": "ready"})
        await gw.webhook_store.close()  # the outbox cannot be reached any more
        result = await get(gw, "/readyz")
        assert result.status == 503
        assert result.json() == {
            "status": "not ready",
            "reason": "outbox unavailable",
            "reasons": ["outbox unavailable"],
        }
        scraped = await scrape(base_url(gw))  # the gauge says what /readyz says
        assert scraped.value("streamgate_ready") == 0
        assert "streamgate_webhook_deliveries_due" not in scraped.families  # cannot say
        # Draining: a peer that never answers the close keeps the drain going meanwhile.
        dead = await RawClient.connect(ws_url(gw))
        draining = asyncio.create_task(gw.drain())
        await until(lambda: gw.draining, "draining")
        assert await gw.unready_reasons() == ["draining", "outbox unavailable"]
        dead.close()
        await draining
