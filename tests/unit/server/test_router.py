"""Router: path parameters, literal-before-parameter matching, misses (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streamgate.errors import HttpRefusal
from streamgate.server.messages import HttpRequest, HttpResponse, json_response
from streamgate.server.router import Handler, Router


def request(method: str, path: str) -> HttpRequest:
    return HttpRequest(method, path, path, {}, [], b"", "127.0.0.1")


def handler(name: str) -> Handler:
    async def handle(req: HttpRequest) -> HttpResponse:
        return json_response(200, {"route": name, "params": req.params})

    return handle


def answer(router: Router, method: str, path: str) -> tuple[int, dict[str, Any], HttpResponse]:
    """Route one request and run its handler: (status, JSON body, response)."""
    req = request(method, path)
    found = router.route(req)

    async def run(route: Handler) -> HttpResponse:
        return await route(req)

    response = found if isinstance(found, HttpResponse) else asyncio.run(run(found))
    body: dict[str, Any] = orjson.loads(response.body)
    return response.status, body, response


@pytest.fixture
def router() -> Router:
    r = Router()
    r.add("GET", "/webhooks", handler("list"))
    r.add("POST", "/webhooks", handler("create"))
    r.add("GET", "/webhooks/messages", handler("messages"))
    for method in ("GET", "PATCH", "DELETE"):
        r.add(method, "/webhooks/{id}", handler(f"{method} one"))
    r.add("POST", "/webhooks/{id}/recover", handler("recover"))
    r.add("GET", "/webhooks/messages/{msg}/attempts", handler("attempts"))
    r.add("GET", "/", handler("index"))
    r.add_upgrade("/ws", lambda request, transport, rest: None)
    return r


def test_path_parameters_reach_the_handler(router: Router) -> None:
    assert answer(router, "PATCH", "/webhooks/ep_1")[1] == {
        "route": "PATCH one",
        "params": {"id": "ep_1"},
    }
    assert answer(router, "POST", "/webhooks/ep_2/recover")[1]["params"] == {"id": "ep_2"}
    assert answer(router, "GET", "/webhooks/messages/m%2F1/attempts")[1] == {
        "route": "attempts",
        "params": {"msg": "m%2F1"},  # raw: not percent-decoded
    }
    assert answer(router, "GET", "/webhooks")[1] == {"route": "list", "params": {}}
    assert answer(router, "GET", "/")[1]["route"] == "index"


def test_a_literal_segment_shadows_a_parameter(router: Router) -> None:
    assert answer(router, "GET", "/webhooks/messages")[1]["route"] == "messages"
    # "messages" is a literal here: never the {id} of /webhooks/{id}/recover.
    status, body, _ = answer(router, "POST", "/webhooks/messages/recover")
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")


def test_misses(router: Router) -> None:
    status, body, response = answer(router, "PUT", "/webhooks/ep_1")
    assert (status, body) == (
        405,
        {
            "error": {
                "code": "METHOD_NOT_ALLOWED",
                "message": "PUT is not allowed; use DELETE, GET, PATCH",
            }
        },
    )
    assert ("allow", "DELETE, GET, PATCH") in response.headers
    for path in ("/webhooks/", "/webhooks//recover", "/webhooks/a/b/c", "/nope", "*"):
        status, body, _ = answer(router, "GET", path)
        assert (status, body) == (
            404,
            {"error": {"code": "NOT_FOUND", "message": f"no route for {path}"}},
        ), path
    status, body, _ = answer(router, "GET", "/ws")
    assert (status, body["error"]["code"]) == (426, "UPGRADE_REQUIRED")


def test_a_subtree_answers_its_own_misses(router: Router) -> None:
    seen: list[HttpRefusal] = []

    async def miss(req: HttpRequest, refusal: HttpRefusal) -> HttpResponse:
        seen.append(refusal)
        return json_response(refusal.status, {"mine": refusal.code, "headers": refusal.headers})

    router.on_miss("/webhooks/", miss)
    assert answer(router, "GET", "/webhooks/a/b/c")[:2] == (
        404,
        {"mine": "NOT_FOUND", "headers": []},
    )
    assert answer(router, "GET", "/webhooks/ep_1/recover")[:2] == (
        405,
        {"mine": "METHOD_NOT_ALLOWED", "headers": [["allow", "POST"]]},
    )
    # Outside the subtree the router answers as before.
    assert answer(router, "GET", "/nope")[1]["error"]["code"] == "NOT_FOUND"
    assert answer(router, "PUT", "/webhooks")[1]["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_rest_parameter_takes_the_rest_of_the_path() -> None:
    r = Router()
    r.add("POST", "/{path...}", handler("any"))
    r.add("POST", "/hooks/exact", handler("exact"))
    assert answer(r, "POST", "/")[1] == {"route": "any", "params": {"path": ""}}
    assert answer(r, "POST", "/a/b/")[1] == {"route": "any", "params": {"path": "a/b/"}}
    assert answer(r, "POST", "/hooks/exact")[1] == {"route": "exact", "params": {}}
    assert answer(r, "POST", "/hooks/other")[1]["params"] == {"path": "hooks/other"}
    assert answer(r, "GET", "/x")[0] == 405


def test_a_later_route_replaces_and_bad_patterns_are_refused() -> None:
    r = Router()
    r.add("GET", "/a/{id}", handler("first"))
    r.add("GET", "/a/{id}", handler("second"))
    assert answer(r, "GET", "/a/1")[1]["route"] == "second"
    assert not isinstance(r.resolve("GET", "/a/1"), HttpResponse)
    assert isinstance(r.resolve("GET", "/b"), HttpResponse)
    for bad in ("/a/{other}", "a", "/a/x{id}", "/{rest...}/more"):
        with pytest.raises(ValueError, match=r"pattern|segment|route"):
            r.add("GET", bad, handler("bad"))
