"""The demo venue's matching engine for perpetual markets: pure, no I/O, no asyncio.

Every call returns producer-API events (``POST /api/v1/publish`` items, PROTOCOL.md
sections 2 and 4) that a caller publishes in order; the engine never publishes itself.
Time comes from the ``clock_ms`` callable given to :class:`Engine`, read once per call.

Orders. Limit orders (``price``) and market orders (``price=None``), optionally
``post_only`` (rejected if it would cross) or ``ioc`` (never rests), matched with
price-time priority: best price first, then arrival order within a price. A limit
order's remainder rests; a market or IOC order's remainder is cancelled
(``partial_filled_and_cancelled``, or ``cancelled`` when nothing filled). The trade
price is the resting (maker) order's price. A refused order is ``rejected`` with a
:attr:`Placed.reason`: :data:`REJECT_TICK`, :data:`REJECT_LOT`, :data:`REJECT_LEVERAGE`,
:data:`REJECT_POST_ONLY`, :data:`REJECT_NO_LIQUIDITY`, :data:`REJECT_ORDER_TYPE` (an
order both post-only and IOC, or a post-only market order) come with a ``rejected``
order event; :data:`REJECT_INVALID` (unknown market, side not buy/sell, size or
leverage not a positive integer, price not a positive integer, a user id the private
topics cannot carry) comes with no events and no sid.

Self-trade prevention: cancel the resting order. When an order reaches a resting order
of the same user, the resting order is cancelled (its order event says ``cancelled``,
or ``partial_filled_and_cancelled`` if it had filled) and matching continues behind it;
a user never trades with themself. A post-only order that would cross the user's own
resting order is rejected like any other crossing post-only order.

Events of one :meth:`Engine.place`, in this order: ``order`` events (one per user, the
placing user first: its ``created`` item, resting orders it filled or cancelled, its
final status), one ``trade/<m>`` event, ``fill`` events (one per user: the placing
user, then each maker), ``position`` events (same users), one ``orderbook/<m>`` delta.
Events with nothing to say are left out (no trade event without trades, no delta when
the book did not change). Private events carry at most ``MAX_PRIVATE_ITEMS`` items;
longer lists are split into consecutive events. A caller publishing more than
``MAX_EVENTS`` events splits them into consecutive batches, in order.

- Order-book deltas: ``seq`` grows by one per delta per market; a level is
  ``[price, total size]``, 0 when it emptied, both sides ascending. A snapshot
  (:meth:`Engine.snapshot_events`) carries the current ``seq``: the next delta follows it.
- Trades: one ``trade/<m>`` event per order that traded, its ``seq`` one more than the
  market's previous trade event; one trade item per price level the order took
  (aggregated over the resting orders at that price), ``side`` the taker's,
  ``id`` ``f"{symbol}-{n}"`` and item ``seq`` ``n`` (the market's trade count).
- Fills: one per matched pair of orders, id ``f"{symbol}-f{n}"``; the same item goes to
  maker and taker; ``side`` is the taker's (the maker's side is the other one).
  ``maker_fee``/``taker_fee`` are quote amounts, ``price * size * bps / 10_000``
  scaled like prices and rounded up (the venue's way; a rebate is negative). Margin is
  isolated: ``*_is_cross`` is false.
- Orders: ``size`` is the order's original size; ``price`` 0 for a market order;
  ``type`` ``limit`` or ``market``; ``stop_loss``/``take_profit`` null.
- Positions: see :mod:`streamgate.venue.positions` (netting, entry price, margin,
  liquidation price); ``entry_price`` equals ``price``. ``side`` is ``buy`` for a long
  (or flat) position and ``sell`` for a short, as the stream's SDK types it.
- Order-book events carry ``matched_at``, the time of the match that moved them.
- Private item ``seq``: one engine-wide counter, taken as items are emitted, so a
  user's items are in order across the three topics; a fill's two copies (maker's and
  taker's, the same object) share theirs.

Mark and index: the mark price is the index price, which :meth:`Engine.set_index_price`
moves (it starts at ``initial_price``); unrealized PnL is against it.

Funding (simple model): every ``FUNDING_INTERVAL_MS`` (1 h, on the hour of the clock)
longs pay shorts ``size * mark * rate`` (negative rate: shorts pay). The rate is
``FUNDING_BASE_RATE + premium`` clamped to ``±FUNDING_CAP``, where premium is
``(mid - index) / index`` for the book's mid price (0 while a side is empty). Tickers
show the rate funding would use now and ``next_funding_time``. Funding is settled by
:meth:`Engine.settle_funding` and :meth:`Engine.set_index_price` (before the move) once
the clock has passed ``next_funding_time``; settling after several missed intervals
counts once. Each settlement adds the rate to the market's ``funding_index`` and one
to its ``epoch``; positions carry the values of the last settlement they took part in
(or of the time they opened).

24 h volume and turnover: rolling, over one-minute buckets of the last 24 hours
(granularity one minute). ``volume_24h`` in size units, ``turnover_24h`` (and
``open_interest_value``) in quote units. Open interest: the sum of long sizes.

There are no account balances: orders are not checked against collateral, and a
position whose mark crosses its liquidation price is not liquidated.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamgate.core.books import DELTA, SNAPSHOT
from streamgate.core.identifiers import is_user_id
from streamgate.protocol.producer import MAX_PRIVATE_ITEMS
from streamgate.protocol.topics import is_public_topic
from streamgate.venue.book import BUY, SELL, BookSide, Order, OrderBook
from streamgate.venue.positions import BPS, Position, PositionBook

__all__ = [
    "CANCELLED",
    "CREATED",
    "FILLED",
    "FUNDING_BASE_RATE",
    "FUNDING_CAP",
    "FUNDING_INTERVAL_MS",
    "PARTIAL_FILLED",
    "PARTIAL_FILLED_AND_CANCELLED",
    "PLACED",
    "REJECTED",
    "REJECT_INVALID",
    "REJECT_LEVERAGE",
    "REJECT_LOT",
    "REJECT_NO_LIQUIDITY",
    "REJECT_ORDER_TYPE",
    "REJECT_POST_ONLY",
    "REJECT_TICK",
    "VOLUME_BUCKET_MS",
    "VOLUME_WINDOW_MS",
    "Engine",
    "MarketSpec",
    "OpenOrder",
    "Placed",
]

CREATED = "created"
PLACED = "placed"
FILLED = "filled"
CANCELLED = "cancelled"
REJECTED = "rejected"
PARTIAL_FILLED = "partial_filled"
PARTIAL_FILLED_AND_CANCELLED = "partial_filled_and_cancelled"

REJECT_INVALID = "invalid"
REJECT_TICK = "tick"
REJECT_LOT = "lot"
REJECT_LEVERAGE = "leverage"
REJECT_POST_ONLY = "post_only_would_cross"
REJECT_NO_LIQUIDITY = "no_liquidity"
REJECT_ORDER_TYPE = "order_type"

FUNDING_INTERVAL_MS = 3_600_000
FUNDING_BASE_RATE = 0.0001
FUNDING_CAP = 0.005
VOLUME_WINDOW_MS = 86_400_000
VOLUME_BUCKET_MS = 60_000

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One perpetual market. Prices and sizes are integers scaled by ``10**decimals``.

    ``tick``/``lot``: price and size increments (scaled). Fees in basis points of
    notional; ``maker_fee_bps`` may be negative (a rebate, at most the taker fee).
    ``maintenance_margin_bps`` must stay under the initial margin at ``max_leverage``.
    """

    market_addr: str
    symbol: str
    price_decimals: int
    size_decimals: int
    tick: int
    lot: int
    maker_fee_bps: int
    taker_fee_bps: int
    max_leverage: int
    initial_price: int
    maintenance_margin_bps: int


@dataclass(slots=True)
class Placed:
    """What :meth:`Engine.place` did: the order's sid, its status, events to publish.

    ``status`` is the order's status after matching (``placed``, ``partial_filled``,
    ``filled``, ``cancelled``, ``partial_filled_and_cancelled``) or ``rejected`` with a
    ``reason``. ``filled`` is the size it traded.
    """

    sid: str
    events: list[Event]
    status: str
    reason: str | None = None
    filled: int = 0


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """A resting order, as :meth:`Engine.open_orders` reports it."""

    sid: str
    user: str
    market_addr: str
    side: str
    price: int
    size: int
    remaining: int
    leverage: int
    post_only: bool
    ts_ms: int


@dataclass(slots=True)
class _Market:
    spec: MarketSpec
    scale: int  # 10 ** size_decimals
    index_price: int
    last_price: int
    next_funding_ms: int
    book: OrderBook = field(default_factory=OrderBook)
    orders: dict[str, Order] = field(default_factory=dict)
    positions: dict[str, PositionBook] = field(default_factory=dict)
    book_seq: int = 0
    trade_event_seq: int = 0
    trade_count: int = 0
    fill_count: int = 0
    order_count: int = 0
    position_count: int = 0
    open_interest: int = 0
    funding_index: float = 0.0
    epoch: int = 0
    buckets: deque[list[int]] = field(default_factory=deque)  # [start_ms, volume, price*size]
    volume: int = 0
    turnover: int = 0  # unscaled price * size

    @property
    def mark_price(self) -> int:
        return self.index_price

    def position(self, user: str) -> PositionBook:
        pos = self.positions.get(user)
        if pos is None:
            self.position_count += 1
            pos = PositionBook(
                sid=f"{self.spec.symbol}-p{self.position_count}",
                user=user,
                market_addr=self.spec.market_addr,
                size_scale=self.scale,
                funding_index=self.funding_index,
                epoch=self.epoch,
            )
            self.positions[user] = pos
        return pos

    def add_volume(self, now_ms: int, size: int, price: int) -> None:
        start = now_ms - now_ms % VOLUME_BUCKET_MS
        if self.buckets and self.buckets[-1][0] == start:
            bucket = self.buckets[-1]
            bucket[1] += size
            bucket[2] += price * size
        else:
            self.buckets.append([start, size, price * size])
        self.volume += size
        self.turnover += price * size

    def prune_volume(self, now_ms: int) -> None:
        oldest = now_ms - VOLUME_WINDOW_MS
        while self.buckets and self.buckets[0][0] + VOLUME_BUCKET_MS <= oldest:
            _, size, turnover = self.buckets.popleft()
            self.volume -= size
            self.turnover -= turnover

    def funding_rate(self) -> float:
        bid, ask = self.book.bids.best(), self.book.asks.best()
        premium = 0.0
        if bid is not None and ask is not None:
            premium = ((bid + ask) / 2 - self.index_price) / self.index_price
        rate = max(-FUNDING_CAP, min(FUNDING_CAP, FUNDING_BASE_RATE + premium))
        return round(rate, 8)


class _Out:
    """Collects one call's events by kind, users in order of first appearance."""

    __slots__ = (
        "fill_items",
        "fills",
        "market",
        "now_ms",
        "orders",
        "positions",
        "touched",
        "trades",
    )

    def __init__(self, market: _Market, now_ms: int) -> None:
        self.market = market
        self.now_ms = now_ms
        self.orders: dict[str, list[Event]] = {}
        self.fills: dict[str, list[Event]] = {}
        self.fill_items: list[Event] = []  # in match order
        self.positions: dict[str, None] = {}
        self.trades: list[Event] = []
        self.touched: dict[BookSide, set[int]] = {}

    def order(self, item: Event) -> None:
        self.orders.setdefault(item["user_addr"], []).append(item)

    def fill(self, item: Event) -> None:
        self.fill_items.append(item)
        self.fills.setdefault(item["taker_addr"], []).append(item)
        self.fills.setdefault(item["maker_addr"], []).append(item)

    def touch(self, side: BookSide, price: int) -> None:
        self.touched.setdefault(side, set()).add(price)


class Engine:
    """Matching engine over ``markets``; see the module docstring for the semantics."""

    def __init__(self, markets: Sequence[MarketSpec], *, clock_ms: Callable[[], int]) -> None:
        self._clock = clock_ms
        self._markets: dict[str, _Market] = {}
        self._seq = 0  # private items
        self._arrival = 0  # time priority
        now = clock_ms()
        for spec in markets:
            _check_spec(spec)
            if spec.market_addr in self._markets:
                raise ValueError(f"market {spec.market_addr!r} is listed twice")
            self._markets[spec.market_addr] = _Market(
                spec=spec,
                scale=10**spec.size_decimals,
                index_price=spec.initial_price,
                last_price=spec.initial_price,
                next_funding_ms=_next_funding(now),
            )

    # -- queries ---------------------------------------------------------------------------

    @property
    def markets(self) -> list[MarketSpec]:
        return [m.spec for m in self._markets.values()]

    def index_price(self, market_addr: str) -> int:
        return self._markets[market_addr].index_price

    def book(self, market_addr: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """``(bids, asks)`` as ``(price, total size)`` levels, each ascending by price."""
        return self._markets[market_addr].book.depth()

    def positions(self, market_addr: str) -> dict[str, Position]:
        """Every user who has traded in the market (flat ones too), by user."""
        m = self._markets[market_addr]
        mm = m.spec.maintenance_margin_bps
        return {user: pos.view(m.mark_price, mm) for user, pos in m.positions.items()}

    def open_orders(self, user: str, market_addr: str | None = None) -> list[OpenOrder]:
        """The user's resting orders (in one market or all), oldest first."""
        markets = self._markets.values() if market_addr is None else [self._markets[market_addr]]
        found = [o for m in markets for o in m.orders.values() if o.user == user]
        found.sort(key=lambda o: o.arrival)
        return [
            OpenOrder(
                sid=o.sid,
                user=o.user,
                market_addr=o.market_addr,
                side=o.side,
                price=o.price or 0,
                size=o.size,
                remaining=o.remaining,
                leverage=o.leverage,
                post_only=o.post_only,
                ts_ms=o.ts_ms,
            )
            for o in found
        ]

    # -- orders ----------------------------------------------------------------------------

    def place(
        self,
        user: str,
        market_addr: str,
        side: str,
        size: int,
        *,
        price: int | None = None,
        post_only: bool = False,
        ioc: bool = False,
        leverage: int = 1,
    ) -> Placed:
        """Place an order (``price=None``: a market order) and match it."""
        m = self._markets.get(market_addr)
        if (
            m is None
            or side not in (BUY, SELL)
            or not _positive_int(size)
            or not _positive_int(leverage)
            or (price is not None and not _positive_int(price))
            or not is_user_id(user)
        ):
            return Placed("", [], REJECTED, REJECT_INVALID)
        now = self._clock()
        spec = m.spec
        m.order_count += 1
        self._arrival += 1
        order = Order(
            sid=f"{spec.symbol}-o{m.order_count}",
            user=user,
            market_addr=market_addr,
            side=side,
            size=size,
            price=price,
            leverage=leverage,
            post_only=post_only,
            ioc=ioc,
            arrival=self._arrival,
            ts_ms=now,
        )
        out = _Out(m, now)
        reason = self._refusal(m, order)
        if reason is not None:
            order.status = REJECTED
            out.order(self._order_item(order, now))
            return Placed(order.sid, self._events(out), REJECTED, reason)
        out.order(self._order_item(order, now))
        self._match(m, order, out)
        book = m.book
        if order.remaining == 0:
            order.status = FILLED
        elif order.price is None or order.ioc:
            order.status = PARTIAL_FILLED_AND_CANCELLED if order.filled else CANCELLED
        else:
            order.status = PARTIAL_FILLED if order.filled else PLACED
            rest = book.side(side)
            rest.add(order)
            m.orders[order.sid] = order
            out.touch(rest, order.price)
        out.order(self._order_item(order, now))
        return Placed(order.sid, self._events(out), order.status, filled=order.filled)

    def cancel(self, user: str, market_addr: str, sid: str) -> list[Event]:
        """Cancel the user's resting order ``sid``; [] when there is no such open order."""
        m = self._markets.get(market_addr)
        order = None if m is None else m.orders.get(sid)
        if m is None or order is None or order.user != user:
            return []
        out = _Out(m, self._clock())
        self._cancel_resting(m, order, out)
        return self._events(out)

    def cancel_all(self, user: str, market_addr: str | None = None) -> list[Event]:
        """Cancel every resting order of the user (in one market or all)."""
        events: list[Event] = []
        markets = self._markets.values() if market_addr is None else [self._markets[market_addr]]
        now = self._clock()
        for m in markets:
            mine = sorted((o for o in m.orders.values() if o.user == user), key=lambda o: o.arrival)
            if not mine:
                continue
            out = _Out(m, now)
            for order in mine:
                self._cancel_resting(m, order, out)
            events.extend(self._events(out))
        return events

    # -- market data -----------------------------------------------------------------------

    def set_index_price(self, market_addr: str, price: int) -> list[Event]:
        """Move the index (= mark) price: settle funding if due first, then a ticker and
        a position event for every user holding a position in the market."""
        if not _positive_int(price):
            raise ValueError("the index price must be a positive integer")
        m = self._markets[market_addr]
        now = self._clock()
        self._settle(m, now)
        m.index_price = price
        return [self._ticker(m, now), *self._holder_events(m, now)]

    def settle_funding(self) -> list[Event]:
        """Settle funding in every market whose ``next_funding_time`` has passed: a
        ticker and the holders' position events per settled market."""
        now = self._clock()
        events: list[Event] = []
        for m in self._markets.values():
            if self._settle(m, now):
                events.append(self._ticker(m, now))
                events.extend(self._holder_events(m, now))
        return events

    def snapshot_events(self) -> list[Event]:
        """An ``orderbook_snapshot`` per market at its current ``seq`` (start, reset)."""
        now = self._clock()
        events = []
        for m in self._markets.values():
            bids, asks = m.book.depth()
            data = {
                "type": SNAPSHOT,
                "market_addr": m.spec.market_addr,
                "seq": m.book_seq,
                "asks": [[p, s] for p, s in asks],
                "bids": [[p, s] for p, s in bids],
                "timestamp": now // 1000,
                "timestamp_ms": now,
                "matched_at": now,
            }
            events.append({"topic": f"orderbook/{m.spec.market_addr}", "data": data})
        return events

    def ticker_events(self) -> list[Event]:
        """A ticker per market."""
        now = self._clock()
        return [self._ticker(m, now) for m in self._markets.values()]

    # -- matching --------------------------------------------------------------------------

    def _refusal(self, m: _Market, order: Order) -> str | None:
        spec = m.spec
        if order.post_only and (order.ioc or order.price is None):
            return REJECT_ORDER_TYPE
        if order.price is not None and order.price % spec.tick:
            return REJECT_TICK
        if order.size % spec.lot:
            return REJECT_LOT
        if order.leverage > spec.max_leverage:
            return REJECT_LEVERAGE
        if order.price is None:
            if not m.book.opposite(order.side):
                return REJECT_NO_LIQUIDITY
        elif order.post_only and m.book.crosses(order.side, order.price):
            return REJECT_POST_ONLY
        return None

    def _match(self, m: _Market, taker: Order, out: _Out) -> None:
        opposite = m.book.opposite(taker.side)
        limit = taker.price
        buying = taker.side == BUY
        while taker.remaining and opposite:
            best = opposite.best()
            assert best is not None
            if limit is not None and (best > limit if buying else best < limit):
                break
            out.touch(opposite, best)
            queue = opposite.levels[best]
            traded = 0
            while queue and taker.remaining:
                maker = queue[0]
                if maker.user == taker.user:  # self-trade prevention: cancel the resting one
                    queue.popleft()
                    opposite.reduce(best, maker.remaining)
                    del m.orders[maker.sid]
                    maker.status = PARTIAL_FILLED_AND_CANCELLED if maker.filled else CANCELLED
                    out.order(self._order_item(maker, out.now_ms))
                    continue
                size = min(taker.remaining, maker.remaining)
                taker.remaining -= size
                maker.remaining -= size
                opposite.reduce(best, size)
                traded += size
                if maker.remaining == 0:
                    queue.popleft()
                    del m.orders[maker.sid]
                    maker.status = FILLED
                else:
                    maker.status = PARTIAL_FILLED
                out.order(self._order_item(maker, out.now_ms))
                self._fill(m, taker, maker, best, size, out)
            if not queue:
                opposite.drop_level(best)
            if traded:
                m.trade_count += 1
                out.trades.append(
                    {
                        "id": f"{m.spec.symbol}-{m.trade_count}",
                        "side": taker.side,
                        "price": best,
                        "size": traded,
                        "seq": m.trade_count,
                        "timestamp": out.now_ms // 1000,
                    }
                )

    def _fill(
        self, m: _Market, taker: Order, maker: Order, price: int, size: int, out: _Out
    ) -> None:
        spec = m.spec
        m.fill_count += 1
        maker_fee = _fee(price, size, spec.maker_fee_bps, m.scale)
        taker_fee = _fee(price, size, spec.taker_fee_bps, m.scale)
        now = out.now_ms
        item: Event = {
            "sid": f"{spec.symbol}-f{m.fill_count}",
            "side": taker.side,
            "size": size,
            "price": price,
            "maker_fee": maker_fee,
            "taker_fee": taker_fee,
            "taker_order_sid": taker.sid,
            "taker_addr": taker.user,
            "maker_order_sid": maker.sid,
            "maker_addr": maker.user,
            "market_addr": spec.market_addr,
            "seq": 0,  # set when emitted
            "maker_leverage": maker.leverage,
            "taker_leverage": taker.leverage,
            "maker_is_cross": False,
            "taker_is_cross": False,
            "timestamp": now // 1000,
            "timestamp_ms": now,
        }
        out.fill(item)
        bought = size if taker.side == BUY else -size
        for user, delta, leverage, fee in (
            (taker.user, bought, taker.leverage, taker_fee),
            (maker.user, -bought, maker.leverage, maker_fee),
        ):
            pos = m.position(user)
            before = max(pos.size, 0)
            if pos.size == 0:
                pos.funding_index, pos.epoch = m.funding_index, m.epoch
            pos.apply_fill(delta, price, leverage)
            pos.fees += fee
            m.open_interest += max(pos.size, 0) - before
            out.positions[user] = None
        m.last_price = price
        m.add_volume(now, size, price)

    def _cancel_resting(self, m: _Market, order: Order, out: _Out) -> None:
        side = m.book.side(order.side)
        assert order.price is not None
        side.remove(order)
        del m.orders[order.sid]
        out.touch(side, order.price)
        order.status = PARTIAL_FILLED_AND_CANCELLED if order.filled else CANCELLED
        out.order(self._order_item(order, out.now_ms))

    # -- funding ---------------------------------------------------------------------------

    def _settle(self, m: _Market, now: int) -> bool:
        """Settle funding if due; whether it was."""
        if now < m.next_funding_ms:
            return False
        rate = m.funding_rate()
        mark = m.mark_price
        m.funding_index = round(m.funding_index + rate, 10)
        m.epoch += 1
        for pos in m.positions.values():
            if pos.size:
                pos.funding += round(pos.size * mark * rate / m.scale)
                pos.funding_index, pos.epoch = m.funding_index, m.epoch
        m.next_funding_ms = _next_funding(now)
        return True

    # -- events ----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _order_item(self, order: Order, now: int) -> Event:
        return {
            "sid": order.sid,
            "side": order.side,
            "size": order.size,
            "price": order.price or 0,
            "leverage": order.leverage,
            "type": order.type,
            "status": order.status,
            "user_addr": order.user,
            "market_addr": order.market_addr,
            "seq": 0,  # set when emitted
            "timestamp": now // 1000,
            "timestamp_ms": now,
            "stop_loss": None,
            "take_profit": None,
        }

    def _position_item(self, m: _Market, pos: PositionBook, now: int) -> Event:
        mark = m.mark_price
        held = abs(pos.size)
        mark_notional = mark * held // m.scale
        return {
            "sid": pos.sid,
            "market_addr": pos.market_addr,
            "user_addr": pos.user,
            "size": pos.size,
            "price": pos.entry_price(),
            "entry_price": pos.entry_price(),
            "margin": pos.margin(),
            "funding_index": pos.funding_index,
            "epoch": pos.epoch,
            "is_cross": False,
            "initial_margin": pos.margin(),
            "initial_margin_mark": mark_notional // pos.leverage,
            "maintenance_margin": mark_notional * m.spec.maintenance_margin_bps // BPS,
            "leverage": pos.leverage,
            "liq_price": pos.liq_price(m.spec.maintenance_margin_bps),
            "mark_price": mark,
            "seq": self._next_seq(),
            # PROTOCOL.md section 2: "buy" is a long position, "sell" a short (a flat
            # one, size 0, says "buy"; its size tells it is flat).
            "side": "sell" if pos.size < 0 else "buy",
            "unrealized_pnl": pos.unrealized(mark),
            "timestamp": now // 1000,
            "timestamp_ms": now,
        }

    def _holder_events(self, m: _Market, now: int) -> list[Event]:
        return [
            _private("position", user, [self._position_item(m, pos, now)])
            for user, pos in m.positions.items()
            if pos.size
        ]

    def _ticker(self, m: _Market, now: int) -> Event:
        m.prune_volume(now)
        rate = m.funding_rate()
        mark = m.mark_price
        return {
            "topic": f"ticker/{m.spec.market_addr}",
            "data": {
                "type": "ticker",
                "symbol": m.spec.symbol,
                "market_addr": m.spec.market_addr,
                "ts": now,
                "last_price": m.last_price,
                "mark_price": mark,
                "index_price": m.index_price,
                "open_interest": m.open_interest,
                "open_interest_value": m.open_interest * mark // m.scale,
                "funding_rate": rate,
                "funding_rate_percentage": round(rate * 100, 6),
                "next_funding_time": m.next_funding_ms,
                "volume_24h": m.volume,
                "turnover_24h": m.turnover // m.scale,
            },
        }

    def _events(self, out: _Out) -> list[Event]:
        m = out.market
        now = out.now_ms
        addr = m.spec.market_addr
        events: list[Event] = []
        for user, items in out.orders.items():
            for item in items:
                item["seq"] = self._next_seq()
            events.extend(_private_chunks("order", user, items))
        if out.trades:
            m.trade_event_seq += 1
            events.append(
                {
                    "topic": f"trade/{addr}",
                    "data": {
                        "type": "trades",
                        "market_addr": addr,
                        "seq": m.trade_event_seq,
                        "trades": out.trades,
                    },
                }
            )
        for item in out.fill_items:  # one seq per fill, shared by its maker and taker
            item["seq"] = self._next_seq()
        for user, items in out.fills.items():
            events.extend(_private_chunks("fill", user, items))
        for user in out.positions:
            events.append(
                _private("position", user, [self._position_item(m, m.positions[user], now)])
            )
        if out.touched:
            m.book_seq += 1
            book = m.book
            levels = {
                side: [[p, side.totals.get(p, 0)] for p in sorted(prices)]
                for side, prices in out.touched.items()
            }
            events.append(
                {
                    "topic": f"orderbook/{addr}",
                    "data": {
                        "type": DELTA,
                        "market_addr": addr,
                        "seq": m.book_seq,
                        "asks": levels.get(book.asks, []),
                        "bids": levels.get(book.bids, []),
                        "timestamp": now // 1000,
                        "timestamp_ms": now,
                        "matched_at": now,  # the match that moved these levels
                    },
                }
            )
        return events


# -- helpers -------------------------------------------------------------------------------


def _private(topic: str, user: str, items: list[Event]) -> Event:
    return {"topic": topic, "user_id": user, "data": items}


def _private_chunks(topic: str, user: str, items: list[Event]) -> list[Event]:
    return [
        _private(topic, user, items[i : i + MAX_PRIVATE_ITEMS])
        for i in range(0, len(items), MAX_PRIVATE_ITEMS)
    ]


def _fee(price: int, size: int, bps: int, scale: int) -> int:
    """``price * size * bps / 10_000`` in quote units, rounded up (toward the venue)."""
    return -((-price * size * bps) // (BPS * scale))


def _next_funding(now_ms: int) -> int:
    return (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_spec(spec: MarketSpec) -> None:
    def bad(why: str) -> ValueError:
        return ValueError(f"market {spec.market_addr!r}: {why}")

    if not isinstance(spec.market_addr, str) or not is_public_topic(
        f"orderbook/{spec.market_addr}"
    ):
        raise bad("market_addr must be non-empty, without '/' or whitespace")
    if not spec.symbol:
        raise bad("symbol is required")
    if spec.price_decimals < 0 or spec.size_decimals < 0:
        raise bad("decimals must be >= 0")
    for name in ("tick", "lot", "max_leverage", "initial_price"):
        if not _positive_int(getattr(spec, name)):
            raise bad(f"{name} must be a positive integer")
    if spec.taker_fee_bps < 0 or spec.maker_fee_bps < -spec.taker_fee_bps:
        raise bad("fees: taker_fee_bps >= 0 and a maker rebate no larger than the taker fee")
    mm = spec.maintenance_margin_bps
    if mm < 0 or mm * spec.max_leverage >= BPS:
        raise bad("maintenance_margin_bps must be >= 0 and under 10_000 / max_leverage")
