"""The outbox's algorithm, once, over a :class:`Dialect` and an executor.

:class:`OutboxStore` implements :class:`~streamgate.webhooks.model.WebhookStore`: each
method builds a plan (:mod:`streamgate.storage.plan`: statements yielded, results sent
back, no I/O) and hands it to its executor, which runs it in SQLite's worker thread or on
a pooled PostgreSQL connection. What the two databases do differently lives in their
:class:`Dialect`: how a batch is enqueued, how due deliveries are claimed (SQLite's
single writer, PostgreSQL's ``FOR UPDATE SKIP LOCKED``) and how a set of ids is matched.
The rest (the SQL of every other statement, in sqlite3's ``?`` style) both run as is.
"""

# SQL text here is assembled from this package's constants only; values are always
# bound parameters.
# ruff: noqa: S608
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from streamgate.auth.apikeys import check_tenant
from streamgate.storage.plan import Executor, Kind, Plan, Query
from streamgate.webhooks.model import (
    Attempt,
    Delivery,
    Endpoint,
    Matcher,
    MessageInfo,
    OutboxMessage,
    Outcome,
    WebhookNotFound,
    check_outcome,
    dump_event_types,
    event_type_matches,
    load_event_types,
    new_endpoint_id,
    unique_messages,
)
from streamgate.webhooks.schema import (
    ATTEMPT_COLUMNS,
    ENDPOINT_COLUMNS,
    MESSAGE_COLUMNS,
    attempt_row,
    endpoint_row,
    message_row,
)

__all__ = ["Dialect", "OutboxStore"]

_INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (message_id, endpoint_id, state, attempts,"
    " next_attempt_at, created_at) VALUES (?, ?, 'pending', 0, ?, ?)"
)


class Dialect(Protocol):
    """What one database does its own way; each piece is a plan or a SQL fragment."""

    # How enqueue's plan runs: "write" when it is one statement, else "transaction".
    enqueue_kind: Kind

    def enqueue(self, batch: Sequence[OutboxMessage], now: float) -> Plan[int]:
        """Store the (unique) messages and their deliveries; the deliveries created."""
        ...

    def claim(
        self, now: float, *, limit: int, until: float, node: str, per_endpoint: int
    ) -> Plan[list[Delivery]]:
        """Lease due deliveries to ``node`` until ``until`` (see ``WebhookStore``), in a
        transaction; oldest due first."""
        ...

    def id_in(self, ids: Sequence[int]) -> list[tuple[str, tuple[Any, ...]]]:
        """``ids`` as ``(condition on a column, its parameters)`` chunks, e.g. ``IN (?, ?)``."""
        ...


class OutboxStore:
    """The webhook outbox; see :mod:`streamgate.webhooks.store` for the behaviour."""

    def __init__(
        self, executor: Executor, dialect: Dialect, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._executor = executor
        self._dialect = dialect
        self._clock = clock

    # endpoints

    async def create_endpoint(
        self, tenant: str, url: str, event_types: tuple[str, ...] | None, secret: str
    ) -> Endpoint:
        check_tenant(tenant)
        endpoint = Endpoint(
            id=new_endpoint_id(),
            tenant=tenant,
            url=url,
            event_types=None if event_types is None else tuple(event_types),
            enabled=True,
            secret=secret,
            previous_secret=None,
            previous_secret_until=None,
            created_at=self._clock(),
            failing_since=None,
            disabled_reason=None,
        )
        params = (
            endpoint.id,
            tenant,
            url,
            dump_event_types(endpoint.event_types),
            secret,
            endpoint.created_at,
        )

        def plan() -> Plan[None]:
            yield Query(
                f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS})"
                " VALUES (?, ?, ?, ?, true, ?, NULL, NULL, ?, NULL, NULL)",
                params,
            )

        await self._executor.run(plan, kind="write")
        return endpoint

    async def _endpoints(self, where: str, params: tuple[Any, ...]) -> list[Endpoint]:
        def plan() -> Plan[list[Endpoint]]:
            found = yield Query(f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints {where}", params)
            return [endpoint_row(row) for row in found.rows]

        return await self._executor.run(plan, kind="read", repeatable=True)

    async def list_endpoints(self, tenant: str) -> list[Endpoint]:
        return await self._endpoints("WHERE tenant = ? ORDER BY created_at, id", (tenant,))

    async def get_endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        found = await self._endpoints("WHERE id = ? AND tenant = ?", (endpoint_id, tenant))
        return found[0] if found else None

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        found = await self._endpoints("WHERE id = ?", (endpoint_id,))
        return found[0] if found else None

    async def delete_endpoint(self, tenant: str, endpoint_id: str) -> bool:
        now = self._clock()

        def plan() -> Plan[bool]:
            deleted = yield Query(
                "DELETE FROM webhook_endpoints WHERE id = ? AND tenant = ?", (endpoint_id, tenant)
            )
            if deleted.rowcount == 0:
                return False
            yield Query(
                "UPDATE webhook_deliveries SET state = 'canceled', lease_until = NULL,"
                " lease_node = NULL, done_at = ? WHERE endpoint_id = ? AND state = 'pending'",
                (now, endpoint_id),
            )
            return True

        return await self._executor.run(plan, kind="transaction")

    async def set_enabled(self, endpoint_id: str, enabled: bool, reason: str | None = None) -> None:
        def plan() -> Plan[None]:
            if enabled:
                yield Query(
                    "UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL,"
                    " failing_since = NULL WHERE id = ?",
                    (endpoint_id,),
                )
            else:
                yield Query(
                    "UPDATE webhook_endpoints SET enabled = false, disabled_reason = ?"
                    " WHERE id = ?",
                    (reason, endpoint_id),
                )

        await self._executor.run(plan, kind="write", repeatable=True)

    async def rotate_secret(
        self, endpoint_id: str, new_secret: str, overlap_until: float
    ) -> Endpoint:
        def plan() -> Plan[Endpoint]:
            found = yield Query(
                "UPDATE webhook_endpoints SET previous_secret = secret,"
                " previous_secret_until = ?, secret = ? WHERE id = ?"
                f" RETURNING {ENDPOINT_COLUMNS}",
                (overlap_until, new_secret, endpoint_id),
            )
            if not found.rows:
                raise WebhookNotFound(f"no endpoint {endpoint_id!r}")
            return endpoint_row(found.rows[0])

        return await self._executor.run(plan, kind="write")

    # the outbox

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> int:
        batch = unique_messages(messages)
        if not batch:
            return 0
        now = self._clock()
        # Repeating it after a lost commit adds nothing: message ids are unique.
        return await self._executor.run(
            lambda: self._dialect.enqueue(batch, now),
            kind=self._dialect.enqueue_kind,
            repeatable=True,
        )

    async def claim_due(
        self, now: float, *, limit: int, lease: float, node: str, per_endpoint: int
    ) -> list[Delivery]:
        if lease <= 0:
            raise ValueError("lease must be positive")
        if limit <= 0 or per_endpoint <= 0:
            return []

        def plan() -> Plan[list[Delivery]]:
            chosen = yield from self._dialect.claim(
                now, limit=limit, until=now + lease, node=node, per_endpoint=per_endpoint
            )
            chosen.sort(key=lambda d: (d.next_attempt_at, d.id))
            return chosen

        # Lost leases merely expire, so a repeat is safe.
        return await self._executor.run(plan, kind="transaction", repeatable=True)

    async def renew(self, delivery_ids: Sequence[int], *, node: str, until: float) -> int:
        ids = list(dict.fromkeys(delivery_ids))
        if not ids:
            return 0

        def plan() -> Plan[int]:
            renewed = 0
            for condition, chunk in self._dialect.id_in(ids):
                done = yield Query(
                    "UPDATE webhook_deliveries SET lease_until = ? WHERE lease_node = ?"
                    f" AND state = 'pending' AND lease_until IS NOT NULL AND id {condition}",
                    (until, node, *chunk),
                )
                renewed += done.rowcount
            return renewed

        # Repeating it after a lost answer extends the same leases to the same time.
        return await self._executor.run(plan, kind="write", repeatable=True)

    async def release_leases(self, node: str) -> int:
        def plan() -> Plan[int]:
            done = yield Query(
                "UPDATE webhook_deliveries SET lease_until = NULL, lease_node = NULL"
                " WHERE lease_node = ? AND state = 'pending'",
                (node,),
            )
            return done.rowcount

        return await self._executor.run(plan, kind="write", repeatable=True)

    async def record(
        self,
        delivery: Delivery,
        attempt: Attempt,
        *,
        outcome: Outcome,
        next_attempt_at: float | None,
    ) -> None:
        check_outcome(outcome, next_attempt_at)
        d = delivery

        def plan() -> Plan[None]:
            yield Query(
                "INSERT INTO webhook_attempts (delivery_id, message_id, endpoint_id, at,"
                " status_code, latency_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    d.id,
                    d.message_id,
                    d.endpoint_id,
                    attempt.at,
                    attempt.status_code,
                    attempt.latency_ms,
                    attempt.error,
                ),
            )
            # The endpoint row before the delivery row: claims lock in that order too.
            if outcome == "succeeded":
                yield Query(
                    "UPDATE webhook_endpoints SET failing_since = NULL"
                    " WHERE id = ? AND failing_since IS NOT NULL",
                    (d.endpoint_id,),
                )
                yield Query(
                    "UPDATE webhook_deliveries SET state = 'succeeded', attempts = attempts + 1,"
                    " lease_until = NULL, lease_node = NULL, done_at = ?"
                    " WHERE id = ? AND state = 'pending'",
                    (attempt.at, d.id),
                )
                return
            yield Query(
                "UPDATE webhook_endpoints SET failing_since = ?"
                " WHERE id = ? AND failing_since IS NULL",
                (attempt.at, d.endpoint_id),
            )
            # A retry or failure moves the delivery only if nobody recorded since its claim.
            if outcome == "retry":
                yield Query(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?,"
                    " lease_until = NULL, lease_node = NULL"
                    " WHERE id = ? AND state = 'pending' AND attempts = ?",
                    (next_attempt_at, d.id, d.attempts),
                )
            else:
                yield Query(
                    "UPDATE webhook_deliveries SET state = 'failed', attempts = attempts + 1,"
                    " lease_until = NULL, lease_node = NULL, done_at = ?"
                    " WHERE id = ? AND state = 'pending' AND attempts = ?",
                    (attempt.at, d.id, d.attempts),
                )

        await self._executor.run(plan, kind="transaction")

    # visibility and replay

    async def attempts(self, tenant: str, message_id: str) -> list[Attempt]:
        def plan() -> Plan[list[Attempt]]:
            found = yield Query(
                f"SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts a"
                " JOIN webhook_messages m ON m.message_id = a.message_id"
                " WHERE a.message_id = ? AND m.tenant = ? ORDER BY a.at, a.id",
                (message_id, tenant),
            )
            return [attempt_row(row) for row in found.rows]

        return await self._executor.run(plan, kind="read", repeatable=True)

    async def messages(self, tenant: str, *, since: float | None, limit: int) -> list[MessageInfo]:
        def plan() -> Plan[list[MessageInfo]]:
            found = yield Query(
                f"SELECT {MESSAGE_COLUMNS} FROM webhook_messages m"
                " WHERE m.tenant = ? AND m.created_at >= ?"
                " ORDER BY m.created_at, m.seq LIMIT ?",
                (tenant, float("-inf") if since is None else since, max(limit, 0)),
            )
            return [message_row(row) for row in found.rows]

        return await self._executor.run(plan, kind="read", repeatable=True)

    async def resend(self, tenant: str, message_id: str, endpoint_id: str | None) -> int:
        now = self._clock()

        def plan() -> Plan[int]:
            found = yield Query(
                "SELECT 1 FROM webhook_messages WHERE message_id = ? AND tenant = ?",
                (message_id, tenant),
            )
            if not found.rows:
                raise WebhookNotFound(f"no message {message_id!r}")
            if endpoint_id is None:
                found = yield Query(
                    "SELECT DISTINCT d.endpoint_id FROM webhook_deliveries d"
                    " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                    " WHERE d.message_id = ? AND e.tenant = ? ORDER BY d.endpoint_id",
                    (message_id, tenant),
                )
                targets = [str(row[0]) for row in found.rows]
            else:
                found = yield Query(
                    "SELECT 1 FROM webhook_endpoints WHERE id = ? AND tenant = ?",
                    (endpoint_id, tenant),
                )
                if not found.rows:
                    raise WebhookNotFound(f"no endpoint {endpoint_id!r}")
                targets = [endpoint_id]
            if targets:
                rows = [(message_id, target, now, now) for target in targets]
                yield Query(_INSERT_DELIVERY, rows, many=True)
            return len(targets)

        return await self._executor.run(plan, kind="transaction")

    async def recover(
        self,
        tenant: str,
        endpoint_id: str,
        since: float,
        *,
        match: Matcher | None = None,
    ) -> int:
        matches = match or event_type_matches
        now = self._clock()

        def plan() -> Plan[int]:
            found = yield Query(
                "SELECT event_types FROM webhook_endpoints WHERE id = ? AND tenant = ?",
                (endpoint_id, tenant),
            )
            if not found.rows:
                raise WebhookNotFound(f"no endpoint {endpoint_id!r}")
            filters = load_event_types(found.rows[0][0])
            found = yield Query(
                "SELECT m.message_id, m.event_type FROM webhook_messages m"
                " WHERE m.tenant = ? AND m.created_at >= ? AND NOT EXISTS ("
                "  SELECT 1 FROM webhook_deliveries d WHERE d.message_id = m.message_id"
                "  AND d.endpoint_id = ? AND d.state = 'pending')"
                " ORDER BY m.created_at, m.seq",
                (tenant, since, endpoint_id),
            )
            chosen = [str(r[0]) for r in found.rows if matches(str(r[1]), filters)]
            if chosen:
                rows = [(message_id, endpoint_id, now, now) for message_id in chosen]
                yield Query(_INSERT_DELIVERY, rows, many=True)
            return len(chosen)

        return await self._executor.run(plan, kind="transaction")

    async def due_count(self, now: float) -> int:
        def plan() -> Plan[int]:
            found = yield Query(
                "SELECT COUNT(*) FROM webhook_deliveries d"
                " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                " WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND e.enabled = true"
                " AND (d.lease_until IS NULL OR d.lease_until <= ?)",
                (now, now),
            )
            return int(found.rows[0][0])

        return await self._executor.run(plan, kind="read", repeatable=True)

    async def ping(self) -> None:
        def plan() -> Plan[None]:
            yield Query("SELECT 1", ())

        await self._executor.run(plan, kind="read", repeatable=True)

    async def prune(self, before: float) -> int:
        def plan() -> Plan[int]:
            done = yield Query(
                "DELETE FROM webhook_messages WHERE created_at < ? AND NOT EXISTS ("
                " SELECT 1 FROM webhook_deliveries d"
                " WHERE d.message_id = webhook_messages.message_id AND d.state = 'pending')",
                (before,),
            )
            return done.rowcount

        return await self._executor.run(plan, kind="write", repeatable=True)

    async def close(self) -> None:
        """Release the store's connections; calls afterwards raise RuntimeError."""
        await self._executor.close()
