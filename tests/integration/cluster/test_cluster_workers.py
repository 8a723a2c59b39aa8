"""``serve --workers``: the workers share one port and stop together."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import (
    WAIT,
    Cluster,
    call,
    publish_ok,
    stream_feed,
    trade,
    trade_id,
    until,
)
from support.cluster import Node, listening_port

pytestmark = pytest.mark.redis


async def test_workers_serve_one_port_and_stop_together(cluster: Cluster) -> None:
    argv = [sys.executable, "-m", "streamgate", "serve", "--workers", "2"]
    argv += ["--host", "127.0.0.1", "--port", "0"]
    supervisor = cluster.procs.spawn("supervisor", argv, cluster.env())
    port = await listening_port(supervisor)
    line = f"streamgate listening on http://127.0.0.1:{port} (2 workers)\n"
    assert line in supervisor.out.read_text(), supervisor.tail()
    node = Node(supervisor, port)
    assert (await call(node, "GET", "/readyz")).json() == {"status": "ready"}
    topic = "trade/0xw0"
    feeds = [await stream_feed(node, [topic]) for _ in range(4)]  # one after the other
    assert await publish_ok(node, [trade("0xw0", "w1", 1)]) == {"accepted": 1, "duplicates": 0}
    for feed in feeds:
        await until(lambda f=feed: bool(f.events(topic)), "the trade")  # type: ignore[misc]
    assert {(trade_id(e), e["offset"], e["epoch"]) for f in feeds for e in f.events(topic)} == {
        ("w1", 1, feeds[0].events(topic)[0]["epoch"])
    }

    pgrep = shutil.which("pgrep")
    assert pgrep is not None
    argv = [pgrep, "-P", str(supervisor.popen.pid)]
    found = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=5)
    workers = [int(pid) for pid in found.stdout.split()]
    assert len(workers) == 2, found
    supervisor.popen.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(supervisor.popen.wait, WAIT) == 0
    for feed in feeds:
        await feed.wait_closed()
        assert (feed.close_code, feed.close_reason) == (1012, "Service restart")
    await until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), "every worker gone"
    )
