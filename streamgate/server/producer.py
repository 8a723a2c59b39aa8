"""``POST /api/v1/publish``: the producer API's HTTP handler (PROTOCOL.md section 4).

Checks the producer key, hands the body to :class:`~streamgate.publisher.Publisher`
(which does all the work: parse, dedupe, book pre-check, claim, broker publish,
outbox) and maps its result or error to the HTTP answer:

- 200 ``{"accepted", "duplicates"}``;
- 401 without a valid producer key (checked on the head too: the body is never read);
- :class:`~streamgate.errors.ProducerRefusal`: its status (4xx) and
  ``{"error": {"code", "message", "index", "field"}}``;
- :class:`~streamgate.errors.BrokerUnavailable`, :class:`~streamgate.errors.OutboxUnavailable`,
  :class:`~streamgate.errors.NodeDraining`: 503 ``UNAVAILABLE`` with ``retry-after: 1``.
"""

from __future__ import annotations

import hmac
import time

from streamgate.errors import BrokerUnavailable, NodeDraining, OutboxUnavailable, ProducerRefusal
from streamgate.publisher import Publisher
from streamgate.server.auth import bearer_token
from streamgate.server.errors import PRODUCER_UNAUTHORIZED, producer_error
from streamgate.server.http import HttpRequest, HttpResponse, json_response

__all__ = ["PublishEndpoint"]


class PublishEndpoint:
    """The producer key check and the HTTP mapping of :meth:`Publisher.publish`."""

    def __init__(self, *, key: str, publisher: Publisher) -> None:
        self._key = key.encode()
        self._publisher = publisher

    def authorized(self, request: HttpRequest) -> bool:
        token = bearer_token(request)
        return token is not None and hmac.compare_digest(token.encode(), self._key)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        if not self.authorized(request):
            return producer_error(PRODUCER_UNAUTHORIZED)
        try:
            result = await self._publisher.publish(request.body, now_ms=time.time_ns() // 1_000_000)
        except (ProducerRefusal, BrokerUnavailable, OutboxUnavailable, NodeDraining) as exc:
            return producer_error(exc)
        return json_response(200, {"accepted": result.accepted, "duplicates": result.duplicates})
