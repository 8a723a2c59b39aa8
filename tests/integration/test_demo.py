"""``streamgate serve --demo``: the venue publishes through the API and a person can trade."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streamgate.client.http import HttpClient
from streamgate.server.app import Gateway

from support import UNIT, open_ws, recv_json, running_gateway, send_json, subscribe


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[tuple[Gateway, HttpClient]]:
    async with running_gateway(tmp_path) as gw:
        task = asyncio.create_task(gw.mount_demo().run())
        client = HttpClient(f"http://127.0.0.1:{gw.port}")
        try:
            yield gw, client
        finally:
            await client.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def events_until(ws: Any, want: set[str], within: float = 10.0) -> dict[str, list[Any]]:
    """Collect private events by topic until every topic of ``want`` has arrived."""
    seen: dict[str, list[Any]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within * UNIT
    while not want <= set(seen) and loop.time() < deadline:
        msg = await recv_json(ws, within=deadline - loop.time())
        if msg.get("op") == "event":
            seen.setdefault(msg["topic"], []).extend(msg["data"])
    return seen


async def test_demo_market_data_flows_on_every_public_topic(
    demo: tuple[Gateway, HttpClient],
) -> None:
    gw, client = demo
    info = (await client.request("GET", "/demo/info")).json()
    market = info["markets"][0]["market_addr"]
    async with open_ws(gw) as ws:
        await subscribe(ws, [f"orderbook/{market}", f"trade/{market}", f"ticker/{market}"])
        kinds: set[str] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15 * UNIT
        while kinds != {"orderbook_snapshot", "orderbook_delta", "ticker", "trades"}:
            assert loop.time() < deadline, f"only saw {kinds}"
            kinds.add((await recv_json(ws, within=15))["data"]["type"])
    markets = (await client.request("GET", "/api/v1/markets")).json()
    assert {m["symbol"] for m in markets} >= {"BTC-PERP", "ETH-PERP"}


async def test_a_person_trades_and_sees_own_order_fill_and_position(
    demo: tuple[Gateway, HttpClient],
) -> None:
    gw, client = demo
    info = (await client.request("GET", "/demo/info")).json()
    market = info["markets"][0]
    account = (await client.request("POST", "/demo/account")).json()
    auth = {"authorization": f"Bearer {account['token']}"}
    async with open_ws(gw, "/ws/private") as ws:
        await send_json(ws, {"op": "auth", "bearer": account["token"], "req_id": "a"})
        assert (await recv_json(ws))["user_id"] == account["user_id"]
        await subscribe(ws, ["order", "fill", "position"])
        await asyncio.sleep(0.5)  # let the makers quote
        order = {"market_addr": market["market_addr"], "side": "buy", "size": market["lot"]}
        placed = await client.post_json("/demo/orders", order, auth)
        assert placed.status == 200, placed.body
        assert placed.json()["status"] in ("filled", "partial_filled_and_cancelled")
        seen = await events_until(ws, {"order", "fill", "position"})
        assert {o["sid"] for o in seen["order"]} == {placed.json()["sid"]}
        assert all(o["user_addr"] == account["user_id"] for o in seen["order"])
        assert seen["fill"][0]["taker_addr"] == account["user_id"]
        assert seen["position"][-1]["size"] > 0

        far = {**order, "side": "sell", "price": market["tick"] * 10**7, "post_only": True}
        resting = (await client.post_json("/demo/orders", far, auth)).json()
        assert resting["status"] == "placed"
        sid = resting["sid"]
        path = f"/demo/orders/{sid}?market_addr={market['market_addr']}"
        cancelled = await client.request("DELETE", path, headers=auth)
        assert cancelled.json() == {"sid": sid, "status": "cancelled"}
        again = await client.request("DELETE", path, headers=auth)
        assert again.status == 404


async def test_demo_routes_refuse_bad_requests(demo: tuple[Gateway, HttpClient]) -> None:
    _, client = demo
    info = (await client.request("GET", "/demo/info")).json()
    order = {"market_addr": info["markets"][0]["market_addr"], "side": "buy", "size": 10}
    assert (await client.post_json("/demo/orders", order)).status == 401
    bad_auth = {"authorization": "Bearer nope"}
    assert (await client.post_json("/demo/orders", order, bad_auth)).json()["error"]["code"] == (
        "INVALID_TOKEN"
    )
    token = (await client.request("POST", "/demo/account")).json()["token"]
    auth = {"authorization": f"Bearer {token}"}
    for bad, code in (
        ({**order, "market_addr": "0xnope"}, "UNKNOWN_MARKET"),
        ({**order, "side": "up"}, "INVALID_FIELD"),
        ({**order, "size": 0}, "INVALID_FIELD"),
        ({**order, "leverage": 0}, "INVALID_FIELD"),
    ):
        result = await client.post_json("/demo/orders", bad, auth)
        assert (result.status, result.json()["error"]["code"]) == (400, code)
    ticket = await client.post_json("/demo/ticket", {"sub_user": "mallory"})
    assert ticket.status == 400
    ok = await client.post_json("/demo/ticket", {"sub_user": info["sub_users"][0]})
    assert ok.json()["tenant"] == "demo"
