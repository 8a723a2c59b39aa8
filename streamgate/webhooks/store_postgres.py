"""The webhook outbox on PostgreSQL, for several gateway nodes sharing one outbox.

Same tables and behaviour as :class:`~streamgate.webhooks.store.SqliteWebhookStore` (see
:mod:`streamgate.webhooks.store`), in the database (and ``search_path``) the DSN names.
Its own ``schema_versions`` table there holds the ``"webhooks"`` row; migrations run
under a transaction-level advisory lock, so nodes starting together agree.

Claiming. A node first locks the enabled endpoints that have due deliveries and room
under ``per_endpoint`` (``FOR UPDATE SKIP LOCKED``: endpoints another node is claiming
for are skipped, not waited for), then, in a new statement that sees every lease
committed before it held those locks, counts their live leases and leases the oldest due
deliveries. So two nodes never lease the same delivery, nor together exceed the limit.
Writers that touch both an endpoint and its deliveries lock the endpoint first, so no
lock cycle forms.

Connections. A small pool of ``psycopg`` async connections (``pool_size``), opened on
first use. A connection that breaks is dropped; the call fails with
:class:`psycopg.OperationalError` and the next one opens a fresh connection, except that
calls safe to repeat (reads, :meth:`PostgresWebhookStore.enqueue`, whose message ids make
it idempotent, :meth:`PostgresWebhookStore.claim_due`, whose lost leases merely expire,
and lease renewal and release) are retried once on a fresh connection when a pooled one
turns out broken.
"""

# SQL text here is assembled from this package's constants only; values are always
# bound parameters.
# ruff: noqa: S608
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from streamgate.auth.apikeys import check_tenant
from streamgate.errors import ConfigError
from streamgate.webhooks.model import (
    ATTEMPT_COLUMNS,
    COMPONENT,
    DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS,
    MESSAGE_COLUMNS,
    Attempt,
    Delivery,
    Endpoint,
    Matcher,
    MessageInfo,
    OutboxMessage,
    Outcome,
    WebhookNotFound,
    attempt_row,
    check_outcome,
    delivery_row,
    dump_event_types,
    endpoint_row,
    event_type_matches,
    load_event_types,
    message_row,
    new_endpoint_id,
    unique_messages,
)

__all__ = ["DEFAULT_POOL_SIZE", "MIGRATE_LOCK", "MIGRATIONS", "PostgresWebhookStore"]

DEFAULT_POOL_SIZE: Final = 4
# pg_advisory_xact_lock key serializing schema migrations (any component's).
MIGRATE_LOCK: Final = 0x73_67_5F_73_63_68_65_6D  # "sg_schem"

T = TypeVar("T")
Conn = AsyncConnection[tuple[Any, ...]]

# Mirrors store.MIGRATIONS with PostgreSQL types. Append; never edit a released step.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE webhook_endpoints (
            id text PRIMARY KEY,
            tenant text NOT NULL,
            url text NOT NULL,
            event_types text,
            enabled boolean NOT NULL,
            secret text NOT NULL,
            previous_secret text,
            previous_secret_until double precision,
            created_at double precision NOT NULL,
            failing_since double precision,
            disabled_reason text
        )""",
        "CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant, created_at)",
        """CREATE TABLE webhook_messages (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            message_id text NOT NULL UNIQUE,
            tenant text NOT NULL,
            event_type text NOT NULL,
            created_at double precision NOT NULL,
            body bytea NOT NULL
        )""",
        "CREATE INDEX webhook_messages_tenant ON webhook_messages (tenant, created_at, seq)",
        """CREATE TABLE webhook_deliveries (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            message_id text NOT NULL
                REFERENCES webhook_messages (message_id) ON DELETE CASCADE,
            endpoint_id text NOT NULL,
            state text NOT NULL,
            attempts integer NOT NULL,
            next_attempt_at double precision NOT NULL,
            lease_until double precision,
            lease_node text,
            created_at double precision NOT NULL,
            done_at double precision
        )""",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries"
        " (endpoint_id, next_attempt_at, id) WHERE state = 'pending'",
        "CREATE INDEX webhook_deliveries_leased ON webhook_deliveries"
        " (endpoint_id, lease_until) WHERE state = 'pending' AND lease_until IS NOT NULL",
        "CREATE INDEX webhook_deliveries_message ON webhook_deliveries (message_id)",
        """CREATE TABLE webhook_attempts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            delivery_id bigint NOT NULL,
            message_id text NOT NULL
                REFERENCES webhook_messages (message_id) ON DELETE CASCADE,
            endpoint_id text NOT NULL,
            at double precision NOT NULL,
            status_code integer,
            latency_ms double precision NOT NULL,
            error text
        )""",
        "CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, id)",
    ),
)

_DUE: Final = (
    "d.state = 'pending' AND d.next_attempt_at <= %(now)s"
    " AND (d.lease_until IS NULL OR d.lease_until <= %(now)s)"
)
_LEASES: Final = (
    "SELECT count(*) FROM webhook_deliveries a WHERE a.endpoint_id = {ep}"
    " AND a.state = 'pending' AND a.lease_until > %(now)s"
)
# Step 1 of a claim: lock endpoints with due work and room, oldest due first.
_CLAIM_ENDPOINTS: Final = (
    "SELECT e.id FROM webhook_endpoints e WHERE e.enabled"
    f" AND EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND {_DUE})"
    f" AND ({_LEASES.format(ep='e.id')}) < %(per)s"
    " ORDER BY (SELECT d.next_attempt_at FROM webhook_deliveries d"
    f"  WHERE d.endpoint_id = e.id AND {_DUE} ORDER BY d.next_attempt_at, d.id LIMIT 1), e.id"
    " LIMIT %(limit)s FOR UPDATE OF e SKIP LOCKED"
)
# Step 2: with those endpoints locked, lease their oldest due deliveries within the room.
_CLAIM_DELIVERIES: Final = (
    "WITH chosen AS (SELECT c.id FROM unnest(%(endpoints)s::text[]) AS ep (id)"
    f" CROSS JOIN LATERAL ({_LEASES.format(ep='ep.id')}) AS act (n)"
    " CROSS JOIN LATERAL (SELECT d.id, d.next_attempt_at FROM webhook_deliveries d"
    f"  WHERE d.endpoint_id = ep.id AND {_DUE}"
    "  ORDER BY d.next_attempt_at, d.id LIMIT GREATEST(%(per)s - act.n, 0)) AS c"
    " ORDER BY c.next_attempt_at, c.id LIMIT %(limit)s)"
    " UPDATE webhook_deliveries d SET lease_until = %(until)s, lease_node = %(node)s"
    " FROM chosen, webhook_messages m"
    f" WHERE d.id = chosen.id AND m.message_id = d.message_id AND {_DUE}"
    f" RETURNING {DELIVERY_COLUMNS}"
)
_ENQUEUE: Final = (
    "WITH m AS (INSERT INTO webhook_messages"
    " (message_id, tenant, event_type, created_at, body)"
    " SELECT * FROM unnest(%(ids)s::text[], %(tenants)s::text[], %(types)s::text[],"
    "  %(created)s::float8[], %(bodies)s::bytea[])"
    " ON CONFLICT (message_id) DO NOTHING RETURNING message_id, tenant, created_at),"
    " ins AS (INSERT INTO webhook_deliveries"
    " (message_id, endpoint_id, state, attempts, next_attempt_at, created_at)"
    " SELECT m.message_id, e.id, 'pending', 0, m.created_at, %(now)s"
    " FROM unnest(%(pair_messages)s::text[], %(pair_endpoints)s::text[]) WITH ORDINALITY"
    "  AS p (message_id, endpoint_id, n)"
    " JOIN m ON m.message_id = p.message_id"
    " JOIN webhook_endpoints e ON e.id = p.endpoint_id AND e.tenant = m.tenant"
    " ORDER BY p.n RETURNING 1)"
    " SELECT count(*) FROM ins"
)
_INSERT_DELIVERY: Final = (
    "INSERT INTO webhook_deliveries (message_id, endpoint_id, state, attempts,"
    " next_attempt_at, created_at) SELECT %(message)s, t, 'pending', 0, %(now)s, %(now)s"
    " FROM unnest(%(targets)s::text[]) AS t"
)


class PostgresWebhookStore:
    """The outbox in PostgreSQL; see the module docstring. Safe for many nodes at once."""

    def __init__(
        self,
        dsn: str,
        *,
        clock: Callable[[], float] = time.time,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        """Remember ``dsn``; nothing connects until the first call."""
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._dsn = dsn
        self._clock = clock
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[Conn] = []
        self._migrated = False
        self._migrate_lock = asyncio.Lock()
        self._closed = False

    # connections

    async def _connect(self) -> Conn:
        conn: Conn = await AsyncConnection.connect(self._dsn, autocommit=True)
        if not self._migrated:
            async with self._migrate_lock:
                if not self._migrated:
                    try:
                        await self._migrate(conn)
                    except BaseException:
                        await conn.close()
                        raise
                    self._migrated = True
        return conn

    async def _migrate(self, conn: Conn) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                "component text PRIMARY KEY, version integer NOT NULL)"
            )
            cur = await conn.execute(
                "SELECT version FROM schema_versions WHERE component = %s", (COMPONENT,)
            )
            row = await cur.fetchone()
            version = 0 if row is None else int(row[0])
            if version > len(MIGRATIONS):
                raise ConfigError(
                    f"PostgreSQL outbox: {COMPONENT} schema version {version} is newer than "
                    f"this streamgate knows ({len(MIGRATIONS)}); upgrade streamgate"
                )
            for steps in MIGRATIONS[version:]:
                for statement in steps:
                    await conn.execute(statement)
            if version < len(MIGRATIONS):
                await conn.execute(
                    "INSERT INTO schema_versions (component, version) VALUES (%s, %s)"
                    " ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                    (COMPONENT, len(MIGRATIONS)),
                )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[tuple[Conn, bool]]:
        """A pooled connection and whether it was reused (False: freshly opened)."""
        if self._closed:
            raise RuntimeError("webhook store is closed")
        async with self._slots:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._connect()
            try:
                yield conn, reused
            finally:
                healthy = (
                    not conn.broken
                    and not conn.closed
                    and conn.info.transaction_status == TransactionStatus.IDLE
                    and not self._closed
                )
                if healthy:
                    self._idle.append(conn)
                else:
                    await conn.close()

    async def _run(self, fn: Callable[[Conn], Awaitable[T]], *, repeatable: bool = False) -> T:
        """Run ``fn`` on a pooled connection; once more on a fresh one when the pooled one
        broke and ``fn`` is safe to repeat."""
        async with self._connection() as (conn, reused):
            try:
                return await fn(conn)
            except psycopg.OperationalError:
                if not (repeatable and reused and (conn.broken or conn.closed)):
                    raise
        async with self._connection() as (conn, _):
            return await fn(conn)

    async def _tx(self, fn: Callable[[Conn], Awaitable[T]], *, repeatable: bool = False) -> T:
        """As :meth:`_run`, inside one transaction."""

        async def run(conn: Conn) -> T:
            async with conn.transaction():
                return await fn(conn)

        return await self._run(run, repeatable=repeatable)

    @staticmethod
    async def _rows(conn: Conn, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = await conn.execute(sql, params)
        return await cur.fetchall()

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

        async def run(conn: Conn) -> None:
            await conn.execute(
                f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS})"
                " VALUES (%s, %s, %s, %s, true, %s, NULL, NULL, %s, NULL, NULL)",
                (
                    endpoint.id,
                    tenant,
                    url,
                    dump_event_types(endpoint.event_types),
                    secret,
                    endpoint.created_at,
                ),
            )

        await self._run(run)
        return endpoint

    async def list_endpoints(self, tenant: str) -> list[Endpoint]:
        async def run(conn: Conn) -> list[Endpoint]:
            rows = await self._rows(
                conn,
                f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant = %s"
                " ORDER BY created_at, id",
                (tenant,),
            )
            return [endpoint_row(row) for row in rows]

        return await self._run(run, repeatable=True)

    async def get_endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        async def run(conn: Conn) -> Endpoint | None:
            rows = await self._rows(
                conn,
                f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = %s AND tenant = %s",
                (endpoint_id, tenant),
            )
            return endpoint_row(rows[0]) if rows else None

        return await self._run(run, repeatable=True)

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        async def run(conn: Conn) -> Endpoint | None:
            rows = await self._rows(
                conn,
                f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = %s",
                (endpoint_id,),
            )
            return endpoint_row(rows[0]) if rows else None

        return await self._run(run, repeatable=True)

    async def delete_endpoint(self, tenant: str, endpoint_id: str) -> bool:
        now = self._clock()

        async def run(conn: Conn) -> bool:
            cur = await conn.execute(
                "DELETE FROM webhook_endpoints WHERE id = %s AND tenant = %s",
                (endpoint_id, tenant),
            )
            if cur.rowcount == 0:
                return False
            await conn.execute(
                "UPDATE webhook_deliveries SET state = 'canceled', lease_until = NULL,"
                " lease_node = NULL, done_at = %s WHERE endpoint_id = %s AND state = 'pending'",
                (now, endpoint_id),
            )
            return True

        return await self._tx(run)

    async def set_enabled(self, endpoint_id: str, enabled: bool, reason: str | None = None) -> None:
        async def run(conn: Conn) -> None:
            if enabled:
                await conn.execute(
                    "UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL,"
                    " failing_since = NULL WHERE id = %s",
                    (endpoint_id,),
                )
            else:
                await conn.execute(
                    "UPDATE webhook_endpoints SET enabled = false, disabled_reason = %s"
                    " WHERE id = %s",
                    (reason, endpoint_id),
                )

        await self._run(run, repeatable=True)

    async def rotate_secret(
        self, endpoint_id: str, new_secret: str, overlap_until: float
    ) -> Endpoint:
        async def run(conn: Conn) -> Endpoint:
            rows = await self._rows(
                conn,
                "UPDATE webhook_endpoints SET previous_secret = secret,"
                " previous_secret_until = %s, secret = %s WHERE id = %s"
                f" RETURNING {ENDPOINT_COLUMNS}",
                (overlap_until, new_secret, endpoint_id),
            )
            if not rows:
                raise WebhookNotFound(f"no endpoint {endpoint_id!r}")
            return endpoint_row(rows[0])

        return await self._run(run)

    # the outbox

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> int:
        batch = unique_messages(messages)
        if not batch:
            return 0
        pairs = [(m.message_id, e) for m in batch for e in dict.fromkeys(m.endpoint_ids)]
        params = {
            "ids": [m.message_id for m in batch],
            "tenants": [m.tenant for m in batch],
            "types": [m.event_type for m in batch],
            "created": [m.created_at for m in batch],
            "bodies": [m.body for m in batch],
            "pair_messages": [p[0] for p in pairs],
            "pair_endpoints": [p[1] for p in pairs],
            "now": self._clock(),
        }

        async def run(conn: Conn) -> int:
            rows = await self._rows(conn, _ENQUEUE, params)
            return int(rows[0][0])

        # One statement, so one transaction; repeating it after a lost commit adds nothing.
        return await self._run(run, repeatable=True)

    async def claim_due(
        self, now: float, *, limit: int, lease: float, node: str, per_endpoint: int
    ) -> list[Delivery]:
        if lease <= 0:
            raise ValueError("lease must be positive")
        if limit <= 0 or per_endpoint <= 0:
            return []
        params: dict[str, Any] = {
            "now": now,
            "per": per_endpoint,
            "limit": limit,
            "until": now + lease,
            "node": node,
        }

        async def run(conn: Conn) -> list[Delivery]:
            endpoints = [row[0] for row in await self._rows(conn, _CLAIM_ENDPOINTS, params)]
            if not endpoints:
                return []
            rows = await self._rows(conn, _CLAIM_DELIVERIES, {**params, "endpoints": endpoints})
            chosen = [delivery_row(row) for row in rows]
            chosen.sort(key=lambda d: (d.next_attempt_at, d.id))
            return chosen

        return await self._tx(run, repeatable=True)

    async def renew(self, delivery_ids: Sequence[int], *, node: str, until: float) -> int:
        ids = list(dict.fromkeys(delivery_ids))
        if not ids:
            return 0

        async def run(conn: Conn) -> int:
            cur = await conn.execute(
                "UPDATE webhook_deliveries SET lease_until = %s WHERE lease_node = %s"
                " AND state = 'pending' AND lease_until IS NOT NULL AND id = ANY(%s)",
                (until, node, ids),
            )
            return cur.rowcount

        # Repeating it after a lost answer extends the same leases to the same time.
        return await self._run(run, repeatable=True)

    async def release_leases(self, node: str) -> int:
        async def run(conn: Conn) -> int:
            cur = await conn.execute(
                "UPDATE webhook_deliveries SET lease_until = NULL, lease_node = NULL"
                " WHERE lease_node = %s AND state = 'pending'",
                (node,),
            )
            return cur.rowcount

        return await self._run(run, repeatable=True)

    async def record(
        self,
        delivery: Delivery,
        attempt: Attempt,
        *,
        outcome: Outcome,
        next_attempt_at: float | None,
    ) -> None:
        check_outcome(outcome, next_attempt_at)

        async def run(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, message_id, endpoint_id, at,"
                " status_code, latency_ms, error) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    delivery.id,
                    delivery.message_id,
                    delivery.endpoint_id,
                    attempt.at,
                    attempt.status_code,
                    attempt.latency_ms,
                    attempt.error,
                ),
            )
            # The endpoint row before the delivery row: claims lock in that order too.
            if outcome == "succeeded":
                await conn.execute(
                    "UPDATE webhook_endpoints SET failing_since = NULL"
                    " WHERE id = %s AND failing_since IS NOT NULL",
                    (delivery.endpoint_id,),
                )
                await conn.execute(
                    "UPDATE webhook_deliveries SET state = 'succeeded', attempts = attempts + 1,"
                    " lease_until = NULL, lease_node = NULL, done_at = %s"
                    " WHERE id = %s AND state = 'pending'",
                    (attempt.at, delivery.id),
                )
                return
            await conn.execute(
                "UPDATE webhook_endpoints SET failing_since = %s"
                " WHERE id = %s AND failing_since IS NULL",
                (attempt.at, delivery.endpoint_id),
            )
            if outcome == "retry":
                await conn.execute(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1,"
                    " next_attempt_at = %s, lease_until = NULL, lease_node = NULL"
                    " WHERE id = %s AND state = 'pending' AND attempts = %s",
                    (next_attempt_at, delivery.id, delivery.attempts),
                )
            else:
                await conn.execute(
                    "UPDATE webhook_deliveries SET state = 'failed', attempts = attempts + 1,"
                    " lease_until = NULL, lease_node = NULL, done_at = %s"
                    " WHERE id = %s AND state = 'pending' AND attempts = %s",
                    (attempt.at, delivery.id, delivery.attempts),
                )

        await self._tx(run)

    # visibility and replay

    async def attempts(self, tenant: str, message_id: str) -> list[Attempt]:
        async def run(conn: Conn) -> list[Attempt]:
            rows = await self._rows(
                conn,
                f"SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts a"
                " JOIN webhook_messages m ON m.message_id = a.message_id"
                " WHERE a.message_id = %s AND m.tenant = %s ORDER BY a.at, a.id",
                (message_id, tenant),
            )
            return [attempt_row(row) for row in rows]

        return await self._run(run, repeatable=True)

    async def messages(self, tenant: str, *, since: float | None, limit: int) -> list[MessageInfo]:
        async def run(conn: Conn) -> list[MessageInfo]:
            rows = await self._rows(
                conn,
                f"SELECT {MESSAGE_COLUMNS} FROM webhook_messages m"
                " WHERE m.tenant = %s AND m.created_at >= %s"
                " ORDER BY m.created_at, m.seq LIMIT %s",
                (tenant, float("-inf") if since is None else since, max(limit, 0)),
            )
            return [message_row(row) for row in rows]

        return await self._run(run, repeatable=True)

    async def resend(self, tenant: str, message_id: str, endpoint_id: str | None) -> int:
        now = self._clock()

        async def run(conn: Conn) -> int:
            found = await self._rows(
                conn,
                "SELECT 1 FROM webhook_messages WHERE message_id = %s AND tenant = %s",
                (message_id, tenant),
            )
            if not found:
                raise WebhookNotFound(f"no message {message_id!r}")
            if endpoint_id is None:
                rows = await self._rows(
                    conn,
                    "SELECT DISTINCT d.endpoint_id FROM webhook_deliveries d"
                    " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                    " WHERE d.message_id = %s AND e.tenant = %s ORDER BY d.endpoint_id",
                    (message_id, tenant),
                )
                targets = [str(row[0]) for row in rows]
            elif not await self._rows(
                conn,
                "SELECT 1 FROM webhook_endpoints WHERE id = %s AND tenant = %s",
                (endpoint_id, tenant),
            ):
                raise WebhookNotFound(f"no endpoint {endpoint_id!r}")
            else:
                targets = [endpoint_id]
            await conn.execute(
                _INSERT_DELIVERY, {"message": message_id, "now": now, "targets": targets}
            )
            return len(targets)

        return await self._tx(run)

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

        async def run(conn: Conn) -> int:
            found = await self._rows(
                conn,
                "SELECT event_types FROM webhook_endpoints WHERE id = %s AND tenant = %s",
                (endpoint_id, tenant),
            )
            if not found:
                raise WebhookNotFound(f"no endpoint {endpoint_id!r}")
            filters = load_event_types(found[0][0])
            rows = await self._rows(
                conn,
                "SELECT m.message_id, m.event_type FROM webhook_messages m"
                " WHERE m.tenant = %s AND m.created_at >= %s AND NOT EXISTS ("
                "  SELECT 1 FROM webhook_deliveries d WHERE d.message_id = m.message_id"
                "  AND d.endpoint_id = %s AND d.state = 'pending')"
                " ORDER BY m.created_at, m.seq",
                (tenant, since, endpoint_id),
            )
            chosen = [str(r[0]) for r in rows if matches(str(r[1]), filters)]
            await conn.execute(
                "INSERT INTO webhook_deliveries (message_id, endpoint_id, state, attempts,"
                " next_attempt_at, created_at) SELECT m, %(endpoint)s, 'pending', 0,"
                " %(now)s, %(now)s FROM unnest(%(messages)s::text[]) AS m",
                {"endpoint": endpoint_id, "now": now, "messages": chosen},
            )
            return len(chosen)

        return await self._tx(run)

    async def prune(self, before: float) -> int:
        async def run(conn: Conn) -> int:
            cur = await conn.execute(
                "DELETE FROM webhook_messages m WHERE m.created_at < %s AND NOT EXISTS ("
                " SELECT 1 FROM webhook_deliveries d"
                " WHERE d.message_id = m.message_id AND d.state = 'pending')",
                (before,),
            )
            return cur.rowcount

        return await self._run(run, repeatable=True)

    async def close(self) -> None:
        """Close idle connections; ones in use close when their call ends. Idempotent."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
