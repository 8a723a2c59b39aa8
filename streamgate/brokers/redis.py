"""The Redis broker: several gateway nodes number, keep and deliver as one.

Per channel, Redis holds (every key under ``prefix``):

- ``{prefix}meta:{channel}``: a hash, ``top`` (the last offset), ``epoch`` and ``idle``,
  expiring ``keep`` after the last publish (so channels of users long gone do not pile
  up). Only a publish creates it: a subscribe, a position or a history read of a channel
  without one writes nothing, and answers offset 0 of the idle epoch (one per ``keep``
  window, derived from ``{prefix}idle``, a random value regenerated when Redis lost it;
  see :mod:`streamgate.brokers.history`). ``idle`` is the idle epoch when the hash was
  created: a resume from offset 0 of it replays from offset 1. A missing hash means the
  history was lost (expired, a restart without persistence, an eviction): the next
  publish starts a fresh random epoch at offset 1 (PROTOCOL.md section 3).
- ``{prefix}hist:{channel}``: a Stream of the recent publications, entry id
  ``<offset>-1``, fields ``d`` (the JSON data) and ``t`` (ts_ms); capped near
  ``history_size`` and expiring ``history_ttl`` after the last publish.
- ``{prefix}ch:{channel}``: the pub/sub channel every node subscribed to the channel
  listens on. One message per channel per publish call carries that call's
  publications of the channel: ``<epoch> <ts_ms>``, then per publication a newline and
  ``<offset> <json>`` (compact JSON has no raw newline), so a batch crosses Redis
  and reaches the hub as one delivery, as it does with the memory broker.

One Lua script per :meth:`RedisBroker.publish` assigns the offsets, appends to the
streams and publishes, atomically: every node sees the same publications in the same
order with the same offsets. Delivery, local included, comes back through pub/sub
(Centrifuge's one data path), so a node only delivers channels it subscribed to.

Faults (issue 7, item 4). When the pub/sub connection drops, :attr:`RedisBroker.ready`
turns False at once and publish, history and position raise ``BrokerUnavailable``
without touching Redis. The reader reconnects with exponential backoff (jittered,
``reconnect_min`` doubling to ``reconnect_max``), re-subscribes every channel and waits
for Redis to confirm, then proves continuity per channel before turning ready again.
The broker keeps, per subscribed channel, the position of the last publication it
delivered (or the channel's position when it was subscribed). If the channel moved on
in the same epoch, the missing publications are read from the history and delivered
in order (recovered); pub/sub copies of them arriving later are dropped as
duplicates. If they cannot be replayed (another epoch because Redis lost the data, or
trimmed), the broker turns ready first, then calls ``handler.lost(channel, position)``
for each such channel: publications of it may be missing for this node, and its
stream continues after ``position``; the hub tells the channel's subscribers
(``recovered: false`` on resume, a fresh order-book snapshot).

Order books (issue 7, item 2) live in ``{prefix}book:{channel}``, a hash of ``seq``,
``ts`` and one field per level (``a<price>``/``b<price>`` -> size), with an index of its
levels by price in ``{prefix}booklevels:{channel}`` (a sorted set the publish script
keeps, for the book checksum of each event: issue 13, docs/protocol-notes.md). The publish script
checks every delta of a batch against it before writing anything (``BookRefused``)
and applies the batch's book events as it numbers them; :meth:`RedisBroker.book`
reads the book and the channel's offset in one script, so the snapshot is exactly the
book at that offset. Keys are never evicted safely: run Redis with
``maxmemory-policy noeviction`` (an evicted ``meta`` is a lost history, which is
handled; an evicted book is refused deltas until the next snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from streamgate.brokers.base import Broker, BrokerHandler, Outgoing
from streamgate.brokers.books import OrderBook
from streamgate.brokers.history import new_epoch
from streamgate.brokers.redis_connect import (
    MAX_CONNECTIONS,
    REDIS_TIMEOUT,
    UNAVAILABLE_ERRORS,
    command_client,
    pubsub_client,
    unavailable_on_error,
)
from streamgate.core import exact_json
from streamgate.core.books import SNAPSHOT, chain_refusal
from streamgate.core.channels import is_book_channel, market_of
from streamgate.core.publication import Publication, StreamPosition
from streamgate.errors import BrokerUnavailable
from streamgate.observability.stats import BrokerStats

__all__ = ["RedisBroker"]

log = logging.getLogger("streamgate.broker")

# The idle epoch (streamgate.brokers.history.idle_epoch, computed in Redis on Redis's clock):
# a hash of the dataset's random base and the current ``window``-long period.
_IDLE = """
local function idle_epoch(base_key, fresh, window)
  local base = redis.call('GET', base_key)
  if not base then
    base = fresh
    redis.call('SET', base_key, base)
  end
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  return string.sub(redis.sha1hex(base .. ':' .. math.floor(ms / tonumber(window))), 1, 12)
end
"""

# The book checksum (core.books.book_checksum, docs/protocol-notes.md "Book checksum"):
# CRC32 (LuaBitOp's bit library, which Redis ships; the table of the reflected
# polynomial 0xEDB88320) of the top 25 levels per side, best first, "bid:size:ask:size".
# The top levels come from the book's level index, a sorted set of members a<price>
# (score price) and b<price> (score -price), so the cost per event does not grow with
# the book (prices are positive, and order exactly below 2**53 as doubles). A book
# written before the index existed (no 'z' field) gets it rebuilt from the hash once.
_CRC_TABLE = """
local CRC = {[0] =
  0,1996959894,3993919788,2567524794,124634137,1886057615,3915621685,2657392035,249268274,
  2044508324,3772115230,2547177864,162941995,2125561021,3887607047,2428444049,498536548,
  1789927666,4089016648,2227061214,450548861,1843258603,4107580753,2211677639,325883990,
  1684777152,4251122042,2321926636,335633487,1661365465,4195302755,2366115317,997073096,
  1281953886,3579855332,2724688242,1006888145,1258607687,3524101629,2768942443,901097722,
  1119000684,3686517206,2898065728,853044451,1172266101,3705015759,2882616665,651767980,
  1373503546,3369554304,3218104598,565507253,1454621731,3485111705,3099436303,671266974,
  1594198024,3322730930,2970347812,795835527,1483230225,3244367275,3060149565,1994146192,
  31158534,2563907772,4023717930,1907459465,112637215,2680153253,3904427059,2013776290,
  251722036,2517215374,3775830040,2137656763,141376813,2439277719,3865271297,1802195444,
  476864866,2238001368,4066508878,1812370925,453092731,2181625025,4111451223,1706088902,
  314042704,2344532202,4240017532,1658658271,366619977,2362670323,4224994405,1303535960,
  984961486,2747007092,3569037538,1256170817,1037604311,2765210733,3554079995,1131014506,
  879679996,2909243462,3663771856,1141124467,855842277,2852801631,3708648649,1342533948,
  654459306,3188396048,3373015174,1466479909,544179635,3110523913,3462522015,1591671054,
  702138776,2966460450,3352799412,1504918807,783551873,3082640443,3233442989,3988292384,
  2596254646,62317068,1957810842,3939845945,2647816111,81470997,1943803523,3814918930,
  2489596804,225274430,2053790376,3826175755,2466906013,167816743,2097651377,4027552580,
  2265490386,503444072,1762050814,4150417245,2154129355,426522225,1852507879,4275313526,
  2312317920,282753626,1742555852,4189708143,2394877945,397917763,1622183637,3604390888,
  2714866558,953729732,1340076626,3518719985,2797360999,1068828381,1219638859,3624741850,
  2936675148,906185462,1090812512,3747672003,2825379669,829329135,1181335161,3412177804,
  3160834842,628085408,1382605366,3423369109,3138078467,570562233,1426400815,3317316542,
  2998733608,733239954,1555261956,3268935591,3050360625,752459403,1541320221,2607071920,
  3965973030,1969922972,40735498,2617837225,3943577151,1913087877,83908371,2512341634,
  3803740692,2075208622,213261112,2463272603,3855990285,2094854071,198958881,2262029012,
  4057260610,1759359992,534414190,2176718541,4139329115,1873836001,414664567,2282248934,
  4279200368,1711684554,285281116,2405801727,4167216745,1634467795,376229701,2685067896,
  3608007406,1308918612,956543938,2808555105,3495958263,1231636301,1047427035,2932959818,
  3654703836,1088359270,936918000,2847714899,3736837829,1202900863,817233897,3183342108,
  3401237130,1404277552,615818150,3134207493,3453421203,1423857449,601450431,3009837614,
  3294710456,1567103746,711928724,3020668471,3272380065,1510334235,755167117,
}
"""

_CHECKSUM = (
    _CRC_TABLE
    + """
local function crc32(s)
  local crc = bit.bnot(0)
  local band, bxor, rshift, byte = bit.band, bit.bxor, bit.rshift, string.byte
  for i = 1, #s do
    crc = bxor(rshift(crc, 8), CRC[band(bxor(crc, byte(s, i)), 255)])
  end
  crc = bit.bnot(crc)
  if crc < 0 then crc = crc + 4294967296 end
  return string.format('%.0f', crc)
end
local function index_book(book, index)
  if redis.call('HEXISTS', book, 'z') == 1 then return end
  redis.call('DEL', index)
  local flat = redis.call('HGETALL', book)
  for j = 1, #flat, 2 do
    local side, price = string.sub(flat[j], 1, 1), string.sub(flat[j], 2)
    if side == 'a' then
      redis.call('ZADD', index, price, flat[j])
    elseif side == 'b' then
      redis.call('ZADD', index, '-' .. price, flat[j])
    end
  end
  redis.call('HSET', book, 'z', '1')
end
local function book_checksum(book, index)
  local bids = redis.call('ZRANGEBYSCORE', index, '-inf', '(0', 'LIMIT', 0, 25)
  local asks = redis.call('ZRANGEBYSCORE', index, '(0', '+inf', 'LIMIT', 0, 25)
  local names = {}
  for _, m in ipairs(bids) do names[#names + 1] = m end
  for _, m in ipairs(asks) do names[#names + 1] = m end
  if #names == 0 then return '0' end
  local sizes = redis.call('HMGET', book, unpack(names))
  local parts = {}
  for k = 1, 25 do
    if bids[k] then parts[#parts + 1] = string.sub(bids[k], 2) .. ':' .. sizes[k] end
    if asks[k] then parts[#parts + 1] = string.sub(asks[k], 2) .. ':' .. sizes[#bids + k] end
  end
  return crc32(table.concat(parts, ':'))
end
"""
)

# KEYS: meta, hist, book, book level index per item, then the idle base. ARGV: fresh
# epoch (also the idle base if there is none), ts_ms, maxlen, ttl_ms, keep_ms, then the
# pub/sub channel, the JSON data and the book operation per item. Returns {top, epoch,
# checksum} per item
# (checksum '' but for order-book events, whose data gets it as a last member), or
# {'refused', item, code, book seq} with nothing written.
#
# A book operation is '' (not an order-book event) or
# '<S|D> <seq> <ts_ms>( <a|b> <price> <size>)*': S replaces the book, D sets levels
# (size 0 deletes). Numbers stay strings, so prices and sizes keep every digit.
_PUBLISH = (
    _IDLE
    + _CHECKSUM
    + """
local fresh, ts, maxlen, ttl, keep = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local n = (#KEYS - 1) / 4
local seqs = {}
for i = 1, n do
  local op = ARGV[5 + 3 * i]
  if op ~= '' then
    local book = KEYS[4 * i - 1]
    local kind, seq = string.match(op, '^(%a) (%d+)')
    local cur = seqs[book]
    if cur == nil then cur = redis.call('HGET', book, 'seq') end
    if kind == 'D' then
      if not cur then return {'refused', i, 'NO_BOOK', ''} end
      if tonumber(seq) ~= tonumber(cur) + 1 then return {'refused', i, 'SEQ_GAP', cur} end
    end
    seqs[book] = seq
  end
end
local out, groups, order = {}, {}, {}
for i = 1, n do
  local meta, hist, book, index = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local chan, data, op = ARGV[3 + 3 * i], ARGV[4 + 3 * i], ARGV[5 + 3 * i]
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = fresh
    redis.call('DEL', hist)
    local idle = idle_epoch(KEYS[#KEYS], fresh, keep)
    redis.call('HSET', meta, 'epoch', epoch, 'top', 0, 'idle', idle)
  end
  local top = redis.call('HINCRBY', meta, 'top', 1)
  redis.call('PEXPIRE', meta, keep)
  local sum = ''
  if op ~= '' then
    local kind, seq, bts, mat, levels = string.match(op, '^(%a) (%d+) (%d+) (%d+)(.*)$')
    if kind == 'S' then
      redis.call('DEL', book, index)
      redis.call('HSET', book, 'z', '1')
    else
      index_book(book, index)
    end
    redis.call('HSET', book, 'seq', seq, 'ts', bts, 'mat', mat)
    for side, price, size in string.gmatch(levels, ' ([ab]) (%-?%d+) (%d+)') do
      local name = side .. price
      if size == '0' then
        redis.call('HDEL', book, name)
        redis.call('ZREM', index, name)
      else
        redis.call('HSET', book, name, size)
        redis.call('ZADD', index, side == 'a' and price or '-' .. price, name)
      end
    end
    redis.call('PEXPIRE', book, keep)
    redis.call('PEXPIRE', index, keep)
    sum = book_checksum(book, index)
    data = string.sub(data, 1, -2) .. ',"checksum":' .. sum .. '}'
  end
  redis.call('XADD', hist, 'MAXLEN', '~', maxlen, top .. '-1', 'd', data, 't', ts)
  if ttl > 0 then redis.call('PEXPIRE', hist, ttl) end
  local group = groups[chan]
  if not group then
    group = {epoch .. ' ' .. ts}
    groups[chan] = group
    order[#order + 1] = chan
  end
  group[#group + 1] = top .. ' ' .. data
  out[i] = {top, epoch, sum}
end
for _, chan in ipairs(order) do
  redis.call('PUBLISH', chan, table.concat(groups[chan], '\\n'))
end
return out
"""
)

# KEYS: meta, book. Returns {top, epoch, HGETALL book}, or false without a book.
_BOOK = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch or redis.call('HEXISTS', KEYS[2], 'seq') == 0 then return false end
return {redis.call('HGET', KEYS[1], 'top'), epoch, redis.call('HGETALL', KEYS[2])}
"""

# KEYS: meta, hist, idle base. ARGV: fresh idle base (used only when there is none),
# since offset ('' for none), since epoch, max entries, keep_ms. Writes no key of the
# channel. Returns {top, epoch, entries, matched}: a channel without meta is at offset 0
# of the idle epoch; matched is 1 when since is in the stream (its epoch, or offset 0 of
# the idle epoch it was created in); entries only then, and when since < top.
_HISTORY = (
    _IDLE
    + """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  local idle = idle_epoch(KEYS[3], ARGV[1], ARGV[5])
  return {0, idle, {}, (ARGV[2] == '0' and ARGV[3] == idle) and 1 or 0}
end
local top = tonumber(redis.call('HGET', KEYS[1], 'top'))
if ARGV[2] == '' then return {top, epoch, {}, 0} end
local since = tonumber(ARGV[2])
if ARGV[3] ~= epoch and not (since == 0 and ARGV[3] == redis.call('HGET', KEYS[1], 'idle')) then
  return {top, epoch, {}, 0}
end
if since >= top then return {top, epoch, {}, 1} end
local entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-1', '+', 'COUNT', ARGV[4])
return {top, epoch, entries, 1}
"""
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _fields(raw: Any) -> dict[bytes, bytes]:
    """Turn a stream entry's flat ``[k, v, k, v]`` field list into a dict."""
    return {raw[i]: raw[i + 1] for i in range(0, len(raw), 2)}


def _book_op(channel: str, data: Any, ts_ms: int) -> str:
    """Encode an order-book event for the publish script ('' for any other event)."""
    if not is_book_channel(channel):
        return ""
    kind = "S" if data["type"] == SNAPSHOT else "D"
    stamp = data.get("timestamp_ms", ts_ms)
    parts = [kind, str(data["seq"]), str(stamp), str(data.get("matched_at", stamp))]
    for side, levels in (("a", data["asks"]), ("b", data["bids"])):
        for price, size in levels:
            parts += (side, str(price), str(size))
    return " ".join(parts)


def _with_checksum(data: Any, checksum: bytes) -> Any:
    """The data as the script published it: an order-book event gains its ``checksum``."""
    return {**data, "checksum": int(checksum)} if checksum else data


def _book_publication(channel: str, top: bytes, epoch: bytes, raw: Any, now_ms: int) -> Publication:
    """Build the snapshot publication of a book read by the book script."""
    book = OrderBook(channel, market_of(channel))
    fields = _fields(raw)
    for name, value in fields.items():
        side = name[:1]
        if side == b"a":
            book.asks[int(name[1:])] = int(value)
        elif side == b"b":
            book.bids[int(name[1:])] = int(value)
    book.seq = int(fields[b"seq"])
    book.ts_ms = int(fields[b"ts"])
    book.matched_at = int(fields.get(b"mat", fields[b"ts"]))  # books written before it: ts
    book.offset = int(top)
    book.epoch = epoch.decode()
    return book.snapshot_publication(now_ms)


class RedisBroker:
    """Numbers publications per channel in Redis and delivers them through pub/sub.

    Args:
        url: ``redis://host:port/db``.
        prefix: put before every key and pub/sub channel, so users can share a Redis.
        history_size: publications kept replayable per channel.
        history_ttl: seconds a publication stays replayable.
        keep: seconds a channel's offset, epoch and book outlive its last publish (at
            least ``history_ttl``); after that the next publish starts a new epoch.
        clock_ms: wall clock in milliseconds; stamps publications, ages the history.
        name: the Redis client name (CLIENT SETNAME): ``name`` for commands,
            ``{name}-sub`` for the pub/sub connection.
        reconnect_min: first backoff (seconds) after the pub/sub connection dropped.
        reconnect_max: the backoff doubles up to this.
        timeout: seconds a connect or a command (or the wait for a pooled connection)
            may take before ``BrokerUnavailable``.
        max_connections: the command connections kept to Redis (pub/sub has its own).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        history_size: int,
        history_ttl: float,
        keep: float = 7 * 86_400.0,
        clock_ms: Callable[[], int] = _now_ms,
        name: str = "streamgate",
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
        timeout: float = REDIS_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        # Both clients follow the one policy (streamgate.brokers.redis_connect): commands
        # on a bounded pool, never resent; the pub/sub connection is healed by the reader.
        self._redis: Redis = command_client(
            url, name=name, timeout=timeout, max_connections=max_connections
        )
        self._sub_client: Redis = pubsub_client(url, name=f"{name}-sub", timeout=timeout)
        self._prefix = prefix
        self._ch_prefix = f"{prefix}ch:".encode()
        self._size = history_size
        self._ttl_ms = int(history_ttl * 1000)
        self._keep_ms = int(max(keep, history_ttl) * 1000)
        self._clock_ms = clock_ms
        self._timeout = timeout
        self._backoff = (reconnect_min, reconnect_max)
        self._publish_script = self._redis.register_script(_PUBLISH)
        self._history_script = self._redis.register_script(_HISTORY)
        self._book_script = self._redis.register_script(_BOOK)
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._handler: BrokerHandler | None = None
        self._pending: dict[bytes, asyncio.Future[None]] = {}
        self._channels: set[str] = set()
        # Per subscribed channel: the last publication delivered, else the position
        # when it was subscribed (what a reconnect must continue from).
        self._last: dict[str, StreamPosition] = {}
        self._broken = False
        self._ready = False
        self.stats = BrokerStats()

    def _keys(self, channel: str) -> tuple[str, str]:
        return f"{self._prefix}meta:{channel}", f"{self._prefix}hist:{channel}"

    def _book_key(self, channel: str) -> str:
        return f"{self._prefix}book:{channel}"

    @property
    def _idle_key(self) -> str:
        """The random base of the idle epochs (one key for every channel)."""
        return f"{self._prefix}idle"

    def _chan(self, channel: str) -> bytes:
        return self._ch_prefix + channel.encode()

    async def start(self, handler: BrokerHandler) -> None:
        """Connect, then deliver subscribed channels' publications to ``handler``.

        Raises:
            BrokerUnavailable: Redis does not answer.
        """
        self._handler = handler
        pubsub = self._sub_client.pubsub()
        try:
            await self._redis.ping()
            await pubsub.connect()  # type: ignore[no-untyped-call]
        except UNAVAILABLE_ERRORS as exc:
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise BrokerUnavailable(f"redis: {exc}") from exc
        self._pubsub = pubsub
        self._reader = asyncio.create_task(self._run(pubsub))
        self._ready = True

    async def close(self) -> None:
        self._ready = False
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._drop_pubsub()
        self._fail_pending()
        await self._redis.aclose(close_connection_pool=True)
        await self._sub_client.aclose()
        self._handler = None

    @property
    def ready(self) -> bool:
        return self._ready

    def _check_ready(self) -> None:
        if not self._ready:
            raise BrokerUnavailable("redis: not connected")

    async def publish(self, items: Sequence[Outgoing]) -> list[Publication]:
        """Number, keep and publish ``items`` in one atomic script call.

        Raises:
            BookRefused: a delta does not follow its book (checked in the script).
            BrokerUnavailable: Redis could not be reached, or the pub/sub connection is
                down (then at once). If the connection dropped after the script ran,
                the items may have been published all the same.
        """
        if not items:
            return []
        self._check_ready()
        now = self._clock_ms()
        keys: list[str] = []
        args: list[str | bytes | int] = [new_epoch(), now, self._size, self._ttl_ms, self._keep_ms]
        for item in items:
            keys.extend(self._keys(item.channel))
            keys.append(self._book_key(item.channel))
            keys.append(f"{self._prefix}booklevels:{item.channel}")
            args.append(self._chan(item.channel))
            args.append(exact_json.dumps(item.data))
            args.append(_book_op(item.channel, item.data, now))
        keys.append(self._idle_key)
        with unavailable_on_error():
            rows = await self._publish_script(keys=keys, args=args)
        if rows and rows[0] == b"refused":
            _, number, _code, seq = rows  # the code follows from seq: '' is no book
            item = items[int(number) - 1]
            book_seq = int(seq) if seq else None
            raise chain_refusal(int(number) - 1, item.channel, item.data["seq"], book_seq)
        return [
            Publication(item.channel, int(top), epoch.decode(), _with_checksum(item.data, sum), now)
            for item, (top, epoch, sum) in zip(items, rows, strict=True)
        ]

    async def _state(
        self, channel: str, since: StreamPosition | None
    ) -> tuple[int, str, list[Any], bool]:
        """Read the channel's position and, with ``since``, what follows it (no write)."""
        args: list[str | int] = [new_epoch(), "", "", self._size, self._keep_ms]
        if since is not None:
            args[1:3] = [since.offset, since.epoch]
        with unavailable_on_error():
            top, epoch, entries, matched = await self._history_script(
                keys=[*self._keys(channel), self._idle_key], args=args
            )
        return int(top), epoch.decode(), entries, bool(matched)

    async def history(
        self, channel: str, since: StreamPosition
    ) -> tuple[list[Publication], StreamPosition] | None:
        """Return the publications after ``since``, or None if any of them is gone.

        Gone: another epoch, an offset from the future, or a successor trimmed by the
        size cap (exactly ``history_size`` are replayable, whatever MAXLEN ~ left) or
        older than ``history_ttl``.

        Raises:
            BrokerUnavailable: Redis could not be reached, or the broker is not ready.
        """
        self._check_ready()
        return await self._history(channel, since)

    async def _history(
        self, channel: str, since: StreamPosition
    ) -> tuple[list[Publication], StreamPosition] | None:
        top, epoch, entries, matched = await self._state(channel, since)
        if not matched or since.offset > top or since.offset < 0:
            return None
        position = StreamPosition(top, epoch)
        if since.offset == top:
            return [], position
        if since.offset < top - self._size or len(entries) != top - since.offset:
            return None
        cutoff = self._clock_ms() - self._ttl_ms
        pubs: list[Publication] = []
        expected = since.offset + 1
        for entry_id, raw in entries:
            fields = _fields(raw)
            offset = int(entry_id.split(b"-", 1)[0])
            ts_ms = int(fields[b"t"])
            if offset != expected or ts_ms < cutoff:
                return None
            pubs.append(Publication(channel, offset, epoch, exact_json.loads(fields[b"d"]), ts_ms))
            expected += 1
        return pubs, position

    async def latest(self, channel: str, limit: int) -> list[Publication]:
        """Return the last ``limit`` (at most ``history_size``) replayable publications.

        One MULTI of HGET epoch and XREVRANGE COUNT: the entries and their epoch match.

        Raises:
            BrokerUnavailable: Redis could not be reached, or the broker is not ready.
        """
        self._check_ready()
        count = min(limit, self._size)
        if count <= 0:
            return []
        meta, hist = self._keys(channel)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hget(meta, "epoch")
        pipe.xrevrange(hist, count=count)
        with unavailable_on_error():
            epoch_b, entries = await pipe.execute()
        if epoch_b is None:
            return []
        epoch, cutoff = epoch_b.decode(), self._clock_ms() - self._ttl_ms
        pubs: list[Publication] = []
        for entry_id, fields in reversed(entries):
            ts_ms = int(fields[b"t"])
            if ts_ms >= cutoff:
                offset = int(entry_id.split(b"-", 1)[0])
                data = exact_json.loads(fields[b"d"])
                pubs.append(Publication(channel, offset, epoch, data, ts_ms))
        return pubs

    async def position(self, channel: str) -> StreamPosition:
        """Return the channel's position, writing nothing.

        A channel never published to (or expired) is at offset 0 of the idle epoch: a
        client that subscribed then can resume from it once the channel is created.

        Raises:
            BrokerUnavailable: Redis could not be reached, or the broker is not ready.
        """
        self._check_ready()
        return await self._position(channel)

    async def _position(self, channel: str) -> StreamPosition:
        top, epoch, _, _ = await self._state(channel, None)
        return StreamPosition(top, epoch)

    async def book(self, channel: str) -> Publication | None:
        """Read the book and the channel's position in one script: the book as of that offset.

        Raises:
            BrokerUnavailable: Redis could not be reached, or the broker is not ready.
        """
        self._check_ready()
        meta, _ = self._keys(channel)
        with unavailable_on_error():
            got = await self._book_script(keys=[meta, self._book_key(channel)])
        if not got:
            return None
        top, epoch, raw = got
        return _book_publication(channel, top, epoch, raw, self._clock_ms())

    async def book_seqs(self, channels: Sequence[str]) -> dict[str, int]:
        """Return the seq of each of ``channels`` that has a book (one round trip).

        Raises:
            BrokerUnavailable: Redis could not be reached, or the broker is not ready.
        """
        self._check_ready()
        pipe = self._redis.pipeline(transaction=False)
        for channel in channels:
            pipe.hget(self._book_key(channel), "seq")
        with unavailable_on_error():
            seqs = await pipe.execute()
        return {c: int(v) for c, v in zip(channels, seqs, strict=True) if v is not None}

    async def subscribe(self, channel: str) -> None:
        """Listen to ``channel``; return once Redis confirmed the subscription.

        Raises:
            BrokerUnavailable: not connected, the connection dropped meanwhile, or Redis
                did not confirm within ``timeout`` (then the reader reconnects, and the
                channel is subscribed again if it is still wanted).
        """
        pubsub = self._pubsub
        if pubsub is None or not self._ready:
            raise BrokerUnavailable("redis: not connected")
        name = self._chan(channel)
        fut = self._pending.get(name)
        if fut is None:
            if channel in self._channels:
                return
            fut = self._pending[name] = asyncio.get_running_loop().create_future()
            self._channels.add(channel)
            try:
                await pubsub.subscribe(name)
            except UNAVAILABLE_ERRORS as exc:
                self._pending.pop(name, None)
                self._channels.discard(channel)
                self._broken = True  # the reader reconnects
                raise BrokerUnavailable(f"redis: {exc}") from exc
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(fut)
        except TimeoutError:
            # A hung Redis, or a half-dead connection: start over on a new one.
            self._broken = True
            raise BrokerUnavailable("redis: the subscription was not confirmed in time") from None
        if channel not in self._last:
            # Where a reconnect continues from if nothing gets delivered before.
            with contextlib.suppress(BrokerUnavailable):
                position = await self._position(channel)
                self._last.setdefault(channel, position)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._last.pop(channel, None)
        pubsub = self._pubsub
        if pubsub is None:
            return
        with contextlib.suppress(*UNAVAILABLE_ERRORS):
            await pubsub.unsubscribe(self._chan(channel))

    def _fail_pending(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(BrokerUnavailable("redis pub/sub connection lost"))
        self._pending.clear()

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _run(self, pubsub: PubSub) -> None:
        """Read until the connection drops, then reconnect, recover and read again."""
        buffered: list[dict[str, Any]] = []
        while True:
            with contextlib.suppress(*UNAVAILABLE_ERRORS):
                await self._read(pubsub, buffered)
            self._ready = False
            stats = self.stats
            stats.down_since = time.time()
            log.warning("! redis pub/sub connection lost: not ready until it is back")
            self._fail_pending()
            await self._drop_pubsub()
            pubsub, buffered, lost = await self._reconnect()
            self._pubsub = pubsub
            self._broken = False
            self._ready = True
            stats.reconnects += 1
            stats.lost_channels += len(lost)
            log.warning(
                "= redis pub/sub connection back after %.1f s: ready; %d of %d channels lost",
                time.time() - stats.down_since,
                len(lost),
                len(self._channels),
            )
            stats.down_since = None
            handler = self._handler
            if handler is not None:
                for channel, position in lost:
                    handler.lost(channel, position)

    async def _reconnect(
        self,
    ) -> tuple[PubSub, list[dict[str, Any]], list[tuple[str, StreamPosition]]]:
        """Connect, re-subscribe and recover, retrying with backoff until it works."""
        delay, cap = self._backoff
        while True:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, cap)
            pubsub = self._sub_client.pubsub()
            try:
                buffered = await self._resubscribe(pubsub)
                lost = await self._recover()
            except (TimeoutError, *UNAVAILABLE_ERRORS, BrokerUnavailable):
                with contextlib.suppress(*UNAVAILABLE_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                continue
            except BaseException:
                with contextlib.suppress(*UNAVAILABLE_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            return pubsub, buffered, lost

    async def _resubscribe(self, pubsub: PubSub) -> list[dict[str, Any]]:
        """Subscribe every channel again; return once Redis confirmed them all.

        Returns the publications that arrived meanwhile, to deliver after recovery.
        """
        await asyncio.wait_for(pubsub.connect(), self._timeout)  # type: ignore[no-untyped-call]
        waiting = {self._chan(c) for c in self._channels}
        buffered: list[dict[str, Any]] = []
        if not waiting:
            return buffered
        await asyncio.wait_for(pubsub.subscribe(*waiting), self._timeout)
        async with asyncio.timeout(self._timeout):
            while waiting:
                msg = await pubsub.get_message(timeout=None)
                if msg is None:
                    continue
                kind = msg["type"]
                if kind in ("subscribe", b"subscribe"):
                    waiting.discard(msg["channel"])
                elif kind in ("message", b"message"):
                    buffered.append(msg)
        return buffered

    async def _recover(self) -> list[tuple[str, StreamPosition]]:
        """Deliver what each channel published while this node was away.

        Returns the channels that cannot be recovered, with the position they continue from.
        """
        handler = self._handler
        lost: list[tuple[str, StreamPosition]] = []
        for channel in list(self._channels):
            since = self._last.get(channel)
            got = None if since is None else await self._history(channel, since)
            if got is not None:
                pubs, position = got
                if pubs and handler is not None:
                    handler.deliver(channel, pubs)
                self._last[channel] = position
                continue
            position = await self._position(channel)
            self._last[channel] = position
            lost.append((channel, position))
        return lost

    async def _read(self, pubsub: PubSub, buffered: list[dict[str, Any]]) -> None:
        """Decode pub/sub messages and deliver them in the order Redis sent them."""
        for msg in buffered:
            self._on_message(msg)
        buffered.clear()
        while not self._broken:
            msg = await pubsub.get_message(timeout=1.0)
            if msg is not None:
                self._on_message(msg)
        raise redis_errors.ConnectionError("redis pub/sub connection broken")

    def _on_message(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == b"message" or kind == "message":
            name: bytes = msg["channel"]
            channel = name[len(self._ch_prefix) :].decode()
            if channel not in self._channels:
                return
            head, *lines = msg["data"].split(b"\n")
            epoch_b, ts_b = head.split(b" ", 1)
            epoch, ts_ms = epoch_b.decode(), int(ts_b)
            last = self._last.get(channel)
            # Offsets up to ``after`` were recovered from the history already.
            after = last.offset if last is not None and last.epoch == epoch else 0
            pubs: list[Publication] = []
            for line in lines:
                top, data = line.split(b" ", 1)
                offset = int(top)
                if offset > after:
                    pubs.append(Publication(channel, offset, epoch, exact_json.loads(data), ts_ms))
            if not pubs:
                return
            self.stats.lag.observe(max(0.0, self._clock_ms() - ts_ms) / 1000)
            self._last[channel] = pubs[-1].position
            handler = self._handler
            if handler is not None:
                handler.deliver(channel, pubs)
        elif kind in ("subscribe", b"subscribe"):
            fut = self._pending.pop(msg["channel"], None)
            if fut is not None and not fut.done():
                fut.set_result(None)


def _conforms(broker: RedisBroker) -> Broker:
    """Checked by mypy: the Redis broker satisfies the seam."""
    return broker
