"""Presence shared by every node on one Redis (the ``redis`` backend of ``Presence``).

:class:`RedisPresence` lets every gateway node sharing a Redis enforce the limits of
:class:`streamgate.brokers.presence.Presence` together. Its keys, all under ``prefix``:

- ``{prefix}node:{node}``: this node's liveness key (value ``1``), set with a PX expiry
  of ``ttl`` and refreshed every ``ttl / 3`` by a heartbeat task. A node whose key is
  gone is dead: its counts no longer count.
- ``{prefix}pres:{n}:{group}{member}``: a hash, node name -> sockets of ``member`` open
  on that node. ``n`` is the UTF-8 byte length of ``group``, so no two (group, member)
  pairs share a key.
- ``{prefix}grp:{group}``: a set of the members of ``group`` that may have a holder.

Each operation is one Lua script, so it is atomic across nodes. Every script sums a
member's counts only over nodes whose liveness key exists (this node always counts),
deleting the fields of dead nodes as it goes, and drops a member from its group's set
once no live node holds it: ``acquire`` refuses at the limit, else HINCRBYs this node's
field; ``release`` decrements (deleting the field at 0); ``members`` returns the
group's members still held by a live node. Keys of dead nodes are cleaned lazily, when
their member or group is next touched.

The node keeps its own counts locally too. When the heartbeat finds its liveness key
had vanished (Redis restarted without persistence, or the node was paused longer than
``ttl``), it writes all its local counts back in one script (per 500 members), so
presence heals itself. The same write-back repairs members whose Redis count became
uncertain: a script call that failed on the connection, a failed release, an acquire
whose caller was cancelled after Redis counted it. The heartbeat survives Redis being
down: it logs and retries next period.

Redis Cluster is not supported: the scripts touch keys they derive inside Lua (other
nodes' liveness keys, the members' hashes of a group).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

from redis.asyncio import Redis

from streamgate.brokers.presence import Presence
from streamgate.brokers.redis_connect import (
    REDIS_TIMEOUT,
    UNAVAILABLE_ERRORS,
    command_client,
    unavailable_on_error,
)
from streamgate.errors import BrokerUnavailable

__all__ = ["RedisPresence"]

log = logging.getLogger("streamgate.presence")

_SYNC_BATCH = 500  # members written back per script call

_T = TypeVar("_T")


# Shared by every script: the sockets of one member on live nodes. ``me`` always counts
# (it is running this); the fields of nodes without a liveness key are deleted.
_LIVE = """
local function live(hash, me, pfx)
  local total = 0
  local flat = redis.call('HGETALL', hash)
  for i = 1, #flat, 2 do
    local node = flat[i]
    if node == me or redis.call('EXISTS', pfx .. 'node:' .. node) == 1 then
      total = total + tonumber(flat[i + 1])
    else
      redis.call('HDEL', hash, node)
    end
  end
  return total
end
local me, pfx = ARGV[1], ARGV[2]
local alive = redis.call('EXISTS', pfx .. 'node:' .. me)
"""

# KEYS: member hash, group set. ARGV: me, prefix, member, limit. Returns {counted, alive}.
_ACQUIRE = (
    _LIVE
    + """
local total = live(KEYS[1], me, pfx)
if total >= tonumber(ARGV[4]) then
  if total == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
  return {0, alive}
end
redis.call('HINCRBY', KEYS[1], me, 1)
redis.call('SADD', KEYS[2], ARGV[3])
return {1, alive}
"""
)

# KEYS: member hash, group set. ARGV: me, prefix, member. Returns alive.
_RELEASE = (
    _LIVE
    + """
if redis.call('HINCRBY', KEYS[1], me, -1) <= 0 then redis.call('HDEL', KEYS[1], me) end
if live(KEYS[1], me, pfx) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
return alive
"""
)

# KEYS: group set. ARGV: me, prefix, group. Returns {alive, {member...}}.
_MEMBERS = (
    _LIVE
    + """
local group = ARGV[3]
local base = pfx .. 'pres:' .. #group .. ':' .. group
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if live(base .. m, me, pfx) > 0 then
    out[#out + 1] = m
  else
    redis.call('SREM', KEYS[1], m)
  end
end
return {alive, out}
"""
)

# KEYS: this node's liveness key, then member hash and group set per item. ARGV: me,
# prefix, ttl_ms (0: delete the liveness key), then member and count per item. Sets
# this node's count of each item (0: none). Returns 1.
_SYNC = (
    _LIVE
    + """
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], '1', 'PX', ttl)
else
  redis.call('DEL', KEYS[1])
end
for i = 1, (#KEYS - 1) / 2 do
  local hash, grp = KEYS[2 * i], KEYS[2 * i + 1]
  local member, n = ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
  if n > 0 then
    redis.call('HSET', hash, me, n)
    redis.call('SADD', grp, member)
  else
    redis.call('HDEL', hash, me)
    if live(hash, me, pfx) == 0 then redis.call('SREM', grp, member) end
  end
end
return 1
"""
)


class _Gate:
    """Script calls run side by side; a write-back runs alone, with none in flight.

    A write-back sets absolute counts from a snapshot of the local ones: a call in
    flight meanwhile would be overwritten (or counted twice).
    """

    def __init__(self) -> None:
        self._busy = 0
        self._exclusive = False
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive)
            self._busy += 1
        try:
            yield
        finally:
            async with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._exclusive)
            self._exclusive = True
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: self._busy == 0)
            yield
        finally:
            async with self._changed:
                self._exclusive = False
                self._changed.notify_all()


class RedisPresence:
    """Presence shared by every node on one Redis (see the module docstring).

    Redis being down is no error for :meth:`start` and :meth:`close` (logged; the
    heartbeat keeps retrying); :meth:`acquire`, :meth:`release` and :meth:`members`
    raise ``BrokerUnavailable``. A release that raised has been undone locally all the
    same, and the heartbeat corrects Redis once it answers: callers may ignore it.

    Args:
        url: ``redis://host:port/db``, or a client of
            :func:`~streamgate.brokers.redis_connect.command_client` to share (then
            :meth:`close` leaves it open: its owner closes it).
        prefix: put before every key.
        node: this node's name, unique among the nodes sharing ``prefix`` while alive
            (e.g. host, pid and a random part).
        ttl: seconds this node counts as alive after its last heartbeat.
        timeout: seconds a connect or a command may take before ``BrokerUnavailable``.
    """

    def __init__(
        self,
        url: str | Redis,
        *,
        prefix: str,
        node: str,
        ttl: float = 15.0,
        timeout: float = REDIS_TIMEOUT,
    ) -> None:
        if not node:
            raise ValueError("node must not be empty")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        # The one policy (streamgate.brokers.redis_connect): a script that ran but whose
        # reply was lost is not run twice; a pooled connection that died with a Redis
        # restart is replaced on checkout.
        self._owned = isinstance(url, str)
        self._redis = (
            command_client(url, name=f"streamgate-presence-{node}", timeout=timeout)
            if isinstance(url, str)
            else url
        )
        self._prefix = prefix
        self._node = node
        self._node_key = f"{prefix}node:{node}"
        self._ttl_ms = max(1, int(ttl * 1000))
        self._period = ttl / 3
        self._acquire_script = self._redis.register_script(_ACQUIRE)
        self._release_script = self._redis.register_script(_RELEASE)
        self._members_script = self._redis.register_script(_MEMBERS)
        self._sync_script = self._redis.register_script(_SYNC)
        self._counts: dict[tuple[str, str], int] = {}  # this node's, as Redis should have
        self._dirty: set[tuple[str, str]] = set()  # to write back: Redis may be wrong
        self._lost = True  # write everything back (and set the liveness key) next beat
        self._gate = _Gate()
        self._wake = asyncio.Event()
        self._beat: asyncio.Task[None] | None = None
        self._ops: set[asyncio.Task[Any]] = set()
        self._closed = False

    def _hash_key(self, group: str, member: str) -> str:
        return f"{self._prefix}pres:{len(group.encode())}:{group}{member}"

    def _group_key(self, group: str) -> str:
        return f"{self._prefix}grp:{group}"

    async def start(self) -> None:
        """Set this node's liveness key and start the heartbeat; never raises for Redis."""
        if self._beat is not None or self._closed:
            return
        await self._safe_tick()
        self._beat = asyncio.create_task(self._run(), name=f"presence-heartbeat-{self._node}")

    async def close(self) -> None:
        """Stop the heartbeat, delete this node's liveness key and counts, disconnect.

        Best effort: Redis being down is logged. Closing again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        if self._ops:
            await asyncio.gather(*self._ops, return_exceptions=True)
        try:
            async with self._gate.exclusive():
                gone = [(g, m, 0) for g, m in set(self._counts) | self._dirty]
                self._counts.clear()
                self._dirty.clear()
                await self._sync(gone, 0)
        except (*UNAVAILABLE_ERRORS, BrokerUnavailable) as exc:
            log.warning("presence %s: could not remove its counts at close: %s", self._node, exc)
        finally:
            if self._owned:
                await self._redis.aclose(close_connection_pool=True)

    async def acquire(self, group: str, member: str, limit: int) -> bool:
        """Count one more socket of ``member`` (in ``group``) on this node unless ``limit``
        sockets of that member are already open across all live nodes; True when counted.

        Raises:
            BrokerUnavailable: Redis could not be reached (nothing counted).
        """
        task = self._spawn(self._acquire(group, member, limit))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Redis may count it yet; the caller will never release it: undo then.
            task.add_done_callback(lambda t: self._undo(t, group, member))
            raise

    async def release(self, group: str, member: str) -> None:
        """Undo one acquire of this node (a no-op when this node holds none).

        Raises:
            BrokerUnavailable: Redis could not be reached; undone locally all the same,
                Redis is corrected by the heartbeat.
        """
        if (group, member) not in self._counts:
            return
        await asyncio.shield(self._spawn(self._release(group, member)))

    async def members(self, group: str) -> list[str]:
        """Members of ``group`` with at least one socket open on a live node, sorted.

        Raises:
            BrokerUnavailable: Redis could not be reached.
        """
        with unavailable_on_error():
            alive, raw = await self._members_script(
                keys=[self._group_key(group)], args=[self._node, self._prefix, group]
            )
        self._check_alive(alive)
        return sorted(m.decode() for m in raw)

    # -- internals -------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run ``coro`` to its end even if the caller is cancelled (counts stay right)."""
        task = asyncio.ensure_future(coro)
        self._ops.add(task)
        task.add_done_callback(self._ops.discard)
        task.add_done_callback(_consume)
        return task

    def _undo(self, task: asyncio.Task[bool], group: str, member: str) -> None:
        if task.cancelled() or task.exception() is not None or not task.result():
            return
        key = (group, member)
        held = self._counts.get(key, 0) - 1
        if held > 0:
            self._counts[key] = held
        else:
            self._counts.pop(key, None)
        self._dirty.add(key)

    async def _acquire(self, group: str, member: str, limit: int) -> bool:
        key = (group, member)
        async with self._gate.shared():
            try:
                counted, alive = await self._acquire_script(
                    keys=[self._hash_key(group, member), self._group_key(group)],
                    args=[self._node, self._prefix, member, limit],
                )
            except BaseException as exc:
                self._dirty.add(key)  # it may have run
                if isinstance(exc, UNAVAILABLE_ERRORS):
                    raise BrokerUnavailable(f"redis: {exc}") from exc
                raise
            if counted:
                self._counts[key] = self._counts.get(key, 0) + 1
        self._check_alive(alive)
        return bool(counted)

    async def _release(self, group: str, member: str) -> None:
        key = (group, member)
        async with self._gate.shared():
            held = self._counts.get(key, 0)
            if held <= 0:
                return
            if held > 1:
                self._counts[key] = held - 1
            else:
                del self._counts[key]
            try:
                alive = await self._release_script(
                    keys=[self._hash_key(group, member), self._group_key(group)],
                    args=[self._node, self._prefix, member],
                )
            except BaseException as exc:
                self._dirty.add(key)
                if isinstance(exc, UNAVAILABLE_ERRORS):
                    raise BrokerUnavailable(f"redis: {exc}") from exc
                raise
        self._check_alive(alive)

    def _check_alive(self, alive: int) -> None:
        """A script found this node's liveness key gone: heal now, not next period."""
        if not alive and not self._closed:
            self._lost = True
            self._wake.set()

    async def _run(self) -> None:
        """The heartbeat: every ``ttl / 3`` (or when woken), never giving up."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._period):
                    await self._wake.wait()
            self._wake.clear()
            await self._safe_tick()

    async def _safe_tick(self) -> None:
        try:
            await self._tick()
        except (*UNAVAILABLE_ERRORS, BrokerUnavailable) as exc:
            log.warning("presence %s: heartbeat failed, retrying: %s", self._node, exc)
        except Exception:
            log.exception("presence %s: heartbeat failed, retrying", self._node)

    async def _tick(self) -> None:
        """Refresh the liveness key; write counts back if it had vanished or are dirty."""
        if not self._lost:
            with unavailable_on_error():
                refreshed = await self._redis.pexpire(self._node_key, self._ttl_ms)
            if not refreshed:
                log.warning("presence %s: liveness key had vanished; writing back", self._node)
                self._lost = True
        if not self._lost and not self._dirty:
            return
        async with self._gate.exclusive():
            lost, self._lost = self._lost, False
            dirty, self._dirty = self._dirty, set()
            keys = (set(self._counts) | dirty) if lost else dirty
            items = [(g, m, self._counts.get((g, m), 0)) for g, m in keys]
            try:
                await self._sync(items, self._ttl_ms)
            except BaseException:
                self._lost = self._lost or lost
                self._dirty |= dirty
                raise

    async def _sync(self, items: list[tuple[str, str, int]], ttl_ms: int) -> None:
        """Set this node's count of each item; set (or with 0, delete) its liveness key."""
        for start in range(0, max(1, len(items)), _SYNC_BATCH):
            keys = [self._node_key]
            args: list[str | int] = [self._node, self._prefix, ttl_ms]
            for group, member, count in items[start : start + _SYNC_BATCH]:
                keys += [self._hash_key(group, member), self._group_key(group)]
                args += [member, count]
            with unavailable_on_error():
                await self._sync_script(keys=keys, args=args)


def _consume(task: asyncio.Task[Any]) -> None:
    """Retrieve a finished task's exception, so one nobody awaited is not logged."""
    if not task.cancelled():
        task.exception()


def _conforms(presence: RedisPresence) -> Presence:
    """Checked by mypy: the Redis backend satisfies the seam."""
    return presence
