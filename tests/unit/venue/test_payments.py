"""Demo venue push traffic: deposit and trade lifecycles a producer API accepts."""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
import pytest

from streamgate.protocol.producer import (
    TRADE_ITEM_ERROR_CODES,
    TRADE_STATUSES,
    parse_batch,
)
from streamgate.venue.payments import (
    CHAIN_CONFIRMATIONS,
    TOKEN_USD_CENTS,
    PaymentsSimulator,
    PaymentsSpec,
)

SEEDS = (0, 1, 2, 3, 4)
STEPS = 500
DRAIN_STEPS = 2000
START_MS = 1_714_564_800_000  # 2024-05-01T12:00:00Z
SPEC_FIELDS = {"event", "tenant", "sub_user", "data"}
TX_HASH = re.compile(r"0x[0-9a-f]{64}")
STEAM_ID64_BASE = 76_561_197_960_265_728
TRADE_URL = re.compile(
    r"https://steamcommunity\.com/tradeoffer/new/\?partner=([0-9]+)&token=[\w-]{8}"
)

# Allowed transitions, from the brief and PROTOCOL.md section 1; None is "not started".
GATEWAY = {
    None: {"deposit.transfer"},
    "deposit.transfer": {"deposit.completed", "deposit.failed"},
    "deposit.failed": {"deposit.refunded"},
}
GATEWAY_END = {"deposit.completed", "deposit.failed", "deposit.refunded"}
CRYPTO = {
    None: {"deposit.pending"},
    "deposit.pending": {"deposit.completed", "deposit.failed"},
}
CRYPTO_END = {"deposit.completed", "deposit.failed"}
TRADE = {
    None: {"initiated"},
    "initiated": {"pending", "failed", "canceled"},
    "pending": {"active", "failed", "canceled", "declined"},
    "active": {"hold", "completed", "failed", "canceled", "declined"},
    "hold": {"completed", "reverted", "failed"},
}
TRADE_END = {"completed", "failed", "canceled", "declined", "reverted"}
# Item statuses a trade in each status may hold (failed items stay failed).
ITEMS_BY_TRADE = {
    "initiated": {"pending"},
    "pending": {"pending", "failed"},
    "active": {"pending", "failed"},
    "hold": {"delivered", "failed"},
    "completed": {"completed", "failed"},
    "failed": {"failed"},
    "canceled": {"canceled", "failed"},
    "declined": {"canceled", "failed"},
    "reverted": {"canceled", "failed"},
}


class Clock:
    """A clock that moves 50..1500 ms between steps (the simulator reads it once a step)."""

    def __init__(self, seed: int) -> None:
        self.now = START_MS
        self._rng = random.Random(seed)

    def __call__(self) -> int:
        return self.now

    def tick(self) -> None:
        self.now += self._rng.randint(50, 1500)


def iso(ms: int) -> str:
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@dataclass
class Life:
    """One lifecycle as observed: its events in order, each with the clock of its step."""

    kind: str  # gateway, crypto, trade
    tenant: str
    sub_user: str
    events: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)

    @property
    def states(self) -> list[str]:
        if self.kind == "trade":
            return [data["status"] for _, data, _ in self.events]
        return [name for name, _, _ in self.events]


@dataclass
class Run:
    spec: PaymentsSpec
    batches: list[tuple[list[dict[str, Any]], int]] = field(default_factory=list)
    lives: dict[str, Life] = field(default_factory=dict)
    notices: list[dict[str, Any]] = field(default_factory=list)
    max_in_flight: int = 0
    in_flight_at_end: int = 0  # before draining
    # before draining: lifecycles seen in a state that must move on, and failed gateway
    # deposits (a refund may or may not follow)
    open_at_end: int = 0
    maybe_open_at_end: int = 0
    drained: bool = False


def record(run: Run, batch: list[dict[str, Any]], now: int) -> None:
    run.batches.append((batch, now))
    for event in batch:
        name, data = event["event"], event["data"]
        if name == "system.notice":
            run.notices.append(event)
            continue
        if name.startswith("trade."):
            key, kind = data["id"], "trade"
        elif "fundingId" in data:
            key, kind = data["fundingId"], "gateway"
        else:
            key, kind = data["depositId"], "crypto"
        life = run.lives.setdefault(key, Life(kind, event["tenant"], event["sub_user"]))
        assert (life.kind, life.tenant, life.sub_user) == (kind, event["tenant"], event["sub_user"])
        life.events.append((name, data, now))


def final(life: Life) -> bool:
    ends = {"gateway": GATEWAY_END, "crypto": CRYPTO_END, "trade": TRADE_END}[life.kind]
    return life.states[-1] in ends


def simulate(spec: PaymentsSpec, steps: int = STEPS) -> Run:
    clock = Clock(spec.seed or 0)
    sim = PaymentsSimulator(spec, clock_ms=clock)
    run = Run(spec)
    for _ in range(steps):
        clock.tick()
        batch = sim.step()
        assert batch, "a step with start=True always has events"
        record(run, batch, clock.now)
        run.max_in_flight = max(run.max_in_flight, sim.in_flight())
    run.in_flight_at_end = sim.in_flight()
    run.open_at_end = sum(1 for life in run.lives.values() if not final(life))
    run.maybe_open_at_end = sum(
        1
        for life in run.lives.values()
        if life.kind == "gateway" and life.states[-1] == "deposit.failed"
    )
    for _ in range(DRAIN_STEPS):
        if sim.in_flight() == 0:
            run.drained = True
            break
        clock.tick()
        batch = sim.step(start=False)
        assert batch, "a step always has events while lifecycles are in flight"
        record(run, batch, clock.now)
    assert sim.step(start=False) == []
    return run


@cache
def seeded(seed: int) -> Run:
    return simulate(PaymentsSpec(seed=seed))


# -- the producer API accepts every batch -----------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_every_batch_passes_the_producer_api(seed: int) -> None:
    run = seeded(seed)
    assert len(run.batches) >= STEPS
    for batch, now in run.batches:
        assert 1 <= len(batch) <= 20
        parsed = parse_batch(orjson.dumps({"events": batch}), now_ms=now)
        assert len(parsed) == len(batch)
        for event, ev in zip(batch, parsed, strict=True):
            assert set(event) <= SPEC_FIELDS
            assert ev.data == {"event": event["event"], "data": event["data"]}  # nothing to fix


@pytest.mark.parametrize("seed", SEEDS)
def test_lifecycles_follow_allowed_transitions_and_end(seed: int) -> None:
    run = seeded(seed)
    assert run.drained, "every lifecycle finished once no new ones started"
    tables = {"gateway": GATEWAY, "crypto": CRYPTO, "trade": TRADE}
    for key, life in run.lives.items():
        table = tables[life.kind]
        previous: str | None = None
        for state in life.states:
            assert state in table.get(previous, set()), (key, life.states)
            previous = state
        assert final(life), (key, life.states)
        nows = [now for _, _, now in life.events]
        assert nows == sorted(set(nows)), "one transition a step at most, in clock order"


@pytest.mark.parametrize("seed", SEEDS)
def test_in_flight_counts_the_unfinished_and_stays_bounded(seed: int) -> None:
    run = seeded(seed)
    assert 1 <= run.max_in_flight <= run.spec.max_in_flight
    assert run.open_at_end <= run.in_flight_at_end <= run.open_at_end + run.maybe_open_at_end
    assert len(run.lives) > 3 * run.spec.max_in_flight  # lifecycles come and go


def test_a_small_bound_holds() -> None:
    spec = PaymentsSpec(seed=7, max_in_flight=2)
    clock = Clock(7)
    sim = PaymentsSimulator(spec, clock_ms=clock)
    for _ in range(300):
        clock.tick()
        assert sim.step()
        assert sim.in_flight() <= 2


# -- everything shows up ------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_every_kind_of_event_appears(seed: int) -> None:
    run = seeded(seed)
    seen: Counter[str] = Counter()
    for life in run.lives.values():
        for name, _data, _ in life.events:
            if life.kind == "trade":
                seen[name] += 1
            else:
                seen[f"{life.kind} {name}"] += 1
    for status in TRADE_STATUSES:
        assert seen[f"trade.{status}"] > 0, status
    for name in ("deposit.transfer", "deposit.completed", "deposit.failed", "deposit.refunded"):
        assert seen[f"gateway {name}"] > 0, name
    for name in ("deposit.pending", "deposit.completed", "deposit.failed"):
        assert seen[f"crypto {name}"] > 0, name
    assert any("sub_user" in notice for notice in run.notices)


def test_every_gateway_failure_status_and_tenant_wide_notices_appear() -> None:
    statuses = set()
    tenant_wide = 0
    for seed in SEEDS:
        run = seeded(seed)
        for life in run.lives.values():
            for name, data, _ in life.events:
                if name == "deposit.failed" and life.kind == "gateway":
                    statuses.add(data["status"])
        tenant_wide += sum(1 for notice in run.notices if "sub_user" not in notice)
        # notices are occasional, tenant-wide ones rare
        assert len(run.notices) < len(run.batches) / 10
    assert statuses == {"expired", "failed", "partial"}
    assert 0 < tenant_wide < sum(len(seeded(s).notices) for s in SEEDS) / 2


# -- plausible payloads -------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_gateway_deposits(seed: int) -> None:
    for life in seeded(seed).lives.values():
        if life.kind != "gateway":
            continue
        (_, transfer, _), *rest = life.events
        hop = transfer["transfer"]
        assert (hop["chain"] is None) == (hop["txHash"] is None)  # Gate Pay settles off chain
        assert hop["txHash"] is None or TX_HASH.fullmatch(hop["txHash"])
        amount = Decimal(hop["amount"])
        assert amount > 0
        name, data, now = rest[0]
        if name == "deposit.completed":
            assert data["payAmountToken"] == hop["amount"]
            usd = Decimal(data["receiveAmountUsd"])
            assert amount * Decimal("0.95") < usd <= amount  # less the gateway's fee
            assert data["completedAt"] == iso(now)
        else:
            assert data["reason"]
            if data["status"] == "partial":
                assert hop["amount"] in data["reason"]


@pytest.mark.parametrize("seed", SEEDS)
def test_crypto_deposits(seed: int) -> None:
    for life in seeded(seed).lives.values():
        if life.kind != "crypto":
            continue
        (_, pending, _), (name, data, now) = life.events
        onchain = ("depositId", "chain", "token", "txHash")
        assert {k: data[k] for k in onchain} == {k: pending[k] for k in onchain}
        assert TX_HASH.fullmatch(pending["txHash"])
        required = CHAIN_CONFIRMATIONS[pending["chain"]]
        if name == "deposit.completed":
            wei = int(data["amountWei"])
            assert data["amountWei"] == pending["amountWei"]
            assert int(data["amountUsdCents"]) == wei * TOKEN_USD_CENTS[data["token"]] // 10**18
            assert int(data["amountUsdCents"]) >= 500  # the minimum deposit
            assert data["confirmations"] >= required
            assert data["completedAt"] == iso(now)
        elif "minimum" in data["reason"]:
            assert data["confirmations"] == required
            cents = int(pending["amountWei"]) * TOKEN_USD_CENTS[data["token"]] // 10**18
            assert cents < 500
        else:
            assert data["confirmations"] < required


@pytest.mark.parametrize("seed", SEEDS)
def test_trades_carry_the_full_consistent_trade_object(seed: int) -> None:
    accounts: dict[tuple[str, str], tuple[str, str]] = {}
    for key, life in seeded(seed).lives.items():
        if life.kind != "trade":
            continue
        first = life.events[0][1]
        account = accounts.setdefault(
            (life.tenant, life.sub_user), (first["steamId"], first["tradeUrl"])
        )
        url = TRADE_URL.fullmatch(first["tradeUrl"])
        assert url is not None
        assert int(first["steamId"]) - STEAM_ID64_BASE == int(url.group(1))
        items_before: dict[str, dict[str, Any]] = {}
        offer_id = None
        updated = ""
        held = False
        for name, trade, now in life.events:
            status = trade["status"]
            assert name == f"trade.{status}"
            assert trade["id"] == key
            assert trade["userId"] == life.sub_user
            assert (trade["steamId"], trade["tradeUrl"]) == account
            for same in ("type", "game", "currency", "createdAt", "totalPrice"):
                assert trade[same] == first[same]
            assert trade.get("externalId") == first.get("externalId")
            assert trade["updatedAt"] == iso(now)
            assert trade["updatedAt"] > updated  # the clock moved between steps
            assert trade["updatedAt"] >= trade["createdAt"] == first["updatedAt"]
            updated = trade["updatedAt"]
            # items: the same ones, priced alike, statuses moving one way
            items = trade["items"]
            assert [(i["id"], i["name"], i["price"]) for i in items] == [
                (i["id"], i["name"], i["price"]) for i in first["items"]
            ]
            assert Decimal(trade["totalPrice"]) == sum(Decimal(i["price"]) for i in items)
            assert {i["status"] for i in items} <= ITEMS_BY_TRADE[status], (status, items)
            for item in items:
                assert re.fullmatch(r"[0-9]+\.[0-9]{2}", item["price"])
                assert Decimal(item["price"]) > 0
                if item["status"] == "failed":
                    assert item["error"]["code"] in TRADE_ITEM_ERROR_CODES
                    assert item["error"]["message"]
                else:
                    assert "error" not in item
                before = items_before.get(item["id"])
                if before is not None and before["status"] == "failed":
                    assert item == before  # a failed item stays failed, same error
            items_before = {i["id"]: i for i in items}
            counts = Counter(i["status"] for i in items)
            assert trade["summary"] == {
                "total": len(items),
                "delivered": counts["delivered"],
                "completed": counts["completed"],
                "failed": counts["failed"],
            }
            # optional fields when they belong
            if offer_id is not None:
                assert trade["offerId"] == offer_id
            elif status in ("active", "hold"):
                assert re.fullmatch(r"[0-9]{10}", trade["offerId"])
            offer_id = trade.get("offerId")
            held = held or status == "hold"
            assert ("holdEndDate" in trade) == held
            if status == "hold":
                assert trade["holdEndDate"] > trade["updatedAt"]
            assert ("settledAt" in trade) == (status == "completed")
            if status == "completed":
                assert trade["settledAt"] == trade["updatedAt"]
                assert counts["completed"] >= 1
            assert ("revertedBy" in trade) == (status == "reverted")
            if status == "reverted":
                assert trade["revertedBy"] in ("supplier", "user")
            if status in ("failed", "canceled", "declined", "reverted"):
                assert re.fullmatch(r"[A-Z][A-Z0-9_]*", trade["error"]["code"])
                assert trade["error"]["message"]
            else:
                assert "error" not in trade


def test_item_names_look_like_cs2_items() -> None:
    names = {
        item["name"]
        for life in seeded(0).lives.values()
        if life.kind == "trade"
        for _, trade, _ in life.events
        for item in trade["items"]
    }
    wear = re.compile(
        r"(StatTrak™ )?[^|]+ \| [^|()]+ \((Factory New|Minimal Wear|Field-Tested|"
        r"Well-Worn|Battle-Scarred)\)"
    )
    assert any(name.startswith("★ ") for name in names)
    assert any(name.startswith("StatTrak™ ") for name in names)
    assert any(name.endswith(" Case") for name in names)
    assert sum(1 for name in names if wear.fullmatch(name)) > len(names) / 2


# -- determinism, tenants and sub-users, the spec ---------------------------------------------


def _events(spec: PaymentsSpec, steps: int = 200) -> list[list[dict[str, Any]]]:
    clock = Clock(1)
    sim = PaymentsSimulator(spec, clock_ms=clock)
    out = []
    for _ in range(steps):
        clock.tick()
        out.append(sim.step())
    return out


def test_same_seed_same_events_other_seed_other_events() -> None:
    assert _events(PaymentsSpec(seed=42)) == _events(PaymentsSpec(seed=42))
    assert _events(PaymentsSpec(seed=42)) != _events(PaymentsSpec(seed=43))


def test_no_seed_still_works() -> None:
    for batch in _events(PaymentsSpec(), 50):
        parse_batch(orjson.dumps({"events": batch}), now_ms=START_MS)


def test_every_tenant_and_sub_user_gets_traffic() -> None:
    spec = PaymentsSpec(
        tenants=("acme", "globex.eu"), sub_users=("u-1", "user@example.com", "用户"), seed=3
    )
    run = simulate(spec)
    assert run.drained
    seen = {(life.tenant, life.sub_user) for life in run.lives.values()}
    assert seen == {(t, s) for t in spec.tenants for s in spec.sub_users}
    for notice in run.notices:
        assert notice["tenant"] in spec.tenants
        assert notice.get("sub_user", spec.sub_users[0]) in spec.sub_users
    for batch, now in run.batches:
        parse_batch(orjson.dumps({"events": batch}), now_ms=now)


def test_the_clock_is_read_not_kept() -> None:
    """Timestamps follow the clock given, even a frozen one; updatedAt never goes back."""
    sim = PaymentsSimulator(PaymentsSpec(seed=5), clock_ms=lambda: START_MS)
    stamps: set[str] = set()
    for _ in range(100):
        for event in sim.step():
            data = event["data"]
            stamps.update(data[k] for k in ("createdAt", "updatedAt", "completedAt") if k in data)
    assert stamps == {"2024-05-01T12:00:00.000Z"}


def test_returned_events_are_not_changed_later() -> None:
    clock = Clock(9)
    sim = PaymentsSimulator(PaymentsSpec(seed=9), clock_ms=clock)
    kept = []
    for _ in range(200):
        clock.tick()
        batch = sim.step()
        kept.append((batch, orjson.dumps(batch)))
    for batch, dumped in kept:
        assert orjson.dumps(batch) == dumped


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tenants": ()},
        {"sub_users": ()},
        {"tenants": ("a:b",)},
        {"tenants": ("t" * 65,)},
        {"sub_users": ("a b",)},
        {"sub_users": ("a:b",)},
        {"sub_users": ("",)},
        {"sub_users": ("s" * 129,)},
        {"max_in_flight": 0},
    ],
)
def test_spec_refuses_what_the_producer_api_would(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"tenant|sub-user|max_in_flight"):
        PaymentsSpec(**kwargs)


def test_spec_defaults() -> None:
    spec = PaymentsSpec()
    assert spec.tenants == ("demo",)
    assert spec.sub_users == ("alice", "bob", "carol", "dave")
    assert spec.seed is None
    assert spec.max_in_flight >= 1
