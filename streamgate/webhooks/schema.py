"""The outbox's tables, written once for SQLite and PostgreSQL, and how rows become records.

:data:`MIGRATIONS` names column types as fields (``{text}``, ``{serial}``...) that
:func:`streamgate.storage.migrations.render` fills per database; rendered, they are the
tables both backends have made since release 1, so existing databases keep working.
Each entry is one migration (statements run in order inside one transaction). Append new
steps; never edit a released one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from streamgate.webhooks.model import Attempt, Delivery, Endpoint, MessageInfo, load_event_types

__all__ = [
    "ATTEMPT_COLUMNS",
    "COMPONENT",
    "DELIVERY_COLUMNS",
    "ENDPOINT_COLUMNS",
    "MESSAGE_COLUMNS",
    "MIGRATIONS",
    "attempt_row",
    "delivery_row",
    "endpoint_row",
    "message_row",
]

COMPONENT: Final = "webhooks"  # the outbox's row in schema_versions

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE webhook_endpoints (
            id {text} PRIMARY KEY NOT NULL,
            tenant {text} NOT NULL,
            url {text} NOT NULL,
            event_types {text},
            enabled {bool} NOT NULL,
            secret {text} NOT NULL,
            previous_secret {text},
            previous_secret_until {real},
            created_at {real} NOT NULL,
            failing_since {real},
            disabled_reason {text}
        )""",
        "CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant, created_at)",
        """CREATE TABLE webhook_messages (
            seq {serial},
            message_id {text} NOT NULL UNIQUE,
            tenant {text} NOT NULL,
            event_type {text} NOT NULL,
            created_at {real} NOT NULL,
            body {blob} NOT NULL
        )""",
        "CREATE INDEX webhook_messages_tenant ON webhook_messages (tenant, created_at, seq)",
        """CREATE TABLE webhook_deliveries (
            id {serial},
            message_id {text} NOT NULL
                REFERENCES webhook_messages (message_id) ON DELETE CASCADE,
            endpoint_id {text} NOT NULL,
            state {text} NOT NULL,
            attempts {int} NOT NULL,
            next_attempt_at {real} NOT NULL,
            lease_until {real},
            lease_node {text},
            created_at {real} NOT NULL,
            done_at {real}
        )""",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries"
        " (endpoint_id, next_attempt_at, id) WHERE state = 'pending'",
        "CREATE INDEX webhook_deliveries_leased ON webhook_deliveries"
        " (endpoint_id, lease_until) WHERE state = 'pending' AND lease_until IS NOT NULL",
        "CREATE INDEX webhook_deliveries_message ON webhook_deliveries (message_id)",
        """CREATE TABLE webhook_attempts (
            id {serial},
            delivery_id {bigint} NOT NULL,
            message_id {text} NOT NULL
                REFERENCES webhook_messages (message_id) ON DELETE CASCADE,
            endpoint_id {text} NOT NULL,
            at {real} NOT NULL,
            status_code {int},
            latency_ms {real} NOT NULL,
            error {text}
        )""",
        "CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, id)",
    ),
)

ENDPOINT_COLUMNS: Final = (
    "id, tenant, url, event_types, enabled, secret, previous_secret, previous_secret_until,"
    " created_at, failing_since, disabled_reason"
)
DELIVERY_COLUMNS: Final = (
    "d.id, d.message_id, d.endpoint_id, d.attempts, d.next_attempt_at, m.event_type, m.body"
)
ATTEMPT_COLUMNS: Final = (
    "a.delivery_id, a.message_id, a.endpoint_id, a.at, a.status_code, a.latency_ms, a.error"
)
MESSAGE_COLUMNS: Final = (
    "m.message_id, m.tenant, m.event_type, m.created_at, m.body,"
    " (SELECT count(*) FROM webhook_deliveries d"
    "  WHERE d.message_id = m.message_id AND d.state = 'pending'),"
    " (SELECT count(*) FROM webhook_deliveries d"
    "  WHERE d.message_id = m.message_id AND d.state = 'succeeded'),"
    " (SELECT count(*) FROM webhook_deliveries d"
    "  WHERE d.message_id = m.message_id AND d.state = 'failed')"
)


def endpoint_row(row: Sequence[Any]) -> Endpoint:
    return Endpoint(
        id=row[0],
        tenant=row[1],
        url=row[2],
        event_types=load_event_types(row[3]),
        enabled=bool(row[4]),
        secret=row[5],
        previous_secret=row[6],
        previous_secret_until=row[7],
        created_at=row[8],
        failing_since=row[9],
        disabled_reason=row[10],
    )


def delivery_row(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=int(row[0]),
        message_id=row[1],
        endpoint_id=row[2],
        attempts=int(row[3]),
        next_attempt_at=row[4],
        event_type=row[5],
        body=bytes(row[6]),
    )


def attempt_row(row: Sequence[Any]) -> Attempt:
    return Attempt(
        delivery_id=int(row[0]),
        message_id=row[1],
        endpoint_id=row[2],
        at=row[3],
        status_code=row[4],
        latency_ms=row[5],
        error=row[6],
    )


def message_row(row: Sequence[Any]) -> MessageInfo:
    return MessageInfo(
        message_id=row[0],
        tenant=row[1],
        event_type=row[2],
        created_at=row[3],
        body=bytes(row[4]),
        pending=int(row[5]),
        succeeded=int(row[6]),
        failed=int(row[7]),
    )
