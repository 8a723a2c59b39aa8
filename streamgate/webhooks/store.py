"""The durable webhook outbox: endpoints, messages, deliveries, attempts (issue 6).

One interface, :class:`WebhookStore`, and two backends: :class:`SqliteWebhookStore` in
the gateway's SQLite file (the default; one node, or several processes on one host) and
:class:`~streamgate.webhooks.store_postgres.PostgresWebhookStore` (several gateway nodes
sharing one outbox). :func:`open_store` picks one.

Model. A *message* is one push event for a tenant: its id (``webhook-id``, the same on
every retry), type and the exact body bytes to POST. A *delivery* is one message on its
way to one endpoint: ``pending`` until it ends ``succeeded`` or ``failed`` (retries
exhausted), or ``canceled`` when its endpoint is deleted. Every try is kept as an
*attempt*. Resending or recovering adds a new delivery of the same message.

Durability. :meth:`WebhookStore.enqueue` returns only after the messages and their
deliveries are committed (SQLite: WAL with ``synchronous=FULL``, so fsynced; PostgreSQL:
a committed transaction), so a publish acknowledged after it survives kill -9.

Leases (at-least-once). :meth:`WebhookStore.claim_due` leases due deliveries to a node
until ``now + lease``; :meth:`WebhookStore.record` ends the lease. While an attempt is in
flight its node renews the lease (:meth:`WebhookStore.renew`), so a lease can be short: a
node that dies keeps its leases only until they expire, then the deliveries are due again
for any node; a node that restarts under the same name (kept in ``data_dir``) takes its
own back at once (:meth:`WebhookStore.release_leases`). Two nodes
never hold the same delivery at once: SQLite claims inside ``BEGIN IMMEDIATE`` (one
writer), PostgreSQL locks each endpoint it claims for (``FOR UPDATE SKIP LOCKED``), which
also keeps the per-endpoint lease limit exact across nodes. A late :meth:`record` for a
lease that expired and was claimed again still adds its attempt; a success still ends the
delivery, a retry or failure changes it only if nobody has recorded since its claim.

Times are unix seconds (floats) supplied by the caller or the store's clock.
"""

# SQL text here is assembled from this package's constants only; values are always
# bound parameters.
# ruff: noqa: S608
from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

# open_shared makes and opens the shared file for every component: it must never be opened
# from Python, or SQLite's locks are dropped (see its docstring).
from streamgate.auth.apikeys import apply_migrations, check_tenant, open_shared, shared_db_path
from streamgate.errors import ConfigError

# The model lives in .model (shared with store_postgres, which must not import this
# module); its public names are re-exported here, where callers have always found them.
from streamgate.webhooks.model import (
    ATTEMPT_COLUMNS,
    COMPONENT,
    DELIVERY_COLUMNS,
    ENDPOINT_COLUMNS,
    ENDPOINT_ID_PREFIX,
    MESSAGE_COLUMNS,
    OUTCOMES,
    Attempt,
    Delivery,
    Endpoint,
    Matcher,
    MessageInfo,
    OutboxMessage,
    Outcome,
    WebhookNotFound,
    WebhookStore,
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

__all__ = [
    "COMPONENT",
    "ENDPOINT_ID_PREFIX",
    "MIGRATIONS",
    "OUTCOMES",
    "Attempt",
    "Delivery",
    "Endpoint",
    "Matcher",
    "MessageInfo",
    "OutboxMessage",
    "Outcome",
    "SqliteWebhookStore",
    "WebhookNotFound",
    "WebhookStore",
    "event_type_matches",
    "open_store",
]

T = TypeVar("T")

# Each entry is one migration: statements run in order inside one transaction. Append
# new steps; never edit a released one. store_postgres.MIGRATIONS mirrors these.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE webhook_endpoints (
            id TEXT PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL,
            url TEXT NOT NULL,
            event_types TEXT,
            enabled INTEGER NOT NULL,
            secret TEXT NOT NULL,
            previous_secret TEXT,
            previous_secret_until REAL,
            created_at REAL NOT NULL,
            failing_since REAL,
            disabled_reason TEXT
        )""",
        "CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant, created_at)",
        """CREATE TABLE webhook_messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id TEXT NOT NULL UNIQUE,
            tenant TEXT NOT NULL,
            event_type TEXT NOT NULL,
            created_at REAL NOT NULL,
            body BLOB NOT NULL
        )""",
        "CREATE INDEX webhook_messages_tenant ON webhook_messages (tenant, created_at, seq)",
        """CREATE TABLE webhook_deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id TEXT NOT NULL
                REFERENCES webhook_messages (message_id) ON DELETE CASCADE,
            endpoint_id TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at REAL NOT NULL,
            lease_until REAL,
            lease_node TEXT,
            created_at REAL NOT NULL,
            done_at REAL
        )""",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries"
        " (endpoint_id, next_attempt_at, id) WHERE state = 'pending'",
        "CREATE INDEX webhook_deliveries_leased ON webhook_deliveries"
        " (endpoint_id, lease_until) WHERE state = 'pending' AND lease_until IS NOT NULL",
        "CREATE INDEX webhook_deliveries_message ON webhook_deliveries (message_id)",
        """CREATE TABLE webhook_attempts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            delivery_id INTEGER NOT NULL,
            message_id TEXT NOT NULL
                REFERENCES webhook_messages (message_id) ON DELETE CASCADE,
            endpoint_id TEXT NOT NULL,
            at REAL NOT NULL,
            status_code INTEGER,
            latency_ms REAL NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, id)",
    ),
)


def open_store(
    data_dir: Path, postgres_dsn: str | None, *, clock: Callable[[], float] = time.time
) -> WebhookStore:
    """The PostgreSQL outbox when ``postgres_dsn`` is set, else SQLite in ``data_dir``.

    Raises:
        ConfigError: the SQLite file cannot be opened (PostgreSQL connects on first use).
    """
    if postgres_dsn:
        from streamgate.webhooks.store_postgres import PostgresWebhookStore

        return PostgresWebhookStore(postgres_dsn, clock=clock)
    return SqliteWebhookStore.in_data_dir(data_dir, clock=clock)


class SqliteWebhookStore:
    """The outbox in the gateway's SQLite file, shared with the API keys (:data:`DB_NAME`).

    One connection used by one worker thread: calls run in order, off the event loop.
    Several stores (processes) may share the file; writes take ``BEGIN IMMEDIATE`` and
    wait up to :data:`~streamgate.auth.apikeys.BUSY_TIMEOUT` for another writer.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        """Open ``path`` (created mode 0600 if needed) and migrate this component's tables.

        Raises:
            ConfigError: the file cannot be created or opened, is not a database, or holds
                a webhooks schema newer than this streamgate knows.
        """
        self.path = Path(path)
        self._clock = clock
        self._closed = False
        self._close_lock = threading.Lock()
        self._db = open_shared(
            self.path,
            "PRAGMA synchronous = FULL",  # fsync every commit
            "PRAGMA foreign_keys = ON",
        )
        try:
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise ConfigError(f"cannot use {self.path}: {exc}") from None
        except ConfigError:
            self._db.close()
            raise
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-store")

    @classmethod
    def in_data_dir(
        cls, data_dir: Path, *, clock: Callable[[], float] = time.time
    ) -> SqliteWebhookStore:
        """Open :data:`DB_NAME` in ``data_dir``, creating the directory if needed."""
        return cls(shared_db_path(data_dir), clock=clock)

    def _migrate(self) -> None:
        def run(db: sqlite3.Connection) -> None:
            apply_migrations(db, self.path, COMPONENT, MIGRATIONS)

        self._write(run)

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction, committed on return."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return result

    async def _run(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        if self._closed:
            raise RuntimeError("webhook store is closed")
        call: Callable[[], T] = (lambda: self._write(fn)) if write else (lambda: fn(self._db))
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

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

        def run(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS})"
                " VALUES (?, ?, ?, ?, 1, ?, NULL, NULL, ?, NULL, NULL)",
                (
                    endpoint.id,
                    tenant,
                    url,
                    dump_event_types(endpoint.event_types),
                    secret,
                    endpoint.created_at,
                ),
            )

        await self._run(run, write=True)
        return endpoint

    async def list_endpoints(self, tenant: str) -> list[Endpoint]:
        def run(db: sqlite3.Connection) -> list[Endpoint]:
            rows = db.execute(
                f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant = ?"
                " ORDER BY created_at, id",
                (tenant,),
            ).fetchall()
            return [endpoint_row(row) for row in rows]

        return await self._run(run)

    async def get_endpoint(self, tenant: str, endpoint_id: str) -> Endpoint | None:
        def run(db: sqlite3.Connection) -> Endpoint | None:
            row = db.execute(
                f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ? AND tenant = ?",
                (endpoint_id, tenant),
            ).fetchone()
            return None if row is None else endpoint_row(row)

        return await self._run(run)

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        def run(db: sqlite3.Connection) -> Endpoint | None:
            row = db.execute(
                f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
            ).fetchone()
            return None if row is None else endpoint_row(row)

        return await self._run(run)

    async def delete_endpoint(self, tenant: str, endpoint_id: str) -> bool:
        now = self._clock()

        def run(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "DELETE FROM webhook_endpoints WHERE id = ? AND tenant = ?", (endpoint_id, tenant)
            )
            if cur.rowcount == 0:
                return False
            db.execute(
                "UPDATE webhook_deliveries SET state = 'canceled', lease_until = NULL,"
                " lease_node = NULL, done_at = ? WHERE endpoint_id = ? AND state = 'pending'",
                (now, endpoint_id),
            )
            return True

        return await self._run(run, write=True)

    async def set_enabled(self, endpoint_id: str, enabled: bool, reason: str | None = None) -> None:
        def run(db: sqlite3.Connection) -> None:
            if enabled:
                db.execute(
                    "UPDATE webhook_endpoints SET enabled = 1, disabled_reason = NULL,"
                    " failing_since = NULL WHERE id = ?",
                    (endpoint_id,),
                )
            else:
                db.execute(
                    "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ? WHERE id = ?",
                    (reason, endpoint_id),
                )

        await self._run(run, write=True)

    async def rotate_secret(
        self, endpoint_id: str, new_secret: str, overlap_until: float
    ) -> Endpoint:
        def run(db: sqlite3.Connection) -> Endpoint:
            db.execute(
                "UPDATE webhook_endpoints SET previous_secret = secret,"
                " previous_secret_until = ?, secret = ? WHERE id = ?",
                (overlap_until, new_secret, endpoint_id),
            )
            row = db.execute(
                f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?", (endpoint_id,)
            ).fetchone()
            if row is None:
                raise WebhookNotFound(f"no endpoint {endpoint_id!r}")
            return endpoint_row(row)

        return await self._run(run, write=True)

    # the outbox

    async def enqueue(self, messages: Sequence[OutboxMessage]) -> int:
        batch = unique_messages(messages)
        if not batch:
            return 0
        now = self._clock()

        def run(db: sqlite3.Connection) -> int:
            created = 0
            for m in batch:
                cur = db.execute(
                    "INSERT INTO webhook_messages"
                    " (message_id, tenant, event_type, created_at, body) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (message_id) DO NOTHING",
                    (m.message_id, m.tenant, m.event_type, m.created_at, m.body),
                )
                if cur.rowcount == 0:
                    continue
                for endpoint_id in dict.fromkeys(m.endpoint_ids):
                    cur = db.execute(
                        "INSERT INTO webhook_deliveries (message_id, endpoint_id, state,"
                        " attempts, next_attempt_at, created_at)"
                        " SELECT ?, id, 'pending', 0, ?, ? FROM webhook_endpoints"
                        " WHERE id = ? AND tenant = ?",
                        (m.message_id, m.created_at, now, endpoint_id, m.tenant),
                    )
                    created += cur.rowcount
            return created

        return await self._run(run, write=True)

    async def claim_due(
        self, now: float, *, limit: int, lease: float, node: str, per_endpoint: int
    ) -> list[Delivery]:
        if lease <= 0:
            raise ValueError("lease must be positive")
        if limit <= 0 or per_endpoint <= 0:
            return []
        until = now + lease
        due = (
            "d.state = 'pending' AND d.next_attempt_at <= :now"
            " AND (d.lease_until IS NULL OR d.lease_until <= :now)"
        )

        def run(db: sqlite3.Connection) -> list[Delivery]:
            params = {"now": now, "per": per_endpoint, "limit": limit}
            endpoints = db.execute(
                "SELECT id, active FROM (SELECT e.id AS id,"
                " (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id"
                "  AND d.state = 'pending' AND d.lease_until > :now) AS active,"
                f" (SELECT d.next_attempt_at FROM webhook_deliveries d WHERE d.endpoint_id = e.id"
                f"  AND {due} ORDER BY d.next_attempt_at, d.id LIMIT 1) AS first"
                " FROM webhook_endpoints e WHERE e.enabled = 1)"
                " WHERE first IS NOT NULL AND active < :per ORDER BY first, id LIMIT :limit",
                params,
            ).fetchall()
            chosen: list[Delivery] = []
            for endpoint_id, active in endpoints:
                rows = db.execute(
                    f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d"
                    " JOIN webhook_messages m ON m.message_id = d.message_id"
                    f" WHERE d.endpoint_id = :endpoint AND {due}"
                    " ORDER BY d.next_attempt_at, d.id LIMIT :n",
                    {"now": now, "endpoint": endpoint_id, "n": per_endpoint - active},
                ).fetchall()
                chosen.extend(delivery_row(row) for row in rows)
            chosen.sort(key=lambda d: (d.next_attempt_at, d.id))
            del chosen[limit:]
            db.executemany(
                "UPDATE webhook_deliveries SET lease_until = ?, lease_node = ? WHERE id = ?",
                [(until, node, d.id) for d in chosen],
            )
            return chosen

        return await self._run(run, write=True)

    async def renew(self, delivery_ids: Sequence[int], *, node: str, until: float) -> int:
        ids = list(dict.fromkeys(delivery_ids))
        if not ids:
            return 0

        def run(db: sqlite3.Connection) -> int:
            renewed = 0
            for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                cur = db.execute(
                    "UPDATE webhook_deliveries SET lease_until = ? WHERE lease_node = ?"
                    " AND state = 'pending' AND lease_until IS NOT NULL"
                    f" AND id IN ({', '.join('?' * len(chunk))})",
                    (until, node, *chunk),
                )
                renewed += cur.rowcount
            return renewed

        return await self._run(run, write=True)

    async def release_leases(self, node: str) -> int:
        def run(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "UPDATE webhook_deliveries SET lease_until = NULL, lease_node = NULL"
                " WHERE lease_node = ? AND state = 'pending'",
                (node,),
            )
            return cur.rowcount

        return await self._run(run, write=True)

    async def record(
        self,
        delivery: Delivery,
        attempt: Attempt,
        *,
        outcome: Outcome,
        next_attempt_at: float | None,
    ) -> None:
        check_outcome(outcome, next_attempt_at)

        def run(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO webhook_attempts (delivery_id, message_id, endpoint_id, at,"
                " status_code, latency_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
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
            if outcome == "succeeded":
                db.execute(
                    "UPDATE webhook_endpoints SET failing_since = NULL"
                    " WHERE id = ? AND failing_since IS NOT NULL",
                    (delivery.endpoint_id,),
                )
                db.execute(
                    "UPDATE webhook_deliveries SET state = 'succeeded', attempts = attempts + 1,"
                    " lease_until = NULL, lease_node = NULL, done_at = ?"
                    " WHERE id = ? AND state = 'pending'",
                    (attempt.at, delivery.id),
                )
                return
            db.execute(
                "UPDATE webhook_endpoints SET failing_since = ?"
                " WHERE id = ? AND failing_since IS NULL",
                (attempt.at, delivery.endpoint_id),
            )
            if outcome == "retry":
                db.execute(
                    "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?,"
                    " lease_until = NULL, lease_node = NULL"
                    " WHERE id = ? AND state = 'pending' AND attempts = ?",
                    (next_attempt_at, delivery.id, delivery.attempts),
                )
            else:
                db.execute(
                    "UPDATE webhook_deliveries SET state = 'failed', attempts = attempts + 1,"
                    " lease_until = NULL, lease_node = NULL, done_at = ?"
                    " WHERE id = ? AND state = 'pending' AND attempts = ?",
                    (attempt.at, delivery.id, delivery.attempts),
                )

        await self._run(run, write=True)

    # visibility and replay

    async def attempts(self, tenant: str, message_id: str) -> list[Attempt]:
        def run(db: sqlite3.Connection) -> list[Attempt]:
            rows = db.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts a"
                " JOIN webhook_messages m ON m.message_id = a.message_id"
                " WHERE a.message_id = ? AND m.tenant = ? ORDER BY a.at, a.id",
                (message_id, tenant),
            ).fetchall()
            return [attempt_row(row) for row in rows]

        return await self._run(run)

    async def messages(self, tenant: str, *, since: float | None, limit: int) -> list[MessageInfo]:
        def run(db: sqlite3.Connection) -> list[MessageInfo]:
            rows = db.execute(
                f"SELECT {MESSAGE_COLUMNS} FROM webhook_messages m"
                " WHERE m.tenant = ? AND m.created_at >= ?"
                " ORDER BY m.created_at, m.seq LIMIT ?",
                (tenant, float("-inf") if since is None else since, max(limit, 0)),
            ).fetchall()
            return [message_row(row) for row in rows]

        return await self._run(run)

    async def resend(self, tenant: str, message_id: str, endpoint_id: str | None) -> int:
        now = self._clock()

        def run(db: sqlite3.Connection) -> int:
            if (
                db.execute(
                    "SELECT 1 FROM webhook_messages WHERE message_id = ? AND tenant = ?",
                    (message_id, tenant),
                ).fetchone()
                is None
            ):
                raise WebhookNotFound(f"no message {message_id!r}")
            if endpoint_id is None:
                targets = [
                    str(row[0])
                    for row in db.execute(
                        "SELECT DISTINCT d.endpoint_id FROM webhook_deliveries d"
                        " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
                        " WHERE d.message_id = ? AND e.tenant = ? ORDER BY d.endpoint_id",
                        (message_id, tenant),
                    )
                ]
            elif (
                db.execute(
                    "SELECT 1 FROM webhook_endpoints WHERE id = ? AND tenant = ?",
                    (endpoint_id, tenant),
                ).fetchone()
                is None
            ):
                raise WebhookNotFound(f"no endpoint {endpoint_id!r}")
            else:
                targets = [endpoint_id]
            db.executemany(
                "INSERT INTO webhook_deliveries (message_id, endpoint_id, state, attempts,"
                " next_attempt_at, created_at) VALUES (?, ?, 'pending', 0, ?, ?)",
                [(message_id, target, now, now) for target in targets],
            )
            return len(targets)

        return await self._run(run, write=True)

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

        def run(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT event_types FROM webhook_endpoints WHERE id = ? AND tenant = ?",
                (endpoint_id, tenant),
            ).fetchone()
            if row is None:
                raise WebhookNotFound(f"no endpoint {endpoint_id!r}")
            filters = load_event_types(row[0])
            rows = db.execute(
                "SELECT m.message_id, m.event_type FROM webhook_messages m"
                " WHERE m.tenant = ? AND m.created_at >= ? AND NOT EXISTS ("
                "  SELECT 1 FROM webhook_deliveries d WHERE d.message_id = m.message_id"
                "  AND d.endpoint_id = ? AND d.state = 'pending')"
                " ORDER BY m.created_at, m.seq",
                (tenant, since, endpoint_id),
            ).fetchall()
            chosen = [str(r[0]) for r in rows if matches(str(r[1]), filters)]
            db.executemany(
                "INSERT INTO webhook_deliveries (message_id, endpoint_id, state, attempts,"
                " next_attempt_at, created_at) VALUES (?, ?, 'pending', 0, ?, ?)",
                [(message_id, endpoint_id, now, now) for message_id in chosen],
            )
            return len(chosen)

        return await self._run(run, write=True)

    async def prune(self, before: float) -> int:
        def run(db: sqlite3.Connection) -> int:
            cur = db.execute(
                "DELETE FROM webhook_messages WHERE created_at < ? AND NOT EXISTS ("
                " SELECT 1 FROM webhook_deliveries d"
                " WHERE d.message_id = webhook_messages.message_id AND d.state = 'pending')",
                (before,),
            )
            return cur.rowcount

        return await self._run(run, write=True)

    async def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        # Queued behind every call already submitted, so those finish first.
        await asyncio.get_running_loop().run_in_executor(self._executor, self._db.close)
        self._executor.shutdown(wait=True)
