"""StreamClient on /ws/private: re-auth and resume on reconnect; an expired bearer ends it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from streamgate.client import AuthError, Backoff, Disconnected, Event, Reconnected, StreamClient

from support import UNIT, publish_ok, running_gateway, ws_url

WAIT = 10.0 * UNIT
FAST = Backoff(initial=0.05, maximum=0.2)
USER = "0x" + "cd" * 32


def order_event(seq: int) -> dict[str, Any]:
    order = {
        "sid": f"o{seq}",
        "side": "buy",
        "size": 10,
        "price": 1000,
        "leverage": 5,
        "type": "limit",
        "status": "placed",
        "user_addr": USER,
        "market_addr": "0xm",
        "seq": seq,
        "stop_loss": None,
        "take_profit": None,
    }
    return {"topic": "order", "user_id": USER, "data": [order]}


async def items_until(items: Any, done: Any) -> list[object]:
    got: list[object] = []
    async with asyncio.timeout(WAIT):
        async for item in items:
            got.append(item)
            if done(item):
                break
    return got


async def test_reconnect_authenticates_again_and_resumes_private_topics(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, jwt_leeway=0) as gw:
        client = StreamClient(ws_url(gw, "/ws/private"), bearer=gw.tokens.issue(USER))
        client.backoff = FAST
        gap = asyncio.Event()

        async def in_the_gap(item: object) -> None:
            if isinstance(item, Disconnected) and not gap.is_set():
                gap.set()
                await publish_ok(gw, [order_event(2), order_event(3)])

        client.on_event(in_the_gap)
        async with client:
            assert await client.subscribe("order") == ["order"]
            items = aiter(client)
            await publish_ok(gw, [order_event(1)])
            first = await items_until(items, lambda i: isinstance(i, Event))
            assert isinstance(first[-1], Event) and first[-1].data[0]["sid"] == "o1"
            assert client._ws is not None
            client._ws.transport.abort()
            got = await items_until(
                items, lambda i: isinstance(i, Event) and i.data[0]["sid"] == "o3"
            )
            assert Reconnected(1, True, ()) in got
            assert [i.data[0]["sid"] for i in got if isinstance(i, Event)] == ["o2", "o3"]


async def test_an_expired_bearer_is_not_retried(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, jwt_leeway=0) as gw:
        short = gw.tokens.issue(USER, ttl=2.0)
        expiry = time.time() + 3.0  # exp is floored to the second

        async def hold_until_expired(item: object) -> None:
            # Awaited before the reconnect: it runs with the bearer expired.
            if isinstance(item, Disconnected) and item.retry_in is not None:
                async with asyncio.timeout(WAIT):
                    while time.time() < expiry:
                        await asyncio.sleep(0.05)

        client = StreamClient(ws_url(gw, "/ws/private"), bearer=short, backoff=FAST)
        client.on_event(hold_until_expired)
        async with client:
            await client.subscribe("order")
            items = aiter(client)
            assert client._ws is not None
            client._ws.transport.abort()  # dropped while the bearer is still valid
            got = await items_until(items, lambda i: False)  # ends by itself
            # one attempt (a Disconnected with its delay), then the refusal, final
            assert isinstance(got[0], Disconnected) and got[0].retry_in is not None
            assert got == [
                Disconnected(None, "connection lost", got[0].retry_in),
                Disconnected(None, "auth refused: INVALID_TOKEN", None),
            ]
            assert isinstance(client.failure, AuthError)


async def test_token_expired_ends_the_stream_without_a_refresh(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, jwt_leeway=0) as gw:
        client = StreamClient(
            ws_url(gw, "/ws/private"), bearer=gw.tokens.issue(USER, ttl=2.0), backoff=FAST
        )
        async with client:
            await client.subscribe("order")
            got = await items_until(aiter(client), lambda i: False)  # ends by itself
        assert got == [Disconnected(1000, "TOKEN_EXPIRED", None)]  # 1000: the SDK closed
        assert isinstance(client.failure, AuthError) and client.failure.code == "TOKEN_EXPIRED"


async def test_a_refreshed_bearer_brings_the_private_topics_back(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, jwt_leeway=0) as gw:
        refreshed: list[str] = []

        async def refresh() -> str:
            await publish_ok(gw, [order_event(2)])  # published while the topics are off
            refreshed.append(gw.tokens.issue(USER))
            return refreshed[-1]

        client = StreamClient(
            ws_url(gw, "/ws/private"),
            bearer=gw.tokens.issue(USER, ttl=2.0),
            backoff=FAST,
            refresh_bearer=refresh,
        )
        async with client:
            await client.subscribe("order")
            items = aiter(client)
            await publish_ok(gw, [order_event(1)])
            got = await items_until(items, lambda i: isinstance(i, Event))
            assert [i.data[0]["sid"] for i in got if isinstance(i, Event)] == ["o1"]
            got = await items_until(items, lambda i: isinstance(i, Event))  # after the expiry
            assert [i.data[0]["sid"] for i in got if isinstance(i, Event)] == ["o2"]
            assert client.bearer == refreshed[0] and client.failure is None
            await publish_ok(gw, [order_event(3)])
            got = await items_until(items, lambda i: isinstance(i, Event))
            assert [i.data[0]["sid"] for i in got if isinstance(i, Event)] == ["o3"]
