"""StreamSession (sans-I/O stream protocol) and the encode_* reply functions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streamgate.core.publication import Publication, StreamPosition
from streamgate.protocol.stream import (
    Abort,
    Admitted,
    Auth,
    Command,
    Ping,
    Refusal,
    StreamLimits,
    StreamSession,
    Subscribe,
    Unsubscribe,
    encode_auth,
    encode_error,
    encode_event,
    encode_pong,
    encode_subscribed,
    encode_unsubscribed,
)

NOW = 1000.0


def public(**limits: Any) -> StreamSession:
    return StreamSession(private=False, limits=StreamLimits(**limits))


def private(**limits: Any) -> StreamSession:
    return StreamSession(private=True, limits=StreamLimits(**limits))


def parse(session: StreamSession, msg: Any, now: float = NOW) -> Command:
    """The command a frame says by itself (no judgement of its topics)."""
    return session.receive_text(orjson.dumps(msg), now)


def send(session: StreamSession, msg: Any, now: float = NOW) -> Command | Admitted:
    """Receive a frame and carry it out at once: (un)subscribes are admitted."""
    cmd = parse(session, msg, now)
    if isinstance(cmd, Subscribe | Unsubscribe):
        return session.admit(cmd, now)
    return cmd


def refusal(cmd: Command | Admitted) -> Refusal:
    if isinstance(cmd, Admitted):
        assert not cmd.topics, cmd
        return refusal(cmd.refusal)  # type: ignore[arg-type]
    assert isinstance(cmd, Refusal), cmd
    return cmd


# -- accepted commands -----------------------------------------------------------------


def test_subscribe_returns_topics_and_records_them() -> None:
    s = public()
    cmd = parse(s, {"op": "subscribe", "args": ["orderbook/A", "trade/A"], "req_id": "r1"})
    assert cmd == Subscribe(("orderbook/A", "trade/A"), "r1", {})
    assert s.topics == set()  # judged when carried out, in order
    assert isinstance(cmd, Subscribe)
    assert s.admit(cmd, NOW) == Admitted(("orderbook/A", "trade/A"))
    assert s.topics == {"orderbook/A", "trade/A"}


def test_subscribe_without_req_id() -> None:
    s = public()
    assert parse(s, {"op": "subscribe", "args": ["ticker/A"]}) == Subscribe(("ticker/A",), None, {})


def test_subscribe_deduplicates_topics_keeping_order() -> None:
    s = public()
    cmd = parse(s, {"op": "subscribe", "args": ["trade/B", "trade/A", "trade/B"], "req_id": "x"})
    assert isinstance(cmd, Subscribe)
    assert cmd.topics == ("trade/B", "trade/A")


def test_subscribe_again_to_a_subscribed_topic_is_accepted() -> None:
    s = public()
    send(s, {"op": "subscribe", "args": ["trade/A"]})
    cmd = send(s, {"op": "subscribe", "args": ["trade/A"], "req_id": "again"})
    assert cmd == Admitted(("trade/A",), None, frozenset({"trade/A"}))
    assert s.topics == {"trade/A"}


def test_unsubscribe_removes_topics() -> None:
    s = public()
    send(s, {"op": "subscribe", "args": ["trade/A", "trade/B"]})
    assert parse(s, {"op": "unsubscribe", "args": ["trade/A"]}) == Unsubscribe(("trade/A",), None)
    cmd = send(s, {"op": "unsubscribe", "args": ["trade/A"], "req_id": "u"})
    assert cmd == Admitted(("trade/A",))
    assert s.topics == {"trade/B"}


def test_unsubscribe_from_a_topic_not_subscribed_is_accepted() -> None:
    s = public()
    assert send(s, {"op": "unsubscribe", "args": ["trade/Z"]}) == Admitted(("trade/Z",))
    assert s.topics == set()


def test_ping_with_and_without_ts() -> None:
    s = public()
    ts = 1_700_000_000_123_456_789
    assert send(s, {"op": "ping", "ts": ts, "req_id": "p"}) == Ping(ts, "p")
    assert send(s, {"op": "ping"}) == Ping(None, None)
    assert send(s, {"op": "ping", "ts": None, "req_id": "n"}) == Ping(None, "n")


def test_auth_on_private_returns_bearer() -> None:
    s = private()
    assert send(s, {"op": "auth", "bearer": "jwt.x.y", "req_id": "a"}) == Auth("jwt.x.y", "a")
    assert s.user_id is None  # the server decides; the session only records the outcome


def test_private_topic_after_authenticated() -> None:
    s = private()
    s.authenticated("0xabc")
    assert s.user_id == "0xabc"
    cmd = send(s, {"op": "subscribe", "args": ["order", "fill", "position"], "req_id": "s"})
    assert cmd == Admitted(("order", "fill", "position"))
    assert s.topics == {"order", "fill", "position"}


def test_failed_auth_clears_the_user() -> None:
    s = private()
    s.authenticated("0xabc")
    s.authenticated(None)
    assert refusal(send(s, {"op": "subscribe", "args": ["order"]})).code == "UNAUTHORIZED"


# -- refusals and their req_id echo ----------------------------------------------------


@pytest.mark.parametrize("frame", [b"", b"{", b"not json", b'{"op": "ping",}', b"\xff\xfe"])
def test_invalid_json(frame: bytes) -> None:
    r = refusal(public().receive_text(frame, NOW))
    assert (r.code, r.req_id) == ("INVALID_JSON", None)


@pytest.mark.parametrize("msg", [[], ["op", "ping"], "ping", 1, None, True])
def test_invalid_request_not_an_object(msg: Any) -> None:
    r = refusal(send(public(), msg))
    assert (r.code, r.req_id) == ("INVALID_REQUEST", None)


@pytest.mark.parametrize("req_id", [1, 1.5, True, ["r"], {"r": 1}])
def test_req_id_must_be_a_string_and_is_not_echoed(req_id: Any) -> None:
    r = refusal(send(public(), {"op": "ping", "req_id": req_id}))
    assert (r.code, r.req_id) == ("INVALID_FIELD", None)
    assert "req_id" in r.detail


@pytest.mark.parametrize(
    ("msg", "code", "names"),
    [
        ({"req_id": "r"}, "MISSING_FIELD", "op"),
        ({"op": 1, "req_id": "r"}, "INVALID_FIELD", "op"),
        ({"op": None, "req_id": "r"}, "MISSING_FIELD", "op"),
        ({"op": "subscribe", "req_id": "r"}, "MISSING_FIELD", "args"),
        ({"op": "subscribe", "args": None, "req_id": "r"}, "MISSING_FIELD", "args"),
        ({"op": "subscribe", "args": [], "req_id": "r"}, "INVALID_FIELD", "args"),
        ({"op": "subscribe", "args": "trade/A", "req_id": "r"}, "INVALID_FIELD", "args"),
        ({"op": "subscribe", "args": {"t": 1}, "req_id": "r"}, "INVALID_FIELD", "args"),
        ({"op": "subscribe", "args": ["trade/A", 1], "req_id": "r"}, "INVALID_FIELD", "args"),
        ({"op": "unsubscribe", "req_id": "r"}, "MISSING_FIELD", "args"),
        ({"op": "unsubscribe", "args": [], "req_id": "r"}, "INVALID_FIELD", "args"),
        ({"op": "ping", "ts": "1", "req_id": "r"}, "INVALID_FIELD", "ts"),
        ({"op": "ping", "ts": 1.5, "req_id": "r"}, "INVALID_FIELD", "ts"),
        ({"op": "ping", "ts": True, "req_id": "r"}, "INVALID_FIELD", "ts"),
        ({"op": "SUBSCRIBE", "args": ["trade/A"], "req_id": "r"}, "UNKNOWN_OP", "op"),
        ({"op": "publish", "req_id": "r"}, "UNKNOWN_OP", "op"),
        ({"op": "", "req_id": "r"}, "UNKNOWN_OP", "op"),
    ],
)
def test_field_refusals_echo_req_id(msg: dict[str, Any], code: str, names: str) -> None:
    s = public()
    r = refusal(send(s, msg))
    assert (r.code, r.req_id) == (code, "r")
    assert names in r.detail
    assert s.topics == set()


@pytest.mark.parametrize(
    "topic",
    [
        "orderbook/x\n",
        "orderbook/a/b",
        "orderbook/",
        "orderbook",
        "orderbook/a b",
        "Orderbook/a",
        "candles/a",
        "orders",
        "order\n",
        "",
    ],
)
@pytest.mark.parametrize("make", [public, private])
def test_invalid_topic(topic: str, make: Any) -> None:
    s = make()
    if s.private:
        s.authenticated("0xabc")
    r = refusal(send(s, {"op": "subscribe", "args": [topic], "req_id": "t"}))
    assert (r.code, r.req_id) == ("INVALID_TOPIC", "t")
    assert s.topics == set()


@pytest.mark.parametrize("topic", ["order", "fill", "position"])
def test_private_topic_on_public_not_allowed(topic: str) -> None:
    s = public()
    r = refusal(send(s, {"op": "subscribe", "args": [topic], "req_id": "p"}))
    assert (r.code, r.req_id) == ("TOPIC_NOT_ALLOWED", "p")


def test_public_topic_on_private_not_allowed() -> None:
    s = private()
    s.authenticated("0xabc")
    r = refusal(send(s, {"op": "subscribe", "args": ["trade/A"], "req_id": "q"}))
    assert (r.code, r.req_id) == ("TOPIC_NOT_ALLOWED", "q")


@pytest.mark.parametrize("topic", ["order", "fill", "position"])
def test_private_topic_before_auth_unauthorized(topic: str) -> None:
    s = private()
    r = refusal(send(s, {"op": "subscribe", "args": [topic], "req_id": "u"}))
    assert (r.code, r.req_id) == ("UNAUTHORIZED", "u")
    assert s.topics == set()


def test_auth_on_public_not_allowed() -> None:
    r = refusal(send(public(), {"op": "auth", "bearer": "jwt", "req_id": "a"}))
    assert (r.code, r.req_id) == ("OP_NOT_ALLOWED", "a")


@pytest.mark.parametrize(
    ("msg", "code"),
    [
        ({"op": "auth", "req_id": "a"}, "MISSING_FIELD"),
        ({"op": "auth", "bearer": None, "req_id": "a"}, "MISSING_FIELD"),
        ({"op": "auth", "bearer": 1, "req_id": "a"}, "INVALID_FIELD"),
        ({"op": "auth", "bearer": ["jwt"], "req_id": "a"}, "INVALID_FIELD"),
    ],
)
def test_auth_bearer_refusals(msg: dict[str, Any], code: str) -> None:
    r = refusal(send(private(), msg))
    assert (r.code, r.req_id) == (code, "a")
    assert "bearer" in r.detail


def test_frame_too_large_boundary() -> None:
    s = public(max_frame_bytes=64)
    head = b'{"op":"ping","req_id":"r"'
    exact = head + b" " * (63 - len(head)) + b"}"
    assert len(exact) == 64
    assert s.receive_text(exact, NOW) == Ping(None, "r")
    r = refusal(s.receive_text(head + b" " * (64 - len(head)) + b"}", NOW))
    assert (r.code, r.req_id) == ("FRAME_TOO_LARGE", None)
    assert "65" in r.detail and "64" in r.detail


def test_binary_not_supported() -> None:
    r = refusal(public().receive_binary(NOW))
    assert (r.code, r.req_id) == ("BINARY_NOT_SUPPORTED", None)


# -- in order, and partly taken --------------------------------------------------------


def test_a_pipelined_subscribe_is_judged_after_the_auth_before_it() -> None:
    s = private()
    auth = parse(s, {"op": "auth", "bearer": "jwt", "req_id": "a"})
    sub = parse(s, {"op": "subscribe", "args": ["order", "fill"], "req_id": "s"})
    assert isinstance(auth, Auth) and isinstance(sub, Subscribe)  # not refused on arrival
    s.authenticated("0xabc")  # the server carried the auth out first
    assert s.admit(sub, NOW) == Admitted(("order", "fill"))
    assert s.topics == {"order", "fill"}


def test_refused_topics_of_a_subscribe_leave_the_others_subscribed() -> None:
    s = public()
    send(s, {"op": "subscribe", "args": ["trade/A"]})
    cmd = send(s, {"op": "subscribe", "args": ["trade/B", "orderbook/a/b", "order"], "req_id": "r"})
    assert isinstance(cmd, Admitted) and cmd.topics == ("trade/B",)
    r = cmd.refusal
    assert isinstance(r, Refusal)
    assert (r.code, r.req_id, r.topics) == ("INVALID_TOPIC", "r", ("orderbook/a/b", "order"))
    assert "orderbook/a/b" in r.detail and "order" in r.detail
    assert s.topics == {"trade/A", "trade/B"}


def test_the_sdk_example_subscribe_takes_the_known_private_topics() -> None:
    s = private()
    s.authenticated("0xabc")
    args = ["order", "position", "fill", "account_balance"]
    cmd = send(s, {"op": "subscribe", "args": args, "req_id": "req_2"})
    assert isinstance(cmd, Admitted) and cmd.topics == ("order", "position", "fill")
    assert isinstance(cmd.refusal, Refusal)
    assert (cmd.refusal.code, cmd.refusal.topics) == ("INVALID_TOPIC", ("account_balance",))


def test_refused_topics_of_an_unsubscribe_leave_the_others_unsubscribed() -> None:
    s = public()
    send(s, {"op": "subscribe", "args": ["trade/A", "trade/B"]})
    cmd = send(s, {"op": "unsubscribe", "args": ["trade/A", "order"], "req_id": "r"})
    assert isinstance(cmd, Admitted) and cmd.topics == ("trade/A",)
    assert isinstance(cmd.refusal, Refusal)
    assert (cmd.refusal.code, cmd.refusal.req_id) == ("TOPIC_NOT_ALLOWED", "r")
    assert s.topics == {"trade/B"}


def test_too_many_subscriptions_refuses_the_topics_past_the_limit() -> None:
    s = public(max_subscriptions=3)
    send(s, {"op": "subscribe", "args": ["trade/A", "trade/B"]})
    cmd = send(s, {"op": "subscribe", "args": ["trade/C", "trade/D"], "req_id": "m"})
    assert isinstance(cmd, Admitted) and cmd.topics == ("trade/C",)
    r = cmd.refusal
    assert isinstance(r, Refusal)
    assert (r.code, r.req_id, r.topics) == ("TOO_MANY_SUBSCRIPTIONS", "m", ("trade/D",))
    assert "3" in r.detail
    assert s.topics == {"trade/A", "trade/B", "trade/C"}
    # Topics already held do not count twice.
    cmd = send(s, {"op": "subscribe", "args": ["trade/A", "trade/C", "trade/C"], "req_id": "n"})
    assert cmd == Admitted(("trade/A", "trade/C"), None, frozenset({"trade/A", "trade/C"}))
    assert refusal(send(s, {"op": "subscribe", "args": ["trade/D"]})).code == (
        "TOO_MANY_SUBSCRIPTIONS"
    )
    # Unsubscribing frees room.
    send(s, {"op": "unsubscribe", "args": ["trade/A"]})
    assert send(s, {"op": "subscribe", "args": ["trade/D"]}) == Admitted(("trade/D",))
    assert s.topics == {"trade/B", "trade/C", "trade/D"}


def test_too_many_in_one_subscribe() -> None:
    s = public(max_subscriptions=2)
    cmd = send(s, {"op": "subscribe", "args": ["trade/A", "trade/B", "trade/C"]})
    assert isinstance(cmd, Admitted) and cmd.topics == ("trade/A", "trade/B")
    assert isinstance(cmd.refusal, Refusal)
    assert cmd.refusal.code == "TOO_MANY_SUBSCRIPTIONS"
    assert s.topics == {"trade/A", "trade/B"}


def test_a_partly_refused_op_counts_once_towards_abuse() -> None:
    s = public(abuse_refusals=1, ops_burst=100)
    bad = ["x/1", "x/2", "x/3", "trade/A"]
    cmd = send(s, {"op": "subscribe", "args": bad})
    assert isinstance(cmd, Admitted) and isinstance(cmd.refusal, Refusal)
    cmd = send(s, {"op": "subscribe", "args": bad})
    assert isinstance(cmd, Admitted) and isinstance(cmd.refusal, Abort)


# -- resume ----------------------------------------------------------------------------


def test_resume_parsed_into_positions() -> None:
    s = public()
    cmd = parse(
        s,
        {
            "op": "subscribe",
            "args": ["orderbook/A", "trade/A", "ticker/A"],
            "resume": {
                "orderbook/A": {"offset": 12, "epoch": "e1"},
                "trade/A": {"offset": 0, "epoch": ""},
            },
            "req_id": "r",
        },
    )
    assert cmd == Subscribe(
        ("orderbook/A", "trade/A", "ticker/A"),
        "r",
        {"orderbook/A": StreamPosition(12, "e1"), "trade/A": StreamPosition(0, "")},
    )


@pytest.mark.parametrize("resume", [None, {}])
def test_resume_absent_or_empty(resume: Any) -> None:
    cmd = parse(public(), {"op": "subscribe", "args": ["trade/A"], "resume": resume})
    assert cmd == Subscribe(("trade/A",), None, {})


@pytest.mark.parametrize(
    ("resume", "names"),
    [
        ([], "resume"),
        ("trade/A", "resume"),
        (1, "resume"),
        ({"trade/B": {"offset": 1, "epoch": "e"}}, "resume.trade/B"),
        ({"trade/A": 5}, "resume.trade/A"),
        ({"trade/A": [5, "e"]}, "resume.trade/A"),
        ({"trade/A": None}, "resume.trade/A"),
        ({"trade/A": {"epoch": "e"}}, "resume.trade/A.offset"),
        ({"trade/A": {"offset": -1, "epoch": "e"}}, "resume.trade/A.offset"),
        ({"trade/A": {"offset": 1.0, "epoch": "e"}}, "resume.trade/A.offset"),
        ({"trade/A": {"offset": "1", "epoch": "e"}}, "resume.trade/A.offset"),
        ({"trade/A": {"offset": True, "epoch": "e"}}, "resume.trade/A.offset"),
        ({"trade/A": {"offset": 1}}, "resume.trade/A.epoch"),
        ({"trade/A": {"offset": 1, "epoch": 7}}, "resume.trade/A.epoch"),
        ({"trade/A": {"offset": 1, "epoch": None}}, "resume.trade/A.epoch"),
    ],
)
def test_resume_invalid_field(resume: Any, names: str) -> None:
    s = public()
    r = refusal(send(s, {"op": "subscribe", "args": ["trade/A"], "resume": resume, "req_id": "r"}))
    assert (r.code, r.req_id) == ("INVALID_FIELD", "r")
    assert names in r.detail
    assert s.topics == set()


# -- rate limit ------------------------------------------------------------------------

PING = {"op": "ping", "req_id": "p"}


def test_rate_limit_burst_then_refill() -> None:
    s = public(ops_burst=5, ops_per_second=4.0)
    t = 100.0
    for _ in range(5):
        assert send(s, PING, t) == Ping(None, "p")
    r = refusal(send(s, PING, t))
    assert (r.code, r.req_id) == ("RATE_LIMITED", None)  # the frame is not even parsed
    # 4 ops/s: half a token after 0.125 s is not enough; a whole one after 0.25 s is.
    assert refusal(send(s, PING, t + 0.125)).code == "RATE_LIMITED"
    assert send(s, PING, t + 0.25) == Ping(None, "p")
    assert refusal(send(s, PING, t + 0.25)).code == "RATE_LIMITED"
    # One second refills four tokens, not more.
    t += 1.25
    for _ in range(4):
        assert send(s, PING, t) == Ping(None, "p")
    assert refusal(send(s, PING, t)).code == "RATE_LIMITED"


def test_rate_limit_refill_is_capped_at_burst() -> None:
    s = public(ops_burst=3, ops_per_second=10.0)
    for _ in range(3):
        assert isinstance(send(s, PING, 50.0), Ping)
    later = 50.0 + 3600.0
    for _ in range(3):
        assert isinstance(send(s, PING, later), Ping)
    assert refusal(send(s, PING, later)).code == "RATE_LIMITED"


def test_rate_limit_applies_before_anything_else() -> None:
    s = public(ops_burst=1, ops_per_second=1.0, max_frame_bytes=10)
    assert refusal(s.receive_text(b"not json", NOW)).code == "INVALID_JSON"
    assert refusal(s.receive_text(b"x" * 100, NOW)).code == "RATE_LIMITED"
    assert refusal(s.receive_text(b"not json", NOW)).code == "RATE_LIMITED"


def test_binary_frames_spend_tokens() -> None:
    s = public(ops_burst=2, ops_per_second=1.0)
    assert refusal(s.receive_binary(NOW)).code == "BINARY_NOT_SUPPORTED"
    assert refusal(s.receive_binary(NOW)).code == "BINARY_NOT_SUPPORTED"
    assert refusal(send(s, PING, NOW)).code == "RATE_LIMITED"


# -- abuse -----------------------------------------------------------------------------


def test_abuse_aborts_after_too_many_refusals_in_window() -> None:
    s = public(abuse_refusals=3, abuse_window=10.0)
    for i in range(3):
        assert refusal(s.receive_text(b"{", NOW + i)).code == "INVALID_JSON"
    assert s.receive_text(b"{", NOW + 3) == Abort(1008, "Too many refused requests")
    # Still abusive while the window lasts, for any kind of refusal.
    assert isinstance(s.receive_binary(NOW + 4), Abort)


def test_accepted_ops_do_not_reset_the_refusal_count() -> None:
    s = public(abuse_refusals=2, abuse_window=10.0)
    for _ in range(2):
        assert isinstance(s.receive_text(b"[]", NOW), Refusal)
        assert isinstance(send(s, PING, NOW), Ping)
    assert isinstance(s.receive_text(b"[]", NOW), Abort)


def test_refusals_in_separate_windows_are_not_abuse() -> None:
    s = public(abuse_refusals=2, abuse_window=10.0)
    assert isinstance(s.receive_text(b"{", NOW), Refusal)
    assert isinstance(s.receive_text(b"{", NOW + 1), Refusal)
    # More than abuse_window after the first: a fresh window.
    assert isinstance(s.receive_text(b"{", NOW + 10.5), Refusal)
    assert isinstance(s.receive_text(b"{", NOW + 10.6), Refusal)
    assert isinstance(s.receive_text(b"{", NOW + 10.7), Abort)


def test_rate_limited_frames_count_as_refusals() -> None:
    s = public(ops_burst=1, ops_per_second=0.001, abuse_refusals=3, abuse_window=10.0)
    assert isinstance(send(s, PING, NOW), Ping)
    for _ in range(3):
        assert refusal(send(s, PING, NOW)).code == "RATE_LIMITED"
    assert isinstance(send(s, PING, NOW), Abort)


def test_default_abuse_threshold() -> None:
    s = public()
    # The first ops_burst frames are refused as INVALID_JSON, the rest as RATE_LIMITED:
    # every one of them is a refusal.
    for _ in range(StreamLimits().abuse_refusals):
        assert isinstance(s.receive_text(b"{", NOW), Refusal)
    assert isinstance(s.receive_text(b"{", NOW), Abort)


# -- encoders --------------------------------------------------------------------------


def decoded(data: bytes) -> Any:
    return orjson.loads(data)


def test_encode_subscribed() -> None:
    assert decoded(encode_subscribed(("trade/A", "orderbook/A"), "r")) == {
        "op": "subscribed",
        "args": ["trade/A", "orderbook/A"],
        "req_id": "r",
    }
    assert decoded(encode_subscribed(("trade/A",), None)) == {
        "op": "subscribed",
        "args": ["trade/A"],
    }
    assert decoded(encode_subscribed(("trade/A",), None, {})) == {
        "op": "subscribed",
        "args": ["trade/A"],
    }
    assert decoded(
        encode_subscribed(("trade/A", "orderbook/A"), "r", {"trade/A": True, "orderbook/A": False})
    ) == {
        "op": "subscribed",
        "args": ["trade/A", "orderbook/A"],
        "recovered": {"trade/A": True, "orderbook/A": False},
        "req_id": "r",
    }


def test_encode_unsubscribed() -> None:
    assert decoded(encode_unsubscribed(("trade/A",), "u")) == {
        "op": "unsubscribed",
        "args": ["trade/A"],
        "req_id": "u",
    }
    assert decoded(encode_unsubscribed(("trade/A",), None)) == {
        "op": "unsubscribed",
        "args": ["trade/A"],
    }


def test_encode_pong() -> None:
    assert decoded(encode_pong(1_700_000_000_000_000_001, 42, "p")) == {
        "op": "pong",
        "server_ts": 1_700_000_000_000_000_001,
        "client_ts": 42,
        "req_id": "p",
    }
    # The SDK types client_ts as optional: absent, not null, when the ping had no ts.
    assert decoded(encode_pong(5, None, None)) == {"op": "pong", "server_ts": 5}


@pytest.mark.parametrize(
    "code",
    [
        "INVALID_JSON",
        "INVALID_REQUEST",
        "MISSING_FIELD",
        "INVALID_FIELD",
        "UNKNOWN_OP",
        "OP_NOT_ALLOWED",
        "INVALID_TOPIC",
        "TOPIC_NOT_ALLOWED",
        "UNAUTHORIZED",
        "TOO_MANY_SUBSCRIPTIONS",
        "RATE_LIMITED",
        "FRAME_TOO_LARGE",
        "BINARY_NOT_SUPPORTED",
        "UNAVAILABLE",
    ],
)
def test_encode_error(code: str) -> None:
    assert decoded(encode_error(code, "why", "e")) == {
        "op": "error",
        "message": code,
        "detail": "why",
        "req_id": "e",
    }
    assert decoded(encode_error(code, "why", None)) == {
        "op": "error",
        "message": code,
        "detail": "why",
    }


def test_encode_error_names_refused_topics_in_args() -> None:
    assert decoded(encode_error("INVALID_TOPIC", "why", "e", ("x/1",))) == {
        "op": "error",
        "message": "INVALID_TOPIC",
        "detail": "why",
        "args": ["x/1"],
        "req_id": "e",
    }


def test_encode_auth() -> None:
    assert decoded(encode_auth("0xabc", None, "a")) == {
        "op": "auth",
        "success": True,
        "user_id": "0xabc",
        "req_id": "a",
    }
    assert decoded(encode_auth(None, "INVALID_TOKEN", "a")) == {
        "op": "auth",
        "success": False,
        "message": "INVALID_TOKEN",
        "req_id": "a",
    }
    assert decoded(encode_auth(None, "INVALID_TOKEN", None)) == {
        "op": "auth",
        "success": False,
        "message": "INVALID_TOKEN",
    }


def test_encode_event() -> None:
    data = {"type": "trades", "market_addr": "A", "seq": 3, "trades": []}
    pub = Publication("trade/A", 17, "ep", data, 1_700_000_000_123)
    assert decoded(encode_event("trade/A", pub)) == {
        "op": "event",
        "topic": "trade/A",
        "data": data,
        "offset": 17,
        "epoch": "ep",
        "server_ts_ms": 1_700_000_000_123,
    }


def test_encode_event_array_data() -> None:
    pub = Publication("order", 1, "ep", [{"sid": "1"}, {"sid": "2"}], 5)
    assert decoded(encode_event("order", pub)) == {
        "op": "event",
        "topic": "order",
        "data": [{"sid": "1"}, {"sid": "2"}],
        "offset": 1,
        "epoch": "ep",
        "server_ts_ms": 5,
    }


def test_refusal_roundtrip_through_encode_error() -> None:
    r = refusal(send(public(), {"op": "subscribe", "args": ["orderbook/x\n"], "req_id": "z"}))
    assert decoded(encode_error(r.code, r.detail, r.req_id)) == {
        "op": "error",
        "message": "INVALID_TOPIC",
        "detail": r.detail,
        "req_id": "z",
    }
