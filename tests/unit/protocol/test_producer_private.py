"""Producer API private events: order, fill and position arrays for one user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from streamgate.core.channels import private_channel
from streamgate.errors import ProducerRefusal
from streamgate.protocol.producer import (
    MAX_PRIVATE_ITEMS,
    MAX_USER_ID,
    ORDER_STATUSES,
    ProducerEvent,
    check_book_sequences,
    parse_batch,
)

NOW_MS = 1_700_000_000_123
USER = "0x" + "ab" * 32
OTHER = "0x" + "cd" * 32
MARKET = "0x" + "01" * 32

ORDER_KEYS = [
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
]
FILL_KEYS = [
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
]
POSITION_OPTIONAL = [
    "initial_margin",
    "initial_margin_mark",
    "maintenance_margin",
    "leverage",
    "liq_price",
]
POSITION_LATE_OPTIONAL = ["realized_pnl_delta", "realized_pnl_cum", "stop_loss", "take_profit"]
POSITION_KEYS = [
    "sid",
    "market_addr",
    "user_addr",
    "size",
    "price",
    "entry_price",  # filled from price (PROTOCOL.md section 2)
    "margin",
    "funding_index",
    "epoch",
    "is_cross",
    *POSITION_OPTIONAL,
    "mark_price",
    "seq",
    "side",
    "unrealized_pnl",
    *POSITION_LATE_OPTIONAL,
    "timestamp",
    "timestamp_ms",
]


def body(*events: Any) -> bytes:
    return orjson.dumps({"events": list(events)})


def parse(*events: Any) -> list[ProducerEvent]:
    return parse_batch(body(*events), now_ms=NOW_MS)


def refused(*events: Any) -> ProducerRefusal:
    with pytest.raises(ProducerRefusal) as info:
        parse_batch(body(*events), now_ms=NOW_MS)
    return info.value


def order(**extra: Any) -> dict[str, Any]:
    return {
        "sid": "o1",
        "side": "buy",
        "size": 5,
        "price": 100,
        "leverage": 10,
        "type": "limit",
        "status": "placed",
        "user_addr": USER,
        "market_addr": MARKET,
        "seq": 7,
        **extra,
    }


def fill(**extra: Any) -> dict[str, Any]:
    return {
        "sid": "f1",
        "side": "sell",
        "size": 2,
        "price": 101,
        "maker_fee": -0.5,
        "taker_fee": 1,
        "taker_order_sid": "o2",
        "taker_addr": OTHER,
        "maker_order_sid": "o1",
        "maker_addr": USER,
        "market_addr": MARKET,
        "seq": 8,
        "maker_leverage": 10,
        "taker_leverage": 2.5,
        "maker_is_cross": True,
        "taker_is_cross": False,
        **extra,
    }


def position(**extra: Any) -> dict[str, Any]:
    return {
        "sid": "p1",
        "market_addr": MARKET,
        "user_addr": USER,
        "size": -3,
        "price": 100,
        "margin": 500,
        "funding_index": 0.000125,
        "epoch": 4,
        "is_cross": False,
        "mark_price": 98,
        "seq": 9,
        "side": "sell",
        "unrealized_pnl": -6,
        **extra,
    }


ITEMS: dict[str, Callable[..., dict[str, Any]]] = {
    "order": order,
    "fill": fill,
    "position": position,
}


def private(topic: str, *items: Any, user_id: Any = USER, **extra: Any) -> Any:
    if not items:
        items = (ITEMS[topic](),)
    return {"topic": topic, "user_id": user_id, "data": list(items), **extra}


def ticker() -> dict[str, Any]:
    numbers = dict.fromkeys(
        (
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
        ),
        1,
    )
    return {"topic": "ticker/M", "data": {"symbol": "M-PERP", **numbers}}


def book(kind: str = "orderbook_snapshot", seq: int = 1) -> dict[str, Any]:
    return {"topic": "orderbook/M", "data": {"type": kind, "seq": seq, "asks": [], "bids": []}}


# -- accepted events -------------------------------------------------------------------


def test_order_normalized() -> None:
    [ev] = parse(private("order"))
    assert ev == ProducerEvent(
        0,
        f"user:{USER}:order",
        [
            {
                "sid": "o1",
                "side": "buy",
                "size": 5,
                "price": 100,
                "leverage": 10,
                "type": "limit",
                "status": "placed",
                "user_addr": USER,
                "market_addr": MARKET,
                "seq": 7,
                "timestamp": NOW_MS // 1000,
                "timestamp_ms": NOW_MS,
                "stop_loss": None,
                "take_profit": None,
            }
        ],
        None,
    )
    assert list(ev.data[0]) == ORDER_KEYS


def test_order_key_order_is_canonical_whatever_the_input_order() -> None:
    item = dict(reversed(list(order(stop_loss=90, take_profit=120, timestamp=1).items())))
    [ev] = parse(private("order", item))
    assert list(ev.data[0]) == ORDER_KEYS
    assert (ev.data[0]["stop_loss"], ev.data[0]["take_profit"]) == (90, 120)
    assert orjson.dumps(ev.data[0]).startswith(b'{"sid":"o1","side":"buy","size":5')


@pytest.mark.parametrize("status", ORDER_STATUSES)
def test_every_order_status(status: str) -> None:
    [ev] = parse(private("order", order(status=status)))
    assert ev.data[0]["status"] == status


def test_order_statuses_are_the_documents() -> None:
    assert ORDER_STATUSES == (
        "created",
        "placed",
        "filled",
        "cancelled",
        "rejected",
        "partial_filled",
        "partial_filled_and_cancelled",
    )


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        ({}, (None, None)),
        ({"stop_loss": None, "take_profit": None}, (None, None)),
        ({"stop_loss": 90}, (90, None)),
        ({"take_profit": 0}, (None, 0)),
        ({"stop_loss": 90, "take_profit": 130}, (90, 130)),
    ],
)
def test_order_stop_loss_take_profit(extra: dict[str, Any], expect: tuple[Any, Any]) -> None:
    [ev] = parse(private("order", order(**extra)))
    assert (ev.data[0]["stop_loss"], ev.data[0]["take_profit"]) == expect


def test_order_edge_values() -> None:
    item = order(size=0, price=0, leverage=0.5, type="market", side="sell", seq=0)
    [ev] = parse(private("order", item))
    got = ev.data[0]
    assert (got["size"], got["price"], got["leverage"], got["type"], got["seq"]) == (
        0,
        0,
        0.5,
        "market",
        0,
    )


def test_fill_normalized() -> None:
    [ev] = parse(private("fill"))
    assert ev.channel == f"user:{USER}:fill"
    assert ev.data == [
        {
            **fill(),
            "timestamp": NOW_MS // 1000,
            "timestamp_ms": NOW_MS,
        }
    ]
    assert list(ev.data[0]) == FILL_KEYS


def test_fill_key_order_is_canonical() -> None:
    item = dict(sorted(fill(timestamp_ms=5_000).items()))
    [ev] = parse(private("fill", item))
    assert list(ev.data[0]) == FILL_KEYS


@pytest.mark.parametrize(
    ("maker", "taker"),
    [(USER, OTHER), (OTHER, USER), (USER, USER)],
    ids=["maker", "taker", "self-trade"],
)
def test_fill_owned_as_maker_or_taker(maker: str, taker: str) -> None:
    [ev] = parse(private("fill", fill(maker_addr=maker, taker_addr=taker)))
    assert (ev.data[0]["maker_addr"], ev.data[0]["taker_addr"]) == (maker, taker)


def test_fill_numbers_may_be_ints_floats_or_negative() -> None:
    item = fill(maker_fee=-1, taker_fee=0.25, maker_leverage=1, taker_leverage=50.5)
    [ev] = parse(private("fill", item))
    got = ev.data[0]
    assert (got["maker_fee"], got["taker_fee"]) == (-1, 0.25)
    assert (got["maker_leverage"], got["taker_leverage"]) == (1, 50.5)


def test_position_normalized_optionals_absent_stay_absent() -> None:
    [ev] = parse(private("position"))
    assert ev.channel == f"user:{USER}:position"
    filled = {"entry_price": 100, "timestamp": NOW_MS // 1000, "timestamp_ms": NOW_MS}
    assert ev.data == [{**position(), **filled}]
    optional = {*POSITION_OPTIONAL, *POSITION_LATE_OPTIONAL}
    assert not optional & set(ev.data[0])
    assert list(ev.data[0]) == [k for k in POSITION_KEYS if k not in optional]


def test_position_optionals_kept_in_canonical_place() -> None:
    optionals = {
        "liq_price": None,
        "leverage": 5,
        "maintenance_margin": 12.5,
        "initial_margin_mark": None,
        "initial_margin": 100,
    }
    item = dict(reversed(list(position(**optionals).items())))
    [ev] = parse(private("position", item))
    assert list(ev.data[0]) == [k for k in POSITION_KEYS if k not in POSITION_LATE_OPTIONAL]
    assert {k: ev.data[0][k] for k in POSITION_OPTIONAL} == optionals


@pytest.mark.parametrize("name", POSITION_OPTIONAL)
def test_position_one_optional(name: str) -> None:
    [ev] = parse(private("position", position(**{name: 3})))
    assert ev.data[0][name] == 3
    assert [k for k in POSITION_KEYS if k in ev.data[0]] == list(ev.data[0])


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_position_side_is_buy_or_sell(side: str) -> None:
    [ev] = parse(private("position", position(side=side)))
    assert ev.data[0]["side"] == side


def test_position_entry_price_must_be_its_price() -> None:
    [ev] = parse(private("position", position(entry_price=100)))
    assert ev.data[0]["entry_price"] == ev.data[0]["price"] == 100
    r = refused(private("position", position(entry_price=101)))
    assert r.field == "data[0].entry_price" and "price" in r.detail


def test_position_late_optionals_kept_in_canonical_place() -> None:
    late = {"take_profit": None, "stop_loss": 90, "realized_pnl_cum": -40, "realized_pnl_delta": 5}
    [ev] = parse(private("position", dict(reversed(list(position(**late).items())))))
    assert [k for k in ev.data[0] if k in late] == POSITION_LATE_OPTIONAL
    assert {k: ev.data[0][k] for k in late} == late


def test_position_signed_values() -> None:
    item = position(size=5, unrealized_pnl=12, margin=0, epoch=0, funding_index=-1)
    [ev] = parse(private("position", item))
    got = ev.data[0]
    assert (got["size"], got["unrealized_pnl"], got["margin"], got["epoch"]) == (5, 12, 0, 0)
    assert got["funding_index"] == -1
    [ev] = parse(private("position", position(size=0, unrealized_pnl=0, price=0, mark_price=0)))
    assert ev.data[0]["size"] == 0


@pytest.mark.parametrize("topic", ["order", "fill", "position"])
@pytest.mark.parametrize(
    ("stamps", "expect"),
    [
        ({}, (NOW_MS // 1000, NOW_MS)),
        ({"timestamp_ms": 1_600_000_000_999}, (1_600_000_000, 1_600_000_000_999)),
        ({"timestamp": 1_600_000_000}, (1_600_000_000, 1_600_000_000_000)),
        (
            {"timestamp": 1_600_000_000, "timestamp_ms": 1_600_000_000_999},
            (1_600_000_000, 1_600_000_000_999),
        ),
        ({"timestamp": 0, "timestamp_ms": 0}, (0, 0)),
    ],
)
def test_stamps_filled_like_market_events(
    topic: str, stamps: dict[str, int], expect: tuple[int, int]
) -> None:
    [ev] = parse(private(topic, ITEMS[topic](**stamps)))
    assert (ev.data[0]["timestamp"], ev.data[0]["timestamp_ms"]) == expect


def test_each_item_stamped_on_its_own() -> None:
    [ev] = parse(private("order", order(timestamp_ms=5_000), order(), order(timestamp=7)))
    assert [(o["timestamp"], o["timestamp_ms"]) for o in ev.data] == [
        (5, 5_000),
        (NOW_MS // 1000, NOW_MS),
        (7, 7_000),
    ]


def test_channel_is_private_channel() -> None:
    evs = parse(private("order"), private("fill"), private("position"))
    assert [e.channel for e in evs] == [
        private_channel(USER, "order"),
        private_channel(USER, "fill"),
        private_channel(USER, "position"),
    ]


def test_many_items_keep_their_order() -> None:
    items = [order(sid=f"o{i}", seq=i) for i in range(5)]
    [ev] = parse(private("order", *items))
    assert [o["sid"] for o in ev.data] == ["o0", "o1", "o2", "o3", "o4"]


def test_data_limit() -> None:
    [ev] = parse(private("position", *[position()] * MAX_PRIVATE_ITEMS))
    assert len(ev.data) == MAX_PRIVATE_ITEMS == 1000
    r = refused(private("position", *[position()] * (MAX_PRIVATE_ITEMS + 1)))
    assert (r.code, r.index, r.field, r.status) == ("INVALID_EVENT", 0, "data", 400)


def test_idempotency_key_and_mixed_batch_indexes() -> None:
    evs = parse(
        ticker(),
        private("order", idempotency_key="k1"),
        book(),
        private("fill", user_id=OTHER, idempotency_key="k" * 256),
        private("position"),
    )
    assert [(e.index, e.channel, e.idempotency_key) for e in evs] == [
        (0, "ticker/M", None),
        (1, f"user:{USER}:order", "k1"),
        (2, "orderbook/M", None),
        (3, f"user:{OTHER}:fill", "k" * 256),
        (4, f"user:{USER}:position", None),
    ]


@pytest.mark.parametrize(
    "user_id",
    [
        USER,
        "0x1",
        "alice",
        "u-123_456.789",
        "auth0|5f7c8ec7c33c6c004bbafe82",
        "tenant/sub-user",
        "ユーザー",
        "x",
        "u" * MAX_USER_ID,
    ],
)
def test_user_id_any_format_accepted(user_id: str) -> None:
    item = order(user_addr=user_id)
    [ev] = parse(private("order", item, user_id=user_id))
    assert ev.channel == private_channel(user_id, "order") == f"user:{user_id}:order"


# -- check_book_sequences --------------------------------------------------------------


def test_book_sequences_ignore_private_events() -> None:
    def no_lookup(channel: str) -> int | None:
        raise AssertionError(f"looked up {channel}")

    evs = parse(
        private("order", order(seq=1), order(seq=1)),
        private("fill", fill(seq=100)),
        private("position", position(seq=0)),
        private("order", order(user_addr="orderbook"), user_id="orderbook"),
        private("position", position(user_addr="orderbook/M"), user_id="orderbook/M"),
    )
    check_book_sequences(evs, no_lookup)


def test_book_sequences_still_checked_next_to_private_events() -> None:
    evs = parse(private("order"), book("orderbook_delta", seq=3))
    books: dict[str, int] = {}
    with pytest.raises(ProducerRefusal) as info:
        check_book_sequences(evs, books.get)
    assert (info.value.code, info.value.index) == ("NO_BOOK", 1)


# -- refusals: the event ---------------------------------------------------------------


@pytest.mark.parametrize(
    "topic",
    ["orders", "Order", "FILL", "position/M", "order ", " fill", "order\n", "positions", ""],
)
def test_unknown_private_topic(topic: str) -> None:
    r = refused(ticker(), private("order") | {"topic": topic})
    assert (r.code, r.index, r.field, r.status) == ("UNKNOWN_TOPIC", 1, "topic", 400)


@pytest.mark.parametrize(
    "user_id",
    [
        1,
        1.5,
        True,
        ["0xab"],
        {"id": "0xab"},
        "",
        "u" * (MAX_USER_ID + 1),
        " 0xab",
        "0xab ",
        "0x ab",
        "0x\tab",
        "0x\nab",
        "0x\rab",
        "0x\x00ab",
        "0x\x1bab",
        "0x\x7fab",
        "0x\x85ab",  # NEL
        "0x\u00a0ab",  # no-break space
        "0x\u2028ab",  # line separator
        "0x\u3000ab",  # ideographic space
        "0x\u200bab",  # zero-width space
        "0x\u202eab",  # right-to-left override
        "0x\ufeffab",  # byte order mark
        "0x:ab",
        ":",
        "user:0xab",
        "0xab:order",
    ],
)
def test_bad_user_id(user_id: Any) -> None:
    item = order(user_addr=user_id)
    r = refused(ticker(), ticker(), private("order", item, user_id=user_id))
    assert (r.code, r.index, r.field, r.status) == ("INVALID_EVENT", 2, "user_id", 400)


@pytest.mark.parametrize("topic", ["order", "fill", "position"])
def test_user_id_required(topic: str) -> None:
    event = private(topic)
    del event["user_id"]
    r = refused(event)
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 0, "user_id")
    r = refused(private(topic, user_id=None))
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 0, "user_id")


@pytest.mark.parametrize("topic", ["order", "fill", "position"])
@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tenant": "t"}, "tenant"),
        ({"sub_user": "u"}, "sub_user"),
        ({"market_addr": MARKET}, "market_addr"),
        ({"userId": USER}, "userId"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": 5}, "idempotency_key"),
        ({"idempotency_key": "k" * 257}, "idempotency_key"),
        ({"data": None}, "data"),
        ({"data": []}, "data"),
        ({"data": {}}, "data"),
        ({"data": "x"}, "data"),
        ({"data": 1}, "data"),
        ({"data": [{}, 1]}, "data[0].sid"),
        ({"data": [1]}, "data[0]"),
        ({"data": [None]}, "data[0]"),
        ({"data": [[]]}, "data[0]"),
        ({"data": ["x"]}, "data[0]"),
    ],
)
def test_event_level_refusals(topic: str, extra: dict[str, Any], field: str) -> None:
    r = refused(private(topic), private(topic) | extra)
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 1, field)


@pytest.mark.parametrize("topic", ["order", "fill", "position"])
def test_data_required(topic: str) -> None:
    event = private(topic)
    del event["data"]
    r = refused(event)
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 0, "data")


@pytest.mark.parametrize("topic", ["order", "fill", "position"])
def test_bad_item_named_by_its_index(topic: str) -> None:
    make = ITEMS[topic]
    r = refused(private(topic, make(), make(), make(), "oops"))
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 0, "data[3]")


def test_market_topic_with_user_id_still_refused() -> None:
    r = refused({**ticker(), "user_id": USER})
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 0, "user_id")


# -- refusals: one field of one item ---------------------------------------------------

MISSING = object()

NOT_STR: list[Any] = [None, 1, True, [], {}, ""]
NOT_INT: list[Any] = [None, "1", 1.5, 1.0, True, False, [], {}, 1e30]
NOT_NUMBER: list[Any] = [None, "1", True, False, [], {}]
NOT_BOOL: list[Any] = [None, 0, 1, "true", [], {}]
NOT_SIDE: list[Any] = [None, "BUY", "Sell", "long", "", 1, True]


def _cases(
    required: list[str], bad: dict[str, list[Any]]
) -> list[tuple[str, Any]]:  # (field, value): value MISSING deletes the field
    return [(name, MISSING) for name in required] + [
        (name, value) for name, values in bad.items() for value in values
    ]


ORDER_REQUIRED = [
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
]
BAD_ORDER = _cases(
    ORDER_REQUIRED,
    {
        "sid": NOT_STR,
        "side": NOT_SIDE,
        "size": [*NOT_INT, -1],
        "price": [*NOT_INT, -1],
        "leverage": [*NOT_NUMBER, 0, 0.0, -1, -0.5],
        "type": NOT_STR,
        "status": [None, "open", "Filled", "canceled", "", 1, True, ["placed"]],
        "user_addr": NOT_STR,
        "market_addr": NOT_STR,
        "seq": [*NOT_INT, -1],
        "timestamp": [*NOT_INT, -1],
        "timestamp_ms": [*NOT_INT, -1],
        "stop_loss": [*NOT_INT[1:], -1],
        "take_profit": [*NOT_INT[1:], -5],
    },
)

FILL_REQUIRED = [k for k in FILL_KEYS if k not in ("timestamp", "timestamp_ms")]
BAD_FILL = _cases(
    FILL_REQUIRED,
    {
        "sid": NOT_STR,
        "side": NOT_SIDE,
        "size": [*NOT_INT, -1],
        "price": [*NOT_INT, -1],
        "maker_fee": NOT_NUMBER,
        "taker_fee": NOT_NUMBER,
        "taker_order_sid": NOT_STR,
        "taker_addr": NOT_STR,
        "maker_order_sid": NOT_STR,
        "maker_addr": NOT_STR,
        "market_addr": NOT_STR,
        "seq": [*NOT_INT, -1],
        "maker_leverage": NOT_NUMBER,
        "taker_leverage": NOT_NUMBER,
        "maker_is_cross": NOT_BOOL,
        "taker_is_cross": NOT_BOOL,
        "timestamp": [*NOT_INT, -1],
        "timestamp_ms": [*NOT_INT, -1],
    },
)

POSITION_REQUIRED = [
    k
    for k in POSITION_KEYS
    if k not in (*POSITION_OPTIONAL, *POSITION_LATE_OPTIONAL, "entry_price", "timestamp_ms")
    and k != "timestamp"
]
BAD_POSITION = _cases(
    POSITION_REQUIRED,
    {
        "sid": NOT_STR,
        "market_addr": NOT_STR,
        "user_addr": NOT_STR,
        "size": NOT_INT,
        "price": [*NOT_INT, -1],
        "margin": NOT_INT,
        "funding_index": NOT_NUMBER,
        "epoch": NOT_INT,
        "is_cross": NOT_BOOL,
        **{name: NOT_NUMBER[1:] for name in POSITION_OPTIONAL},
        "mark_price": [*NOT_INT, -1],
        "seq": [*NOT_INT, -1],
        "side": [*NOT_SIDE, "short", "long", "flat"],
        "unrealized_pnl": NOT_INT,
        "entry_price": [*NOT_INT[1:], 99],
        "realized_pnl_delta": NOT_INT[1:],
        "realized_pnl_cum": NOT_INT[1:],
        "stop_loss": [*NOT_INT[1:], -1],
        "take_profit": [*NOT_INT[1:], -1],
        "timestamp": [*NOT_INT, -1],
        "timestamp_ms": [*NOT_INT, -1],
    },
)


def _item_refused(topic: str, name: str, value: Any) -> ProducerRefusal:
    make = ITEMS[topic]
    bad = make()
    if value is MISSING:
        del bad[name]
    else:
        bad[name] = value
    return refused(private(topic), private(topic, make(), make(), bad, make()))


@pytest.mark.parametrize(("name", "value"), BAD_ORDER)
def test_order_field_refusals(name: str, value: Any) -> None:
    r = _item_refused("order", name, value)
    assert (r.code, r.index, r.field, r.status) == ("INVALID_EVENT", 1, f"data[2].{name}", 400)


@pytest.mark.parametrize(("name", "value"), BAD_FILL)
def test_fill_field_refusals(name: str, value: Any) -> None:
    r = _item_refused("fill", name, value)
    assert (r.code, r.index, r.field, r.status) == ("INVALID_EVENT", 1, f"data[2].{name}", 400)


@pytest.mark.parametrize(("name", "value"), BAD_POSITION)
def test_position_field_refusals(name: str, value: Any) -> None:
    r = _item_refused("position", name, value)
    assert (r.code, r.index, r.field, r.status) == ("INVALID_EVENT", 1, f"data[2].{name}", 400)


def test_every_field_has_refusal_cases() -> None:
    for keys, cases in (
        (ORDER_KEYS, BAD_ORDER),
        (FILL_KEYS, BAD_FILL),
        (POSITION_KEYS, BAD_POSITION),
    ):
        assert {name for name, _ in cases} == set(keys)


@pytest.mark.parametrize("topic", ["order", "fill", "position"])
@pytest.mark.parametrize(
    "name", ["extra", "Sid", "user_id", "type_", "status ", "maker_fee_rate", "offset", "epoch_"]
)
def test_unknown_item_field(topic: str, name: str) -> None:
    r = _item_refused(topic, name, 1)
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 1, f"data[2].{name}")


@pytest.mark.parametrize(
    ("topic", "name"),
    [
        ("order", "maker_addr"),
        ("order", "is_cross"),
        ("order", "unrealized_pnl"),
        ("fill", "status"),
        ("fill", "user_addr"),
        ("fill", "leverage"),
        ("position", "status"),
        ("position", "leverage_cap"),
        ("position", "maker_fee"),
    ],
)
def test_another_kinds_field_is_unknown(topic: str, name: str) -> None:
    r = _item_refused(topic, name, 1)
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 1, f"data[2].{name}")


def test_integer_past_64_bits_is_refused() -> None:
    # orjson reads an integer past 64 bits as a float: refused like any non-integer.
    raw = body(private("order")).replace(b'"size":5', b'"size":123456789012345678901234567890')
    with pytest.raises(ProducerRefusal) as info:
        parse_batch(raw, now_ms=NOW_MS)
    assert (info.value.code, info.value.field) == ("INVALID_EVENT", "data[0].size")


def test_first_bad_field_in_canonical_order_is_named() -> None:
    r = refused(private("order", order(size=-1, status="nope", seq=-1)))
    assert r.field == "data[0].size"
    r = refused(private("fill", fill(taker_is_cross=1, maker_fee="x")))
    assert r.field == "data[0].maker_fee"


# -- ownership -------------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["order", "position"])
@pytest.mark.parametrize(
    "addr", [OTHER, USER.upper(), "0X" + USER[2:], USER + "0", USER[:-1], USER + " "]
)
def test_user_addr_must_be_the_user(topic: str, addr: str) -> None:
    make = ITEMS[topic]
    r = refused(private(topic, make(), make(user_addr=addr)))
    assert (r.code, r.index, r.field, r.status) == ("INVALID_EVENT", 0, "data[1].user_addr", 400)
    assert USER in r.detail


@pytest.mark.parametrize("topic", ["order", "position"])
def test_other_users_event_refused(topic: str) -> None:
    # The mistake ownership guards against: one user's event sent under another's id.
    r = refused(private(topic, user_id=OTHER))
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 0, "data[0].user_addr")


@pytest.mark.parametrize(
    ("maker", "taker"),
    [(OTHER, OTHER), (OTHER, "0x" + "ef" * 32), (USER.upper(), OTHER), (OTHER, USER[:-1])],
)
def test_fill_must_involve_the_user(maker: str, taker: str) -> None:
    r = refused(private("fill", fill(), fill(maker_addr=maker, taker_addr=taker)))
    assert (r.code, r.index, r.field, r.status) == ("INVALID_EVENT", 0, "data[1].maker_addr", 400)
    assert "taker_addr" in r.detail


def test_whole_batch_refused_by_one_foreign_item() -> None:
    r = refused(
        private("order", user_id=USER),
        private("order", order(), order(user_addr=OTHER), user_id=USER),
        private("order", order(user_addr=OTHER), user_id=OTHER),
    )
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 1, "data[1].user_addr")
