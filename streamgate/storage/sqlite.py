"""The gateway's SQLite file: opening, WAL, migrations, and an executor for async callers.

:data:`DB_NAME` in ``STREAMGATE_DATA_DIR`` holds every component's tables (API keys,
the webhook outbox). It is created with mode 0600 (SQLite gives its -wal and -shm files
the same mode), runs in WAL mode, so readers never wait for a writer, and waits up to
:data:`BUSY_TIMEOUT` for another writer. Writes take ``BEGIN IMMEDIATE``, so a
transaction holds the writer lock from its first statement: one writer at a time across
every process sharing the file.

Never open the file from Python: closing any descriptor of a database file drops every
POSIX lock this process holds on it, SQLite's included (see :func:`_create_private`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from streamgate.errors import ConfigError
from streamgate.storage.migrations import Migrations, migrate
from streamgate.storage.plan import Kind, PlanFactory, run_sync

__all__ = [
    "BUSY_TIMEOUT",
    "DB_NAME",
    "SqliteExecutor",
    "open_shared",
    "shared_db_path",
    "use_wal",
    "write_transaction",
]

DB_NAME: Final = "streamgate.db"
BUSY_TIMEOUT: Final = 5.0  # seconds a writer waits for another writer's lock

T = TypeVar("T")


def shared_db_path(data_dir: Path | str) -> Path:
    """The shared SQLite file in ``data_dir`` (the directory is created if needed).

    Raises:
        ConfigError: the directory cannot be created.
    """
    try:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot use data directory {data_dir}: {exc}") from None
    return Path(data_dir) / DB_NAME


def use_wal(db: sqlite3.Connection) -> None:
    """Put the file in WAL mode, retrying while a concurrent first open holds it.

    Switching a new file to WAL needs an exclusive lock, and SQLite reports a busy file
    at once here instead of calling its busy handler: retry until BUSY_TIMEOUT. Once the
    file is in WAL mode this is a no-op.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def write_transaction(db: sqlite3.Connection, fn: Callable[[], T]) -> T:
    """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction, committed on return."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = fn()
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def open_shared(
    path: Path, *pragmas: str, component: str, migrations: Migrations
) -> sqlite3.Connection:
    """Open the shared file for ``component`` and bring its tables up to date.

    Creates the file (mode 0600) if needed, turns on WAL and SQLite's busy handler, runs
    ``pragmas``, then the component's missing migrations. One connection, in autocommit
    mode (transactions are explicit), usable from any thread.

    Raises:
        ConfigError: the file cannot be created or opened, is not a database, or holds a
            schema of ``component`` newer than this streamgate knows.
    """
    try:
        _create_private(path)
        db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open {path}: {exc}") from None
    try:
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        use_wal(db)
        for pragma in pragmas:
            db.execute(pragma)
        write_transaction(db, lambda: run_sync(db, migrate(component, migrations, str(path))))
    except sqlite3.Error as exc:
        db.close()
        raise ConfigError(f"cannot use {path}: {exc}") from None
    except BaseException:
        db.close()
        raise
    return db


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (SQLite takes an empty file).

    SQLite gives its -wal and -shm files the database file's mode, so all stay private.
    The file is never opened in place: closing any descriptor of a database file drops
    every POSIX lock this process holds on it, SQLite's included. So an empty file is
    made under a temporary name, closed, then linked into place (a link fails if the
    name exists: concurrent first opens agree on one file). On a file system without
    hard links it is created in place with ``O_EXCL`` instead, which leaves a narrow race
    with a concurrent first open in this process.
    """
    if path.exists():
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError:  # no hard links here
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    finally:
        os.unlink(tmp)


class SqliteExecutor:
    """Runs plans on one connection in one worker thread: in order, off the event loop.

    A ``"write"`` or ``"transaction"`` plan runs whole inside ``BEGIN IMMEDIATE``; a read
    runs without a transaction (WAL: it never waits for a writer). ``repeatable`` changes
    nothing here: the file does not break the way a network connection does.
    """

    def __init__(self, db: sqlite3.Connection, *, name: str) -> None:
        """Take ``db`` (from :func:`open_shared`); ``name`` says what is closed in errors."""
        self.db = db
        self._name = name
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name.replace(" ", "-"))

    async def run(self, plan: PlanFactory[T], *, kind: Kind, repeatable: bool = False) -> T:
        if self._closed:
            raise RuntimeError(f"{self._name} is closed")
        db = self.db

        def call() -> T:
            if kind == "read":
                return run_sync(db, plan())
            return write_transaction(db, lambda: run_sync(db, plan()))

        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        # Queued behind every call already submitted, so those finish first.
        await asyncio.get_running_loop().run_in_executor(self._thread, self.db.close)
        self._thread.shutdown(wait=True)
