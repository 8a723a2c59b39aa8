"""Delivery: lease due deliveries from the outbox, POST them signed, record the outcome.

At-least-once (PROTOCOL.md section 1, Webhooks): a delivery stays in the outbox until an
endpoint answers 2xx; a node that dies mid-delivery loses its lease and another node (or
itself after a restart) tries again with the same ``webhook-id``. Retries follow the
schedule with jitter, a ``Retry-After`` is honoured, 410 Gone disables the endpoint, and
so does failing continuously for 72 h. At most ``per_endpoint`` deliveries are in flight
per endpoint (across nodes: the store counts leases), so one slow receiver holds back only
itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence

import httpx

from streamgate.webhooks.schedule import (
    DEFAULT_SCHEDULE,
    DELIVERY_TIMEOUT,
    next_delay,
    parse_retry_after,
    should_disable,
)
from streamgate.webhooks.signing import headers as signed_headers
from streamgate.webhooks.store import Attempt, Delivery, Endpoint, WebhookStore
from streamgate.webhooks.targets import TargetRefused, TargetUnresolvable, resolve_and_check

__all__ = ["Dispatcher"]

log = logging.getLogger("streamgate.webhooks")


class Dispatcher:
    """Runs deliveries for this node until cancelled.

    Args:
        node: this node's name in leases.
        allow_private: deliver to loopback/private addresses (tests, local development).
        per_endpoint: deliveries in flight per endpoint, across nodes.
        max_in_flight: deliveries in flight on this node.
        lease: seconds a leased delivery is this node's before others may take it.
        poll: seconds between looks at the outbox when nothing wakes the dispatcher.
    """

    def __init__(
        self,
        store: WebhookStore,
        *,
        node: str,
        allow_private: bool,
        schedule: Sequence[float] = DEFAULT_SCHEDULE,
        per_endpoint: int = 4,
        max_in_flight: int = 64,
        lease: float = 60.0,
        poll: float = 1.0,
        timeout: float = DELIVERY_TIMEOUT,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.node = node
        self.allow_private = allow_private
        self.schedule = tuple(schedule)
        self.per_endpoint = per_endpoint
        self.max_in_flight = max_in_flight
        self.lease = max(lease, timeout * 2)  # a lease outlives any one attempt
        self.poll = poll
        self.timeout = timeout
        self.clock = clock
        self.rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look at the outbox now (new messages were enqueued)."""
        self._wake.set()

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=16)
        async with httpx.AsyncClient(
            timeout=self.timeout, follow_redirects=False, limits=limits
        ) as client:
            try:
                while True:
                    await self._round(client)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll)
                    self._wake.clear()
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _round(self, client: httpx.AsyncClient) -> None:
        free = self.max_in_flight - len(self._tasks)
        if free <= 0:
            return
        try:
            due = await self.store.claim_due(
                self.clock(),
                limit=free,
                lease=self.lease,
                node=self.node,
                per_endpoint=self.per_endpoint,
            )
        except Exception:
            log.exception("! cannot claim webhook deliveries; retrying")
            return
        for delivery in due:
            task = asyncio.create_task(self._deliver(client, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()  # a slot is free: there may be more due

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            endpoint = await self.store.endpoint(delivery.endpoint_id)
            if endpoint is None or not endpoint.enabled:
                return  # deleted or disabled meanwhile: its lease simply lapses
            await self._post(client, delivery, endpoint)
        except Exception:
            log.exception("! webhook delivery %s failed unexpectedly", delivery.id)

    async def _post(
        self, client: httpx.AsyncClient, delivery: Delivery, endpoint: Endpoint
    ) -> None:
        now = self.clock()
        secrets = [endpoint.secret]
        if endpoint.previous_secret and (endpoint.previous_secret_until or 0) > now:
            secrets.append(endpoint.previous_secret)  # rotation overlap: both sign
        headers = signed_headers(delivery.message_id, int(now), delivery.body, secrets)
        status: int | None = None
        error: str | None = None
        retry_after: float | None = None
        started = time.monotonic()
        try:
            await asyncio.wait_for(
                resolve_and_check(endpoint.url, allow_private=self.allow_private), self.timeout
            )
            response = await client.post(endpoint.url, content=delivery.body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
                retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock())
        except TargetUnresolvable as exc:
            error = f"unresolvable: {exc.reason}"
        except TargetRefused as exc:
            error = f"refused target: {exc.reason}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"timeout after {self.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = (time.monotonic() - started) * 1000
        now = self.clock()
        attempt = Attempt(
            delivery.id, delivery.message_id, endpoint.id, now, status, latency, error
        )
        if error is None:
            await self.store.record(delivery, attempt, outcome="succeeded", next_attempt_at=None)
            return
        if status == 410:
            await self.store.record(delivery, attempt, outcome="failed", next_attempt_at=None)
            await self.store.set_enabled(endpoint.id, False, "410 Gone")
            log.info("= webhook endpoint %s disabled: 410 Gone", endpoint.id)
            return
        delay = next_delay(
            delivery.attempts + 1, self.schedule, retry_after=retry_after, rng=self.rng
        )
        if delay is None:
            await self.store.record(delivery, attempt, outcome="failed", next_attempt_at=None)
        else:
            await self.store.record(delivery, attempt, outcome="retry", next_attempt_at=now + delay)
        failing_since = endpoint.failing_since if endpoint.failing_since is not None else now
        if should_disable(failing_since, now):
            await self.store.set_enabled(endpoint.id, False, "failing continuously for 72 h")
            log.info("= webhook endpoint %s disabled: failing for 72 h", endpoint.id)
