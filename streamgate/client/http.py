"""A small keep-alive HTTP/1.1 client over asyncio streams, responses parsed by httptools.

Enough for the producer API and the gateway's JSON endpoints; one request at a time
per :class:`HttpClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
import orjson

__all__ = ["HttpClient", "HttpResult"]


@dataclass(slots=True)
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(slots=True)
class _Parsed:
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    done: bool = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True


class HttpClient:
    """Requests against one ``http://host:port`` base URL over one kept-alive connection."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need an http://host:port URL, got {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        async with self._lock:
            try:
                return await asyncio.wait_for(
                    self._once(method, path, body, headers or {}), self._timeout
                )
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()  # a kept-alive connection the server closed: once more
                return await asyncio.wait_for(
                    self._once(method, path, body, headers or {}), self._timeout
                )
            except BaseException:
                await self.close()
                raise

    async def post_json(
        self, path: str, doc: Any, headers: dict[str, str] | None = None
    ) -> HttpResult:
        all_headers = {"content-type": "application/json", **(headers or {})}
        return await self.request("POST", path, body=orjson.dumps(doc), headers=all_headers)

    async def _once(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> HttpResult:
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        head = [
            f"{method} {path} HTTP/1.1",
            f"host: {self._host}:{self._port}",
            f"content-length: {len(body)}",
        ]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        parsed = _Parsed()
        parser = httptools.HttpResponseParser(parsed)
        while not parsed.done:
            chunk = await self._reader.read(65_536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            parser.feed_data(chunk)
        if not parser.should_keep_alive():
            await self.close()
        return HttpResult(parser.get_status_code(), parsed.headers, bytes(parsed.body))

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            # Bounded: nothing is owed to the peer, and wait_closed can outlive a peer
            # that stopped reading.
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
