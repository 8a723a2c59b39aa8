"""Order books kept from the producer's snapshots and deltas.

A book follows one ``orderbook/<market>`` channel: a snapshot replaces it, a delta
sets each ``[price, size]`` level (size 0 deletes it). Deltas must carry
``seq == book.seq + 1``; :func:`check_chain` refuses a batch in which one does not,
before anything of it is published (PROTOCOL.md sections 2 and 4).

The books themselves are broker state (so that every node serves the same book at a
precise offset): the memory broker keeps :class:`Books`, the Redis broker a hash per
book, updated by the same script that numbers the publication.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streamgate.errors import BookRefused
from streamgate.hub.channels import is_book_channel
from streamgate.hub.publication import Publication

__all__ = ["DELTA", "SNAPSHOT", "Books", "OrderBook", "chain_refusal", "check_chain"]

SNAPSHOT = "orderbook_snapshot"
DELTA = "orderbook_delta"

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
        }

    def snapshot_publication(self, now_ms: int) -> Publication:
        """Return the book as a publication at the offset of the last event it includes."""
        return Publication(self.channel, self.offset, self.epoch, self.snapshot(), now_ms)


def check_chain(items: Iterable[tuple[str, Any]], seq_of: Callable[[str], int | None]) -> None:
    """Check that each order-book delta among ``items`` (channel, data) follows its book.

    ``seq_of`` returns a book's current seq (None: no snapshot yet). Items chain: a
    snapshot or delta sets the seq the next delta of its book must follow.

    Raises:
        BookRefused: at the first delta that does not follow (its position in ``items``).
    """
    seqs: dict[str, int | None] = {}
    for position, (channel, data) in enumerate(items):
        if not is_book_channel(channel):
            continue
        seq = seqs[channel] if channel in seqs else seq_of(channel)
        new = data["seq"]
        if data["type"] == DELTA and (seq is None or new != seq + 1):
            raise chain_refusal(position, channel, new, seq)
        seqs[channel] = new


def chain_refusal(position: int, channel: str, new: int, seq: int | None) -> BookRefused:
    """The refusal of a delta with seq ``new`` for a book at ``seq`` (None: no book)."""
    if seq is None:
        detail = f"no snapshot of {channel} yet; publish an orderbook_snapshot first"
        return BookRefused(position, "NO_BOOK", detail, "data.type")
    detail = f"delta seq {new} does not follow the book's seq {seq}; expected {seq + 1}"
    return BookRefused(position, "SEQ_GAP", detail, "data.seq")


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

    def apply(self, pub: Publication, market: str) -> None:
        book = self._books.get(pub.channel)
        if book is None:
            if pub.data["type"] != SNAPSHOT:
                return  # validated upstream; a stray delta has no book to land in
            book = self._books[pub.channel] = OrderBook(pub.channel, market)
        book.apply(pub)

    def __len__(self) -> int:
        return len(self._books)
