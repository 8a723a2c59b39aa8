"""Static files of the gateway's own pages (``streamgate/static``), read once at start."""

from __future__ import annotations

import mimetypes
from importlib import resources

from streamgate.server.errors import http_error
from streamgate.server.messages import HttpRequest, HttpResponse
from streamgate.server.router import Handler

__all__ = ["StaticFiles"]


class StaticFiles:
    """Serves the package's ``static`` folder: ``/`` is ``index.html``, others by name."""

    def __init__(self, package: str = "streamgate") -> None:
        self._files: dict[str, tuple[bytes, str]] = {}
        root = resources.files(package) / "static"
        for entry in root.iterdir():
            if entry.is_file() and not entry.name.startswith("."):
                kind = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
                if kind.startswith("text/") or kind in ("application/javascript",):
                    kind += "; charset=utf-8"
                self._files[entry.name] = (entry.read_bytes(), kind)

    def names(self) -> list[str]:
        return sorted(self._files)

    def handler(self, name: str) -> Handler:
        async def serve(request: HttpRequest) -> HttpResponse:
            found = self._files.get(name)
            if found is None:
                return http_error(404, "NOT_FOUND", name)
            body, kind = found
            return HttpResponse(
                200, body, content_type=kind, headers=[("cache-control", "no-cache")]
            )

        return serve
