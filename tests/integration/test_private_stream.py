"""/ws/private and POST /api/v1/authorize over real sockets (issue 3)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgate.auth.accounts import account_address
from streamgate.client.http import HttpClient, HttpResult
from streamgate.server.app import Gateway

from support import (
    UNIT,
    open_ws,
    publish,
    publish_ok,
    recv_json,
    running_gateway,
    send_json,
    subscribe,
)


class Wallet:
    """An Ed25519 key pair that signs authorize requests as the stream document says."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.user_id = account_address(self.public)

    def request(self, *, ts_ms: int | None = None, nonce: str | None = None) -> dict[str, Any]:
        ts_ms = time.time_ns() // 1_000_000 if ts_ms is None else ts_ms
        nonce = secrets.token_hex(8) if nonce is None else nonce
        signature = self.key.sign(f"AUTHORIZE|{ts_ms}|{nonce}".encode())
        return {
            "public_key": "0x" + self.public.hex(),
            "signature": signature.hex(),
            "timestamp_ms": ts_ms,
            "nonce": nonce,
        }


async def authorize(gw: Gateway, body: dict[str, Any]) -> HttpResult:
    client = HttpClient(f"http://127.0.0.1:{gw.port}")
    try:
        return await client.post_json("/api/v1/authorize", body)
    finally:
        await client.close()


async def bearer(gw: Gateway, wallet: Wallet) -> str:
    result = await authorize(gw, wallet.request())
    assert result.status == 200, result.body
    doc = result.json()
    assert doc["user_id"] == wallet.user_id
    token: str = doc["token"]
    return token


def order(user: str, sid: str, seq: int, status: str = "placed") -> dict[str, Any]:
    return {
        "sid": sid,
        "side": "buy",
        "size": 10,
        "price": 1000,
        "leverage": 5,
        "type": "limit",
        "status": status,
        "user_addr": user,
        "market_addr": "0xm",
        "seq": seq,
        "stop_loss": None,
        "take_profit": None,
    }


def order_event(user: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {"topic": "order", "user_id": user, "data": [order(user, f"o{seq}", seq)], **extra}


async def auth(ws: Any, token: str, req_id: str = "a") -> dict[str, Any]:
    await send_json(ws, {"op": "auth", "bearer": token, "req_id": req_id})
    answer: dict[str, Any] = await recv_json(ws)
    return answer


async def test_authorize_then_auth_then_own_orders(gw: Gateway) -> None:
    wallet = Wallet()
    token = await bearer(gw, wallet)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == wallet.user_id
    assert 7 * 24 * 3600 - 60 <= claims["exp"] - time.time() <= 7 * 24 * 3600
    async with open_ws(gw, "/ws/private") as ws:
        assert await auth(ws, token, "200001") == {
            "op": "auth",
            "success": True,
            "user_id": wallet.user_id,
            "req_id": "200001",
        }
        await subscribe(ws, ["order", "fill", "position"])
        await publish_ok(gw, [order_event(wallet.user_id, 1)])
        event = await recv_json(ws)
    assert event["topic"] == "order"
    assert event["offset"] == 1
    assert event["data"][0]["sid"] == "o1"
    assert event["data"][0]["user_addr"] == wallet.user_id


async def test_authorize_refusals(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, authorize_rate_limit=7) as gw:
        wallet = Wallet()
        body = wallet.request(nonce="n-1")
        assert (await authorize(gw, body)).status == 200
        replay = await authorize(gw, body)
        assert replay.status == 400
        assert replay.json()["error_code"] in (2001, 2002)
        stale = await authorize(gw, wallet.request(ts_ms=time.time_ns() // 1_000_000 - 60_000))
        assert (stale.status, stale.json()["error_code"]) == (400, 2002)
        future = await authorize(gw, wallet.request(ts_ms=time.time_ns() // 1_000_000 + 60_000))
        assert (future.status, future.json()["error_code"]) == (400, 2002)
        forged = wallet.request()
        forged["public_key"] = Wallet().request()["public_key"]  # someone else's key
        wrong = await authorize(gw, forged)
        assert (wrong.status, wrong.json()["error_code"]) == (400, 2001)
        malformed = await authorize(gw, {**wallet.request(), "signature": "zz"})
        assert (malformed.status, malformed.json()["error_code"]) == (400, 2000)
        assert set(malformed.json()) == {"error_code", "error_message"}
        # This client's seventh request: the last one allowed.
        await authorize(gw, wallet.request())
        limited = await authorize(gw, wallet.request())
        assert limited.status == 429
        assert limited.json()["error_code"] == 2003
        assert int(limited.headers["retry-after"]) >= 1


async def test_private_topics_need_auth_and_refusals_keep_the_socket(gw: Gateway) -> None:
    async with open_ws(gw, "/ws/private") as ws:
        await send_json(ws, {"op": "subscribe", "args": ["order"], "req_id": "1"})
        assert (await recv_json(ws))["message"] == "UNAUTHORIZED"
        await send_json(ws, {"op": "subscribe", "args": ["trade/M"], "req_id": "2"})
        assert (await recv_json(ws))["message"] == "TOPIC_NOT_ALLOWED"
        bad = await auth(ws, "not.a.jwt", "3")
        assert bad["success"] is False and bad["message"] == "INVALID_TOKEN"
        assert bad["req_id"] == "3"
        token = await bearer(gw, wallet := Wallet())
        assert (await auth(ws, token))["user_id"] == wallet.user_id
        await subscribe(ws, ["order"])
    async with open_ws(gw) as ws:  # and private topics are refused on /ws/public
        await send_json(ws, {"op": "subscribe", "args": ["fill"], "req_id": "p"})
        assert (await recv_json(ws))["message"] == "TOPIC_NOT_ALLOWED"


async def test_bearer_expiry_while_connected_then_reauth_on_the_same_socket(
    tmp_path: Path,
) -> None:
    async with running_gateway(tmp_path, bearer_ttl=2.0, jwt_leeway=0.0) as gw:
        wallet = Wallet()
        async with open_ws(gw, "/ws/private") as ws:
            assert (await auth(ws, await bearer(gw, wallet)))["success"] is True
            await subscribe(ws, ["order"])
            await publish_ok(gw, [order_event(wallet.user_id, 1)])
            assert (await recv_json(ws))["offset"] == 1
            expired = await recv_json(ws, within=3)
            assert expired["op"] == "error" and expired["message"] == "TOKEN_EXPIRED"
            await publish_ok(gw, [order_event(wallet.user_id, 2)])  # not delivered now
            with pytest.raises(TimeoutError):
                await recv_json(ws, within=0.3)
            await send_json(ws, {"op": "subscribe", "args": ["order"], "req_id": "x"})
            assert (await recv_json(ws))["message"] == "UNAUTHORIZED"
            assert (await auth(ws, await bearer(gw, wallet), "again"))["success"] is True
            restored = await recv_json(ws)
            assert restored == {
                "op": "subscribed",
                "args": ["order"],
                "req_id": "again",
                "recovered": {"order": True},
            }
            missed = await recv_json(ws)
            assert (missed["offset"], missed["data"][0]["sid"]) == (2, "o2")


async def test_resume_of_a_private_topic(gw: Gateway) -> None:
    wallet = Wallet()
    token = await bearer(gw, wallet)
    async with open_ws(gw, "/ws/private") as ws:
        await auth(ws, token)
        await subscribe(ws, ["order"])
        await publish_ok(gw, [order_event(wallet.user_id, i) for i in (1, 2)])
        last = [await recv_json(ws) for _ in range(2)][-1]
    await publish_ok(gw, [order_event(wallet.user_id, i) for i in (3, 4)])
    async with open_ws(gw, "/ws/private") as ws:
        await auth(ws, token)
        ack = await subscribe(
            ws, ["order"], resume={"order": {"offset": last["offset"], "epoch": last["epoch"]}}
        )
        assert ack["recovered"] == {"order": True}
        replay = [await recv_json(ws) for _ in range(2)]
    assert [e["data"][0]["sid"] for e in replay] == ["o3", "o4"]


async def test_platform_tokens_by_kid_and_alg_none_refused(tmp_path: Path) -> None:
    settings_ = {
        "jwt_hs256_secrets": "plat=s3cr3t-platform-key-0123456789abcdef",
        "jwt_trusted_issuers": "platform",
    }
    async with running_gateway(tmp_path, **settings_) as gw:
        now = int(time.time())
        claims = {
            "sub": "user-42",
            "iss": "platform",
            "aud": "streamgate",
            "iat": now,
            "exp": now + 60,
        }
        good = jwt.encode(
            claims,
            "s3cr3t-platform-key-0123456789abcdef",
            algorithm="HS256",
            headers={"kid": "plat"},
        )
        none = jwt.encode(claims, "", algorithm="none", headers={"kid": "plat"})
        async with open_ws(gw, "/ws/private") as ws:
            assert (await auth(ws, none))["success"] is False
            assert (await auth(ws, good)) == {
                "op": "auth",
                "success": True,
                "user_id": "user-42",
                "req_id": "a",
            }


users = st.lists(st.integers(0, 5), min_size=1, max_size=40)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=users)
async def test_no_user_ever_receives_another_users_event(gw: Gateway, sequence: list[int]) -> None:
    wallets = [Wallet() for _ in range(6)]
    tokens = await asyncio.gather(*(bearer(gw, w) for w in wallets))
    sockets = [open_ws(gw, "/ws/private") for _ in wallets]
    conns = [await s.__aenter__() for s in sockets]
    try:
        for ws, token in zip(conns, tokens, strict=True):
            await auth(ws, token)
            await subscribe(ws, ["order"])
        tag = secrets.token_hex(4)
        events = [order_event(wallets[u].user_id, i) for i, u in enumerate(sequence)]
        for i, e in enumerate(events):
            e["data"][0]["sid"] = f"{tag}-{i}"
        result = await publish(gw, events)
        assert result.status == 200
        for u, ws in enumerate(conns):
            want = [f"{tag}-{i}" for i, owner in enumerate(sequence) if owner == u]
            got = []
            for _ in want:
                event = await recv_json(ws)
                assert event["data"][0]["user_addr"] == wallets[u].user_id
                got.append(event["data"][0]["sid"])
            assert got == want
            with pytest.raises(TimeoutError):
                await recv_json(ws, within=0.02 * UNIT)
    finally:
        for s in sockets:
            await s.__aexit__(None, None, None)
