"""The live page at ``/`` (issue 5, item 5) in a real headless Chromium.

A gateway with the demo venue publishing through the producer API; the page subscribes on
``/ws/public``, mints a push ticket at ``POST /demo/ticket`` and opens ``/ws``, and polls
``GET /api/v1/stats``. The test looks only at what the page renders. A second test runs
without the demo venue: the page falls back to ``GET /api/v1/markets`` and its book must
follow published snapshots and deltas level for level. Screenshots go to
``test-output/browser/`` for a person to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from playwright.async_api import Error, Page

from streamgate.server.app import Gateway

from support import UNIT, base_url, publish_ok, running_gateway

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"

BOOK_TIMEOUT_MS = 10_000 * UNIT  # first snapshot through venue, gateway and page
CHANGE_TIMEOUT_MS = 8_000 * UNIT  # the demo's traders move the book several times a second
PUSH_NATURAL_MS = 10_000 * UNIT  # the demo's payments simulator, before we publish ourselves
PUSH_TIMEOUT_MS = 5_000 * UNIT

NUMBER = re.compile(r"^-?\d{1,3}(,\d{3})*(\.\d+)?$")

# The rendered levels of a side, top to bottom: [[price text, size text, total text], ...].
SIDE_JS = """
(side) => Array.from(document.querySelectorAll(`#book .level.${side}`)).map(
  (row) => Array.from(row.children).map((cell) => cell.textContent))
"""

# Prices (data-price) of a side's rendered rows, top to bottom.
PRICES_JS = """
(side) => Array.from(document.querySelectorAll(`#book .level.${side}`)).map(
  (row) => Number(row.dataset.price))
"""

# Push log entries, newest first: [[event, summary text], ...] (local notes left out).
PUSH_LOG_JS = """
() => Array.from(document.querySelectorAll("#push-log .push-item:not(.note)")).map(
  (item) => [item.dataset.event, item.querySelector(".summary-text").textContent])
"""

# Reconnected and resubscribed with a resume, and the book moved on from ``seq`` (the arg).
RESUMED_JS = """
(seq) => {
  const live = window.streamgateLive;
  const ack = live.pub.lastAck;
  return live.pub.ws !== null && live.pub.ws.readyState === WebSocket.OPEN
    && ack !== null && ack.recovered !== undefined && live.book.seq > seq;
}
"""

PUSH_EVENT_JS = """
() => document.querySelector(
  '#push-log .push-item:not(.note):not([data-event="connected"])') !== null
"""


@contextlib.asynccontextmanager
async def demo_gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway with the demo venue running; the venue is cancelled and awaited after."""
    async with running_gateway(tmp_path) as gw:
        venue = gw.mount_demo()
        task = asyncio.create_task(venue.run())
        try:
            yield gw
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5 * UNIT)


def collect_page_errors(page: Page) -> list[str]:
    errors: list[str] = []

    def on_error(exc: Error) -> None:
        errors.append(str(exc))

    page.on("pageerror", on_error)
    return errors


async def open_live_page(page: Page, gw: Gateway) -> None:
    await page.set_viewport_size({"width": 1280, "height": 800})
    response = await page.goto(base_url(gw) + "/")
    assert response is not None and response.status == 200
    assert await page.title() != ""


async def side_rows(page: Page, side: str) -> list[list[str]]:
    rows: list[list[str]] = await page.evaluate(SIDE_JS, side)
    return rows


async def side_prices(page: Page, side: str) -> list[int]:
    prices: list[int] = await page.evaluate(PRICES_JS, side)
    return prices


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / name)


async def test_live_page_shows_market_push_and_figures(tmp_path: Path, browser_page: Page) -> None:
    page = browser_page
    errors = collect_page_errors(page)
    async with demo_gateway(tmp_path) as gw:
        await open_live_page(page, gw)

        # The market selector lists the demo markets (from /demo/info, once it answered).
        await page.wait_for_selector("#market-select:enabled")
        options = await page.eval_on_selector_all(
            "#market-select option", "(nodes) => nodes.map((n) => n.textContent)"
        )
        assert options == ["BTC-PERP", "ETH-PERP"], options

        # The book renders on both sides, asks above bids, with formatted numbers.
        await page.wait_for_function(
            "() => document.querySelectorAll('#book .level.ask').length >= 3"
            " && document.querySelectorAll('#book .level.bid').length >= 3",
            timeout=BOOK_TIMEOUT_MS,
        )
        for side in ("ask", "bid"):
            for row in await side_rows(page, side):
                assert len(row) == 3 and all(NUMBER.match(cell) for cell in row), (side, row)
        asks, bids = await page.evaluate(f"() => [({PRICES_JS})('ask'), ({PRICES_JS})('bid')]")
        assert asks == sorted(asks, reverse=True) and bids == sorted(bids, reverse=True)
        assert min(asks) > max(bids), (asks, bids)  # best prices meet at the spread
        box_ask = await page.locator("#book .level.ask").last.bounding_box()
        box_bid = await page.locator("#book .level.bid").first.bounding_box()
        assert box_ask is not None and box_bid is not None
        assert box_ask["y"] < box_bid["y"]
        # BTC-PERP has two price decimals and four size decimals.
        [price, size, _total] = (await side_rows(page, "bid"))[0]
        assert re.fullmatch(r"[\d,]+\.\d{2}", price) and re.fullmatch(r"\d+\.\d{4}", size)

        # The book changes within a few seconds.
        before = await page.inner_text("#book")
        await page.wait_for_function(
            "(before) => document.querySelector('#book').innerText !== before",
            arg=before,
            timeout=CHANGE_TIMEOUT_MS,
        )

        # Another market: its own book, with ETH-PERP's three size decimals; and back.
        await page.select_option("#market-select", label="ETH-PERP")
        await page.wait_for_function(
            "() => { const row = document.querySelector('#book .level.bid');"
            " return row !== null && /^\\d+\\.\\d{3}$/.test(row.children[1].textContent); }",
            timeout=BOOK_TIMEOUT_MS,
        )
        assert await page.inner_text('#ticker [data-field="symbol"]') == "ETH-PERP"
        await page.select_option("#market-select", label="BTC-PERP")
        await page.wait_for_function(
            "() => { const row = document.querySelector('#book .level.bid');"
            " return row !== null && /^\\d+\\.\\d{4}$/.test(row.children[1].textContent); }",
            timeout=BOOK_TIMEOUT_MS,
        )

        # The trade tape and the ticker fill.
        await page.wait_for_selector("#trades tr.trade", timeout=CHANGE_TIMEOUT_MS)
        trade = await page.locator("#trades tr.trade").first.inner_text()
        assert re.search(r"\d\d:\d\d:\d\d\s+(Buy|Sell)\s+[\d,]+\.\d{2}\s+\d+\.\d{4}", trade), trade
        await page.wait_for_selector('#ticker[data-state="live"]', timeout=CHANGE_TIMEOUT_MS)
        for field in ("last_price", "mark_price", "index_price"):
            text = await page.inner_text(f'#ticker [data-field="{field}"]')
            assert NUMBER.match(text), (field, text)
        countdown = await page.inner_text('#ticker [data-field="next_funding"]')
        assert re.fullmatch(r"\d\d:\d\d:\d\d", countdown), countdown

        # A dropped /ws/public socket: the page reconnects and resumes every topic.
        seq_before = await page.evaluate("() => window.streamgateLive.book.seq")
        await page.evaluate("() => window.streamgateLive.pub.ws.close()")
        await page.wait_for_function(RESUMED_JS, arg=seq_before, timeout=BOOK_TIMEOUT_MS)
        ack = await page.evaluate("() => window.streamgateLive.pub.lastAck")
        assert sorted(ack["recovered"]) == sorted(ack["args"]), ack
        assert all(ack["recovered"].values()), ack
        assert await page.evaluate("() => window.streamgateLive.book.resyncs") == 0
        await page.wait_for_selector('#ws-status[data-state="open"]')

        # A seq gap (the page's book is made to lag): it re-subscribes for a fresh snapshot.
        await page.evaluate("() => { window.streamgateLive.book.seq -= 3; }")
        await page.wait_for_function(
            "() => window.streamgateLive.book.resyncs === 1"
            " && !window.streamgateLive.book.awaiting",
            timeout=CHANGE_TIMEOUT_MS,
        )
        meta = await page.inner_text("#book-meta")
        assert re.fullmatch(r"seq \d+ · 1 resync", meta), meta
        await page.wait_for_selector('#book[data-state="live"]')

        # Push panel: a ticket for alice, the connected frame, then events.
        users = await page.eval_on_selector_all(
            "#push-user option", "(nodes) => nodes.map((n) => n.value)"
        )
        assert "alice" in users, users
        await page.select_option("#push-user", "alice")
        await page.click("#push-connect")
        await page.wait_for_selector('#push-log [data-event="connected"]')
        log = await page.evaluate(PUSH_LOG_JS)
        assert log[-1] == ["connected", "userId alice"], log  # first in, so at the bottom
        try:
            await page.wait_for_function(PUSH_EVENT_JS, timeout=PUSH_NATURAL_MS, polling=100)
        except Error:  # the simulator was slow this time: publish one event ourselves
            notice = {"severity": "info", "message": "hello from the live page test"}
            await publish_ok(
                gw,
                [{"event": "system.notice", "tenant": "demo", "sub_user": "alice", "data": notice}],
            )
            await page.wait_for_function(PUSH_EVENT_JS, timeout=PUSH_TIMEOUT_MS, polling=100)
        log = await page.evaluate(PUSH_LOG_JS)
        assert log[-1] == ["connected", "userId alice"], log  # oldest last: newest first
        event, summary = log[0]
        assert re.fullmatch(r"(deposit|trade)\.[a-z]+|system\.notice", event), log
        assert summary.strip(), log
        assert await page.inner_text("#push-status") == "live · alice"

        # Gateway figures: this page's sockets and the venue's publishing.
        await page.wait_for_function(
            "() => Number(document.querySelector('[data-stat=public]').textContent) >= 1"
            " && Number(document.querySelector('[data-stat=push]').textContent) >= 1"
            " && parseFloat(document.querySelector('[data-stat=published_per_s]')"
            ".textContent.replace(/,/g, '')) > 0",
        )

        # Disconnect, then connect again: the page resumes alice's stream where it was.
        await page.click("#push-disconnect")
        await page.wait_for_selector('#push-status[data-state="idle"]')
        await page.click("#push-connect")
        await page.wait_for_selector('#push-status[data-state="open"]')
        log = await page.evaluate(PUSH_LOG_JS)
        connected = [summary for event, summary in log if event == "connected"]
        assert connected == ["userId alice · recovered true", "userId alice"], log

        # Another sub-user while connected: the socket moves over to bob, with a new log.
        await page.select_option("#push-user", "bob")
        await page.wait_for_selector("#push-status >> text=live · bob")
        log = await page.evaluate(PUSH_LOG_JS)
        assert log[-1] == ["connected", "userId bob"], log
        assert all(event != "connected" for event, _summary in log[:-1]), log

        # bob's events reach the new socket (one published here, so the wait is bounded by
        # the gateway, not by the simulator's dice), and the tape has filled.
        notice = {"severity": "warning", "message": "bob, your withdrawal limit changed"}
        await publish_ok(
            gw, [{"event": "system.notice", "tenant": "demo", "sub_user": "bob", "data": notice}]
        )
        await page.wait_for_function(
            "() => Array.from(document.querySelectorAll('#push-log .summary-text'))"
            ".some((node) => node.textContent === 'bob, your withdrawal limit changed')",
            timeout=PUSH_TIMEOUT_MS,
            polling=100,
        )
        # The tape fills at the simulated takers' pace (about one trade a second per market,
        # slower on a loaded machine): a few rows, with time to spare, for the screenshot.
        await page.wait_for_function(
            "() => document.querySelectorAll('#trades tr.trade').length >= 3",
            timeout=BOOK_TIMEOUT_MS,
            polling=100,
        )
        await screenshot(page, "live-page.png")
        assert errors == [], errors


async def publish_book(gw: Gateway, market: str, data: dict[str, Any]) -> None:
    await publish_ok(gw, [{"topic": f"orderbook/{market}", "data": data}])


async def test_live_page_without_demo_follows_published_book(
    tmp_path: Path, browser_page: Page
) -> None:
    page = browser_page
    errors = collect_page_errors(page)
    market = "0x" + "ab" * 32
    async with running_gateway(tmp_path) as gw:
        snapshot = {
            "type": "orderbook_snapshot",
            "seq": 1,
            "asks": [[101, 5], [102, 7]],
            "bids": [[98, 4], [99, 3]],
        }
        await publish_book(gw, market, snapshot)
        await open_live_page(page, gw)

        # No /demo/info here: the markets come from /api/v1/markets, tickets are pasted.
        await page.wait_for_selector("#book .level.bid")
        assert await side_prices(page, "ask") == [102, 101]
        assert await side_prices(page, "bid") == [99, 98]
        assert await side_rows(page, "ask") == [["102", "7", "12"], ["101", "5", "5"]]
        assert await page.is_visible("#push-token")
        assert not await page.is_visible("#push-user")

        # Deltas: size 0 deletes a level, any other size sets it.
        delta = {"type": "orderbook_delta", "seq": 2, "asks": [[101, 0], [103, 2]], "bids": []}
        await publish_book(gw, market, delta)
        delta = {"type": "orderbook_delta", "seq": 3, "asks": [], "bids": [[100, 1], [98, 6]]}
        await publish_book(gw, market, delta)
        await page.wait_for_function(
            "() => document.querySelector('#book .level.bid').dataset.price === '100'"
        )
        assert await side_prices(page, "ask") == [103, 102]
        assert await side_rows(page, "bid") == [
            ["100", "1", "1"],
            ["99", "3", "4"],
            ["98", "6", "10"],
        ]
        assert await page.inner_text("#book-meta") == "seq 3"

        # A fresh snapshot from the producer replaces the book.
        snapshot = {"type": "orderbook_snapshot", "seq": 10, "asks": [[110, 1]], "bids": [[90, 1]]}
        await publish_book(gw, market, snapshot)
        await page.wait_for_function(
            "() => document.querySelector('#book-meta').textContent === 'seq 10'"
        )
        assert await side_prices(page, "ask") == [110]
        assert await side_prices(page, "bid") == [90]
        await screenshot(page, "live-page-no-demo.png")
        assert errors == [], errors


TAPE_JS = """
() => Array.from(document.querySelectorAll("#trades tr.trade")).map((row) => row.innerText)
"""


async def test_the_trade_tape_starts_from_recent_trades_then_goes_live(
    tmp_path: Path, browser_page: Page
) -> None:
    """The tape shows the trades made before the page opened, then new ones, each once."""
    page = browser_page
    errors = collect_page_errors(page)
    market = "0x" + "cd" * 32
    async with running_gateway(tmp_path) as gw:
        await publish_book(
            gw,
            market,
            {"type": "orderbook_snapshot", "seq": 1, "asks": [[105, 1]], "bids": [[95, 1]]},
        )
        earlier = [
            {
                "topic": f"trade/{market}",
                "data": {
                    "seq": n,
                    "trades": [
                        {"id": f"t{n}", "side": "buy", "price": 100 + n, "size": n, "seq": n}
                    ],
                },
            }
            for n in (1, 2, 3)
        ]
        await publish_ok(gw, earlier)
        await open_live_page(page, gw)
        await page.wait_for_function(
            "() => document.querySelectorAll('#trades tr.trade').length === 3"
        )
        tape = await page.evaluate(TAPE_JS)
        assert [row.split()[-2:] for row in tape] == [["103", "3"], ["102", "2"], ["101", "1"]], (
            tape
        )
        assert not await page.is_visible(".tape-empty")
        later = {
            "topic": f"trade/{market}",
            "data": {
                "seq": 4,
                "trades": [{"id": "t4", "side": "sell", "price": 99, "size": 4, "seq": 4}],
            },
        }
        await publish_ok(gw, [later])
        await page.wait_for_function(
            "() => document.querySelectorAll('#trades tr.trade').length === 4"
        )
        tape = await page.evaluate(TAPE_JS)
        assert [row.split()[-2:] for row in tape] == [
            ["99", "4"],
            ["103", "3"],
            ["102", "2"],
            ["101", "1"],
        ], tape
        await screenshot(page, "live-page-tape-from-history.png")
        assert errors == [], errors
