"""The admin page at ``/admin`` (issue 15) in a real headless Chromium, with real figures.

The test opens WebSocket clients and publishes; the page, given the key, must render the
numbers the gateway has: the connections the test opened, the channel they share as the
busiest, the slow consumer the test made. The key stays in sessionStorage, never in the
URL; a wrong key is refused on the page. A screenshot goes to ``test-output/browser/``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from playwright.async_api import Page

from support import (
    base_url,
    open_ws,
    publish_ok,
    running_gateway,
    subscribe,
    trade_event,
)
from support.cluster import until
from support.slow import cut_slow_consumer

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
KEY = "browser-admin-key"
CLIENTS = 3

ROWS_JS = """
(id) => Array.from(document.querySelectorAll(`#${id} tr`)).map(
  (row) => Array.from(row.children).map((cell) => cell.textContent))
"""


async def test_admin_page_renders_the_nodes_figures(tmp_path: Path, browser_page: Page) -> None:
    page = browser_page
    settings = {"admin_key": KEY, "outbound_buffer_bytes": 64 * 1024, "send_buffer_bytes": 16_384}
    async with running_gateway(tmp_path, **settings) as gw, contextlib.AsyncExitStack() as st:
        clients = [await st.enter_async_context(open_ws(gw)) for _ in range(CLIENTS)]
        for ws in clients:
            await subscribe(ws, ["trade/0xbrowser"])
        for seq in range(1, 6):
            await publish_ok(gw, [trade_event("0xbrowser", seq)])
        slow = await cut_slow_consumer(gw, lambda batch: publish_ok(gw, batch))
        slow.close()
        await until(lambda: len(gw.sockets.conns) == CLIENTS, "the slow socket gone")

        await page.goto(f"{base_url(gw)}/admin")
        assert await page.text_content("#admin-status .label") == "no key"
        # A wrong key is refused and forgotten.
        await page.fill("#admin-key", "not-the-key")
        await page.click("#key-form button[type=submit]")
        await page.wait_for_function("document.querySelector('#key-error').textContent !== ''")
        assert await page.evaluate("sessionStorage.getItem('streamgate.admin_key')") is None

        await page.fill("#admin-key", KEY)
        await page.click("#key-form button[type=submit]")
        await page.wait_for_selector("#figures[data-state=live]")
        figures = page.locator("#figures")
        assert await figures.locator("[data-figure=public]").text_content() == str(CLIENTS)
        assert await figures.locator("[data-figure=private]").text_content() == "0"
        assert await figures.locator("[data-figure=push]").text_content() == "0"
        assert await figures.locator("[data-figure=channels]").text_content() == "1"
        assert await figures.locator("[data-figure=slow_total]").text_content() == "1"
        busiest = await page.evaluate(ROWS_JS, "by-subscribers")
        assert busiest[0][:2] == ["trade/0xbrowser", str(CLIENTS)]
        [cut] = await page.evaluate(ROWS_JS, "cuts")
        assert cut[1:2] == ["public"] and cut[3] == "127.0.0.1"
        assert 0 < int(cut[2]) <= 64 * 1024
        assert await page.text_content("#readiness") == "ready"
        # The key is in this tab's sessionStorage only, never in the URL.
        assert KEY not in page.url
        stored = await page.evaluate("sessionStorage.getItem('streamgate.admin_key')")
        assert stored == KEY
        assert await page.evaluate("localStorage.length") == 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SCREENSHOTS / "admin.png"), full_page=True)

        # One client leaves: the page follows.
        await clients[0].close()
        await page.wait_for_function(
            f"document.querySelector('[data-figure=public]').textContent === '{CLIENTS - 1}'"
        )
