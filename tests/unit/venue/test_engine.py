"""The demo venue's matching engine: semantics, positions, market data, and properties.

Every event the engine emits in these tests goes through the producer API's own
validation (``parse_batch`` and ``check_book_sequences``, chained across calls), and the
book deltas are applied to the first snapshot to rebuild the book the engine reports.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgate.core.channels import is_book_channel
from streamgate.protocol.producer import (
    MAX_EVENTS,
    MAX_PRIVATE_ITEMS,
    ProducerEvent,
    check_book_sequences,
    parse_batch,
)
from streamgate.venue.engine import (
    FUNDING_BASE_RATE,
    FUNDING_CAP,
    FUNDING_INTERVAL_MS,
    REJECT_INVALID,
    REJECT_LEVERAGE,
    REJECT_LOT,
    REJECT_NO_LIQUIDITY,
    REJECT_ORDER_TYPE,
    REJECT_POST_ONLY,
    REJECT_TICK,
    VOLUME_WINDOW_MS,
    Engine,
    MarketSpec,
    Placed,
)

T0 = 1_700_000_100_000  # not on an hour boundary

BTC = MarketSpec(
    market_addr="0xbtc_perp",
    symbol="BTC-PERP",
    price_decimals=2,
    size_decimals=3,
    tick=50,
    lot=10,
    maker_fee_bps=-1,
    taker_fee_bps=5,
    max_leverage=20,
    initial_price=6_500_000,
    maintenance_margin_bps=250,
)
ETH = MarketSpec(
    market_addr="0xeth_perp",
    symbol="ETH-PERP",
    price_decimals=2,
    size_decimals=2,
    tick=5,
    lot=1,
    maker_fee_bps=2,
    taker_fee_bps=6,
    max_leverage=10,
    initial_price=320_000,
    maintenance_margin_bps=300,
)
MARKETS = (BTC, ETH)
SPECS = {m.market_addr: m for m in MARKETS}
A, B, C, D = ("0x" + c * 64 for c in "abcd")
USERS = (A, B, C, D)

ORDER_KEYS = {
    "sid",
    "side",
    "size",
    "price",
    "leverage",
    "type",
    "status",
    "user_addr",
    "market_addr",
    "seq",
    "timestamp",
    "timestamp_ms",
    "stop_loss",
    "take_profit",
}
FILL_KEYS = {
    "sid",
    "side",
    "size",
    "price",
    "maker_fee",
    "taker_fee",
    "taker_order_sid",
    "taker_addr",
    "maker_order_sid",
    "maker_addr",
    "market_addr",
    "seq",
    "maker_leverage",
    "taker_leverage",
    "maker_is_cross",
    "taker_is_cross",
    "timestamp",
    "timestamp_ms",
}
POSITION_KEYS = {
    "sid",
    "market_addr",
    "user_addr",
    "size",
    "price",
    "entry_price",
    "margin",
    "funding_index",
    "epoch",
    "is_cross",
    "initial_margin",
    "initial_margin_mark",
    "maintenance_margin",
    "leverage",
    "liq_price",
    "mark_price",
    "seq",
    "side",
    "unrealized_pnl",
    "timestamp",
    "timestamp_ms",
}
TICKER_KEYS = {
    "type",
    "symbol",
    "market_addr",
    "ts",
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
}
PRIVATE_KEYS = {"order": ORDER_KEYS, "fill": FILL_KEYS, "position": POSITION_KEYS}
OPEN = ("placed", "partial_filled")
TERMINAL = ("filled", "cancelled", "rejected", "partial_filled_and_cancelled")


@dataclass
class Clock:
    now: int = T0

    def __call__(self) -> int:
        return self.now


@dataclass
class Venue:
    """An engine plus a consumer that validates and applies everything it emits."""

    markets: tuple[MarketSpec, ...] = MARKETS
    clock: Clock = field(default_factory=Clock)
    engine: Engine = field(init=False)
    book_seq: dict[str, int] = field(default_factory=dict)
    mirror: dict[str, tuple[dict[int, int], dict[int, int]]] = field(default_factory=dict)
    private: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # topic, user
    trade_seq: dict[str, int] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    tickers: dict[str, dict[str, Any]] = field(default_factory=dict)
    order_statuses: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        self.engine = Engine(self.markets, clock_ms=self.clock)
        self.publish(self.engine.snapshot_events())

    def publish(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for start in range(0, len(events), MAX_EVENTS):
            batch = events[start : start + MAX_EVENTS]
            parsed = parse_batch(orjson.dumps({"events": batch}), now_ms=self.clock())
            check_book_sequences(parsed, self.book_seq.get)
            for raw, ev in zip(batch, parsed, strict=True):
                self._consume(raw, ev)
        return events

    def _consume(self, raw: dict[str, Any], ev: ProducerEvent) -> None:
        # The engine sends every field: the gateway's normalization changes nothing.
        assert ev.data == raw["data"]
        topic = raw["topic"]
        if "user_id" in raw:
            assert set(raw) == {"topic", "user_id", "data"}
            assert 1 <= len(raw["data"]) <= MAX_PRIVATE_ITEMS
            for item in raw["data"]:
                assert set(item) == PRIVATE_KEYS[topic]
                self.private.append((topic, raw["user_id"], item))
                if topic == "order":
                    self.order_statuses[item["sid"]].append(item["status"])
            return
        kind, market = topic.split("/")
        data = raw["data"]
        if is_book_channel(ev.channel):
            self.book_seq[ev.channel] = data["seq"]
            if data["type"] == "orderbook_snapshot":
                self.mirror[market] = ({}, {})
            bids, asks = self.mirror[market]
            for levels, side in ((data["bids"], bids), (data["asks"], asks)):
                assert levels == sorted(levels)
                for price, size in levels:
                    if size:
                        side[price] = size
                    else:
                        del side[price]  # a removal names a level the book had
        elif kind == "trade":
            assert data["seq"] == self.trade_seq.get(market, 0) + 1
            self.trade_seq[market] = data["seq"]
            self.trades.extend({**t, "market": market} for t in data["trades"])
        else:
            assert set(data) == TICKER_KEYS
            self.tickers[market] = data

    def place(self, user: str, market: str, side: str, size: int, **kw: Any) -> Placed:
        placed = self.engine.place(user, market, side, size, **kw)
        self.publish(placed.events)
        return placed

    def cancel(self, user: str, market: str, sid: str) -> list[dict[str, Any]]:
        return self.publish(self.engine.cancel(user, market, sid))

    def items(self, topic: str, user: str | None = None) -> list[dict[str, Any]]:
        return [i for t, u, i in self.private if t == topic and (user is None or u == user)]

    def statuses(self, sid: str) -> list[str]:
        return self.order_statuses[sid]

    def check_book(self) -> None:
        for market in self.mirror:
            bids, asks = self.engine.book(market)
            if bids and asks:
                assert bids[-1][0] < asks[0][0], "crossed book"
            mb, ma = self.mirror[market]
            assert bids == sorted(mb.items())
            assert asks == sorted(ma.items())


def topics(events: list[dict[str, Any]]) -> list[str]:
    return [e["topic"].split("/")[0] for e in events]


# -- placing and matching --------------------------------------------------------------------


def test_limit_order_rests_with_created_then_placed() -> None:
    v = Venue()
    placed = v.place(A, BTC.market_addr, "buy", 20, price=6_499_000, leverage=5)
    assert placed.status == "placed"
    assert placed.reason is None
    assert placed.sid == "BTC-PERP-o1"
    assert topics(placed.events) == ["order", "orderbook"]
    assert v.statuses(placed.sid) == ["created", "placed"]
    assert v.engine.book(BTC.market_addr) == ([(6_499_000, 20)], [])
    [order] = v.engine.open_orders(A)
    assert (order.sid, order.price, order.remaining, order.leverage) == (
        placed.sid,
        6_499_000,
        20,
        5,
    )
    delta = placed.events[-1]["data"]
    assert delta == {
        "type": "orderbook_delta",
        "market_addr": BTC.market_addr,
        "seq": 1,
        "asks": [],
        "bids": [[6_499_000, 20]],
        "timestamp": T0 // 1000,
        "timestamp_ms": T0,
        "matched_at": T0,
    }


def test_price_time_priority() -> None:
    v = Venue()
    m = BTC.market_addr
    first = v.place(A, m, "sell", 10, price=6_501_000).sid
    second = v.place(B, m, "sell", 20, price=6_501_000).sid
    third = v.place(C, m, "sell", 20, price=6_501_000).sid
    better = v.place(D, m, "sell", 10, price=6_500_500).sid  # later but better
    placed = v.place(A, m, "buy", 40)  # market order; A's own resting order is at the front
    assert placed.status == "filled"
    fills = [(f["maker_order_sid"], f["price"], f["size"]) for f in v.items("fill", B)]
    assert fills == [(second, 6_501_000, 20)]
    taker_fills = [(f["maker_order_sid"], f["price"], f["size"]) for f in v.items("fill", A)]
    # Self-trade prevention cancelled A's resting order rather than trading with it.
    assert taker_fills == [(better, 6_500_500, 10), (second, 6_501_000, 20), (third, 6_501_000, 10)]
    assert v.statuses(first) == ["created", "placed", "cancelled"]
    assert v.statuses(third) == ["created", "placed", "partial_filled"]
    assert v.engine.book(m) == ([], [(6_501_000, 10)])
    # One trade item per price level, aggregated, with the taker's side.
    assert [(t["id"], t["side"], t["price"], t["size"], t["seq"]) for t in v.trades] == [
        ("BTC-PERP-1", "buy", 6_500_500, 10, 1),
        ("BTC-PERP-2", "buy", 6_501_000, 30, 2),
    ]
    v.check_book()


def test_one_place_emits_events_in_order() -> None:
    v = Venue()
    m = ETH.market_addr
    v.place(B, m, "sell", 5, price=320_000)
    v.place(C, m, "sell", 5, price=320_005)
    placed = v.place(A, m, "buy", 8, price=320_005, leverage=3)
    assert [(e["topic"], e.get("user_id")) for e in placed.events] == [
        ("order", A),
        ("order", B),
        ("order", C),
        (f"trade/{m}", None),
        ("fill", A),
        ("fill", B),
        ("fill", C),
        ("position", A),
        ("position", B),
        ("position", C),
        (f"orderbook/{m}", None),
    ]
    assert [i["status"] for i in placed.events[0]["data"]] == ["created", "filled"]
    assert placed.events[1]["data"][0]["status"] == "filled"
    assert placed.events[2]["data"][0]["status"] == "partial_filled"
    assert placed.events[-1]["data"]["asks"] == [[320_000, 0], [320_005, 2]]
    assert placed.filled == 8
    v.check_book()


def test_partial_fill_rests_the_remainder() -> None:
    v = Venue()
    m = ETH.market_addr
    v.place(B, m, "sell", 5, price=320_000)
    placed = v.place(A, m, "buy", 8, price=320_010)
    assert placed.status == "partial_filled"
    assert placed.filled == 5
    assert v.engine.book(m) == ([(320_010, 3)], [])
    assert v.statuses(placed.sid) == ["created", "partial_filled"]
    # Cancelling it later says it had filled.
    v.cancel(A, m, placed.sid)
    assert v.statuses(placed.sid)[-1] == "partial_filled_and_cancelled"
    v.check_book()


@pytest.mark.parametrize(
    ("size", "price", "status", "filled"),
    [
        (3, 320_000, "filled", 3),
        (8, 320_000, "partial_filled_and_cancelled", 5),
        (8, 319_995, "cancelled", 0),
    ],
)
def test_ioc_never_rests(size: int, price: int, status: str, filled: int) -> None:
    v = Venue()
    m = ETH.market_addr
    v.place(B, m, "sell", 5, price=320_000)
    placed = v.place(A, m, "buy", size, price=price, ioc=True)
    assert (placed.status, placed.filled) == (status, filled)
    assert v.statuses(placed.sid) == ["created", status]
    assert v.engine.open_orders(A) == []
    assert v.engine.book(m)[0] == []
    v.check_book()


def test_market_order_sweeps_and_cancels_the_rest() -> None:
    v = Venue()
    m = ETH.market_addr
    v.place(B, m, "buy", 4, price=319_990)
    v.place(C, m, "buy", 4, price=319_980)
    placed = v.place(A, m, "sell", 10)
    assert (placed.status, placed.filled) == ("partial_filled_and_cancelled", 8)
    order = v.items("order", A)[0]
    assert (order["type"], order["price"]) == ("market", 0)
    assert [(t["side"], t["price"]) for t in v.trades] == [("sell", 319_990), ("sell", 319_980)]
    assert v.engine.book(m) == ([], [])
    v.check_book()


def test_market_order_without_liquidity_is_rejected() -> None:
    v = Venue()
    placed = v.place(A, ETH.market_addr, "buy", 5)
    assert (placed.status, placed.reason) == ("rejected", REJECT_NO_LIQUIDITY)
    assert v.statuses(placed.sid) == ["rejected"]
    assert topics(placed.events) == ["order"]


def test_post_only() -> None:
    v = Venue()
    m = ETH.market_addr
    v.place(B, m, "sell", 5, price=320_000)
    crossing = v.place(A, m, "buy", 5, price=320_000, post_only=True)
    assert (crossing.status, crossing.reason) == ("rejected", REJECT_POST_ONLY)
    assert v.statuses(crossing.sid) == ["rejected"]
    resting = v.place(A, m, "buy", 5, price=319_995, post_only=True)
    assert resting.status == "placed"
    assert v.engine.book(m) == ([(319_995, 5)], [(320_000, 5)])
    # Crossing only one's own order is still crossing.
    own = v.place(B, m, "buy", 5, price=320_000, post_only=True)
    assert own.reason == REJECT_POST_ONLY
    v.check_book()


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"size": 15, "price": 6_500_025}, REJECT_TICK),
        ({"size": 15, "price": 6_500_000}, REJECT_LOT),
        ({"size": 10, "price": 6_500_000, "leverage": 21}, REJECT_LEVERAGE),
        ({"size": 10, "price": 6_500_000, "post_only": True, "ioc": True}, REJECT_ORDER_TYPE),
        ({"size": 10, "post_only": True}, REJECT_ORDER_TYPE),
    ],
)
def test_rejections_with_an_order_event(kw: dict[str, Any], reason: str) -> None:
    v = Venue()
    placed = v.place(A, BTC.market_addr, "buy", **kw)
    assert (placed.status, placed.reason) == ("rejected", reason)
    [event] = placed.events
    assert event["topic"] == "order"
    assert [i["status"] for i in event["data"]] == ["rejected"]
    assert v.engine.book(BTC.market_addr) == ([], [])


@pytest.mark.parametrize(
    ("user", "market", "side", "size", "kw"),
    [
        (A, "0xnope", "buy", 10, {}),
        (A, BTC.market_addr, "bid", 10, {}),
        (A, BTC.market_addr, "buy", 0, {}),
        (A, BTC.market_addr, "buy", -10, {}),
        (A, BTC.market_addr, "buy", 10, {"price": 0}),
        (A, BTC.market_addr, "buy", 10, {"price": -50}),
        (A, BTC.market_addr, "buy", 10, {"leverage": 0}),
        (A, BTC.market_addr, "buy", True, {}),
        ("a user", BTC.market_addr, "buy", 10, {"price": 6_500_000}),
        ("a:b", BTC.market_addr, "buy", 10, {"price": 6_500_000}),
        ("", BTC.market_addr, "buy", 10, {"price": 6_500_000}),
    ],
)
def test_invalid_orders_make_no_events(
    user: str, market: str, side: str, size: int, kw: dict[str, Any]
) -> None:
    v = Venue()
    placed = v.engine.place(user, market, side, size, **kw)
    assert placed == Placed("", [], "rejected", REJECT_INVALID)


def test_self_trade_cancels_the_resting_order() -> None:
    v = Venue()
    m = ETH.market_addr
    mine = v.place(A, m, "sell", 5, price=320_000).sid
    placed = v.place(A, m, "buy", 5, price=320_000)
    assert placed.status == "placed"  # nothing else to match: it rests
    assert v.statuses(mine) == ["created", "placed", "cancelled"]
    assert v.items("fill") == []
    assert v.engine.book(m) == ([(320_000, 5)], [])
    assert [(i["sid"], i["status"]) for i in placed.events[0]["data"]] == [
        (placed.sid, "created"),
        (mine, "cancelled"),
        (placed.sid, "placed"),
    ]
    v.check_book()


def test_cancel() -> None:
    v = Venue()
    m = ETH.market_addr
    sid = v.place(A, m, "buy", 5, price=319_000).sid
    assert v.engine.cancel(B, m, sid) == []  # not B's
    assert v.engine.cancel(A, ETH.market_addr, "ETH-PERP-o999") == []
    assert v.engine.cancel(A, "0xnope", sid) == []
    events = v.cancel(A, m, sid)
    assert topics(events) == ["order", "orderbook"]
    assert events[1]["data"]["bids"] == [[319_000, 0]]
    assert v.statuses(sid)[-1] == "cancelled"
    assert v.engine.cancel(A, m, sid) == []  # already gone
    v.check_book()


def test_cancel_all() -> None:
    v = Venue()
    for market, price in ((BTC.market_addr, 6_400_000), (ETH.market_addr, 310_000)):
        v.place(A, market, "buy", 10, price=price)
        v.place(A, market, "buy", 10, price=price - SPECS[market].tick)
        v.place(B, market, "buy", 10, price=price)
    events = v.publish(v.engine.cancel_all(A))
    assert topics(events) == ["order", "orderbook", "order", "orderbook"]
    assert v.engine.open_orders(A) == []
    assert len(v.engine.open_orders(B)) == 2
    assert v.engine.cancel_all(A) == []
    v.check_book()


def test_snapshot_carries_the_current_seq() -> None:
    v = Venue()
    m = ETH.market_addr
    v.place(A, m, "buy", 5, price=319_000)
    v.place(A, m, "buy", 7, price=318_000)
    snap = {e["topic"]: e["data"] for e in v.engine.snapshot_events()}[f"orderbook/{m}"]
    assert snap["seq"] == 2
    assert snap["bids"] == [[318_000, 7], [319_000, 5]]
    v.publish(v.engine.snapshot_events())  # a reset; deltas keep following
    v.place(B, m, "sell", 5, price=319_000)
    v.check_book()


def test_many_fills_split_private_events() -> None:
    v = Venue(markets=(ETH,))
    m = ETH.market_addr
    for _ in range(MAX_PRIVATE_ITEMS + 5):
        v.engine.place(B, m, "sell", 1, price=320_000)
    v.publish(v.engine.snapshot_events())
    placed = v.place(A, m, "buy", MAX_PRIVATE_ITEMS + 5)
    assert placed.status == "filled"
    assert [(e["topic"], e.get("user_id")) for e in placed.events if "user_id" in e] == [
        ("order", A),
        ("order", B),
        ("order", B),
        ("fill", A),
        ("fill", A),
        ("fill", B),
        ("fill", B),
        ("position", A),
        ("position", B),
    ]
    assert len(v.items("fill", B)) == MAX_PRIVATE_ITEMS + 5


# -- positions, fees, market data --------------------------------------------------------------


def test_fees_round_up_and_rebates() -> None:
    v = Venue()
    m = BTC.market_addr
    v.place(B, m, "sell", 10, price=6_500_000)  # 0.010 BTC at 65,000.00
    v.place(A, m, "buy", 10)
    [fill] = v.items("fill", A)
    # notional 650.00 = 65_000 quote units; taker 5 bps = 32.5 -> 33; maker -1 bp = -6.5 -> -6
    assert (fill["taker_fee"], fill["maker_fee"]) == (33, -6)
    positions = v.engine.positions(m)
    assert (positions[A].fees, positions[B].fees) == (33, -6)
    assert fill["side"] == "buy"
    assert (fill["taker_addr"], fill["maker_addr"]) == (A, B)
    assert (fill["maker_is_cross"], fill["taker_is_cross"]) == (False, False)


def test_netting_entry_price_and_realized_pnl() -> None:
    v = Venue()
    m = ETH.market_addr

    def trade(side: str, size: int, price: int, leverage: int = 2) -> None:
        other = "sell" if side == "buy" else "buy"
        v.place(B, m, other, size, price=price, leverage=10)
        v.place(A, m, side, size, price=price, leverage=leverage)

    trade("buy", 100, 300_000)  # 1.00 ETH at 3000.00
    trade("buy", 300, 320_000)  # +3.00 at 3200.00 -> entry 3150.00
    pos = v.engine.positions(m)[A]
    assert (pos.size, pos.entry_price, pos.realized_pnl) == (400, 315_000, 0)
    assert pos.margin == 315_000 * 4 // 2  # 12,600.00 at 2x
    trade("sell", 100, 330_000, leverage=5)  # close 1.00 at +150.00
    pos = v.engine.positions(m)[A]
    assert (pos.size, pos.entry_price, pos.realized_pnl, pos.leverage) == (300, 315_000, 15_000, 2)
    trade("sell", 500, 310_000, leverage=4)  # close 3.00 at -50.00 each, open short 2.00
    pos = v.engine.positions(m)[A]
    assert (pos.size, pos.entry_price, pos.leverage) == (-200, 310_000, 4)
    assert pos.realized_pnl == 15_000 - 15_000
    assert v.engine.positions(m)[B].size == 200
    last = v.items("position", A)[-1]
    assert (last["size"], last["price"], last["side"], last["leverage"]) == (
        -200,
        310_000,
        "sell",  # a short position (PROTOCOL.md section 2)
        4,
    )
    assert last["entry_price"] == last["price"]


def test_margin_and_liquidation_price() -> None:
    v = Venue()
    m = BTC.market_addr
    v.place(B, m, "sell", 1000, price=6_000_000, leverage=20)  # 1.000 BTC at 60,000.00
    v.place(A, m, "buy", 1000, price=6_000_000, leverage=10)
    long_, short = v.items("position", A)[-1], v.items("position", B)[-1]
    assert long_["margin"] == long_["initial_margin"] == 600_000  # 60,000.00 / 10
    assert short["margin"] == 300_000
    # long: 60000 * (1 - 1/10) / (1 - 0.025) = 55384.615...; short: 60000 * 1.05 / 1.025
    assert long_["liq_price"] == 5_538_462
    assert short["liq_price"] == 6_146_341
    assert (long_["is_cross"], long_["side"], short["side"]) == (False, "buy", "sell")
    # The mark moves: unrealized PnL, mark-based margins.
    events = v.publish(v.engine.set_index_price(m, 6_100_000))
    assert topics(events) == ["ticker", "position", "position"]
    long_ = v.items("position", A)[-1]
    assert (long_["mark_price"], long_["unrealized_pnl"]) == (6_100_000, 100_000)
    assert long_["initial_margin_mark"] == 610_000
    assert long_["maintenance_margin"] == 6_100_000 * 250 // 10_000
    assert v.items("position", B)[-1]["unrealized_pnl"] == -100_000
    assert v.engine.positions(m)[A].unrealized_pnl == 100_000
    # A flat position reports no liquidation price.
    v.place(B, m, "buy", 1000, price=6_000_000)
    v.place(A, m, "sell", 1000, price=6_000_000)
    flat = v.items("position", A)[-1]
    assert (flat["size"], flat["side"], flat["liq_price"], flat["price"]) == (0, "buy", None, 0)
    with pytest.raises(ValueError, match="index price"):
        v.engine.set_index_price(m, 0)


def test_ticker_open_interest_and_rolling_volume() -> None:
    v = Venue()
    m = ETH.market_addr
    [ticker] = [e for e in v.publish(v.engine.ticker_events()) if e["topic"] == f"ticker/{m}"]
    data = ticker["data"]
    assert (data["last_price"], data["mark_price"], data["index_price"]) == (320_000,) * 3
    assert (data["open_interest"], data["volume_24h"], data["turnover_24h"]) == (0, 0, 0)
    assert data["next_funding_time"] == (T0 // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS
    v.place(B, m, "sell", 100, price=321_000)
    v.place(A, m, "buy", 100)
    v.clock.now += 3_600_000
    v.place(C, m, "sell", 50, price=322_000)
    v.place(B, m, "buy", 50)  # B short 1.00 -> short 0.50; C short 0.50
    v.publish(v.engine.ticker_events())
    data = v.tickers[m]
    assert data["last_price"] == 322_000
    assert data["open_interest"] == 100  # A's long
    assert data["open_interest_value"] == 320_000
    assert data["volume_24h"] == 150
    assert data["turnover_24h"] == 321_000 + 161_000
    v.clock.now += VOLUME_WINDOW_MS - 3_600_000 + 60_000  # the first trade leaves the window
    v.publish(v.engine.ticker_events())
    assert (v.tickers[m]["volume_24h"], v.tickers[m]["turnover_24h"]) == (50, 161_000)
    v.clock.now += 3_600_000
    v.publish(v.engine.ticker_events())
    assert (v.tickers[m]["volume_24h"], v.tickers[m]["turnover_24h"]) == (0, 0)


def test_funding_rate_and_settlement() -> None:
    v = Venue()
    m = ETH.market_addr
    v.place(B, m, "sell", 100, price=320_000)
    v.place(A, m, "buy", 100)  # A long 1.00, B short 1.00 at 3200.00
    assert v.publish(v.engine.settle_funding()) == []  # not due yet
    v.place(C, m, "buy", 1, price=320_000)
    v.place(C, m, "sell", 1, price=321_600)  # mid 3208.00: premium 0.25%
    v.publish(v.engine.ticker_events())
    assert v.tickers[m]["funding_rate"] == pytest.approx(FUNDING_BASE_RATE + 0.0025)
    assert v.tickers[m]["funding_rate_percentage"] == pytest.approx(0.26)
    due = v.tickers[m]["next_funding_time"]
    v.clock.now = due + 5
    events = v.publish(v.engine.settle_funding())  # both markets are due: BTC, then ETH
    assert topics(events) == ["ticker", "ticker", "position", "position"]
    assert v.tickers[m]["next_funding_time"] == due + FUNDING_INTERVAL_MS
    positions = v.engine.positions(m)
    # 1.00 ETH * 3200.00 * 0.26% = 8.32: the long pays, the short receives.
    assert (positions[A].funding, positions[B].funding) == (832, -832)
    assert positions[A].epoch == positions[B].epoch == 1
    assert v.items("position", A)[-1]["funding_index"] == pytest.approx(0.0026)
    assert v.engine.settle_funding() == []
    # A rate past the cap is clamped; set_index_price settles first.
    v.publish(v.engine.cancel_all(C))
    v.place(D, m, "buy", 1, price=250_000)
    v.place(D, m, "sell", 1, price=250_010)
    v.publish(v.engine.ticker_events())
    assert v.tickers[m]["funding_rate"] == pytest.approx(-FUNDING_CAP)
    v.clock.now += FUNDING_INTERVAL_MS * 5
    v.publish(v.engine.set_index_price(m, 330_000))
    assert v.engine.positions(m)[A].epoch == 2  # several missed intervals settle once
    # 1.00 ETH * 3200.00 (the mark before the move) * -0.5% = -16.00: the long receives.
    assert v.engine.positions(m)[A].funding == 832 - 1600


def test_market_spec_checks() -> None:
    clock = Clock()
    with pytest.raises(ValueError, match="twice"):
        Engine([ETH, ETH], clock_ms=clock)
    for kw in (
        {"market_addr": "a/b"},
        {"market_addr": "a b"},
        {"market_addr": ""},
        {"symbol": ""},
        {"tick": 0},
        {"lot": -1},
        {"initial_price": 0},
        {"max_leverage": 0},
        {"maker_fee_bps": -7},
        {"taker_fee_bps": -1, "maker_fee_bps": -1},
        {"maintenance_margin_bps": 1000},  # 10 x 10% leaves no room above maintenance
        {"size_decimals": -1},
    ):
        with pytest.raises(ValueError, match="market"):
            Engine([replace(ETH, **kw)], clock_ms=clock)
    assert Engine([ETH, BTC], clock_ms=clock).markets == [ETH, BTC]


# -- properties -----------------------------------------------------------------------------------


@dataclass
class RefOrder:
    sid: str
    user: str
    side: str
    price: int
    size: int
    remaining: int

    @property
    def gone(self) -> str:
        """The status it ends with when cancelled."""
        return "partial_filled_and_cancelled" if self.remaining < self.size else "cancelled"


@dataclass
class Reference:
    """A naive matcher: sort every resting order by price then arrival, take in order."""

    resting: list[RefOrder] = field(default_factory=list)

    def place(
        self, placed: Placed, user: str, side: str, size: int, price: int | None, ioc: bool
    ) -> tuple[list[tuple[str, int, int]], list[RefOrder], str]:
        opposite = [o for o in self.resting if o.side != side]
        if price is not None:
            opposite = [
                o for o in opposite if (o.price <= price if side == "buy" else o.price >= price)
            ]
        opposite.sort(key=lambda o: o.price if side == "buy" else -o.price)  # stable: arrival
        fills: list[tuple[str, int, int]] = []
        cancelled: list[RefOrder] = []
        remaining = size
        for o in opposite:
            if not remaining:
                break
            if o.user == user:
                self.resting.remove(o)
                cancelled.append(o)
                continue
            take = min(remaining, o.remaining)
            fills.append((o.sid, o.price, take))
            remaining -= take
            o.remaining -= take
            if not o.remaining:
                self.resting.remove(o)
        if not remaining:
            status = "filled"
        elif price is None or ioc:
            status = "partial_filled_and_cancelled" if remaining < size else "cancelled"
        else:
            status = "partial_filled" if remaining < size else "placed"
            self.resting.append(RefOrder(placed.sid, user, side, price, size, remaining))
        return fills, cancelled, status

    def depth(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        sides: dict[str, dict[int, int]] = {"buy": defaultdict(int), "sell": defaultdict(int)}
        for o in self.resting:
            sides[o.side][o.price] += o.remaining
        return sorted(sides["buy"].items()), sorted(sides["sell"].items())


def expected_refusal(
    v: Venue, spec: MarketSpec, side: str, size: int, price: int | None, kw: dict[str, Any]
) -> str | None:
    post_only, ioc, leverage = kw["post_only"], kw["ioc"], kw["leverage"]
    if post_only and (ioc or price is None):
        return REJECT_ORDER_TYPE
    if price is not None and price % spec.tick:
        return REJECT_TICK
    if size % spec.lot:
        return REJECT_LOT
    if leverage > spec.max_leverage:
        return REJECT_LEVERAGE
    bids, asks = v.engine.book(spec.market_addr)
    opposite = asks if side == "buy" else bids
    if price is None:
        return None if opposite else REJECT_NO_LIQUIDITY
    if post_only and opposite:
        best = opposite[0][0] if side == "buy" else opposite[-1][0]
        if (price >= best) if side == "buy" else (price <= best):
            return REJECT_POST_ONLY
    return None


KINDS = ("limit",) * 6 + ("market",) * 2 + ("ioc", "post_only", "cancel", "index", "time")
OPS = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, len(USERS) - 1),  # user
        st.integers(0, len(MARKETS) - 1),  # market
        st.booleans(),  # buy?
        st.integers(-3, 3),  # price offset, ticks from the index: close, so orders cross
        st.integers(1, 12),  # size in lots
        st.integers(1, 22),  # leverage (BTC allows 20, ETH 10)
        st.integers(0, 19),  # 0: off-tick or off-lot; else which order to cancel
    ),
    min_size=20,
    max_size=80,
)


def run(ops: list[tuple[str, int, int, bool, int, int, int, int]]) -> Venue:
    v = Venue()
    refs = {spec.market_addr: Reference() for spec in MARKETS}
    for kind, u, mi, buy, offset, lots, leverage, extra in ops:
        user, spec = USERS[u], MARKETS[mi]
        market = spec.market_addr
        ref = refs[market]
        if kind == "time":
            v.clock.now += extra * 600_000 + lots * 1000
            v.publish(v.engine.settle_funding())
            v.publish(v.engine.ticker_events())
            continue
        if kind == "index":
            index = max(spec.tick, v.engine.index_price(market) + offset * spec.tick)
            v.publish(v.engine.set_index_price(market, index))
            continue
        if kind == "cancel":
            mine = v.engine.open_orders(user, market)
            if mine:
                sid = mine[extra % len(mine)].sid
                v.cancel(user, market, sid)
                [gone] = [o for o in ref.resting if o.sid == sid]
                ref.resting.remove(gone)
                assert v.statuses(sid)[-1] == gone.gone
            else:
                assert v.cancel(user, market, f"{spec.symbol}-o1") == []
            continue
        side = "buy" if buy else "sell"
        size = lots * spec.lot + (1 if extra == 0 and spec.lot > 1 else 0)
        price = None if kind == "market" else v.engine.index_price(market) + offset * spec.tick
        if price is not None and extra == 0 and kind != "post_only":
            price += 1  # off-tick (both ticks are > 1)
        if price is not None and price <= 0:
            continue
        kw = {"post_only": kind == "post_only", "ioc": kind == "ioc", "leverage": leverage}
        refusal = expected_refusal(v, spec, side, size, price, kw)
        placed = v.place(user, market, side, size, price=price, **kw)
        assert placed.reason == refusal
        if refusal is not None:
            assert placed.status == "rejected"
            assert v.statuses(placed.sid) == ["rejected"]
            continue
        # Price-time priority: the engine matches exactly as the naive reference does.
        fills, cancelled, status = ref.place(placed, user, side, size, price, kind == "ioc")
        got = [
            (f["maker_order_sid"], f["price"], f["size"])
            for e in placed.events
            if e["topic"] == "fill" and e["user_id"] == user
            for f in e["data"]
        ]
        assert got == fills
        assert placed.status == status
        assert placed.filled == sum(f[2] for f in fills)
        for o in cancelled:  # self-trade prevention
            assert v.statuses(o.sid)[-1] == o.gone
        assert v.engine.book(market) == ref.depth()
        v.check_book()
    v.publish(v.engine.ticker_events())
    return v


def check_orders(v: Venue) -> None:
    """Each order's events tell a consistent story ending where the engine stands."""
    last: dict[str, dict[str, Any]] = {}
    seqs: dict[str, int] = defaultdict(int)
    for topic, user, item in v.private:
        assert item["seq"] > seqs[user]  # a user's items are in order
        seqs[user] = item["seq"]
        if topic != "order":
            continue
        assert item["user_addr"] == user
        before = last.get(item["sid"])
        if before is None:
            assert item["status"] in ("created", "rejected")
        else:
            assert before["status"] not in TERMINAL
        last[item["sid"]] = item
    for user in USERS:
        open_sids = {o.sid for o in v.engine.open_orders(user)}
        assert open_sids == {
            s for s, i in last.items() if i["user_addr"] == user and i["status"] in OPEN
        }


def check_conservation_and_positions(v: Venue) -> None:
    fills = {(f["market_addr"], f["sid"]): f for f in v.items("fill")}
    for f in fills.values():
        assert f["maker_addr"] != f["taker_addr"]  # no self-trade
    # Every fill reached both its maker and its taker, once each.
    received = defaultdict(list)
    for _, user, f in [(t, u, i) for t, u, i in v.private if t == "fill"]:
        received[f["market_addr"], f["sid"]].append(user)
    for key, f in fills.items():
        assert sorted(received[key]) == sorted([f["maker_addr"], f["taker_addr"]])
    for spec in MARKETS:
        market = spec.market_addr
        mine = [f for (m, _), f in fills.items() if m == market]
        # Traded size: the tape, the fills, buyers and sellers all agree.
        tape = sum(t["size"] for t in v.trades if t["market"] == market)
        assert tape == sum(f["size"] for f in mine)
        ids = [t["id"] for t in v.trades if t["market"] == market]
        assert ids == [f"{spec.symbol}-{n}" for n in range(1, len(ids) + 1)]
        positions = v.engine.positions(market)
        assert sum(p.size for p in positions.values()) == 0
        longs = sum(p.size for p in positions.values() if p.size > 0)
        assert v.tickers[market]["open_interest"] == longs
        # Each user's fills, replayed exactly, give the engine's position.
        model: dict[str, list[Fraction]] = defaultdict(lambda: [Fraction(0)] * 3)  # size, cost, pnl
        fees: dict[str, int] = defaultdict(int)
        for f in sorted(mine, key=lambda f: f["seq"]):
            bought = f["size"] if f["side"] == "buy" else -f["size"]
            for user, delta, fee in (
                (f["taker_addr"], bought, f["taker_fee"]),
                (f["maker_addr"], -bought, f["maker_fee"]),
            ):
                fees[user] += fee
                size, cost, pnl = model[user]
                price = Fraction(f["price"])
                if size == 0 or (size > 0) == (delta > 0):
                    model[user] = [size + delta, cost + price * abs(delta), pnl]
                    continue
                closed = min(abs(size), abs(delta))
                entry = cost / abs(size)
                pnl += (price - entry) * closed * (1 if size > 0 else -1)
                rest = abs(delta) - closed
                if closed == abs(size):
                    sign = 1 if delta > 0 else -1
                    model[user] = [Fraction(sign * rest), price * rest, pnl]
                else:
                    model[user] = [size + delta, entry * (abs(size) - closed), pnl]
        assert set(model) == set(positions)
        for user, (size, cost, pnl) in model.items():
            pos = positions[user]
            assert pos.size == size
            assert pos.fees == fees[user]
            assert abs(pos.realized_pnl - pnl / 10**spec.size_decimals) <= 1
            if size:
                assert abs(pos.entry_price - cost / abs(size)) <= 1
                assert pos.margin == pytest.approx(
                    float(cost / 10**spec.size_decimals / pos.leverage), abs=2
                )
            else:
                assert pos.entry_price == 0
            # The last position event says what the engine says.
            items = [i for i in v.items("position", user) if i["market_addr"] == market]
            if items and pos.size:
                last = items[-1]
                assert (last["size"], last["price"], last["margin"], last["leverage"]) == (
                    pos.size,
                    pos.entry_price,
                    pos.margin,
                    pos.leverage,
                )
                assert last["liq_price"] == pos.liq_price
                if last["mark_price"] == pos.mark_price:
                    assert last["unrealized_pnl"] == pos.unrealized_pnl


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(OPS)
def test_random_order_flow(ops: list[tuple[str, int, int, bool, int, int, int, int]]) -> None:
    v = run(ops)
    check_orders(v)
    check_conservation_and_positions(v)


def test_random_order_flow_busy() -> None:
    """A longer deterministic run, so deep books and flips are exercised."""
    rng = random.Random(7)
    ops = [
        (
            rng.choice(KINDS),
            rng.randrange(len(USERS)),
            rng.randrange(len(MARKETS)),
            rng.random() < 0.5,
            rng.randint(-6, 6),
            rng.randint(1, 12),
            rng.randint(1, 22),
            rng.randint(0, 19),
        )
        for _ in range(1500)
    ]
    v = run(ops)
    check_orders(v)
    check_conservation_and_positions(v)
    assert len(v.items("fill")) > 300
