"""Connection admission: a total cap and a per-address cap over HTTP and WebSocket sockets.

Every TCP connection takes a slot when it is accepted (:meth:`ConnectionLimits.admit`)
and gives it back when it closes (:meth:`ConnectionLimits.release`), whether it stayed
HTTP or became a WebSocket. Past either cap the connection is answered 503 and closed at
once: the listener keeps accepting, so one address holding its cap never starves others.

The total cap defaults to the open-file limit less a reserve for the gateway's own files
(databases, broker and webhook connections, logs); :func:`raise_open_file_limit` first
raises the limit (the hard one too, when the process may), as nginx
(``worker_rlimit_nofile``) and HAProxy do.
"""

from __future__ import annotations

import logging
import resource
from typing import Final

__all__ = [
    "MIN_RESERVED_FILES",
    "ConnectionLimits",
    "connection_cap",
    "raise_open_file_limit",
]

log = logging.getLogger("streamgate.admission")

MIN_RESERVED_FILES: Final = 128  # files kept for the gateway's own use, at least
UNLIMITED_FILES: Final = 1 << 20  # what an RLIM_INFINITY limit counts as


def raise_open_file_limit(want: int | None = None) -> int:
    """Raise RLIMIT_NOFILE toward ``want``; return the soft limit now.

    ``want`` defaults to the kernel's ``fs.nr_open`` (at most :data:`UNLIMITED_FILES`).
    Both limits are raised to it when the process may (root, or ``CAP_SYS_RESOURCE``);
    otherwise the soft limit is raised to the hard one and the log says how to raise
    the hard limit (a node holding 100,000 sockets needs more than the usual 1,024 or
    65,536).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return UNLIMITED_FILES
    if want is None:
        want = _kernel_file_cap()
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            log.info(
                "= open files: the hard limit is %d (raise it with `ulimit -Hn %d` or "
                "systemd's LimitNOFILE=%d for more connections)",
                hard,
                want,
                want,
            )
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("! cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft


def _kernel_file_cap() -> int:
    """The most files one process may be allowed (``fs.nr_open``), within UNLIMITED_FILES."""
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return min(int(f.read()), UNLIMITED_FILES)
    except (OSError, ValueError):
        return UNLIMITED_FILES


def connection_cap(configured: int, open_files: int) -> int:
    """The total connection cap: ``configured``, or with 0 what ``open_files`` allows.

    The automatic cap leaves a tenth of the files (at least :data:`MIN_RESERVED_FILES`)
    for everything else the gateway opens, so the cap is reached before the file limit.
    """
    if configured > 0:
        return configured
    reserve = max(MIN_RESERVED_FILES, open_files // 10)
    return max(1, open_files - reserve)


class ConnectionLimits:
    """Counts open connections, in total and per client address.

    ``per_ip`` 0 means no per-address cap; otherwise the effective per-address cap is at
    most half the total, so that one address can never take every slot.
    """

    __slots__ = ("by_ip", "open", "per_ip", "refused", "total")

    def __init__(self, *, total: int, per_ip: int) -> None:
        self.total = total
        self.per_ip = per_ip
        self.open = 0
        self.refused = 0
        self.by_ip: dict[str, int] = {}

    @property
    def per_ip_cap(self) -> int:
        """The cap one address meets (0: none)."""
        if self.per_ip <= 0:
            return 0
        return max(1, min(self.per_ip, self.total // 2))

    def admit(self, ip: str) -> str | None:
        """Take a slot for a connection from ``ip``; return None, or why it is refused."""
        if self.open >= self.total:
            self.refused += 1
            return "the gateway is at its connection limit"
        count = self.by_ip.get(ip, 0)
        cap = self.per_ip_cap
        if cap and count >= cap:
            self.refused += 1
            return "too many connections from this address"
        self.open += 1
        self.by_ip[ip] = count + 1
        return None

    def release(self, ip: str) -> None:
        """Give back the slot of a connection from ``ip`` (admitted before)."""
        count = self.by_ip.get(ip, 0)
        if count <= 0:
            return
        self.open -= 1
        if count == 1:
            del self.by_ip[ip]
        else:
            self.by_ip[ip] = count - 1
