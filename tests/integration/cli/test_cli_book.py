"""``streamgate book`` in a real terminal, on the demo venue's live book.

tmux renders the screen as a person sees it (rows redrawn in place); pexpect reads the
raw pty stream (the frames one after another) where tmux is not installed.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from streamgate.client.book import watch_book
from streamgate.client.stream import StreamClient
from streamgate.venue.runner import DEMO_MARKETS

from .helpers import ROOT, clean_env, demo_gateway
from support import UNIT

BTC = DEMO_MARKETS[0].market_addr

# The demo's markets are not configured, so the gateway lists no decimals: the book shows
# the wire's integers (cents of a dollar for BTC-PERP), grouped by thousands.
ROW = re.compile(r"^\s*(ask|bid)\s+([\d,]+)\s+([\d,]+)\s*$")
SPREAD = re.compile(r"^\s*spread\s+([\d,]+)\s*$")
SEQ = re.compile(r"seq (\d+)\s+resyncs (\d+)")


class Terminal:
    """A tmux server of this test's own (its own socket), one 100x40 window."""

    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]

    def run(self, command: str) -> None:
        subprocess.run(
            [*self.base, "new-session", "-d", "-x", "100", "-y", "40", command],
            check=True,
            env=clean_env(TERM="xterm-256color"),
        )
        # keep the pane when the command ends, to read its last screen
        subprocess.run([*self.base, "set-option", "-g", "remain-on-exit", "on"], check=True)

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", *keys], check=True)

    def running(self) -> bool:
        done = subprocess.run(
            [*self.base, "display-message", "-p", "#{pane_dead}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.strip() == "0"

    def screen(self) -> str:
        done = subprocess.run(
            [*self.base, "capture-pane", "-p"], capture_output=True, text=True, check=False
        )
        return done.stdout

    def stop(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, check=False)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(f"streamgate-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        yield term
    finally:
        term.stop()


Levels = list[tuple[int, int]]


def figures(screen: str) -> tuple[Levels, Levels, int, int] | None:
    """Asks and bids (price, size) as shown, the spread and seq; None: not drawn yet."""
    asks: Levels = []
    bids: Levels = []
    spread, seq = None, None
    for line in screen.splitlines():
        if row := ROW.match(line):
            level = (int(row.group(2).replace(",", "")), int(row.group(3).replace(",", "")))
            (asks if row.group(1) == "ask" else bids).append(level)
        elif found := SPREAD.match(line):
            spread = int(found.group(1).replace(",", ""))
        elif found := SEQ.search(line):
            seq = int(found.group(1))
    if not asks or not bids or spread is None or seq is None:
        return None
    return asks, bids, spread, seq


async def drawn(
    terminal: Terminal, after_seq: int = -1
) -> tuple[str, tuple[Levels, Levels, int, int]]:
    deadline = time.monotonic() + 20 * UNIT
    while time.monotonic() < deadline:
        screen = await asyncio.to_thread(terminal.screen)
        found = figures(screen)
        if found is not None and found[3] > after_seq:
            return screen, found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no book drawn past seq {after_seq}:\n{screen}")


async def record_books(port: int, into: dict[int, tuple[Levels, Levels]]) -> None:
    """The SDK's own view of the book: top five levels a side at every seq."""
    client = StreamClient(f"ws://127.0.0.1:{port}/ws/public")
    await client.connect()
    try:
        async for book in watch_book(client, BTC):
            into[book.seq] = (book.asks(5), book.bids(5))
    finally:
        await client.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (the pexpect test runs)")
async def test_book_shows_the_demo_market_live_and_redraws_in_place(
    tmp_path: Path, terminal: Terminal
) -> None:
    async with demo_gateway(tmp_path) as port:
        books: dict[int, tuple[Levels, Levels]] = {}
        recorder = asyncio.create_task(record_books(port, books))
        try:
            argv = [sys.executable, "-m", "streamgate", "book", "BTC-PERP", "--depth", "5"]
            argv += ["--url", f"http://127.0.0.1:{port}", "--seconds", str(60 * UNIT)]
            # The exit status through a file: tmux may see the pty close before the exit,
            # and then shows no status.
            status_file = tmp_path / "status"
            command = (
                f"cd {shlex.quote(str(ROOT))} && {shlex.join(argv)};"
                f" echo $? > {shlex.quote(str(status_file))}"
            )
            await asyncio.to_thread(terminal.run, command)
            screen, (asks, bids, spread, seq) = await drawn(terminal)
            assert "BTC-PERP  order book" in screen
            assert 1 <= len(asks) <= 5 and 1 <= len(bids) <= 5  # a thin book shows fewer
            # asks above (highest first, best nearest the spread), bids below (best first)
            assert asks == sorted(asks, reverse=True) and bids == sorted(bids, reverse=True)
            assert spread == asks[-1][0] - bids[0][0] > 0
            # the demo's BTC-PERP starts at 65,000.00 (6,500,000 cents) and walks slowly
            assert 5_000_000 < bids[0][0] < asks[-1][0] < 8_000_000
            later, (asks2, bids2, _, next_seq) = await drawn(terminal, after_seq=seq)
            assert next_seq > seq
            # redrawn in place: one title on the screen, never a scrolling log of books
            assert later.count("order book") == 1
            assert "Traceback" not in later
            # the figures are the gateway's book at that seq, as the SDK's own book has it
            for _ in range(50):  # the first draw the recorder also saw
                if next_seq in books:
                    break
                later, (asks2, bids2, _, next_seq) = await drawn(terminal, after_seq=next_seq)
            assert (list(reversed(asks2)), bids2) == books[next_seq]
            trade = re.compile(r"last trade: (buy|sell) [\d,]+ @ [\d,]+ at ")
            deadline = time.monotonic() + 20 * UNIT
            while not trade.search(later) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                later = await asyncio.to_thread(terminal.screen)
            assert trade.search(later), later
            # Ctrl-C: a quiet end (130), the terminal left readable, no traceback
            await asyncio.to_thread(terminal.keys, "C-c")
            deadline = time.monotonic() + 20 * UNIT
            while await asyncio.to_thread(terminal.running) or not status_file.exists():
                assert time.monotonic() < deadline, "book did not stop on Ctrl-C"
                await asyncio.sleep(0.1)
            assert status_file.read_text().strip() == "130"
            assert "Traceback" not in await asyncio.to_thread(terminal.screen)
        finally:
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def frames(raw: str) -> list[str]:
    """The frames a Live view wrote, escapes removed: each starts at the title."""
    text = ANSI.sub("", raw)
    return ["BTC-PERP  order book" + part for part in text.split("BTC-PERP  order book")[1:]]


async def test_book_in_a_pty_under_pexpect(tmp_path: Path) -> None:
    async with demo_gateway(tmp_path) as port:
        books: dict[int, tuple[Levels, Levels]] = {}
        recorder = asyncio.create_task(record_books(port, books))
        argv = ["-m", "streamgate", "book", "BTC-PERP", "--depth", "5"]
        argv += ["--url", f"http://127.0.0.1:{port}", "--seconds", str(60 * UNIT)]

        def run() -> tuple[str, int | None]:
            child = pexpect.spawn(
                sys.executable,
                argv,
                cwd=str(ROOT),
                env=clean_env(TERM="xterm-256color"),
                encoding="utf-8",
                dimensions=(40, 100),
                timeout=20 * UNIT,
            )
            seen = io.StringIO()
            child.logfile_read = seen
            for _ in range(5):  # five frames drawn, one after another
                child.expect(r"seq \d+  resyncs \d+")
            child.sendintr()  # Ctrl-C
            child.expect(pexpect.EOF)
            child.close()
            return seen.getvalue(), child.exitstatus

        try:
            raw, status = await asyncio.to_thread(run)
        finally:
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
    assert status == 130 and "Traceback" not in raw
    drawn = [f for frame in frames(raw) if (f := figures(frame)) is not None]
    assert len(drawn) >= 5
    seqs = [seq for _, _, _, seq in drawn]
    assert seqs == sorted(seqs) and seqs[-1] > seqs[0]  # redrawn as the book moves
    checked = 0
    for asks, bids, spread, seq in drawn:
        assert 1 <= len(asks) <= 5 and 1 <= len(bids) <= 5  # a thin book shows fewer
        assert spread == asks[-1][0] - bids[0][0] > 0
        if seq in books:  # the gateway's book at that seq, as the SDK's own book has it
            assert (list(reversed(asks)), bids) == books[seq]
            checked += 1
    assert checked >= 1, (seqs, sorted(books)[:3])
