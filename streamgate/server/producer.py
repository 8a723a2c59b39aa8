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
from streamgate.server.http import HttpRequest, HttpResponse, json_response

__all__ = ["PublishEndpoint"]


def _unavailable(message: str) -> HttpResponse:
    error = {"code": "UNAVAILABLE", "message": message, "index": None, "field": None}
    return json_response(503, {"error": error}, headers=[("retry-after", "1")])


def _refusal(exc: ProducerRefusal) -> HttpResponse:
    error: dict[str, object] = {"code": exc.code, "message": exc.detail}
    error["index"] = exc.index
    error["field"] = exc.field
    return json_response(exc.status, {"error": error})


class PublishEndpoint:
    """The producer key check and the HTTP mapping of :meth:`Publisher.publish`."""

    def __init__(self, *, key: str, publisher: Publisher) -> None:
        self._key = key.encode()
        self._publisher = publisher

    def authorized(self, request: HttpRequest) -> bool:
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._key)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        if not self.authorized(request):
            return json_response(
                401,
                {
                    "error": {
                        "code": "UNAUTHORIZED",
                        "message": "a valid producer key is required",
                        "index": None,
                        "field": None,
                    }
                },
                headers=[("www-authenticate", "Bearer")],
            )
        try:
            result = await self._publisher.publish(request.body, now_ms=time.time_ns() // 1_000_000)
        except ProducerRefusal as exc:
            return _refusal(exc)
        except (OutboxUnavailable, NodeDraining) as exc:
            return _unavailable(str(exc))
        except BrokerUnavailable as exc:
            return _unavailable(str(exc) or "broker unavailable")
        return json_response(200, {"accepted": result.accepted, "duplicates": result.duplicates})
