"""Order-book snapshot + delta continuity over real sockets, with late subscribers."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection

from streamgate.server.app import Gateway

from support import (
    UNIT,
    delta_event,
    open_ws,
    publish,
    publish_ok,
    recv_json,
    running_gateway,
    snapshot_event,
    subscribe,
)

Book = dict[str, dict[int, int]]


def apply(book: Book, data: dict[str, Any]) -> None:
    """What a client does with one orderbook event."""
    if data["type"] == "orderbook_snapshot":
        book["asks"] = {p: s for p, s in data["asks"]}
        book["bids"] = {p: s for p, s in data["bids"]}
        return
    for side in ("asks", "bids"):
        for price, size in data[side]:
            if size == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = size


def ascending(levels: list[list[int]]) -> bool:
    prices = [p for p, _ in levels]
    return prices == sorted(prices) and len(set(prices)) == len(prices)


async def follow(ws: ClientConnection, topic: str, until_seq: int) -> Book:
    """Check continuity (snapshot first, then seq + 1 each) and rebuild the book."""
    book: Book = {"asks": {}, "bids": {}}
    seq: int | None = None
    offset = 0
    while seq != until_seq:
        event = await recv_json(ws, within=10)
        assert event["topic"] == topic
        data = event["data"]
        assert ascending(data["asks"]) and ascending(data["bids"])
        if seq is None:
            assert data["type"] == "orderbook_snapshot", "the first event must be a snapshot"
        else:
            assert data["type"] == "orderbook_delta"
            assert data["seq"] == seq + 1, f"gap or duplicate: {seq} -> {data['seq']}"
            assert event["offset"] == offset + 1
        seq, offset = data["seq"], event["offset"]
        apply(book, data)
    return book


def random_delta(rng: random.Random, book: Book) -> tuple[list[list[int]], list[list[int]]]:
    sides: dict[str, list[list[int]]] = {"asks": [], "bids": []}
    for side, lo in (("asks", 101), ("bids", 50)):
        for price in rng.sample(range(lo, lo + 50), rng.randint(0, 4)):
            size = 0 if price in book[side] and rng.random() < 0.4 else rng.randint(1, 99)
            sides[side].append([price, size])
            apply(book, {"type": "orderbook_delta", "asks": [], "bids": [], side: [[price, size]]})
    return sides["asks"], sides["bids"]


async def test_late_subscribers_get_snapshot_then_contiguous_deltas(gw: Gateway) -> None:
    rng = random.Random(7)
    model: Book = {"asks": {101: 5}, "bids": {99: 5}}
    await publish_ok(gw, [snapshot_event("X", 1, [[101, 5]], [[99, 5]])])
    last_seq = 400
    deltas = [delta_event("X", s, *random_delta(rng, model)) for s in range(2, last_seq + 1)]

    async def producer() -> None:
        for i in range(0, len(deltas), 3):
            await publish_ok(gw, deltas[i : i + 3])
            await asyncio.sleep(0)

    async def late_subscriber(delay: float) -> Book:
        await asyncio.sleep(delay)
        async with open_ws(gw) as ws:
            await subscribe(ws, ["orderbook/X"])
            return await follow(ws, "orderbook/X", last_seq)

    results = await asyncio.gather(
        producer(), *(late_subscriber(rng.random() * 0.3 * UNIT) for _ in range(12))
    )
    for book in results[1:]:
        assert book == model


async def test_delta_that_does_not_follow_is_refused_and_nothing_changes(gw: Gateway) -> None:
    await publish_ok(gw, [snapshot_event("Y", 5, [[110, 1]], [[90, 1]])])
    for bad_seq in (5, 7, 4):
        result = await publish(gw, [delta_event("Y", bad_seq, [[111, 1]], [])])
        assert result.status == 409
        assert result.json()["error"] == {
            "code": "SEQ_GAP",
            "message": f"delta seq {bad_seq} does not follow the book's seq 5; expected 6",
            "index": 0,
            "field": "data.seq",
        }
    # In one batch: a good delta, then one that skips: the whole batch is refused.
    result = await publish(
        gw, [delta_event("Y", 6, [[111, 1]], []), delta_event("Y", 8, [[112, 1]], [])]
    )
    assert result.status == 409 and result.json()["error"]["index"] == 1
    async with open_ws(gw) as ws:
        await subscribe(ws, ["orderbook/Y"])
        snap = await recv_json(ws)
    assert snap["data"]["seq"] == 5 and snap["data"]["asks"] == [[110, 1]]


levels = st.lists(
    st.tuples(st.integers(1, 30), st.integers(0, 9)), max_size=5, unique_by=lambda t: t[0]
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    snapshot=st.tuples(levels, levels),
    deltas=st.lists(st.tuples(levels, levels), min_size=1, max_size=30),
    join=st.integers(0, 30),
)
async def test_any_deltas_applied_to_the_snapshot_equal_the_gateway_book(
    snapshot: tuple[list[tuple[int, int]], list[tuple[int, int]]],
    deltas: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]],
    join: int,
) -> None:
    def lv(raw: list[tuple[int, int]], positive: bool) -> list[list[int]]:
        return [[p, s] for p, s in raw if s > 0 or not positive]

    join = min(join, len(deltas))
    with tempfile.TemporaryDirectory() as tmp:
        async with running_gateway(Path(tmp)) as gw:
            await publish_ok(
                gw, [snapshot_event("H", 1, lv(snapshot[0], True), lv(snapshot[1], True))]
            )
            events = [
                delta_event("H", 2 + i, lv(a, False), lv(b, False))
                for i, (a, b) in enumerate(deltas)
            ]
            if events[:join]:
                await publish_ok(gw, events[:join])
            async with open_ws(gw) as ws:
                await subscribe(ws, ["orderbook/H"])
                if events[join:]:
                    await publish_ok(gw, events[join:])
                client_book = await follow(ws, "orderbook/H", 1 + len(deltas))
            async with open_ws(gw) as ws:
                await subscribe(ws, ["orderbook/H"])
                fresh = (await recv_json(ws))["data"]
    assert fresh["seq"] == 1 + len(deltas)
    gateway_book = {
        "asks": dict(map(tuple, fresh["asks"])),
        "bids": dict(map(tuple, fresh["bids"])),
    }
    assert client_book == gateway_book
