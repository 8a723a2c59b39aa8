"""Webhooks, pure parts (PROTOCOL.md section 1, Webhooks): signatures checked by the
public ``standardwebhooks`` verifier, the retry schedule, target checks, body, filters.
"""

from __future__ import annotations

import base64
import ipaddress
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import formatdate

import orjson
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from streamgate.errors import ConfigError
from streamgate.webhooks import body, schedule, signing, targets
from streamgate.webhooks.targets import TargetRefused, TargetUnresolvable

# -- signing --------------------------------------------------------------------------------


def _now() -> int:
    return int(time.time())  # the reference verifier allows 5 minutes of skew


def test_new_secret_form() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret[len("whsec_") :], validate=True)
    assert 24 <= len(key) <= 32
    assert signing.secret_key(secret) == key
    assert signing.new_secret() != secret


def test_signature_verified_by_standardwebhooks() -> None:
    secret = signing.new_secret()
    msg_id = signing.new_message_id()
    payload = body.webhook_body(msg_id, "deposit.completed", "2024-05-01T12:00:00.000Z", {}, "u1")
    hdrs = signing.headers(msg_id, _now(), payload, [secret])
    assert set(hdrs) == {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"}
    assert hdrs["content-type"] == "application/json"
    assert hdrs["webhook-id"] == msg_id
    assert hdrs["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(payload, hdrs) == orjson.loads(payload)


def test_sign_matches_reference_and_known_vector() -> None:
    # The example of the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    ts = 1614265330
    payload = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.sign(secret, msg_id, ts, payload) == expected
    # And the reference library's own signer agrees on a fresh secret.
    fresh = signing.new_secret()
    when = datetime.fromtimestamp(ts, tz=UTC)
    reference = Webhook(fresh).sign(msg_id, when, payload.decode())
    assert signing.sign(fresh, msg_id, ts, payload) == reference
    unpadded = "whsec_" + base64.b64encode(b"k" * 24).decode().rstrip("=")
    assert signing.sign(unpadded, "msg_x", ts, b"{}").startswith("v1,")


def test_rotation_both_secrets_sign_each_verifies_alone() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    msg_id = signing.new_message_id()
    payload = body.webhook_body(msg_id, "trade.active", "2024-05-01T12:00:00.000Z", {"a": 1}, None)
    hdrs = signing.headers(msg_id, _now(), payload, [old, new])
    signatures = hdrs["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    for secret in (old, new):
        Webhook(secret).verify(payload, hdrs)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(payload, hdrs)
    # Each signature alone is the one its secret makes.
    assert signatures == [
        signing.sign(s, msg_id, int(hdrs["webhook-timestamp"]), payload) for s in (old, new)
    ]
    # A repeated secret signs once.
    assert len(signing.headers(msg_id, _now(), payload, [old, old])["webhook-signature"]) == len(
        signatures[0]
    )


def test_tampered_body_fails() -> None:
    secret = signing.new_secret()
    msg_id = signing.new_message_id()
    payload = body.webhook_body(msg_id, "trade.active", "2024-05-01T12:00:00.000Z", {"p": 1}, "u")
    hdrs = signing.headers(msg_id, _now(), payload, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(payload.replace(b'"p":1', b'"p":2'), hdrs)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(payload, {**hdrs, "webhook-id": signing.new_message_id()})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(payload, {**hdrs, "webhook-timestamp": str(_now() - 1)})


def test_retry_keeps_id_signs_new_timestamp() -> None:
    secret = signing.new_secret()
    msg_id = signing.new_message_id()
    payload = b'{"id":"x"}'
    first = signing.headers(msg_id, _now() - 60, payload, [secret])
    again = signing.headers(msg_id, _now(), payload, [secret])
    assert first["webhook-id"] == again["webhook-id"] == msg_id
    assert first["webhook-signature"] != again["webhook-signature"]
    Webhook(secret).verify(payload, again)


GOOD_SECRET = "whsec_" + "A" * 32


@pytest.mark.parametrize(
    ("secret", "msg_id", "ts", "message"),
    [
        ("nope", "msg_1", 1, "starts with"),
        ("whsec_", "msg_1", 1, "empty"),
        ("whsec_!!!!", "msg_1", 1, "base64"),
        (GOOD_SECRET, "", 1, "message id"),
        (GOOD_SECRET, "msg 1", 1, "message id"),
        (GOOD_SECRET, "msg_1\r\nx: y", 1, "message id"),
        (GOOD_SECRET, "msg_1", -1, "timestamp"),
    ],
)
def test_sign_refuses_bad_input(secret: str, msg_id: str, ts: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        signing.sign(secret, msg_id, ts, b"{}")


def test_headers_need_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signing.headers("msg_1", 1, b"{}", [])


def test_headers_refuse_a_lone_string() -> None:
    with pytest.raises(TypeError):
        signing.headers("msg_1", 1, b"{}", signing.new_secret())


def test_message_ids_sortable_and_unique() -> None:
    ids = [signing.new_message_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(i.startswith("msg_") and len(i) == 30 for i in ids)
    time.sleep(0.002)
    assert signing.new_message_id() > ids[-1]


# -- schedule -------------------------------------------------------------------------------


def test_default_schedule() -> None:
    assert schedule.DEFAULT_SCHEDULE == (30, 30, 300, 300, 900, 900, 3600, 3600, 21600, 21600)
    assert schedule.DELIVERY_TIMEOUT == 10.0
    assert schedule.DISABLE_AFTER == 72 * 3600


def test_next_delay_follows_schedule_with_jitter_then_exhausts() -> None:
    rng = random.Random(7)
    assert schedule.next_delay(0, retry_after=None, rng=rng) == 0.0
    attempts = 1  # the first try, made at once
    for expected in schedule.DEFAULT_SCHEDULE:
        for _ in range(50):
            delay = schedule.next_delay(attempts, retry_after=None, rng=rng)
            assert delay is not None
            assert expected * 0.9 <= delay <= expected * 1.1
        attempts += 1
    assert attempts == 11
    assert schedule.next_delay(attempts, retry_after=None, rng=rng) is None
    assert schedule.next_delay(attempts, retry_after=60, rng=rng) is None
    with pytest.raises(ValueError, match="attempt"):
        schedule.next_delay(-1, retry_after=None, rng=rng)


def test_jitter_spreads() -> None:
    rng = random.Random(1)
    delays = {schedule.next_delay(3, retry_after=None, rng=rng) for _ in range(20)}
    assert len(delays) == 20


def test_next_delay_custom_schedule() -> None:
    rng = random.Random(0)
    custom = (1.0, 2.0)
    assert schedule.next_delay(1, custom, retry_after=None, rng=rng) == pytest.approx(1, rel=0.1)
    assert schedule.next_delay(2, custom, retry_after=None, rng=rng) == pytest.approx(2, rel=0.1)
    assert schedule.next_delay(3, custom, retry_after=None, rng=rng) is None


def test_retry_after_honoured_and_capped() -> None:
    rng = random.Random(3)
    # Later than the schedule: Retry-After wins.
    assert schedule.next_delay(1, retry_after=120.0, rng=rng) == 120.0
    # Sooner than the schedule: the schedule wins.
    delay = schedule.next_delay(7, retry_after=5.0, rng=rng)
    assert delay is not None and 3600 * 0.9 <= delay <= 3600 * 1.1
    # Absurd: cut to 24 h.
    assert schedule.next_delay(1, retry_after=10**9, rng=rng) == schedule.MAX_RETRY_AFTER == 86400
    assert schedule.next_delay(1, retry_after=0.0, rng=rng) == pytest.approx(30, rel=0.1)


def test_parse_retry_after_delta_seconds() -> None:
    assert schedule.parse_retry_after("120", 1000.0) == 120.0
    assert schedule.parse_retry_after(" 0 ", 1000.0) == 0.0
    assert schedule.parse_retry_after("1.5", 1000.0) == 1.5
    for bad in (None, "", "  ", "-5", "soon", "1e3", "0x10", "nan"):
        assert schedule.parse_retry_after(bad, 1000.0) is None


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    assert schedule.parse_retry_after(formatdate(now + 90, usegmt=True), now) == 90.0
    assert schedule.parse_retry_after(formatdate(now - 90, usegmt=True), now) == 0.0
    # RFC 9110's example and its obsolete forms.
    example = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert schedule.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", example - 30) == 30.0
    assert schedule.parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", example - 30) == 30.0
    assert schedule.parse_retry_after("Wed Oct 21 07:28:00 2015", example - 30) == 30.0
    assert schedule.parse_retry_after("Wed, 32 Oct 2015 07:28:00 GMT", example) is None


def test_parse_schedule() -> None:
    assert schedule.parse_schedule("1,2,5") == (1.0, 2.0, 5.0)
    assert schedule.parse_schedule(" 0.5 , 30 ,3600") == (0.5, 30.0, 3600.0)
    assert schedule.parse_schedule("0") == (0.0,)
    default_text = ",".join(str(s) for s in schedule.DEFAULT_SCHEDULE)
    assert schedule.parse_schedule(default_text) == schedule.DEFAULT_SCHEDULE


@pytest.mark.parametrize(
    "text",
    ["", "  ", "1,,2", "1,", "a", "1;2", "-1", "inf", "nan", "1e9", ",".join(["1"] * 101)],
)
def test_parse_schedule_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="STREAMGATE_WEBHOOKS_RETRY_SCHEDULE"):
        schedule.parse_schedule(text)


def test_should_disable_after_72_hours() -> None:
    now = 1_700_000_000.0
    assert not schedule.should_disable(None, now)
    assert not schedule.should_disable(now - 72 * 3600 + 1, now)
    assert schedule.should_disable(now - 72 * 3600, now)
    assert schedule.should_disable(now - 100 * 3600, now)


# -- targets --------------------------------------------------------------------------------


class FakeResolver:
    """Answers from a table; records what it was asked."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return self.table[host]


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/in",
        "http://hooks.example.com:8080/a/b?x=1",
        "https://HOOKS.example.com./x",
        "https://93.184.216.34/x",
        "https://[2606:4700::1111]:8443/x",
        "https://xn--bcher-kva.example/x",
        "https://a_b.example.com/",
    ],
)
def test_check_url_accepts(url: str) -> None:
    assert targets.check_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "non-empty"),
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("example.com/hook", "scheme"),
        ("https:///path", "no host"),
        ("https://user:pw@example.com/", "user information"),
        ("https://user@example.com/", "user information"),
        ("https://example.com:0/", "port"),
        ("https://example.com:65536/", "malformed"),
        ("https://example.com:abc/", "malformed"),
        ("https://example.com/" + "a" * 2048, "longer"),
        ("https://exa mple.com/", "ASCII"),
        ("https://example.com/\nx", "ASCII"),
        ("https://bücher.example/", "ASCII"),
        ("https://127.1/", "dotted quad"),
        ("https://2130706433/", "dotted quad"),
        ("https://0x7f000001/", "dotted quad"),
        ("https://0177.0.0.1/", "dotted quad"),
        ("https://[fe80::1%25eth0]/", "zone"),
        ("https://[not:an:ip]/", "malformed|IPv6"),
        ("https://exa$mple.com/", "host name"),
        ("https://a..b/", "host name"),
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(TargetRefused, match=reason) as info:
        targets.check_url(url)
    assert info.value.reason


def test_check_url_length_limit_exact() -> None:
    base = "https://example.com/"
    assert targets.check_url(base + "a" * (2048 - len(base)))


PRIVATE_ADDRESSES = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared address space (carrier NAT)
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "::1",
    "::",
    "fc00::",
    "fd12:3456::1",
    "fe80::",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001:db8::1",  # documentation
]
PUBLIC_ADDRESSES = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of a public address (IPv6-only networks with DNS64)
]


@pytest.mark.parametrize("address", PRIVATE_ADDRESSES)
async def test_private_addresses_refused(address: str) -> None:
    resolver = FakeResolver({"hooks.example.com": [address]})
    with pytest.raises(TargetRefused, match="refused") as info:
        await targets.resolve_and_check(
            "https://hooks.example.com/x", allow_private=False, resolver=resolver
        )
    assert not isinstance(info.value, TargetUnresolvable)
    assert resolver.asked == [("hooks.example.com", 443)]
    # allow_private lets the same address through.
    got = await targets.resolve_and_check(
        "https://hooks.example.com/x", allow_private=True, resolver=resolver
    )
    assert got == [address]


@pytest.mark.parametrize("address", PRIVATE_ADDRESSES)
async def test_private_ip_literals_refused(address: str) -> None:
    resolver = FakeResolver({})
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(TargetRefused, match="refused"):
        await targets.resolve_and_check(
            f"http://{host}:8080/x", allow_private=False, resolver=resolver
        )
    got = await targets.resolve_and_check(
        f"http://{host}:8080/x", allow_private=True, resolver=resolver
    )
    assert len(got) == 1
    assert resolver.asked == []  # a literal is not resolved


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
async def test_public_addresses_accepted(address: str) -> None:
    resolver = FakeResolver({"hooks.example.com": [address]})
    got = await targets.resolve_and_check(
        "http://hooks.example.com/x", allow_private=False, resolver=resolver
    )
    assert got == [address]
    assert resolver.asked == [("hooks.example.com", 80)]
    assert targets.address_refusal(ipaddress.ip_address(address)) is None


async def test_any_private_address_refuses_the_target() -> None:
    resolver = FakeResolver({"mixed.example.com": ["93.184.216.34", "8.8.8.8", "10.0.0.5"]})
    with pytest.raises(TargetRefused, match=r"10\.0\.0\.5"):
        await targets.resolve_and_check(
            "https://mixed.example.com:8443/", allow_private=False, resolver=resolver
        )
    assert resolver.asked == [("mixed.example.com", 8443)]


async def test_addresses_returned_once_in_order() -> None:
    resolver = FakeResolver({"h.example.com": ["8.8.8.8", "2001:4860:4860::8888", "8.8.8.8"]})
    got = await targets.resolve_and_check(
        "https://h.example.com/", allow_private=False, resolver=resolver
    )
    assert got == ["8.8.8.8", "2001:4860:4860::8888"]


async def test_public_literal_accepted_without_resolving() -> None:
    resolver = FakeResolver({})
    got = await targets.resolve_and_check(
        "https://[2606:4700:4700::1111]/x", allow_private=False, resolver=resolver
    )
    assert got == ["2606:4700:4700::1111"]
    assert resolver.asked == []


async def test_unresolvable_and_empty() -> None:
    resolver = FakeResolver({"empty.example.com": []})
    with pytest.raises(TargetUnresolvable, match="cannot resolve"):
        await targets.resolve_and_check(
            "https://nowhere.example.com/", allow_private=False, resolver=resolver
        )
    with pytest.raises(TargetUnresolvable, match="no address"):
        await targets.resolve_and_check(
            "https://empty.example.com/", allow_private=True, resolver=resolver
        )


async def test_resolver_garbage_refused() -> None:
    resolver = FakeResolver({"odd.example.com": ["not-an-ip"]})
    with pytest.raises(TargetRefused, match="not an IP address"):
        await targets.resolve_and_check(
            "https://odd.example.com/", allow_private=True, resolver=resolver
        )


async def test_url_form_checked_before_resolving() -> None:
    resolver = FakeResolver({"example.com": ["8.8.8.8"]})
    with pytest.raises(TargetRefused, match="scheme"):
        await targets.resolve_and_check(
            "gopher://example.com/", allow_private=True, resolver=resolver
        )
    assert resolver.asked == []


# -- body and filters -----------------------------------------------------------------------


def test_body_shape_with_sub_user() -> None:
    data = {"fundingId": "f1", "status": "completed", "receiveAmountUsd": "12.50"}
    raw = body.webhook_body("msg_1", "deposit.completed", "2024-05-01T12:00:00.000Z", data, "u-7")
    assert raw == (
        b'{"id":"msg_1","type":"deposit.completed","createdAt":"2024-05-01T12:00:00.000Z",'
        b'"data":{"fundingId":"f1","status":"completed","receiveAmountUsd":"12.50"},'
        b'"subUser":"u-7"}'
    )


def test_body_shape_tenant_wide() -> None:
    data = {"severity": "info", "message": "hello"}
    raw = body.webhook_body("msg_2", "system.notice", "2024-05-01T12:00:00.000Z", data, None)
    assert list(orjson.loads(raw)) == ["id", "type", "createdAt", "data"]


def test_created_at() -> None:
    assert body.created_at(1714564800000) == "2024-05-01T12:00:00.000Z"
    assert body.created_at(1714564800007) == "2024-05-01T12:00:00.007Z"
    assert body.created_at(0) == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("event", "filters", "expected"),
    [
        ("trade.active", None, True),
        ("trade.active", [], True),
        ("trade.active", ["trade.active"], True),
        ("trade.active", ["trade.completed"], False),
        ("trade.active", ["trade.*"], True),
        ("trade.active", ["deposit.*"], False),
        ("deposit.refunded", ["deposit.*"], True),
        ("deposit.refunded", ["trade.*", "deposit.refunded"], True),
        ("system.notice", ["trade.*", "deposit.*"], False),
        ("system.notice", ["system.notice"], True),
        ("tradex.active", ["trade.*"], False),
        ("trade", ["trade.*"], False),
    ],
)
def test_event_matches(event: str, filters: list[str] | None, expected: bool) -> None:
    assert body.event_matches(event, filters) is expected


def test_check_event_types() -> None:
    assert body.check_event_types(["trade.*", "deposit.completed", "trade.*"]) == (
        "trade.*",
        "deposit.completed",
    )
    assert body.check_event_types([]) == ()
    assert body.EVENT_FAMILIES == ("deposit", "trade", "system")
    for bad in (["trade.bogus"], ["*"], ["trade"], [1], "trade.*", ["x.*"]):
        with pytest.raises(ValueError, match="eventTypes"):
            body.check_event_types(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most"):
        body.check_event_types(["trade.active"] * 65)


def test_keyed_message_ids_are_one_per_tenant_and_key() -> None:
    first = signing.keyed_message_id("acme", "deposit-42")
    assert first == signing.keyed_message_id("acme", "deposit-42")  # any node, any retry
    assert first.startswith("msg_") and len(first) == 4 + 26
    assert set(first[4:]) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    others = {
        signing.keyed_message_id("acme2", "deposit-42"),
        signing.keyed_message_id("acme", "deposit-43"),
        signing.keyed_message_id("acm", "edeposit-42"),
        signing.keyed_message_id("acme", "\ud800"),  # a lone surrogate still makes an id
    }
    assert first not in others and len(others) == 4
