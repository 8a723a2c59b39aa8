"""Routes: a method and a path pattern to a handler; WebSocket upgrades; head checks.

A pattern is a path whose segments are literal or ``{name}`` (one non-empty segment,
handed to the handler in ``request.params``): ``/webhooks/{id}``,
``/webhooks/messages/{msg}/attempts``; a last segment ``{name...}`` takes the rest of
the path, empty or not (as Go's ServeMux). Segments are matched one by one, raw (not
percent-decoded), a literal before a parameter and without backtracking (as
httprouter): where ``/webhooks/messages`` is a literal, ``/webhooks/messages/x`` never
matches ``/webhooks/{id}/x``. A later route for the same method and pattern replaces.

A request that matches no route is answered 404 ``NOT_FOUND`` (426 ``UPGRADE_REQUIRED``
at a WebSocket path), one whose path matches under another method 405
``METHOD_NOT_ALLOWED`` with ``allow``. A subtree whose API answers in its own shape
(the tenant envelope of ``/webhooks/``) takes its misses with :meth:`Router.on_miss`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Final

from streamgate.errors import HttpRefusal
from streamgate.server.errors import refusal_response
from streamgate.server.messages import HttpRequest, HttpResponse

__all__ = ["Handler", "HeadCheck", "MissHandler", "Router", "UpgradeHandler"]

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
UpgradeHandler = Callable[[HttpRequest, asyncio.Transport, bytes], None]
# True: read the body. False: the route's handler answers the head (empty body), then close.
HeadCheck = Callable[[HttpRequest], bool]
# Answers a request the router refused (404 or 405, ``allow`` in the refusal's headers).
MissHandler = Callable[[HttpRequest, HttpRefusal], Awaitable[HttpResponse]]

_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}")


class _Node:
    """One path segment's place in the tree."""

    __slots__ = ("literal", "methods", "param", "param_name", "rest", "rest_name")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.param_name = ""
        self.rest: dict[str, Handler] = {}  # the methods of ``{name...}`` here
        self.rest_name = ""
        self.methods: dict[str, Handler] = {}


class Router:
    """Path-pattern routes for HTTP methods, exact paths for WebSocket upgrades."""

    def __init__(self) -> None:
        self._root = _Node()
        self._upgrades: dict[str, UpgradeHandler] = {}
        self._checks: dict[str, HeadCheck] = {}
        self._check_prefixes: list[tuple[str, HeadCheck]] = []
        self._misses: list[tuple[str, MissHandler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Route ``method`` requests whose path matches ``pattern`` to ``handler``.

        Raises:
            ValueError: ``pattern`` does not start with ``/``, or names a parameter
                where another route has one of another name.
        """
        if not pattern.startswith("/"):
            raise ValueError(f"a route pattern starts with '/': {pattern!r}")
        node = self._root
        segments = pattern[1:].split("/")
        for at, segment in enumerate(segments):
            param = _PARAM.fullmatch(segment)
            if param is not None and param.group(2):
                if at != len(segments) - 1 or (node.rest and node.rest_name != param.group(1)):
                    raise ValueError(f"{pattern!r}: {{name...}} is the last segment, one name")
                node.rest_name = param.group(1)
                node.rest[method] = handler
                return
            if param is None:
                if "{" in segment or "}" in segment:
                    raise ValueError(f"{pattern!r}: a parameter is a whole segment {{name}}")
                node = node.literal.setdefault(segment, _Node())
                continue
            name = param.group(1)
            if node.param is None:
                node.param, node.param_name = _Node(), name
            elif node.param_name != name:
                raise ValueError(
                    f"{pattern!r}: {{{name}}} where another route has {{{node.param_name}}}"
                )
            node = node.param
        node.methods[method] = handler

    def add_upgrade(self, path: str, handler: UpgradeHandler) -> None:
        self._upgrades[path] = handler

    def upgrade(self, path: str) -> UpgradeHandler | None:
        return self._upgrades.get(path)

    def check_head(self, path: str, check: HeadCheck, *, prefix: bool = False) -> None:
        """Judge requests with a body to ``path`` (or under it) on their head alone.

        When ``check`` returns False the body is not read: the route's handler answers
        the request with an empty body, so ``check`` must be the handler's own first
        test (its key check), and the connection closes after the answer. A check that
        raises lets the request through to its handler.
        """
        if prefix:
            self._check_prefixes = [p for p in self._check_prefixes if p[0] != path]
            self._check_prefixes.append((path, check))
        else:
            self._checks[path] = check

    def head_check(self, path: str) -> HeadCheck | None:
        found = self._checks.get(path)
        if found is None:
            for prefix, check in self._check_prefixes:
                if path.startswith(prefix):
                    return check
        return found

    def on_miss(self, prefix: str, handler: MissHandler) -> None:
        """Let ``handler`` answer the requests under ``prefix`` that no route takes.

        It gets the refusal the router would answer (404, or 405 with ``allow``) and
        answers it in its API's own shape. A later handler for ``prefix`` replaces.
        """
        self._misses = [m for m in self._misses if m[0] != prefix]
        self._misses.append((prefix, handler))

    def route(self, request: HttpRequest) -> Handler | HttpResponse:
        """The handler of ``request`` (its ``params`` set), or the answer to a miss."""
        found = self._match(request.method, request.path)
        if isinstance(found, HttpResponse):
            return found
        handler, request.params = found
        return handler

    def resolve(self, method: str, path: str) -> Handler | HttpResponse:
        """What answers ``method`` at ``path``: its handler, or the answer to a miss."""
        found = self._match(method, path)
        return found if isinstance(found, HttpResponse) else found[0]

    def _match(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | HttpResponse:
        node: _Node | None = self._root if path.startswith("/") else None
        params: dict[str, str] = {}
        # The deepest {name...} passed, taken when nothing longer matches.
        methods: dict[str, Handler] = {}
        rest_params: dict[str, str] = {}
        segments = path[1:].split("/") if node is not None else []
        for at, segment in enumerate(segments):
            assert node is not None
            if node.rest:
                methods = node.rest
                rest_params = {**params, node.rest_name: "/".join(segments[at:])}
            found = node.literal.get(segment)
            if found is None and segment and node.param is not None:
                params[node.param_name] = segment
                found = node.param
            node = found
            if node is None:
                break
        if node is not None and node.methods:
            methods = node.methods
        else:
            params = rest_params
        if methods:
            handler = methods.get(method)
            if handler is not None:
                return handler, params
            allowed = ", ".join(sorted(methods))
            miss = HttpRefusal(
                "METHOD_NOT_ALLOWED",
                f"{method} is not allowed; use {allowed}",
                status=405,
                headers=(("allow", allowed),),
            )
        elif path in self._upgrades:
            miss = HttpRefusal("UPGRADE_REQUIRED", f"{path} is a WebSocket endpoint", status=426)
        else:
            miss = HttpRefusal("NOT_FOUND", f"no route for {path}", status=404)
        for prefix, answer in self._misses:
            if path.startswith(prefix):
                return _answering(answer, miss), {}
        return refusal_response(miss)


def _answering(answer: MissHandler, miss: HttpRefusal) -> Handler:
    async def handle(request: HttpRequest) -> HttpResponse:
        return await answer(request, miss)

    return handle
