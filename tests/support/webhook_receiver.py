"""A real HTTP receiver for webhook tests: records every POST, answers as scripted."""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_
from collections.abc import Callable
from dataclasses import dataclass, field

from streamgate.server.http import HttpConnection, HttpRequest, HttpResponse, Router


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Serves ``POST /<name>`` on ``host`` (127.0.0.1), over TLS with ``ssl``;
    ``script(path, n)`` picks each answer."""

    script: Callable[[str, int], tuple[int, dict[str, str], float]] = lambda path, n: (200, {}, 0)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    host: str = "127.0.0.1"
    ssl: ssl_.SSLContext | None = None
    _server: asyncio.Server | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> Receiver:
        router = Router()
        router.add("POST", "/{path...}", self._handle)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(router, max_body=1 << 20, on_open=_nothing, on_close=_nothing),
            self.host,
            self.port,
            ssl=self.ssl,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def url(self, name: str) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}/{name}"

    def at(self, name: str) -> list[Received]:
        return [r for r in self.received if r.path == f"/{name}"]

    async def wait_for(self, name: str, count: int, within: float) -> list[Received]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.at(name)) < count:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"{name}: {len(self.at(name))} of {count} deliveries")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
        return self.at(name)

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        n = len(self.at(request.path.lstrip("/")))
        self.received.append(Received(request.path, dict(request.headers), request.body))
        self._arrived.set()
        status, headers, delay = self.script(request.path.lstrip("/"), n)
        if delay:
            await asyncio.sleep(delay)
        return HttpResponse(status, b"{}", headers=list(headers.items()))


def _nothing(conn: HttpConnection) -> None:
    """Receivers keep no registry of connections."""
