"""PostgreSQL for components shared by several gateway nodes: a small pool that runs plans.

:class:`PostgresExecutor` keeps up to ``pool_size`` ``psycopg`` async connections
(autocommit), opened on first use; the first one opened brings the component's tables
up to date (:func:`~streamgate.storage.migrations.migrate`) under a transaction-level
advisory lock (:data:`MIGRATE_LOCK`), so nodes starting together agree. A connection
that breaks is dropped; the call fails with :class:`psycopg.OperationalError` and the
next one opens a fresh connection, except that a plan marked ``repeatable`` is run once
more on a fresh connection when a pooled one turns out broken.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from streamgate.storage.migrations import Migrations, migrate
from streamgate.storage.plan import Kind, Plan, PlanFactory, Query, Result

__all__ = ["DEFAULT_POOL_SIZE", "MIGRATE_LOCK", "PostgresExecutor", "psycopg_sql"]

DEFAULT_POOL_SIZE: Final = 4
# pg_advisory_xact_lock key serializing schema migrations (any component's).
MIGRATE_LOCK: Final = 0x73_67_5F_73_63_68_65_6D  # "sg_schem"

T = TypeVar("T")
Conn = AsyncConnection[tuple[Any, ...]]

_NAMED = re.compile(r"(?<![:\w]):(\w+)")  # ":name", not the "::" of a cast


@functools.lru_cache(maxsize=256)
def psycopg_sql(sql: str) -> str:
    """``sql`` in psycopg's parameter style: ``?`` -> ``%s``, ``:name`` -> ``%(name)s``.

    For the statements of plans, which hold no ``?`` or ``:`` inside string literals.
    """
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%").replace("?", "%s"))


async def _drive(conn: Conn, plan: Plan[T]) -> T:
    try:
        query = next(plan)
        while True:
            cur = conn.cursor()
            sql = psycopg_sql(query.sql)
            if query.many:
                await cur.executemany(sql, query.params)
            else:
                await cur.execute(sql, query.params)
            rows = await cur.fetchall() if cur.description is not None else []
            query = plan.send(Result(rows, cur.rowcount))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()


class PostgresExecutor:
    """Runs plans on pooled connections to the database (and ``search_path``) ``dsn`` names.

    A ``"transaction"`` plan runs in one transaction; the others statement by statement
    in autocommit mode. Safe for many nodes at once.
    """

    def __init__(
        self,
        dsn: str,
        *,
        component: str,
        migrations: Migrations,
        name: str,
        where: str,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        """Remember ``dsn``; nothing connects until the first call.

        ``component`` and ``migrations`` are the tables to keep up to date; ``name`` says
        what is closed in errors, ``where`` names the database in migration errors.
        """
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self._dsn = dsn
        self._component = component
        self._migrations = migrations
        self._name = name
        self._where = where
        self._slots = asyncio.Semaphore(pool_size)
        self._idle: list[Conn] = []
        self._migrated = False
        self._migrate_lock = asyncio.Lock()
        self._closed = False

    async def _connect(self) -> Conn:
        conn: Conn = await AsyncConnection.connect(self._dsn, autocommit=True)
        if not self._migrated:
            async with self._migrate_lock:
                if not self._migrated:
                    lock = Query("SELECT pg_advisory_xact_lock(?)", (MIGRATE_LOCK,))
                    plan = migrate(self._component, self._migrations, self._where, lock=lock)
                    try:
                        async with conn.transaction():
                            await _drive(conn, plan)
                    except BaseException:
                        await conn.close()
                        raise
                    self._migrated = True
        return conn

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[tuple[Conn, bool]]:
        """A pooled connection and whether it was reused (False: freshly opened)."""
        if self._closed:
            raise RuntimeError(f"{self._name} is closed")
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

    async def _once(self, conn: Conn, plan: PlanFactory[T], kind: Kind) -> T:
        if kind != "transaction":
            return await _drive(conn, plan())
        async with conn.transaction():
            return await _drive(conn, plan())

    async def run(self, plan: PlanFactory[T], *, kind: Kind, repeatable: bool = False) -> T:
        async with self._connection() as (conn, reused):
            try:
                return await self._once(conn, plan, kind)
            except psycopg.OperationalError:
                if not (repeatable and reused and (conn.broken or conn.closed)):
                    raise
        async with self._connection() as (conn, _):
            return await self._once(conn, plan, kind)

    async def close(self) -> None:
        """Close idle connections; ones in use close when their call ends. Idempotent."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()
