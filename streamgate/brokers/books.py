"""Order books kept from the producer's snapshots and deltas: broker state.

So that every node serves the same book at a precise offset, the books are kept where
publications are numbered: the memory broker keeps :class:`Books`, the Redis broker a
hash per book (updated by the same script that numbers the publication) that
:class:`OrderBook` turns back into a snapshot. The wire names and the chain rule are
:mod:`streamgate.core.books`.
"""

from __future__ import annotations

from typing import Any

from streamgate.core.books import SNAPSHOT, book_checksum
from streamgate.core.publication import Publication

__all__ = ["Books", "OrderBook"]

Levels = list[list[int]]


class OrderBook:
    """One market's book at ``seq``, built from the publications up to ``offset``."""

    __slots__ = (
        "asks",
        "bids",
        "channel",
        "epoch",
        "market",
        "matched_at",
        "offset",
        "seq",
        "ts_ms",
    )

    def __init__(self, channel: str, market: str) -> None:
        self.channel = channel
        self.market = market
        self.asks: dict[int, int] = {}
        self.bids: dict[int, int] = {}
        self.seq = 0
        self.offset = 0
        self.epoch = ""
        self.ts_ms = 0
        self.matched_at = 0

    def apply(self, pub: Publication) -> None:
        """Apply one validated snapshot or delta publication."""
        data = pub.data
        if data["type"] == SNAPSHOT:
            self.asks = {p: s for p, s in data["asks"]}
            self.bids = {p: s for p, s in data["bids"]}
        else:
            _apply_levels(self.asks, data["asks"])
            _apply_levels(self.bids, data["bids"])
        self.seq = data["seq"]
        self.offset = pub.offset
        self.epoch = pub.epoch
        self.ts_ms = data.get("timestamp_ms", pub.ts_ms)
        self.matched_at = data.get("matched_at", self.ts_ms)

    def checksum(self) -> int:
        """The book checksum of its top levels (``core.books.book_checksum``)."""
        return book_checksum(self.bids, self.asks)

    def snapshot(self) -> dict[str, Any]:
        """Return the whole book as snapshot data, both sides ascending by price."""
        return {
            "type": SNAPSHOT,
            "market_addr": self.market,
            "seq": self.seq,
            "asks": [[p, self.asks[p]] for p in sorted(self.asks)],
            "bids": [[p, self.bids[p]] for p in sorted(self.bids)],
            "timestamp": self.ts_ms // 1000,
            "timestamp_ms": self.ts_ms,
            "matched_at": self.matched_at,  # of the last event the book includes
            "checksum": self.checksum(),
        }

    def snapshot_publication(self, now_ms: int) -> Publication:
        """Return the book as a publication at the offset of the last event it includes."""
        return Publication(self.channel, self.offset, self.epoch, self.snapshot(), now_ms)


def _apply_levels(side: dict[int, int], levels: Levels) -> None:
    for price, size in levels:
        if size == 0:
            side.pop(price, None)
        else:
            side[price] = size


class Books:
    """Every order book the gateway keeps, by channel."""

    __slots__ = ("_books",)

    def __init__(self) -> None:
        self._books: dict[str, OrderBook] = {}

    def get(self, channel: str) -> OrderBook | None:
        return self._books.get(channel)

    def seq(self, channel: str) -> int | None:
        """Return the book's current seq, or None when no snapshot has arrived yet."""
        book = self._books.get(channel)
        return None if book is None else book.seq

    def apply(self, pub: Publication, market: str) -> OrderBook | None:
        """Apply ``pub`` to its book; return the book (None: a delta without a book)."""
        book = self._books.get(pub.channel)
        if book is None:
            if pub.data["type"] != SNAPSHOT:
                return None  # validated upstream; a stray delta has no book to land in
            book = self._books[pub.channel] = OrderBook(pub.channel, market)
        book.apply(pub)
        return book

    def __len__(self) -> int:
        return len(self._books)
