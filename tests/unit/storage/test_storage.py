"""Storage plumbing: the one migration runner and the two executors, on SQLite and PostgreSQL.

PostgreSQL cases (marked ``postgres``) use a schema of their own in this module's
database (tests/support/postgres.py starts the server when it is not answering).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest

from streamgate.errors import ConfigError
from streamgate.storage.migrations import Migrations
from streamgate.storage.plan import Executor, Plan, Query
from streamgate.storage.postgres import PostgresExecutor, psycopg_sql
from streamgate.storage.sqlite import DB_NAME, SqliteExecutor, open_shared

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
STEP_1 = ("CREATE TABLE toy (id {text} PRIMARY KEY NOT NULL, n {int} NOT NULL)",)
STEP_2 = ("ALTER TABLE toy ADD COLUMN note {text}", "CREATE INDEX toy_n ON toy (n)")
Opener = Callable[[Migrations], Executor]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def opener(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Opener]:
    """Opens executors on one database for component "toy" with the given migrations."""
    from streamgate.storage.migrations import POSTGRES_TYPES, SQLITE_TYPES, render

    dsn = str(request.getfixturevalue("pg_schema")) if backend == "postgres" else ""
    opened: list[Executor] = []

    def open_one(migrations: Migrations) -> Executor:
        executor: Executor
        if backend == "sqlite":
            steps = render(migrations, SQLITE_TYPES)
            db = open_shared(tmp_path / DB_NAME, component="toy", migrations=steps)
            executor = SqliteExecutor(db, name="toy store")
        else:
            steps = render(migrations, POSTGRES_TYPES)
            executor = PostgresExecutor(
                dsn, component="toy", migrations=steps, name="toy store", where="toy db"
            )
        opened.append(executor)
        return executor

    yield open_one
    for executor in opened:
        await executor.close()


def count_toys() -> Plan[int]:
    found = yield Query("SELECT count(*) FROM toy")
    return int(found.rows[0][0])


def versions() -> Plan[dict[str, int]]:
    found = yield Query("SELECT component, version FROM schema_versions")
    return {str(c): int(v) for c, v in found.rows}


async def test_the_runner_applies_each_step_once(opener: Opener) -> None:
    first = opener((STEP_1,))
    assert await first.run(count_toys, kind="read") == 0

    def add(n: int) -> Callable[[], Plan[None]]:
        def plan() -> Plan[None]:
            yield Query("INSERT INTO toy (id, n) VALUES (?, ?)", (f"t{n}", n))

        return plan

    await first.run(add(1), kind="write")
    again = opener((STEP_1,))  # nothing to do: the table and its row stay
    assert await again.run(count_toys, kind="read") == 1
    newer = opener((STEP_1, STEP_2))  # only step 2 runs
    assert await newer.run(versions, kind="read") == {"toy": 2}

    def noted() -> Plan[list[tuple[object, ...]]]:
        found = yield Query("SELECT id, n, note FROM toy")
        return found.rows

    assert await newer.run(noted, kind="read") == [("t1", 1, None)]
    with pytest.raises(ConfigError, match="toy schema version 2 is newer"):
        await opener((STEP_1,)).run(count_toys, kind="read")


async def test_a_failing_step_leaves_the_version_as_it_was(opener: Opener) -> None:
    await opener((STEP_1,)).run(count_toys, kind="read")
    broken = (STEP_1, ("ALTER TABLE toy ADD COLUMN extra {int}", "THIS IS NOT SQL"))
    with pytest.raises((ConfigError, sqlite3.Error, psycopg.Error)):
        await opener(broken).run(count_toys, kind="read")
    fixed = opener((STEP_1, ("ALTER TABLE toy ADD COLUMN extra {int}",)))
    assert await fixed.run(versions, kind="read") == {"toy": 2}  # extra added once


async def test_a_transaction_that_raises_stores_nothing(opener: Opener) -> None:
    executor = opener((STEP_1,))

    def half() -> Plan[None]:
        yield Query("INSERT INTO toy (id, n) VALUES (?, ?)", ("a", 1))
        raise LookupError("changed my mind")

    def many() -> Plan[int]:
        done = yield Query("INSERT INTO toy (id, n) VALUES (?, ?)", [("b", 2), ("c", 3)], many=True)
        return done.rowcount

    with pytest.raises(LookupError):
        await executor.run(half, kind="transaction")
    assert await executor.run(count_toys, kind="read") == 0
    assert await executor.run(many, kind="transaction") == 2
    assert await executor.run(count_toys, kind="read") == 2
    await executor.close()
    await executor.close()  # idempotent
    with pytest.raises(RuntimeError, match="toy store is closed"):
        await executor.run(count_toys, kind="read")


def test_psycopg_sql_rewrites_sqlite_parameters() -> None:
    assert psycopg_sql("SELECT ? WHERE a = ?") == "SELECT %s WHERE a = %s"
    assert psycopg_sql("WHERE a <= :now AND b = :now") == "WHERE a <= %(now)s AND b = %(now)s"
    assert psycopg_sql("unnest(:ids::text[]) x") == "unnest(%(ids)s::text[]) x"  # casts kept
    assert psycopg_sql("SELECT 5 % 2, ?") == "SELECT 5 %% 2, %s"
