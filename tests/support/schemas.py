"""Hold the gateway to its documents: frames and HTTP bodies checked against streamgate/spec.

Validators are JSON Schema 2020-12 (``jsonschema``) over the schemas of the served
documents, ``$ref``s resolved by ``referencing``; each is compiled once per session.

- :func:`check_frame`: a frame received on ``/ws/public``, ``/ws/private`` or ``/ws`` must
  match one of the messages that endpoint's channel says the gateway sends (its send
  operations and the replies of its receive operations).
- :func:`check_http`: a request body (checked only when the gateway accepted it: tests send
  bad ones on purpose) and the response body of a documented operation, by status.

The test hooks (``tests/conftest.py``, ``tests/support/__init__.py``) call :func:`frame_received`
and :func:`publish_checked`, which collect problems in :data:`VIOLATIONS`; conftest fails
the test that caused them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from streamgate.spec import document

__all__ = [
    "ASYNCAPI_URI",
    "OPENAPI_URI",
    "VIOLATIONS",
    "FrameSchemas",
    "HttpSchemas",
    "check_frame",
    "check_http",
    "frame_received",
    "frame_schemas",
    "http_schemas",
    "install_frame_hook",
    "publish_checked",
]

ASYNCAPI_URI = "urn:streamgate:asyncapi.json"
OPENAPI_URI = "urn:streamgate:openapi.json"
VIOLATIONS: list[str] = []
_SHOWN = 300  # characters of a frame or body quoted in a violation


def _load(name: str) -> Any:
    return orjson.loads(document(name))


@functools.cache
def _registry() -> Registry[Any]:
    resources: list[tuple[str, Resource[Any]]] = [
        (ASYNCAPI_URI, DRAFT202012.create_resource(_load("asyncapi.json"))),
        (OPENAPI_URI, DRAFT202012.create_resource(_load("openapi.json"))),
    ]
    return Registry().with_resources(resources)


def _inlined(node: Any, resolver: Any, depth: int = 0) -> Any:
    """``node`` with every ``$ref`` replaced by what ``referencing`` resolves it to
    (``resolver``: a :class:`referencing.Registry` resolver).

    The documents' schemas are not recursive; validating without ``$ref`` lookups is
    about 1.6 times as fast, which is what keeps checking every frame cheap.
    """
    if depth > 64:
        raise ValueError("$ref nesting too deep: a recursive schema?")
    if isinstance(node, list):
        return [_inlined(item, resolver, depth) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _inlined(v, resolver, depth) for k, v in node.items() if k != "$ref"}
    if "$ref" not in node:
        return out
    found = resolver.lookup(node["$ref"])
    target = _inlined(found.contents, found.resolver, depth + 1)
    return {"allOf": [target], **out} if out else target


def _validator(uri: str, pointer: str) -> Draft202012Validator:
    schema = _inlined({"$ref": f"{uri}#{pointer}"}, _registry().resolver())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _lookup(doc: Any, pointer: str) -> Any:
    node = doc
    for part in pointer.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _why(validator: Draft202012Validator, instance: Any) -> str:
    error = best_match(validator.iter_errors(instance))
    if error is None:
        return "valid"
    where = "/".join(str(p) for p in error.absolute_path) or "(top)"
    return f"at {where}: {error.message[:_SHOWN]}"


def _quote(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


# -- WebSocket frames --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Message:
    name: str
    validator: Draft202012Validator


class FrameSchemas:
    """Per endpoint address, the messages the gateway may send, indexed by ``op``/``event``."""

    def __init__(self, doc: Any) -> None:
        self._by_address: dict[str, tuple[str, dict[Any, list[_Message]]]] = {}
        sent = self._sent(doc)
        for channel_id, channel in doc["channels"].items():
            index: dict[Any, list[_Message]] = {}
            key = "event" if channel_id == "push" else "op"
            for message_id in sent.get(channel_id, []):
                pointer = channel["messages"][message_id]["$ref"].removeprefix("#")
                message = _lookup(doc, pointer)
                payload = _lookup(doc, message["payload"]["$ref"])
                value = payload["properties"][key]["const"]
                compiled = _Message(message["name"], _validator(ASYNCAPI_URI, pointer + "/payload"))
                index.setdefault(value, []).append(compiled)
            self._by_address[channel["address"]] = (key, index)

    @staticmethod
    def _sent(doc: Any) -> dict[str, list[str]]:
        """Channel id -> ids of the messages its operations say the gateway sends."""
        out: dict[str, list[str]] = {}
        for op in doc["operations"].values():
            refs = op["messages"] if op["action"] == "send" else op["reply"]["messages"]
            for ref in refs:
                _, _, channel, _, message_id = ref["$ref"].split("/")
                ids = out.setdefault(channel, [])
                if message_id not in ids:
                    ids.append(message_id)
        return out

    def addresses(self) -> list[str]:
        return list(self._by_address)

    def sent(self, address: str) -> set[str]:
        """Names of every message the gateway may send on ``address``."""
        return {m.name for ms in self._by_address[address][1].values() for m in ms}

    def match(self, address: str, frame: Any) -> str | None:
        """The name of the message ``frame`` is, or None."""
        key, index = self._by_address[address]
        value = frame.get(key) if isinstance(frame, dict) else None
        for message in index.get(value, []) if isinstance(value, str) else []:
            if message.validator.is_valid(frame):
                return message.name
        return None

    def check(self, address: str, frame: Any) -> str | None:
        """Why ``frame`` matches no message the gateway sends on ``address`` (None: it does)."""
        key, index = self._by_address[address]
        value = frame.get(key) if isinstance(frame, dict) else None
        candidates = index.get(value) if isinstance(value, str) else None
        if not candidates:
            return f"{address}: no message has {key}={value!r}: {_quote(frame)}"
        if self.match(address, frame) is not None:
            return None
        reasons = "; ".join(f"{m.name} {_why(m.validator, frame)}" for m in candidates)
        return f"{address}: {_quote(frame)} matches no message ({reasons})"


@functools.cache
def frame_schemas() -> FrameSchemas:
    return FrameSchemas(_load("asyncapi.json"))


def check_frame(address: str, frame: Any) -> str | None:
    """Check one decoded frame received on the endpoint at ``address`` (a path)."""
    return frame_schemas().check(address, frame)


@functools.lru_cache(maxsize=4096)
def _frame_problem(address: str, data: str | bytes) -> str | None:
    """The problem of one frame, by its text: the gateway encodes a publication once for
    every subscriber, so a fan-out test receives the same bytes many times."""
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        return f"{address}: a frame that is not JSON: {_quote(repr(data))}"
    return check_frame(address, frame)


def frame_received(path_or_url: str, data: str | bytes) -> None:
    """Record a violation if a text frame received from a gateway endpoint is not in the
    contract; frames of other paths (no gateway endpoint) are not checked."""
    address = urlsplit(path_or_url).path
    if address not in frame_schemas().addresses():
        return
    problem = _frame_problem(address, data)
    if problem is not None:
        VIOLATIONS.append(problem)


def install_frame_hook(cls: Any) -> Callable[[], None]:
    """Check every message ``cls.recv`` returns (websockets' asyncio ClientConnection) by the
    path the connection was opened on; returns the undo."""
    original = cls.recv

    async def recv(self: Any, *args: Any, **kwargs: Any) -> Any:
        message = await original(self, *args, **kwargs)
        request = getattr(self, "request", None)
        if request is not None:
            frame_received(request.path, message)
        return message

    cls.recv = recv

    def undo() -> None:
        cls.recv = original

    return undo


# -- HTTP ----------------------------------------------------------------------------------------


class HttpSchemas:
    """Request and response schemas of the OpenAPI document's operations."""

    def __init__(self, doc: Any) -> None:
        self._doc = doc
        self._validators: dict[str, Draft202012Validator] = {}

    def _compiled(self, pointer: str) -> Draft202012Validator:
        found = self._validators.get(pointer)
        if found is None:
            found = self._validators[pointer] = _validator(OPENAPI_URI, pointer)
        return found

    def _operation(self, method: str, path: str) -> tuple[str, Any]:
        escaped = path.replace("~", "~0").replace("/", "~1")
        pointer = f"/paths/{escaped}/{method.lower()}"
        return pointer, _lookup(self._doc, pointer)

    def check(
        self, method: str, path: str, request: Any, status: int, response: Any
    ) -> Iterator[str]:
        """Problems of one exchange with the documented operation ``method path``.

        ``request`` (the decoded body, or None) is checked only when ``status`` is 2xx.
        """
        pointer, op = self._operation(method, path)
        where = f"{method} {path}"
        if 200 <= status < 300 and request is not None and "requestBody" in op:
            body = f"{pointer}/requestBody/content/application~1json/schema"
            validator = self._compiled(body)
            if not validator.is_valid(request):
                yield f"{where} request accepted ({status}) but {_why(validator, request)}"
        answer = op["responses"].get(str(status))
        if answer is None:
            yield f"{where} answered {status}, which is not documented: {_quote(response)}"
            return
        media = answer.get("content", {}).get("application/json")
        if media is None:
            return
        resp = f"{pointer}/responses/{status}/content/application~1json/schema"
        validator = self._compiled(resp)
        if not validator.is_valid(response):
            yield f"{where} {status} response {_why(validator, response)}: {_quote(response)}"


@functools.cache
def http_schemas() -> HttpSchemas:
    return HttpSchemas(_load("openapi.json"))


def check_http(method: str, path: str, request: Any, status: int, response: Any) -> list[str]:
    return list(http_schemas().check(method, path, request, status, response))


def publish_checked(events: list[dict[str, Any]], status: int, body: bytes) -> None:
    """Record the problems of one ``POST /api/v1/publish`` a test sent."""
    try:
        response = orjson.loads(body)
    except orjson.JSONDecodeError:
        VIOLATIONS.append(f"POST /api/v1/publish {status}: a body that is not JSON")
        return
    VIOLATIONS.extend(check_http("POST", "/api/v1/publish", {"events": events}, status, response))
