"""/ws/public over real sockets: acks, ping/pong, every refusal code, limits, liveness."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.frames import Opcode

from streamgate.server.app import Gateway

from support import (
    UNIT,
    RawClient,
    messages_until_close,
    open_ws,
    publish_ok,
    recv_json,
    running_gateway,
    send_json,
    subscribe,
    trade_event,
    ws_url,
)


async def test_subscribe_ack_echoes_args_and_req_id_then_events_flow(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        ack = await subscribe(ws, ["trade/M1", "ticker/M1"], req_id="100001")
        assert ack == {"op": "subscribed", "args": ["trade/M1", "ticker/M1"], "req_id": "100001"}
        await publish_ok(gw, [trade_event("M1", 1)])
        event = await recv_json(ws)
        assert event["op"] == "event"
        assert event["topic"] == "trade/M1"
        assert event["offset"] == 1
        assert isinstance(event["epoch"], str) and event["epoch"]
        assert isinstance(event["server_ts_ms"], int)
        assert event["data"]["type"] == "trades"
        assert event["data"]["market_addr"] == "M1"
        assert event["data"]["trades"][0]["id"] == "t1"


async def test_unsubscribe_stops_delivery(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        await subscribe(ws, ["trade/M1", "trade/M2"])
        await send_json(ws, {"op": "unsubscribe", "args": ["trade/M1"], "req_id": "u1"})
        assert await recv_json(ws) == {"op": "unsubscribed", "args": ["trade/M1"], "req_id": "u1"}
        await publish_ok(gw, [trade_event("M1", 1), trade_event("M2", 1)])
        event = await recv_json(ws)
        assert event["topic"] == "trade/M2"
        with pytest.raises(TimeoutError):
            await recv_json(ws, within=0.2)


async def test_ping_answers_pong_in_nanoseconds(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        before = time.time_ns()
        await send_json(ws, {"op": "ping", "ts": 1681234567890123114, "req_id": "100004"})
        pong = await recv_json(ws)
        after = time.time_ns()
        assert pong["op"] == "pong" and pong["req_id"] == "100004"
        assert pong["client_ts"] == 1681234567890123114
        assert before <= pong["server_ts"] <= after
        await send_json(ws, {"op": "ping"})
        pong = await recv_json(ws)
        assert pong["op"] == "pong" and "client_ts" not in pong  # optional in the SDK's type


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "INVALID_JSON"),
        ("[1, 2]", "INVALID_REQUEST"),
        ({"args": ["trade/M1"]}, "MISSING_FIELD"),
        ({"op": 5}, "INVALID_FIELD"),
        ({"op": "dance"}, "UNKNOWN_OP"),
        ({"op": "subscribe"}, "MISSING_FIELD"),
        ({"op": "subscribe", "args": "trade/M1"}, "INVALID_FIELD"),
        ({"op": "subscribe", "args": []}, "INVALID_FIELD"),
        ({"op": "subscribe", "args": [7]}, "INVALID_FIELD"),
        ({"op": "ping", "ts": "soon"}, "INVALID_FIELD"),
        ({"op": "subscribe", "args": ["candles/M1"]}, "INVALID_TOPIC"),
        ({"op": "subscribe", "args": ["trade/a/b"]}, "INVALID_TOPIC"),
        ({"op": "subscribe", "args": ["trade/has space"]}, "INVALID_TOPIC"),
        ({"op": "subscribe", "args": ["order"]}, "TOPIC_NOT_ALLOWED"),
        ({"op": "auth", "bearer": "x"}, "OP_NOT_ALLOWED"),
        (
            {"op": "subscribe", "args": ["trade/M1"], "resume": {"trade/M1": {"offset": -1}}},
            "INVALID_FIELD",
        ),
    ],
)
async def test_refusals_have_stable_codes_and_keep_the_socket(
    gw: Gateway, frame: Any, code: str
) -> None:
    async with open_ws(gw) as ws:
        if isinstance(frame, dict):
            frame = orjson.dumps({**frame, "req_id": "r1"}).decode()
        await ws.send(frame)
        error = await recv_json(ws)
        assert error["op"] == "error"
        assert error["message"] == code
        assert isinstance(error["detail"], str) and error["detail"]
        if code not in ("INVALID_JSON", "INVALID_REQUEST"):
            assert error["req_id"] == "r1"
        await send_json(ws, {"op": "ping", "req_id": "alive"})
        assert (await recv_json(ws))["op"] == "pong"


async def test_a_subscribe_with_a_bad_topic_subscribes_the_good_ones(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        await send_json(ws, {"op": "subscribe", "args": ["trade/M1", "bogus"], "req_id": "x"})
        assert await recv_json(ws) == {"op": "subscribed", "args": ["trade/M1"], "req_id": "x"}
        error = await recv_json(ws)
        assert (error["op"], error["message"], error["req_id"]) == ("error", "INVALID_TOPIC", "x")
        assert error["args"] == ["bogus"] and "bogus" in error["detail"]
        await publish_ok(gw, [trade_event("M1", 1)])
        assert (await recv_json(ws))["topic"] == "trade/M1"


async def test_a_subscribe_with_only_bad_topics_gets_no_ack(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        await send_json(ws, {"op": "subscribe", "args": ["bogus", "x/y"], "req_id": "x"})
        error = await recv_json(ws)
        assert (error["op"], error["message"], error["args"]) == (
            "error",
            "INVALID_TOPIC",
            ["bogus", "x/y"],
        )
        await publish_ok(gw, [trade_event("M1", 1)])
        await send_json(ws, {"op": "ping", "req_id": "alive"})
        assert (await recv_json(ws))["op"] == "pong"  # nothing else came first


async def test_binary_frame_refused(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        await ws.send(b"\x00\x01")
        assert (await recv_json(ws))["message"] == "BINARY_NOT_SUPPORTED"


async def test_too_many_subscriptions(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, max_subscriptions=3) as gw, open_ws(gw) as ws:
        await subscribe(ws, ["trade/A", "trade/B"])
        await send_json(ws, {"op": "subscribe", "args": ["trade/C", "trade/D"], "req_id": "m"})
        assert (await recv_json(ws))["args"] == ["trade/C"]
        error = await recv_json(ws)
        assert (error["message"], error["args"]) == ("TOO_MANY_SUBSCRIPTIONS", ["trade/D"])
        await subscribe(ws, ["trade/C", "trade/A"])  # held ones do not count twice


async def test_frame_too_large_refused_but_huge_frame_closes(tmp_path: Path) -> None:
    limits = {"max_frame_bytes": 256, "hard_max_frame_bytes": 4096}
    async with running_gateway(tmp_path, **limits) as gw, open_ws(gw) as ws:
        await send_json(ws, {"op": "ping", "req_id": "x" * 300})
        assert (await recv_json(ws))["message"] == "FRAME_TOO_LARGE"
        await send_json(ws, {"op": "ping", "req_id": "ok"})
        assert (await recv_json(ws))["op"] == "pong"
        await ws.send("y" * 5000)
        messages, code = await messages_until_close(ws)
        assert messages == []
        assert code == 1009


async def test_rate_limited_then_abusive_client_is_closed(tmp_path: Path) -> None:
    async with (
        running_gateway(
            tmp_path, ops_per_second=1, ops_burst=3, abuse_refusals=10, abuse_window=60
        ) as gw,
        open_ws(gw) as ws,
    ):
        for _ in range(3):
            await send_json(ws, {"op": "ping"})
            assert (await recv_json(ws))["op"] == "pong"
        await send_json(ws, {"op": "ping", "req_id": "over"})
        assert await recv_json(ws) == {
            "op": "error",
            "message": "RATE_LIMITED",
            "detail": "too many requests; slow down",
        }
        for _ in range(20):
            await send_json(ws, {"op": "ping"})
        messages, code = await messages_until_close(ws)
        assert {m["message"] for m in messages} == {"RATE_LIMITED"}
        assert code == 1008


async def test_fragmented_message_is_assembled(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        text = orjson.dumps({"op": "ping", "ts": 5, "req_id": "frag"}).decode()
        await ws.send([text[:10], text[10:20], text[20:]])
        pong = await recv_json(ws)
        assert pong["req_id"] == "frag" and pong["client_ts"] == 5


async def test_dead_peer_closed_after_ping_timeout(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, ping_interval=0.1, ping_timeout=0.2) as gw:
        live = await RawClient.connect(ws_url(gw))
        dead = await RawClient.connect(ws_url(gw))
        try:
            assert len(gw.sockets.conns) == 2
            deadline = asyncio.get_running_loop().time() + 5 * UNIT
            pings = 0
            while len(gw.sockets.conns) > 1 and asyncio.get_running_loop().time() < deadline:
                frames = await live.read_frames(0.05)  # answers pings: it is alive
                pings += sum(1 for f in frames if f.opcode is Opcode.PING)
                await asyncio.sleep(0)
            assert len(gw.sockets.conns) == 1
            assert pings >= 1
            frames = await dead.read_frames(0.5)
            close = [f for f in frames if f.opcode is Opcode.CLOSE]
            assert close and int.from_bytes(close[0].data[:2], "big") == 1011
        finally:
            live.close()
            dead.close()
