"""Simulated traders: market makers quoting around a random-walk index, takers, holders.

Pure: each :meth:`Traders.tick` asks the engine for orders and returns the producer
events they caused, in order. The randomness is seeded, so a run can be replayed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamgate.auth.accounts import account_address
from streamgate.venue.engine import Engine, MarketSpec

__all__ = ["Traders", "TradersSpec", "simulated_account"]


def simulated_account(name: str) -> str:
    """A realistic account address for a simulated trader (no key behind it)."""
    return account_address(hashlib.sha256(name.encode()).digest())


@dataclass(frozen=True, slots=True)
class TradersSpec:
    makers_per_market: int = 2
    takers: int = 4
    levels: int = 6  # quotes per side per maker
    spread_ticks: int = 2
    taker_probability: float = 0.35  # chance per tick that some taker trades
    seed: int | None = None


@dataclass(slots=True)
class _Maker:
    user: str
    market: MarketSpec
    quotes: list[str] = field(default_factory=list)


class Traders:
    """Drives an :class:`Engine` like a small but busy venue."""

    def __init__(self, engine: Engine, markets: Sequence[MarketSpec], spec: TradersSpec) -> None:
        self.engine = engine
        self.markets = list(markets)
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.index = {m.market_addr: m.initial_price for m in self.markets}
        self.makers = [
            _Maker(simulated_account(f"maker-{m.symbol}-{i}"), m)
            for m in self.markets
            for i in range(spec.makers_per_market)
        ]
        self.takers = [simulated_account(f"taker-{i}") for i in range(spec.takers)]

    def tick(self) -> list[dict[str, Any]]:
        """One step: move each index, re-quote one maker per market, maybe take."""
        events: list[dict[str, Any]] = []
        for market in self.markets:
            events.extend(self._walk(market))
        for market in self.markets:
            makers = [m for m in self.makers if m.market is market]
            events.extend(self._quote(self.rng.choice(makers)))
        if self.rng.random() < self.spec.taker_probability:
            events.extend(self._take())
        return events

    def _walk(self, market: MarketSpec) -> list[dict[str, Any]]:
        addr = market.market_addr
        step = self.rng.choice((-2, -1, -1, 0, 0, 0, 1, 1, 2)) * market.tick
        self.index[addr] = max(market.tick * 10, self.index[addr] + step)
        return self.engine.set_index_price(addr, self.index[addr])

    def _quote(self, maker: _Maker) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        market = maker.market
        for sid in maker.quotes:
            events.extend(self.engine.cancel(maker.user, market.market_addr, sid))
        maker.quotes = []
        mid = self.index[market.market_addr] // market.tick * market.tick
        half = self.spec.spread_ticks * market.tick
        for level in range(self.spec.levels):
            for side, price in (
                ("buy", mid - half - level * market.tick),
                ("sell", mid + half + level * market.tick),
            ):
                size = self.rng.randint(1, 20) * market.lot
                placed = self.engine.place(
                    maker.user, market.market_addr, side, size, price=price, post_only=True
                )
                events.extend(placed.events)
                if placed.status in ("placed", "partial_filled"):
                    maker.quotes.append(placed.sid)
        return events

    def _take(self) -> list[dict[str, Any]]:
        market = self.rng.choice(self.markets)
        user = self.rng.choice(self.takers)
        side = self.rng.choice(("buy", "sell"))
        size = self.rng.randint(1, 8) * market.lot
        leverage = self.rng.choice((1, 2, 5, 10))
        placed = self.engine.place(user, market.market_addr, side, size, leverage=leverage)
        return placed.events
