"""From published push events to outbox messages, before the publish is acknowledged.

Webhooks aggregate a tenant's push events across its sub-users (PROTOCOL.md section 1).
Each push event of a tenant with matching, enabled endpoints becomes one message (one
``webhook-id``) with one delivery per endpoint, committed to the outbox by
:meth:`Outbox.enqueue_push` before the producer API answers 200: a crash after the
answer loses nothing.

One event, one message id: an event with an idempotency key gets
:func:`~streamgate.webhooks.signing.keyed_message_id` (tenant + key), and the store skips
a message id it already holds, so a producer's retry, the same publish racing on two
nodes, or a retry landing on another node adds no second message. An event without a key
gets a fresh id: one message per accepted publish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from streamgate.core.channels import is_push_tenant_wide, push_sub_user, push_tenant
from streamgate.webhooks.body import created_at, event_matches, webhook_body
from streamgate.webhooks.model import Endpoint, OutboxMessage, WebhookStore
from streamgate.webhooks.signing import keyed_message_id, new_message_id

__all__ = ["Outbox", "PushEvent"]


class PushEvent(NamedTuple):
    """A published push event: its channel, ``{"event", "data"}`` and idempotency key."""

    channel: str
    payload: Any
    idempotency_key: str | None = None


class Outbox:
    """Writes push events to the webhook outbox and wakes the dispatcher."""

    def __init__(
        self,
        store: WebhookStore,
        *,
        wake: Callable[[], None] | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.store = store
        self.wake = wake
        self.clock_ms = clock_ms

    async def enqueue_push(self, events: Sequence[PushEvent]) -> int:
        """Enqueue push events; return the deliveries created (0 for messages already held).

        A tenant-wide ``system.notice`` (its channel is the tenant prefix) is one message
        without ``subUser``. Safe to repeat for keyed events: it adds nothing the second
        time.
        """
        endpoints: dict[str, list[Endpoint]] = {}
        messages = []
        now_ms = self.clock_ms()
        for channel, payload, key in events:
            tenant = push_tenant(channel)
            if tenant not in endpoints:
                endpoints[tenant] = [
                    e for e in await self.store.list_endpoints(tenant) if e.enabled
                ]
            event_type = payload["event"]
            targets = tuple(
                e.id for e in endpoints[tenant] if event_matches(event_type, e.event_types)
            )
            if not targets:
                continue
            msg_id = new_message_id() if key is None else keyed_message_id(tenant, key)
            sub_user = None if is_push_tenant_wide(channel) else push_sub_user(channel)
            body = webhook_body(msg_id, event_type, created_at(now_ms), payload["data"], sub_user)
            messages.append(OutboxMessage(msg_id, tenant, event_type, now_ms / 1000, body, targets))
        if not messages:
            return 0
        created = await self.store.enqueue(messages)
        if created and self.wake is not None:
            self.wake()
        return created
