"""Webhook delivery end to end (issue 6): signed, retried, filtered, rotated, isolated."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook

from streamgate.client.http import HttpClient
from streamgate.server.app import Gateway

from support import UNIT, publish_ok, running_gateway
from support.webhook_receiver import Receiver

FAST = "0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05"


async def api(gw: Gateway, key: str, method: str, path: str, doc: Any = None) -> Any:
    client = HttpClient(f"http://127.0.0.1:{gw.port}")
    try:
        body = b"" if doc is None else orjson.dumps(doc)
        result = await client.request(
            method, path, body=body, headers={"api-key": key, "content-type": "application/json"}
        )
    finally:
        await client.close()
    return result.status, result.json()


def notice(tenant: str, sub_user: str, message: str) -> dict[str, Any]:
    return {
        "event": "system.notice",
        "tenant": tenant,
        "sub_user": sub_user,
        "data": {"severity": "info", "message": message},
    }


def deposit(tenant: str, sub_user: str, funding: str) -> dict[str, Any]:
    return {
        "event": "deposit.refunded",
        "tenant": tenant,
        "sub_user": sub_user,
        "data": {"fundingId": funding, "status": "refunded"},
    }


async def endpoint(gw: Gateway, key: str, url: str, **extra: Any) -> dict[str, Any]:
    status, doc = await api(gw, key, "POST", "/webhooks", {"url": url, **extra})
    assert status == 201, doc
    data: dict[str, Any] = doc["data"]
    return data


async def test_signed_delivery_verified_by_standardwebhooks(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with running_gateway(tmp_path, webhooks_allow_loopback=1) as gw:
        key, _ = gw.api_keys.create("acme")
        ep = await endpoint(gw, key, receiver.url("a"))
        assert ep["secret"].startswith("whsec_")
        await publish_ok(gw, [notice("acme", "alice", "hello hooks")])
        [got] = await receiver.wait_for("a", 1, 5 * UNIT)
    Webhook(ep["secret"]).verify(got.body, got.headers)
    body = orjson.loads(got.body)
    assert body["type"] == "system.notice"
    assert body["data"] == {"severity": "info", "message": "hello hooks"}
    assert body["subUser"] == "alice"
    assert body["id"] == got.headers["webhook-id"]
    assert set(body) == {"id", "type", "createdAt", "data", "subUser"}


async def test_retries_keep_the_webhook_id_and_attempts_are_listed(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script = lambda path, n: (503, {}, 0) if n < 2 else (200, {}, 0)
    async with running_gateway(
        tmp_path, webhooks_allow_loopback=1, webhooks_retry_schedule=FAST
    ) as gw:
        key, _ = gw.api_keys.create("acme")
        await endpoint(gw, key, receiver.url("r"))
        await publish_ok(gw, [notice("acme", "alice", "retry me")])
        tries = await receiver.wait_for("r", 3, 10 * UNIT)
        assert len({t.headers["webhook-id"] for t in tries}) == 1
        msg_id = tries[0].headers["webhook-id"]
        for _ in range(50):
            _status, doc = await api(gw, key, "GET", f"/webhooks/messages/{msg_id}/attempts")
            if len(doc["data"]) == 3:
                break
            await asyncio.sleep(0.05)
    assert [a["statusCode"] for a in doc["data"]] == [503, 503, 200]
    assert doc["data"][0]["error"] and doc["data"][2]["error"] is None


async def test_event_type_filter(tmp_path: Path, receiver: Receiver) -> None:
    async with running_gateway(tmp_path, webhooks_allow_loopback=1) as gw:
        key, _ = gw.api_keys.create("acme")
        await endpoint(gw, key, receiver.url("deposits"), eventTypes=["deposit.*"])
        await endpoint(gw, key, receiver.url("all"))
        await publish_ok(gw, [notice("acme", "bob", "n1"), deposit("acme", "bob", "f1")])
        await receiver.wait_for("all", 2, 5 * UNIT)
        [only] = await receiver.wait_for("deposits", 1, 5 * UNIT)
        await asyncio.sleep(0.2)
    assert orjson.loads(only.body)["type"] == "deposit.refunded"
    assert len(receiver.at("deposits")) == 1


async def test_secret_rotation_signs_with_both_during_the_overlap(
    tmp_path: Path, receiver: Receiver
) -> None:
    async with running_gateway(tmp_path, webhooks_allow_loopback=1) as gw:
        key, _ = gw.api_keys.create("acme")
        ep = await endpoint(gw, key, receiver.url("rot"))
        status, doc = await api(gw, key, "POST", f"/webhooks/{ep['id']}/rotate-secret", {})
        assert status == 200
        new_secret = doc["data"]["secret"]
        assert new_secret != ep["secret"]
        await publish_ok(gw, [notice("acme", "alice", "rotated")])
        [got] = await receiver.wait_for("rot", 1, 5 * UNIT)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(ep["secret"]).verify(got.body, got.headers)
    Webhook(new_secret).verify(got.body, got.headers)


async def test_410_disables_the_endpoint(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script = lambda path, n: (410, {}, 0)
    async with running_gateway(tmp_path, webhooks_allow_loopback=1) as gw:
        key, _ = gw.api_keys.create("acme")
        ep = await endpoint(gw, key, receiver.url("gone"))
        await publish_ok(gw, [notice("acme", "alice", "anyone?")])
        await receiver.wait_for("gone", 1, 5 * UNIT)
        for _ in range(50):
            _, doc = await api(gw, key, "GET", f"/webhooks/{ep['id']}")
            if not doc["data"]["enabled"]:
                break
            await asyncio.sleep(0.05)
        assert doc["data"]["enabled"] is False
        assert "410" in doc["data"]["disabledReason"]
        await publish_ok(gw, [notice("acme", "alice", "still there?")])
        await asyncio.sleep(0.3)
    assert len(receiver.at("gone")) == 1


async def test_a_slow_endpoint_does_not_delay_a_fast_one(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script = lambda path, n: (200, {}, 3.0 if path == "slow" else 0)
    async with running_gateway(tmp_path, webhooks_allow_loopback=1, webhooks_per_endpoint=2) as gw:
        slow_key, _ = gw.api_keys.create("slowco")
        fast_key, _ = gw.api_keys.create("fastco")
        await endpoint(gw, slow_key, receiver.url("slow"))
        await endpoint(gw, fast_key, receiver.url("fast"))
        loop = asyncio.get_running_loop()
        started = loop.time()
        events = [notice("slowco", "u", f"s{i}") for i in range(10)]
        events += [notice("fastco", "u", f"f{i}") for i in range(10)]
        await publish_ok(gw, events)
        await receiver.wait_for("fast", 10, 5 * UNIT)
        fast_done = loop.time() - started
        assert len(receiver.at("slow")) <= 4  # two in flight, each taking 3 s
    assert fast_done < 2.5
