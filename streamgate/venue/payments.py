"""Simulated push traffic of a payments and skins-trading platform, sans-I/O.

:class:`PaymentsSimulator` plays the platform's side of the push protocol (PROTOCOL.md
section 1) for a few demo tenants and sub-users. Each :meth:`~PaymentsSimulator.step`
returns the next few push events, ready for the producer API (``{"event", "tenant",
"sub_user", "data"}``, PROTOCOL.md section 4): it advances the lifecycles in flight and
may start new ones, up to ``PaymentsSpec.max_in_flight`` at once.

Lifecycles (one event per transition; a lifecycle moves at most once per step):

- gateway-hosted deposit (``fundingId``): ``deposit.transfer`` (pending) ->
  ``deposit.completed`` | ``deposit.failed`` (``expired``, ``failed`` or ``partial``);
  a failed one is sometimes followed by ``deposit.refunded``. ``payAmountToken`` is the
  transfer's ``amount``; ``receiveAmountUsd`` is that less the gateway's fee.
- self-hosted crypto deposit (``depositId``): ``deposit.pending`` -> ``deposit.completed``
  once the transaction has the chain's confirmations (they grow by a few blocks a step)
  | ``deposit.failed`` (dropped in a reorganization before that, or below the minimum
  deposit). ``amountWei`` (18-decimal base units) and ``amountUsdCents`` agree at the
  token's fixed price (:data:`TOKEN_USD_CENTS`): ``cents == wei * price // 10**18``.
- trade: ``trade.<status>`` with the full Trade object on every transition:
  ``initiated -> pending -> active -> hold? -> completed``, or ``failed``, ``canceled``,
  ``declined`` or ``reverted`` (from ``hold``, with ``revertedBy``) on the way. The id,
  items, ``totalPrice`` (the items' sum) and ``createdAt`` stay; ``updatedAt`` follows the
  clock (never backwards); ``summary`` counts the items by status; failed items carry an
  item error code (and stay failed), items still open when a trade ends otherwise than
  ``completed`` become ``canceled``, and such a trade carries an ``error``; ``offerId``
  appears once the trade offer is sent (``active``), ``holdEndDate`` on ``hold`` (7 days
  ahead: Steam's trade protection, though the demo moves on long before), ``settledAt``
  on ``completed``.

Now and then a ``system.notice`` goes to one sub-user, rarely to a whole tenant (no
``sub_user``: the gateway fans it out). Timestamps are ISO-8601 UTC from ``clock_ms``.
With ``PaymentsSpec.seed`` set, the same clock readings give the same events.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "CHAIN_CONFIRMATIONS",
    "TOKEN_USD_CENTS",
    "PaymentsSimulator",
    "PaymentsSpec",
]

# -- the simulated world ---------------------------------------------------------------

#: Fixed USD prices, in cents, of the tokens self-hosted crypto deposits arrive in.
TOKEN_USD_CENTS: dict[str, int] = {
    "ETH": 250_000,
    "BNB": 60_000,
    "USDT": 100,
    "USDC": 100,
    "DAI": 100,
}
#: Confirmations a self-hosted crypto deposit needs before it completes, per chain.
CHAIN_CONFIRMATIONS: dict[str, int] = {
    "ETH": 12,
    "BSC": 15,
    "POLYGON": 64,
    "ARBITRUM": 20,
    "BASE": 20,
}
# New blocks on each chain per step (min, max): a step is a beat of the demo, not real time.
_BLOCKS_PER_STEP: dict[str, tuple[int, int]] = {
    "ETH": (0, 2),
    "BSC": (1, 4),
    "POLYGON": (4, 12),
    "ARBITRUM": (5, 15),
    "BASE": (2, 6),
}
# (chain, token) of self-hosted deposits; every one of these tokens has 18 decimals there.
_CRYPTO_ROUTES: tuple[tuple[str, str], ...] = (
    ("ETH", "ETH"),
    ("ETH", "DAI"),
    ("BSC", "USDT"),
    ("BSC", "USDC"),
    ("BSC", "BNB"),
    ("ARBITRUM", "ETH"),
    ("BASE", "ETH"),
    ("POLYGON", "DAI"),
)
_WEI = 10**18
_MIN_DEPOSIT_CENTS = 500
# Gateway-hosted routes (chain, token); Gate Pay settles off chain: no chain, no txHash.
_GATEWAY_ROUTES: tuple[tuple[str | None, str], ...] = (
    ("TRON", "USDT"),
    ("ETH", "USDC"),
    ("BSC", "USDT"),
    ("POLYGON", "USDC"),
    (None, "USDT"),
)
_GATEWAY_FEE_BP = 100  # basis points the gateway keeps
_DEPOSIT_USD = (10, 20, 25, 50, 50, 100, 100, 250, 500, 1000)

_STEAM_ID64_BASE = 76_561_197_960_265_728
_TRADE_HOLD_MS = 7 * 24 * 3600 * 1000
_EUR_PER_USD = 0.92

# CS2 items and a rough USD price each.
_SKINS: tuple[tuple[str, float], ...] = (
    ("AK-47 | Redline", 14.0),
    ("AK-47 | Vulcan", 95.0),
    ("AK-47 | Slate", 3.2),
    ("AWP | Asiimov", 110.0),
    ("AWP | Atheris", 4.5),
    ("AWP | Neo-Noir", 28.0),
    ("M4A1-S | Printstream", 160.0),
    ("M4A1-S | Hyper Beast", 18.0),
    ("M4A4 | The Emperor", 22.0),
    ("M4A4 | Desolate Space", 9.0),
    ("USP-S | Kill Confirmed", 42.0),
    ("USP-S | Cortex", 2.4),
    ("Glock-18 | Water Elemental", 6.5),
    ("Glock-18 | Vogue", 7.8),
    ("Desert Eagle | Printstream", 38.0),
    ("Desert Eagle | Code Red", 45.0),
    ("P250 | See Ya Later", 3.1),
    ("MAC-10 | Neon Rider", 4.2),
    ("FAMAS | Commemoration", 8.5),
    ("Galil AR | Chatterbox", 12.0),
)
_KNIVES: tuple[tuple[str, float], ...] = (
    ("★ Karambit | Doppler", 1150.0),
    ("★ Butterfly Knife | Fade", 2400.0),
    ("★ M9 Bayonet | Tiger Tooth", 980.0),
    ("★ Talon Knife | Slaughter", 760.0),
    ("★ Sport Gloves | Vice", 3100.0),
)
_WEARS: tuple[tuple[str, float], ...] = (
    ("Factory New", 1.6),
    ("Minimal Wear", 1.2),
    ("Field-Tested", 1.0),
    ("Well-Worn", 0.85),
    ("Battle-Scarred", 0.75),
)
_PLAIN_ITEMS: tuple[tuple[str, float], ...] = (
    ("Kilowatt Case", 0.95),
    ("Revolution Case", 0.55),
    ("Dreams & Nightmares Case", 1.4),
    ("Sticker | Natus Vincere | Copenhagen 2024", 0.35),
    ("Sticker | Crown (Foil)", 410.0),
    ("Operation Breakout Weapon Case", 7.2),
)

_PURCHASE_ERRORS = (
    "LISTING_UNAVAILABLE",
    "NO_LISTING_AT_PRICE",
    "PRICE_CHANGED",
    "PURCHASE_FAILED",
)
_ACCOUNT_ERRORS = ("TRADE_URL_INVALID", "STEAM_ACCOUNT_RESTRICTED", "BUYER_TRADE_RESTRICTED")
_ITEM_ERROR_MESSAGES = {
    "LISTING_UNAVAILABLE": "the listing was sold or removed before the purchase",
    "NO_LISTING_AT_PRICE": "no listing at or below the accepted price",
    "PRICE_CHANGED": "the listing's price rose above the accepted price",
    "TRADE_URL_INVALID": "the Steam trade URL is invalid or was regenerated",
    "STEAM_ACCOUNT_RESTRICTED": "the Steam account cannot trade right now",
    "BUYER_TRADE_RESTRICTED": "the buyer's Steam account is under a trade restriction",
    "MARKET_UNAVAILABLE": "the marketplace is not answering",
    "PURCHASE_FAILED": "the purchase failed",
}

_NOTICES: tuple[tuple[str, str], ...] = (
    ("info", "Your daily deposit limit was raised to 5,000.00 USD"),
    ("info", "A new device signed in to your account"),
    ("warning", "Steam trade offers are slow right now; deliveries may take longer"),
    ("warning", "Your Steam trade URL will need to be refreshed within 7 days"),
    ("critical", "Trading is paused on your account pending a security review"),
)
_TENANT_NOTICES: tuple[tuple[str, str], ...] = (
    ("info", "Scheduled maintenance at 02:00 UTC: deposits pause for about 10 minutes"),
    ("warning", "TRON deposits are delayed by network congestion"),
    ("critical", "Steam is not answering: trades are paused until it recovers"),
)

# -- odds (per step or per transition) ------------------------------------------------------

_NOTICE_ODDS = 0.03
_TENANT_NOTICE_ODDS = 0.006
_KINDS = ("trade", "gateway", "crypto")
_KIND_WEIGHTS = (2, 1, 1)


# -- the spec ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentsSpec:
    """Who the simulated platform serves and how busy it is.

    ``tenants`` are tenant names (1..64 of ``A-Z a-z 0-9 _ . -``); every tenant has the
    same ``sub_users`` (On-Behalf-Of ids: 1..128 characters, no ``:``, whitespace or
    control characters). At most ``max_in_flight`` lifecycles run at once. ``seed``
    makes the simulation repeatable (None: seeded from the operating system).
    """

    tenants: tuple[str, ...] = ("demo",)
    sub_users: tuple[str, ...] = ("alice", "bob", "carol", "dave")
    seed: int | None = None
    max_in_flight: int = 12

    def __post_init__(self) -> None:
        if not self.tenants or not self.sub_users:
            raise ValueError("PaymentsSpec needs at least one tenant and one sub-user")
        for tenant in self.tenants:
            if not _is_tenant(tenant):
                raise ValueError(f"not a tenant name: {tenant!r}")
        for sub_user in self.sub_users:
            if not _is_sub_user(sub_user):
                raise ValueError(f"not a sub-user id: {sub_user!r}")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")


def _is_tenant(name: str) -> bool:
    return (
        isinstance(name, str)
        and 1 <= len(name) <= 64
        and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)
    )


def _is_sub_user(name: str) -> bool:
    return (
        isinstance(name, str)
        and 1 <= len(name) <= 128
        and not any(
            c == ":" or c.isspace() or unicodedata.category(c) in {"Cc", "Cf", "Zs", "Zl", "Zp"}
            for c in name
        )
    )


# -- formatting -----------------------------------------------------------------------------


def _iso(ms: int) -> str:
    """``2024-05-01T12:00:00.123Z`` for a Unix time in milliseconds."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{ms % 1000:03d}Z"
    )


def _decimal(units: int, places: int) -> str:
    """``units`` of ``10**-places`` as a decimal string: ``_decimal(2550, 2) == "25.50"``."""
    whole, frac = divmod(units, 10**places)
    return f"{whole}.{frac:0{places}d}"


def _hex(rng: random.Random, chars: int) -> str:
    return f"{rng.getrandbits(chars * 4):0{chars}x}"


def _tx_hash(rng: random.Random) -> str:
    return "0x" + _hex(rng, 64)


# -- lifecycles ---------------------------------------------------------------------------------


class _Lifecycle:
    """One deposit or trade: emits one event per transition until it is ``done``."""

    __slots__ = ("done", "sub_user", "tenant", "wait")

    def __init__(self, tenant: str, sub_user: str) -> None:
        self.tenant = tenant
        self.sub_user = sub_user
        self.wait = 0  # steps until the next transition
        self.done = False

    def tick(self, rng: random.Random) -> bool:
        """Let one step pass; tell whether the next transition is due."""
        self.wait -= 1
        return self.wait <= 0

    def hurry(self) -> None:
        """Make the next transition due now."""
        self.wait = 0

    def advance(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        """Make the next transition; return its event name and data."""
        raise NotImplementedError

    def _pause(self, rng: random.Random, low: int = 1, high: int = 4) -> None:
        self.wait = rng.randint(low, high)


class _GatewayDeposit(_Lifecycle):
    __slots__ = ("chain", "funding_id", "invoice", "paid", "stage", "token", "tx_hash")

    def __init__(self, tenant: str, sub_user: str, funding_id: str, rng: random.Random) -> None:
        super().__init__(tenant, sub_user)
        self.funding_id = funding_id
        self.chain, self.token = rng.choice(_GATEWAY_ROUTES)
        self.tx_hash = None if self.chain is None else _tx_hash(rng)
        self.invoice = rng.choice(_DEPOSIT_USD) * 1_000_000  # token micro-units, 6 decimals
        self.paid = self.invoice
        self.stage = "new"

    def advance(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        if self.stage == "new":
            if rng.random() < 0.12:  # underpaid
                self.paid = self.invoice * rng.randint(20, 95) // 100
            self.stage = "pending"
            self._pause(rng, 1, 5)
            transfer = {
                "txHash": self.tx_hash,
                "amount": _decimal(self.paid, 6),
                "chain": self.chain,
            }
            return "deposit.transfer", {
                "fundingId": self.funding_id,
                "status": "pending",
                "transfer": transfer,
            }
        if self.stage == "pending":
            failure = self._failure(rng)
            if failure is None:
                self.done = True
                receive_cents = self.paid * (10_000 - _GATEWAY_FEE_BP) // 10_000 // 10_000
                return "deposit.completed", {
                    "fundingId": self.funding_id,
                    "status": "completed",
                    "payAmountToken": _decimal(self.paid, 6),
                    "receiveAmountUsd": _decimal(receive_cents, 2),
                    "completedAt": _iso(now_ms),
                }
            status, reason = failure
            self.stage = "failed"
            self.done = rng.random() < 0.5  # otherwise the funds go back: deposit.refunded
            self._pause(rng, 2, 6)
            return "deposit.failed", {
                "fundingId": self.funding_id,
                "status": status,
                "reason": reason,
            }
        self.done = True
        return "deposit.refunded", {"fundingId": self.funding_id, "status": "refunded"}

    def _failure(self, rng: random.Random) -> tuple[str, str] | None:
        if self.paid < self.invoice:
            got, want = _decimal(self.paid, 6), _decimal(self.invoice, 6)
            return "partial", f"underpaid: received {got} of {want} {self.token}"
        roll = rng.random()
        if roll < 0.09:
            return "expired", "the transfer arrived after the payment window expired"
        if roll < 0.18:
            return "failed", rng.choice(
                (
                    "the payment was rejected by the provider's risk check",
                    "the transfer was reverted on chain",
                    "the payment provider declined the payment",
                )
            )
        return None


class _CryptoDeposit(_Lifecycle):
    __slots__ = (
        "cents",
        "chain",
        "confirmations",
        "deposit_id",
        "fail_at",
        "reason",
        "started",
        "token",
        "tx_hash",
        "wei",
    )

    def __init__(self, tenant: str, sub_user: str, deposit_id: str, rng: random.Random) -> None:
        super().__init__(tenant, sub_user)
        self.deposit_id = deposit_id
        self.chain, self.token = rng.choice(_CRYPTO_ROUTES)
        self.tx_hash = _tx_hash(rng)
        price = TOKEN_USD_CENTS[self.token]
        if rng.random() < 0.06:
            cents = rng.randint(50, _MIN_DEPOSIT_CENTS - 1)
        else:
            cents = rng.choice(_DEPOSIT_USD) * 100 + rng.choice((0, 0, rng.randint(1, 99)))
        # The most wei still worth ``cents`` less a random dust, so the cents read back.
        low = -(-cents * _WEI // price)  # ceil: the fewest wei worth ``cents``
        high = (cents + 1) * _WEI // price - (1 if (cents + 1) * _WEI % price == 0 else 0)
        self.wei = rng.randint(low, max(low, high))
        self.cents = self.wei * price // _WEI
        required = CHAIN_CONFIRMATIONS[self.chain]
        self.reason: str | None = None
        self.fail_at = required
        if self.cents < _MIN_DEPOSIT_CENTS:
            self.reason = f"below the minimum deposit of {_decimal(_MIN_DEPOSIT_CENTS, 2)} USD"
        elif rng.random() < 0.12:
            self.fail_at = rng.randint(0, min(required - 1, 6))
            self.reason = "the transaction was dropped in a chain reorganization"
        self.confirmations = 0
        self.started = False

    def tick(self, rng: random.Random) -> bool:
        if not self.started:
            return True
        low, high = _BLOCKS_PER_STEP[self.chain]
        self.confirmations += rng.randint(low, high)
        return self.confirmations >= self.fail_at

    def hurry(self) -> None:
        self.confirmations = max(self.confirmations, self.fail_at)

    def advance(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        onchain = {
            "depositId": self.deposit_id,
            "chain": self.chain,
            "token": self.token,
            "txHash": self.tx_hash,
        }
        if not self.started:
            self.started = True
            return "deposit.pending", {**onchain, "amountWei": str(self.wei)}
        self.done = True
        if self.reason is not None:
            return "deposit.failed", {
                **onchain,
                "reason": self.reason,
                "confirmations": min(self.confirmations, self.fail_at),
            }
        return "deposit.completed", {
            **onchain,
            "amountWei": str(self.wei),
            "amountUsdCents": str(self.cents),
            "confirmations": self.confirmations,
            "completedAt": _iso(now_ms),
        }


@dataclass(slots=True)
class _Item:
    id: str
    name: str
    price: int  # cents
    status: str = "pending"
    error: str | None = None

    def fail(self, code: str) -> None:
        self.status = "failed"
        self.error = code

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "price": _decimal(self.price, 2),
            "status": self.status,
        }
        if self.error is not None:
            out["error"] = {"code": self.error, "message": _ITEM_ERROR_MESSAGES[self.error]}
        return out


@dataclass(slots=True)
class _Account:
    steam_id: str
    trade_url: str


class _Trade(_Lifecycle):
    __slots__ = (
        "account",
        "created_ms",
        "currency",
        "error",
        "external_id",
        "hold_end_ms",
        "id",
        "items",
        "offer_id",
        "reverted_by",
        "settled_ms",
        "status",
        "type",
        "updated_ms",
    )

    def __init__(
        self,
        tenant: str,
        sub_user: str,
        trade_id: str,
        account: _Account,
        rng: random.Random,
        now_ms: int,
    ) -> None:
        super().__init__(tenant, sub_user)
        self.id = trade_id
        self.account = account
        self.type = "buy" if rng.random() < 0.8 else "sell"
        self.currency = "USD" if rng.random() < 0.75 else "EUR"
        self.items = _pick_items(rng, 1.0 if self.currency == "USD" else _EUR_PER_USD)
        self.external_id = f"order-{rng.randrange(10**6, 10**7)}" if rng.random() < 0.5 else None
        self.offer_id: str | None = None
        self.status = "new"
        self.created_ms = now_ms
        self.updated_ms = now_ms
        self.hold_end_ms: int | None = None
        self.settled_ms: int | None = None
        self.reverted_by: str | None = None
        self.error: tuple[str, str] | None = None

    def advance(self, rng: random.Random, now_ms: int) -> tuple[str, dict[str, Any]]:
        self.updated_ms = max(self.updated_ms, now_ms)
        move = {
            "new": self._initiate,
            "initiated": self._from_initiated,
            "pending": self._from_pending,
            "active": self._from_active,
            "hold": self._from_hold,
        }[self.status]
        move(rng)
        self.done = self.status in ("completed", "failed", "canceled", "declined", "reverted")
        self._pause(rng)
        return f"trade.{self.status}", self.to_json()

    def _initiate(self, rng: random.Random) -> None:
        self.status = "initiated"

    def _from_initiated(self, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.04:
            self._end("canceled", "CANCELED_BY_USER", "the user canceled the trade")
        elif roll < 0.08:
            for item in self.items:
                item.fail("MARKET_UNAVAILABLE")
            self._end("failed", "MARKET_UNAVAILABLE", "the marketplace is not answering")
        else:
            if self.type == "buy":  # items bought one by one: some may be gone or dearer
                for item in self.items:
                    if rng.random() < 0.12:
                        item.fail(rng.choice(_PURCHASE_ERRORS))
            if all(item.status == "failed" for item in self.items):
                self._end("failed", "PURCHASE_FAILED", "no item of the trade could be bought")
            else:
                self.status = "pending"

    def _from_pending(self, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.08:
            code = rng.choice(_ACCOUNT_ERRORS)
            self._fail_open(code)
            self._end("failed", code, _ITEM_ERROR_MESSAGES[code])
        elif roll < 0.14:
            self._end("canceled", "OFFER_NOT_SENT", "the seller did not send the trade offer")
        else:
            self.offer_id = str(rng.randrange(5_000_000_000, 8_000_000_000))
            self.status = "active"

    def _from_active(self, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.14:
            self._end("declined", "OFFER_DECLINED", "the trade offer was declined")
        elif roll < 0.19:
            self._end("canceled", "OFFER_EXPIRED", "the trade offer expired unanswered")
        elif roll < 0.24:
            self._fail_open("PURCHASE_FAILED")
            self._end("failed", "DELIVERY_FAILED", "Steam refused the trade offer")
        elif roll < 0.62:
            self._set_open("delivered")
            self.hold_end_ms = self.updated_ms + _TRADE_HOLD_MS
            self.status = "hold"
        else:
            self._complete()

    def _from_hold(self, rng: random.Random) -> None:
        if rng.random() < 0.22:
            self.reverted_by = "supplier" if rng.random() < 0.6 else "user"
            self._set_open("canceled")
            self.status = "reverted"
            self.error = ("TRADE_REVERTED", f"the trade was reversed by the {self.reverted_by}")
        else:
            self._complete()

    def _complete(self) -> None:
        self._set_open("completed")
        self.settled_ms = self.updated_ms
        self.status = "completed"

    def _end(self, status: str, code: str, message: str) -> None:
        """End the trade with an error; its items still open are canceled."""
        self._set_open("canceled")
        self.status = status
        self.error = (code, message)

    def _set_open(self, status: str) -> None:
        for item in self.items:
            if item.status in ("pending", "delivered"):
                item.status = status

    def _fail_open(self, code: str) -> None:
        for item in self.items:
            if item.status in ("pending", "delivered"):
                item.fail(code)

    def to_json(self) -> dict[str, Any]:
        items = [item.to_json() for item in self.items]
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "userId": self.sub_user,
            "steamId": self.account.steam_id,
            "tradeUrl": self.account.trade_url,
        }
        if self.offer_id is not None:
            out["offerId"] = self.offer_id
        if self.external_id is not None:
            out["externalId"] = self.external_id
        out["status"] = self.status
        out["game"] = "cs2"
        out["items"] = items
        out["summary"] = {
            "total": len(items),
            **{
                count: sum(1 for item in self.items if item.status == count)
                for count in ("delivered", "completed", "failed")
            },
        }
        out["totalPrice"] = _decimal(sum(item.price for item in self.items), 2)
        out["currency"] = self.currency
        if self.hold_end_ms is not None:
            out["holdEndDate"] = _iso(self.hold_end_ms)
        if self.settled_ms is not None:
            out["settledAt"] = _iso(self.settled_ms)
        if self.reverted_by is not None:
            out["revertedBy"] = self.reverted_by
        if self.error is not None:
            out["error"] = {"code": self.error[0], "message": self.error[1]}
        out["createdAt"] = _iso(self.created_ms)
        out["updatedAt"] = _iso(self.updated_ms)
        return out


def _pick_items(rng: random.Random, rate: float) -> list[_Item]:
    """1..6 CS2 items priced in the trade's currency (``rate`` per USD), distinct ids."""
    items: list[_Item] = []
    ids: set[str] = set()
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 6))):
        roll = rng.random()
        if roll < 0.17:
            name, usd = rng.choice(_PLAIN_ITEMS)
        else:
            knife = roll < 0.25
            base, usd = rng.choice(_KNIVES if knife else _SKINS)
            wear, factor = rng.choice(_WEARS)
            usd *= factor
            name = f"{base} ({wear})"
            if not knife and rng.random() < 0.15:
                name = f"StatTrak™ {name}"
                usd *= 2.2
        cents = max(3, round(usd * rate * rng.uniform(0.9, 1.1) * 100))
        item_id = str(rng.randrange(10**10, 10**11))  # a Steam asset id
        while item_id in ids:
            item_id = str(rng.randrange(10**10, 10**11))
        ids.add(item_id)
        items.append(_Item(item_id, name, cents))
    return items


# -- the simulator ---------------------------------------------------------------------------


class PaymentsSimulator:
    """The push traffic of a payments and skins-trading platform, one step at a time.

    Pure: no I/O, no clock of its own (``clock_ms`` gives Unix milliseconds for the
    timestamps in the payloads), no threads. See the module docstring for the lifecycles.
    """

    __slots__ = ("_accounts", "_clock_ms", "_live", "_rng", "_serial", "_spec")

    def __init__(self, spec: PaymentsSpec, *, clock_ms: Callable[[], int]) -> None:
        self._spec = spec
        self._clock_ms = clock_ms
        self._rng = random.Random(spec.seed)
        self._live: list[_Lifecycle] = []
        self._accounts: dict[tuple[str, str], _Account] = {}
        self._serial = 0

    @property
    def spec(self) -> PaymentsSpec:
        return self._spec

    def in_flight(self) -> int:
        """The lifecycles (deposits and trades) started and not finished."""
        return len(self._live)

    def step(self, *, start: bool = True) -> list[dict[str, Any]]:
        """Return the next push events, each ready for the producer API's ``events``.

        Every lifecycle in flight whose next transition is due moves once; then, with
        ``start``, new lifecycles may begin (while under ``max_in_flight``) and a
        ``system.notice`` may go out. The list is never empty while ``start`` is true or
        a lifecycle is in flight (one is hurried if none was due); ``start=False`` lets
        the traffic drain to nothing.
        """
        rng = self._rng
        spec = self._spec
        now = self._clock_ms()
        events = [self._emit(lc, now) for lc in self._live if lc.tick(rng)]
        if start:
            for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
                if len(self._live) < spec.max_in_flight:
                    events.append(self._start(now))
            if rng.random() < _NOTICE_ODDS:
                severity, message = rng.choice(_NOTICES)
                events.append(
                    {
                        "event": "system.notice",
                        "tenant": rng.choice(spec.tenants),
                        "sub_user": rng.choice(spec.sub_users),
                        "data": {"severity": severity, "message": message},
                    }
                )
            if rng.random() < _TENANT_NOTICE_ODDS:  # no sub_user: the whole tenant
                severity, message = rng.choice(_TENANT_NOTICES)
                events.append(
                    {
                        "event": "system.notice",
                        "tenant": rng.choice(spec.tenants),
                        "data": {"severity": severity, "message": message},
                    }
                )
        if not events:
            if start and len(self._live) < spec.max_in_flight:
                events.append(self._start(now))
            elif self._live:
                lc = self._live[0]
                lc.hurry()
                events.append(self._emit(lc, now))
        self._live = [lc for lc in self._live if not lc.done]
        return events

    def _emit(self, lc: _Lifecycle, now: int) -> dict[str, Any]:
        name, data = lc.advance(self._rng, now)
        return {"event": name, "tenant": lc.tenant, "sub_user": lc.sub_user, "data": data}

    def _start(self, now: int) -> dict[str, Any]:
        rng = self._rng
        tenant = rng.choice(self._spec.tenants)
        sub_user = rng.choice(self._spec.sub_users)
        kind = rng.choices(_KINDS, weights=_KIND_WEIGHTS)[0]
        lc: _Lifecycle
        if kind == "trade":
            account = self._account(tenant, sub_user)
            lc = _Trade(tenant, sub_user, self._new_id("tr_"), account, rng, now)
        elif kind == "gateway":
            lc = _GatewayDeposit(tenant, sub_user, self._new_id("fund_"), rng)
        else:
            lc = _CryptoDeposit(tenant, sub_user, self._new_id("dep_"), rng)
        self._live.append(lc)
        return self._emit(lc, now)

    def _new_id(self, prefix: str) -> str:
        """A new id: a serial number (unique without remembering ids) and random digits."""
        self._serial += 1
        return f"{prefix}{self._serial:08x}{_hex(self._rng, 16)}"

    def _account(self, tenant: str, sub_user: str) -> _Account:
        """The sub-user's Steam account: the same SteamID64 and trade URL on every trade."""
        key = (tenant, sub_user)
        account = self._accounts.get(key)
        if account is None:
            rng = self._rng
            account_id = rng.randrange(10_000_000, 1_500_000_000)
            alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
            token = "".join(rng.choice(alphabet) for _ in range(8))
            account = _Account(
                steam_id=str(_STEAM_ID64_BASE + account_id),
                trade_url=(
                    f"https://steamcommunity.com/tradeoffer/new/?partner={account_id}&token={token}"
                ),
            )
            self._accounts[key] = account
        return account
