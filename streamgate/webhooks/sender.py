"""Delivery: lease due deliveries from the outbox, POST them signed, record the outcome.

At-least-once (PROTOCOL.md section 1, Webhooks): a delivery stays in the outbox until an
endpoint answers 2xx; a node that dies mid-delivery loses its lease and another node
tries again with the same ``webhook-id``. Leases are short (``lease``, 10 s by default)
and renewed every third of that while their attempt is in flight, so a slow endpoint
keeps its delivery and a dead node's work resumes within one lease; a node restarting
under its old lease name (:mod:`.node`) takes its leases back before its first claim.
Retries follow the schedule with jitter, a ``Retry-After`` is honoured, 410 Gone
disables the endpoint, and so does failing continuously for 72 h. At most
``per_endpoint`` deliveries are in flight per endpoint (across nodes: the store counts
leases), so one slow receiver holds back only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence

import httpx

from streamgate.observability.stats import EndpointFailure, WebhookStats
from streamgate.webhooks.connect import vetted, vetted_transport
from streamgate.webhooks.model import Attempt, Delivery, Endpoint, WebhookStore
from streamgate.webhooks.schedule import (
    DEFAULT_SCHEDULE,
    DELIVERY_TIMEOUT,
    next_delay,
    parse_retry_after,
    should_disable,
)
from streamgate.webhooks.signing import headers as signed_headers
from streamgate.webhooks.targets import (
    DEFAULT_PORTS,
    Resolver,
    TargetRefused,
    TargetUnresolvable,
    resolve_and_check,
    system_resolver,
)

__all__ = ["DEFAULT_LEASE", "Dispatcher"]

DEFAULT_LEASE = 10.0  # seconds; renewed every third of it while the attempt runs

log = logging.getLogger("streamgate.webhooks")


class Dispatcher:
    """Runs deliveries for this node until cancelled.

    Args:
        node: this node's name in leases.
        take_back: ``node`` is this node's name from earlier runs (:mod:`.node`): end its
            leases before the first claim, since none of its attempts is in flight.
        allow_private: deliver to loopback/private addresses (tests, local development).
        per_endpoint: deliveries in flight per endpoint, across nodes.
        max_in_flight: deliveries in flight on this node.
        lease: seconds a leased delivery is this node's before others may take it,
            renewed every ``lease / 3`` while its attempt is in flight.
        poll: seconds between looks at the outbox when nothing wakes the dispatcher.
        resolver: resolves target hosts; the connection goes to the addresses it gave
            and vetted, never to a second lookup's (:mod:`.connect`).
        verify: TLS verification (tests pass a context trusting their own CA).
    """

    def __init__(
        self,
        store: WebhookStore,
        *,
        node: str,
        allow_private: bool,
        take_back: bool = False,
        schedule: Sequence[float] = DEFAULT_SCHEDULE,
        per_endpoint: int = 4,
        max_in_flight: int = 64,
        lease: float = DEFAULT_LEASE,
        poll: float = 1.0,
        timeout: float = DELIVERY_TIMEOUT,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.store = store
        self.node = node
        self.allow_private = allow_private
        self.schedule = tuple(schedule)
        self.per_endpoint = per_endpoint
        self.max_in_flight = max_in_flight
        if lease <= 0:
            raise ValueError("lease must be positive")
        self.lease = lease
        self.renew_every = lease / 3
        self.poll = poll
        self.timeout = timeout
        self.clock = clock
        self.rng = rng or random.Random()
        self.resolver = resolver
        self.verify = verify
        self._wake = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], int] = {}  # attempt -> its delivery id
        self._taken_back = not take_back
        self.stats = WebhookStats()

    @property
    def in_flight(self) -> int:
        """Attempts this node has in flight now."""
        return len(self._in_flight)

    def wake(self) -> None:
        """Look at the outbox now (new messages were enqueued)."""
        self._wake.set()

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=16)
        async with httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            transport=vetted_transport(limits=limits, verify=self.verify),
        ) as client:
            renewing = asyncio.create_task(self._renew_leases())
            try:
                while True:
                    await self._round(client)
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                    # that comes as the wait times out, and the dispatcher would never stop.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.poll):
                            await self._wake.wait()
                    self._wake.clear()
            finally:
                tasks = [renewing, *self._in_flight]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _renew_leases(self) -> None:
        """Every ``lease / 3``, extend the leases of the attempts in flight (one query)."""
        while True:
            await asyncio.sleep(self.renew_every)
            ids = list(self._in_flight.values())
            if not ids:
                continue
            try:
                await self.store.renew(ids, node=self.node, until=self.clock() + self.lease)
            except Exception as exc:  # the next tick tries again, the lease has 2/3 left
                log.warning("! cannot renew %d webhook leases: %s", len(ids), exc)

    async def _take_back(self) -> bool:
        """End the leases an earlier run of this node left (once); False: not yet."""
        if self._taken_back:
            return True
        try:
            ended = await self.store.release_leases(self.node)
        except Exception:
            log.exception("! cannot take back this node's webhook leases; retrying")
            return False
        self._taken_back = True
        if ended:
            log.info("= took back %d webhook deliveries leased before a restart", ended)
        return True

    async def _round(self, client: httpx.AsyncClient) -> None:
        free = self.max_in_flight - len(self._in_flight)
        if free <= 0 or not await self._take_back():
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
            self._in_flight[task] = delivery.id
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
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
        result = "success"
        retry_after: float | None = None
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                addresses = await resolve_and_check(
                    endpoint.url, allow_private=self.allow_private, resolver=self.resolver
                )
            url = httpx.URL(endpoint.url)
            with vetted(url.host, url.port or DEFAULT_PORTS[url.scheme], addresses):
                response = await client.post(url, content=delivery.body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
                result = f"{status // 100}xx"
                retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock())
        except TargetUnresolvable as exc:
            error, result = f"unresolvable: {exc.reason}", "unresolvable"
        except TargetRefused as exc:
            error, result = f"refused target: {exc.reason}", "refused_target"
        except (TimeoutError, httpx.TimeoutException):
            error, result = f"timeout after {self.timeout:g} s", "timeout"
        except httpx.HTTPError as exc:
            error, result = f"{type(exc).__name__}: {exc}", "connection_error"
        latency = (time.monotonic() - started) * 1000
        self._count(endpoint, result, latency / 1000, error)
        log.debug(
            "= webhook %s to endpoint %s: %s in %.0f ms",
            delivery.message_id,
            endpoint.id,
            result,
            latency,
        )
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
            self.stats.disabled["gone"] += 1
            log.warning("! webhook endpoint %s disabled: 410 Gone", endpoint.id)
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
            self.stats.disabled["failing"] += 1
            log.warning("! webhook endpoint %s disabled: failing for 72 h", endpoint.id)

    def _count(self, endpoint: Endpoint, result: str, seconds: float, error: str | None) -> None:
        stats = self.stats
        stats.attempts[result] += 1
        stats.latency.observe(seconds)
        if error is None:
            stats.succeeded(endpoint.id)
            return
        now = self.clock()
        stats.failed(
            EndpointFailure(endpoint.id, endpoint.tenant, _target(endpoint.url), now, error, now)
        )


def _target(url: str) -> str:
    """``url`` without its query, fragment or credentials (they may hold secrets)."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"
