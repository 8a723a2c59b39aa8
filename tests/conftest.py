from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import uvloop

from streamgate.server.app import Gateway

from pg import fresh_database, fresh_schema
from support import running_gateway
from webhook_receiver import Receiver


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every async test on uvloop, as the gateway runs in production."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module (PostgreSQL started if needed)."""
    with fresh_database() as dsn:
        yield dsn


@pytest.fixture
def postgres_dsn(pg_database: str) -> str:
    return pg_database


@pytest.fixture
def pg_schema(pg_database: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh schema of this test's own."""
    with fresh_schema(pg_database) as dsn:
        yield dsn


@pytest.fixture
def dsn(pg_schema: str) -> str:
    return pg_schema


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver for webhook deliveries on 127.0.0.1."""
    r = await Receiver().start()
    try:
        yield r
    finally:
        await r.stop()


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path) as gateway:
        yield gateway
