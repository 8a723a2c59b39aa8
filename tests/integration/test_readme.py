"""The README's "Try it" example, run as written against ``streamgate serve --demo``.

Only the port is changed (the README says 8080; the test's gateway listens on a free one),
and the commands run in a folder holding the gateway's ``data`` and a link to the
project's ``.venv``, as they would beside a checkout.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import UNIT
from support.readme import ROOT, demo_server, sh_block

EVENT_LINE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{3} (?P<topic>\S+) seq=(?P<seq>\d+|-) offset=\d+ (?P<gist>.*)$"
)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[int]:
    with demo_server(tmp_path) as port:
        yield port


def test_the_watch_example_shows_the_publish_example_and_the_demo_market(
    demo: int, tmp_path: Path
) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    script = sh_block("Try it").replace("127.0.0.1:8080", f"127.0.0.1:{demo}")
    done = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30 * UNIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    # the watcher said what it subscribed (by symbol) ...
    assert "-- subscribed: orderbook/BTC-PERP, trade/BTC-PERP, ticker/BTC-PERP" in done.stderr
    lines = done.stdout.splitlines()
    # ... the publish example's answer ...
    assert "published 1 event: 1 accepted, 0 duplicates" in lines
    # ... and a line per event: time, topic, seq, offset, gist; the book first, as a snapshot
    shown = [m for line in lines if (m := EVENT_LINE.match(line))]
    assert shown, done.stdout
    topics = [m.group("topic") for m in shown]
    assert {"orderbook/BTC-PERP", "trade/BTC-PERP"} <= set(topics)
    first_book = next(m for m in shown if m.group("topic") == "orderbook/BTC-PERP")
    assert first_book.group("gist").startswith("snapshot: ")
    # the demo trades in lots of 10: a size of 5 at seq 1 is the README's trade alone
    ours = [
        m
        for m in shown
        if m.group("topic") == "trade/BTC-PERP"
        and m.group("seq") == "1"
        and m.group("gist") == "buy 5 @ 6500000"
    ]
    assert len(ours) == 1, "the watcher did not show the published trade"
