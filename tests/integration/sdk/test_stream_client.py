"""StreamClient against a real gateway on 127.0.0.1: acks, refusals, events, ping, resume."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from streamgate.client import Backoff, Disconnected, Event, Reconnected, StreamClient
from streamgate.client.errors import AuthError, ClosedError, ConnectError, SubscribeError
from streamgate.server.app import Gateway

from support import UNIT, publish_ok, running_gateway, trade_event, ws_url
from support.cluster import free_port
from support.redis_server import REDIS_URL, delete_prefix, ensure_redis

WAIT = 10.0 * UNIT
FAST = Backoff(initial=0.05, maximum=0.2)


async def next_event(items: object, topic: str | None = None) -> Event:
    """The next Event of the client's iterator (skipping other items), within WAIT."""
    assert hasattr(items, "__anext__")
    async with asyncio.timeout(WAIT):
        while True:
            item = await items.__anext__()
            if isinstance(item, Event) and (topic is None or item.topic == topic):
                return item


async def test_subscribe_acks_events_and_ping(gw: Gateway) -> None:
    async with StreamClient(ws_url(gw), backoff=FAST) as client:
        assert await client.subscribe("trade/M", "trade/N") == ["trade/M", "trade/N"]
        items = aiter(client)
        await publish_ok(gw, [trade_event("M", 1), trade_event("N", 1), trade_event("M", 2)])
        got = [await next_event(items) for _ in range(3)]
        # order holds within a topic (PROTOCOL.md section 2)
        assert [(e.seq, e.offset) for e in got if e.topic == "trade/M"] == [(1, 1), (2, 2)]
        assert [(e.seq, e.offset) for e in got if e.topic == "trade/N"] == [(1, 1)]
        assert got[0].data["trades"][0]["id"] == "t1" and got[0].epoch
        assert client.positions["trade/M"] == (2, got[0].epoch)
        rtt = await client.ping()
        assert 0 < rtt < WAIT


async def test_partly_refused_subscribe_returns_the_taken_and_all_refused_raises(
    gw: Gateway,
) -> None:
    async with StreamClient(ws_url(gw)) as client:
        assert await client.subscribe("trade/M", "order") == ["trade/M"]
        assert "order" not in client.positions
        with pytest.raises(SubscribeError) as refused:
            await client.subscribe("fill", "bad topic")
        # one error frame: its message is the first refused topic's code, for every topic
        assert refused.value.refused == {
            "fill": "TOPIC_NOT_ALLOWED",
            "bad topic": "TOPIC_NOT_ALLOWED",
        }
        await client.unsubscribe("trade/M")
        await publish_ok(gw, [trade_event("M", 1)])
        assert await client.ping() > 0  # still open, nothing delivered for trade/M
        assert client.positions == {}


async def test_private_stream_authenticates_and_a_bad_bearer_is_refused(gw: Gateway) -> None:
    user = "0x" + "ab" * 32
    bearer = gw.tokens.issue(user)
    async with StreamClient(ws_url(gw, "/ws/private"), bearer=bearer) as client:
        assert client.user_id == user
        assert await client.subscribe("order") == ["order"]
    with pytest.raises(AuthError) as bad:
        await StreamClient(ws_url(gw, "/ws/private"), bearer="not a jwt").connect()
    assert bad.value.code == "INVALID_TOKEN"


async def test_callbacks_get_every_item_in_order(gw: Gateway) -> None:
    seen: list[int | None] = []
    done = asyncio.Event()

    async def on_item(item: object) -> None:
        if isinstance(item, Event):
            seen.append(item.seq)
            if len(seen) == 3:
                done.set()

    async with StreamClient(ws_url(gw)) as client:
        client.on_event(on_item)
        await client.subscribe("trade/M")
        await publish_ok(gw, [trade_event("M", s) for s in (1, 2, 3)])
        async with asyncio.timeout(WAIT):
            await done.wait()
    assert seen == [1, 2, 3]


async def test_restart_of_a_memory_gateway_is_reported_not_recovered(tmp_path: Path) -> None:
    """Memory broker: a restart is a new epoch, the client is told what it lost."""
    async with running_gateway(tmp_path / "a") as first:
        port = first.port
        client = StreamClient(ws_url(port), backoff=FAST)
        await client.connect()
        await client.subscribe("trade/M", "trade/Q")
        items = aiter(client)
        await publish_ok(first, [trade_event("M", 1)])
        assert (await next_event(items)).seq == 1
    # drained: the client saw 1012 and retries until a gateway listens on the port again
    async with running_gateway(tmp_path / "b", port=port) as second:
        async with asyncio.timeout(WAIT):
            item = await items.__anext__()
            while not isinstance(item, Reconnected):
                assert isinstance(item, Disconnected) and item.retry_in is not None
                item = await items.__anext__()
        assert item.recovered is False
        assert set(item.not_recovered) == {"trade/M", "trade/Q"}  # Q: no position to resume
        await publish_ok(second, [trade_event("M", 2)])
        assert (await next_event(items)).seq == 2
        await client.close()
    with pytest.raises(ClosedError):
        await client.subscribe("trade/M")
    async with asyncio.timeout(WAIT):
        assert [i async for i in items if isinstance(i, Event)] == []


async def test_history_that_ran_out_is_reported_and_the_rest_resumes(tmp_path: Path) -> None:
    """history_size 3: five trades missed on M cannot be replayed, N's gap can."""
    async with running_gateway(tmp_path, history_size=3) as gw:
        client = StreamClient(ws_url(gw), backoff=FAST)
        missed = asyncio.Event()

        async def while_disconnected(item: object) -> None:
            # Awaited before the client even waits to reconnect: published in the gap.
            if isinstance(item, Disconnected) and not missed.is_set():
                missed.set()
                await publish_ok(gw, [trade_event("M", s) for s in range(2, 7)])
                await publish_ok(gw, [trade_event("N", 2)])

        client.on_event(while_disconnected)
        async with client:
            await client.subscribe("trade/M", "trade/N")
            items = aiter(client)
            await publish_ok(gw, [trade_event("M", 1), trade_event("N", 1)])
            assert {(await next_event(items)).topic for _ in range(2)} == {"trade/M", "trade/N"}
            assert client._ws is not None
            client._ws.transport.abort()
            events: list[Event] = []
            async with asyncio.timeout(WAIT):
                item = await items.__anext__()
                while not isinstance(item, Reconnected):
                    item = await items.__anext__()
            assert item == Reconnected(1, False, ("trade/M",))
            events.append(await next_event(items))  # N's missed trade, replayed
            await publish_ok(gw, [trade_event("M", 7)])
            events.append(await next_event(items))
            assert [(e.topic, e.seq) for e in events] == [("trade/N", 2), ("trade/M", 7)]


async def test_restart_with_redis_resumes_every_event_exactly_once(tmp_path: Path) -> None:
    """The client's node drains and comes back on its port; a second node keeps publishing."""
    await ensure_redis()
    prefix = f"sgtest:{secrets.token_hex(6)}:"
    shared = {"broker": "redis", "redis_url": REDIS_URL, "redis_prefix": prefix}
    total = 200
    try:
        async with running_gateway(tmp_path / "p", **shared) as publisher:

            async def produce() -> None:
                for seq in range(1, total + 1):
                    await publish_ok(publisher, [trade_event("M", seq)])

            seqs: list[int] = []
            reconnects: list[Reconnected] = []
            first = running_gateway(tmp_path / "a", **shared)
            node = await first.__aenter__()
            port = node.port
            client = StreamClient(ws_url(port), backoff=FAST)
            await client.connect()
            await client.subscribe("trade/M")
            producer = asyncio.create_task(produce())
            restarted = False
            try:
                async with asyncio.timeout(WAIT * 3):
                    async for item in client:
                        if isinstance(item, Reconnected):
                            reconnects.append(item)
                        if not isinstance(item, Event):
                            continue
                        assert item.seq is not None
                        seqs.append(item.seq)
                        if item.seq == 50 and not restarted:
                            restarted = True
                            await first.__aexit__(None, None, None)  # drained: 1012
                            second = running_gateway(tmp_path / "b", port=port, **shared)
                            await second.__aenter__()
                        if item.seq == total:
                            break
                await producer
            finally:
                producer.cancel()
                await client.close()
                if restarted:
                    await second.__aexit__(None, None, None)
                else:
                    await first.__aexit__(None, None, None)
    finally:
        await delete_prefix(prefix)
    assert seqs == list(range(1, total + 1))
    assert [r.recovered for r in reconnects] == [True]


async def test_connect_errors_are_one_clear_error() -> None:
    with pytest.raises(ConnectError, match="cannot connect"):
        await StreamClient(f"ws://127.0.0.1:{free_port()}/ws/public", open_timeout=2).connect()
    with pytest.raises(ConnectError, match="cannot connect"):
        await StreamClient("not a url").connect()


async def test_a_fatal_close_is_not_retried(gw: Gateway) -> None:
    """Close 1008 (abuse): one final Disconnected, the iterator ends, failure says why."""
    async with StreamClient(ws_url(gw), backoff=FAST) as client:
        assert client._ws is not None
        for _ in range(250):  # refused frames past abuse_refusals (200) close with 1008
            await client._ws.send('{"op": "nope"}')
        async with asyncio.timeout(WAIT):
            got = [item async for item in client]
        assert got == [Disconnected(1008, "Too many refused requests", None)]
        assert isinstance(client.failure, ClosedError) and client.failure.code == 1008
