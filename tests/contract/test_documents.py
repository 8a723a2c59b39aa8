"""The documents themselves: generated from one source, valid by the projects' own validators,
served by the gateway, and strict enough to catch drift."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate as validate_openapi

from streamgate.client.http import HttpClient
from streamgate.server.app import Gateway
from streamgate.spec import DOCUMENTS, document
from streamgate.spec.build import render

from support import UNIT, base_url
from support.schemas import check_frame, check_http

HERE = Path(__file__).parent / "asyncapi"
NPM_TIMEOUT = 300.0  # seconds for npm ci (first run on a machine)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_committed_documents_are_what_the_build_gives(name: str) -> None:
    assert document(name) == render(name), "run: python -m streamgate.spec.build"


def test_openapi_document_passes_the_openapi_validator() -> None:
    validate_openapi(json.loads(document("openapi.json")))


async def _run(argv: list[str], cwd: Path, within: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), within)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def _installed(npm: str) -> None:
    """``npm ci`` the pinned parser into the git-ignored node_modules, once per lock file."""
    stamp = HERE / "node_modules" / ".package-lock.json"
    lock = HERE / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    argv = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"]
    code, out = await _run(argv, HERE, NPM_TIMEOUT)
    assert code == 0, f"npm ci failed:\n{out[-3000:]}"


async def test_asyncapi_document_parses_with_the_asyncapi_parser(tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run @asyncapi/parser (tests/contract/asyncapi)")
    await _installed(npm)
    spec = tmp_path / "asyncapi.json"
    spec.write_bytes(document("asyncapi.json"))
    code, out = await _run([node, "check.mjs", str(spec)], HERE, 60 * UNIT)
    assert code == 0, f"@asyncapi/parser found problems:\n{out[-5000:]}"
    assert json.loads(out.splitlines()[-1]) == {"parsed": True, "problems": 0}


async def test_asyncapi_parser_check_is_not_vacuous(tmp_path: Path) -> None:
    """The check above fails on a broken document (a schema type that does not exist)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run @asyncapi/parser (tests/contract/asyncapi)")
    await _installed(npm)
    doc = json.loads(document("asyncapi.json"))
    doc["components"]["schemas"]["Pong"]["properties"]["server_ts"]["type"] = "timestamp"
    spec = tmp_path / "broken.json"
    spec.write_text(json.dumps(doc))
    code, out = await _run([node, "check.mjs", str(spec)], HERE, 60 * UNIT)
    assert code == 1
    assert "server_ts" in out


async def test_both_documents_are_served(gw: Gateway) -> None:
    client = HttpClient(base_url(gw))
    try:
        for name in DOCUMENTS:
            result = await client.request("GET", f"/{name}")
            assert result.status == 200
            assert result.headers["content-type"] == "application/json"
            assert result.body == document(name)
            assert check_http("GET", f"/{name}", None, 200, result.json()) == []
    finally:
        await client.close()


def _walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_extension_is_marked_and_described(name: str) -> None:
    marked = [
        (path, node) for path, node in _walk(orjson.loads(document(name))) if "x-extension" in node
    ]
    assert len(marked) >= 5
    for path, node in marked:
        assert node["x-extension"] is True, path
        assert node.get("description", "").startswith("Extension: "), path
    described = [
        path
        for path, node in _walk(orjson.loads(document(name)))
        if str(node.get("description", "")).startswith("Extension:")
    ]
    assert sorted(described) == sorted(path for path, _ in marked)


def test_close_codes_are_given_for_every_endpoint() -> None:
    channels = orjson.loads(document("asyncapi.json"))["channels"]
    codes = {c["address"]: {x["code"] for x in c["x-close-codes"]} for c in channels.values()}
    assert codes["/ws"] >= {4001, 4002, 4008, 4009, 1012}
    assert codes["/ws/public"] == codes["/ws/private"] == {1008, 1009, 1011, 1012, 4009}


EVENT = {"op": "event", "topic": "trade/M", "offset": 1, "epoch": "e", "server_ts_ms": 1}
TRADE = {"id": 7, "side": "buy", "price": 101, "size": 1, "seq": 1, "timestamp": 1}


def _trade_event(**trade: Any) -> dict[str, Any]:
    data = {"type": "trades", "market_addr": "M", "seq": 1, "trades": [{**TRADE, **trade}]}
    return {**EVENT, "data": data}


@pytest.mark.parametrize(
    ("address", "frame"),
    [
        ("/ws/public", {"op": "pong", "server_ts": 1, "client_ts": None}),
        ("/ws/public", {"op": "pong", "server_ts": "1"}),
        ("/ws/public", {"op": "subscribed"}),
        ("/ws/public", {"op": "error", "message": "NOT_A_CODE", "detail": "x"}),
        ("/ws/public", {"op": "error", "message": "UNAUTHORIZED", "detail": "x"}),
        ("/ws/public", {"op": "welcome"}),
        ("/ws/public", _trade_event(id=2**64)),
        ("/ws/public", _trade_event(id="")),
        ("/ws/public", _trade_event(id=1.5)),
        ("/ws/public", _trade_event(price="101")),
        ("/ws/public", _trade_event(extra=1)),
        ("/ws/public", {k: v for k, v in _trade_event().items() if k != "offset"}),
        ("/ws/private", {"op": "error", "message": "OP_NOT_ALLOWED", "detail": "x"}),
        ("/ws/private", {**_trade_event(), "topic": "order"}),
        ("/ws", {"event": "connected", "data": {}, "ts": 1}),
        ("/ws", {"event": "system.notice", "data": {"severity": "info", "message": "x"}, "ts": 1}),
    ],
)
def test_drifted_frames_are_caught(address: str, frame: dict[str, Any]) -> None:
    assert check_frame(address, frame) is not None


@pytest.mark.parametrize("trade_id", [0, 2**64 - 1, "t1", "9f86d081"])
def test_trade_ids_of_both_kinds_pass(trade_id: object) -> None:
    assert check_frame("/ws/public", _trade_event(id=trade_id)) is None


def test_an_accepted_publish_is_checked_but_a_refused_one_only_by_its_answer() -> None:
    bad = {"events": [{"topic": "trade/M", "data": {"seq": 1, "trades": []}}]}
    accepted = {"accepted": 1, "duplicates": 0}
    assert check_http("POST", "/api/v1/publish", bad, 200, accepted)
    error = {"error": {"code": "INVALID_EVENT", "message": "m", "index": 0, "field": "data"}}
    assert check_http("POST", "/api/v1/publish", bad, 400, error) == []
    assert check_http("POST", "/api/v1/publish", bad, 400, {"error": "x"})
    assert check_http("POST", "/api/v1/publish", bad, 418, error)
