"""The README's SDK example, run as written against ``streamgate serve --demo``.

Only the port changes (the README says 8080; the demo listens on a free one). The
example prints the book after each event for five seconds (seq, best bid, best ask,
spread): the lines must parse, the seqs rise, and the spread is ask minus bid.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import UNIT

ROOT = Path(__file__).resolve().parents[3]
LEVEL = r"(?:\((\d+), \d+\)|None)"  # (price, size), or None while that side is empty
LINE = re.compile(rf"^(\d+) {LEVEL} {LEVEL} (-?\d+|None)$")


def sdk_block() -> str:
    """The shell block of the README's "SDK" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## SDK\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the SDK section has no sh block"
    return match.group(1)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMGATE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamgate", "serve", "--demo", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("streamgate listening on http://127.0.0.1:"), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10 * UNIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_sdk_example_watches_the_demo_book(demo: int, tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    script = sdk_block().replace("127.0.0.1:8080", f"127.0.0.1:{demo}")
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
