"""Publishing through the producer API (PROTOCOL.md section 4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamgate.client.http import HttpClient

__all__ = ["ProducerClient", "PublishError"]


class PublishError(Exception):
    """The gateway refused a batch; ``error`` is its ``{"code", "message", ...}`` object."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(f"{status} {error.get('code')}: {error.get('message')}")
        self.status = status
        self.error = error


class ProducerClient:
    """Publishes batches with the producer key."""

    def __init__(self, base_url: str, key: str, *, timeout: float = 10.0) -> None:
        self._http = HttpClient(base_url, timeout=timeout)
        self._auth = {"authorization": f"Bearer {key}"}

    async def publish(self, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Publish one batch; return ``{"accepted", "duplicates"}``.

        Raises:
            PublishError: the batch was refused (nothing of it was published).
        """
        result = await self._http.post_json("/api/v1/publish", {"events": list(events)}, self._auth)
        doc: dict[str, Any] = result.json()
        if result.status != 200:
            raise PublishError(result.status, doc.get("error", {}))
        return doc

    async def close(self) -> None:
        await self._http.close()
