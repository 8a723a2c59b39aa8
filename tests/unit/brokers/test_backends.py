"""The backends a node is wired with: the memory path never loads redis (issue 12)."""

from __future__ import annotations

import subprocess
import sys

from support import UNIT

# A fresh interpreter: this test process may have imported redis for other tests.
_PROBE = """
import sys
from streamgate.brokers.backends import open_backends
from streamgate.config import Config
import streamgate.server.app  # everything a gateway process loads
backends = open_backends(Config(), "probe")
print(type(backends.presence).__name__, type(backends.idempotency).__name__)
print(sorted(m for m in sys.modules if m == "redis" or m.startswith("redis.")))
"""


def test_the_memory_backends_do_not_import_redis() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=30 * UNIT
    )
    assert done.returncode == 0, done.stderr
    kinds, loaded = done.stdout.splitlines()
    assert kinds == "MemoryPresence MemoryIdempotency"
    assert loaded == "[]"
