"""Producer API push events: ``deposit.*``, ``trade.<status>`` and ``system.notice``.

A push event (``{"event", "tenant", "sub_user", "data", "idempotency_key"?}``,
PROTOCOL.md sections 1 and 4) has its ``data`` checked against the event's shape in the
Events table (both deposit variants, the Trade object for ``trade.<status>``,
``system.notice``) and normalized to the table's key order. :func:`push_event` returns
its channel, :func:`~streamgate.core.channels.push_channel` ``(tenant, sub_user)`` or, for a
``system.notice`` without ``sub_user``, the tenant-wide
:func:`~streamgate.core.channels.push_tenant_prefix` ``(tenant)`` the server expands, and
its data ``{"event": <event name>, "data": <normalized data>}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from streamgate.core.channels import push_channel, push_tenant_prefix
from streamgate.core.identifiers import MAX_SUB_USER, TENANT_RULE, is_tenant_name
from streamgate.core.text import shown
from streamgate.protocol.fields import (
    FieldError,
    channel_id,
    data_object,
    integer,
    is_number,
    join,
    objects,
    only,
    required,
    string,
)

__all__ = [
    "DEPOSIT_FAILED_STATUSES",
    "MAX_TRADE_ITEMS",
    "NOTICE_SEVERITIES",
    "PUSH_EVENTS",
    "TENANT_WIDE_EVENTS",
    "TRADE_ITEM_ERROR_CODES",
    "TRADE_ITEM_STATUSES",
    "TRADE_STATUSES",
    "push_event",
]

# -- PROTOCOL.md section 1, Events ----------------------------------------------------------

TRADE_STATUSES = (
    "initiated",
    "pending",
    "active",
    "hold",
    "completed",
    "failed",
    "canceled",
    "declined",
    "reverted",
)
PUSH_EVENTS = (
    "deposit.transfer",
    "deposit.pending",
    "deposit.completed",
    "deposit.failed",
    "deposit.refunded",
    *(f"trade.{status}" for status in TRADE_STATUSES),
    "system.notice",
)
TENANT_WIDE_EVENTS = ("system.notice",)  # the only events that may leave sub_user out
DEPOSIT_FAILED_STATUSES = ("expired", "failed", "partial")
NOTICE_SEVERITIES = ("info", "warning", "critical")
TRADE_ITEM_STATUSES = ("pending", "delivered", "completed", "failed", "canceled")
TRADE_ITEM_ERROR_CODES = (
    "LISTING_UNAVAILABLE",
    "NO_LISTING_AT_PRICE",
    "PRICE_CHANGED",
    "TRADE_URL_INVALID",
    "STEAM_ACCOUNT_RESTRICTED",
    "BUYER_TRADE_RESTRICTED",
    "MARKET_UNAVAILABLE",
    "PURCHASE_FAILED",
)
MAX_TRADE_ITEMS = 1000

_PUSH_FIELDS = {"event", "tenant", "sub_user", "data", "idempotency_key"}
# Non-negative decimal amounts ("12.50"), integer strings ("1000000000000000000"; wei and
# cents can pass 2**53), RFC 3339 date-times with an offset. ASCII digits only.
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
_INTEGER = re.compile(r"0|[1-9][0-9]*")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_STEAM_ID = re.compile(r"[0-9]{1,20}")
_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_HTTPS_URL = re.compile(r"https://[!-~]+")  # printable ASCII, no spaces


def push_event(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check an event carrying ``event`` (a push event name); return its channel and data."""
    if "topic" in event:
        raise FieldError(
            "topic",
            "an event carries either event (push) or topic (market, private), not both",
        )
    name = event.get("event")
    if not isinstance(name, str) or name not in _PUSH:
        raise FieldError(
            "event",
            f"unknown event {shown(name)}: one of {', '.join(PUSH_EVENTS)}",
            "UNKNOWN_EVENT",
        )
    only(event, _PUSH_FIELDS, "")
    tenant = _tenant(event.get("tenant"))
    sub_user = None
    if "sub_user" in event or name not in TENANT_WIDE_EVENTS:
        sub_user = _sub_user(event.get("sub_user"), name)
    body = _PUSH[name](data_object(event), name, sub_user)
    channel = push_tenant_prefix(tenant) if sub_user is None else push_channel(tenant, sub_user)
    return channel, {"event": name, "data": body}


def _tenant(value: Any) -> str:
    if value is None:
        raise FieldError("tenant", "tenant is required for a push event")
    if not is_tenant_name(value):
        raise FieldError("tenant", f"tenant must be {TENANT_RULE}")
    return str(value)


def _sub_user(value: Any, event: str) -> str:
    """Check a push event's ``sub_user``: an On-Behalf-Of id, safe in a channel name."""
    if value is None:
        if event in TENANT_WIDE_EVENTS:
            raise FieldError(
                "sub_user",
                "sub_user must be a string; leave it out to reach every connected sub-user",
            )
        raise FieldError("sub_user", f"sub_user is required for {event}")
    # The user_id rule, and the one POST /auth/ws-token applies to On-Behalf-Of: an id
    # that could never mint a ticket is refused here rather than published to a channel
    # no socket can join.
    return channel_id(value, "sub_user", MAX_SUB_USER)


# -- push data shapes: ((name, check), ...); "name?" is optional (absent stays absent, null
# stays null); output keys follow the shape's order, which is PROTOCOL.md's.

_Check = Callable[[dict[str, Any], str, str], Any]
_Shape = tuple[tuple[str, _Check], ...]
_PushCheck = Callable[[dict[str, Any], str, str | None], dict[str, Any]]  # data, event, sub_user


def _shape(obj: dict[str, Any], path: str, shape: _Shape, what: str = "") -> dict[str, Any]:
    only(obj, {spec.rstrip("?") for spec, _ in shape}, path, what)
    out: dict[str, Any] = {}
    for spec, check in shape:
        name = spec.rstrip("?")
        if name != spec:
            if name in obj:
                out[name] = None if obj[name] is None else check(obj, name, path)
        else:
            out[name] = check(obj, name, path)
    return out


def _object(obj: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    value = obj.get(name)
    where = join(path, name)
    if not isinstance(value, dict):
        raise FieldError(
            where, f"{where} must be an object" if name in obj else f"{where} is required"
        )
    return value


def _nested(shape: _Shape) -> _Check:
    return lambda obj, name, path: _shape(_object(obj, name, path), join(path, name), shape)


def _one_of(*allowed: str) -> _Check:
    def check(obj: dict[str, Any], name: str, path: str) -> str:
        value = obj.get(name)
        if not isinstance(value, str) or value not in allowed:
            where = join(path, name)
            quoted = ", ".join(repr(a) for a in allowed)
            raise FieldError(
                where, f"{where} must be {'one of ' if len(allowed) > 1 else ''}{quoted}"
            )
        return value

    return check


def _str_or_null(obj: dict[str, Any], name: str, path: str) -> str | None:
    """A required key whose value is a non-empty string or null."""
    where = join(path, name)
    if name not in obj:
        raise FieldError(where, f"{where} is required (may be null)")
    value = obj[name]
    if value is not None and (not isinstance(value, str) or not value):
        raise FieldError(where, f"{where} must be a non-empty string or null")
    return value


def _matching(pattern: re.Pattern[str], what: str, max_len: int = 100) -> _Check:
    def check(obj: dict[str, Any], name: str, path: str) -> str:
        value, where = required(obj, name, path)
        if not isinstance(value, str) or len(value) > max_len or not pattern.fullmatch(value):
            raise FieldError(where, f"{where} must be {what}")
        return value

    return check


def _amount(obj: dict[str, Any], name: str, path: str) -> Any:
    """An amount >= 0: a JSON number as the push API's OpenAPI types it, or a decimal
    string (PROTOCOL.md section 1); either passed on exactly as sent."""
    value, where = required(obj, name, path)
    if isinstance(value, str):
        if len(value) <= 100 and _DECIMAL.fullmatch(value):
            return value
    elif is_number(value) and float(value) >= 0:
        return value
    raise FieldError(where, f'{where} must be a number or a decimal string such as "12.50" (>= 0)')


_integer_text = _matching(_INTEGER, 'a string of an integer >= 0, such as "1500"')
_steam_id = _matching(_STEAM_ID, "a SteamID64, a string of digits")
_https_url = _matching(_HTTPS_URL, "an https:// URL", 2048)
_check_timestamp = _matching(
    _TIMESTAMP, 'an ISO-8601 date-time with an offset, such as "2024-05-01T12:00:00.000Z"'
)


def _timestamp(obj: dict[str, Any], name: str, path: str) -> str:
    value: str = _check_timestamp(obj, name, path)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise FieldError(join(path, name), f"{join(path, name)} is not a real date-time") from None
    return value


def _count(obj: dict[str, Any], name: str, path: str) -> int:
    return integer(obj, name, path, minimum=0)


def _trade_items(obj: dict[str, Any], name: str, path: str) -> list[dict[str, Any]]:
    raw = obj.get(name)
    where = join(path, name)
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TRADE_ITEMS:
        raise FieldError(where, f"{where} must be an array of 1..{MAX_TRADE_ITEMS} items")
    items = []
    seen: set[str] = set()
    for at, item in objects(raw, where):
        out = _shape(item, at, _TRADE_ITEM)
        if out["id"] in seen:
            raise FieldError(f"{at}.id", f"{at}.id {out['id']!r} appears twice in {where}")
        seen.add(out["id"])
        items.append(out)
    return items


_ONCHAIN: _Shape = (("chain", _str_or_null), ("token", _str_or_null), ("txHash", _str_or_null))
_DEPOSIT_TRANSFER: _Shape = (
    ("fundingId", string),
    ("status", _one_of("pending")),
    (
        "transfer",
        _nested((("txHash", _str_or_null), ("amount", _amount), ("chain", _str_or_null))),
    ),
)
_DEPOSIT_PENDING: _Shape = (("depositId", string), *_ONCHAIN, ("amountWei", _integer_text))
_GATEWAY_COMPLETED: _Shape = (
    ("fundingId", string),
    ("status", _one_of("completed")),
    ("payAmountToken", _amount),
    ("receiveAmountUsd", _amount),
    ("completedAt", _timestamp),
)
_CRYPTO_COMPLETED: _Shape = (
    ("depositId", string),
    *_ONCHAIN,
    ("amountWei", _integer_text),
    ("amountUsdCents", _integer_text),
    ("confirmations", _count),
    ("completedAt", _timestamp),
)
_GATEWAY_FAILED: _Shape = (
    ("fundingId", string),
    ("status", _one_of(*DEPOSIT_FAILED_STATUSES)),
    ("reason", string),
)
_CRYPTO_FAILED: _Shape = (
    ("depositId", string),
    *_ONCHAIN,
    ("reason", string),
    ("confirmations", _count),
)
_DEPOSIT_REFUNDED: _Shape = (("fundingId", string), ("status", _one_of("refunded")))
_NOTICE: _Shape = (("severity", _one_of(*NOTICE_SEVERITIES)), ("message", string))
_TRADE_ITEM: _Shape = (
    ("id", string),
    ("name", string),
    ("price", _amount),
    ("status", _one_of(*TRADE_ITEM_STATUSES)),
    ("error?", _nested((("code", _one_of(*TRADE_ITEM_ERROR_CODES)), ("message?", string)))),
)
_SUMMARY_COUNTS = ("delivered", "completed", "failed")
_TRADE: _Shape = (
    ("id", string),
    ("type", _one_of("buy", "sell")),
    ("userId", string),
    ("steamId", _steam_id),
    ("tradeUrl", _https_url),
    ("offerId?", string),
    ("externalId?", string),
    ("status", _one_of(*TRADE_STATUSES)),
    ("game", string),
    ("items", _trade_items),
    ("summary", _nested((("total", _count), *((n, _count) for n in _SUMMARY_COUNTS)))),
    ("totalPrice", _amount),
    ("currency", _one_of("USD", "EUR")),
    ("holdEndDate?", _timestamp),
    ("settledAt?", _timestamp),
    ("revertedBy?", _one_of("supplier", "user")),
    (
        "error?",
        _nested(
            (("code", _matching(_ERROR_CODE, "an UPPER_SNAKE_CASE code")), ("message?", string))
        ),
    ),
    ("createdAt", _timestamp),
    ("updatedAt", _timestamp),
)


def _plain(shape: _Shape) -> _PushCheck:
    return lambda data, name, sub_user: _shape(data, "data", shape)


def _deposit(gateway: _Shape, crypto: _Shape) -> _PushCheck:
    """Check a deposit event whose gateway-hosted (``fundingId``) and self-hosted crypto
    (``depositId``) variants share the event name (PROTOCOL.md section 1)."""

    def check(data: dict[str, Any], name: str, sub_user: str | None) -> dict[str, Any]:
        has_funding, has_deposit = "fundingId" in data, "depositId" in data
        if has_funding and has_deposit:
            raise FieldError(
                "data.depositId",
                "data has both fundingId (gateway-hosted deposit) and depositId (self-hosted "
                "crypto deposit); a deposit is one or the other",
            )
        if not has_funding and not has_deposit:
            raise FieldError(
                "data.fundingId",
                "data.fundingId (gateway-hosted deposit) or data.depositId (self-hosted "
                "crypto deposit) is required",
            )
        if has_funding:
            return _shape(data, "data", gateway, "a gateway-hosted deposit (fundingId)")
        return _shape(data, "data", crypto, "a self-hosted crypto deposit (depositId)")

    return check


def _trade(data: dict[str, Any], name: str, sub_user: str | None) -> dict[str, Any]:
    """Check a Trade object, then what ties it to its event: status, owner, counts."""
    out = _shape(data, "data", _TRADE)
    if f"trade.{out['status']}" != name:
        raise FieldError(
            "data.status", f"data.status {out['status']!r} does not match event {name}"
        )
    if out["userId"] != sub_user:
        raise FieldError(
            "data.userId", f"data.userId {out['userId']!r} is not the sub_user {sub_user!r}"
        )
    summary = out["summary"]
    if summary["total"] != len(out["items"]):
        raise FieldError(
            "data.summary.total", "data.summary.total must be the number of data.items"
        )
    for count in _SUMMARY_COUNTS:
        if summary[count] > summary["total"]:
            raise FieldError(
                f"data.summary.{count}", f"data.summary.{count} is over data.summary.total"
            )
    return out


_PUSH: dict[str, _PushCheck] = {
    "deposit.transfer": _plain(_DEPOSIT_TRANSFER),
    "deposit.pending": _plain(_DEPOSIT_PENDING),
    "deposit.completed": _deposit(_GATEWAY_COMPLETED, _CRYPTO_COMPLETED),
    "deposit.failed": _deposit(_GATEWAY_FAILED, _CRYPTO_FAILED),
    "deposit.refunded": _plain(_DEPOSIT_REFUNDED),
    **{f"trade.{status}": _trade for status in TRADE_STATUSES},
    "system.notice": _plain(_NOTICE),
}
