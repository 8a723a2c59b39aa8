"""Run ``streamgate`` as a subprocess (``python -m streamgate``), without blocking the loop.

The gateways of these tests run in the test's own event loop, so a command must run as
an asyncio subprocess: a blocking ``subprocess.run`` would stall the gateway it talks to.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from support import UNIT

__all__ = ["Done", "clean_env", "demo_gateway", "error_line", "streamgate"]

ROOT = Path(__file__).resolve().parents[3]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without STREAMGATE_* settings (the tests give theirs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMGATE_")}
    env.update(extra)
    env.setdefault("COLUMNS", "120")
    return env


@dataclass
class Done:
    code: int
    out: str
    err: str


async def streamgate(
    *args: str,
    stdin: bytes | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    within: float = 30.0,
) -> Done:
    """Run ``streamgate ARGS`` to its end (killed after ``within`` time units)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamgate",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd or ROOT,
        env=env or clean_env(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), within * UNIT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"streamgate {' '.join(args)} did not end in {within} s") from None
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


def error_line(done: Done) -> str:
    """The command's one error line; fails unless it failed with exactly one, no traceback."""
    assert done.code != 0, done
    assert "Traceback" not in done.out + done.err, done.err
    lines = [line for line in done.err.splitlines() if line.startswith("streamgate:")]
    assert len(lines) == 1, done.err
    # Nothing else on stderr but log lines of the gateway (serve logs as it starts).
    others = [line for line in done.err.splitlines() if not line.startswith("streamgate:")]
    assert all(" INFO " in line or " WARNING " in line for line in others), done.err
    return lines[0]


@asynccontextmanager
async def demo_gateway(data: Path) -> AsyncIterator[int]:
    """``streamgate serve --demo --port 0`` in ``data``; yields its port, stops it after."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamgate",
        "serve",
        "--demo",
        "--port",
        "0",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=data,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20 * UNIT)).decode()
        assert line.startswith("streamgate listening on http://127.0.0.1:"), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10 * UNIT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
