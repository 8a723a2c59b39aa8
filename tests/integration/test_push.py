"""Push protocol over real sockets (issue 4): tickets, /ws, close codes, isolation, resume."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from streamgate.client.http import HttpClient, HttpResult
from streamgate.server.app import Gateway

from support import (
    UNIT,
    messages_until_close,
    notice,
    publish,
    publish_ok,
    recv_json,
    running_gateway,
    send_json,
    ws_url,
)

TX = "0x" + "ab" * 32


async def mint(gw: Gateway, key: str | None, sub_user: str | None) -> HttpResult:
    headers = {}
    if key is not None:
        headers["api-key"] = key
    if sub_user is not None:
        headers["On-Behalf-Of"] = sub_user
    client = HttpClient(f"http://127.0.0.1:{gw.port}")
    try:
        return await client.request("POST", "/auth/ws-token", headers=headers)
    finally:
        await client.close()


async def ticket(gw: Gateway, key: str, sub_user: str) -> str:
    result = await mint(gw, key, sub_user)
    assert result.status == 200, result.body
    token: str = result.json()["data"]["token"]
    return token


def push_socket(
    gw: Gateway, token: str | None, *, query: str = "", subprotocol: bool = True
) -> Any:
    url = ws_url(gw, "/ws") + query
    if token is not None and not subprotocol:
        url += ("&" if "?" in url else "?") + f"token={token}"
    protocols = [f"bearer.{token}"] if token is not None and subprotocol else None
    return connect(url, subprotocols=protocols, ping_interval=None, open_timeout=5 * UNIT)  # type: ignore[arg-type]


def deposit_pending(tenant: str, sub_user: str, deposit: str) -> dict[str, Any]:
    return {
        "event": "deposit.pending",
        "tenant": tenant,
        "sub_user": sub_user,
        "data": {
            "depositId": deposit,
            "chain": "ETH",
            "token": "USDC",
            "txHash": TX,
            "amountWei": "25500000000000000000",
        },
    }


async def test_ws_token_envelope_and_ticket_claims(gw: Gateway) -> None:
    key, _ = gw.api_keys.create("acme")
    result = await mint(gw, key, "alice")
    assert result.status == 200
    doc = result.json()
    assert doc["success"] is True and doc["requestId"].startswith("req_")
    assert doc["data"]["expiresIn"] == "1h"
    claims = jwt.decode(doc["data"]["token"], options={"verify_signature": False})
    assert (claims["sub"], claims["tenant"], claims["purpose"]) == ("alice", "acme", "ws-push")
    assert set(claims["scopes"]) == {"deposit", "trade", "market"}
    assert 3500 <= claims["exp"] - time.time() <= 3600
    assert claims["jti"] and claims["iat"]


async def test_ws_token_errors(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, ws_token_rate_limit=3) as gw:
        key, info = gw.api_keys.create("acme")
        cases = [
            (await mint(gw, None, "alice"), 401, "MISSING_API_KEY"),
            (await mint(gw, "sgk_nope", "alice"), 401, "INVALID_API_KEY"),
            (await mint(gw, key, None), 400, "VALIDATION_ERROR"),
            (await mint(gw, key, "x" * 129), 400, "VALIDATION_ERROR"),
        ]
        for result, status, error_key in cases:
            assert result.status == status
            doc = result.json()
            assert doc["success"] is False and doc["requestId"].startswith("req_")
            assert doc["error"]["code"] == status and doc["error"]["key"] == error_key
            assert doc["error"]["message"]
        assert (await mint(gw, key, "a" * 128)).status == 200
        limited = await mint(gw, key, "alice")
        assert limited.status == 429
        assert limited.json()["error"]["key"] == "RATE_LIMITED"
        assert int(limited.headers["retry-after"]) >= 1
        gw.api_keys.revoke(info.key_id)
        revoked = await mint(gw, key, "alice")
        assert (revoked.status, revoked.json()["error"]["key"]) == (401, "API_KEY_REVOKED")


async def test_connected_then_own_events_only_across_sub_users_and_tenants(gw: Gateway) -> None:
    acme, _ = gw.api_keys.create("acme")
    globex, _ = gw.api_keys.create("globex")
    alice = await ticket(gw, acme, "alice")
    bob = await ticket(gw, acme, "bob")
    other_alice = await ticket(gw, globex, "alice")  # same id, another tenant: another person
    async with (
        push_socket(gw, alice) as a,
        push_socket(gw, bob) as b,
        push_socket(gw, other_alice, subprotocol=False) as g,
    ):
        assert a.subprotocol == f"bearer.{alice}"  # selected, as browsers require
        assert g.subprotocol is None
        for ws in (a, b, g):
            hello = await recv_json(ws)
            assert hello["event"] == "connected" and hello["data"] == {
                "userId": hello["data"]["userId"]
            }
            assert abs(hello["ts"] - time.time() * 1000) < 5000
        await publish_ok(
            gw,
            [
                deposit_pending("acme", "alice", "d-a"),
                deposit_pending("acme", "bob", "d-b"),
                deposit_pending("globex", "alice", "d-g"),
            ],
        )
        got_a, got_b, got_g = [await recv_json(ws) for ws in (a, b, g)]
        assert got_a["event"] == "deposit.pending" and got_a["data"]["depositId"] == "d-a"
        assert got_b["data"]["depositId"] == "d-b"
        assert got_g["data"]["depositId"] == "d-g"
        assert set(got_a) == {"event", "data", "ts", "offset", "epoch"}
        assert got_a["offset"] == 1
        for ws in (a, b, g):
            with pytest.raises(TimeoutError):
                await recv_json(ws, within=0.1)


async def test_missing_and_invalid_tickets_close_4001_after_the_upgrade(gw: Gateway) -> None:
    async with push_socket(gw, None) as ws:
        assert await messages_until_close(ws) == ([], 4001)
        assert ws.close_reason == "Missing token"
    for bad in ("garbage", "a.b.c"):
        async with push_socket(gw, bad) as ws:
            assert await messages_until_close(ws) == ([], 4001)
            assert ws.close_reason == "Invalid token"
    # A stream-protocol bearer is not a push ticket.
    stream_bearer = gw.tokens.issue("0x" + "11" * 32)
    async with push_socket(gw, stream_bearer) as ws:
        assert (await messages_until_close(ws))[1] == 4001
    # And a push ticket is not a stream bearer.
    key, _ = gw.api_keys.create("acme")
    push_ticket = await ticket(gw, key, "alice")
    async with connect(ws_url(gw, "/ws/private"), ping_interval=None) as ws:
        await send_json(ws, {"op": "auth", "bearer": push_ticket, "req_id": "x"})
        answer = await recv_json(ws)
        assert answer["success"] is False and answer["message"] == "INVALID_TOKEN"


async def test_client_frames_close_4002_read_only(gw: Gateway) -> None:
    key, _ = gw.api_keys.create("acme")
    async with push_socket(gw, await ticket(gw, key, "alice")) as ws:
        assert (await recv_json(ws))["event"] == "connected"
        await ws.send("hello?")
        messages, code = await messages_until_close(ws)
        assert (messages, code, ws.close_reason) == ([], 4002, "Read-only")


async def test_per_sub_user_socket_limit_4008(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, max_sockets_per_sub_user=2) as gw:
        key, _ = gw.api_keys.create("acme")
        token = await ticket(gw, key, "alice")
        async with push_socket(gw, token) as one, push_socket(gw, token) as two:
            for ws in (one, two):
                assert (await recv_json(ws))["event"] == "connected"
            async with push_socket(gw, token) as three:
                assert await messages_until_close(three) == ([], 4008)
                assert three.close_reason == "Too many"
            async with push_socket(gw, await ticket(gw, key, "bob")) as bob:
                assert (await recv_json(bob))["event"] == "connected"  # bob has his own limit
        async with push_socket(gw, token) as again:  # the slots came back
            assert (await recv_json(again))["event"] == "connected"


async def test_resume_with_offset_and_epoch(gw: Gateway) -> None:
    key, _ = gw.api_keys.create("acme")
    token = await ticket(gw, key, "alice")
    async with push_socket(gw, token) as ws:
        await recv_json(ws)
        await publish_ok(gw, [deposit_pending("acme", "alice", f"d{i}") for i in (1, 2)])
        last = [await recv_json(ws) for _ in range(2)][-1]
    await publish_ok(gw, [deposit_pending("acme", "alice", f"d{i}") for i in (3, 4)])
    query = f"?offset={last['offset']}&epoch={last['epoch']}"
    async with push_socket(gw, token, query=query) as ws:
        hello = await recv_json(ws)
        assert hello["data"] == {"userId": "alice", "recovered": True}
        replay = [await recv_json(ws) for _ in range(2)]
    assert [e["data"]["depositId"] for e in replay] == ["d3", "d4"]
    async with push_socket(gw, token, query="?offset=1&epoch=stale") as ws:
        assert (await recv_json(ws))["data"] == {"userId": "alice", "recovered": False}
    with pytest.raises(InvalidStatus) as info:
        async with push_socket(gw, token, query="?offset=-1&epoch=x"):
            pass
    assert info.value.response.status_code == 400


async def test_tenant_wide_notice_reaches_every_connected_sub_user_of_that_tenant(
    gw: Gateway,
) -> None:
    acme, _ = gw.api_keys.create("acme")
    globex, _ = gw.api_keys.create("globex")
    async with (
        push_socket(gw, await ticket(gw, acme, "alice")) as a,
        push_socket(gw, await ticket(gw, acme, "bob")) as b,
        push_socket(gw, await ticket(gw, globex, "carol")) as c,
    ):
        for ws in (a, b, c):
            await recv_json(ws)
        result = await publish_ok(gw, [notice("acme", None, "maintenance at 02:00")])
        assert result == {"accepted": 1, "duplicates": 0}
        for ws in (a, b):
            got = await recv_json(ws)
            assert got["event"] == "system.notice"
            assert got["data"] == {"severity": "info", "message": "maintenance at 02:00"}
        with pytest.raises(TimeoutError):
            await recv_json(c, within=0.2)


async def test_wrong_shape_is_refused_with_the_field_named(gw: Gateway) -> None:
    bad = deposit_pending("acme", "alice", "d1")
    bad["data"]["amountWei"] = 25
    result = await publish(gw, [notice("acme", "alice", "ok"), bad])
    assert result.status == 400
    error = result.json()["error"]
    assert (error["code"], error["index"], error["field"]) == ("INVALID_EVENT", 1, "data.amountWei")


async def test_push_sockets_open_only_with_the_gateways_own_tickets(tmp_path: Path) -> None:
    """Platform keys verify private-stream bearers, never push tickets (issue 11.9)."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    files = []
    for kid, private in (("rsa", rsa_key), ("ed", ed_key)):
        path = tmp_path / f"{kid}.pem"
        path.write_bytes(
            private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
        files.append(f"{kid}={path}")
    hs_secret = "s3cr3t-platform-key-0123456789abcdef"
    settings = {
        "jwt_hs256_secrets": f"plat={hs_secret}",
        "jwt_public_keys": ",".join(files),
        "jwt_trusted_issuers": "platform",
    }
    async with running_gateway(tmp_path / "gw", **settings) as gw:
        now = int(time.time())
        claims = {
            "sub": "u1",
            "iss": "platform",
            "aud": "streamgate",
            "iat": now,
            "exp": now + 60,
            "purpose": "ws-push",
            "tenant": "acme",
        }
        pem = {
            k: v.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            for k, v in (("rsa", rsa_key), ("ed", ed_key))
        }
        forged = [
            jwt.encode(claims, hs_secret, algorithm="HS256", headers={"kid": "plat"}),
            jwt.encode(claims, pem["rsa"], algorithm="RS256", headers={"kid": "rsa"}),
            jwt.encode(claims, pem["ed"], algorithm="EdDSA", headers={"kid": "ed"}),
            # Our own key, but a tenant no channel can carry: 4001, not a dropped socket.
            gw.tokens.issue("u1", purpose="ws-push", extra={"tenant": "evil:x"}),
        ]
        for token in forged:
            async with push_socket(gw, token) as ws:
                messages, code = await messages_until_close(ws)
            assert (messages, code) == ([], 4001), token
        key, _ = gw.api_keys.create("acme")  # the gateway's own ticket still opens one
        async with push_socket(gw, await ticket(gw, key, "u1")) as ws:
            assert (await recv_json(ws))["event"] == "connected"
