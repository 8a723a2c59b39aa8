"""Stream protocol, sans-I/O: text frames in, commands or refusals out; replies encoded.

:class:`StreamSession` holds one connection's protocol state (its topics, rate limit,
refusal count). It never touches a socket: the server feeds it each inbound frame and
carries out the :data:`Command` it returns, then encodes the reply with the
``encode_*`` functions here. Every refusal has a stable code (the error frame's
``message``), documented in ``docs/protocol-notes.md``:

=========================  ==================================================
``INVALID_JSON``           the frame is not JSON
``INVALID_REQUEST``        the JSON is not an object
``MISSING_FIELD``          a required field is absent (``detail`` names it)
``INVALID_FIELD``          a field has the wrong type or value (``detail`` names it)
``UNKNOWN_OP``             ``op`` is not one of subscribe, unsubscribe, auth, ping
``OP_NOT_ALLOWED``         ``auth`` on ``/ws/public``
``INVALID_TOPIC``          a topic matches neither topic pattern
``TOPIC_NOT_ALLOWED``      a private topic on ``/ws/public`` or a public one on
                           ``/ws/private``
``UNAUTHORIZED``           a private topic before a successful ``auth``
``TOO_MANY_SUBSCRIPTIONS`` the subscribe would pass the per-connection limit
``RATE_LIMITED``           more ops per second than the connection may send
``FRAME_TOO_LARGE``        the frame is larger than the configured limit
``BINARY_NOT_SUPPORTED``   a binary frame; the protocol is JSON text
``UNAVAILABLE``            the broker cannot serve the subscribe now; retry
=========================  ==================================================

Ops of one connection take effect in the order they were sent (PROTOCOL.md section 2):
:meth:`StreamSession.receive_text` checks only what a frame says by itself (JSON, fields,
``resume``); whether its topics may be subscribed depends on the ops before it (a
pipelined ``auth`` may not be answered yet), so the server asks :meth:`StreamSession.admit`
when it carries the command out, in order. A subscribe or unsubscribe naming some topics
that cannot be taken takes the others: :class:`Admitted` lists them and carries one
refusal (with ``topics``, the refused ones) for the rest.

A client whose frames are refused more than ``abuse_refusals`` times within
``abuse_window`` seconds is abusive: the session answers :class:`Abort` and the server
closes with 1008.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from streamgate.core import exact_json
from streamgate.core.publication import Publication, StreamPosition
from streamgate.errors import StreamRefusal
from streamgate.protocol import close
from streamgate.protocol.topics import is_private_topic, is_public_topic

__all__ = [
    "Abort",
    "Admitted",
    "Auth",
    "Command",
    "Ping",
    "Refusal",
    "StreamLimits",
    "StreamSession",
    "Subscribe",
    "Unsubscribe",
    "encode_auth",
    "encode_error",
    "encode_event",
    "encode_pong",
    "encode_subscribed",
    "encode_unsubscribed",
]


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_subscriptions: int = 100
    max_frame_bytes: int = 16_384
    ops_per_second: float = 20.0
    ops_burst: int = 50
    abuse_refusals: int = 200
    abuse_window: float = 10.0


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A subscribe as sent; :meth:`StreamSession.admit` judges its topics."""

    topics: tuple[str, ...]
    req_id: str | None
    resume: dict[str, StreamPosition] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topics: tuple[str, ...]
    req_id: str | None


@dataclass(frozen=True, slots=True)
class Ping:
    client_ts: int | None
    req_id: str | None


@dataclass(frozen=True, slots=True)
class Auth:
    bearer: str
    req_id: str | None


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    detail: str
    req_id: str | None = None
    topics: tuple[str, ...] = ()  # the refused topics of a partly taken (un)subscribe


@dataclass(frozen=True, slots=True)
class Abort:
    """Close the connection: the client is abusive."""

    code: int
    reason: str


Command = Subscribe | Unsubscribe | Ping | Auth | Refusal | Abort


@dataclass(frozen=True, slots=True)
class Admitted:
    """What a subscribe or unsubscribe takes: its ``topics``, and a refusal for the rest.

    ``already`` (subscribe only) holds the topics of ``topics`` subscribed before it.
    With no ``topics`` the op takes nothing and ``refusal`` is its only answer.
    """

    topics: tuple[str, ...]
    refusal: Refusal | Abort | None = None
    already: frozenset[str] = frozenset()


_OPS = ("subscribe", "unsubscribe", "auth", "ping")


class StreamSession:
    """One connection's protocol state on ``/ws/public`` or ``/ws/private``."""

    __slots__ = (
        "_refusals",
        "_tokens",
        "_updated",
        "_window_start",
        "limits",
        "private",
        "topics",
        "user_id",
    )

    def __init__(self, *, private: bool, limits: StreamLimits) -> None:
        self.private = private
        self.limits = limits
        self.topics: set[str] = set()
        self.user_id: str | None = None
        self._tokens = float(limits.ops_burst)
        self._updated = 0.0
        self._refusals = 0
        self._window_start = 0.0

    # -- inbound --------------------------------------------------------------------

    def receive_text(self, data: bytes, now: float) -> Command:
        """Decode one text frame into the command to carry out, or a refusal.

        ``now`` is a monotonic time in seconds (rate limit and abuse window).
        """
        if not self._take_token(now):
            return self._refuse(now, "RATE_LIMITED", "too many requests; slow down", None)
        if len(data) > self.limits.max_frame_bytes:
            return self._refuse(
                now,
                "FRAME_TOO_LARGE",
                f"frame of {len(data)} bytes; the limit is {self.limits.max_frame_bytes}",
                None,
            )
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._refuse(now, "INVALID_JSON", "the frame is not valid JSON", None)
        if not isinstance(msg, dict):
            return self._refuse(now, "INVALID_REQUEST", "the frame must be a JSON object", None)
        req_id = msg.get("req_id")
        if req_id is not None and not isinstance(req_id, str):
            return self._refuse(now, "INVALID_FIELD", "req_id must be a string", None)
        try:
            return self._command(msg, req_id)
        except StreamRefusal as exc:
            return self._refuse(now, exc.code, exc.detail, req_id)

    def receive_binary(self, now: float) -> Command:
        self._take_token(now)
        return self._refuse(
            now, "BINARY_NOT_SUPPORTED", "binary frames are not supported; send JSON text", None
        )

    def authenticated(self, user_id: str | None) -> None:
        """Record the outcome of an ``auth`` op carried out by the server."""
        self.user_id = user_id

    # -- internals ------------------------------------------------------------------

    def _take_token(self, now: float) -> bool:
        limits = self.limits
        tokens = min(
            float(limits.ops_burst), self._tokens + (now - self._updated) * limits.ops_per_second
        )
        self._updated = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

    def _refuse(
        self, now: float, code: str, detail: str, req_id: str | None, topics: tuple[str, ...] = ()
    ) -> Refusal | Abort:
        if now - self._window_start > self.limits.abuse_window:
            self._window_start = now
            self._refusals = 0
        self._refusals += 1
        if self._refusals > self.limits.abuse_refusals:
            return Abort(*close.ABUSE)
        return Refusal(code, detail, req_id, topics)

    def _command(self, msg: dict[str, Any], req_id: str | None) -> Command:
        op = msg.get("op")
        if op is None:
            raise StreamRefusal("MISSING_FIELD", "op is required")
        if not isinstance(op, str):
            raise StreamRefusal("INVALID_FIELD", "op must be a string")
        if op == "subscribe":
            topics = _topics(msg)
            return Subscribe(topics, req_id, _resume(msg.get("resume"), topics))
        if op == "unsubscribe":
            return Unsubscribe(_topics(msg), req_id)
        if op == "ping":
            ts = msg.get("ts")
            if ts is not None and (not isinstance(ts, int) or isinstance(ts, bool)):
                raise StreamRefusal("INVALID_FIELD", "ts must be an integer (Unix nanoseconds)")
            return Ping(ts, req_id)
        if op == "auth":
            if not self.private:
                raise StreamRefusal("OP_NOT_ALLOWED", "auth is only available on /ws/private")
            bearer = msg.get("bearer")
            if bearer is None:
                raise StreamRefusal("MISSING_FIELD", "bearer is required")
            if not isinstance(bearer, str):
                raise StreamRefusal("INVALID_FIELD", "bearer must be a string")
            return Auth(bearer, req_id)
        raise StreamRefusal("UNKNOWN_OP", f"op must be one of {', '.join(_OPS)}")

    def _topic_refusal(self, topic: str) -> tuple[str, str] | None:
        """Why ``topic`` cannot be (un)subscribed now, as (code, detail); None if it can."""
        if is_public_topic(topic):
            if self.private:
                return "TOPIC_NOT_ALLOWED", f"{topic!r} is a public topic; use /ws/public"
        elif is_private_topic(topic):
            if not self.private:
                return "TOPIC_NOT_ALLOWED", f"{topic!r} is a private topic; use /ws/private"
            if self.user_id is None:
                return "UNAUTHORIZED", f"{topic!r} needs a successful auth first"
        else:
            return "INVALID_TOPIC", f"{topic!r} matches no topic pattern"
        return None

    # -- carrying out, in order ------------------------------------------------------

    def admit(self, cmd: Subscribe | Unsubscribe, now: float) -> Admitted:
        """Judge ``cmd``'s topics against the state the ops before it left; apply it.

        Call it when the command is carried out, after every op sent before it. A topic
        that matches no pattern, belongs to the other endpoint, needs an ``auth`` not yet
        succeeded, or would pass ``max_subscriptions`` is refused; the others are taken
        (added to or removed from :attr:`topics`).
        """
        subscribe = isinstance(cmd, Subscribe)
        taken: list[str] = []
        refused: list[tuple[str, str, str]] = []
        already = set()
        for topic in cmd.topics:
            why = self._topic_refusal(topic)
            if why is None and subscribe:
                if topic in self.topics:
                    already.add(topic)
                elif len(self.topics) >= self.limits.max_subscriptions:
                    limit = self.limits.max_subscriptions
                    why = "TOO_MANY_SUBSCRIPTIONS", f"at most {limit} subscriptions per connection"
                else:
                    self.topics.add(topic)
            if why is not None:
                refused.append((topic, *why))
            else:
                taken.append(topic)
        if not subscribe:
            self.topics.difference_update(taken)
        refusal = None
        if refused:
            code = refused[0][1]
            detail = "; ".join(dict.fromkeys(d for _, _, d in refused))
            refusal = self._refuse(now, code, detail, cmd.req_id, tuple(t for t, _, _ in refused))
        return Admitted(tuple(taken), refusal, frozenset(already))


def _topics(msg: dict[str, Any]) -> tuple[str, ...]:
    """The ``args`` of a subscribe or unsubscribe: strings, duplicates counted once."""
    args = msg.get("args")
    if args is None:
        raise StreamRefusal("MISSING_FIELD", "args is required")
    if not isinstance(args, list) or not args:
        raise StreamRefusal("INVALID_FIELD", "args must be a non-empty array of topics")
    if not all(isinstance(topic, str) for topic in args):
        raise StreamRefusal("INVALID_FIELD", "args must contain only strings")
    return tuple(dict.fromkeys(args))


def _resume(raw: Any, topics: tuple[str, ...]) -> dict[str, StreamPosition]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise StreamRefusal("INVALID_FIELD", "resume must be an object keyed by topic")
    out = {}
    for topic, pos in raw.items():
        if topic not in topics:
            raise StreamRefusal("INVALID_FIELD", f"resume.{topic}: not among args")
        if not isinstance(pos, dict):
            raise StreamRefusal("INVALID_FIELD", f"resume.{topic} must be {{offset, epoch}}")
        offset, epoch = pos.get("offset"), pos.get("epoch")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise StreamRefusal("INVALID_FIELD", f"resume.{topic}.offset must be an integer >= 0")
        if not isinstance(epoch, str):
            raise StreamRefusal("INVALID_FIELD", f"resume.{topic}.epoch must be a string")
        out[topic] = StreamPosition(offset, epoch)
    return out


# -- outbound -------------------------------------------------------------------------


def _with_req_id(msg: dict[str, Any], req_id: str | None) -> bytes:
    if req_id is not None:
        msg["req_id"] = req_id
    return orjson.dumps(msg)


def encode_subscribed(
    topics: tuple[str, ...], req_id: str | None, recovered: dict[str, bool] | None = None
) -> bytes:
    msg: dict[str, Any] = {"op": "subscribed", "args": list(topics)}
    if recovered:
        msg["recovered"] = recovered
    return _with_req_id(msg, req_id)


def encode_unsubscribed(topics: tuple[str, ...], req_id: str | None) -> bytes:
    return _with_req_id({"op": "unsubscribed", "args": list(topics)}, req_id)


def encode_pong(server_ts: int, client_ts: int | None, req_id: str | None) -> bytes:
    """Encode a pong; ``client_ts`` is omitted when the ping had no ``ts`` (PROTOCOL.md 2)."""
    msg: dict[str, Any] = {"op": "pong", "server_ts": server_ts}
    if client_ts is not None:
        msg["client_ts"] = client_ts
    return _with_req_id(msg, req_id)


def encode_error(code: str, detail: str, req_id: str | None, topics: tuple[str, ...] = ()) -> bytes:
    """Encode an error frame; ``topics`` (extension ``args``) names refused topics."""
    msg: dict[str, Any] = {"op": "error", "message": code, "detail": detail}
    if topics:
        msg["args"] = list(topics)
    return _with_req_id(msg, req_id)


def encode_auth(
    user_id: str | None, message: str | None, req_id: str | None, *, detail: str | None = None
) -> bytes:
    """Encode an auth answer: success with ``user_id``, or failure with ``message``."""
    if user_id is not None:
        return _with_req_id({"op": "auth", "success": True, "user_id": user_id}, req_id)
    msg: dict[str, Any] = {"op": "auth", "success": False, "message": message}
    if detail is not None:
        msg["detail"] = detail
    return _with_req_id(msg, req_id)


def encode_event(topic: str, pub: Publication) -> bytes:
    """Encode one event frame with the offset/epoch/server_ts_ms extensions."""
    return exact_json.dumps(
        {
            "op": "event",
            "topic": topic,
            "data": pub.data,
            "offset": pub.offset,
            "epoch": pub.epoch,
            "server_ts_ms": pub.ts_ms,
        }
    )
