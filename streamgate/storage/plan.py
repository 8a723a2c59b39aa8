"""Database work as plans: generators of statements, run by one executor per database.

A *plan* is a generator that yields :class:`Query` objects and is sent each one's
:class:`Result`; what it returns is the call's answer. It does no I/O, so one plan (the
outbox's algorithm, the migration runner) serves SQLite, run in a worker thread by
:func:`run_sync`, and PostgreSQL, awaited statement by statement on an async connection
(:mod:`streamgate.storage.postgres`). An exception raised by a plan ends the call and
rolls its transaction back.

Plans write parameters in sqlite3's styles, ``?`` or ``:name``; the PostgreSQL executor
rewrites them for psycopg (:func:`streamgate.storage.postgres.psycopg_sql`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

__all__ = ["Executor", "Kind", "Plan", "PlanFactory", "Query", "Result", "run_sync"]

T = TypeVar("T")
Params = Sequence[Any] | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Query:
    """One statement and its parameters; ``many``: run once per item of ``params``."""

    sql: str
    params: Params | Sequence[Params] = ()
    many: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    """What a statement gave back: its rows (none for most writes) and the rows it changed."""

    rows: list[tuple[Any, ...]]
    rowcount: int


Plan = Generator[Query, Result, T]
PlanFactory = Callable[[], Plan[T]]

# How a call touches the database, which decides its transaction:
# "read": no transaction; "write": writes, each statement safe to commit alone (SQLite
# still takes the writer lock first, BEGIN IMMEDIATE); "transaction": statements that
# commit together or not at all.
Kind = Literal["read", "write", "transaction"]


class Executor(Protocol):
    """Runs plans on one database: the seam between the outbox's algorithm and its I/O."""

    async def run(self, plan: PlanFactory[T], *, kind: Kind, repeatable: bool = False) -> T:
        """Run a fresh ``plan()`` and return its value.

        ``repeatable``: the plan is safe to run twice (a read, or a write whose repeat
        changes nothing), so an executor may run it again on a fresh connection when the
        one it used turned out broken.

        Raises:
            RuntimeError: the executor is closed.
        """
        ...

    async def close(self) -> None:
        """Release the connections; calls afterwards raise RuntimeError. Idempotent."""
        ...


def run_sync(db: sqlite3.Connection, plan: Plan[T]) -> T:
    """Run ``plan`` on ``db`` in this thread; the caller holds any transaction."""
    try:
        query = next(plan)
        while True:
            if query.many:
                cur = db.executemany(query.sql, query.params)
            else:
                cur = db.execute(query.sql, query.params)
            query = plan.send(Result(cur.fetchall(), cur.rowcount))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()
