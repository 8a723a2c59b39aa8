"""The multi-node tests' fixtures: the processes a test started, its cluster, its own Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .harness import WAIT, Cluster
from support.cluster import OwnRedis, Procs
from support.redis_server import delete_prefix, ensure_redis


@pytest.fixture
async def cluster(procs: Procs, tmp_path: Path) -> AsyncIterator[Cluster]:
    await ensure_redis()
    c = Cluster(procs, tmp_path / "data", prefix=f"sgtest-{secrets.token_hex(6)}:")
    try:
        yield c
    finally:
        await procs.stop_all()
        await delete_prefix(c.prefix)


@pytest.fixture
async def own_redis(procs: Procs) -> OwnRedis:
    redis = OwnRedis(procs, within=WAIT)
    await redis.start()
    return redis
