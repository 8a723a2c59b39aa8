"""One market's limit order book: price levels of FIFO queues (price-time priority).

Pure data structure, no I/O. Prices and sizes are the market's scaled integers. Each
side keeps its level prices in a sorted list with the best price last, so the matching
loop takes and drops the best level in O(1); a level holds its resting orders in arrival
order and their total size, which is what order-book events publish.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field

__all__ = ["BUY", "SELL", "BookSide", "Order", "OrderBook"]

BUY = "buy"
SELL = "sell"


@dataclass(slots=True, eq=False)
class Order:
    """An order as the engine tracks it; ``remaining`` shrinks as it fills.

    ``price`` is None for a market order. ``arrival`` orders the book's queues (time
    priority): it grows by one per accepted order in the engine.
    """

    sid: str
    user: str
    market_addr: str
    side: str
    size: int
    price: int | None
    leverage: int
    post_only: bool
    ioc: bool
    arrival: int
    ts_ms: int
    status: str = "created"
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = self.size

    @property
    def filled(self) -> int:
        return self.size - self.remaining

    @property
    def type(self) -> str:
        return "market" if self.price is None else "limit"


class BookSide:
    """One side of a book: ``levels[price]`` is a FIFO queue, ``totals[price]`` its size."""

    __slots__ = ("_keys", "is_bid", "levels", "totals")

    def __init__(self, *, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[int, deque[Order]] = {}
        self.totals: dict[int, int] = {}
        # Sort keys with the best price last: the price for bids, minus the price for asks.
        self._keys: list[int] = []

    def __bool__(self) -> bool:
        return bool(self._keys)

    def _key(self, price: int) -> int:
        return price if self.is_bid else -price

    def best(self) -> int | None:
        """The best price (highest bid, lowest ask), or None when the side is empty."""
        if not self._keys:
            return None
        return self._key(self._keys[-1])

    def add(self, order: Order) -> None:
        """Queue ``order`` (a limit order with ``remaining > 0``) behind its level."""
        price = order.price
        assert price is not None
        queue = self.levels.get(price)
        if queue is None:
            queue = self.levels[price] = deque()
            self.totals[price] = 0
            insort(self._keys, self._key(price))
        queue.append(order)
        self.totals[price] += order.remaining

    def reduce(self, price: int, amount: int) -> None:
        """Take ``amount`` off the level's total (its front order filled that much)."""
        self.totals[price] -= amount

    def remove(self, order: Order) -> None:
        """Take ``order`` out of its queue wherever it stands (cancel, self-trade)."""
        price = order.price
        assert price is not None
        queue = self.levels[price]
        if queue and queue[0] is order:
            queue.popleft()
        else:
            queue.remove(order)
        self.totals[price] -= order.remaining
        if not queue:
            self.drop_level(price)

    def drop_level(self, price: int) -> None:
        """Forget an emptied level."""
        del self.levels[price]
        del self.totals[price]
        keys = self._keys
        key = self._key(price)
        if keys and keys[-1] == key:
            keys.pop()
        else:
            del keys[bisect_left(keys, key)]

    def depth(self) -> list[tuple[int, int]]:
        """Every level as ``(price, total size)``, ascending by price."""
        return [(price, self.totals[price]) for price in sorted(self.totals)]

    def orders(self) -> list[Order]:
        """Every resting order, best level first, each level in time priority."""
        return [o for key in reversed(self._keys) for o in self.levels[self._key(key)]]


class OrderBook:
    """Both sides of one market's book."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)

    def side(self, side: str) -> BookSide:
        """The side an order of ``side`` rests on."""
        return self.bids if side == BUY else self.asks

    def opposite(self, side: str) -> BookSide:
        """The side an order of ``side`` matches against."""
        return self.asks if side == BUY else self.bids

    def crosses(self, side: str, price: int) -> bool:
        """Whether a limit order at ``price`` would match the opposite side's best."""
        best = self.opposite(side).best()
        if best is None:
            return False
        return price >= best if side == BUY else price <= best

    def depth(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """``(bids, asks)``, each ascending by price as ``(price, total size)``."""
        return self.bids.depth(), self.asks.depth()
