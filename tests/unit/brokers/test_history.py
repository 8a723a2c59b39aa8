"""StreamHistory: offsets, epoch, and since() without gaps."""

from __future__ import annotations

from streamgate.brokers.history import StreamHistory, new_epoch
from streamgate.core.publication import Publication, StreamPosition

T0 = 1_700_000_000_000


def fill(history: StreamHistory, count: int, ts_ms: int = T0) -> list[Publication]:
    pubs = []
    for i in range(count):
        pub = Publication("trade/A", history.next_offset(), history.epoch, {"i": i}, ts_ms)
        history.append(pub)
        pubs.append(pub)
    return pubs


def test_new_epoch_is_random_hex() -> None:
    epochs = {new_epoch() for _ in range(50)}
    assert len(epochs) == 50
    for epoch in epochs:
        assert len(epoch) == 12
        int(epoch, 16)


def test_offsets_and_position() -> None:
    h = StreamHistory(10, 60.0, epoch="e1")
    assert h.epoch == "e1"
    assert h.position == StreamPosition(0, "e1")
    assert len(h) == 0
    pubs = fill(h, 3)
    assert [p.offset for p in pubs] == [1, 2, 3]
    assert h.top == 3
    assert h.position == StreamPosition(3, "e1")
    assert len(h) == 3


def test_fresh_epoch_when_none_given() -> None:
    a, b = StreamHistory(10, 60.0), StreamHistory(10, 60.0)
    assert a.epoch and b.epoch and a.epoch != b.epoch


def test_since_same_epoch() -> None:
    h = StreamHistory(10, 60.0, epoch="e")
    pubs = fill(h, 5)
    assert h.since(StreamPosition(0, "e"), T0) == pubs
    assert h.since(StreamPosition(2, "e"), T0) == pubs[2:]
    assert h.since(StreamPosition(4, "e"), T0) == pubs[4:]


def test_since_before_first_publication() -> None:
    h = StreamHistory(10, 60.0, epoch="e")
    assert h.since(StreamPosition(0, "e"), T0) == []
    assert h.since(StreamPosition(1, "e"), T0) is None


def test_since_other_epoch() -> None:
    h = StreamHistory(10, 60.0, epoch="e")
    fill(h, 5)
    assert h.since(StreamPosition(2, "other"), T0) is None
    assert h.since(StreamPosition(5, "other"), T0) is None
    assert h.since(StreamPosition(0, ""), T0) is None


def test_since_offset_from_the_future() -> None:
    h = StreamHistory(10, 60.0, epoch="e")
    fill(h, 5)
    assert h.since(StreamPosition(6, "e"), T0) is None
    assert h.since(StreamPosition(1_000, "e"), T0) is None


def test_since_top_is_empty() -> None:
    h = StreamHistory(10, 60.0, epoch="e")
    fill(h, 5)
    assert h.since(StreamPosition(5, "e"), T0) == []
    # Even when everything kept has expired: nothing was missed.
    assert h.since(StreamPosition(5, "e"), T0 + 3_600_000) == []


def test_since_evicted_by_size() -> None:
    h = StreamHistory(3, 60.0, epoch="e")
    pubs = fill(h, 6)  # keeps offsets 4, 5, 6
    assert len(h) == 3
    assert h.since(StreamPosition(0, "e"), T0) is None
    assert h.since(StreamPosition(2, "e"), T0) is None
    assert h.since(StreamPosition(3, "e"), T0) == pubs[3:]  # 4 is the oldest kept
    assert h.since(StreamPosition(5, "e"), T0) == pubs[5:]


def test_since_expired_by_ttl() -> None:
    h = StreamHistory(100, 10.0, epoch="e")
    old = fill(h, 3, ts_ms=T0)
    new = fill(h, 2, ts_ms=T0 + 5_000)
    assert h.since(StreamPosition(0, "e"), T0 + 10_000) == old + new  # exactly ttl old: kept
    assert h.since(StreamPosition(0, "e"), T0 + 10_001) is None  # offsets 1..3 expired
    assert len(h) == 2
    assert h.since(StreamPosition(3, "e"), T0 + 10_001) == new
    assert h.since(StreamPosition(3, "e"), T0 + 15_001) is None  # all expired


def test_expire() -> None:
    h = StreamHistory(100, 1.0, epoch="e")
    fill(h, 2, ts_ms=T0)
    fill(h, 1, ts_ms=T0 + 2_000)
    h.expire(T0 + 1_000)
    assert len(h) == 3
    h.expire(T0 + 2_000)
    assert len(h) == 1
    h.expire(T0 + 10_000)
    assert len(h) == 0
    assert h.top == 3  # offsets never go back
    assert h.next_offset() == 4
