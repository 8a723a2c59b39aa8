"""WriteQueue: a bytes-bounded outbound buffer."""

from __future__ import annotations

from streamgate.hub.queue import WriteQueue


def test_empty() -> None:
    q = WriteQueue(10)
    assert not q
    assert len(q) == 0
    assert q.size == 0
    assert q.drain() == b""


def test_drain_one_chunk_returns_the_same_object() -> None:
    q = WriteQueue(100)
    chunk = bytes(range(20))
    assert q.put(chunk)
    assert q and len(q) == 1 and q.size == 20
    assert q.drain() is chunk
    assert not q and q.size == 0 and len(q) == 0
    assert q.drain() == b""


def test_drain_joins_several_chunks_in_order() -> None:
    q = WriteQueue(100)
    for part in (b"ab", b"", b"cde", b"f"):
        assert q.put(part)
    assert len(q) == 4
    assert q.size == 6
    assert q.drain() == b"abcdef"
    assert not q and q.size == 0


def test_limit_refuses_without_queuing() -> None:
    q = WriteQueue(10)
    assert q.put(b"123456")
    assert q.put(b"7890")  # exactly the limit
    assert q.size == 10
    assert not q.put(b"x")
    assert q.size == 10 and len(q) == 2
    assert q.drain() == b"1234567890"
    assert q.put(b"0123456789")


def test_oversized_frame_into_empty_queue_is_refused() -> None:
    q = WriteQueue(4)
    assert not q.put(b"12345")
    assert not q
    assert q.size == 0
    assert q.drain() == b""


def test_clear() -> None:
    q = WriteQueue(10)
    q.put(b"abc")
    q.put(b"def")
    q.clear()
    assert not q and q.size == 0 and len(q) == 0
    assert q.drain() == b""
    assert q.put(b"0123456789")
