"""The webhook outbox's model (see :mod:`.store`).

The records (:class:`Endpoint`, :class:`OutboxMessage`, :class:`Delivery`,
:class:`Attempt`, :class:`MessageInfo`), the :class:`WebhookStore` interface and the
checks every backend makes before it writes. The tables are in :mod:`.schema`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import orjson

from streamgate.auth.apikeys import check_tenant
from streamgate.webhooks.body import event_matches

__all__ = [
    "ENDPOINT_ID_PREFIX",
    "OUTCOMES",
    "Attempt",
    "Delivery",
    "Endpoint",
    "Matcher",
    "MessageInfo",
    "OutboxMessage",
    "Outcome",
    "WebhookNotFound",
    "WebhookStore",
    "check_outcome",
    "dump_event_types",
    "event_type_matches",
    "load_event_types",
    "new_endpoint_id",
    "unique_messages",
]


ENDPOINT_ID_PREFIX: Final = "ep_"

Outcome = Literal["succeeded", "retry", "failed"]
OUTCOMES: Final[tuple[str, ...]] = ("succeeded", "retry", "failed")

# (event_type, the endpoint's filter) -> whether the endpoint takes the event.
Matcher = Callable[[str, Sequence[str] | None], bool]


class WebhookNotFound(LookupError):
    """No such endpoint or message for this tenant (HTTP 404)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A tenant's webhook endpoint, secrets included (never list those to the tenant)."""

    id: str  # "ep_" + 24 hex digits
    tenant: str
    url: str
    event_types: tuple[str, ...] | None  # None: every event
    enabled: bool
    secret: str
    previous_secret: str | None  # still signed with until previous_secret_until
    previous_secret_until: float | None
    created_at: float
    failing_since: float | None  # first failure since the last success
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One event to write to the outbox, with the endpoints it goes to."""

    message_id: str  # the webhook-id, unique across tenants
    tenant: str
    event_type: str
    created_at: float  # unix seconds; also when the first delivery is due
    body: bytes  # the exact bytes to POST
    endpoint_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A leased delivery: one message to one endpoint."""

    id: int
    message_id: str
    endpoint_id: str
    attempts: int  # attempts recorded before this one
    next_attempt_at: float  # when it fell due
    event_type: str
    body: bytes  # the exact bytes to POST (the same on every retry)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of a delivery."""

    delivery_id: int
    message_id: str
    endpoint_id: str
    at: float
    status_code: int | None  # None: no HTTP response (timeout, refused, ...)
    latency_ms: float
    error: str | None


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """A stored message and how its deliveries stand, for listing."""

    message_id: str
    tenant: str
    event_type: str
    created_at: float
    body: bytes
    pending: int  # deliveries in each state (canceled ones are not counted)
    succeeded: int
    failed: int


class WebhookStore(Protocol):
    """The outbox interface; see the module docstring. Every method is a coroutine."""

    async def create_endpoint(
        self, tenant: str, url: str, event_types: tuple[str, ...] | None, secret: str
    ) -> Endpoint:
        """Add an enabled endpoint for ``tenant`` (a valid tenant name)."""
        ...

    async def list_endpoints(self, tenant: str) -> list[Endpoint]:
        """The tenant's endpoints, oldest first."""
        ...

    async def get_endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        """The tenant's endpoint ``endpoint_id``, or None."""
        ...

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        """The endpoint ``endpoint_id`` of any tenant (for delivering), or None."""
        ...

    async def delete_endpoint(self, tenant: str, endpoint_id: str) -> bool:
        """Delete it and cancel its pending deliveries; False when there is none."""
        ...

    async def set_enabled(self, endpoint_id: str, enabled: bool, reason: str | None = None) -> None:
        """Enable (clearing the reason and ``failing_since``) or disable, with a reason."""
        ...

    async def rotate_secret(
        self, endpoint_id: str, new_secret: str, overlap_until: float
    ) -> Endpoint:
        """Make ``new_secret`` current; the old one stays valid until ``overlap_until``.

        Raises:
            WebhookNotFound: no such endpoint.
        """
        ...

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> int:
        """Write the messages and one delivery per endpoint, committed before returning.

        A message id already stored is skipped whole (a republished batch delivers
        nothing twice); endpoint ids not of the message's tenant are skipped. Returns the
        number of deliveries created.
        """
        ...

    async def claim_due(
        self, now: float, *, limit: int, lease: float, node: str, per_endpoint: int
    ) -> list[Delivery]:
        """Lease up to ``limit`` due deliveries until ``now + lease``, oldest due first.

        Only enabled endpoints, and at most ``per_endpoint`` unexpired leases per
        endpoint at once (across all nodes).
        """
        ...

    async def renew(self, delivery_ids: Sequence[int], *, node: str, until: float) -> int:
        """Extend to ``until`` the leases ``node`` still holds on these pending deliveries
        (a lease another node has taken since is left alone); returns how many."""
        ...

    async def release_leases(self, node: str) -> int:
        """End every lease ``node`` holds: its deliveries are due again at once.

        Only for a node that knows no attempt of its own is in flight: one restarting under
        its earlier name. Returns how many leases ended.
        """
        ...

    async def record(
        self,
        delivery: Delivery,
        attempt: Attempt,
        *,
        outcome: Outcome,
        next_attempt_at: float | None,
    ) -> None:
        """Keep ``attempt`` and end the lease: done, due again at ``next_attempt_at``
        (``"retry"``, required there), or failed for good. Updates ``failing_since``.
        """
        ...

    async def attempts(self, tenant: str, message_id: str) -> list[Attempt]:
        """Every attempt of the tenant's message, in order."""
        ...

    async def messages(self, tenant: str, *, since: float | None, limit: int) -> list[MessageInfo]:
        """The tenant's messages created at or after ``since``, oldest first."""
        ...

    async def resend(self, tenant: str, message_id: str, endpoint_id: str | None) -> int:
        """A new pending delivery of the message to ``endpoint_id``, or to every existing
        endpoint it was delivered to when None; returns how many.

        Raises:
            WebhookNotFound: no such message, or endpoint, of the tenant.
        """
        ...

    async def recover(
        self,
        tenant: str,
        endpoint_id: str,
        since: float,
        *,
        match: Matcher | None = None,
    ) -> int:
        """A new pending delivery to the endpoint of every message of the tenant created
        at or after ``since`` that its filter takes (``match``, by default
        :func:`event_type_matches`), except those already pending there; returns how many.

        Raises:
            WebhookNotFound: no such endpoint of the tenant.
        """
        ...

    async def due_count(self, now: float) -> int:
        """Pending deliveries to enabled endpoints due at ``now`` and not leased (metrics)."""
        ...

    async def ping(self) -> None:
        """Reach the database once (``/readyz``); raises what the database raises."""
        ...

    async def prune(self, before: float) -> int:
        """Forget messages created before ``before`` with nothing pending; returns how many."""
        ...

    async def close(self) -> None:
        """Release the store's connections; idempotent."""
        ...


# The one filter rule, shared with the outbox writer (body.py).
event_type_matches = event_matches


def new_endpoint_id() -> str:
    return ENDPOINT_ID_PREFIX + secrets.token_hex(12)


def check_outcome(outcome: str, next_attempt_at: float | None) -> None:
    """Raise ValueError for an unknown outcome or a retry without a time."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    if outcome == "retry" and next_attempt_at is None:
        raise ValueError("a retry needs next_attempt_at")


def unique_messages(messages: Sequence[OutboxMessage]) -> list[OutboxMessage]:
    """The batch without repeated message ids (first kept), each endpoint listed once."""
    seen: dict[str, OutboxMessage] = {}
    for message in messages:
        if not isinstance(message.body, bytes):
            raise TypeError("OutboxMessage.body must be bytes")
        check_tenant(message.tenant)
        if message.message_id not in seen:
            seen[message.message_id] = message
    return list(seen.values())


def dump_event_types(event_types: tuple[str, ...] | None) -> str | None:
    return None if event_types is None else orjson.dumps(list(event_types)).decode()


def load_event_types(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(orjson.loads(text))
