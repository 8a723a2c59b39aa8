"""HTTP messages as the handlers see them: a parsed request in, a response out."""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

__all__ = ["HttpRequest", "HttpResponse", "json_response"]


@dataclass(slots=True)
class HttpRequest:
    """One request; ``params`` holds the route's path parameters (``{id}`` -> ``"ep_1"``)."""

    method: str
    target: str  # path and query, as sent
    path: str
    query: dict[str, list[str]]
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes
    client: str
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """Return the first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def query_one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def encode(self, keep_alive: bool) -> bytes:
        reason = HTTPStatus(self.status).phrase
        lines = [
            f"HTTP/1.1 {self.status} {reason}",
            f"content-type: {self.content_type}",
            f"content-length: {len(self.body)}",
            f"connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        lines.extend(f"{k}: {v}" for k, v in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def json_response(
    status: int, doc: Any, headers: list[tuple[str, str]] | None = None
) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(doc), headers=headers or [])
