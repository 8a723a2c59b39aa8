"""Order-book wire names and the chain rule every producer's deltas follow.

A book follows one ``orderbook/<market>`` channel: a snapshot replaces it, a delta sets
each ``[price, size]`` level (size 0 deletes it). Deltas must carry ``seq == book.seq + 1``;
:func:`check_chain` refuses a batch in which one does not, before anything of it is
published (PROTOCOL.md sections 2 and 4). The books themselves are broker state
(:mod:`streamgate.brokers.books`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streamgate.core.channels import is_book_channel
from streamgate.errors import BookRefused

__all__ = ["DELTA", "SNAPSHOT", "chain_refusal", "check_chain"]

SNAPSHOT = "orderbook_snapshot"
DELTA = "orderbook_delta"


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
