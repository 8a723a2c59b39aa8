"""The demo venue at run time: engine + traders + payments, publishing through the API.

Everything it produces goes through ``POST /api/v1/publish`` over HTTP, as a platform's
services would. One lock covers each engine step together with its publish, so the
order-book ``seq`` chain reaches the gateway in the order the engine made it, whether
the step came from the simulated traders or from a person's REST order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamgate.client.producer import Producer, PublishError
from streamgate.venue.engine import Engine, MarketSpec, Placed
from streamgate.venue.payments import PaymentsSimulator, PaymentsSpec
from streamgate.venue.traders import Traders, TradersSpec

__all__ = ["DEMO_MARKETS", "DEMO_TENANT", "DemoVenue", "VenueSpec"]

log = logging.getLogger("streamgate.venue")

DEMO_TENANT = "demo"

DEMO_MARKETS = (
    MarketSpec(
        market_addr="0x" + "b7c" * 21 + "1",
        symbol="BTC-PERP",
        price_decimals=2,
        size_decimals=4,
        tick=50,
        lot=10,
        maker_fee_bps=-1,
        taker_fee_bps=5,
        max_leverage=50,
        initial_price=6_500_000,
        maintenance_margin_bps=50,
    ),
    MarketSpec(
        market_addr="0x" + "e7a" * 21 + "2",
        symbol="ETH-PERP",
        price_decimals=2,
        size_decimals=3,
        tick=5,
        lot=10,
        maker_fee_bps=-1,
        taker_fee_bps=5,
        max_leverage=25,
        initial_price=320_000,
        maintenance_margin_bps=100,
    ),
)


@dataclass(frozen=True, slots=True)
class VenueSpec:
    rate: float = 5.0  # trader ticks per second
    payments_every: int = 3  # a payments step every this many ticks
    seed: int | None = None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class DemoVenue:
    """Runs the simulation and takes a person's orders; publishes everything."""

    def __init__(
        self,
        base_url: str,
        producer_key: str,
        *,
        markets: Sequence[MarketSpec] = DEMO_MARKETS,
        spec: VenueSpec = VenueSpec(),
        sub_users: tuple[str, ...] = ("alice", "bob", "carol", "dave"),
    ) -> None:
        self.markets = list(markets)
        self.spec = spec
        self.engine = Engine(self.markets, clock_ms=_now_ms)
        self.traders = Traders(self.engine, self.markets, TradersSpec(seed=spec.seed))
        self.payments = PaymentsSimulator(
            PaymentsSpec(tenants=(DEMO_TENANT,), sub_users=sub_users, seed=spec.seed),
            clock_ms=_now_ms,
        )
        self.sub_users = sub_users
        # One retry (keyed: never delivered twice): the lock is held across a publish, and
        # a batch still refused resynchronises the books below.
        self._client = Producer(base_url, producer_key, retries=1)
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Publish snapshots, then tick at ``spec.rate`` until cancelled."""
        try:
            await self._publish(self.engine.snapshot_events() + self.engine.ticker_events())
            ticks = 0
            period = 1.0 / self.spec.rate
            while True:
                await asyncio.sleep(period)
                ticks += 1
                async with self._lock:
                    events = self.traders.tick()
                    if ticks % max(1, round(self.spec.rate)) == 0:
                        events.extend(self.engine.ticker_events())
                    await self._publish(events)
                if ticks % self.spec.payments_every == 0:
                    await self._publish(self.payments.step())
        finally:
            await self._client.close()

    async def place(self, user: str, market_addr: str, side: str, size: int, **kw: Any) -> Placed:
        """A person's order (``POST /demo/orders``): engine step and publish, in order."""
        async with self._lock:
            placed = self.engine.place(user, market_addr, side, size, **kw)
            await self._publish(placed.events)
        return placed

    async def cancel(self, user: str, market_addr: str, sid: str) -> bool:
        async with self._lock:
            events = self.engine.cancel(user, market_addr, sid)
            await self._publish(events)
        return bool(events)

    async def _publish(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), 1000):
            try:
                await self._client.publish(*events[start : start + 1000])
            except PublishError as exc:
                # A refused batch means the engine and the gateway disagree (a bug or a
                # restarted gateway): log it, and resynchronise the books with snapshots.
                log.error("! demo venue batch refused: %s", exc)
                await self._client.publish(*self.engine.snapshot_events())
                return
