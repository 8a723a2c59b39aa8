"""Field checkers shared by the producer API's market, private and push events.

Each checker takes an object, a field name and the dotted ``path`` of the object in the
event (``""`` at the top, ``"data"``, ``"data[0]"``...), returns the value it accepted,
and raises :class:`FieldError` naming the field (``path.name``) otherwise.
:func:`~streamgate.protocol.producer.parse_batch` turns a :class:`FieldError` into the
batch's :class:`~streamgate.errors.ProducerRefusal`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from streamgate.core.exact_json import JsonNumber
from streamgate.core.identifiers import id_problem

__all__ = [
    "U64_MAX",
    "FieldError",
    "Number",
    "boolean",
    "channel_id",
    "choice",
    "data_object",
    "integer",
    "is_number",
    "join",
    "number",
    "objects",
    "only",
    "required",
    "side",
    "stamps",
    "string",
    "trade_id",
]


class FieldError(Exception):
    """A refused field: its dotted path, the message, the refusal code."""

    def __init__(self, field: str, message: str, code: str = "INVALID_EVENT") -> None:
        self.field = field
        self.message = message
        self.code = code


def join(path: str, name: str) -> str:
    """The dotted path of ``name`` inside the object at ``path``."""
    return f"{path}.{name}" if path else name


def only(obj: dict[str, Any], allowed: set[str], path: str, what: str = "") -> None:
    """Refuse the first field of ``obj`` not in ``allowed`` (``what`` names the object)."""
    for name in obj:
        if name not in allowed:
            raise FieldError(join(path, name), f"unknown field {name!r}{what and ' in '}{what}")


def required(obj: dict[str, Any], name: str, path: str) -> tuple[Any, str]:
    """Return ``obj[name]`` and its path; absent or null is refused as required."""
    value = obj.get(name)
    where = join(path, name)
    if value is None:
        raise FieldError(where, f"{where} is required")
    return value, where


def integer(obj: dict[str, Any], name: str, path: str, *, minimum: int | None = None) -> int:
    """A required integer (not a boolean), at least ``minimum`` if given."""
    value, where = required(obj, name, path)
    if not isinstance(value, int) or isinstance(value, bool):
        raise FieldError(where, f"{where} must be an integer")
    if minimum is not None and value < minimum:
        raise FieldError(where, f"{where} must be >= {minimum}")
    return value


Number = int | float | JsonNumber


def is_number(value: Any) -> bool:
    """A JSON number: an integer (not a boolean), a float, or a literal kept exact."""
    return isinstance(value, int | float | JsonNumber) and not isinstance(value, bool)


def number(obj: dict[str, Any], name: str, path: str) -> Number:
    """A required JSON number, returned as sent (a fraction stays its literal text)."""
    value, where = required(obj, name, path)
    if not is_number(value):
        raise FieldError(where, f"{where} must be a number")
    return value  # type: ignore[no-any-return]


U64_MAX = 2**64 - 1


def trade_id(obj: dict[str, Any], name: str, path: str) -> int | str:
    """A trade id: an unsigned 64-bit integer (as the stream's trade docs type it) or a
    non-empty string; passed on as sent."""
    value, where = required(obj, name, path)
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= U64_MAX:
        return value
    raise FieldError(
        where, f"{where} must be an unsigned 64-bit integer (0..{U64_MAX}) or a non-empty string"
    )


def string(obj: dict[str, Any], name: str, path: str) -> str:
    """A required non-empty string."""
    value, where = required(obj, name, path)
    if not isinstance(value, str) or not value:
        raise FieldError(where, f"{where} must be a non-empty string")
    return value


def boolean(obj: dict[str, Any], name: str, path: str) -> bool:
    """A required ``true`` or ``false``."""
    value, where = required(obj, name, path)
    if not isinstance(value, bool):
        raise FieldError(where, f"{where} must be true or false")
    return value


def choice(
    obj: dict[str, Any], name: str, path: str, allowed: tuple[str, ...], default: str | None = None
) -> str:
    """One of ``allowed``; an absent field takes ``default``."""
    value = obj.get(name, default)
    if value not in allowed:
        where = join(path, name)
        raise FieldError(where, f"{where} must be one of {', '.join(allowed)}")
    return str(value)


def side(obj: dict[str, Any], path: str) -> str:
    """The ``side`` field: ``buy`` or ``sell``."""
    value = obj.get("side")
    if value not in ("buy", "sell"):
        raise FieldError(f"{path}.side", f"{path}.side must be 'buy' or 'sell'")
    return str(value)


def stamps(data: dict[str, Any], now_ms: int, path: str = "data") -> tuple[int, int]:
    """Return (timestamp s, timestamp_ms), deriving an absent one from the other or now."""
    has_ms, has_sec = "timestamp_ms" in data, "timestamp" in data
    sec = integer(data, "timestamp", path, minimum=0) if has_sec else None
    if has_ms:
        ms = integer(data, "timestamp_ms", path, minimum=0)
    else:
        ms = now_ms if sec is None else sec * 1000
    return (ms // 1000 if sec is None else sec), ms


def data_object(event: dict[str, Any]) -> dict[str, Any]:
    """An event's ``data`` when it must be an object."""
    data = event.get("data")
    if not isinstance(data, dict):
        raise FieldError("data", "data must be an object")
    return data


def objects(items: list[Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(path, item)`` for each item of the array at ``where``; each must be an object."""
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise FieldError(at, f"{at} must be an object")
        yield at, item


def channel_id(value: Any, field: str, max_len: int) -> str:
    """An id that becomes part of a channel name (the rule of
    :func:`~streamgate.core.identifiers.id_problem`)."""
    problem = id_problem(value, max_len)
    if problem is not None:
        raise FieldError(field, f"{field} {problem}")
    return str(value)
