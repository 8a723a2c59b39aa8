"""Order books: snapshots, deltas, and the book a late client reconstructs."""

from __future__ import annotations

import itertools
import zlib
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgate.brokers.books import Books, OrderBook
from streamgate.core.books import (
    CHECKSUM_DEPTH,
    DELTA,
    SNAPSHOT,
    book_checksum,
    checksum_text,
)
from streamgate.core.publication import Publication
from streamgate.protocol.producer import check_book_sequences, parse_batch

CH = "orderbook/M"
T0 = 1_700_000_000_000


def data(
    kind: str, seq: int, asks: list[list[int]], bids: list[list[int]], ts_ms: int | None = T0
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": kind,
        "market_addr": "M",
        "seq": seq,
        "asks": asks,
        "bids": bids,
    }
    if ts_ms is not None:
        out["timestamp"] = ts_ms // 1000
        out["timestamp_ms"] = ts_ms
    return out


def pub(offset: int, payload: dict[str, Any], ts_ms: int = T0, channel: str = CH) -> Publication:
    return Publication(channel, offset, "ep", payload, ts_ms)


def test_constants() -> None:
    assert (SNAPSHOT, DELTA) == ("orderbook_snapshot", "orderbook_delta")


def test_snapshot_then_deltas() -> None:
    book = OrderBook(CH, "M")
    book.apply(pub(1, data(SNAPSHOT, 10, [[103, 1], [101, 2]], [[99, 5], [97, 1]], T0 + 1)))
    book.apply(pub(2, data(DELTA, 11, [[102, 4], [103, 0]], [[97, 3]], T0 + 2_345)))
    book.apply(pub(3, data(DELTA, 12, [[500, 0]], [[98, 1], [99, 0]], T0 + 3_999)))
    assert book.snapshot() == {
        "type": SNAPSHOT,
        "market_addr": "M",
        "seq": 12,
        "asks": [[101, 2], [102, 4]],
        "bids": [[97, 3], [98, 1]],
        "timestamp": (T0 + 3_999) // 1000,
        "timestamp_ms": T0 + 3_999,
        "matched_at": T0 + 3_999,
        "checksum": zlib.crc32(b"98:1:101:2:97:3:102:4"),  # best bid, best ask, ...
    }
    assert (book.offset, book.epoch, book.seq) == (3, "ep", 12)


def test_snapshot_replaces_the_book() -> None:
    book = OrderBook(CH, "M")
    book.apply(pub(1, data(SNAPSHOT, 1, [[5, 1], [6, 1]], [[4, 1]])))
    book.apply(pub(2, data(SNAPSHOT, 7, [[8, 2]], [])))
    snap = book.snapshot()
    assert (snap["seq"], snap["asks"], snap["bids"]) == (7, [[8, 2]], [])


def test_ts_falls_back_to_publication_time() -> None:
    book = OrderBook(CH, "M")
    book.apply(pub(1, data(SNAPSHOT, 1, [], [], ts_ms=None), ts_ms=T0 + 42_001))
    assert book.snapshot()["timestamp_ms"] == T0 + 42_001
    assert book.snapshot()["timestamp"] == (T0 + 42_001) // 1000


def test_snapshot_publication() -> None:
    book = OrderBook(CH, "M")
    book.apply(pub(4, data(SNAPSHOT, 9, [[2, 1]], [[1, 1]])))
    snap = book.snapshot_publication(T0 + 99)
    assert snap == Publication(CH, 4, "ep", book.snapshot(), T0 + 99)
    assert snap.position.offset == 4 and snap.position.epoch == "ep"


def test_empty_book() -> None:
    book = OrderBook(CH, "M")
    assert book.snapshot() == {
        "type": SNAPSHOT,
        "market_addr": "M",
        "seq": 0,
        "asks": [],
        "bids": [],
        "timestamp": 0,
        "timestamp_ms": 0,
        "matched_at": 0,
        "checksum": 0,  # crc32 of the empty string
    }
    assert book.offset == 0


def test_books() -> None:
    books = Books()
    assert books.seq(CH) is None and books.get(CH) is None and len(books) == 0
    books.apply(pub(1, data(DELTA, 1, [[1, 1]], [])), "M")  # stray delta: no book
    assert books.seq(CH) is None and len(books) == 0
    books.apply(pub(2, data(SNAPSHOT, 5, [[1, 1]], [])), "M")
    books.apply(pub(3, data(DELTA, 6, [[2, 1]], [])), "M")
    assert books.seq(CH) == 6
    book = books.get(CH)
    assert book is not None
    assert book.snapshot()["asks"] == [[1, 1], [2, 1]]
    books.apply(pub(1, data(SNAPSHOT, 1, [], [[3, 3]]), channel="orderbook/N"), "N")
    assert len(books) == 2
    assert books.seq("orderbook/N") == 1
    other = books.get("orderbook/N")
    assert other is not None and other.market == "N"
    assert book.snapshot()["bids"] == []


# -- property: a late client's reconstruction equals the book -------------------------

_prices = st.integers(min_value=1, max_value=40)
_snapshot_side = st.dictionaries(_prices, st.integers(min_value=1, max_value=9), max_size=12)
_delta_side = st.dictionaries(_prices, st.integers(min_value=0, max_value=9), max_size=8)
_step = st.one_of(
    st.tuples(st.just(DELTA), _delta_side, _delta_side),
    st.tuples(st.just(DELTA), _delta_side, _delta_side),
    st.tuples(st.just(DELTA), _delta_side, _delta_side),
    st.tuples(st.just(SNAPSHOT), _snapshot_side, _snapshot_side),
)


def _ascending(levels: list[list[int]]) -> bool:
    prices = [p for p, _ in levels]
    return all(a < b for a, b in itertools.pairwise(prices))


def _apply_model(model: dict[str, dict[int, int]], ev: dict[str, Any]) -> None:
    """The client's side of the protocol, written from PROTOCOL.md section 2."""
    if ev["type"] == SNAPSHOT:
        model["asks"] = {p: s for p, s in ev["asks"]}
        model["bids"] = {p: s for p, s in ev["bids"]}
        return
    for side in ("asks", "bids"):
        for price, size in ev[side]:
            if size == 0:
                model[side].pop(price, None)
            else:
                model[side][price] = size


@settings(max_examples=150, deadline=None)
@given(
    first=st.tuples(_snapshot_side, _snapshot_side),
    steps=st.lists(_step, max_size=25),
    data_=st.data(),
)
def test_late_client_reconstructs_the_book(
    first: tuple[dict[int, int], dict[int, int]],
    steps: list[tuple[str, dict[int, int], dict[int, int]]],
    data_: st.DataObject,
) -> None:
    # The producer's events, in the producer's (unsorted) order, through parse_batch.
    raw = [(SNAPSHOT, *first), *steps]
    seq = 100
    events = []
    for kind, asks, bids in raw:
        seq += 1
        events.append(
            {
                "topic": CH,
                "data": {
                    "type": kind,
                    "seq": seq,
                    "asks": [[p, s] for p, s in asks.items()],
                    "bids": [[p, s] for p, s in bids.items()],
                },
            }
        )
    parsed = parse_batch(orjson.dumps({"events": events}), now_ms=T0)
    books = Books()
    check_book_sequences(parsed, books.seq)

    join = data_.draw(st.integers(min_value=0, max_value=len(parsed) - 1), label="join")
    client: dict[str, dict[int, int]] | None = None
    for offset, ev in enumerate(parsed, start=1):
        books.apply(Publication(CH, offset, "ep", ev.data, T0 + offset), "M")
        if client is not None:
            _apply_model(client, ev.data)
        if offset - 1 == join:
            book = books.get(CH)
            assert book is not None
            snap = book.snapshot()
            assert snap["seq"] == ev.data["seq"]
            assert _ascending(snap["asks"]) and _ascending(snap["bids"])
            client = {"asks": {}, "bids": {}}
            _apply_model(client, snap)

    assert client is not None
    book = books.get(CH)
    assert book is not None
    final = book.snapshot()
    assert final["seq"] == seq
    assert final["asks"] == [[p, client["asks"][p]] for p in sorted(client["asks"])]
    assert final["bids"] == [[p, client["bids"][p]] for p in sorted(client["bids"])]
    assert _ascending(final["asks"]) and _ascending(final["bids"])
    assert all(size > 0 for _, size in final["asks"] + final["bids"])


def test_a_snapshot_carries_the_matched_at_of_the_last_event_it_includes() -> None:
    book = OrderBook(CH, "M")
    snap = data(SNAPSHOT, 10, [[103, 1]], [[99, 5]], T0 + 1)
    book.apply(pub(1, {**snap, "matched_at": T0 - 5}))
    assert book.snapshot()["matched_at"] == T0 - 5
    book.apply(pub(2, data(DELTA, 11, [[102, 4]], [], T0 + 2)))  # none given: its own time
    assert book.snapshot()["matched_at"] == T0 + 2


def test_checksum_text_interleaves_best_levels_and_continues_the_longer_side() -> None:
    assert checksum_text([(9, 1), (8, 2)], [(10, 3)]) == "9:1:10:3:8:2"
    assert checksum_text([], [(10, 3), (11, 1)]) == "10:3:11:1"
    assert checksum_text([], []) == ""


def test_checksum_counts_only_the_top_levels_per_side() -> None:
    bids = {p: 1 for p in range(1, 101)}
    asks = {p: 2 for p in range(200, 300)}
    top = zlib.crc32(":".join(f"{100 - i}:1:{200 + i}:2" for i in range(CHECKSUM_DEPTH)).encode())
    assert book_checksum(bids, asks) == top
    bids[1] = 5  # below the top 25: no change
    assert book_checksum(bids, asks) == top
    bids[100] = 5
    assert book_checksum(bids, asks) != top
