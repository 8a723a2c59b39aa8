"""A real headless Chromium for the browser tests, driven by Playwright.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``, or
``STREAMGATE_CHROMIUM``), never one Playwright downloads: Playwright only drives it,
through ``executable_path``. Where that browser is not installed the tests skip and say
so; ``.ci/run`` installs it when it runs as root with apt-get. A browser that is there but
does not start is a failure, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, Error, Page, async_playwright

from support import UNIT

CHROMIUM = Path(os.environ.get("STREAMGATE_CHROMIUM", "/usr/bin/chromium"))

# The flags the machine's notes say Chromium needs here: root (no sandbox), no screen or
# GPU, and nothing that reaches out to the (closed) network on its own.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

LAUNCH_TIMEOUT_MS = 20_000 * UNIT  # a cold first start on two shared cores
ACTION_TIMEOUT_MS = 5_000 * UNIT  # every navigation, evaluation and wait in a test


def chromium_missing() -> str | None:
    """Why there is no browser to test with, or None when there is one."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        return (
            f"no Chromium at {CHROMIUM}: Debian's 'chromium' package is not installed "
            "(.ci/run installs it when run as root with apt-get; "
            "or `apt-get install chromium`, or set STREAMGATE_CHROMIUM)"
        )
    return None


@pytest.fixture
async def browser_page(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Page]:
    """A blank page in a new headless Chromium with a new, empty profile."""
    reason = chromium_missing()
    if reason is not None:
        pytest.skip(reason)
    profile = tmp_path_factory.mktemp("chromium-profile")
    async with async_playwright() as pw:
        try:
            context = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                timeout=LAUNCH_TIMEOUT_MS,
                viewport={"width": 900, "height": 600},
            )
        except Error as exc:
            pytest.fail(f"{CHROMIUM} is installed but did not start under Playwright: {exc}")
        try:
            context.set_default_timeout(ACTION_TIMEOUT_MS)
            context.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
            tab = context.pages[0] if context.pages else await context.new_page()

            def console(msg: ConsoleMessage) -> None:  # shown by pytest when a test fails
                print(f"[browser console.{msg.type}] {msg.text}")

            def page_error(exc: Error) -> None:
                print(f"[browser page error] {exc}")

            tab.on("console", console)
            tab.on("pageerror", page_error)
            yield tab
        finally:
            await context.close()
