"""The README's "Try it" example, run as written against ``streamgate serve --demo``.

Only the port is changed (the README says 8080; the test's gateway listens on a free one),
and the commands run in a folder holding the gateway's ``data`` and a link to the
project's ``.venv``, as they would beside a checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import UNIT

ROOT = Path(__file__).resolve().parents[2]


def try_it_block() -> str:
    """The shell block of the README's "Try it" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Try it\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the Try it section has no sh block"
    return match.group(1)


def json_objects(text: str) -> list[Any]:
    """Every top-level JSON object in ``text``: the watcher and curl share one stdout, so a
    line of one can land between the bytes of a line of the other."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) != -1:
        try:
            obj, at = decoder.raw_decode(text, start)
        except ValueError:
            at = start + 1
            continue
        found.append(obj)
    return found


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[int]:
    """``streamgate serve --demo`` in ``tmp_path`` (its data under ``tmp_path/data``)."""
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


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's example uses curl")
def test_the_watch_example_shows_the_publish_example_and_the_demo_market(
    demo: int, tmp_path: Path
) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    script = try_it_block().replace("127.0.0.1:8080", f"127.0.0.1:{demo}")
    done = subprocess.run(
        [shutil.which("bash") or "/bin/bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30 * UNIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = json_objects(done.stdout)
    ack = next(m for m in lines if m.get("op") == "subscribed")
    market = ack["args"][0].split("/", 1)[1]
    assert ack["args"] == [f"orderbook/{market}", f"trade/{market}", f"ticker/{market}"]
    assert {"accepted": 1, "duplicates": 0} in lines  # the publish example's answer
    events = [m for m in lines if m.get("op") == "event"]
    assert {m["topic"] for m in events} >= {f"orderbook/{market}", f"trade/{market}"}
    ours = [
        m
        for m in events
        if m["topic"] == f"trade/{market}" and m["data"]["trades"][0]["id"] == "t1"
    ]
    assert len(ours) == 1, "the watcher did not show the published trade"
