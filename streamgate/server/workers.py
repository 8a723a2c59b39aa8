"""``streamgate serve --workers N``: N gateway processes on one port, one machine.

Each worker is a whole gateway (``streamgate serve``) listening with SO_REUSEPORT, so
the kernel spreads new connections over them; they act as one through the Redis
broker (``workers > 1`` requires ``broker = "redis"``). The supervisor:

- picks the port when asked for port 0, holding it with a bound (not listening)
  SO_REUSEPORT socket so nobody else takes it, and hands it to every worker;
- runs the demo venue (``--demo``) in worker 0 only: one venue, one set of books;
- prints the usual ``streamgate listening on ...`` line once every worker listens;
- restarts a worker that dies (after a pause, so a crash loop does not spin);
- on SIGTERM or SIGINT passes the signal on and waits for every worker to drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WORKER_ENV", "Supervisor"]

WORKER_ENV = "STREAMGATE_WORKER_INDEX"  # set in a worker: serve, do not supervise

log = logging.getLogger("streamgate.workers")

RESTART_PAUSE = 1.0  # seconds before a dead worker is started again
READY_TIMEOUT = 60.0  # seconds a worker may take to print its listening line


@dataclass(slots=True)
class _Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class Supervisor:
    """Starts, watches and stops the worker processes of one ``serve --workers N``."""

    def __init__(
        self,
        workers: int,
        *,
        host: str,
        port: int,
        config_path: str | None,
        demo: bool,
    ) -> None:
        self.count = workers
        self.host = host
        self.port = port
        self.config_path = config_path
        self.demo = demo
        self._workers = [_Worker(i) for i in range(workers)]
        self._holder: socket.socket | None = None
        self._stop = asyncio.Event()

    def _reserve_port(self) -> None:
        """With port 0, choose a free port and hold it until the workers listen."""
        if self.port != 0:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        holder = socket.socket(family, socket.SOCK_STREAM)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((self.host, 0))
        self.port = holder.getsockname()[1]
        self._holder = holder

    def _command(self, index: int) -> list[str]:
        cmd = [sys.executable, "-m", "streamgate", "serve", "--host", self.host]
        cmd += ["--port", str(self.port)]
        if self.config_path:
            cmd += ["--config", self.config_path]
        if self.demo and index == 0:
            cmd.append("--demo")
        return cmd

    async def _spawn(self, worker: _Worker) -> None:
        env = dict(
            os.environ,
            STREAMGATE_WORKERS=str(self.count),
            **{WORKER_ENV: str(worker.index)},
        )
        worker.ready.clear()
        worker.proc = await asyncio.create_subprocess_exec(
            *self._command(worker.index),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        log.info("= worker %d started (pid %d)", worker.index, worker.proc.pid)

    async def _watch(self, worker: _Worker) -> None:
        """Pass the worker's stdout through; restart it when it dies unasked."""
        while True:
            proc = worker.proc
            assert proc is not None
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                if line.startswith(b"streamgate listening on "):
                    worker.ready.set()
                    continue
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            code = await proc.wait()
            if self.stopping:
                return
            worker.restarts += 1
            log.error("! worker %d exited with %d; restarting", worker.index, code)
            await asyncio.sleep(RESTART_PAUSE)
            if self.stopping:
                return
            await self._spawn(worker)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _signal(self, sig: int) -> None:
        self._stop.set()
        for worker in self._workers:
            if worker.proc is not None and worker.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(sig)

    async def run(self) -> int:
        """Run until a signal stops every worker; 0, or 1 when a worker never listened."""
        self._reserve_port()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signal, sig)
        for worker in self._workers:
            await self._spawn(worker)
        watchers = [asyncio.create_task(self._watch(w)) for w in self._workers]
        ready = asyncio.gather(*(w.ready.wait() for w in self._workers))
        stop = asyncio.ensure_future(self._stop.wait())
        waiting: list[asyncio.Future[Any]] = [ready, stop]
        await asyncio.wait(waiting, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if self._holder is not None:
            self._holder.close()
        if not ready.done():
            ready.cancel()
            timed_out = not self.stopping  # else a signal came first: a normal stop
            if timed_out:
                log.error("! not every worker listened within %.0f s; stopping", READY_TIMEOUT)
                self._signal(signal.SIGTERM)
            await asyncio.gather(*watchers)
            return 1 if timed_out else 0
        print(
            f"streamgate listening on http://{self.host}:{self.port} ({self.count} workers)",
            flush=True,
        )
        await asyncio.gather(*watchers)
        return 0
