"""Producer API private events: ``order``, ``fill`` and ``position`` for one ``user_id``.

Their ``data`` is an array of OrderResponse, FillResponse or PositionResponse objects
(PROTOCOL.md section 2), each checked field by field, stamped like market events, and
owned by ``user_id`` (an order's or position's ``user_addr``, a fill's ``maker_addr`` or
``taker_addr``); :func:`private_event` returns the user's channel
(:func:`~streamgate.core.channels.private_channel`) and the checked objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamgate.core.channels import private_channel
from streamgate.core.identifiers import MAX_USER_ID
from streamgate.protocol.fields import (
    FieldError,
    Number,
    boolean,
    channel_id,
    choice,
    integer,
    join,
    number,
    objects,
    only,
    side,
    stamps,
    string,
)

__all__ = ["MAX_PRIVATE_ITEMS", "ORDER_STATUSES", "private_event"]

MAX_PRIVATE_ITEMS = 1000  # objects in one private event's data array
ORDER_STATUSES = (
    "created",
    "placed",
    "filled",
    "cancelled",
    "rejected",
    "partial_filled",
    "partial_filled_and_cancelled",
)


def private_event(
    event: dict[str, Any], kind: str, now_ms: int
) -> tuple[str, list[dict[str, Any]]]:
    """Check an event of the private topic ``kind``; return its channel and data."""
    only(event, {"topic", "user_id", "data", "idempotency_key"}, "")
    user_id = _user_id(event.get("user_id"))
    raw = event.get("data")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PRIVATE_ITEMS:
        raise FieldError("data", f"data must be an array of 1..{MAX_PRIVATE_ITEMS} {kind} objects")
    validate = _PRIVATE[kind]
    items = [validate(item, at, user_id, now_ms) for at, item in objects(raw, "data")]
    return private_channel(user_id, kind), items


def _user_id(value: Any) -> str:
    """Check a private event's ``user_id``: any id format, but safe in a channel name."""
    if value is None:
        raise FieldError("user_id", "user_id is required for a private topic")
    return channel_id(value, "user_id", MAX_USER_ID)


def _positive(obj: dict[str, Any], name: str, path: str) -> Number:
    value = number(obj, name, path)
    if float(value) <= 0:
        where = join(path, name)
        raise FieldError(where, f"{where} must be > 0")
    return value


def _int_or_null(obj: dict[str, Any], name: str, path: str, *, minimum: int) -> int | None:
    """An integer or null; absent means null."""
    return None if obj.get(name) is None else integer(obj, name, path, minimum=minimum)


def _owner(value: str, user_id: str, where: str) -> None:
    if value != user_id:
        raise FieldError(where, f"{where} {value!r} is not the event's user_id {user_id!r}")


# OrderResponse and FillResponse both begin with these, checked alike.
_HEAD_FIELDS = ("sid", "side", "size", "price")


def _head(item: dict[str, Any], at: str) -> dict[str, Any]:
    """An order's or a fill's first fields: ``sid``, ``side``, ``size`` and ``price``."""
    return {
        "sid": string(item, "sid", at),
        "side": side(item, at),
        "size": integer(item, "size", at, minimum=0),
        "price": integer(item, "price", at, minimum=0),
    }


_ORDER_FIELDS = {
    *_HEAD_FIELDS,
    "leverage",
    "type",
    "status",
    "user_addr",
    "market_addr",
    "seq",
    "timestamp",
    "timestamp_ms",
    "stop_loss",
    "take_profit",
}


def _order(item: dict[str, Any], at: str, user_id: str, now_ms: int) -> dict[str, Any]:
    only(item, _ORDER_FIELDS, at)
    out: dict[str, Any] = {
        **_head(item, at),
        "leverage": _positive(item, "leverage", at),
        "type": string(item, "type", at),
        "status": choice(item, "status", at, ORDER_STATUSES),
        "user_addr": string(item, "user_addr", at),
    }
    _owner(out["user_addr"], user_id, f"{at}.user_addr")
    out["market_addr"] = string(item, "market_addr", at)
    out["seq"] = integer(item, "seq", at, minimum=0)
    out["timestamp"], out["timestamp_ms"] = stamps(item, now_ms, at)
    out["stop_loss"] = _int_or_null(item, "stop_loss", at, minimum=0)
    out["take_profit"] = _int_or_null(item, "take_profit", at, minimum=0)
    return out


_FILL_FIELDS = {
    *_HEAD_FIELDS,
    "maker_fee",
    "taker_fee",
    "taker_order_sid",
    "taker_addr",
    "maker_order_sid",
    "maker_addr",
    "market_addr",
    "seq",
    "maker_leverage",
    "taker_leverage",
    "maker_is_cross",
    "taker_is_cross",
    "timestamp",
    "timestamp_ms",
}


def _fill(item: dict[str, Any], at: str, user_id: str, now_ms: int) -> dict[str, Any]:
    only(item, _FILL_FIELDS, at)
    out: dict[str, Any] = {
        **_head(item, at),
        "maker_fee": number(item, "maker_fee", at),
        "taker_fee": number(item, "taker_fee", at),
        "taker_order_sid": string(item, "taker_order_sid", at),
        "taker_addr": string(item, "taker_addr", at),
        "maker_order_sid": string(item, "maker_order_sid", at),
        "maker_addr": string(item, "maker_addr", at),
    }
    if user_id not in (out["maker_addr"], out["taker_addr"]):
        raise FieldError(
            f"{at}.maker_addr",
            f"the event's user_id {user_id!r} is neither {at}.maker_addr nor {at}.taker_addr",
        )
    out["market_addr"] = string(item, "market_addr", at)
    out["seq"] = integer(item, "seq", at, minimum=0)
    out["maker_leverage"] = number(item, "maker_leverage", at)
    out["taker_leverage"] = number(item, "taker_leverage", at)
    out["maker_is_cross"] = boolean(item, "maker_is_cross", at)
    out["taker_is_cross"] = boolean(item, "taker_is_cross", at)
    out["timestamp"], out["timestamp_ms"] = stamps(item, now_ms, at)
    return out


_POSITION_OPTIONAL = (
    "initial_margin",
    "initial_margin_mark",
    "maintenance_margin",
    "leverage",
    "liq_price",
)
_POSITION_PNL = ("realized_pnl_delta", "realized_pnl_cum")  # optional, signed
_POSITION_TRIGGERS = ("stop_loss", "take_profit")  # optional, like an order's
_POSITION_FIELDS = {
    "sid",
    "market_addr",
    "user_addr",
    "size",
    "price",
    "entry_price",
    "margin",
    "funding_index",
    "epoch",
    "is_cross",
    *_POSITION_OPTIONAL,
    "mark_price",
    "seq",
    "side",
    "unrealized_pnl",
    *_POSITION_PNL,
    *_POSITION_TRIGGERS,
    "timestamp",
    "timestamp_ms",
}


def _position(item: dict[str, Any], at: str, user_id: str, now_ms: int) -> dict[str, Any]:
    only(item, _POSITION_FIELDS, at)
    out: dict[str, Any] = {
        "sid": string(item, "sid", at),
        "market_addr": string(item, "market_addr", at),
        "user_addr": string(item, "user_addr", at),
    }
    _owner(out["user_addr"], user_id, f"{at}.user_addr")
    out["size"] = integer(item, "size", at)
    out["price"] = integer(item, "price", at, minimum=0)
    # price is the entry price; entry_price (read by hummingbot's connector) is filled from it.
    out["entry_price"] = out["price"]
    if "entry_price" in item and integer(item, "entry_price", at) != out["price"]:
        where = f"{at}.entry_price"
        raise FieldError(where, f"{where} must equal {at}.price (the position's entry price)")
    out["margin"] = integer(item, "margin", at)
    out["funding_index"] = number(item, "funding_index", at)
    out["epoch"] = integer(item, "epoch", at)
    out["is_cross"] = boolean(item, "is_cross", at)
    for name in _POSITION_OPTIONAL:
        if name in item:  # absent stays absent; null is kept
            out[name] = None if item[name] is None else number(item, name, at)
    out["mark_price"] = integer(item, "mark_price", at, minimum=0)
    out["seq"] = integer(item, "seq", at, minimum=0)
    out["side"] = side(item, at)  # "buy" is a long position, "sell" a short
    out["unrealized_pnl"] = integer(item, "unrealized_pnl", at)
    for name in _POSITION_PNL:
        if name in item:
            out[name] = None if item[name] is None else integer(item, name, at)
    for name in _POSITION_TRIGGERS:
        if name in item:
            out[name] = _int_or_null(item, name, at, minimum=0)
    out["timestamp"], out["timestamp_ms"] = stamps(item, now_ms, at)
    return out


_PRIVATE: dict[str, Callable[[dict[str, Any], str, str, int], dict[str, Any]]] = {
    "order": _order,
    "fill": _fill,
    "position": _position,
}
