"""Webhook endpoint management, visibility and replay over HTTP (PROTOCOL.md s. 1, issue 6).

Every route authenticates the tenant's ``api-key`` and answers in the push API's envelope
(as ``POST /auth/ws-token``): ``{"requestId", "success": true, "data"}`` or
``{"requestId", "success": false, "error": {"code", "key", "message"}}`` with keys
``MISSING_API_KEY`` / ``INVALID_API_KEY`` / ``API_KEY_REVOKED`` (401), ``VALIDATION_ERROR``
(400, the message names the field) and ``NOT_FOUND`` (404; another tenant's endpoint or
message is not found either).

Routes::

    POST   /webhooks                               create; the secret is shown only here
    GET    /webhooks                               list (no secrets)
    GET    /webhooks/messages?since=&limit=        the tenant's messages, oldest first
    GET    /webhooks/{id}                          one endpoint (no secret)
    PATCH  /webhooks/{id}                          {"enabled": bool}
    DELETE /webhooks/{id}                          delete; its pending deliveries are canceled
    POST   /webhooks/{id}/rotate-secret            {"overlapSeconds"?}: new secret, shown once
    POST   /webhooks/{id}/recover                  {"since"}: redeliver every message since
    GET    /webhooks/messages/{msg_id}/attempts    every attempt of a message
    POST   /webhooks/messages/{msg_id}/resend      {"endpointId"?}: deliver a message again

Times go out as ISO-8601 UTC with milliseconds (``2024-05-01T12:00:00.000Z``); ``since``
comes in as ISO-8601 (no offset = UTC) or as unix seconds.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from streamgate.auth.apikeys import ApiKeyInfo, ApiKeyStore
from streamgate.errors import HttpRefusal, TenantRefusal
from streamgate.server.envelope import tenant_answer
from streamgate.server.messages import HttpRequest, HttpResponse
from streamgate.server.router import Handler, Router
from streamgate.webhooks.body import check_event_types, created_at
from streamgate.webhooks.signing import new_secret
from streamgate.webhooks.store import Attempt, Endpoint, MessageInfo, WebhookNotFound, WebhookStore
from streamgate.webhooks.targets import (
    Resolver,
    TargetRefused,
    check_url,
    resolve_and_check,
    system_resolver,
)

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_OVERLAP",
    "MAX_LIMIT",
    "MAX_OVERLAP",
    "RESOLVE_TIMEOUT",
    "WebhooksApi",
    "parse_since",
]

DEFAULT_OVERLAP: Final = 86_400  # seconds the old secret keeps signing after a rotation
MAX_OVERLAP: Final = 7 * 86_400
DEFAULT_LIMIT: Final = 100  # messages per GET /webhooks/messages
MAX_LIMIT: Final = 1000
RESOLVE_TIMEOUT: Final = 5.0  # seconds to resolve a new endpoint's host
DISABLED_BY_TENANT: Final = "disabled by the tenant"

PREFIX: Final = "/webhooks/"

_UNIX_SECONDS: Final = re.compile(r"\d{1,12}(?:\.\d{1,20})?")
_LIMIT: Final = re.compile(r"\d{1,7}")
# "+02:00" in a query string arrives as " 02:00" (form decoding turns + into a space).
_SPACED_OFFSET: Final = re.compile(r" (\d{2}(?::?\d{2})?)$")


def _invalid(message: str) -> TenantRefusal:
    return TenantRefusal("VALIDATION_ERROR", message)


def _not_found(message: str) -> TenantRefusal:
    return TenantRefusal("NOT_FOUND", message, status=404)


def _iso(ts: float | None) -> str | None:
    """Unix seconds as ``2024-05-01T12:00:00.000Z`` (milliseconds rounded down)."""
    return None if ts is None else created_at(math.floor(ts * 1000))


def parse_since(value: object, field: str = "since") -> float:
    """A time given as ISO-8601 (no offset = UTC) or unix seconds, as unix seconds.

    Raises:
        ValueError: anything else, with a message naming ``field``.
    """
    if isinstance(value, bool):
        raise ValueError(f"{field} must be an ISO-8601 time or unix seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _UNIX_SECONDS.fullmatch(value.strip()):
        seconds = float(value.strip())
    elif isinstance(value, str) and 0 < len(value) <= 64:
        seconds = _parse_iso(value.strip(), field)
    else:
        raise ValueError(f"{field} must be an ISO-8601 time or unix seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{field} must be a time at or after 1970-01-01T00:00:00Z")
    return seconds


def _parse_iso(text: str, field: str) -> float:
    for candidate in (text, _SPACED_OFFSET.sub(r"+\1", text)):
        try:
            when = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        try:
            return when.timestamp()
        except (OverflowError, OSError, ValueError):
            break
    raise ValueError(
        f"{field} must be an ISO-8601 time such as 2024-05-01T12:00:00Z or unix seconds"
    )


def _endpoint_view(endpoint: Endpoint) -> dict[str, Any]:
    """What a tenant sees of an endpoint: never its secrets."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "eventTypes": None if endpoint.event_types is None else list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "createdAt": _iso(endpoint.created_at),
        "failingSince": _iso(endpoint.failing_since),
        "disabledReason": endpoint.disabled_reason,
    }


def _message_view(message: MessageInfo) -> dict[str, Any]:
    return {
        "id": message.message_id,
        "type": message.event_type,
        "createdAt": _iso(message.created_at),
        "pending": message.pending,
        "succeeded": message.succeeded,
        "failed": message.failed,
    }


def _attempt_view(attempt: Attempt) -> dict[str, Any]:
    return {
        "endpointId": attempt.endpoint_id,
        "at": _iso(attempt.at),
        "statusCode": attempt.status_code,
        "latencyMs": attempt.latency_ms,
        "error": attempt.error,
    }


def _json_object(request: HttpRequest, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The request body as a JSON object with only ``allowed`` members (empty body: {})."""
    if not request.body.strip():
        return {}
    try:
        doc = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        raise _invalid("the body must be a JSON object") from None
    if not isinstance(doc, dict):
        raise _invalid("the body must be a JSON object")
    unknown = [name for name in doc if name not in allowed]
    if unknown:
        known = ", ".join(allowed) if allowed else "none"
        raise _invalid(f"unknown field {unknown[0][:64]!r}; the fields are: {known}")
    return doc


def _event_types(value: object) -> tuple[str, ...] | None:
    """``eventTypes`` as given: None or empty = every event (stored as None)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise _invalid("eventTypes must be a list of event names, or null for every event")
    try:
        types = check_event_types(value)
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    return types or None


# A route's work: (request, tenant) -> (status, data); refuses with TenantRefusal.
Route = Callable[[HttpRequest, str], Awaitable[tuple[int, Any]]]


class WebhooksApi:
    """The ``/webhooks`` routes of a tenant (module docstring); mount them on a Router.

    ``allow_private`` lets endpoints target loopback and private addresses
    (``STREAMGATE_WEBHOOKS_ALLOW_LOOPBACK=1``). ``wake`` is called after a resend, a
    recovery or an enable that may have made deliveries due, so the dispatcher looks at
    once. ``resolver`` and ``resolve_timeout`` bound the check of a new endpoint's host.
    """

    def __init__(
        self,
        keys: ApiKeyStore,
        store: WebhookStore,
        *,
        allow_private: bool,
        clock: Callable[[], float] = time.time,
        wake: Callable[[], None] | None = None,
        resolver: Resolver = system_resolver,
        resolve_timeout: float = RESOLVE_TIMEOUT,
    ) -> None:
        self._keys = keys
        self._store = store
        self._allow_private = allow_private
        self._clock = clock
        self._wake = wake
        self._resolver = resolver
        self._resolve_timeout = resolve_timeout

    def mount(self, router: Router) -> None:
        routes: list[tuple[str, str, Route]] = [
            ("POST", "/webhooks", self._create),
            ("GET", "/webhooks", self._list),
            ("GET", "/webhooks/messages", self._messages),
            ("GET", "/webhooks/{id}", self._get),
            ("PATCH", "/webhooks/{id}", self._patch),
            ("DELETE", "/webhooks/{id}", self._delete),
            ("POST", "/webhooks/{id}/rotate-secret", self._rotate),
            ("POST", "/webhooks/{id}/recover", self._recover),
            ("GET", "/webhooks/messages/{msg}/attempts", self._attempts),
            ("POST", "/webhooks/messages/{msg}/resend", self._resend),
        ]
        for method, pattern, route in routes:
            router.add(method, pattern, self._handler(route))
        router.on_miss(PREFIX, self._miss)

    # -- plumbing ---------------------------------------------------------------------

    def _handler(self, route: Route) -> Handler:
        async def handle(request: HttpRequest) -> HttpResponse:
            return await tenant_answer(self._keys, request, lambda key: route(request, key.tenant))

        return handle

    async def _miss(self, request: HttpRequest, miss: HttpRefusal) -> HttpResponse:
        """No route under ``/webhooks/`` (404) or not this method (405): the envelope."""
        if miss.status == 405:
            refusal = TenantRefusal(miss.code, miss.detail, status=405, headers=miss.headers)
        else:
            refusal = _not_found(f"no route for {request.path[:200]}")

        async def refuse(key: ApiKeyInfo) -> tuple[int, Any]:
            raise refusal

        return await tenant_answer(self._keys, request, refuse)

    async def _endpoint(self, tenant: str, endpoint_id: str) -> Endpoint:
        endpoint = await self._store.get_endpoint(tenant, endpoint_id)
        if endpoint is None:
            raise _not_found(f"no webhook endpoint {endpoint_id[:64]!r}")
        return endpoint

    def _poke(self, queued: int) -> None:
        if queued > 0 and self._wake is not None:
            self._wake()

    # -- endpoints ----------------------------------------------------------------------

    async def _create(self, request: HttpRequest, tenant: str) -> tuple[int, Any]:
        doc = _json_object(request, ("url", "eventTypes"))
        url = doc.get("url")
        if not isinstance(url, str) or not url:
            raise _invalid("url is required: the http(s) URL to deliver to")
        event_types = _event_types(doc.get("eventTypes"))
        await self._check_target(url)
        endpoint = await self._store.create_endpoint(tenant, url, event_types, new_secret())
        return 201, {**_endpoint_view(endpoint), "secret": endpoint.secret}

    async def _check_target(self, url: str) -> None:
        try:
            check_url(url)
            async with asyncio.timeout(self._resolve_timeout):
                await resolve_and_check(
                    url, allow_private=self._allow_private, resolver=self._resolver
                )
        except TargetRefused as exc:
            reason = exc.reason if exc.reason.startswith("url") else f"url: {exc.reason}"
            raise _invalid(reason) from None
        except TimeoutError:
            raise _invalid(
                f"url: its host did not resolve within {self._resolve_timeout:g} s"
            ) from None

    async def _list(self, request: HttpRequest, tenant: str) -> tuple[int, Any]:
        return 200, [_endpoint_view(e) for e in await self._store.list_endpoints(tenant)]

    async def _get(self, request: HttpRequest, tenant: str) -> tuple[int, Any]:
        endpoint_id = request.params["id"]
        return 200, _endpoint_view(await self._endpoint(tenant, endpoint_id))

    async def _delete(self, request: HttpRequest, tenant: str) -> tuple[int, Any]:
        endpoint_id = request.params["id"]
        if not await self._store.delete_endpoint(tenant, endpoint_id):
            raise _not_found(f"no webhook endpoint {endpoint_id[:64]!r}")
        return 200, {"id": endpoint_id, "deleted": True}

    async def _patch(self, request: HttpRequest, tenant: str) -> tuple[int, Any]:
        endpoint_id = request.params["id"]
        doc = _json_object(request, ("enabled", "eventTypes"))
        if "eventTypes" in doc:
            raise _invalid(
                "eventTypes cannot be changed on an existing endpoint (yet); create a new "
                "endpoint with the filter and delete this one"
            )
        enabled = doc.get("enabled")
        if not isinstance(enabled, bool):
            raise _invalid("enabled is required and must be true or false")
        endpoint = await self._endpoint(tenant, endpoint_id)
        if enabled != endpoint.enabled:
            # Only on a change: enabling clears failing_since, which the 72 h rule counts.
            await self._store.set_enabled(
                endpoint.id, enabled, None if enabled else DISABLED_BY_TENANT
            )
            if enabled:
                self._poke(1)
        return 200, _endpoint_view(await self._endpoint(tenant, endpoint_id))

    async def _rotate(self, request: HttpRequest, tenant: str) -> tuple[int, Any]:
        endpoint_id = request.params["id"]
        doc = _json_object(request, ("overlapSeconds",))
        overlap = doc.get("overlapSeconds", DEFAULT_OVERLAP)
        if isinstance(overlap, bool) or not isinstance(overlap, int):
            raise _invalid(f"overlapSeconds must be an integer of 0..{MAX_OVERLAP} seconds")
        if not 0 <= overlap <= MAX_OVERLAP:
            raise _invalid(f"overlapSeconds must be within 0..{MAX_OVERLAP} (7 days)")
        endpoint = await self._endpoint(tenant, endpoint_id)
        try:
            rotated = await self._store.rotate_secret(
                endpoint.id, new_secret(), self._clock() + overlap
            )
        except WebhookNotFound:  # deleted meanwhile
            raise _not_found(f"no webhook endpoint {endpoint_id[:64]!r}") from None
        return 200, {"id": rotated.id, "secret": rotated.secret}

    # -- visibility and replay ----------------------------------------------------------

    async def _messages(self, request: HttpRequest, tenant: str) -> tuple[int, Any]:
        since_text = request.query_one("since")
        try:
            since = None if since_text is None else parse_since(since_text)
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        limit_text = request.query_one("limit")
        if limit_text is None:
            limit = DEFAULT_LIMIT
        elif _LIMIT.fullmatch(limit_text) and 1 <= int(limit_text) <= MAX_LIMIT:
            limit = int(limit_text)
        else:
            raise _invalid(f"limit must be an integer within 1..{MAX_LIMIT}")
        found = await self._store.messages(tenant, since=since, limit=limit)
        return 200, [_message_view(m) for m in found]

    async def _attempts(self, request: HttpRequest, tenant: str) -> tuple[int, Any]:
        message_id = request.params["msg"]
        return 200, [_attempt_view(a) for a in await self._store.attempts(tenant, message_id)]

    async def _resend(self, request: HttpRequest, tenant: str) -> tuple[int, Any]:
        message_id = request.params["msg"]
        doc = _json_object(request, ("endpointId",))
        endpoint_id = doc.get("endpointId")
        if endpoint_id is not None and (not isinstance(endpoint_id, str) or not endpoint_id):
            raise _invalid("endpointId must be an endpoint id such as ep_...")
        try:
            queued = await self._store.resend(tenant, message_id, endpoint_id)
        except WebhookNotFound as exc:
            raise _not_found(str(exc)) from None
        self._poke(queued)
        return 202, {"queued": queued}

    async def _recover(self, request: HttpRequest, tenant: str) -> tuple[int, Any]:
        endpoint_id = request.params["id"]
        doc = _json_object(request, ("since",))
        if "since" not in doc:
            raise _invalid("since is required: an ISO-8601 time or unix seconds")
        try:
            since = parse_since(doc["since"])
        except ValueError as exc:
            raise _invalid(str(exc)) from None
        try:
            queued = await self._store.recover(tenant, endpoint_id, since)
        except WebhookNotFound:
            raise _not_found(f"no webhook endpoint {endpoint_id[:64]!r}") from None
        self._poke(queued)
        return 202, {"queued": queued}
