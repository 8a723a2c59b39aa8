"""What the README tests share: a section's shell block and ``streamgate serve --demo``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support import UNIT

ROOT = Path(__file__).resolve().parents[2]


def sh_block(section: str) -> str:
    """The first ``sh`` block of the README's ``## <section>`` section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", body, re.DOTALL)
    assert match, f"the {section} section has no sh block"
    return match.group(1)


@contextmanager
def demo_server(cwd: Path) -> Iterator[int]:
    """``streamgate serve --demo --port 0`` in ``cwd`` (its data under ``cwd/data``),
    without the caller's STREAMGATE_ variables; yields its port, stops it after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMGATE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamgate", "serve", "--demo", "--port", "0"],
        cwd=cwd,
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
