"""Client values shown in refusals: short, and never a walk through a hostile structure."""

from __future__ import annotations

__all__ = ["shown"]


def shown(value: object, limit: int = 64) -> str:
    """``value`` as a refusal quotes it: a string's repr cut to ``limit``, else its type.

    A refusal never formats a list or an object the client sent: ``repr`` of one nested a
    thousand levels deep raises ``RecursionError``, and a huge one costs its size.
    """
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    if value is None or isinstance(value, bool | int | float):
        return repr(value)[:limit]
    if isinstance(value, dict):
        return "a JSON object"
    return "a JSON array" if isinstance(value, list) else f"a {type(value).__name__}"
