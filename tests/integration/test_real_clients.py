"""What real third-party clients send and read (issue 10; ../shared/reference/CLIENTS.md).

Each test plays one client's behaviour over real sockets: hummingbot's pipelined auth,
Ekiden's SDK subscribe and authorize, the platforms' own payload types, the fields the
clients read, the latest ticker on subscribe and the recent trades a tape starts from.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.asyncio.client import connect
from websockets.frames import Opcode

from streamgate.auth.accounts import account_address
from streamgate.client.http import HttpClient, HttpResult
from streamgate.server.app import Gateway

from support import (
    PRODUCER_KEY,
    UNIT,
    RawClient,
    base_url,
    open_ws,
    publish,
    publish_ok,
    recv_json,
    send_json,
    subscribe,
    trade_event,
    ws_url,
)


def user_address() -> str:
    return "0x" + secrets.token_hex(32)


def order_item(user: str, seq: int) -> dict[str, Any]:
    return {
        "sid": f"o{seq}",
        "side": "buy",
        "size": 10,
        "price": 1000,
        "leverage": 5,
        "type": "limit",
        "status": "placed",
        "user_addr": user,
        "market_addr": "0xm",
        "seq": seq,
        "stop_loss": None,
        "take_profit": None,
    }


def position_item(user: str, **extra: Any) -> dict[str, Any]:
    return {
        "sid": "p1",
        "market_addr": "0xm",
        "user_addr": user,
        "size": 3,
        "price": 100,
        "margin": 500,
        "funding_index": 0,
        "epoch": 1,
        "is_cross": False,
        "mark_price": 101,
        "seq": 1,
        "side": "buy",
        "unrealized_pnl": 3,
        **extra,
    }


async def post_raw(gw: Gateway, path: str, body: bytes, headers: dict[str, str]) -> HttpResult:
    client = HttpClient(base_url(gw))
    try:
        return await client.request("POST", path, body=body, headers=headers)
    finally:
        await client.close()


async def publish_raw(gw: Gateway, body: bytes) -> HttpResult:
    return await post_raw(gw, "/api/v1/publish", body, {"authorization": f"Bearer {PRODUCER_KEY}"})


async def text_frames(client: RawClient, want: int, within: float = 5.0) -> list[dict[str, Any]]:
    """Read until ``want`` text frames arrived (or ``within`` time units passed)."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + within * UNIT
    while len(out) < want and (left := deadline - time.monotonic()) > 0:
        for frame in await client.read_frames(min(left, 0.2)):
            if frame.opcode is Opcode.TEXT:
                out.append(orjson.loads(frame.data))
    return out


# -- 1. pipelined auth (hummingbot's user stream) ------------------------------------------


async def test_auth_and_three_subscribes_written_at_once_are_taken_in_order(gw: Gateway) -> None:
    """hummingbot sends auth and its subscribes without waiting; 50 connections, one write
    each for all four frames, and not one refusal."""
    users = [user_address() for _ in range(50)]
    clients = [await RawClient.connect(ws_url(gw, "/ws/private")) for _ in users]
    try:
        for n, (client, user) in enumerate(zip(clients, users, strict=True)):
            frames = [
                {"op": "auth", "bearer": gw.tokens.issue(user), "req_id": f"req_{n}"},
                *(
                    {"op": "subscribe", "args": [t], "req_id": t}
                    for t in ("order", "position", "fill")
                ),
            ]
            for frame in frames:
                client.protocol.send_text(orjson.dumps(frame))
            client.writer.write(b"".join(client.protocol.data_to_send()))  # one write
        answers = await asyncio.gather(*(text_frames(c, 4) for c in clients))
        refusals = [a for got in answers for a in got if a.get("op") == "error"]
        assert refusals == []
        for got, user in zip(answers, users, strict=True):
            assert got[0] == {
                "op": "auth",
                "success": True,
                "user_id": user,
                "req_id": got[0]["req_id"],
            }
            assert [(a["op"], a["args"]) for a in got[1:]] == [
                ("subscribed", ["order"]),
                ("subscribed", ["position"]),
                ("subscribed", ["fill"]),
            ]
        await publish_ok(
            gw, [{"topic": "order", "user_id": u, "data": [order_item(u, 1)]} for u in users]
        )
        events = await asyncio.gather(*(text_frames(c, 1) for c in clients))
        assert all(e and e[0]["topic"] == "order" for e in events)
    finally:
        for client in clients:
            client.close()


# -- 5. the SDK example's subscribe, and its pong type ---------------------------------------


async def test_the_sdk_example_subscribe_gets_events_of_its_valid_topics(gw: Gateway) -> None:
    user = user_address()
    async with open_ws(gw, "/ws/private") as ws:
        await send_json(ws, {"op": "auth", "bearer": gw.tokens.issue(user), "req_id": "req_1"})
        assert (await recv_json(ws))["success"] is True
        args = ["order", "position", "fill", "account_balance"]
        await send_json(ws, {"op": "subscribe", "args": args, "req_id": "req_2"})
        assert await recv_json(ws) == {
            "op": "subscribed",
            "args": ["order", "position", "fill"],
            "req_id": "req_2",
        }
        error = await recv_json(ws)
        assert (error["op"], error["message"], error["req_id"], error["args"]) == (
            "error",
            "INVALID_TOPIC",
            "req_2",
            ["account_balance"],
        )
        await publish_ok(gw, [{"topic": "order", "user_id": user, "data": [order_item(user, 1)]}])
        assert (await recv_json(ws))["topic"] == "order"
        await send_json(ws, {"op": "ping", "req_id": "hb"})
        assert await recv_json(ws) == {
            "op": "pong",
            "server_ts": pytest.approx(time.time_ns(), abs=60e9),
            "req_id": "hb",
        }


# -- 2. the platforms' own payload types, passed on exactly -----------------------------------


async def test_a_u64_trade_id_reaches_the_client_exactly(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        await subscribe(ws, ["trade/M"])
        body = (
            b'{"events":[{"topic":"trade/M","data":{"seq":1,"trades":[{"id":18446744073709551615,'
            b'"side":"sell","price":100,"size":2,"seq":1}]}}]}'
        )
        assert (await publish_raw(gw, body)).status == 200
        raw = await asyncio.wait_for(ws.recv(), 5 * UNIT)
        assert isinstance(raw, str)
        assert '"trades":[{"id":18446744073709551615,"side":"sell"' in raw


async def test_numeric_push_amounts_reach_the_push_socket_as_sent(gw: Gateway) -> None:
    key, _ = gw.api_keys.create("acme")
    minted = await post_raw(gw, "/auth/ws-token", b"", {"api-key": key, "On-Behalf-Of": "u1"})
    token = minted.json()["data"]["token"]
    url = ws_url(gw, "/ws")
    async with connect(url, subprotocols=[f"bearer.{token}"], ping_interval=None) as ws:  # type: ignore[list-item]
        assert orjson.loads(await ws.recv())["event"] == "connected"
        body = (
            b'{"events":[{"event":"deposit.completed","tenant":"acme","sub_user":"u1","data":'
            b'{"fundingId":"f1","status":"completed","payAmountToken":25.500000,'
            b'"receiveAmountUsd":12345678901234567.89,"completedAt":"2024-05-01T12:00:00Z"}},'
            b'{"event":"deposit.transfer","tenant":"acme","sub_user":"u1","data":'
            b'{"fundingId":"f2","status":"pending","transfer":{"txHash":null,"amount":1e3,'
            b'"chain":null}}}]}'
        )
        result = await publish_raw(gw, body)
        assert result.status == 200, result.body
        completed, transfer = [await asyncio.wait_for(ws.recv(), 5 * UNIT) for _ in range(2)]
        assert '"payAmountToken":25.500000,"receiveAmountUsd":12345678901234567.89,' in completed
        assert '"amount":1e3,' in transfer


# -- 3. fields the clients read ---------------------------------------------------------------


async def test_order_book_events_carry_matched_at(gw: Gateway) -> None:
    snap = {"type": "orderbook_snapshot", "seq": 1, "asks": [[101, 1]], "bids": [[99, 2]]}
    delta = {"type": "orderbook_delta", "seq": 2, "asks": [], "bids": [[98, 1]], "matched_at": 7}
    async with open_ws(gw) as ws:
        await subscribe(ws, ["orderbook/M"])
        await publish_ok(gw, [{"topic": "orderbook/M", "data": snap}])
        first = (await recv_json(ws))["data"]
        assert first["matched_at"] == first["timestamp_ms"]  # filled when the producer gave none
        await publish_ok(gw, [{"topic": "orderbook/M", "data": delta}])
        assert (await recv_json(ws))["data"]["matched_at"] == 7
    async with open_ws(gw) as late:  # the gateway's own snapshot: its last event's matched_at
        await subscribe(late, ["orderbook/M"])
        data = (await recv_json(late))["data"]
        assert (data["type"], data["seq"], data["matched_at"]) == ("orderbook_snapshot", 2, 7)


async def test_a_position_carries_entry_price_and_a_buy_or_sell_side(gw: Gateway) -> None:
    user = user_address()
    async with open_ws(gw, "/ws/private") as ws:
        await send_json(ws, {"op": "auth", "bearer": gw.tokens.issue(user)})
        await recv_json(ws)
        await subscribe(ws, ["position"])
        await publish_ok(
            gw, [{"topic": "position", "user_id": user, "data": [position_item(user)]}]
        )
        [item] = (await recv_json(ws))["data"]
        assert (item["entry_price"], item["price"], item["side"]) == (100, 100, "buy")
    refused = await publish(
        gw, [{"topic": "position", "user_id": user, "data": [position_item(user, side="long")]}]
    )
    assert (refused.status, refused.json()["error"]["field"]) == (400, "data[0].side")


# -- 4. the wallet-standard signed authorize ---------------------------------------------------


async def test_a_wallet_signed_full_message_authorizes(gw: Gateway) -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ts, nonce = time.time_ns() // 1_000_000, secrets.token_hex(6)
    full = f"APTOS\nmessage: AUTHORIZE|{ts}|{nonce}\nnonce: {nonce}"
    body = {
        "public_key": "0x" + public.hex(),
        "signature": "0x" + key.sign(full.encode()).hex(),
        "timestamp_ms": ts,
        "nonce": nonce,
        "full_message": full,
    }
    result = await post_raw(gw, "/api/v1/authorize", orjson.dumps(body), {})
    assert result.status == 200, result.body
    assert result.json()["user_id"] == account_address(public)
    async with open_ws(gw, "/ws/private") as ws:
        await send_json(ws, {"op": "auth", "bearer": result.json()["token"]})
        assert (await recv_json(ws))["user_id"] == account_address(public)


# -- 6. the latest ticker on subscribe, and recent trades for a tape ----------------------------


def ticker(market: str, last: int) -> dict[str, Any]:
    numbers = ("mark_price", "index_price", "open_interest", "open_interest_value")
    rest = ("funding_rate", "funding_rate_percentage", "next_funding_time", "volume_24h")
    data: dict[str, Any] = {"symbol": "M-PERP", "last_price": last, "turnover_24h": 1}
    data.update({n: last for n in numbers} | {n: 0 for n in rest})
    return {"topic": f"ticker/{market}", "data": data}


async def test_a_new_ticker_subscriber_gets_the_latest_ticker_at_once(gw: Gateway) -> None:
    await publish_ok(gw, [ticker("M", 100), ticker("M", 101)])
    async with open_ws(gw) as ws:
        assert (await subscribe(ws, ["ticker/M"]))["args"] == ["ticker/M"]
        latest = await recv_json(ws)
        assert (latest["topic"], latest["offset"], latest["data"]["last_price"]) == (
            "ticker/M",
            2,
            101,
        )
        await publish_ok(gw, [ticker("M", 102)])
        assert (await recv_json(ws))["offset"] == 3  # live, nothing twice
    async with open_ws(gw) as ws:  # a resume asks for a replay, not for the latest value
        epoch = latest["epoch"]
        await subscribe(ws, ["ticker/M"], resume={"ticker/M": {"offset": 3, "epoch": epoch}})
        with pytest.raises(TimeoutError):
            await recv_json(ws, within=0.3)


async def test_recent_trades_then_a_resume_continue_without_gap_or_repeat(gw: Gateway) -> None:
    await publish_ok(gw, [trade_event("M", seq) for seq in range(1, 6)])
    client = HttpClient(base_url(gw))
    try:
        recent = await client.request("GET", "/api/v1/history?topic=trade/M&limit=3")
        assert recent.status == 200
        doc = recent.json()
        assert [e["offset"] for e in doc["events"]] == [3, 4, 5]
        assert all(e["op"] == "event" and e["topic"] == "trade/M" for e in doc["events"])
        assert (doc["topic"], doc["offset"]) == ("trade/M", 5)
        for bad in ("topic=order", "topic=trade/M&limit=0", "topic=trade/M&limit=x", ""):
            refused = await client.request("GET", f"/api/v1/history?{bad}")
            assert refused.status == 400, bad
    finally:
        await client.close()
    last = doc["events"][-1]
    async with open_ws(gw) as ws:
        resume = {"trade/M": {"offset": last["offset"], "epoch": last["epoch"]}}
        ack = await subscribe(ws, ["trade/M"], resume=resume)
        assert ack["recovered"] == {"trade/M": True}
        await publish_ok(gw, [trade_event("M", 6)])
        assert (await recv_json(ws))["offset"] == 6
