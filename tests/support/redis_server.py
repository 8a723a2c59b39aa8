"""Redis for the tests: where it is, starting it when it is not answering, cleaning up.

Tests use the machine's Redis (``STREAMGATE_TEST_REDIS_URL``, default loopback 6379),
each under a key prefix of its own that it deletes afterwards; they never flush it.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

REDIS_URL = os.environ.get("STREAMGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_START = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


async def _answering(url: str) -> bool:
    client = Redis.from_url(url)
    try:
        return bool(await client.ping())
    except (OSError, RedisError):  # redis' ConnectionError is not an OSError
        return False
    finally:
        await client.aclose()


async def ensure_redis() -> None:
    """Start Redis if it is not answering; skip the test with the reason if it won't."""
    if await _answering(REDIS_URL):
        return
    # The machine doc's fixed command, run as it is written there.
    proc = await asyncio.create_subprocess_shell(
        REDIS_START, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 30)
    deadline = time.monotonic() + 10
    while not await _answering(REDIS_URL):
        if time.monotonic() > deadline:
            pytest.skip(
                f"Redis not answering at {REDIS_URL!r}; {REDIS_START!r} exited "
                f"{proc.returncode}: {output.decode(errors='replace').strip()[:300]}"
            )
        await asyncio.sleep(0.1)


async def delete_prefix(prefix: str, url: str = REDIS_URL) -> None:
    """Delete every key under ``prefix`` (a test's own)."""
    client = Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
