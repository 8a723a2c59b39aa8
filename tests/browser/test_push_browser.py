"""The push protocol from a real browser (issue 4, item 5).

A headless Chromium opens the gateway's own page, then ``new WebSocket(url,
["bearer." + ticket])`` from it: the browser accepts the handshake only because the server
selects that subprotocol in its answer, and it exposes the server's close code and reason
to the page. Real gateway, real sockets, real browser.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from playwright.async_api import Page

from streamgate.client.http import HttpClient
from streamgate.server.app import Gateway

from support import UNIT, base_url, publish_ok, ws_url

# Screenshots for a person to look at; .gitignore ignores /test-output/.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"

# Opens a socket from the page and records everything about it in window.__sg; resolves
# once it opened or closed. Each message is also written into the page, for the screenshot.
OPEN_SOCKET_JS = """
([url, protocols]) => new Promise((resolve) => {
  const log = document.createElement("pre");
  log.id = "sg-log";
  log.style.whiteSpace = "pre-wrap";
  document.body.appendChild(log);
  const rec = {opened: false, protocol: null, messages: [], close: null, errors: 0};
  window.__sg = rec;
  const ws = protocols === null ? new WebSocket(url) : new WebSocket(url, protocols);
  window.__ws = ws;
  ws.onopen = () => {
    rec.opened = true;
    rec.protocol = ws.protocol;
    resolve(rec);
  };
  ws.onmessage = (e) => {
    rec.messages.push(e.data);
    log.textContent += e.data + "\\n";
  };
  ws.onerror = () => { rec.errors += 1; };
  ws.onclose = (e) => {
    rec.close = {code: e.code, reason: e.reason, wasClean: e.wasClean};
    log.textContent += `closed ${e.code} ${e.reason}\\n`;
    resolve(rec);
  };
})
"""


async def mint_ticket(gw: Gateway, api_key: str, sub_user: str) -> str:
    """A push ticket from ``POST /auth/ws-token``, as an integrator's backend gets one."""
    client = HttpClient(base_url(gw), timeout=5.0)
    try:
        result = await client.request(
            "POST", "/auth/ws-token", headers={"api-key": api_key, "On-Behalf-Of": sub_user}
        )
    finally:
        await client.close()
    assert result.status == 200, result.body
    doc = result.json()
    assert doc["success"] is True and isinstance(doc["requestId"], str), doc
    assert doc["data"]["expiresIn"] == "1h", doc
    token: str = doc["data"]["token"]
    return token


async def open_page_socket(page: Page, gw: Gateway, protocols: list[str] | None) -> Any:
    """Load the gateway's ``/`` and open ``/ws`` from it; the socket's state once it opened."""
    response = await page.goto(base_url(gw) + "/")
    assert response is not None and response.status == 200
    # evaluate() has no timeout of its own: bound the wait for the socket's first event here.
    return await asyncio.wait_for(
        page.evaluate(OPEN_SOCKET_JS, [ws_url(gw, "/ws"), protocols]), 5 * UNIT
    )


async def wait_messages(page: Page, count: int) -> list[Any]:
    await page.wait_for_function(
        f"() => window.__sg.messages.length >= {count} || window.__sg.close !== null",
        polling=20,  # the page's default timeout (the fixture's) bounds it
    )
    state = await page.evaluate("() => window.__sg")
    assert len(state["messages"]) >= count, f"closed before {count} messages: {state}"
    return [orjson.loads(m) for m in state["messages"]]


async def wait_close(page: Page) -> dict[str, Any]:
    await page.wait_for_function("() => window.__sg.close !== null", polling=20)
    close: dict[str, Any] = await page.evaluate("() => window.__sg.close")
    return close


def assert_recent_ms(ts: Any) -> None:
    assert isinstance(ts, int) and not isinstance(ts, bool), ts
    assert abs(ts - time.time_ns() // 1_000_000) < 60_000, ts


async def test_browser_receives_a_published_push(gw: Gateway, browser_page: Page) -> None:
    api_key, _info = gw.api_keys.create("acme")
    token = await mint_ticket(gw, api_key, "alice")

    state = await open_page_socket(browser_page, gw, ["bearer." + token])
    assert state["opened"], state
    assert state["protocol"] == "bearer." + token  # the server selected it; else no handshake

    [connected] = await wait_messages(browser_page, 1)
    assert connected == {"event": "connected", "data": {"userId": "alice"}, "ts": connected["ts"]}
    assert_recent_ms(connected["ts"])

    notice = {"severity": "info", "message": "hello browser"}
    accepted = await publish_ok(
        gw, [{"event": "system.notice", "tenant": "acme", "sub_user": "alice", "data": notice}]
    )
    assert accepted["accepted"] == 1, accepted

    messages = await wait_messages(browser_page, 2)
    push = messages[1]
    assert push["event"] == "system.notice"
    assert push["data"] == notice
    assert_recent_ms(push["ts"])
    # Extension fields (PROTOCOL.md section 3); nothing else in the envelope.
    assert isinstance(push["offset"], int) and isinstance(push["epoch"], str), push
    assert set(push) == {"event", "data", "ts", "offset", "epoch"}, push

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await browser_page.screenshot(path=SCREENSHOTS / "push.png", full_page=True)

    # Still open, and nothing else arrived for alice.
    final = await browser_page.evaluate("() => window.__sg")
    assert final["close"] is None and len(final["messages"]) == 2, final
    await browser_page.evaluate("() => window.__ws.close(1000)")


async def test_browser_sees_invalid_ticket_close(gw: Gateway, browser_page: Page) -> None:
    api_key, _info = gw.api_keys.create("acme")
    header, payload, _signature = (await mint_ticket(gw, api_key, "alice")).split(".")
    forged = f"{header}.{payload}.{'A' * 43}"  # right shape, wrong signature

    state = await open_page_socket(browser_page, gw, ["bearer." + forged])
    # The upgrade completes (the subprotocol is selected), then the server closes.
    assert state["opened"] and state["protocol"] == "bearer." + forged, state
    close = await wait_close(browser_page)
    assert close == {"code": 4001, "reason": "Invalid token", "wasClean": True}
    assert (await browser_page.evaluate("() => window.__sg.messages")) == []


async def test_browser_sees_missing_ticket_close(gw: Gateway, browser_page: Page) -> None:
    state = await open_page_socket(browser_page, gw, None)
    assert state["opened"] and state["protocol"] == "", state
    close = await wait_close(browser_page)
    assert close == {"code": 4001, "reason": "Missing token", "wasClean": True}


async def test_browser_send_is_read_only(gw: Gateway, browser_page: Page) -> None:
    api_key, _info = gw.api_keys.create("acme")
    token = await mint_ticket(gw, api_key, "alice")

    state = await open_page_socket(browser_page, gw, ["bearer." + token])
    assert state["opened"] and state["protocol"] == "bearer." + token, state
    [connected] = await wait_messages(browser_page, 1)
    assert connected["event"] == "connected", connected

    await browser_page.evaluate('() => window.__ws.send("hello")')
    close = await wait_close(browser_page)
    # The server waits for the browser's answering close frame: a clean close.
    assert close == {"code": 4002, "reason": "Read-only", "wasClean": True}
