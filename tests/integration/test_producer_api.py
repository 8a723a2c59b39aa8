"""POST /api/v1/publish over real HTTP: auth, validation, atomic batches, idempotency."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamgate.client.http import HttpClient
from streamgate.server.app import Gateway

from support import (
    open_ws,
    publish,
    publish_ok,
    recv_json,
    running_gateway,
    subscribe,
    trade_event,
)


async def test_missing_or_wrong_key_is_401(gw: Gateway) -> None:
    result = await publish(gw, [trade_event("M", 1)], key="wrong")
    assert result.status == 401
    assert result.json()["error"]["code"] == "UNAUTHORIZED"
    client = HttpClient(f"http://127.0.0.1:{gw.port}")
    try:
        result = await client.post_json("/api/v1/publish", {"events": [trade_event("M", 1)]})
    finally:
        await client.close()
    assert result.status == 401


async def test_bad_event_names_index_and_field_and_nothing_is_delivered(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        await subscribe(ws, ["trade/M"])
        bad = trade_event("M", 2)
        bad["data"]["trades"][0]["side"] = "sideways"
        result = await publish(gw, [trade_event("M", 1), bad, trade_event("M", 3)])
        assert result.status == 400
        assert result.json() == {
            "error": {
                "code": "INVALID_EVENT",
                "message": "data.trades[0].side must be 'buy' or 'sell'",
                "index": 1,
                "field": "data.trades[0].side",
            }
        }
        await publish_ok(gw, [trade_event("M", 9)])
        event = await recv_json(ws)
        assert event["data"]["seq"] == 9  # nothing of the refused batch came first
        assert event["offset"] == 1


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (b"{not json", 400, "INVALID_JSON", None),
        (b'{"events": []}', 400, "INVALID_BATCH", "events"),
        (b'{"events": {}}', 400, "INVALID_BATCH", "events"),
        (b'{"events": [{"topic": "news/M", "data": {}}]}', 400, "UNKNOWN_TOPIC", "topic"),
        (
            b'{"events": [{"topic": "ticker/M", "data": {"symbol": "X"}}]}',
            400,
            "INVALID_EVENT",
            "data.last_price",
        ),
        (
            b'{"events": [{"topic": "orderbook/M", "data": {"type": "orderbook_delta", "seq": 1,'
            b' "asks": [], "bids": []}}]}',
            409,
            "NO_BOOK",
            "data.type",
        ),
    ],
)
async def test_refusals(
    gw: Gateway, body: bytes, status: int, code: str, field: str | None
) -> None:
    client = HttpClient(f"http://127.0.0.1:{gw.port}")
    try:
        result = await client.request(
            "POST",
            "/api/v1/publish",
            body=body,
            headers={"authorization": "Bearer test-producer-key"},
        )
    finally:
        await client.close()
    assert result.status == status
    error = result.json()["error"]
    assert error["code"] == code
    assert error["field"] == field


async def test_too_many_events_and_too_large_body(tmp_path: Path) -> None:
    async with running_gateway(tmp_path, max_publish_bytes=50_000) as gw:
        result = await publish(gw, [trade_event("M", i) for i in range(1001)])
        assert result.status in (400, 413)
        small = await publish(gw, [trade_event("M", i) for i in range(100)])
        assert small.status == 200
        big = await publish(gw, [trade_event("M", i) for i in range(600)])
        assert big.status == 413
        assert big.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_idempotency_keys_deliver_once(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        await subscribe(ws, ["trade/M"])
        first = await publish_ok(
            gw,
            [trade_event("M", 1, idempotency_key="k1"), trade_event("M", 2, idempotency_key="k2")],
        )
        assert first == {"accepted": 2, "duplicates": 0}
        again = await publish_ok(
            gw,
            [
                trade_event("M", 1, idempotency_key="k1"),
                trade_event("M", 3, idempotency_key="k3"),
                trade_event("M", 4, idempotency_key="k3"),
            ],
        )
        assert again == {"accepted": 1, "duplicates": 2}
        seqs = [(await recv_json(ws))["data"]["seq"] for _ in range(3)]
        assert seqs == [1, 2, 3]
        with pytest.raises(TimeoutError):
            await recv_json(ws, within=0.2)


async def test_http_errors_and_markets(tmp_path: Path) -> None:
    from streamgate.config import MarketConfig

    market = MarketConfig("0xabc", "BTC-PERP", price_decimals=2, size_decimals=4)
    async with running_gateway(tmp_path, markets=(market,)) as gw:
        client = HttpClient(f"http://127.0.0.1:{gw.port}")
        try:
            assert (await client.request("GET", "/nowhere")).status == 404
            wrong = await client.request("GET", "/api/v1/publish")
            assert wrong.status == 405 and wrong.headers["allow"] == "POST"
            assert (await client.request("GET", "/ws/public")).status == 426
            assert (await client.request("GET", "/healthz")).json() == {"status": "ok"}
            assert (await client.request("GET", "/readyz")).status == 200
            await publish_ok(gw, [{"topic": "ticker/0xdef", "data": _ticker("ETH-PERP")}])
            markets = (await client.request("GET", "/api/v1/markets")).json()
            metrics = (await client.request("GET", "/metrics")).body.decode()
            stats = (await client.request("GET", "/api/v1/stats")).json()
        finally:
            await client.close()
    assert markets == [
        {"market_addr": "0xabc", "symbol": "BTC-PERP", "price_decimals": 2, "size_decimals": 4},
        {"market_addr": "0xdef", "symbol": "ETH-PERP"},
    ]
    assert "streamgate_publications_total 1.0" in metrics
    assert stats["published_total"] == 1
    assert stats["connections"] == {"public": 0, "private": 0, "push": 0}
    assert set(stats) >= {"published_per_s", "delivered_per_s", "delivered_total"}


def _ticker(symbol: str) -> dict[str, object]:
    return {
        "symbol": symbol,
        "last_price": 1,
        "mark_price": 1,
        "index_price": 1,
        "open_interest": 0,
        "open_interest_value": 0,
        "funding_rate": 0,
        "funding_rate_percentage": 0.0,
        "next_funding_time": 0,
        "volume_24h": 0,
        "turnover_24h": 0,
    }
