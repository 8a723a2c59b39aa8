"""Order-book wire names and the chain rule every producer's deltas follow.

A book follows one ``orderbook/<market>`` channel: a snapshot replaces it, a delta sets
each ``[price, size]`` level (size 0 deletes it). Deltas must carry ``seq == book.seq + 1``;
:func:`check_chain` refuses a batch in which one does not, before anything of it is
published (PROTOCOL.md sections 2 and 4). The books themselves are broker state
(:mod:`streamgate.brokers.books`).
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from streamgate.core.channels import is_book_channel
from streamgate.errors import BookRefused

__all__ = [
    "CHECKSUM_DEPTH",
    "DELTA",
    "SNAPSHOT",
    "book_checksum",
    "chain_refusal",
    "check_chain",
    "checksum_text",
]

SNAPSHOT = "orderbook_snapshot"
DELTA = "orderbook_delta"

# The book checksum (extension, docs/protocol-notes.md "Book checksum"): CRC32 of the top
# CHECKSUM_DEPTH levels per side, best first, interleaved bid, ask, bid, ask...
CHECKSUM_DEPTH = 25
Level = tuple[int, int]


def checksum_text(bids: Sequence[Level], asks: Sequence[Level]) -> str:
    """The string the checksum is taken of: ``bid:size:ask:size:...``, best levels first.

    ``bids`` descending and ``asks`` ascending by price (best first), each already cut to
    :data:`CHECKSUM_DEPTH`; when one side runs out, the other's levels continue alone.
    """
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    return ":".join(parts)


def book_checksum(bids: Mapping[int, int], asks: Mapping[int, int]) -> int:
    """CRC32 (unsigned, as ``zlib.crc32``) of a book's top levels; 0 for an empty book.

    ``bids`` and ``asks`` map price -> size. Done once per publication by the broker that
    applies it: a sort of the prices of a small book, a partial selection of a deep one.
    """
    depth = CHECKSUM_DEPTH
    best_bids = sorted(bids, reverse=True)[:depth] if len(bids) <= 4 * depth else None
    best_asks = sorted(asks)[:depth] if len(asks) <= 4 * depth else None
    top_bids = heapq.nlargest(depth, bids) if best_bids is None else best_bids
    top_asks = heapq.nsmallest(depth, asks) if best_asks is None else best_asks
    text = checksum_text([(p, bids[p]) for p in top_bids], [(p, asks[p]) for p in top_asks])
    return zlib.crc32(text.encode("ascii"))


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
