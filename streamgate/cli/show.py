"""One readable line per event (``tail``, ``push tail``), and the connection's news."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streamgate.client.events import Disconnected, Event, Reconnected
from streamgate.core import exact_json

__all__ = ["disconnected_line", "event_line", "gist", "json_line", "reconnected_line"]

_QUIET = frozenset({"market_addr", "timestamp", "timestamp_ms", "seq", "type", "ts", "symbol"})
MAX_GIST = 160


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return exact_json.dumps(value).decode()


def _fields(data: dict[str, Any]) -> str:
    parts = []
    for key, value in data.items():
        if key in _QUIET:
            continue
        if isinstance(value, list):
            parts.append(f"{key}[{len(value)}]")
        elif isinstance(value, dict):
            parts.append(f"{key}{{{_fields(value)}}}")
        else:
            parts.append(f"{key}={_scalar(value)}")
    return " ".join(parts)


def _levels(levels: Any) -> str:
    return f"{len(levels)}" if isinstance(levels, list) else "?"


def _changes(data: dict[str, Any], most: int = 4) -> str:
    """A small delta's levels: ``ask 160 @ 6500600``, ``bid @ 6500400 removed``."""
    out = []
    for side in ("asks", "bids"):
        levels = data.get(side)
        for level in levels if isinstance(levels, list) else ():
            if not (isinstance(level, list) and len(level) >= 2):
                return ""
            price, size = _scalar(level[0]), _scalar(level[1])
            out.append(
                f"{side[:-1]} @ {price} removed" if size == "0" else f"{side[:-1]} {size} @ {price}"
            )
    return ", ".join(out) if len(out) <= most else ""


def gist(data: Any) -> str:
    """What an event says, in a few words: trades, book changes, a ticker, a push."""
    if isinstance(data, list):  # private events: OrderResponse, FillResponse ... items
        items = [_fields(item) if isinstance(item, dict) else _scalar(item) for item in data]
        text = "; ".join(items)
    elif not isinstance(data, dict):
        text = _scalar(data)
    elif isinstance(data.get("trades"), list):
        text = ", ".join(
            f"{t.get('side')} {_scalar(t.get('size'))} @ {_scalar(t.get('price'))}"
            for t in data["trades"]
            if isinstance(t, dict)
        )
    elif data.get("type") in ("orderbook_snapshot", "orderbook_delta"):
        kind = "snapshot" if data["type"] == "orderbook_snapshot" else "delta"
        text = f"{kind}: {_levels(data.get('asks'))} asks, {_levels(data.get('bids'))} bids"
        if kind == "delta":
            changes = _changes(data)
            text = f"delta: {changes}" if changes else text
        for side in ("asks", "bids"):
            levels = data.get(side)
            if kind == "snapshot" and isinstance(levels, list) and levels:
                best = levels[0] if side == "asks" else levels[-1]
                if isinstance(best, list) and len(best) >= 2:
                    text += f", best {side[:-1]} {_scalar(best[1])} @ {_scalar(best[0])}"
    else:
        text = _fields(data)
    return text if len(text) <= MAX_GIST else text[: MAX_GIST - 1] + "…"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def event_line(event: Event, topic: str | None = None) -> str:
    """``time topic seq offset gist``; ``topic`` replaces the event's (a symbol for an address)."""
    seq = "-" if event.seq is None else str(event.seq)
    offset = "-" if event.offset is None else str(event.offset)
    when = _clock(event.received_at)
    return f"{when} {topic or event.topic} seq={seq} offset={offset} {gist(event.data)}"


def json_line(event: Event) -> str:
    """The event as one JSON line: topic, offset, epoch, seq, received_at, data (exact)."""
    doc = {
        "topic": event.topic,
        "offset": event.offset,
        "epoch": event.epoch,
        "seq": event.seq,
        "received_at": event.received_at,
        "data": event.data,
    }
    return exact_json.dumps(doc).decode()


def disconnected_line(item: Disconnected) -> str:
    why = " ".join(str(p) for p in (item.code, item.reason) if p not in (None, ""))
    why = f" ({why})" if why else ""
    if item.retry_in is None:
        return f"-- disconnected{why}; not reconnecting"
    return f"-- disconnected{why}; reconnecting in {item.retry_in:.1f} s"


def reconnected_line(item: Reconnected, names: dict[str, str] | None = None) -> str:
    names = names or {}
    if item.recovered:
        return f"-- reconnected (attempt {item.attempt}): recovered, no event missed"
    lost = ", ".join(names.get(t, t) for t in item.not_recovered)
    return (
        f"-- reconnected (attempt {item.attempt}): NOT recovered: events of {lost} were lost"
        " (history ran out or another epoch)"
    )
