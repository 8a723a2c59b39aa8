"""Every HTTP operation's success path (which fuzzing cannot reach: a valid signature, an
existing endpoint) and its usual refusals, each answer checked against openapi.json."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from streamgate.client.http import HttpClient
from streamgate.server.app import Gateway

from support import base_url, publish_ok, running_gateway, trade_event
from support.schemas import check_http


class Api:
    """Requests to one gateway, each answer checked against the document."""

    def __init__(self, gw: Gateway) -> None:
        self.client = HttpClient(base_url(gw))
        self.seen: list[tuple[str, str, int]] = []

    async def call(
        self,
        method: str,
        path: str,
        template: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        raw = b"" if body is None else orjson.dumps(body)
        sent = {"content-type": "application/json", **(headers or {})} if raw else headers
        result = await self.client.request(method, path, body=raw, headers=sent)
        doc = result.json() if result.headers.get("content-type") == "application/json" else None
        template = template or path.partition("?")[0]
        problems = check_http(method, template, body, result.status, doc)
        assert problems == [], problems
        self.seen.append((method, template, result.status))
        return result.status, doc


def signed(private: Ed25519PrivateKey, **extra: Any) -> dict[str, Any]:
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ts, nonce = time.time_ns() // 1_000_000, secrets.token_urlsafe(16)
    signature = private.sign(f"AUTHORIZE|{ts}|{nonce}".encode())
    return {
        "public_key": "0x" + public.hex(),
        "signature": "0x" + signature.hex(),
        "timestamp_ms": ts,
        "nonce": nonce,
        **extra,
    }


async def test_stream_bearer_and_gateway_endpoints(gw: Gateway) -> None:
    api = Api(gw)
    try:
        key = Ed25519PrivateKey.generate()
        status, doc = await api.call("POST", "/api/v1/authorize", body=signed(key))
        assert status == 200 and doc["user_id"].startswith("0x")
        body = signed(key)
        nonce, ts = body["nonce"], body["timestamp_ms"]
        full = f"APTOS\nmessage: AUTHORIZE|{ts}|{nonce}\nnonce: {nonce}"
        body["signature"] = "0x" + key.sign(full.encode()).hex()
        status, _ = await api.call("POST", "/api/v1/authorize", body={**body, "full_message": full})
        assert status == 200
        assert (await api.call("POST", "/api/v1/authorize", body={**body, "nonce": ""}))[0] == 400
        await publish_ok(gw, [trade_event("M", 1)])
        assert (await api.call("GET", "/api/v1/markets"))[1][0]["market_addr"] == "M"
        for path in ("/api/v1/stats", "/healthz", "/readyz", "/metrics"):
            assert (await api.call("GET", path))[0] == 200
    finally:
        await api.client.close()


async def test_history_answers_the_frames_the_stream_sends(gw: Gateway) -> None:
    if hasattr(gw.router.resolve("GET", "/api/v1/history"), "status"):
        pytest.skip("GET /api/v1/history is not served by this gateway yet")
    api = Api(gw)
    try:
        await publish_ok(gw, [trade_event("M", 1), trade_event("M", 2)])
        status, doc = await api.call("GET", "/api/v1/history?topic=trade/M&limit=5")
        assert status == 200 and [e["offset"] for e in doc["events"]] == [1, 2]
        assert (await api.call("GET", "/api/v1/history?topic=nope"))[0] == 400
        assert (await api.call("GET", "/api/v1/history?topic=trade/M&limit=0"))[0] == 400
    finally:
        await api.client.close()


async def test_push_ticket_and_every_webhook_operation(tmp_path: Any) -> None:
    async with running_gateway(tmp_path, webhooks_allow_loopback=1) as gw:
        key, _ = gw.api_keys.create("acme")
        tenant = {"api-key": key}
        api = Api(gw)
        try:
            mint = {**tenant, "On-Behalf-Of": "alice"}
            assert (await api.call("POST", "/auth/ws-token", headers=mint))[0] == 200
            assert (await api.call("POST", "/auth/ws-token", headers=tenant))[0] == 400
            assert (await api.call("POST", "/auth/ws-token", headers={"api-key": "x"}))[0] == 401
            # Port 9 (discard) on loopback: deliveries fail here, on this machine.
            target = {"url": "http://127.0.0.1:9/hook", "eventTypes": ["system.*"]}
            status, made = await api.call("POST", "/webhooks", body=target, headers=tenant)
            assert status == 201
            one = f"/webhooks/{made['data']['id']}"
            notice = {"severity": "info", "message": "hello"}
            event = {"event": "system.notice", "tenant": "acme", "sub_user": "a", "data": notice}
            await publish_ok(gw, [event])
            status, listed = await api.call("GET", "/webhooks/messages?limit=10", headers=tenant)
            message = f"/webhooks/messages/{listed['data'][0]['id']}"
            calls = [
                ("GET", "/webhooks", None, None, 200),
                ("GET", one, "/webhooks/{id}", None, 200),
                ("PATCH", one, "/webhooks/{id}", {"enabled": False}, 200),
                ("PATCH", one, "/webhooks/{id}", {"enabled": "yes"}, 400),
                ("POST", f"{one}/rotate-secret", "/webhooks/{id}/rotate-secret", {}, 200),
                ("POST", f"{one}/recover", "/webhooks/{id}/recover", {"since": 0}, 202),
                ("GET", f"{message}/attempts", "/webhooks/messages/{msg}/attempts", None, 200),
                ("POST", f"{message}/resend", "/webhooks/messages/{msg}/resend", {}, 202),
                ("DELETE", one, "/webhooks/{id}", None, 200),
                ("GET", one, "/webhooks/{id}", None, 404),
            ]
            for method, path, template, body, expected in calls:
                got = await api.call(method, path, template, body, tenant)
                assert got[0] == expected, (method, path, got)
        finally:
            await api.client.close()
