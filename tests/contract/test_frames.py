"""Every message the AsyncAPI document says the gateway sends is sent, and as documented.

Each endpoint is driven through every op, reply, refusal and event variant; each frame
received must be one of that endpoint's documented messages, and together they must
cover all of them (a message nobody can make the gateway send is a document mistake).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from streamgate.client.http import HttpClient
from streamgate.server.app import Gateway

from support import (
    UNIT,
    delta_event,
    open_ws,
    publish_ok,
    recv_json,
    running_gateway,
    send_json,
    snapshot_event,
    trade_event,
)
from support.schemas import frame_schemas

USER = "0x" + "ab" * 32
WHEN = "2024-05-01T12:00:00.000Z"


async def until_pong(ws: ClientConnection, req_id: str, limit: int = 200) -> list[Any]:
    """Every frame up to the pong answering ``req_id`` (sent by the caller), inclusive."""
    got = []
    for _ in range(limit):
        frame = await recv_json(ws)
        got.append(frame)
        if frame.get("op") == "pong" and frame.get("req_id") == req_id:
            return got
    raise AssertionError(f"no pong {req_id} within {limit} frames: {got[-3:]}")


async def ping_and_collect(ws: ClientConnection, req_id: str) -> list[Any]:
    await send_json(ws, {"op": "ping", "ts": 123, "req_id": req_id})
    return await until_pong(ws, req_id)


def names(address: str, frames: list[Any]) -> set[str]:
    schemas = frame_schemas()
    found = {schemas.match(address, f) for f in frames}
    assert None not in found, [schemas.check(address, f) for f in frames]
    return {n for n in found if n is not None}


def ticker(market: str) -> dict[str, Any]:
    numbers = [
        "last_price",
        "mark_price",
        "index_price",
        "open_interest",
        "open_interest_value",
        "funding_rate",
        "funding_rate_percentage",
        "next_funding_time",
        "volume_24h",
        "turnover_24h",
    ]
    return {
        "topic": f"ticker/{market}",
        "data": {"symbol": "M-PERP", **{n: 1 for n in numbers}, "funding_rate": 0.0001},
    }


async def test_public_stream_sends_every_documented_message(gw: Gateway) -> None:
    frames: list[Any] = []
    async with open_ws(gw) as ws:
        topics = ["orderbook/M", "trade/M", "ticker/M"]
        await send_json(ws, {"op": "subscribe", "args": topics, "req_id": "s1"})
        await publish_ok(gw, [snapshot_event("M", 1, [[101, 2]], [[99, 3]])])
        await publish_ok(gw, [delta_event("M", 2, [[101, 0]], [[98, 1]])])
        await publish_ok(gw, [trade_event("M", 1), ticker("M")])
        await send_json(ws, {"op": "subscribe", "args": ["trade/M", "bad topic"], "req_id": "s2"})
        await send_json(ws, {"op": "ping"})
        await ws.send("{not json")
        await send_json(ws, {"op": "auth", "bearer": "x", "req_id": "a"})
        await send_json(ws, {"op": "unsubscribe", "args": ["trade/M"], "req_id": "u"})
        frames += await ping_and_collect(ws, "end")
    assert names("/ws/public", frames) == frame_schemas().sent("/ws/public")


def order(user: str) -> dict[str, Any]:
    return {
        "sid": "o1",
        "side": "buy",
        "size": 5,
        "price": 100,
        "leverage": 2,
        "type": "limit",
        "status": "placed",
        "user_addr": user,
        "market_addr": "M",
        "seq": 1,
    }


def fill(user: str) -> dict[str, Any]:
    return {
        "sid": "f1",
        "side": "buy",
        "size": 5,
        "price": 100,
        "maker_fee": -0.5,
        "taker_fee": 1,
        "taker_order_sid": "o1",
        "taker_addr": user,
        "maker_order_sid": "o0",
        "maker_addr": "0xmaker",
        "market_addr": "M",
        "seq": 1,
        "maker_leverage": 1,
        "taker_leverage": 2,
        "maker_is_cross": False,
        "taker_is_cross": True,
    }


def position(user: str) -> dict[str, Any]:
    return {
        "sid": "p1",
        "market_addr": "M",
        "user_addr": user,
        "size": -5,
        "price": 100,
        "margin": 250,
        "funding_index": 0.5,
        "epoch": 1,
        "is_cross": True,
        "leverage": 2,
        "mark_price": 101,
        "seq": 1,
        "side": "sell",
        "unrealized_pnl": -5,
    }


async def test_private_stream_sends_every_documented_message(tmp_path: Path) -> None:
    frames: list[Any] = []
    async with running_gateway(tmp_path, jwt_leeway=0) as gw:
        bearer = gw.tokens.issue(USER)
        short = gw.tokens.issue(USER, ttl=1.0 * UNIT)
        async with open_ws(gw, "/ws/private") as ws:
            await send_json(ws, {"op": "auth", "bearer": "not a jwt", "req_id": "a0"})
            await send_json(ws, {"op": "auth", "bearer": bearer, "req_id": "a1"})
            subscribe = {"op": "subscribe", "args": ["order", "fill", "position"]}
            await send_json(ws, {**subscribe, "req_id": "s1"})
            frames += await ping_and_collect(ws, "p1")
            events = [
                {"topic": "order", "user_id": USER, "data": [order(USER)]},
                {"topic": "fill", "user_id": USER, "data": [fill(USER)]},
                {"topic": "position", "user_id": USER, "data": [position(USER)]},
            ]
            await publish_ok(gw, events)
            await send_json(ws, {"op": "subscribe", "args": ["order", "trade/M"], "req_id": "s2"})
            await send_json(ws, {"op": "unsubscribe", "args": ["fill"], "req_id": "u"})
            await ws.send("[]")
            frames += await ping_and_collect(ws, "p2")
            # The short bearer runs out: TOKEN_EXPIRED, then a new auth brings the topics back.
            await send_json(ws, {"op": "auth", "bearer": short, "req_id": "a2"})
            for _ in range(20):
                frame = await recv_json(ws, within=5)
                frames.append(frame)
                if frame.get("message") == "TOKEN_EXPIRED":
                    break
            await send_json(ws, {"op": "auth", "bearer": bearer, "req_id": "a3"})
            frames += await ping_and_collect(ws, "end")
    assert any(f.get("message") == "TOKEN_EXPIRED" for f in frames)
    assert names("/ws/private", frames) == frame_schemas().sent("/ws/private")


def trade(sub_user: str, status: str) -> dict[str, Any]:
    return {
        "id": f"tr-{status}",
        "type": "buy",
        "userId": sub_user,
        "steamId": "76561198000000000",
        "tradeUrl": "https://steamcommunity.com/tradeoffer/new/?partner=1&token=x",
        "status": status,
        "game": "cs2",
        "items": [{"id": "i1", "name": "AK-47", "price": "10.50", "status": "pending"}],
        "summary": {"total": 1, "delivered": 0, "completed": 0, "failed": 0},
        "totalPrice": 10.5,
        "currency": "USD",
        "createdAt": WHEN,
        "updatedAt": WHEN,
    }


CHAIN = {"chain": "ETH", "token": None, "txHash": "0x" + "ab" * 32}
PUSHES: list[tuple[str, dict[str, Any]]] = [
    (
        "deposit.transfer",
        {
            "fundingId": "f1",
            "status": "pending",
            "transfer": {"txHash": None, "amount": 25.5, "chain": "ETH"},
        },
    ),
    ("deposit.pending", {"depositId": "d1", **CHAIN, "amountWei": "1000000000000000000"}),
    (
        "deposit.completed",
        {
            "fundingId": "f1",
            "status": "completed",
            "payAmountToken": "25.50",
            "receiveAmountUsd": 25.5,
            "completedAt": WHEN,
        },
    ),
    (
        "deposit.completed",
        {
            "depositId": "d1",
            **CHAIN,
            "amountWei": "1000",
            "amountUsdCents": "2550",
            "confirmations": 12,
            "completedAt": WHEN,
        },
    ),
    ("deposit.failed", {"fundingId": "f2", "status": "expired", "reason": "timeout"}),
    ("deposit.failed", {"depositId": "d2", **CHAIN, "reason": "reorg", "confirmations": 1}),
    ("deposit.refunded", {"fundingId": "f3", "status": "refunded"}),
    ("system.notice", {"severity": "warning", "message": "maintenance at noon"}),
]
TRADE_STATUSES = "initiated pending active hold completed failed canceled declined reverted"


async def test_push_socket_sends_every_documented_message(gw: Gateway) -> None:
    key, _ = gw.api_keys.create("acme")
    client = HttpClient(f"http://127.0.0.1:{gw.port}")
    try:
        minted = await client.request(
            "POST", "/auth/ws-token", headers={"api-key": key, "On-Behalf-Of": "alice"}
        )
    finally:
        await client.close()
    token = minted.json()["data"]["token"]
    pushes = [*PUSHES, *((f"trade.{s}", trade("alice", s)) for s in TRADE_STATUSES.split())]
    events = [{"event": e, "tenant": "acme", "sub_user": "alice", "data": d} for e, d in pushes]
    async with open_ws(gw, "/ws", subprotocols=[f"bearer.{token}"]) as ws:
        frames = [await recv_json(ws)]
        await publish_ok(gw, events)
        frames += [await recv_json(ws) for _ in events]
    await asyncio.sleep(0)
    assert [f["event"] for f in frames] == ["connected", *(e for e, _ in pushes)]
    assert [f["data"] for f in frames[1:]] == [d for _, d in pushes]  # as sent
    assert names("/ws", frames) == frame_schemas().sent("/ws")
