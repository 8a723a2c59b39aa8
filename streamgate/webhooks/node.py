"""The name a node leases webhook deliveries under, stable across restarts.

A node that is killed holds leases on the deliveries it had in flight. Restarted under a
fresh name, it would wait like everyone else for them to expire; restarted under its old
name, it knows that no attempt of that name is in flight any more and takes them back at
once (:meth:`~streamgate.webhooks.store.WebhookStore.release_leases`).

The name is ``node_name`` when one is configured (it must then be unique among the
running nodes), else a random name kept in ``data_dir/webhooks-node-<worker>``, one file
per worker index of ``serve --workers N``. The file is locked (``flock``) while its node
runs, so a second process on the same ``data_dir`` and worker index (which would take
back leases of a live node) gets a name of its own for this run instead, and takes back
nothing. The kernel drops the lock when the process dies, kill -9 included.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from streamgate.errors import ConfigError

__all__ = ["FILE_PREFIX", "LeaseName", "hold_lease_name"]

FILE_PREFIX: Final = "webhooks-node-"
_MAX_NAME: Final = 200

log = logging.getLogger("streamgate.webhooks")


@dataclass(eq=False, slots=True, weakref_slot=True)
class LeaseName:
    """A node's lease name; ``stable``: earlier runs used it, so take their leases back."""

    name: str
    stable: bool
    _fd: int | None = field(default=None, repr=False)
    _finalizer: weakref.finalize | None = field(default=None, repr=False)  # type: ignore[type-arg]

    def __post_init__(self) -> None:
        if self._fd is not None:
            self._finalizer = weakref.finalize(self, os.close, self._fd)

    def close(self) -> None:
        """Let another process use the name (it is free anyway once this one exits)."""
        if self._finalizer is not None:
            self._finalizer()


def _one_off() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def hold_lease_name(data_dir: Path, *, worker: int = 0, name: str = "") -> LeaseName:
    """This node's lease name (module docstring).

    Raises:
        ConfigError: the name file cannot be made or read.
    """
    if name:
        return LeaseName(name if worker == 0 else f"{name}-w{worker}", stable=True)
    path = data_dir / f"{FILE_PREFIX}{worker}"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot keep the webhook node name in {path}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        one_off = _one_off()
        log.warning("! %s is held by a running node; leasing as %s for this run", path, one_off)
        return LeaseName(one_off, stable=False)
    try:
        kept = os.read(fd, _MAX_NAME + 1).decode("ascii", "replace").strip()
        if not kept or len(kept) > _MAX_NAME or not kept.isprintable():
            kept = f"{socket.gethostname()}-{secrets.token_hex(4)}"[:_MAX_NAME]
            os.ftruncate(fd, 0)
            os.pwrite(fd, kept.encode("ascii", "replace") + b"\n", 0)
            os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        raise ConfigError(f"cannot keep the webhook node name in {path}: {exc}") from None
    return LeaseName(kept, stable=True, _fd=fd)
