#!/usr/bin/env python3
"""Abuse figures, measured from outside: what a few hostile clients cost the gateway.

Starts one gateway (``python -m streamgate serve``) whose open-file limit is 1,024 soft and
hard, as on the machine issue 11 was filed from, and runs four abuses against it on
127.0.0.1, each bounded in count and time:

1. ``silent``: one address (127.0.0.1) holds N TCP connections and sends nothing;
2. ``heads``: N connections over four other addresses send half a request head and stall
   (this gateway runs with ``STREAMGATE_HTTP_HEADER_TIMEOUT=1``; unknown before the change,
   and then ignored);
3. ``bodies``: K clients without a producer key send most of an 8 MB publish and stall;
4. ``pings``: one WebSocket client that never reads sends M MB of pings.

For each it prints the gateway's RSS growth while the abuse is held, whether ``/healthz``
answered a client from 127.0.0.2 meanwhile, and what the abusers saw. Run it on a quiet
machine; the figures of a shared one vary.

    .venv/bin/python benchmarks/abuse.py [--silent 1100] [--heads 600] [--bodies 16] [--ping-mb 40]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

REPO = Path(__file__).resolve().parent.parent
NOFILE = 1024
HOLD = 1.0  # seconds an abuse is held before the figures are taken
STEP_TIMEOUT = 8.0  # no step of an abuse waits longer than this

Abuse = Callable[[int, int], Awaitable[None]]  # (port, gateway pid) -> figures printed


def log(msg: str) -> None:
    print(f"[abuse] {msg}", file=sys.stderr, flush=True)


def low_nofile() -> None:
    """preexec_fn: the open-file limit of the machine the issue was filed from."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), STEP_TIMEOUT
    )


async def healthz(port: int, source: str = "127.0.0.2") -> str:
    """``GET /healthz`` from ``source``: "200" or what went wrong."""
    try:
        reader, writer = await connect(port, source)
    except (OSError, TimeoutError) as exc:
        return f"no ({type(exc).__name__})"
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        head = await asyncio.wait_for(reader.read(4096), 2.0)
        return head.split(b" ", 2)[1].decode() if head else "no (closed)"
    except (OSError, TimeoutError, IndexError) as exc:
        return f"no ({type(exc).__name__})"
    finally:
        writer.transport.abort()


async def closed_by_server(conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]) -> int:
    """How many of ``conns`` the server has closed (EOF or reset) or answered."""

    async def closed(reader: asyncio.StreamReader) -> bool:
        try:
            await asyncio.wait_for(reader.read(65_536), 0.2)
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

    return sum(await asyncio.gather(*(closed(r) for r, _ in conns)))


async def hold_many(
    port: int, count: int, sources: list[str], send: bytes
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    conns = []
    for i in range(count):
        try:
            reader, writer = await connect(port, sources[i % len(sources)])
        except (OSError, TimeoutError):
            continue
        if send:
            writer.write(send)
        conns.append((reader, writer))
    return conns


def report(name: str, pid: int, before: float, **figures: object) -> None:
    grown = rss_mb(pid) - before
    extra = ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"{name:8s} rss_growth={grown:7.1f} MB  {extra}", flush=True)


async def abuse_silent(port: int, pid: int, count: int) -> None:
    before = rss_mb(pid)
    conns = await hold_many(port, count, ["127.0.0.1"], b"")
    await asyncio.sleep(HOLD)
    health = await healthz(port)
    refused = await closed_by_server(conns)
    report("silent", pid, before, held=len(conns), closed_by_server=refused, healthz=health)
    for _, writer in conns:
        writer.transport.abort()


async def abuse_heads(port: int, pid: int, count: int) -> None:
    before = rss_mb(pid)
    sources = [f"127.0.0.{i}" for i in range(3, 7)]
    head = b"POST /api/v1/publish HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    conns = await hold_many(port, count, sources, head)
    await asyncio.sleep(HOLD + 2.0)  # past a 1 s header timeout, with room for a busy box
    health = await healthz(port)
    closed = await closed_by_server(conns)
    report("heads", pid, before, held=len(conns), closed_by_server=closed, healthz=health)
    for _, writer in conns:
        writer.transport.abort()


async def abuse_bodies(port: int, pid: int, count: int) -> None:
    before = rss_mb(pid)
    size = 8_000_000
    body = memoryview(secrets.token_bytes(1 << 18) * (size // (1 << 18)))  # 7.9 MB sent
    head = (
        b"POST /api/v1/publish HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % size
    )

    async def one(source: str) -> tuple[int, bytes]:
        sent = 0
        reader, writer = await connect(port, source)
        writer.write(head)
        try:
            async with asyncio.timeout(STEP_TIMEOUT / 2):
                for start in range(0, len(body), 1 << 18):
                    writer.write(body[start : start + (1 << 18)])
                    await writer.drain()
                    sent += 1 << 18
        except (OSError, TimeoutError):
            pass
        answer = b""
        with contextlib.suppress(OSError, TimeoutError):
            answer = await asyncio.wait_for(reader.read(256), 0.5)
        held.append(writer)
        return sent, answer.split(b"\r\n", 1)[0]

    held: list[asyncio.StreamWriter] = []
    sources = [f"127.0.0.{i}" for i in range(3, 7)]
    results = await asyncio.gather(*(one(sources[i % 4]) for i in range(count)))
    await asyncio.sleep(HOLD)
    health = await healthz(port)
    mean_mb = sum(s for s, _ in results) / max(1, len(results)) / 1e6
    answers = sorted({a.decode() or "(none)" for _, a in results})
    report("bodies", pid, before, clients=count, mean_sent_mb=f"{mean_mb:.1f}",
           answers=answers, healthz=health)  # fmt: skip
    for writer in held:
        writer.transport.abort()


async def abuse_pings(port: int, pid: int, megabytes: int) -> None:
    before = rss_mb(pid)
    uri = parse_uri(f"ws://127.0.0.1:{port}/ws/public")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a peer that never reads
    sock.bind(("127.0.0.7", 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**16)
    client = ClientProtocol(uri, max_size=None)
    client.send_request(client.connect())
    writer.write(b"".join(client.data_to_send()))
    client.receive_data(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP_TIMEOUT))
    ping = Frame(Opcode.PING, b"p" * 125).serialize(mask=True, extensions=[])
    batch = ping * 1000
    sent = 0
    try:
        async with asyncio.timeout(STEP_TIMEOUT / 2):
            while sent < megabytes * 1_000_000:
                writer.write(batch)
                await writer.drain()
                sent += len(batch)
    except (OSError, TimeoutError):
        pass
    await asyncio.sleep(HOLD)
    health = await healthz(port)
    grown = rss_mb(pid) - before
    code = "open"
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(STEP_TIMEOUT / 2):
            while chunk := await reader.read(1 << 20):
                client.receive_data(chunk)
                for event in client.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                        code = f"closed {int.from_bytes(event.data[:2], 'big')}"
            code = code if code != "open" else "closed (no close frame)"
    print(f"pings    rss_growth={grown:7.1f} MB  sent_mb={sent / 1e6:.1f}, "
          f"connection={code}, healthz={health}", flush=True)  # fmt: skip
    writer.transport.abort()


async def ready(port: int, pid: int) -> None:
    deadline = time.monotonic() + 30
    while await healthz(port, "127.0.0.1") != "200":
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not answer /healthz within 30 s")
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # let its RSS settle after start-up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--silent", type=int, default=1100, help="silent connections")
    parser.add_argument("--heads", type=int, default=600, help="stalled request heads")
    parser.add_argument("--bodies", type=int, default=16, help="keyless 8 MB publishes")
    parser.add_argument("--ping-mb", type=int, default=40, help="megabytes of pings")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.silent + args.heads + args.bodies + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    print(f"one fresh gateway per abuse, RLIMIT_NOFILE {NOFILE}", flush=True)
    short_heads = {"STREAMGATE_HTTP_HEADER_TIMEOUT": "1"}
    abuses: list[tuple[Abuse, dict[str, str]]] = [
        (lambda port, pid: abuse_silent(port, pid, args.silent), {}),
        (lambda port, pid: abuse_heads(port, pid, args.heads), short_heads),
        (lambda port, pid: abuse_bodies(port, pid, args.bodies), {}),
        (lambda port, pid: abuse_pings(port, pid, args.ping_mb), {}),
    ]
    for abuse, settings in abuses:
        started = time.monotonic()
        with_gateway(abuse, settings)
        log(f"took {time.monotonic() - started:.1f} s")
    return 0


def with_gateway(abuse: Abuse, settings: dict[str, str]) -> None:
    """Run one abuse against a fresh gateway (with ``settings``); stop it (by PID) after."""

    async def run(port: int, pid: int) -> None:
        await ready(port, pid)
        await abuse(port, pid)

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sg-abuse-") as data:
        env = dict(os.environ)
        env.update(
            STREAMGATE_DATA_DIR=data,
            STREAMGATE_PRODUCER_KEY=secrets.token_hex(16),
            STREAMGATE_LOG_LEVEL="WARNING",
        )
        env.update(settings)
        cmd = [sys.executable, "-m", "streamgate", "serve", "--port", str(port)]
        with open(Path(data) / "gateway.log", "wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=low_nofile, start_new_session=True,
            )  # fmt: skip
        try:
            asyncio.run(asyncio.wait_for(run(port, proc.pid), 60))
        finally:
            proc.kill()  # its state is a temporary directory: nothing to drain
            proc.wait(5)
            for line in (Path(data) / "gateway.log").read_text(errors="replace").splitlines():
                if "Traceback" in line or "ERROR" in line:
                    log(f"gateway: {line}")


if __name__ == "__main__":
    sys.exit(main())
