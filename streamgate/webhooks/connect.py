"""Connect a webhook request only to the addresses vetted for it (no second DNS lookup).

:func:`~streamgate.webhooks.targets.resolve_and_check` resolves the target's host and
vets every address. Were the HTTP client to resolve the name again when it connects, DNS
could answer differently the second time (DNS rebinding: a public address for the check,
then 127.0.0.1 or 169.254.169.254 for the connection). So the client's transport never
resolves: :class:`VettedBackend` (an ``httpcore`` network backend) connects to the
addresses :func:`vetted` set for this request's host and port, in order, and refuses any
other host. The URL keeps the name, so the ``Host`` header, TLS SNI and the certificate
check are on the name, as with any client; pooled connections are per name, and each was
opened to an address vetted for that name.

The addresses travel in a context variable: ``httpcore`` opens a connection inside the
task that sends the request (``AsyncHTTPConnection.handle_async_request``), within the
``with vetted(...)`` block around it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

__all__ = ["VettedBackend", "vetted", "vetted_transport"]

_vetted: ContextVar[tuple[str, int, tuple[str, ...]] | None] = ContextVar(
    "streamgate_webhook_vetted", default=None
)


@contextmanager
def vetted(host: str, port: int, addresses: Sequence[str]) -> Iterator[None]:
    """Within the block, a connection to ``host:port`` goes to ``addresses`` only."""
    token = _vetted.set((host.lower(), port, tuple(addresses)))
    try:
        yield
    finally:
        _vetted.reset(token)


class VettedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects to vetted addresses and never resolves a name."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pinned = _vetted.get()
        if pinned is None or pinned[0] != host.lower() or pinned[1] != port:
            raise httpcore.ConnectError(f"{host}:{port} has no vetted address")
        failure: Exception = httpcore.ConnectError(f"{host} has no vetted address")
        for address in pinned[2]:  # as a resolver's answers are tried: in order
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are delivered over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def vetted_transport(
    *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncHTTPTransport:
    """An ``httpx`` transport whose connections go through :class:`VettedBackend`.

    No proxy from the environment (a proxy would resolve the name itself). httpx 0.28
    does not take a network backend, so the transport's ``httpcore`` pool is replaced by
    one built with it (httpx is pinned; tests/integration/test_webhooks_rebinding.py
    checks the behaviour over real sockets).
    """
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=VettedBackend(),
    )
    return transport
