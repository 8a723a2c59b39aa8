"""A local copy of one gateway order book: snapshot, then deltas, ``seq`` and checksum checked.

PROTOCOL.md section 2: the first orderbook event after subscribing is a snapshot, deltas
follow with ``seq`` one more each; a size of 0 deletes a level. The gateway's book
checksum (extension, docs/protocol-notes.md "Book checksum") proves after every event
that the local book equals the gateway's. :func:`watch_book` resubscribes for a fresh
snapshot whenever the book falls out of step.
"""

from __future__ import annotations

import heapq
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from streamgate.client.errors import BookGap, ChecksumMismatch
from streamgate.client.events import Event, StreamItem
from streamgate.client.stream import StreamClient
from streamgate.core.books import DELTA, SNAPSHOT, book_checksum

__all__ = ["LocalOrderBook", "watch_book"]

Level = tuple[int, int]


class LocalOrderBook:
    """One market's book as the events of ``orderbook/<market>`` build it.

    ``bid_sizes`` and ``ask_sizes`` map price -> size; :meth:`bids` and :meth:`asks` give
    the best levels in order.

    ``seq`` and ``offset`` are those of the last event applied (``seq`` -1 and
    ``synced`` False before the first snapshot, and after a gap or a mismatch until the
    next snapshot).
    """

    def __init__(self, market: str) -> None:
        self.market = market
        self.ask_sizes: dict[int, int] = {}
        self.bid_sizes: dict[int, int] = {}
        self.seq = -1
        self.offset: int | None = None
        self.synced = False
        self.checked = 0  # events whose checksum was verified
        self.resyncs = 0  # resubscriptions for a fresh snapshot (watch_book)

    @property
    def topic(self) -> str:
        return f"orderbook/{self.market}"

    def apply(self, event: Event) -> None:
        """Apply a snapshot or delta event.

        Raises:
            BookGap: a delta before any snapshot, or whose ``seq`` is not ``seq + 1``.
            ChecksumMismatch: the book after the event differs from the gateway's.
        """
        data: dict[str, Any] = event.data
        kind, seq = data.get("type"), data.get("seq")
        if not isinstance(seq, int):
            raise BookGap(self.seq + 1 if self.synced else None, -1)
        if kind == SNAPSHOT:
            self.ask_sizes = {int(p): int(s) for p, s in data["asks"]}
            self.bid_sizes = {int(p): int(s) for p, s in data["bids"]}
        elif kind == DELTA:
            if not self.synced or seq != self.seq + 1:
                expected = self.seq + 1 if self.synced else None
                self.synced = False
                raise BookGap(expected, seq)
            _apply_levels(self.ask_sizes, data["asks"])
            _apply_levels(self.bid_sizes, data["bids"])
        else:
            raise BookGap(None, seq)
        self.seq, self.offset, self.synced = seq, event.offset, True
        expected_sum = data.get("checksum")
        if isinstance(expected_sum, int):
            computed = self.checksum()
            if computed != expected_sum:
                self.synced = False
                raise ChecksumMismatch(expected_sum, computed, seq)
            self.checked += 1

    def checksum(self) -> int:
        """The book checksum of the local book (the gateway's rule, core.books)."""
        return book_checksum(self.bid_sizes, self.ask_sizes)

    @property
    def best_bid(self) -> Level | None:
        return max(self.bid_sizes.items()) if self.bid_sizes else None

    @property
    def best_ask(self) -> Level | None:
        return min(self.ask_sizes.items()) if self.ask_sizes else None

    @property
    def spread(self) -> int | None:
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else ask[0] - bid[0]

    def bids(self, depth: int = 10) -> list[Level]:
        """The best ``depth`` bids ``(price, size)``, highest price first."""
        return heapq.nlargest(depth, self.bid_sizes.items())

    def asks(self, depth: int = 10) -> list[Level]:
        """The best ``depth`` asks ``(price, size)``, lowest price first."""
        return heapq.nsmallest(depth, self.ask_sizes.items())


def _apply_levels(side: dict[int, int], levels: list[list[int]]) -> None:
    for price, size in levels:
        if size == 0:
            side.pop(int(price), None)
        else:
            side[int(price)] = int(size)


async def watch_book(
    client: StreamClient,
    market: str,
    *,
    on_item: Callable[[StreamItem], Awaitable[None] | None] | None = None,
) -> AsyncIterator[LocalOrderBook]:
    """Subscribe ``orderbook/<market>``; yield the book after each event applied.

    On a ``seq`` gap or a checksum mismatch the book is resubscribed (a fresh snapshot)
    and deltas are skipped until that snapshot arrives. This consumes the client's
    iterator: every other item (other topics, Reconnected, Disconnected) goes to
    ``on_item``. The same book object is yielded each time; ``resyncs`` counts
    resubscriptions. Ends when the client ends.
    """
    book = LocalOrderBook(market)
    topic = book.topic
    await client.subscribe(topic)
    async for item in client:
        if not isinstance(item, Event) or item.topic != topic:
            if on_item is not None:
                result = on_item(item)
                if inspect.isawaitable(result):
                    await result
            continue
        if not book.synced and item.data.get("type") != SNAPSHOT:
            continue  # waiting for the snapshot of a resubscription
        try:
            book.apply(item)
        except (BookGap, ChecksumMismatch):
            book.resyncs += 1
            await client.subscribe(topic)
            continue
        yield book
