"""The admin view: ``GET /admin`` (a page) and ``GET /admin/api`` (its JSON), behind a key.

Mounted only when ``admin_key`` is set; without it every ``/admin`` path is a 404 like
any unknown path. The JSON wants ``Authorization: Bearer <admin_key>`` (401 without a
bearer, 403 with another one; compared in constant time). The page holds no figure
itself: it asks for the key, keeps it in the tab's ``sessionStorage`` (never in a URL)
and fetches the JSON with it.

Everything shown is bounded: the busiest channels are the top ``limit`` computed from
the hub's per-channel state on each request, failing webhook endpoints and slow-consumer
cuts come from fixed-size records (:mod:`streamgate.observability`).
"""

from __future__ import annotations

import hmac
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from importlib import resources

from streamgate.hub.hub import ChannelFigures, Hub
from streamgate.server.auth import bearer_token
from streamgate.server.errors import http_error
from streamgate.server.messages import HttpRequest, HttpResponse, json_response
from streamgate.server.metrics import ENDPOINTS, RateSampler
from streamgate.server.router import Router
from streamgate.server.websocket import WsRegistry
from streamgate.webhooks.sender import Dispatcher

__all__ = ["AdminView"]

PAGE_FILES = {
    "/admin": ("admin.html", "text/html; charset=utf-8"),
    "/admin/admin.js": ("admin.js", "application/javascript; charset=utf-8"),
    "/admin/admin.css": ("admin.css", "text/css; charset=utf-8"),
}
TOP = 10  # channels listed per ranking


class AdminView:
    """The admin routes of one gateway node."""

    def __init__(
        self,
        key: str,
        *,
        hub: Hub,
        sockets: WsRegistry,
        dispatcher: Dispatcher,
        rates: RateSampler,
        node: str,
        readiness: Callable[[], Awaitable[list[str]]],
        webhooks_due: Callable[[], Awaitable[int | None]],
    ) -> None:
        self._key = key.encode()
        self.hub = hub
        self.sockets = sockets
        self.dispatcher = dispatcher
        self.rates = rates
        self.node = node
        self.readiness = readiness
        self.webhooks_due = webhooks_due
        # Each channel's event count at the previous request: rates over that interval.
        self._previous: dict[str, int] = {}
        self._previous_at: float | None = None
        root = resources.files("streamgate") / "static" / "admin"
        self._files = {
            path: ((root / name).read_bytes(), kind) for path, (name, kind) in PAGE_FILES.items()
        }

    def mount(self, router: Router) -> None:
        for path in self._files:
            router.add("GET", path, self._page)
        router.add("GET", "/admin/api", self.api)

    async def _page(self, request: HttpRequest) -> HttpResponse:
        body, kind = self._files[request.path]
        return HttpResponse(
            200,
            body,
            content_type=kind,
            headers=[("cache-control", "no-cache"), ("referrer-policy", "no-referrer")],
        )

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        """401 without a bearer, 403 with a wrong one, None when it is the admin key."""
        token = bearer_token(request)
        if token is None:
            return http_error(
                401,
                "UNAUTHORIZED",
                "Authorization: Bearer <admin key> required",
                (("www-authenticate", 'Bearer realm="streamgate-admin"'),),
            )
        if not hmac.compare_digest(token.encode(), self._key):
            return http_error(403, "FORBIDDEN", "not the admin key")
        return None

    async def api(self, request: HttpRequest) -> HttpResponse:
        refused = self.refusal(request)
        if refused is not None:
            return refused
        return json_response(200, await self.figures(), headers=[("cache-control", "no-store")])

    async def figures(self) -> dict[str, object]:
        by_kind = Counter(conn.kind for conn in self.sockets.conns)
        reasons = await self.readiness()
        channels = self.hub.channel_figures()
        rates = self._rates(channels)
        by_subscribers = sorted(channels, key=lambda f: f.subscribers, reverse=True)[:TOP]
        by_rate = sorted(channels, key=lambda f: rates[f.channel], reverse=True)[:TOP]
        webhooks = self.dispatcher.stats
        cuts = self.sockets.cuts
        return {
            "node": self.node,
            "ready": not reasons,
            "reasons": reasons,
            "connections": {kind: by_kind.get(kind, 0) for kind in ENDPOINTS},
            "published_per_s": round(self.rates.published_per_s, 1),
            "delivered_per_s": round(self.rates.delivered_per_s, 1),
            "channels": {
                "total": len(channels),
                "by_subscribers": [_channel(f, rates) for f in by_subscribers],
                "by_event_rate": [_channel(f, rates) for f in by_rate if rates[f.channel] > 0],
            },
            "webhooks": {
                "due": await self.webhooks_due(),
                "in_flight": self.dispatcher.in_flight,
                "attempts": dict(webhooks.attempts),
                "failing": [asdict(f) for f in reversed(webhooks.failing.values())],
            },
            "slow_consumers": {
                "total": cuts.total,
                "recent": [asdict(cut) for cut in cuts.recent()],
            },
        }

    def _rates(self, channels: list[ChannelFigures]) -> dict[str, float]:
        """Events per second of each channel since the previous request (or its start)."""
        now = time.monotonic()
        span = None if self._previous_at is None else max(now - self._previous_at, 1e-3)
        rates: dict[str, float] = {}
        for f in channels:
            before = self._previous.get(f.channel)
            if before is None or span is None or f.events < before:
                rates[f.channel] = f.events / max(f.age, 1e-3)
            else:
                rates[f.channel] = (f.events - before) / span
        self._previous = {f.channel: f.events for f in channels}
        self._previous_at = now
        return rates


def _channel(f: ChannelFigures, rates: dict[str, float]) -> dict[str, object]:
    return {
        "channel": f.channel,
        "subscribers": f.subscribers,
        "events": f.events,
        "events_per_s": round(rates[f.channel], 2),
    }
