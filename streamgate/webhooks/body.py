"""A webhook's body and which events an endpoint receives (PROTOCOL.md section 1).

Body: compact JSON ``{"id", "type", "createdAt", "data"}`` in that order, where ``id``
is the message id (also ``webhook-id``), ``type`` the push event name
(``deposit.completed``, ``trade.active``, ...), ``createdAt`` the event's time as
ISO-8601 UTC with milliseconds and ``data`` the event's data as the push socket carries
it. Extension: ``"subUser"``, the sub-user the event addressed, follows ``data`` when
there is one. A push socket carries one sub-user's events, so it needs no such field,
but a webhook endpoint receives every sub-user of its tenant (server-side aggregation)
and would otherwise have to dig the owner out of ``data``, where not every event names
it. A tenant-wide event (``system.notice`` without a sub-user) has no ``subUser``.

Filters: an endpoint's ``eventTypes``. None or empty means every event. Otherwise an
event matches a filter equal to its name, or a wildcard ``<family>.*`` (``trade.*``,
``deposit.*``, ``system.*``) matching every name that starts with ``<family>.``;
:func:`check_event_types` accepts only names of the Events table and those wildcards.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from streamgate.core import exact_json
from streamgate.core.text import shown
from streamgate.protocol.push_events import PUSH_EVENTS

__all__ = [
    "EVENT_FAMILIES",
    "MAX_EVENT_TYPES",
    "check_event_types",
    "created_at",
    "event_matches",
    "webhook_body",
]

EVENT_FAMILIES: Final = tuple(dict.fromkeys(name.split(".", 1)[0] for name in PUSH_EVENTS))
MAX_EVENT_TYPES: Final = 64  # filters of one endpoint
_WILDCARDS: Final = frozenset(f"{family}.*" for family in EVENT_FAMILIES)
_KNOWN: Final = frozenset(PUSH_EVENTS) | _WILDCARDS


def webhook_body(
    msg_id: str,
    event_type: str,
    created_at_iso: str,
    data: object,
    sub_user: str | None,
) -> bytes:
    """The delivery body: ``{"id", "type", "createdAt", "data"}`` plus ``"subUser"``.

    ``subUser`` is this gateway's extension, present only when the event addressed one
    sub-user: webhooks aggregate all of a tenant's sub-users (module docstring).
    """
    body: dict[str, object] = {
        "id": msg_id,
        "type": event_type,
        "createdAt": created_at_iso,
        "data": data,
    }
    if sub_user is not None:
        body["subUser"] = sub_user
    return exact_json.dumps(body)


def created_at(ts_ms: int) -> str:
    """Unix milliseconds as ``createdAt``: ``"2024-05-01T12:00:00.000Z"``."""
    when = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


def event_matches(event_type: str, filters: Sequence[str] | None) -> bool:
    """Whether an endpoint with ``filters`` receives ``event_type`` (module docstring)."""
    if not filters:
        return True
    for pattern in filters:
        if pattern.endswith(".*"):
            if event_type.startswith(pattern[:-1]):
                return True
        elif event_type == pattern:
            return True
    return False


def check_event_types(values: Sequence[str]) -> tuple[str, ...]:
    """An endpoint's ``eventTypes`` as given by the tenant, checked; repeats dropped.

    Raises:
        ValueError: not a list of strings, more than :data:`MAX_EVENT_TYPES`, or a name
            that is neither an event of the Events table nor a ``<family>.*`` wildcard.
    """
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise ValueError("eventTypes must be a list of event names")
    if len(values) > MAX_EVENT_TYPES:
        raise ValueError(f"eventTypes holds at most {MAX_EVENT_TYPES} names")
    for value in values:
        if not isinstance(value, str) or value not in _KNOWN:
            raise ValueError(
                f"eventTypes: unknown event {shown(value, 80)}; an event name such as "
                f"'deposit.completed' or one of {', '.join(sorted(_WILDCARDS))}"
            )
    return tuple(dict.fromkeys(values))
