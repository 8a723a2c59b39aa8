from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import uvloop
from websockets.asyncio.client import ClientConnection

from streamgate.server.app import Gateway

from support import running_gateway, schemas
from support.cluster import Procs
from support.postgres import fresh_database, fresh_schema
from support.webhook_receiver import Receiver


@pytest.fixture(scope="session", autouse=True)
def _frames_checked() -> Iterator[None]:
    """Every message a websockets client receives from a gateway endpoint is checked
    against the AsyncAPI document (support.RawClient and support.publish check theirs)."""
    undo = schemas.install_frame_hook(ClientConnection)
    yield
    undo()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test whose frames or publish requests broke the documents (support/schemas.py)."""
    schemas.VIOLATIONS.clear()
    try:
        result = yield
    except BaseException as exc:
        if schemas.VIOLATIONS:
            exc.add_note("schema violations:\n" + "\n".join(schemas.VIOLATIONS[:20]))
        raise
    finally:
        found, schemas.VIOLATIONS[:] = list(schemas.VIOLATIONS), []
    if found:
        more = f"\n... and {len(found) - 20} more" if len(found) > 20 else ""
        pytest.fail(
            f"{len(found)} frame(s) or request(s) broke streamgate/spec:\n"
            + "\n".join(found[:20])
            + more,
            pytrace=False,
        )
    return result


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


@pytest.fixture
async def procs(tmp_path: Path) -> AsyncIterator[Procs]:
    """Gateway and Redis processes of one test (cluster and fault tests); all stopped after."""
    started = Procs(tmp_path)
    try:
        yield started
    finally:
        await started.stop_all()
