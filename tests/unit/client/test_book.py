"""LocalOrderBook driven with events: snapshot, deltas, seq continuity, the checksum."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from streamgate.client import BookGap, ChecksumMismatch, Event, LocalOrderBook

M = "0xm"


def ev(kind: str, seq: int, asks: Any, bids: Any, offset: int, **extra: Any) -> Event:
    data = {"type": f"orderbook_{kind}", "seq": seq, "asks": asks, "bids": bids, **extra}
    return Event(f"orderbook/{M}", data, offset, "e", seq, 0.0, b"")


def test_snapshot_then_deltas_with_checksums() -> None:
    book = LocalOrderBook(M)
    assert (book.best_bid, book.best_ask, book.spread, book.synced) == (None, None, None, False)
    snap_sum = zlib.crc32(b"99:1:101:2:98:3")
    book.apply(ev("snapshot", 10, [[101, 2]], [[98, 3], [99, 1]], 5, checksum=snap_sum))
    assert (book.seq, book.offset, book.checked) == (10, 5, 1)
    delta_sum = zlib.crc32(b"99:1:100:4:98:3:101:2")
    book.apply(ev("delta", 11, [[100, 4]], [], 6, checksum=delta_sum))
    assert (book.best_bid, book.best_ask, book.spread) == ((99, 1), (100, 4), 1)
    book.apply(ev("delta", 12, [[100, 0]], [[99, 0]], 7))  # no checksum: not verified
    assert book.bids() == [(98, 3)] and book.asks() == [(101, 2)]
    assert book.checked == 2 and book.checksum() == zlib.crc32(b"98:3:101:2")


def test_depth_orders_best_first() -> None:
    book = LocalOrderBook(M)
    book.apply(ev("snapshot", 1, [[5, 1], [3, 1], [4, 1]], [[1, 1], [2, 1]], 1))
    assert book.asks(2) == [(3, 1), (4, 1)] and book.bids(5) == [(2, 1), (1, 1)]


def test_gaps_raise_until_the_next_snapshot() -> None:
    book = LocalOrderBook(M)
    with pytest.raises(BookGap) as before:
        book.apply(ev("delta", 1, [], [], 1))
    assert (before.value.expected, before.value.got) == (None, 1)
    book.apply(ev("snapshot", 3, [], [], 2))
    with pytest.raises(BookGap) as gap:
        book.apply(ev("delta", 5, [], [], 3))
    assert (gap.value.expected, gap.value.got) == (4, 5) and not book.synced
    with pytest.raises(BookGap):
        book.apply(ev("delta", 4, [], [], 4))  # out of sync: only a snapshot helps
    book.apply(ev("snapshot", 9, [[7, 1]], [], 5))
    assert book.synced and book.seq == 9


def test_a_wrong_checksum_raises_and_unsyncs() -> None:
    book = LocalOrderBook(M)
    with pytest.raises(ChecksumMismatch) as bad:
        book.apply(ev("snapshot", 1, [[7, 1]], [], 1, checksum=12345))
    assert (bad.value.expected, bad.value.computed) == (12345, zlib.crc32(b"7:1"))
    assert not book.synced
