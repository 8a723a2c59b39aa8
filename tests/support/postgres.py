"""PostgreSQL for tests: started with the machine's own command when it is not answering."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

ADMIN_DSN = os.environ.get(
    "STREAMGATE_TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def answering(dsn: str) -> bool:
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def ensure_running() -> None:
    """Start PostgreSQL if it is not answering; skip the test with the reason if it won't."""
    if answering(ADMIN_DSN):
        return
    started = subprocess.run(  # noqa: S602 (the machine doc's fixed command)
        PG_START, shell=True, capture_output=True, text=True, timeout=60, check=False
    )
    deadline = time.monotonic() + 15
    while not answering(ADMIN_DSN):
        if time.monotonic() > deadline:
            pytest.skip(
                f"PostgreSQL not answering at {ADMIN_DSN!r}; {PG_START!r} exited "
                f"{started.returncode}: {(started.stderr or started.stdout).strip()[:300]}"
            )
        time.sleep(0.2)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A database of its own (``streamgate_test_<random>``), dropped afterwards."""
    ensure_running()
    name = f"streamgate_test_{secrets.token_hex(6)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield psycopg.conninfo.make_conninfo(ADMIN_DSN, dbname=name)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_schema(database_dsn: str) -> Iterator[str]:
    """A schema of its own in ``database_dsn`` (as the search_path), dropped afterwards."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(database_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield psycopg.conninfo.make_conninfo(database_dsn, options=f"-csearch_path={schema}")
    finally:
        with psycopg.connect(database_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
