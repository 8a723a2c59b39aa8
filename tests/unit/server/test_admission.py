"""Connection admission: the caps' arithmetic and the open-file limit."""

from __future__ import annotations

import resource

import pytest

from streamgate.server.admission import (
    MIN_RESERVED_FILES,
    ConnectionLimits,
    connection_cap,
    raise_open_file_limit,
)


def test_an_address_meets_its_cap_and_others_do_not() -> None:
    limits = ConnectionLimits(total=100, per_ip=2)
    assert [limits.admit("10.0.0.1") for _ in range(2)] == [None, None]
    assert limits.admit("10.0.0.1") == "too many connections from this address"
    assert limits.admit("10.0.0.2") is None
    assert (limits.open, limits.by_ip, limits.refused) == (3, {"10.0.0.1": 2, "10.0.0.2": 1}, 1)
    limits.release("10.0.0.1")
    assert limits.admit("10.0.0.1") is None


def test_the_total_cap_counts_every_address() -> None:
    limits = ConnectionLimits(total=4, per_ip=0)
    assert [limits.admit(f"10.0.0.{i}") for i in range(4)] == [None] * 4
    assert limits.admit("10.0.0.9") == "the gateway is at its connection limit"
    assert limits.refused == 1
    for i in range(4):
        limits.release(f"10.0.0.{i}")
    assert (limits.open, limits.by_ip) == (0, {})


def test_one_address_never_gets_more_than_half_the_total() -> None:
    assert ConnectionLimits(total=896, per_ip=2000).per_ip_cap == 448
    assert ConnectionLimits(total=10_000, per_ip=2000).per_ip_cap == 2000
    assert ConnectionLimits(total=1, per_ip=5).per_ip_cap == 1
    assert ConnectionLimits(total=896, per_ip=0).per_ip_cap == 0  # none


def test_a_release_without_an_admission_changes_nothing() -> None:
    limits = ConnectionLimits(total=4, per_ip=2)
    limits.release("10.0.0.1")
    assert (limits.open, limits.by_ip) == (0, {})


def test_the_automatic_cap_leaves_files_for_the_gateway() -> None:
    assert connection_cap(0, 1024) == 1024 - MIN_RESERVED_FILES
    assert connection_cap(0, 20_000) == 18_000
    assert connection_cap(0, 100) == 1
    assert connection_cap(500, 1024) == 500  # configured wins


def test_the_soft_file_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    try:
        # ``want`` at the hard limit: nothing above it is asked for.
        now = raise_open_file_limit(want=hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
        assert now == (hard if hard != resource.RLIM_INFINITY else 1 << 20)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_privileged_process_raises_its_hard_file_limit_too() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("the hard open-file limit is already infinite")
    want = hard + 1_000
    try:
        now = raise_open_file_limit(want=want)
        raised = resource.getrlimit(resource.RLIMIT_NOFILE)
        if _may_raise_hard_limits():
            assert now == want and raised == (want, want)
        else:  # not allowed: the soft limit goes to the hard one, no further
            assert now == hard and raised == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _may_raise_hard_limits() -> bool:
    """True with CAP_SYS_RESOURCE (bit 24 of the effective capabilities)."""
    with open("/proc/self/status", encoding="ascii") as f:
        caps = next(line for line in f if line.startswith("CapEff:"))
    return bool(int(caps.split()[1], 16) >> 24 & 1)
