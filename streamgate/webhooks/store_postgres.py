"""The webhook outbox on PostgreSQL, for several gateway nodes sharing one outbox.

Same tables and behaviour as :class:`~streamgate.webhooks.store.SqliteWebhookStore` (see
:mod:`streamgate.webhooks.store`): the same :class:`~.outbox_store.OutboxStore`, in the
database (and ``search_path``) the DSN names, over :class:`PostgresDialect` and a pool
of connections (:class:`~streamgate.storage.postgres.PostgresExecutor`). Its own
``schema_versions`` table there holds the ``"webhooks"`` row; migrations run under a
transaction-level advisory lock, so nodes starting together agree.

Claiming. A node first locks the enabled endpoints that have due deliveries and room
under ``per_endpoint`` (``FOR UPDATE SKIP LOCKED``: endpoints another node is claiming
for are skipped, not waited for), then, in a new statement that sees every lease
committed before it held those locks, counts their live leases and leases the oldest due
deliveries. So two nodes never lease the same delivery, nor together exceed the limit.
Writers that touch both an endpoint and its deliveries lock the endpoint first, so no
lock cycle forms.

Connections. A small pool (``pool_size``), opened on first use. A connection that breaks
is dropped; the call fails with :class:`psycopg.OperationalError` and the next one opens
a fresh connection, except that calls safe to repeat (reads, :meth:`~.OutboxStore.enqueue`,
whose message ids make it idempotent, :meth:`~.OutboxStore.claim_due`, whose lost leases
merely expire, and lease renewal and release) are retried once on a fresh connection
when a pooled one turns out broken.
"""

# SQL text here is assembled from this package's constants only; values are always
# bound parameters.
# ruff: noqa: S608
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from streamgate.storage.migrations import POSTGRES_TYPES, render
from streamgate.storage.plan import Kind, Plan, Query
from streamgate.storage.postgres import DEFAULT_POOL_SIZE, MIGRATE_LOCK, PostgresExecutor
from streamgate.webhooks.model import Delivery, OutboxMessage
from streamgate.webhooks.outbox_store import OutboxStore
from streamgate.webhooks.schema import COMPONENT, DELIVERY_COLUMNS, delivery_row
from streamgate.webhooks.schema import MIGRATIONS as SCHEMA

__all__ = [
    "DEFAULT_POOL_SIZE",
    "MIGRATE_LOCK",
    "MIGRATIONS",
    "PostgresDialect",
    "PostgresWebhookStore",
]

MIGRATIONS: Final = render(SCHEMA, POSTGRES_TYPES)

_DUE: Final = (
    "d.state = 'pending' AND d.next_attempt_at <= :now"
    " AND (d.lease_until IS NULL OR d.lease_until <= :now)"
)
_LEASES: Final = (
    "SELECT count(*) FROM webhook_deliveries a WHERE a.endpoint_id = {ep}"
    " AND a.state = 'pending' AND a.lease_until > :now"
)
# Step 1 of a claim: lock endpoints with due work and room, oldest due first.
_CLAIM_ENDPOINTS: Final = (
    "SELECT e.id FROM webhook_endpoints e WHERE e.enabled"
    f" AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND {_DUE})"
    f" AND ({_LEASES.format(ep='e.id')}) < :per"
    " ORDER BY (SELECT d.next_attempt_at FROM webhook_deliveries d"
    f"  WHERE d.endpoint_id = e.id AND {_DUE} ORDER BY d.next_attempt_at, d.id LIMIT 1), e.id"
    " LIMIT :limit FOR UPDATE OF e SKIP LOCKED"
)
# Step 2: with those endpoints locked, lease their oldest due deliveries within the room.
_CLAIM_DELIVERIES: Final = (
    "WITH chosen AS (SELECT c.id FROM unnest(:endpoints::text[]) AS ep (id)"
    f" CROSS JOIN LATERAL ({_LEASES.format(ep='ep.id')}) AS act (n)"
    " CROSS JOIN LATERAL (SELECT d.id, d.next_attempt_at FROM webhook_deliveries d"
    f"  WHERE d.endpoint_id = ep.id AND {_DUE}"
    "  ORDER BY d.next_attempt_at, d.id LIMIT GREATEST(:per - act.n, 0)) AS c"
    " ORDER BY c.next_attempt_at, c.id LIMIT :limit)"
    " UPDATE webhook_deliveries d SET lease_until = :until, lease_node = :node"
    " FROM chosen, webhook_messages m"
    f" WHERE d.id = chosen.id AND m.message_id = d.message_id AND {_DUE}"
    f" RETURNING {DELIVERY_COLUMNS}"
)
# A batch in one statement: one round trip, and one transaction without BEGIN/COMMIT.
_ENQUEUE: Final = (
    "WITH m AS (INSERT INTO webhook_messages"
    " (message_id, tenant, event_type, created_at, body)"
    " SELECT * FROM unnest(:ids::text[], :tenants::text[], :types::text[],"
    "  :created::float8[], :bodies::bytea[])"
    " ON CONFLICT (message_id) DO NOTHING RETURNING message_id, tenant, created_at),"
    " ins AS (INSERT INTO webhook_deliveries"
    " (message_id, endpoint_id, state, attempts, next_attempt_at, created_at)"
    " SELECT m.message_id, e.id, 'pending', 0, m.created_at, :now"
    " FROM unnest(:pair_messages::text[], :pair_endpoints::text[]) WITH ORDINALITY"
    "  AS p (message_id, endpoint_id, n)"
    " JOIN m ON m.message_id = p.message_id"
    " JOIN webhook_endpoints e ON e.id = p.endpoint_id AND e.tenant = m.tenant"
    " ORDER BY p.n RETURNING 1)"
    " SELECT count(*) FROM ins"
)


class PostgresDialect:
    """PostgreSQL's pieces: a batch as arrays in one statement, claims that lock the
    endpoints they claim for (``FOR UPDATE SKIP LOCKED``), ids as one array."""

    enqueue_kind: Kind = "write"

    def enqueue(self, batch: Sequence[OutboxMessage], now: float) -> Plan[int]:
        pairs = [(m.message_id, e) for m in batch for e in dict.fromkeys(m.endpoint_ids)]
        found = yield Query(
            _ENQUEUE,
            {
                "ids": [m.message_id for m in batch],
                "tenants": [m.tenant for m in batch],
                "types": [m.event_type for m in batch],
                "created": [m.created_at for m in batch],
                "bodies": [m.body for m in batch],
                "pair_messages": [p[0] for p in pairs],
                "pair_endpoints": [p[1] for p in pairs],
                "now": now,
            },
        )
        return int(found.rows[0][0])

    def claim(
        self, now: float, *, limit: int, until: float, node: str, per_endpoint: int
    ) -> Plan[list[Delivery]]:
        params: dict[str, Any] = {
            "now": now,
            "per": per_endpoint,
            "limit": limit,
            "until": until,
            "node": node,
        }
        locked = yield Query(_CLAIM_ENDPOINTS, params)
        if not locked.rows:
            return []
        endpoints = [row[0] for row in locked.rows]
        leased = yield Query(_CLAIM_DELIVERIES, {**params, "endpoints": endpoints})
        return [delivery_row(row) for row in leased.rows]

    def id_in(self, ids: Sequence[int]) -> list[tuple[str, tuple[Any, ...]]]:
        return [("= ANY(?)", (list(ids),))]


class PostgresWebhookStore(OutboxStore):
    """The outbox in PostgreSQL; see the module docstring. Safe for many nodes at once."""

    def __init__(
        self,
        dsn: str,
        *,
        clock: Callable[[], float] = time.time,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        """Remember ``dsn``; nothing connects until the first call."""
        executor = PostgresExecutor(
            dsn,
            component=COMPONENT,
            migrations=MIGRATIONS,
            name="webhook store",
            where="PostgreSQL outbox",
            pool_size=pool_size,
        )
        super().__init__(executor, PostgresDialect(), clock=clock)
