"""Producer API push events: deposit, trade and system.notice events for one sub-user."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
import pytest

from streamgate.core import exact_json
from streamgate.core.channels import (
    is_book_channel,
    is_push_channel,
    is_push_tenant_wide,
    market_channel,
    private_channel,
    push_channel,
    push_sub_user,
    push_tenant,
    push_tenant_prefix,
)
from streamgate.core.identifiers import is_tenant_name
from streamgate.errors import ProducerRefusal
from streamgate.protocol.producer import (
    MAX_SUB_USER,
    MAX_TRADE_ITEMS,
    PUSH_EVENTS,
    TRADE_ITEM_ERROR_CODES,
    TRADE_STATUSES,
    ProducerEvent,
    check_book_sequences,
    parse_batch,
)

NOW_MS = 1_700_000_000_123
TENANT = "acme-games.eu_1"
SUB = "user-42"
TX = "0x" + "ab" * 32
AT = "2024-05-01T12:00:00.000Z"


def body(*events: Any) -> bytes:
    return orjson.dumps({"events": list(events)})


def parse(*events: Any) -> list[ProducerEvent]:
    return parse_batch(body(*events), now_ms=NOW_MS)


def refused(*events: Any) -> ProducerRefusal:
    with pytest.raises(ProducerRefusal) as info:
        parse_batch(body(*events), now_ms=NOW_MS)
    return info.value


# -- valid data of every event, keys in PROTOCOL.md's order ---------------------------------


def transfer() -> dict[str, Any]:
    return {
        "fundingId": "fund_1",
        "status": "pending",
        "transfer": {"txHash": TX, "amount": "25.50", "chain": "ETH"},
    }


def pending() -> dict[str, Any]:
    return {
        "depositId": "dep_1",
        "chain": "ETH",
        "token": "USDC",
        "txHash": TX,
        "amountWei": "25500000000000000000",
    }


def gateway_completed() -> dict[str, Any]:
    return {
        "fundingId": "fund_1",
        "status": "completed",
        "payAmountToken": "25.500000",
        "receiveAmountUsd": "25.12",
        "completedAt": AT,
    }


def crypto_completed() -> dict[str, Any]:
    return {
        "depositId": "dep_1",
        "chain": "BSC",
        "token": "USDT",
        "txHash": TX,
        "amountWei": "25500000000000000000",
        "amountUsdCents": "2550",
        "confirmations": 12,
        "completedAt": "2024-05-01T14:00:00+02:00",
    }


def gateway_failed() -> dict[str, Any]:
    return {"fundingId": "fund_1", "status": "expired", "reason": "payment window expired"}


def crypto_failed() -> dict[str, Any]:
    return {
        "depositId": "dep_1",
        "chain": "SOL",
        "token": "USDC",
        "txHash": None,
        "reason": "below minimum deposit",
        "confirmations": 0,
    }


def refunded() -> dict[str, Any]:
    return {"fundingId": "fund_1", "status": "refunded"}


def notice() -> dict[str, Any]:
    return {"severity": "warning", "message": "maintenance at 02:00 UTC"}


def item(n: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"it_{n}",
        "name": "AK-47 | Redline",
        "price": "12.40",
        "status": "pending",
        **extra,
    }


def trade(status: str = "completed", **extra: Any) -> dict[str, Any]:
    return {
        "id": "tr_1",
        "type": "buy",
        "userId": SUB,
        "steamId": "76561198000000000",
        "tradeUrl": "https://steamcommunity.com/tradeoffer/new/?partner=1&token=abc",
        "status": status,
        "game": "cs2",
        "items": [item(0), item(1, status="failed", error={"code": "PRICE_CHANGED"})],
        "summary": {"total": 2, "delivered": 0, "completed": 0, "failed": 1},
        "totalPrice": "24.80",
        "currency": "USD",
        "createdAt": AT,
        "updatedAt": "2024-05-01T12:05:00Z",
        **extra,
    }


def full_trade(status: str = "reverted") -> dict[str, Any]:
    """A trade with every optional field, in PROTOCOL.md's order."""
    out = trade(status)
    return {
        **{k: out[k] for k in ("id", "type", "userId", "steamId", "tradeUrl")},
        "offerId": "6543210987",
        "externalId": "order-77",
        **{k: out[k] for k in ("status", "game", "items", "summary", "totalPrice", "currency")},
        "holdEndDate": "2024-05-08T12:00:00Z",
        "settledAt": "2024-05-01T12:05:00Z",
        "revertedBy": "supplier",
        "error": {"code": "OFFER_NOT_ACCEPTED", "message": "the buyer let the offer expire"},
        "createdAt": out["createdAt"],
        "updatedAt": out["updatedAt"],
    }


DATA = {
    "deposit.transfer": transfer,
    "deposit.pending": pending,
    "deposit.completed": gateway_completed,
    "deposit.failed": gateway_failed,
    "deposit.refunded": refunded,
    "system.notice": notice,
}
VALID: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("deposit.transfer", transfer),
    ("deposit.pending", pending),
    ("deposit.completed", gateway_completed),
    ("deposit.completed", crypto_completed),
    ("deposit.failed", gateway_failed),
    ("deposit.failed", crypto_failed),
    ("deposit.refunded", refunded),
    ("system.notice", notice),
    *((f"trade.{s}", partial(trade, s)) for s in TRADE_STATUSES),
    ("trade.reverted", full_trade),
]

VALID_IDS = [f"{n}-{getattr(m, '__name__', 'trade')}" for n, m in VALID]


def push(name: str, data: Any = None, **extra: Any) -> dict[str, Any]:
    if data is None:
        data = DATA[name]() if name in DATA else trade(name.split(".", 1)[1])
    return {"event": name, "tenant": TENANT, "sub_user": SUB, "data": data, **extra}


# -- accepted ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "make"), VALID, ids=VALID_IDS)
def test_every_event_accepted(name: str, make: Any) -> None:
    data = make()
    [ev] = parse(push(name, data))
    assert ev.index == 0
    assert ev.channel == push_channel(TENANT, SUB) == f"push:{TENANT}:{SUB}"
    assert ev.data == {"event": name, "data": data}
    assert list(ev.data["data"]) == list(data)  # the table's order
    assert ev.idempotency_key is None


def test_every_event_name_is_covered() -> None:
    assert {n for n, _ in VALID} == set(PUSH_EVENTS)
    assert len(PUSH_EVENTS) == 15


@pytest.mark.parametrize(("name", "make"), VALID, ids=VALID_IDS)
def test_keys_come_out_in_table_order(name: str, make: Any) -> None:
    data = make()
    shuffled = dict(reversed(list(data.items())))
    [ev] = parse(push(name, shuffled))
    assert list(ev.data["data"]) == list(data)


def test_optional_trade_fields_absent_stay_absent_null_stays_null() -> None:
    [ev] = parse(push("trade.active", trade("active")))
    for name in ("offerId", "externalId", "holdEndDate", "settledAt", "revertedBy", "error"):
        assert name not in ev.data["data"]
    assert "error" not in ev.data["data"]["items"][0]
    nulls = dict.fromkeys(("offerId", "externalId", "holdEndDate", "settledAt"), None)
    [ev] = parse(push("trade.hold", trade("hold", **nulls, revertedBy=None, error=None)))
    assert {k: ev.data["data"][k] for k in (*nulls, "revertedBy", "error")} == {
        **nulls,
        "revertedBy": None,
        "error": None,
    }


@pytest.mark.parametrize("code", TRADE_ITEM_ERROR_CODES)
def test_every_item_error_code_accepted(code: str) -> None:
    data = trade("failed")
    data["items"][1]["error"] = {"code": code, "message": "why"}
    [ev] = parse(push("trade.failed", data))
    assert ev.data["data"]["items"][1]["error"] == {"code": code, "message": "why"}


@pytest.mark.parametrize("key", ["chain", "token", "txHash"])
def test_chain_token_txhash_may_be_null(key: str) -> None:
    for name, make in (
        ("deposit.pending", pending),
        ("deposit.completed", crypto_completed),
        ("deposit.failed", crypto_failed),
    ):
        data = {**make(), key: None}
        [ev] = parse(push(name, data))
        assert ev.data["data"][key] is None
    if key != "token":
        data = transfer()
        data["transfer"][key] = None
        assert parse(push("deposit.transfer", data))[0].data["data"]["transfer"][key] is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("payAmountToken", "0"),
        ("payAmountToken", "0.000000000000000001"),
        ("receiveAmountUsd", "1000000"),
        ("completedAt", "2024-05-01T12:00:00Z"),
        ("completedAt", "2024-05-01T12:00:00.123456789-05:00"),
        ("completedAt", "2024-02-29T23:59:59Z"),
    ],
)
def test_accepted_amounts_and_timestamps(key: str, value: str) -> None:
    [ev] = parse(push("deposit.completed", {**gateway_completed(), key: value}))
    assert ev.data["data"][key] == value


# -- refused, field by field ------------------------------------------------------------

DELETE = object()


def _keys(path: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]


def mutated(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    event = orjson.loads(orjson.dumps(event))
    keys = _keys(path)
    target: Any = event
    for key in keys[:-1]:
        target = target[key]
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return event


# (event name, data factory, path, value, field named when not the path)
BAD: list[tuple[str, Any, str, Any, str | None]] = [
    # deposit.transfer
    ("deposit.transfer", transfer, "data.fundingId", DELETE, None),
    ("deposit.transfer", transfer, "data.fundingId", "", None),
    ("deposit.transfer", transfer, "data.fundingId", 7, None),
    ("deposit.transfer", transfer, "data.status", "completed", None),
    ("deposit.transfer", transfer, "data.status", DELETE, None),
    ("deposit.transfer", transfer, "data.transfer", DELETE, None),
    ("deposit.transfer", transfer, "data.transfer", "0xab", None),
    ("deposit.transfer", transfer, "data.transfer.txHash", DELETE, None),
    ("deposit.transfer", transfer, "data.transfer.txHash", 5, None),
    ("deposit.transfer", transfer, "data.transfer.amount", -25.5, None),
    ("deposit.transfer", transfer, "data.transfer.amount", True, None),
    ("deposit.transfer", transfer, "data.transfer.amount", "-1", None),
    ("deposit.transfer", transfer, "data.transfer.amount", "1e3", None),
    ("deposit.transfer", transfer, "data.transfer.amount", "01.5", None),
    ("deposit.transfer", transfer, "data.transfer.amount", ".5", None),
    ("deposit.transfer", transfer, "data.transfer.amount", "1.", None),
    ("deposit.transfer", transfer, "data.transfer.amount", "١٢", None),  # Arabic-Indic digits
    ("deposit.transfer", transfer, "data.transfer.amount", "1" * 101, None),
    ("deposit.transfer", transfer, "data.transfer.amount", None, None),
    ("deposit.transfer", transfer, "data.transfer.chain", "", None),
    ("deposit.transfer", transfer, "data.transfer.token", "USDC", None),
    ("deposit.transfer", transfer, "data.depositId", "dep_1", None),
    # deposit.pending
    ("deposit.pending", pending, "data.depositId", DELETE, None),
    ("deposit.pending", pending, "data.chain", DELETE, None),
    ("deposit.pending", pending, "data.token", 1, None),
    ("deposit.pending", pending, "data.txHash", "", None),
    ("deposit.pending", pending, "data.amountWei", 10**18, None),
    ("deposit.pending", pending, "data.amountWei", "1.5", None),
    ("deposit.pending", pending, "data.amountWei", "-1", None),
    ("deposit.pending", pending, "data.amountWei", "", None),
    ("deposit.pending", pending, "data.fundingId", "fund_1", None),
    ("deposit.pending", pending, "data.status", "pending", None),
    # deposit.completed, gateway-hosted
    ("deposit.completed", gateway_completed, "data.status", "pending", None),
    ("deposit.completed", gateway_completed, "data.payAmountToken", DELETE, None),
    ("deposit.completed", gateway_completed, "data.payAmountToken", -25, None),
    ("deposit.completed", gateway_completed, "data.payAmountToken", [25], None),
    ("deposit.completed", gateway_completed, "data.receiveAmountUsd", "25,12", None),
    ("deposit.completed", gateway_completed, "data.completedAt", DELETE, None),
    ("deposit.completed", gateway_completed, "data.completedAt", 1714564800000, None),
    ("deposit.completed", gateway_completed, "data.completedAt", "2024-05-01T12:00:00", None),
    ("deposit.completed", gateway_completed, "data.completedAt", "2024-05-01", None),
    ("deposit.completed", gateway_completed, "data.completedAt", "2024-05-01 12:00:00Z", None),
    ("deposit.completed", gateway_completed, "data.completedAt", "2024-02-30T12:00:00Z", None),
    ("deposit.completed", gateway_completed, "data.completedAt", "2024-05-01T24:00:00Z", None),
    ("deposit.completed", gateway_completed, "data.completedAt", "2024-05-01T12:00:00+25:00", None),
    ("deposit.completed", gateway_completed, "data.chain", "ETH", None),
    ("deposit.completed", gateway_completed, "data.amountWei", "1", None),
    # deposit.completed, self-hosted crypto
    ("deposit.completed", crypto_completed, "data.depositId", 1, None),
    ("deposit.completed", crypto_completed, "data.chain", DELETE, None),
    ("deposit.completed", crypto_completed, "data.token", DELETE, None),
    ("deposit.completed", crypto_completed, "data.txHash", DELETE, None),
    ("deposit.completed", crypto_completed, "data.amountWei", 1, None),
    ("deposit.completed", crypto_completed, "data.amountUsdCents", 2550, None),
    ("deposit.completed", crypto_completed, "data.amountUsdCents", "25.50", None),
    ("deposit.completed", crypto_completed, "data.confirmations", "12", None),
    ("deposit.completed", crypto_completed, "data.confirmations", -1, None),
    ("deposit.completed", crypto_completed, "data.confirmations", 12.0, None),
    ("deposit.completed", crypto_completed, "data.confirmations", True, None),
    ("deposit.completed", crypto_completed, "data.confirmations", DELETE, None),
    ("deposit.completed", crypto_completed, "data.completedAt", None, None),
    ("deposit.completed", crypto_completed, "data.status", "completed", None),
    ("deposit.completed", crypto_completed, "data.receiveAmountUsd", "1", None),
    # deposit.failed
    ("deposit.failed", gateway_failed, "data.status", "refunded", None),
    ("deposit.failed", gateway_failed, "data.status", "EXPIRED", None),
    ("deposit.failed", gateway_failed, "data.reason", DELETE, None),
    ("deposit.failed", gateway_failed, "data.reason", "", None),
    ("deposit.failed", gateway_failed, "data.confirmations", 1, None),
    ("deposit.failed", crypto_failed, "data.reason", None, None),
    ("deposit.failed", crypto_failed, "data.confirmations", DELETE, None),
    ("deposit.failed", crypto_failed, "data.chain", DELETE, None),
    ("deposit.failed", crypto_failed, "data.status", "failed", None),
    # deposit.refunded
    ("deposit.refunded", refunded, "data.fundingId", DELETE, None),
    ("deposit.refunded", refunded, "data.status", "completed", None),
    ("deposit.refunded", refunded, "data.status", DELETE, None),
    ("deposit.refunded", refunded, "data.reason", "x", None),
    # system.notice
    ("system.notice", notice, "data.severity", "error", None),
    ("system.notice", notice, "data.severity", "INFO", None),
    ("system.notice", notice, "data.severity", DELETE, None),
    ("system.notice", notice, "data.message", DELETE, None),
    ("system.notice", notice, "data.message", "", None),
    ("system.notice", notice, "data.message", ["x"], None),
    ("system.notice", notice, "data.title", "x", None),
    # trade.<status>: the Trade object
    ("trade.completed", trade, "data.id", DELETE, None),
    ("trade.completed", trade, "data.id", 1, None),
    ("trade.completed", trade, "data.type", "deposit", None),
    ("trade.completed", trade, "data.type", DELETE, None),
    ("trade.completed", trade, "data.userId", DELETE, None),
    ("trade.completed", trade, "data.userId", "someone-else", None),
    ("trade.completed", trade, "data.steamId", 76561198000000000, None),
    ("trade.completed", trade, "data.steamId", "STEAM_0:1:1", None),
    ("trade.completed", trade, "data.steamId", DELETE, None),
    ("trade.completed", trade, "data.tradeUrl", DELETE, None),
    ("trade.completed", trade, "data.tradeUrl", "steamcommunity.com/tradeoffer/new", None),
    ("trade.completed", trade, "data.tradeUrl", "http://steamcommunity.com/x", None),
    ("trade.completed", trade, "data.tradeUrl", "https://steam community.com/x", None),
    ("trade.completed", trade, "data.tradeUrl", "https://", None),
    ("trade.completed", trade, "data.offerId", "", None),
    ("trade.completed", trade, "data.offerId", 6543210987, None),
    ("trade.completed", trade, "data.externalId", 5, None),
    ("trade.completed", trade, "data.status", DELETE, None),
    ("trade.completed", trade, "data.status", "cancelled", None),
    ("trade.completed", trade, "data.game", DELETE, None),
    ("trade.completed", trade, "data.game", 730, None),
    ("trade.completed", trade, "data.items", DELETE, None),
    ("trade.completed", trade, "data.items", [], None),
    ("trade.completed", trade, "data.items", {"0": item()}, None),
    ("trade.completed", trade, "data.items[1]", "it_1", None),
    ("trade.completed", trade, "data.items[0].id", DELETE, None),
    ("trade.completed", trade, "data.items[1].id", "it_0", None),
    ("trade.completed", trade, "data.items[0].name", "", None),
    ("trade.completed", trade, "data.items[0].price", -12.4, None),
    ("trade.completed", trade, "data.items[0].price", DELETE, None),
    ("trade.completed", trade, "data.items[0].status", "hold", None),
    ("trade.completed", trade, "data.items[0].status", DELETE, None),
    ("trade.completed", trade, "data.items[0].assetId", "123", None),
    ("trade.completed", trade, "data.items[1].error", "PRICE_CHANGED", None),
    ("trade.completed", trade, "data.items[1].error.code", "OFFER_NOT_ACCEPTED", None),
    ("trade.completed", trade, "data.items[1].error.code", "price_changed", None),
    ("trade.completed", trade, "data.items[1].error.code", DELETE, None),
    ("trade.completed", trade, "data.items[1].error.message", "", None),
    ("trade.completed", trade, "data.items[1].error.detail", "x", None),
    ("trade.completed", trade, "data.summary", DELETE, None),
    ("trade.completed", trade, "data.summary", [2, 0, 0, 1], None),
    ("trade.completed", trade, "data.summary.total", DELETE, None),
    ("trade.completed", trade, "data.summary.total", 3, None),
    ("trade.completed", trade, "data.summary.total", "2", None),
    ("trade.completed", trade, "data.summary.delivered", -1, None),
    ("trade.completed", trade, "data.summary.delivered", 3, None),
    ("trade.completed", trade, "data.summary.completed", DELETE, None),
    ("trade.completed", trade, "data.summary.failed", 1.5, None),
    ("trade.completed", trade, "data.summary.pending", 1, None),
    ("trade.completed", trade, "data.totalPrice", False, None),
    ("trade.completed", trade, "data.totalPrice", DELETE, None),
    ("trade.completed", trade, "data.currency", "usd", None),
    ("trade.completed", trade, "data.currency", "GBP", None),
    ("trade.completed", trade, "data.currency", DELETE, None),
    ("trade.completed", trade, "data.holdEndDate", "next week", None),
    ("trade.completed", trade, "data.settledAt", 1714564800, None),
    ("trade.completed", trade, "data.revertedBy", "admin", None),
    ("trade.completed", trade, "data.error", "PURCHASE_FAILED", None),
    ("trade.completed", trade, "data.error", {"message": "x"}, "data.error.code"),
    ("trade.completed", trade, "data.error", {"code": "bad code"}, "data.error.code"),
    ("trade.completed", trade, "data.error", {"code": "X", "why": 1}, "data.error.why"),
    ("trade.completed", trade, "data.createdAt", DELETE, None),
    ("trade.completed", trade, "data.updatedAt", "2024-05-01T12:00Z", None),
    ("trade.completed", trade, "data.source", "client", None),
    ("trade.completed", trade, "data.clientUserId", SUB, None),
    # the deposit discriminator
    ("deposit.completed", gateway_completed, "data.depositId", "dep_1", None),
    ("deposit.completed", gateway_completed, "data.fundingId", DELETE, None),
    ("deposit.completed", crypto_completed, "data.fundingId", "fund_1", "data.depositId"),
    ("deposit.completed", crypto_completed, "data.depositId", DELETE, "data.fundingId"),
    ("deposit.failed", gateway_failed, "data.depositId", "dep_1", None),
    ("deposit.failed", crypto_failed, "data.depositId", DELETE, "data.fundingId"),
    # the event itself
    ("system.notice", notice, "data", DELETE, None),
    ("system.notice", notice, "data", [], None),
    ("system.notice", notice, "data", "hello", None),
    ("deposit.pending", pending, "user_id", SUB, None),
    ("deposit.pending", pending, "channel", "x", None),
    ("deposit.pending", pending, "topic", "order", None),
    ("deposit.pending", pending, "idempotency_key", "", None),
    ("deposit.pending", pending, "idempotency_key", 5, None),
    ("deposit.pending", pending, "idempotency_key", "k" * 257, None),
]


@pytest.mark.parametrize(
    ("name", "make", "path", "value", "field"),
    BAD,
    ids=[f"{n}-{m.__name__}-{p}-{v!r:.20}" for n, m, p, v, _ in BAD],
)
def test_refusals_name_the_field(
    name: str, make: Any, path: str, value: Any, field: str | None
) -> None:
    good = push(name, make())
    parse(good)
    r = refused(push("system.notice"), mutated(good, path, value))
    assert (r.code, r.index, r.field, r.status) == ("INVALID_EVENT", 1, field or path, 400)
    assert r.detail


def test_both_deposit_ids_is_named_and_explained() -> None:
    r = refused(push("deposit.completed", {**gateway_completed(), "depositId": "dep_1"}))
    assert r.field == "data.depositId"
    assert "fundingId" in r.detail and "depositId" in r.detail
    r = refused(push("deposit.failed", {"status": "failed", "reason": "x"}))
    assert r.field == "data.fundingId"
    assert "depositId" in r.detail


def test_too_many_trade_items() -> None:
    items = [item(i) for i in range(MAX_TRADE_ITEMS + 1)]
    summary = {"total": len(items), "delivered": 0, "completed": 0, "failed": 0}
    r = refused(push("trade.pending", trade("pending", items=items, summary=summary)))
    assert (r.code, r.field) == ("INVALID_EVENT", "data.items")
    items.pop()
    summary["total"] -= 1
    [ev] = parse(push("trade.pending", trade("pending", items=items, summary=summary)))
    assert len(ev.data["data"]["items"]) == MAX_TRADE_ITEMS


# -- trade status against the event name ---------------------------------------------------


@pytest.mark.parametrize("event_status", TRADE_STATUSES)
def test_trade_status_must_match_event_name(event_status: str) -> None:
    for status in TRADE_STATUSES:
        event = push(f"trade.{event_status}", trade(status))
        if status == event_status:
            assert parse(event)[0].data["data"]["status"] == status
        else:
            r = refused(event)
            assert (r.code, r.field) == ("INVALID_EVENT", "data.status")
            assert status in r.detail and f"trade.{event_status}" in r.detail


# -- event names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "deposit.created",
        "deposit",
        "trade",
        "trade.",
        "trade.cancelled",
        "trade.Completed",
        "Deposit.completed",
        "deposit.completed ",
        "system.notice.x",
        "connected",
        "",
        None,
        5,
        [],
        {},
        ["deposit.completed"],
    ],
)
def test_unknown_event_names(name: Any) -> None:
    r = refused(
        push("system.notice"), {"event": name, "tenant": TENANT, "sub_user": SUB, "data": {}}
    )
    assert (r.code, r.index, r.field, r.status) == ("UNKNOWN_EVENT", 1, "event", 400)


def test_event_and_topic_together_is_refused_as_a_field() -> None:
    r = refused({**push("system.notice"), "topic": "ticker/M"})
    assert (r.code, r.field) == ("INVALID_EVENT", "topic")


# -- tenant and sub_user --------------------------------------------------------------------


@pytest.mark.parametrize("tenant", ["a", "A.b-c_9", "t" * 64, "0", "...", "-_-"])
def test_tenant_accepted(tenant: str) -> None:
    [ev] = parse({**push("system.notice"), "tenant": tenant})
    assert ev.channel == f"push:{tenant}:{SUB}"
    assert push_tenant(ev.channel) == tenant


@pytest.mark.parametrize(
    "tenant", ["", "t" * 65, "a:b", "a b", "a/b", "ü", "a\n", "a\x00", None, 5, ["a"]]
)
def test_tenant_refused(tenant: Any) -> None:
    r = refused({**push("deposit.refunded"), "tenant": tenant})
    assert (r.code, r.field) == ("INVALID_EVENT", "tenant")


def test_tenant_required() -> None:
    event = push("deposit.refunded")
    del event["tenant"]
    assert refused(event).field == "tenant"


@pytest.mark.parametrize(
    "sub_user",
    [
        "u",
        "s" * MAX_SUB_USER,
        "user@example.com",
        "0x" + "ab" * 32,
        "ünïcode-用户",
        "a/b|c=d",
    ],
)
def test_sub_user_accepted(sub_user: str) -> None:
    [ev] = parse(push("deposit.refunded", sub_user=sub_user))
    assert ev.channel == push_channel(TENANT, sub_user)
    assert push_sub_user(ev.channel) == sub_user


@pytest.mark.parametrize(
    "sub_user",
    [
        "",
        "s" * (MAX_SUB_USER + 1),
        ":",
        "a:b",
        "a\x00",
        "a\tb",
        "a\nb",
        "a\x7f",
        "a\u0085",  # NEL, a C1 control
        "a\u200bb",  # zero-width space
        "a\u202eb",  # right-to-left override
        "\ufeffa",  # byte order mark
        "a\u2028b",  # line separator
        " a",
        "a ",
        "\u00a0a",  # no-break space
        "John Smith",
        "a\u3000b",  # ideographic space
        5,
        ["u"],
        {"id": "u"},
    ],
)
def test_sub_user_refused(sub_user: Any) -> None:
    r = refused(push("deposit.refunded", sub_user=sub_user))
    assert (r.code, r.field) == ("INVALID_EVENT", "sub_user")


@pytest.mark.parametrize("name", [n for n in PUSH_EVENTS if n != "system.notice"])
def test_sub_user_required_except_for_notices(name: str) -> None:
    event = push(name)
    del event["sub_user"]
    r = refused(event)
    assert (r.code, r.field) == ("INVALID_EVENT", "sub_user")
    assert name in r.detail
    r = refused({**push(name), "sub_user": None})
    assert (r.code, r.field) == ("INVALID_EVENT", "sub_user")


def test_trade_user_id_is_the_sub_user() -> None:
    [ev] = parse(push("trade.pending", trade("pending", userId="other"), sub_user="other"))
    assert ev.channel == push_channel(TENANT, "other")


# -- system.notice with and without sub_user --------------------------------------------


def test_notice_to_one_sub_user() -> None:
    [ev] = parse(push("system.notice"))
    assert ev.channel == push_channel(TENANT, SUB)
    assert not is_push_tenant_wide(ev.channel)
    assert ev.data == {"event": "system.notice", "data": notice()}


def test_notice_to_every_sub_user_of_the_tenant() -> None:
    event = push("system.notice", idempotency_key="maint-1")
    del event["sub_user"]
    [ev] = parse(event)
    assert ev.channel == push_tenant_prefix(TENANT) == f"push:{TENANT}:"
    assert is_push_channel(ev.channel)
    assert is_push_tenant_wide(ev.channel)
    assert push_tenant(ev.channel) == TENANT
    assert push_sub_user(ev.channel) == ""
    assert ev.data == {"event": "system.notice", "data": notice()}
    assert ev.idempotency_key == "maint-1"
    # every sub-user channel of the tenant, and only those, starts with the prefix
    assert push_channel(TENANT, "anyone").startswith(ev.channel)
    assert not push_channel(TENANT + "x", "anyone").startswith(ev.channel)


def test_notice_with_null_sub_user_is_not_tenant_wide() -> None:
    r = refused(push("system.notice", sub_user=None))
    assert (r.code, r.field) == ("INVALID_EVENT", "sub_user")
    assert "leave it out" in r.detail


def test_tenant_wide_notice_still_checks_tenant_and_data() -> None:
    event = push("system.notice", data={"severity": "loud", "message": "x"})
    del event["sub_user"]
    assert refused(event).field == "data.severity"
    del event["tenant"]
    assert refused(event).field == "tenant"


# -- mixed batches and idempotency --------------------------------------------------------

MARKET = "0x" + "01" * 32
USER = "0x" + "ab" * 32


def order() -> dict[str, Any]:
    return {
        "sid": "o1",
        "side": "buy",
        "size": 1,
        "price": 100,
        "leverage": 1,
        "type": "limit",
        "status": "placed",
        "user_addr": USER,
        "market_addr": MARKET,
        "seq": 1,
    }


def test_mixed_batch_with_market_and_private_events() -> None:
    notice_all = push("system.notice")
    del notice_all["sub_user"]
    events = parse(
        {
            "topic": "orderbook/M",
            "data": {"type": "orderbook_snapshot", "seq": 1, "asks": [], "bids": []},
        },
        push("deposit.completed", crypto_completed(), idempotency_key="dep_1:completed"),
        {"topic": "order", "user_id": USER, "data": [order()]},
        push("trade.initiated", trade("initiated"), tenant="other"),
        notice_all,
    )
    assert [e.index for e in events] == [0, 1, 2, 3, 4]
    assert [e.channel for e in events] == [
        market_channel("orderbook", "M"),
        push_channel(TENANT, SUB),
        private_channel(USER, "order"),
        push_channel("other", SUB),
        push_tenant_prefix(TENANT),
    ]
    assert [e.idempotency_key for e in events] == [None, "dep_1:completed", None, None, None]
    assert events[1].data["event"] == "deposit.completed"
    assert events[3].data["data"]["status"] == "initiated"
    check_book_sequences(events, lambda channel: None)  # push events never touch books


def test_bad_push_event_in_a_mixed_batch_is_named_by_index() -> None:
    r = refused(
        {"topic": "order", "user_id": USER, "data": [order()]},
        push("deposit.refunded"),
        push("deposit.refunded", {"fundingId": "f", "status": "expired"}),
        {"topic": "nope"},
    )
    assert (r.code, r.index, r.field) == ("INVALID_EVENT", 2, "data.status")


def test_market_event_with_push_fields_is_refused() -> None:
    r = refused({"topic": "ticker/M", "tenant": TENANT, "data": {}})
    assert (r.code, r.field) == ("INVALID_EVENT", "tenant")


def test_idempotency_key_travels_with_push_events() -> None:
    events = parse(
        push("deposit.refunded", idempotency_key="r1"),
        push("deposit.refunded", idempotency_key="r1"),  # duplicates are the server's job
        push("deposit.refunded", idempotency_key=None),
    )
    assert [e.idempotency_key for e in events] == ["r1", "r1", None]


def test_same_sub_user_under_two_tenants_is_two_channels() -> None:
    a, b = parse(push("deposit.refunded", tenant="a"), push("deposit.refunded", tenant="b"))
    assert a.channel != b.channel
    assert push_sub_user(a.channel) == push_sub_user(b.channel) == SUB


# -- channel names --------------------------------------------------------------------------


def test_push_channels_never_collide_with_market_or_private_channels() -> None:
    channel = push_channel("orderbook", "M")
    assert channel == "push:orderbook:M"
    assert channel != market_channel("orderbook", "M")
    assert not is_book_channel(channel)
    assert not is_push_channel(market_channel("ticker", "push:x:y"))
    assert not is_push_channel(private_channel("push", "order"))
    assert not is_push_channel(private_channel(SUB, "order"))


@pytest.mark.parametrize(
    ("tenant", "sub_user"),
    [("", "u"), ("a:b", "u"), ("a b", "u"), ("t" * 65, "u"), ("t", ""), ("t", "a:b")],
)
def test_push_channel_refuses_ambiguous_names(tenant: str, sub_user: str) -> None:
    with pytest.raises(ValueError, match="not a"):
        push_channel(tenant, sub_user)


def test_tenant_prefix_refuses_bad_tenant() -> None:
    with pytest.raises(ValueError, match="not a tenant name"):
        push_tenant_prefix("a:b")


def test_is_tenant_name() -> None:
    assert is_tenant_name("Acme_1.eu-west")
    assert not is_tenant_name("acme\n")
    assert not is_tenant_name("")


def test_tenant_prefixes_do_not_overlap() -> None:
    assert not push_channel("a.b", SUB).startswith(push_tenant_prefix("a"))
    assert not push_channel("ab", SUB).startswith(push_tenant_prefix("a"))
    assert push_channel("a", "bc").startswith(push_tenant_prefix("a"))


def test_a_field_of_the_other_deposit_variant_says_which_variant() -> None:
    r = refused(push("deposit.completed", {**gateway_completed(), "confirmations": 3}))
    assert r.field == "data.confirmations"
    assert "gateway-hosted" in r.detail
    r = refused(push("deposit.failed", {**crypto_failed(), "status": "failed"}))
    assert r.field == "data.status"
    assert "self-hosted crypto" in r.detail


# -- numbers as the push API's OpenAPI types them, passed on exactly -----------------------

EXACT = [b"25.500000", b"12345678901234567.89", b"0.1", b"1e3", b"0", b"18446744073709551616"]


@pytest.mark.parametrize("literal", EXACT)
def test_numeric_amounts_are_accepted_and_written_back_verbatim(literal: bytes) -> None:
    data = gateway_completed()
    data["payAmountToken"] = data["receiveAmountUsd"] = "__N__"
    raw = body(push("deposit.completed", data)).replace(b'"__N__"', literal)
    [ev] = parse_batch(raw, now_ms=NOW_MS)
    out = exact_json.dumps(ev.data)
    assert out.count(b'"payAmountToken":' + literal + b",") == 1
    assert out.count(b'"receiveAmountUsd":' + literal + b",") == 1


def test_transfer_amount_total_price_and_item_price_take_numbers() -> None:
    data = transfer()
    data["transfer"]["amount"] = "__N__"
    raw = body(push("deposit.transfer", data)).replace(b'"__N__"', b"25.50")
    [ev] = parse_batch(raw, now_ms=NOW_MS)
    assert b'"amount":25.50,' in exact_json.dumps(ev.data)
    t = trade()
    t["totalPrice"] = t["items"][0]["price"] = "__N__"
    raw = body(push("trade.completed", t)).replace(b'"__N__"', b"24.80")
    [ev] = parse_batch(raw, now_ms=NOW_MS)
    out = exact_json.dumps(ev.data)
    assert b'"totalPrice":24.80,' in out and b'"price":24.80,' in out
