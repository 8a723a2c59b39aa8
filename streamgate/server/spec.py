"""``GET /asyncapi.json`` and ``GET /openapi.json``: the contract, machine-readable."""

from __future__ import annotations

from streamgate.server.http import Handler, HttpRequest, HttpResponse, Router
from streamgate.spec import DOCUMENTS, document

__all__ = ["mount_spec"]


def _serve(body: bytes) -> Handler:
    async def handler(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, body, headers=[("cache-control", "no-cache")])

    return handler


def mount_spec(router: Router) -> None:
    """Serve each document of :mod:`streamgate.spec` at ``/<name>`` (read once, here)."""
    for name in DOCUMENTS:
        router.add("GET", f"/{name}", _serve(document(name)))
