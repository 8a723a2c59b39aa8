"""Perpetual positions: netting per user per market, isolated margin.

Units. Prices and sizes are the market's scaled integers (``price_decimals``,
``size_decimals``). Quote amounts (margin, PnL, fees, funding, turnover) are integers in
quote units scaled like prices: ``price * size // 10**size_decimals``. Internally a
position keeps its cost basis and realized PnL unscaled (``price * size``), so netting
never loses more than one unit to rounding.

Netting. A fill in the position's direction (or opening one) adds ``price * size`` to the
cost basis: the entry price is the size-weighted average of the fills that built the
position. A fill against it closes ``min(|size|, fill)`` at the average entry, realizing
``(exit - entry) * closed`` (sign flipped for shorts); any rest of the fill opens a new
position the other way at the fill's price. The position's leverage is the leverage of
the last order that opened or increased it; margin is ``entry notional / leverage``.

Liquidation price (isolated margin, fees and funding ignored): the mark price at which
equity ``margin + unrealized PnL`` falls to the maintenance margin
``mark notional * maintenance_margin_bps / 10_000``. With ``margin = entry * |size| /
leverage`` and ``m = maintenance_margin_bps / 10_000``::

    long:  entry * (1 - 1/leverage) / (1 - m)
    short: entry * (1 + 1/leverage) / (1 + m)

The engine only reports it; the demo venue does not liquidate.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BPS", "FLAT", "LONG", "SHORT", "Position", "PositionBook", "div_round"]

LONG = "long"
SHORT = "short"
FLAT = "flat"
BPS = 10_000


def div_round(a: int, b: int) -> int:
    """``a / b`` rounded to the nearest integer, halves up (``b > 0``)."""
    return (2 * a + b) // (2 * b)


@dataclass(frozen=True, slots=True)
class Position:
    """A user's position in one market, as :meth:`Engine.positions` reports it.

    Quote amounts (``margin``, ``unrealized_pnl``, ``realized_pnl``, ``fees``,
    ``funding``) are in quote units scaled by the market's ``price_decimals``.
    ``realized_pnl`` excludes fees and funding; ``fees`` is what the user paid (negative:
    net rebates); ``funding`` is what the user paid in funding (negative: received).
    """

    sid: str
    user: str
    market_addr: str
    size: int
    entry_price: int
    leverage: int
    margin: int
    mark_price: int
    unrealized_pnl: int
    liq_price: int | None
    realized_pnl: int
    fees: int
    funding: int
    funding_index: float
    epoch: int

    @property
    def side(self) -> str:
        return LONG if self.size > 0 else SHORT if self.size < 0 else FLAT


@dataclass(slots=True)
class PositionBook:
    """One user's mutable position in one market (the engine's bookkeeping)."""

    sid: str
    user: str
    market_addr: str
    size_scale: int  # 10 ** size_decimals
    size: int = 0
    cost: int = 0  # sum of price * size over the open position, unscaled
    leverage: int = 1
    realized: int = 0  # unscaled (price * size)
    fees: int = 0  # quote units
    funding: int = 0  # quote units
    funding_index: float = 0.0
    epoch: int = 0

    def apply_fill(self, delta: int, price: int, leverage: int) -> None:
        """Net a fill of signed size ``delta`` (+ bought, - sold) at ``price``."""
        size = self.size
        if size == 0 or (size > 0) == (delta > 0):
            self.cost += price * abs(delta)
            self.size = size + delta
            self.leverage = leverage
            return
        held = abs(size)
        closed = min(held, abs(delta))
        removed = self.cost * closed // held if closed < held else self.cost
        exit_value = price * closed
        self.realized += exit_value - removed if size > 0 else removed - exit_value
        self.cost -= removed
        rest = abs(delta) - closed
        if closed == held:
            self.size = 0
            self.cost = 0
            if rest:
                self.size = rest if delta > 0 else -rest
                self.cost = price * rest
                self.leverage = leverage
        else:
            self.size = size + delta

    def entry_price(self) -> int:
        """Average entry price, rounded; 0 when flat."""
        return div_round(self.cost, abs(self.size)) if self.size else 0

    def margin(self) -> int:
        """Entry notional / leverage, in quote units."""
        return self.cost // (self.size_scale * self.leverage)

    def unrealized(self, mark: int) -> int:
        """PnL of the open position at ``mark``, in quote units."""
        if self.size == 0:
            return 0
        value = mark * abs(self.size) - self.cost
        return div_round(value if self.size > 0 else -value, self.size_scale)

    def liq_price(self, maintenance_margin_bps: int) -> int | None:
        """Isolated-margin liquidation price (module docstring); None when flat."""
        held = abs(self.size)
        if not held:
            return None
        lev = self.leverage
        if self.size > 0:
            return div_round(
                self.cost * (lev - 1) * BPS, held * lev * (BPS - maintenance_margin_bps)
            )
        return div_round(self.cost * (lev + 1) * BPS, held * lev * (BPS + maintenance_margin_bps))

    def view(self, mark: int, maintenance_margin_bps: int) -> Position:
        return Position(
            sid=self.sid,
            user=self.user,
            market_addr=self.market_addr,
            size=self.size,
            entry_price=self.entry_price(),
            leverage=self.leverage,
            margin=self.margin(),
            mark_price=mark,
            unrealized_pnl=self.unrealized(mark),
            liq_price=self.liq_price(maintenance_margin_bps),
            realized_pnl=div_round(self.realized, self.size_scale),
            fees=self.fees,
            funding=self.funding,
            funding_index=self.funding_index,
            epoch=self.epoch,
        )
