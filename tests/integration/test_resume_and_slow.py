"""History and resume (PROTOCOL.md section 3) and slow-consumer isolation, over real sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from websockets.frames import Opcode

from streamgate.server.app import Gateway

from support import (
    UNIT,
    RawClient,
    delta_event,
    open_ws,
    publish_ok,
    recv_json,
    running_gateway,
    snapshot_event,
    subscribe,
    trade_event,
    ws_url,
)


async def test_resume_after_disconnect_loses_nothing(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        await subscribe(ws, ["trade/M"])
        await publish_ok(gw, [trade_event("M", i) for i in range(1, 6)])
        seen = [await recv_json(ws) for _ in range(5)]
    last = seen[-1]
    assert [e["offset"] for e in seen] == [1, 2, 3, 4, 5]
    await publish_ok(gw, [trade_event("M", i) for i in range(6, 11)])  # while away
    async with open_ws(gw) as ws:
        resume = {"trade/M": {"offset": last["offset"], "epoch": last["epoch"]}}
        ack = await subscribe(ws, ["trade/M"], resume=resume)
        assert ack["recovered"] == {"trade/M": True}
        await publish_ok(gw, [trade_event("M", 11)])
        replay = [await recv_json(ws) for _ in range(6)]
    assert [e["offset"] for e in replay] == [6, 7, 8, 9, 10, 11]
    assert [e["data"]["seq"] for e in replay] == [6, 7, 8, 9, 10, 11]
    assert {e["epoch"] for e in replay} == {last["epoch"]}


async def test_resume_from_other_epoch_or_too_old_is_not_recovered(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, history_size=3) as gw, open_ws(gw) as ws:
        await publish_ok(gw, [trade_event("M", i) for i in range(1, 8)])
        ack = await subscribe(ws, ["trade/M"], resume={"trade/M": {"offset": 6, "epoch": "old"}})
        assert ack["recovered"] == {"trade/M": False}
        await subscribe(ws, ["trade/N"])
        epoch = (await gw.broker.position("trade/M")).epoch
        ack = await subscribe(ws, ["trade/M"], resume={"trade/M": {"offset": 2, "epoch": epoch}})
        assert ack["recovered"] == {"trade/M": False}  # offsets 3 and 4 fell out
        ack = await subscribe(ws, ["trade/M"], resume={"trade/M": {"offset": 5, "epoch": epoch}})
        assert ack["recovered"] == {"trade/M": True}
        replay = [await recv_json(ws) for _ in range(2)]
        assert [e["offset"] for e in replay] == [6, 7]


async def test_orderbook_resume_replays_deltas_or_sends_a_fresh_snapshot(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, history_size=4) as gw:
        await publish_ok(gw, [snapshot_event("B", 10, [[105, 1]], [[95, 2]])])
        async with open_ws(gw) as ws:
            await subscribe(ws, ["orderbook/B"])
            snap = await recv_json(ws)
        assert snap["data"]["type"] == "orderbook_snapshot" and snap["offset"] == 1
        await publish_ok(gw, [delta_event("B", 11, [[106, 3]], [])])
        async with open_ws(gw) as ws:
            pos = {"orderbook/B": {"offset": 1, "epoch": snap["epoch"]}}
            ack = await subscribe(ws, ["orderbook/B"], resume=pos)
            assert ack["recovered"] == {"orderbook/B": True}
            delta = await recv_json(ws)
        assert delta["data"]["type"] == "orderbook_delta" and delta["data"]["seq"] == 11
        await publish_ok(gw, [delta_event("B", s, [[100 + s, 1]], []) for s in range(12, 18)])
        async with open_ws(gw) as ws:
            pos = {"orderbook/B": {"offset": 2, "epoch": snap["epoch"]}}
            ack = await subscribe(ws, ["orderbook/B"], resume=pos)
            assert ack["recovered"] == {"orderbook/B": False}
            fresh = await recv_json(ws)
        assert fresh["data"]["type"] == "orderbook_snapshot"
        assert fresh["data"]["seq"] == 17 and fresh["offset"] == 8
        assert fresh["data"]["asks"] == [[105, 1], [106, 3]] + [
            [100 + s, 1] for s in range(12, 18) if 100 + s not in (105, 106)
        ]


async def test_slow_consumer_is_cut_and_others_get_every_frame(tmp_path: Path) -> None:
    limit = 64 * 1024
    async with running_gateway(
        tmp_path, outbound_buffer_bytes=limit, send_buffer_bytes=16_384, close_timeout=10
    ) as gw:
        slow = await RawClient.connect(ws_url(gw), rcvbuf=4096)
        slow.send_text({"op": "subscribe", "args": ["trade/S"], "req_id": "slow"})
        async with open_ws(gw) as fast:
            await subscribe(fast, ["trade/S"])
            while gw.hub.subscriber_count("trade/S") < 2:
                await asyncio.sleep(0.01)
            received: list[int] = []
            total = 0
            for batch in range(30):
                events = [trade_event("S", batch * 50 + i) for i in range(50)]
                for e in events:
                    e["data"]["trades"][0]["id"] = "x" * 1000 + str(e["data"]["seq"])
                await publish_ok(gw, events)
                total += len(events)
                while len(received) < total:
                    received.append((await recv_json(fast))["offset"])
            assert received == list(range(1, total + 1))
            assert gw.sockets.slow_consumers == 1
            assert gw.hub.subscriber_count("trade/S") == 1
        frames = await slow.read_frames(3 * UNIT)
        slow.close()
        closes = [f for f in frames if f.opcode is Opcode.CLOSE]
        assert closes, "the slow consumer got no close frame"
        assert int.from_bytes(closes[0].data[:2], "big") == 4009
        assert closes[0].data[2:] == b"Slow consumer"
        texts = [f for f in frames if f.opcode is Opcode.TEXT]
        assert len(texts) < total  # it was cut before the end
