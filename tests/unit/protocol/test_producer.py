"""Producer API wire format: parse_batch and check_book_sequences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from streamgate.core import exact_json
from streamgate.errors import ProducerRefusal
from streamgate.protocol.producer import (
    MAX_EVENTS,
    ProducerEvent,
    check_book_sequences,
    parse_batch,
)

NOW_MS = 1_700_000_000_123


def body(*events: Any) -> bytes:
    return orjson.dumps({"events": list(events)})


def parse(*events: Any) -> list[ProducerEvent]:
    return parse_batch(body(*events), now_ms=NOW_MS)


def refused(raw: bytes, **kwargs: Any) -> ProducerRefusal:
    with pytest.raises(ProducerRefusal) as info:
        parse_batch(raw, now_ms=NOW_MS, **kwargs)
    return info.value


def book(
    kind: str = "orderbook_snapshot",
    seq: int = 1,
    asks: Any = None,
    bids: Any = None,
    market: str = "M",
    **extra: Any,
) -> dict[str, Any]:
    data = {
        "type": kind,
        "seq": seq,
        "asks": [[101, 1]] if asks is None else asks,
        "bids": [[99, 2]] if bids is None else bids,
        **extra,
    }
    return {"topic": f"orderbook/{market}", "data": data}


def trades(**extra: Any) -> dict[str, Any]:
    data = {
        "seq": 4,
        "trades": [{"id": "t1", "side": "buy", "price": 100, "size": 3, "seq": 4}],
        **extra,
    }
    return {"topic": "trade/M", "data": data}


TICKER_NUMBERS = {
    "last_price": 100,
    "mark_price": 100.5,
    "index_price": 99,
    "open_interest": 10,
    "open_interest_value": 1000,
    "funding_rate": 0.0001,
    "funding_rate_percentage": 0.01,
    "next_funding_time": 1_700_003_600_000,
    "volume_24h": 5,
    "turnover_24h": 500,
}


def ticker(**extra: Any) -> dict[str, Any]:
    return {"topic": "ticker/M", "data": {"symbol": "M-PERP", **TICKER_NUMBERS, **extra}}


# -- accepted batches ------------------------------------------------------------------


def test_snapshot_filled_and_sorted() -> None:
    [ev] = parse(book(asks=[[105, 1], [101, 7], [103, 2]], bids=[[99, 1], [97, 3], [98, 2]]))
    assert ev == ProducerEvent(
        0,
        "orderbook/M",
        {
            "type": "orderbook_snapshot",
            "market_addr": "M",
            "seq": 1,
            "asks": [[101, 7], [103, 2], [105, 1]],
            "bids": [[97, 3], [98, 2], [99, 1]],
            "timestamp": NOW_MS // 1000,
            "timestamp_ms": NOW_MS,
            "matched_at": NOW_MS,  # filled from timestamp_ms (PROTOCOL.md section 2)
        },
        None,
    )


def test_a_given_matched_at_is_kept_and_checked() -> None:
    [ev] = parse(book(matched_at=1_600_000_000_123))
    assert ev.data["matched_at"] == 1_600_000_000_123
    for bad in (-1, "1", 1.5, None):
        assert refused(body(book(matched_at=bad))).field == "data.matched_at"


def test_delta_allows_size_zero_and_empty_sides() -> None:
    [ev] = parse(book("orderbook_delta", seq=2, asks=[[101, 0]], bids=[]))
    assert ev.data["type"] == "orderbook_delta"
    assert ev.data["asks"] == [[101, 0]]
    assert ev.data["bids"] == []


def test_empty_snapshot_is_accepted() -> None:
    [ev] = parse(book(asks=[], bids=[]))
    assert (ev.data["asks"], ev.data["bids"]) == ([], [])


def test_given_stamps_and_market_addr_are_kept() -> None:
    [ev] = parse(book(market_addr="M", timestamp=1_600_000_000, timestamp_ms=1_600_000_000_999))
    assert ev.data["market_addr"] == "M"
    assert (ev.data["timestamp"], ev.data["timestamp_ms"]) == (1_600_000_000, 1_600_000_000_999)


def test_timestamp_derived_from_given_timestamp_ms() -> None:
    [ev] = parse(book(timestamp_ms=1_600_000_000_999))
    assert (ev.data["timestamp"], ev.data["timestamp_ms"]) == (1_600_000_000, 1_600_000_000_999)


def test_timestamp_ms_agrees_with_a_given_timestamp() -> None:
    [ev] = parse(book(timestamp=1_600_000_000))
    assert ev.data["timestamp"] == 1_600_000_000
    assert ev.data["timestamp_ms"] // 1000 == ev.data["timestamp"]


def test_trades_filled() -> None:
    [ev] = parse(trades())
    assert ev == ProducerEvent(
        0,
        "trade/M",
        {
            "type": "trades",
            "market_addr": "M",
            "seq": 4,
            "trades": [
                {
                    "id": "t1",
                    "side": "buy",
                    "price": 100,
                    "size": 3,
                    "seq": 4,
                    "timestamp": NOW_MS // 1000,
                }
            ],
        },
        None,
    )


def test_trades_keep_given_stamps() -> None:
    raw = trades(type="trades", market_addr="M", timestamp_ms=1_600_000_000_500)
    raw["data"]["trades"][0]["timestamp"] = 1_600_000_000
    [ev] = parse(raw)
    assert ev.data["trades"][0]["timestamp"] == 1_600_000_000
    assert (ev.data["timestamp"], ev.data["timestamp_ms"]) == (1_600_000_000, 1_600_000_000_500)


def test_ticker_filled() -> None:
    [ev] = parse(ticker())
    assert ev == ProducerEvent(
        0,
        "ticker/M",
        {"type": "ticker", "symbol": "M-PERP", "market_addr": "M", "ts": NOW_MS, **TICKER_NUMBERS},
        None,
    )
    [ev] = parse(ticker(ts=5, type="ticker", market_addr="M"))
    assert ev.data["ts"] == 5


def test_idempotency_key_and_indexes() -> None:
    evs = parse(
        {**trades(), "idempotency_key": "k" * 256},
        {**book(), "idempotency_key": "b"},
        ticker(),
    )
    assert [(e.index, e.channel, e.idempotency_key) for e in evs] == [
        (0, "trade/M", "k" * 256),
        (1, "orderbook/M", "b"),
        (2, "ticker/M", None),
    ]


def test_batch_size_limits() -> None:
    assert len(parse(*[ticker()] * MAX_EVENTS)) == MAX_EVENTS == 1000
    r = refused(body(*[ticker()] * (MAX_EVENTS + 1)))
    assert (r.code, r.index, r.field, r.status) == ("INVALID_BATCH", None, "events", 400)
    assert len(parse_batch(body(ticker(), ticker()), now_ms=NOW_MS, max_events=2)) == 2
    r = refused(body(ticker(), ticker(), ticker()), max_events=2)
    assert (r.code, r.field) == ("INVALID_BATCH", "events")


# -- refusals of the batch -------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"{", b"events", b'{"events": [}'])
def test_invalid_json(raw: bytes) -> None:
    r = refused(raw)
    assert (r.code, r.index, r.field, r.status) == ("INVALID_JSON", None, None, 400)


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ([], "events"),
        ("x", "events"),
        ({}, "events"),
        ({"events": None}, "events"),
        ({"events": {}}, "events"),
        ({"events": []}, "events"),
        ({"events": "abc"}, "events"),
        ({"events": [{"topic": "ticker/M"}], "extra": 1}, "extra"),
    ],
)
def test_invalid_batch(doc: Any, field: str) -> None:
    r = refused(orjson.dumps(doc))
    assert (r.code, r.index, r.field, r.status) == ("INVALID_BATCH", None, field, 400)


# -- refusals of one event -------------------------------------------------------------


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(event: dict[str, Any]) -> None:
        target: Any = event
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _del(*path: Any) -> Callable[[dict[str, Any]], None]:
    def apply(event: dict[str, Any]) -> None:
        target: Any = event
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return apply


BAD_BOOK = [
    (_set(["idempotency_key"], 1), "idempotency_key"),
    (_set(["idempotency_key"], ""), "idempotency_key"),
    (_set(["idempotency_key"], "k" * 257), "idempotency_key"),
    (_set(["extra"], 1), "extra"),
    (_set(["user_id"], "0xabc"), "user_id"),
    (_del("data"), "data"),
    (_set(["data"], [1]), "data"),
    (_set(["data"], "x"), "data"),
    (_set(["data", "extra"], 1), "data.extra"),
    (_set(["data", "Seq"], 1), "data.Seq"),
    (_del("data", "type"), "data.type"),
    (_set(["data", "type"], "trades"), "data.type"),
    (_set(["data", "type"], "orderbook_delta_x"), "data.type"),
    (_set(["data", "market_addr"], "N"), "data.market_addr"),
    (_set(["data", "market_addr"], 1), "data.market_addr"),
    (_del("data", "seq"), "data.seq"),
    (_set(["data", "seq"], -1), "data.seq"),
    (_set(["data", "seq"], 1.0), "data.seq"),
    (_set(["data", "seq"], "1"), "data.seq"),
    (_set(["data", "seq"], True), "data.seq"),
    (_del("data", "asks"), "data.asks"),
    (_set(["data", "asks"], None), "data.asks"),
    (_set(["data", "asks"], {"101": 1}), "data.asks"),
    (_del("data", "bids"), "data.bids"),
    (_set(["data", "asks"], [[101, 1], 5]), "data.asks[1]"),
    (_set(["data", "asks"], [[101, 1], [102]]), "data.asks[1]"),
    (_set(["data", "asks"], [[101, 1], [102, 1, 1]]), "data.asks[1]"),
    (_set(["data", "asks"], [[101, 1], {"p": 1}]), "data.asks[1]"),
    (_set(["data", "asks"], [[101, 1], [0, 1]]), "data.asks[1][0]"),
    (_set(["data", "asks"], [[101, 1], [-5, 1]]), "data.asks[1][0]"),
    (_set(["data", "asks"], [[101, 1], [102.5, 1]]), "data.asks[1][0]"),
    (_set(["data", "asks"], [[101, 1], ["102", 1]]), "data.asks[1][0]"),
    (_set(["data", "asks"], [[101, 1], [True, 1]]), "data.asks[1][0]"),
    (_set(["data", "asks"], [[101, 1], [101, 2]]), "data.asks[1][0]"),  # twice
    (_set(["data", "asks"], [[101, 1], [102, -1]]), "data.asks[1][1]"),
    (_set(["data", "asks"], [[101, 1], [102, 1.5]]), "data.asks[1][1]"),
    (_set(["data", "asks"], [[101, 1], [102, False]]), "data.asks[1][1]"),
    (_set(["data", "asks"], [[101, 1], [102, 0]]), "data.asks[1][1]"),  # 0 in a snapshot
    (_set(["data", "bids"], [[99, 1], [98, 1], [97, None]]), "data.bids[2][1]"),
    (_set(["data", "bids"], [[99, 1], [99, 1]]), "data.bids[1][0]"),
    (_set(["data", "timestamp"], -1), "data.timestamp"),
    (_set(["data", "timestamp"], "1"), "data.timestamp"),
    (_set(["data", "timestamp_ms"], 1.5), "data.timestamp_ms"),
    (_set(["data", "timestamp_ms"], None), "data.timestamp_ms"),
]


@pytest.mark.parametrize(("mutate", "field"), BAD_BOOK)
def test_orderbook_event_refusals(mutate: Callable[[dict[str, Any]], None], field: str) -> None:
    bad = book()
    mutate(bad)
    r = refused(body(ticker(), trades(), bad, book(seq=9)))
    assert (r.code, r.index, r.field, r.status) == ("INVALID_EVENT", 2, field, 400)


def test_delta_size_zero_is_refused_only_in_snapshots() -> None:
    assert parse(book("orderbook_delta", asks=[[1, 0]], bids=[[2, 0]]))
    r = refused(body(book("orderbook_snapshot", asks=[[1, 2]], bids=[[3, 1], [2, 0]])))
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 0, "data.bids[1][1]")


def test_duplicate_price_in_delta_refused() -> None:
    r = refused(body(book("orderbook_delta", asks=[[5, 0], [6, 1], [5, 1]])))
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 0, "data.asks[2][0]")


def test_same_price_on_both_sides_is_not_a_duplicate() -> None:
    [ev] = parse(book("orderbook_delta", asks=[[100, 1]], bids=[[100, 0]]))
    assert ev.data["asks"] == [[100, 1]] and ev.data["bids"] == [[100, 0]]


BAD_TRADES = [
    (_set(["data", "type"], "trade"), "data.type"),
    (_set(["data", "market_addr"], "N"), "data.market_addr"),
    (_set(["data", "extra"], 1), "data.extra"),
    (_del("data", "seq"), "data.seq"),
    (_del("data", "trades"), "data.trades"),
    (_set(["data", "trades"], []), "data.trades"),
    (_set(["data", "trades"], {"id": "t"}), "data.trades"),
    (_set(["data", "trades", 0], "t1"), "data.trades[0]"),
    (_set(["data", "trades", 0, "extra"], 1), "data.trades[0].extra"),
    (_del("data", "trades", 0, "side"), "data.trades[0].side"),
    (_set(["data", "trades", 0, "side"], "BUY"), "data.trades[0].side"),
    (_del("data", "trades", 0, "id"), "data.trades[0].id"),
    (_set(["data", "trades", 0, "id"], ""), "data.trades[0].id"),
    (_set(["data", "trades", 0, "id"], -7), "data.trades[0].id"),
    (_set(["data", "trades", 0, "id"], True), "data.trades[0].id"),
    (_set(["data", "trades", 0, "id"], 7.5), "data.trades[0].id"),
    (_set(["data", "trades", 0, "price"], 0), "data.trades[0].price"),
    (_del("data", "trades", 0, "price"), "data.trades[0].price"),
    (_set(["data", "trades", 0, "size"], 0), "data.trades[0].size"),
    (_set(["data", "trades", 0, "size"], 1.5), "data.trades[0].size"),
    (_del("data", "trades", 0, "seq"), "data.trades[0].seq"),
    (_set(["data", "trades", 0, "seq"], -1), "data.trades[0].seq"),
    (_set(["data", "trades", 0, "timestamp"], -1), "data.trades[0].timestamp"),
    (_set(["data", "timestamp_ms"], "x"), "data.timestamp_ms"),
]


@pytest.mark.parametrize(("mutate", "field"), BAD_TRADES)
def test_trades_event_refusals(mutate: Callable[[dict[str, Any]], None], field: str) -> None:
    bad = trades()
    mutate(bad)
    r = refused(body(trades(), bad))
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 1, field)


def test_second_trade_named_by_its_index() -> None:
    raw = trades()
    raw["data"]["trades"].append({"id": "t2", "side": "sell", "price": 1, "size": 1})
    r = refused(body(raw))
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 0, "data.trades[1].seq")


BAD_TICKER = [
    (_set(["data", "type"], "tickers"), "data.type"),
    (_set(["data", "market_addr"], "N"), "data.market_addr"),
    (_set(["data", "extra"], 1), "data.extra"),
    (_del("data", "symbol"), "data.symbol"),
    (_set(["data", "symbol"], ""), "data.symbol"),
    (_set(["data", "symbol"], 1), "data.symbol"),
    (_set(["data", "ts"], -1), "data.ts"),
    (_set(["data", "ts"], 1.5), "data.ts"),
    (_del("data", "last_price"), "data.last_price"),
    (_set(["data", "mark_price"], "100"), "data.mark_price"),
    (_set(["data", "funding_rate"], True), "data.funding_rate"),
    (_del("data", "turnover_24h"), "data.turnover_24h"),
]


@pytest.mark.parametrize(("mutate", "field"), BAD_TICKER)
def test_ticker_event_refusals(mutate: Callable[[dict[str, Any]], None], field: str) -> None:
    bad = ticker()
    mutate(bad)
    r = refused(body(bad, bad))
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 0, field)


@pytest.mark.parametrize(
    "event",
    [
        {"data": {}},
        {"topic": None, "data": {}},
        {"topic": 5, "data": {}},
        {"topic": "orderbook/x\n", "data": {}},
        {"topic": "orderbook/a/b", "data": {}},
        {"topic": "orderbook/", "data": {}},
        {"topic": "candles/M", "data": {}},
    ],
)
def test_unknown_topic(event: dict[str, Any]) -> None:
    r = refused(body(ticker(), event))
    assert (r.code, r.index, r.field, r.status) == ("UNKNOWN_TOPIC", 1, "topic", 400)


@pytest.mark.parametrize("event", [1, "ticker/M", None, [], [ticker()]])
def test_event_not_an_object(event: Any) -> None:
    r = refused(body(ticker(), event))
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 1, "")


def test_first_bad_event_is_named() -> None:
    r = refused(body(ticker(), {"topic": "bad"}, {"topic": "ticker/M", "data": 1}))
    assert (r.code, r.index) == ("UNKNOWN_TOPIC", 1)


# -- book sequences --------------------------------------------------------------------


def seq_of(books: dict[str, int]) -> Callable[[str], int | None]:
    return books.get


def events(*raw: dict[str, Any]) -> list[ProducerEvent]:
    return parse(*raw)


def seq_refusal(evs: list[ProducerEvent], books: dict[str, int]) -> ProducerRefusal:
    with pytest.raises(ProducerRefusal) as info:
        check_book_sequences(evs, seq_of(books))
    return info.value


def test_delta_without_book() -> None:
    r = seq_refusal(events(ticker(), book("orderbook_delta", seq=1)), {})
    assert (r.code, r.index, r.field, r.status) == ("NO_BOOK", 1, "data.type", 409)


def test_delta_follows_book() -> None:
    check_book_sequences(events(book("orderbook_delta", seq=6)), seq_of({"orderbook/M": 5}))


@pytest.mark.parametrize("seq", [0, 4, 5, 7, 100])
def test_seq_gap(seq: int) -> None:
    r = seq_refusal(events(book("orderbook_delta", seq=seq)), {"orderbook/M": 5})
    assert (r.code, r.index, r.field, r.status) == ("SEQ_GAP", 0, "data.seq", 409)
    assert "6" in r.detail


def test_snapshot_then_deltas_chain_within_a_batch() -> None:
    evs = events(
        book("orderbook_snapshot", seq=10),
        book("orderbook_delta", seq=11),
        book("orderbook_delta", seq=12),
    )
    check_book_sequences(evs, seq_of({}))
    check_book_sequences(evs, seq_of({"orderbook/M": 3}))  # a snapshot resets the seq


def test_deltas_chain_on_the_kept_book() -> None:
    check_book_sequences(
        events(book("orderbook_delta", seq=6), book("orderbook_delta", seq=7)),
        seq_of({"orderbook/M": 5}),
    )
    r = seq_refusal(
        events(book("orderbook_delta", seq=6), book("orderbook_delta", seq=6)),
        {"orderbook/M": 5},
    )
    assert (r.code, r.index) == ("SEQ_GAP", 1)


def test_gap_after_snapshot_in_batch() -> None:
    r = seq_refusal(
        events(book("orderbook_snapshot", seq=10), book("orderbook_delta", seq=12)),
        {},
    )
    assert (r.code, r.index, r.status) == ("SEQ_GAP", 1, 409)


def test_books_chain_independently() -> None:
    evs = events(
        book("orderbook_delta", seq=6, market="A"),
        book("orderbook_snapshot", seq=1, market="B"),
        book("orderbook_delta", seq=7, market="A"),
        book("orderbook_delta", seq=2, market="B"),
    )
    check_book_sequences(evs, seq_of({"orderbook/A": 5}))
    # B's snapshot in the batch (seq 1) wins over the kept book's seq 40.
    check_book_sequences(evs, seq_of({"orderbook/A": 5, "orderbook/B": 40}))
    r = seq_refusal(evs, {"orderbook/A": 4, "orderbook/B": 40})
    assert (r.code, r.index) == ("SEQ_GAP", 0)
    r = seq_refusal(evs, {"orderbook/B": 40})
    assert (r.code, r.index) == ("NO_BOOK", 0)


def test_non_book_events_are_not_sequenced() -> None:
    check_book_sequences(events(trades(), trades(), ticker()), seq_of({}))


@pytest.mark.parametrize(
    ("literal", "ok"),
    [(b"0", True), (b"18446744073709551615", True), (b"18446744073709551616", False)],
)
def test_a_u64_trade_id_is_passed_on_as_sent(literal: bytes, ok: bool) -> None:
    raw = (
        b'{"events":[{"topic":"trade/M","data":{"seq":1,"trades":[{"id":'
        + literal
        + b',"side":"buy","price":1,"size":1,"seq":1}]}}]}'
    )
    if not ok:
        with pytest.raises(ProducerRefusal) as refused:
            parse_batch(raw, now_ms=1)
        assert refused.value.field == "data.trades[0].id"
        return
    [ev] = parse_batch(raw, now_ms=1)
    assert exact_json.dumps(ev.data).startswith(
        b'{"type":"trades","market_addr":"M","seq":1,"trades":[{"id":' + literal + b","
    )
