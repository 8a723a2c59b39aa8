"""The SDK's HTTP: JSON requests against one gateway, on httpx.

Enough for the producer API and the gateway's JSON endpoints. Errors keep the
standard library's shape, so callers need not import httpx: a request that takes
longer than ``timeout`` in all raises ``TimeoutError``; a refused, reset or closed
connection raises ``ConnectionError`` (an ``OSError``); a response that is not HTTP
raises ``ValueError``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

__all__ = ["HttpClient", "HttpResult"]

# Kept-alive connections per client: the SDK's callers send one request at a time or a
# few side by side; more wait for a free connection (within the same timeout).
_LIMITS = httpx.Limits(max_connections=16, max_keepalive_connections=8)


@dataclass(slots=True)
class HttpResult:
    """One response: status, headers (names lower-cased) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class HttpClient:
    """Requests against one ``http://host:port`` base URL over kept-alive connections.

    Args:
        base_url: ``http://host:port`` (a path, if any, is ignored: request paths are
            absolute).
        timeout: seconds one request may take in all (connect, send, the whole
            response) before ``TimeoutError``.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need an http://host:port URL, got {base_url!r}")
        self._base_url = f"http://{parts.netloc}"
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None  # opened by the first request

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self._base_url,
                timeout=httpx.Timeout(self._timeout),
                limits=_LIMITS,
                trust_env=False,  # no proxy from the environment: talk to the gateway itself
            )
        return self._client

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        """Send one request; return its response whatever its status.

        A request whose connection failed (e.g. a kept-alive one the server had
        closed) is sent once more on a new connection; one that timed out is not.

        Raises:
            TimeoutError: no whole response within ``timeout``.
            ConnectionError: the connection failed, twice.
            ValueError: the server's answer is not HTTP.
        """
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    return await self._once(method, path, body, headers or {})
                except (httpx.NetworkError, httpx.RemoteProtocolError):
                    return await self._once(method, path, body, headers or {})
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"{method} {path}: no response in {self._timeout} s") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise ConnectionError(f"{method} {path}: {exc}") from exc
        except httpx.HTTPError as exc:  # a malformed answer
            raise ValueError(f"{method} {path}: {exc}") from exc

    async def post_json(
        self, path: str, doc: Any, headers: dict[str, str] | None = None
    ) -> HttpResult:
        """POST ``doc`` as JSON."""
        all_headers = {"content-type": "application/json", **(headers or {})}
        return await self.request("POST", path, body=orjson.dumps(doc), headers=all_headers)

    async def _once(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> HttpResult:
        response = await self._http().request(method, path, content=body, headers=headers)
        # httpx keeps repeated header names apart; one value per name, the last, as before.
        fields = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers.raw}
        return HttpResult(response.status_code, fields, response.content)

    async def close(self) -> None:
        """Close every connection (a later request opens a new one)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
