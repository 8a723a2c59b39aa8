"""The durable webhook outbox: endpoints, messages, deliveries, attempts (issue 6).

One interface, :class:`WebhookStore`, and two backends: :class:`SqliteWebhookStore` in
the gateway's SQLite file (the default; one node, or several processes on one host) and
:class:`~streamgate.webhooks.store_postgres.PostgresWebhookStore` (several gateway nodes
sharing one outbox). :func:`open_store` picks one. Both are one
:class:`~streamgate.webhooks.outbox_store.OutboxStore` (the algorithm, once) over a
dialect (this module's :class:`SqliteDialect`, or PostgreSQL's) and an executor from
:mod:`streamgate.storage`; their tables are in :mod:`~streamgate.webhooks.schema`.

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

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from streamgate.errors import ConfigError
from streamgate.storage.migrations import SQLITE_TYPES, render
from streamgate.storage.plan import Kind, Plan, Query
from streamgate.storage.sqlite import SqliteExecutor, open_shared, shared_db_path
from streamgate.webhooks.model import (
    ENDPOINT_ID_PREFIX,
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
    event_type_matches,
)
from streamgate.webhooks.outbox_store import OutboxStore
from streamgate.webhooks.schema import COMPONENT, DELIVERY_COLUMNS, delivery_row
from streamgate.webhooks.schema import MIGRATIONS as SCHEMA

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
    "SqliteDialect",
    "SqliteWebhookStore",
    "WebhookNotFound",
    "WebhookStore",
    "event_type_matches",
    "open_store",
]

MIGRATIONS: Final = render(SCHEMA, SQLITE_TYPES)
# SQLite with RETURNING (3.35), which rotate_secret uses, and upserts (3.24).
MIN_SQLITE: Final = (3, 35)
_MAX_PARAMS: Final = 500  # ids per statement, well under SQLite's bound-parameter limit
_DUE: Final = (
    "d.state = 'pending' AND d.next_attempt_at <= :now"
    " AND (d.lease_until IS NULL OR d.lease_until <= :now)"
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


class SqliteDialect:
    """SQLite's pieces: one writer at a time (``BEGIN IMMEDIATE``), so a claim reads,
    chooses and leases without locking rows; statements one message at a time."""

    enqueue_kind: Kind = "transaction"

    def enqueue(self, batch: Sequence[OutboxMessage], now: float) -> Plan[int]:
        created = 0
        for m in batch:
            stored = yield Query(
                "INSERT INTO webhook_messages"
                " (message_id, tenant, event_type, created_at, body) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (message_id) DO NOTHING",
                (m.message_id, m.tenant, m.event_type, m.created_at, m.body),
            )
            if stored.rowcount == 0:
                continue
            for endpoint_id in dict.fromkeys(m.endpoint_ids):
                added = yield Query(
                    "INSERT INTO webhook_deliveries (message_id, endpoint_id, state,"
                    " attempts, next_attempt_at, created_at)"
                    " SELECT ?, id, 'pending', 0, ?, ? FROM webhook_endpoints"
                    " WHERE id = ? AND tenant = ?",
                    (m.message_id, m.created_at, now, endpoint_id, m.tenant),
                )
                created += added.rowcount
        return created

    def claim(
        self, now: float, *, limit: int, until: float, node: str, per_endpoint: int
    ) -> Plan[list[Delivery]]:
        endpoints = yield Query(
            "SELECT id, active FROM (SELECT e.id AS id,"
            " (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id"
            "  AND d.state = 'pending' AND d.lease_until > :now) AS active,"
            " (SELECT d.next_attempt_at FROM webhook_deliveries d WHERE d.endpoint_id = e.id"
            f"  AND {_DUE} ORDER BY d.next_attempt_at, d.id LIMIT 1) AS first"
            " FROM webhook_endpoints e WHERE e.enabled = 1)"
            " WHERE first IS NOT NULL AND active < :per ORDER BY first, id LIMIT :limit",
            {"now": now, "per": per_endpoint, "limit": limit},
        )
        chosen: list[Delivery] = []
        for endpoint_id, active in endpoints.rows:
            due = yield Query(
                f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d"
                " JOIN webhook_messages m ON m.message_id = d.message_id"
                f" WHERE d.endpoint_id = :endpoint AND {_DUE}"
                " ORDER BY d.next_attempt_at, d.id LIMIT :n",
                {"now": now, "endpoint": endpoint_id, "n": per_endpoint - active},
            )
            chosen.extend(delivery_row(row) for row in due.rows)
        chosen.sort(key=lambda d: (d.next_attempt_at, d.id))
        del chosen[limit:]
        if chosen:
            yield Query(
                "UPDATE webhook_deliveries SET lease_until = ?, lease_node = ? WHERE id = ?",
                [(until, node, d.id) for d in chosen],
                many=True,
            )
        return chosen

    def id_in(self, ids: Sequence[int]) -> list[tuple[str, tuple[Any, ...]]]:
        chunks = [tuple(ids[i : i + _MAX_PARAMS]) for i in range(0, len(ids), _MAX_PARAMS)]
        return [(f"IN ({', '.join('?' * len(chunk))})", chunk) for chunk in chunks]


class SqliteWebhookStore(OutboxStore):
    """The outbox in the gateway's SQLite file, shared with the API keys.

    One connection used by one worker thread: calls run in order, off the event loop.
    Several stores (processes) may share the file; writes take ``BEGIN IMMEDIATE`` and
    wait up to :data:`~streamgate.storage.sqlite.BUSY_TIMEOUT` for another writer.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        """Open ``path`` (created mode 0600 if needed) and migrate this component's tables.

        Raises:
            ConfigError: the file cannot be created or opened, is not a database, or holds
                a webhooks schema newer than this streamgate knows, or this Python's
                SQLite is older than :data:`MIN_SQLITE`.
        """
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise ConfigError(
                f"the webhook outbox needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer,"
                f" this Python has {sqlite3.sqlite_version}; or set a PostgreSQL DSN"
            )
        self.path = Path(path)
        self._db = open_shared(
            self.path,
            "PRAGMA synchronous = FULL",  # fsync every commit
            "PRAGMA foreign_keys = ON",
            component=COMPONENT,
            migrations=MIGRATIONS,
        )
        super().__init__(
            SqliteExecutor(self._db, name="webhook store"), SqliteDialect(), clock=clock
        )

    @classmethod
    def in_data_dir(
        cls, data_dir: Path, *, clock: Callable[[], float] = time.time
    ) -> SqliteWebhookStore:
        """Open the shared file (:data:`~streamgate.storage.sqlite.DB_NAME`) in ``data_dir``,
        creating the directory if needed."""
        return cls(shared_db_path(data_dir), clock=clock)
