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
from collections.abc import Callable, Iterable, Mapping
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


def checksum_text(bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]]) -> str:
    """The string the checksum is taken of: ``bid:size:ask:size:...``, best levels first.

    ``bids`` descending and ``asks`` ascending by price (best first), each already cut to
    :data:`CHECKSUM_DEPTH`; when one side runs out, the other's levels continue alone.
    """
    parts: list[str] = []
    bid_list, ask_list = list(bids), list(asks)
    for i in range(max(len(bid_list), len(ask_list))):
        if i < len(bid_list):
            parts.append(f"{bid_list[i][0]}:{bid_list[i][1]}")
        if i < len(ask_list):
            parts.append(f"{ask_list[i][0]}:{ask_list[i][1]}")
    return ":".join(parts)


def book_checksum(bids: Mapping[int, int], asks: Mapping[int, int]) -> int:
    """CRC32 (unsigned, as ``zlib.crc32``) of a book's top levels; 0 for an empty book.

    ``bids`` and ``asks`` map price -> size. O(levels) per call (a partial selection,
    not a sort), done once per publication by the broker that applies it.
    """
    top_bids = heapq.nlargest(CHECKSUM_DEPTH, bids.items())
    top_asks = heapq.nsmallest(CHECKSUM_DEPTH, asks.items())
    return zlib.crc32(checksum_text(top_bids, top_asks).encode("ascii"))


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
