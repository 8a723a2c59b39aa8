"""Real processes for the multi-node tests (tests/integration/cluster) and the fault suite.

Gateway processes (``python -m streamgate serve``), a redis-server of a test's own, and
bounded waits. Every process here is started by the test and stopped by PID (terminate,
then kill after a timeout; always reaped); every wait is bounded; all traffic stays on
127.0.0.1. Each process writes its stdout and stderr to files in the test's directory.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import RedisError

from support import UNIT

WAIT = 20.0 * UNIT  # seconds a process may take to start, or any helper's wait
LISTENING = re.compile(rb"streamgate listening on http://127\.0\.0\.1:(\d+)")
SERVE = [sys.executable, "-m", "streamgate", "serve", "--host", "127.0.0.1", "--port", "0"]


async def until(
    check: Callable[[], bool], what: str | Callable[[], str], within: float = WAIT
) -> None:
    """Poll ``check`` until it holds, for at most ``within`` seconds.

    ``what`` names the condition; a callable is asked only when it failed.
    """
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            said = what if isinstance(what, str) else what()
            raise AssertionError(f"not within {within:.0f} s: {said}")
        await asyncio.sleep(0.02)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = WAIT) -> None:
    """Poll the async ``check`` until it holds, for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {what}"
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- processes -----------------------------------------------------------------------------


@dataclass
class Proc:
    """A subprocess a test started, its stdout and stderr going to files."""

    name: str
    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    def tail(self) -> str:
        text = self.out.read_bytes() + b"\n--- stderr ---\n" + self.err.read_bytes()
        return text.decode(errors="replace")[-2000:]


def stop_process(proc: Proc) -> None:
    """Terminate, then kill after a timeout; always reap."""
    if proc.popen.poll() is None:
        proc.popen.terminate()
        try:
            proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
    proc.popen.wait(timeout=5)


@dataclass
class Node:
    """A gateway process and the port it listens on."""

    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str = "/ws/public") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


def gateway_env(data: Path, producer_key: str, **extra: str) -> dict[str, str]:
    """This process's environment without its STREAMGATE_ settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMGATE_")}
    env.update(STREAMGATE_DATA_DIR=str(data), STREAMGATE_PRODUCER_KEY=producer_key, **extra)
    return env


@dataclass
class Procs:
    """Everything one test started: ``stop_all`` stops the gateways (all at once), then
    the rest (Redis last)."""

    tmp: Path
    started: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        out, err = self.tmp / f"{name}.out", self.tmp / f"{name}.err"
        with out.open("ab") as stdout, err.open("ab") as stderr:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env
            )
        proc = Proc(name, popen, out, err)
        self.started.append(proc)
        return proc

    async def gateways(
        self, names: list[str], env: dict[str, str], within: float = WAIT
    ) -> list[Node]:
        """Start one ``streamgate serve`` per name, all at once; return them listening."""
        procs = [self.spawn(name, SERVE, env) for name in names]
        ports = await asyncio.gather(*(listening_port(p, within) for p in procs))
        return [Node(p, port) for p, port in zip(procs, ports, strict=True)]

    async def stop_all(self) -> None:
        gateways = [p for p in self.started if not p.name.startswith("redis")]
        await asyncio.gather(*(asyncio.to_thread(stop_process, p) for p in gateways))
        for proc in reversed(self.started):
            await asyncio.to_thread(stop_process, proc)


async def listening_port(proc: Proc, within: float = WAIT) -> int:
    """Wait for the process's ``streamgate listening on`` line; return its port."""
    deadline = time.monotonic() + within
    while (found := LISTENING.search(proc.out.read_bytes())) is None:
        assert proc.popen.poll() is None, f"{proc.name} exited early:\n{proc.tail()}"
        assert time.monotonic() < deadline, f"{proc.name} did not listen:\n{proc.tail()}"
        await asyncio.sleep(0.05)
    return int(found.group(1))


# -- a Redis of the test's own -------------------------------------------------------------


async def answering(url: str) -> bool:
    client = Redis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except (OSError, RedisError):
        return False
    finally:
        await client.aclose()


@dataclass
class OwnRedis:
    """A redis-server of the test's own (no persistence: a restart comes back empty)."""

    procs: Procs
    port: int = field(default_factory=free_port)
    proc: Proc | None = None
    starts: int = 0
    within: float = WAIT  # how long a start may take

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.starts += 1
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        self.proc = self.procs.spawn(f"redis-{self.starts}", argv)
        deadline = time.monotonic() + self.within
        while not await answering(self.url):
            assert self.proc.popen.poll() is None, f"redis-server exited:\n{self.proc.tail()}"
            assert time.monotonic() < deadline, "redis-server did not answer"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        assert self.proc is not None
        await asyncio.to_thread(stop_process, self.proc)
