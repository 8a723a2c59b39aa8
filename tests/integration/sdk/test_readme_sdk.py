"""The README's SDK example, run as written against ``streamgate serve --demo``.

Only the port changes (the README says 8080; the demo listens on a free one). The
example prints the book after each event for five seconds (seq, best bid, best ask,
spread): the lines must parse, the seqs rise, and the spread is ask minus bid.
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

LEVEL = r"(?:\((\d+), \d+\)|None)"  # (price, size), or None while that side is empty
LINE = re.compile(rf"^(\d+) {LEVEL} {LEVEL} (-?\d+|None)$")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[int]:
    with demo_server(tmp_path) as port:
        yield port


def test_the_sdk_example_watches_the_demo_book(demo: int, tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    script = sh_block("SDK").replace("127.0.0.1:8080", f"127.0.0.1:{demo}")
    done = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30 * UNIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines, done.stderr
    rows = [LINE.match(line) for line in lines]
    assert all(rows), lines[:5]
    seqs = [int(m.group(1)) for m in rows if m]
    assert seqs == sorted(seqs)  # one book, in order
    full = [m for m in rows if m and m.group(2) and m.group(3)]
    assert full, lines[-5:]  # the market makers quote both sides within five seconds
    for m in full:
        assert int(m.group(4)) == int(m.group(3)) - int(m.group(2))  # spread = ask - bid
