"""A real TCP proxy on 127.0.0.1 in front of a gateway that can lose answers.

It forwards bytes both ways. While ``drop_answers`` is above zero, the next answer from
the gateway (the first bytes of an HTTP response) is not forwarded: the client's
connection is cut instead, after the gateway has done the work. That is the failure a
retrying client must survive without doing the work twice.
"""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import suppress

__all__ = ["DroppingProxy"]

_STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")


class DroppingProxy:
    def __init__(self, upstream_port: int, *, drop_answers: int = 0) -> None:
        self.upstream_port = upstream_port
        self.drop_answers = drop_answers
        self.dropped = 0
        self.statuses: list[int] = []  # every response status the gateway sent, in order
        self.answered: list[tuple[float, int]] = []  # (time.monotonic(), status) of each
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    def cut(self) -> int:
        """Cut every connection open now (both sides); return how many were cut."""
        writers = list(self._writers)
        for writer in writers:
            writer.transport.abort()
        return len(writers) // 2

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # each connection's task then ends by itself
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        if self._server is not None:
            with suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            self._tasks.discard(task)
            return
        self._writers.update((writer, up_writer))
        pump = asyncio.create_task(self._pipe(reader, up_writer))
        try:
            while chunk := await up_reader.read(65536):
                found = [int(m.group(1)) for m in _STATUS.finditer(chunk)]
                self.statuses.extend(found)
                self.answered.extend((time.monotonic(), status) for status in found)
                if found and self.drop_answers > 0:
                    self.drop_answers -= 1
                    self.dropped += 1
                    writer.transport.abort()  # the gateway answered; the client never hears it
                    break
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            up_writer.close()
            writer.close()
            self._writers.difference_update((writer, up_writer))
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        with suppress(ConnectionError, OSError):
            writer.write_eof()
