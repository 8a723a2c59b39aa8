"""The one migration runner, for both databases and every component.

Each component (``"apikeys"``, ``"webhooks"``) keeps its own row in ``schema_versions``,
so several share one SQLite file or one PostgreSQL schema. A component's migrations are
a sequence of steps, each a sequence of statements; step ``n`` brings the component to
version ``n``. Append new steps; never edit a released one. :func:`migrate` runs the
missing steps and the version bump inside the caller's transaction (SQLite: ``BEGIN
IMMEDIATE``; PostgreSQL: a transaction that first takes an advisory lock, ``lock``), so
concurrent first opens agree.

A schema written once for both databases names its column types as fields,
``{text}``, ``{real}``, ``{blob}``, ``{int}``, ``{bigint}``, ``{bool}`` and ``{serial}`` (an
auto-numbered primary key); :func:`render` fills them from :data:`SQLITE_TYPES` or
:data:`POSTGRES_TYPES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from streamgate.errors import ConfigError
from streamgate.storage.plan import Plan, Query

__all__ = ["POSTGRES_TYPES", "SQLITE_TYPES", "Migrations", "migrate", "render"]

Migrations = Sequence[Sequence[str]]

SQLITE_TYPES: Final[Mapping[str, str]] = {
    "text": "TEXT",
    "real": "REAL",
    "blob": "BLOB",
    "int": "INTEGER",
    "bigint": "INTEGER",
    "bool": "INTEGER",
    "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
}
POSTGRES_TYPES: Final[Mapping[str, str]] = {
    "text": "text",
    "real": "double precision",
    "blob": "bytea",
    "int": "integer",
    "bigint": "bigint",
    "bool": "boolean",
    "serial": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}


def render(migrations: Migrations, types: Mapping[str, str]) -> tuple[tuple[str, ...], ...]:
    """``migrations`` with their column-type fields filled from ``types``."""
    return tuple(tuple(statement.format_map(types) for statement in step) for step in migrations)


def migrate(
    component: str, migrations: Migrations, where: str, *, lock: Query | None = None
) -> Plan[None]:
    """Bring ``component``'s tables up to ``len(migrations)``; run in a transaction.

    ``where`` names the database in errors; ``lock`` is a statement run first that
    serialises concurrent runners (none for SQLite, whose write transaction does that).

    Raises:
        ConfigError: the database holds a newer schema than this streamgate knows.
    """
    if lock is not None:
        yield lock
    yield Query(
        "CREATE TABLE IF NOT EXISTS schema_versions ("
        "component TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL)"
    )
    found = yield Query("SELECT version FROM schema_versions WHERE component = ?", (component,))
    version = int(found.rows[0][0]) if found.rows else 0
    if version > len(migrations):
        raise ConfigError(
            f"{where}: {component} schema version {version} is newer than this "
            f"streamgate knows ({len(migrations)}); upgrade streamgate"
        )
    for step in migrations[version:]:
        for statement in step:
            yield Query(statement)
    if version < len(migrations):
        yield Query(
            "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
            " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, len(migrations)),
        )
