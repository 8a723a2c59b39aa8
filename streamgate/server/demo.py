"""Routes of the demo venue (``streamgate serve --demo`` only).

- ``GET /demo/info``: the demo tenant, its sub-users and the markets.
- ``POST /demo/account``: a fresh demo account and its stream bearer (so a person can
  trade without an Ed25519 key; ``POST /api/v1/authorize`` works as well).
- ``POST /demo/orders``: place an order as the bearer's user:
  ``{"market_addr", "side", "size", "price"?, "post_only"?, "ioc"?, "leverage"?}``.
- ``DELETE /demo/orders/<sid>?market_addr=...``: cancel it.
- ``POST /demo/ticket``: ``{"sub_user"}`` -> a push ticket for the demo tenant (the live
  page's push panel; a real tenant mints with its API key at ``/auth/ws-token``).
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from streamgate.auth.accounts import account_address
from streamgate.auth.tokens import BearerVerifier, InvalidToken, TokenIssuer
from streamgate.errors import HttpRefusal
from streamgate.protocol.push import PUSH_PURPOSE, SCOPES
from streamgate.server.auth import bearer_token
from streamgate.server.errors import http_error, refusal_response
from streamgate.server.messages import HttpRequest, HttpResponse, json_response
from streamgate.server.router import Router
from streamgate.venue.runner import DEMO_TENANT, DemoVenue

__all__ = ["DemoRoutes"]


class DemoRoutes:
    """HTTP face of the demo venue, mounted on the gateway's router."""

    def __init__(
        self, venue: DemoVenue, verifier: BearerVerifier, tokens: TokenIssuer, ticket_ttl: float
    ) -> None:
        self.venue = venue
        self.verifier = verifier
        self.tokens = tokens
        self.ticket_ttl = ticket_ttl

    def mount(self, router: Router) -> None:
        router.add("GET", "/demo/info", self.info)
        router.add("POST", "/demo/account", self.account)
        router.add("POST", "/demo/orders", self.place)
        router.add("DELETE", "/demo/orders/{sid}", self.cancel)
        router.add("POST", "/demo/ticket", self.ticket)

    async def info(self, request: HttpRequest) -> HttpResponse:
        markets = [
            {
                "market_addr": m.market_addr,
                "symbol": m.symbol,
                "price_decimals": m.price_decimals,
                "size_decimals": m.size_decimals,
                "tick": m.tick,
                "lot": m.lot,
            }
            for m in self.venue.markets
        ]
        doc = {"tenant": DEMO_TENANT, "sub_users": list(self.venue.sub_users), "markets": markets}
        return json_response(200, doc)

    async def account(self, request: HttpRequest) -> HttpResponse:
        user_id = account_address(secrets.token_bytes(32))
        return json_response(200, {"user_id": user_id, "token": self.tokens.issue(user_id)})

    async def ticket(self, request: HttpRequest) -> HttpResponse:
        try:
            sub_user = _body(request).get("sub_user")
        except HttpRefusal as refused:
            return refusal_response(refused)
        if sub_user not in self.venue.sub_users:
            names = ", ".join(self.venue.sub_users)
            return http_error(400, "VALIDATION_ERROR", f"sub_user must be one of {names}")
        token = self.tokens.issue(
            sub_user,
            purpose=PUSH_PURPOSE,
            ttl=self.ticket_ttl,
            extra={"tenant": DEMO_TENANT, "scopes": list(SCOPES)},
        )
        return json_response(200, {"token": token, "tenant": DEMO_TENANT, "sub_user": sub_user})

    async def place(self, request: HttpRequest) -> HttpResponse:
        try:
            user = self._user(request)
            body = _body(request)
            market, side, size = body.get("market_addr"), body.get("side"), body.get("size")
            if market not in {m.market_addr for m in self.venue.markets}:
                raise HttpRefusal("UNKNOWN_MARKET", "market_addr is not a demo market")
            if side not in ("buy", "sell"):
                raise _invalid("side must be 'buy' or 'sell'")
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                raise _invalid("size must be a positive integer")
            options = _options(body)
        except HttpRefusal as refused:
            return refusal_response(refused)
        placed = await self.venue.place(user, market, side, size, **options)
        doc: dict[str, Any] = {"sid": placed.sid, "status": placed.status}
        if placed.reason:
            doc["reason"] = placed.reason
        return json_response(200 if placed.status != "rejected" else 422, doc)

    async def cancel(self, request: HttpRequest) -> HttpResponse:
        try:
            user = self._user(request)
        except HttpRefusal as refused:
            return refusal_response(refused)
        sid = request.params["sid"]
        market = request.query_one("market_addr")
        if market not in {m.market_addr for m in self.venue.markets}:
            return http_error(400, "UNKNOWN_MARKET", "?market_addr= must name a demo market")
        if not await self.venue.cancel(user, market, sid):
            return http_error(404, "NOT_FOUND", f"no open order {sid} of yours in that market")
        return json_response(200, {"sid": sid, "status": "cancelled"})

    def _user(self, request: HttpRequest) -> str:
        token = bearer_token(request)
        if token is None:
            raise HttpRefusal("UNAUTHORIZED", "Authorization: Bearer <token> required", status=401)
        try:
            return self.verifier.verify(token).subject
        except InvalidToken as exc:
            raise HttpRefusal("INVALID_TOKEN", exc.reason, status=401) from None


def _invalid(message: str) -> HttpRefusal:
    return HttpRefusal("INVALID_FIELD", message)


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        doc = orjson.loads(request.body or b"{}")
    except orjson.JSONDecodeError:
        raise HttpRefusal("INVALID_JSON", "the body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise HttpRefusal("INVALID_REQUEST", "the body must be an object")
    return doc


def _options(body: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    price = body.get("price")
    if price is not None:
        if not isinstance(price, int) or isinstance(price, bool) or price <= 0:
            raise _invalid("price must be a positive integer")
        options["price"] = price
    for flag in ("post_only", "ioc"):
        value = body.get(flag, False)
        if not isinstance(value, bool):
            raise _invalid(f"{flag} must be a boolean")
        options[flag] = value
    leverage = body.get("leverage", 1)
    if not isinstance(leverage, int) or isinstance(leverage, bool) or leverage < 1:
        raise _invalid("leverage must be an integer >= 1")
    options["leverage"] = leverage
    return options
