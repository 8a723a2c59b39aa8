"""Tenants and API keys: hash-only storage, constant-time check, revocation, schema."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamgate.auth.apikeys import (
    API_KEY_REVOKED,
    COMPONENT,
    DB_NAME,
    INVALID_API_KEY,
    MIGRATIONS,
    MISSING_API_KEY,
    ApiKeyError,
    ApiKeyInfo,
    ApiKeyStore,
    check_tenant,
)
from streamgate.errors import ConfigError, StreamgateError

NOW = 1_700_000_000.0
KEY_RE = re.compile(r"sgk_[A-Za-z0-9_-]{43}")
KEY_ID_RE = re.compile(r"key_[0-9a-f]{12}")


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[ApiKeyStore]:
    with ApiKeyStore(tmp_path / DB_NAME, clock=clock) as opened:
        yield opened


def raw_bytes(directory: Path) -> bytes:
    """Everything SQLite wrote: the database file and its WAL, as they are on disk."""
    return b"".join(p.read_bytes() for p in sorted(directory.glob(DB_NAME + "*")))


def refusal(store: ApiKeyStore, key: str | None) -> str:
    with pytest.raises(ApiKeyError) as info:
        store.authenticate(key)
    return info.value.key


# creating keys


def test_create_returns_a_fresh_key_once(store: ApiKeyStore) -> None:
    key, info = store.create("acme")
    assert KEY_RE.fullmatch(key), key
    assert KEY_ID_RE.fullmatch(info.key_id), info.key_id
    assert info == ApiKeyInfo(
        key_id=info.key_id, tenant="acme", prefix=key[:8], created_at=NOW, revoked_at=None
    )
    assert info.prefix.startswith("sgk_") and len(info.prefix) == 8
    assert info.active
    assert key not in repr(info)
    assert store.authenticate(key) == info


def test_keys_and_ids_are_unique(store: ApiKeyStore) -> None:
    made = [store.create("acme") for _ in range(200)]
    assert len({key for key, _ in made}) == 200
    assert len({info.key_id for _, info in made}) == 200
    for key, info in made[::20]:
        assert store.authenticate(key) == info


@pytest.mark.parametrize(
    "tenant", ["a", "acme", "A-b_c.d", "0", "a" * 64, "Tenant.Name-1_x", "..."]
)
def test_valid_tenant_names(store: ApiKeyStore, tenant: str) -> None:
    assert check_tenant(tenant) == tenant
    _, info = store.create(tenant)
    assert info.tenant == tenant
    assert store.tenants() == [tenant]


@pytest.mark.parametrize(
    "tenant",
    ["", "a" * 65, "a b", " acme", "acme\n", "a/b", "a:b", "ténant", "a\x00", "acme*", "x@y"],
)
def test_invalid_tenant_names_are_refused(store: ApiKeyStore, tenant: str) -> None:
    with pytest.raises(ValueError, match="tenant"):
        check_tenant(tenant)
    with pytest.raises(ValueError, match="tenant"):
        store.create(tenant)
    assert store.tenants() == []
    assert store.list() == []


def test_non_string_tenant_is_refused(store: ApiKeyStore) -> None:
    bad: Any = 42
    with pytest.raises(ValueError, match="tenant"):
        store.create(bad)


def test_tenants_come_with_their_first_key(store: ApiKeyStore) -> None:
    assert store.tenants() == []
    store.create("zeta")
    store.create("acme")
    store.create("acme")
    store.create("Acme")  # names are case-sensitive
    assert store.tenants() == ["Acme", "acme", "zeta"]


# authenticating


def test_missing_key(store: ApiKeyStore) -> None:
    store.create("acme")
    for key in (None, "", "   "):
        assert refusal(store, key) == MISSING_API_KEY


def test_unknown_keys_are_invalid(store: ApiKeyStore) -> None:
    key, info = store.create("acme")
    for wrong in (
        "sgk_" + "A" * 43,
        key[:-1],
        key + "x",
        key.upper(),
        info.key_id,  # the public id is not a credential
        info.prefix,
        hashlib.sha256(key.encode()).hexdigest(),  # nor is the stored digest
        "x" * 10_000,
        "\udcff",
    ):
        assert refusal(store, wrong) == INVALID_API_KEY, wrong
    assert store.authenticate(key) == info


def test_surrounding_whitespace_is_ignored(store: ApiKeyStore) -> None:
    key, info = store.create("acme")
    assert store.authenticate(f" {key}\t") == info


def test_revoked_key(store: ApiKeyStore, clock: Clock) -> None:
    key, info = store.create("acme")
    other, _ = store.create("acme")
    clock.now += 10
    revoked = store.revoke(key)
    assert revoked == ApiKeyInfo(info.key_id, "acme", info.prefix, NOW, NOW + 10)
    assert not revoked.active
    assert refusal(store, key) == API_KEY_REVOKED
    assert store.authenticate(other).tenant == "acme"  # only that key


def test_api_key_error() -> None:
    for key in (MISSING_API_KEY, INVALID_API_KEY, API_KEY_REVOKED):
        error = ApiKeyError(key)
        assert isinstance(error, StreamgateError)
        assert error.status == 401
        assert error.key == key
        assert error.error() == {"code": 401, "key": key, "message": error.message}
        assert error.message
        assert key in str(error)


def test_authenticate_compares_digests_in_constant_time(
    store: ApiKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, _ = store.create("acme")
    revoked, _ = store.create("acme")
    store.revoke(revoked)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module calls hmac.compare_digest
    store.authenticate(key)
    assert calls == [(hashlib.sha256(key.encode()).digest(),) * 2]
    calls.clear()
    assert refusal(store, revoked) == API_KEY_REVOKED
    assert len(calls) == 1  # the digest is checked before the revocation is looked at
    calls.clear()
    assert refusal(store, "sgk_" + "B" * 43) == INVALID_API_KEY
    assert calls == []  # no row: nothing stored was compared


# storage


def test_only_digests_are_stored(tmp_path: Path) -> None:
    store = ApiKeyStore.in_data_dir(tmp_path)
    keys = [store.create("acme")[0] for _ in range(5)]
    store.revoke(keys[0])
    for opened in (True, False):  # in the WAL while open, in the main file after
        data = raw_bytes(tmp_path)
        for key in keys:
            assert key.encode() not in data
            assert key[4:].encode() not in data  # nor the random part alone
            assert key[4:20].encode() not in data
        if opened:
            store.close()
    data = raw_bytes(tmp_path)
    assert hashlib.sha256(keys[1].encode()).digest() in data
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        rows = db.execute("SELECT * FROM api_keys").fetchall()
    db.close()
    assert len(rows) == 5
    texts = [v for row in rows for v in row if isinstance(v, str)]
    assert not [t for t in texts for key in keys if len(t) > 8 and t in key]  # prefixes only


def test_database_file_is_private(tmp_path: Path) -> None:
    ApiKeyStore.in_data_dir(tmp_path / "a" / "b").close()
    path = tmp_path / "a" / "b" / DB_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_open_database_file_is_never_opened_again_by_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Closing any descriptor of a database file drops every POSIX lock the process holds
    # on it, SQLite's too (seen as "disk I/O error" under concurrent use): only SQLite
    # may open it.
    first = ApiKeyStore.in_data_dir(tmp_path)
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    second = ApiKeyStore.in_data_dir(tmp_path)
    assert str(tmp_path / DB_NAME) not in opened
    key, info = second.create("acme")
    assert first.authenticate(key) == info
    first.close()
    second.close()


def test_new_file_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_link(src: Any, dst: Any) -> None:
        raise PermissionError("no hard links here")

    monkeypatch.setattr(os, "link", no_link)
    with ApiKeyStore.in_data_dir(tmp_path) as store:
        key, info = store.create("acme")
        assert store.authenticate(key) == info
    assert stat.S_IMODE((tmp_path / DB_NAME).stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_NAME]  # no temporary left


def test_schema_created_once_and_reopened(tmp_path: Path, clock: Clock) -> None:
    first = ApiKeyStore.in_data_dir(tmp_path)
    key, info = first.create("acme")
    first.close()
    first.close()  # idempotent
    for _ in range(3):
        with ApiKeyStore.in_data_dir(tmp_path) as again:
            assert again.authenticate(key) == info
            assert again.tenants() == ["acme"]
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        versions = db.execute("SELECT component, version FROM schema_versions").fetchall()
        tables = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        journal = db.execute("PRAGMA journal_mode").fetchone()
    db.close()
    assert versions == [(COMPONENT, len(MIGRATIONS))]
    assert tables == [("api_keys",), ("schema_versions",), ("tenants",)]
    assert journal == ("wal",)


def test_other_components_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / DB_NAME
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER)")
        db.execute("INSERT INTO schema_versions VALUES ('webhooks', 7)")
        db.execute("CREATE TABLE endpoints (id TEXT)")
    db.close()
    with ApiKeyStore(path) as store:
        key, _ = store.create("acme")
        store.authenticate(key)
    db = sqlite3.connect(path)
    versions = dict(db.execute("SELECT component, version FROM schema_versions").fetchall())
    db.close()
    assert versions == {"webhooks": 7, COMPONENT: len(MIGRATIONS)}


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    ApiKeyStore.in_data_dir(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    with db:
        db.execute(
            "UPDATE schema_versions SET version = ? WHERE component = ?",
            (len(MIGRATIONS) + 1, COMPONENT),
        )
    db.close()
    with pytest.raises(ConfigError, match="newer"):
        ApiKeyStore.in_data_dir(tmp_path)


def test_unusable_files_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database, not at all" * 100)
    with pytest.raises(ConfigError):
        ApiKeyStore.in_data_dir(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError):
        ApiKeyStore.in_data_dir(blocker)
    (tmp_path / "dir" / DB_NAME).mkdir(parents=True)
    with pytest.raises(ConfigError):
        ApiKeyStore.in_data_dir(tmp_path / "dir")


def test_concurrent_first_opens_agree(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    stores: list[ApiKeyStore] = []
    barrier = threading.Barrier(6)

    def open_one() -> None:
        try:
            barrier.wait()
            stores.append(ApiKeyStore.in_data_dir(tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    key, info = stores[0].create("acme")
    assert all(s.authenticate(key) == info for s in stores)
    for s in stores:
        s.close()


# revocation


def test_revocation_is_seen_by_another_store_at_once(tmp_path: Path) -> None:
    gateway = ApiKeyStore.in_data_dir(tmp_path)  # opened first, like a running gateway
    command = ApiKeyStore.in_data_dir(tmp_path)  # like `streamgate apikey ...`
    key, info = command.create("acme")
    assert gateway.authenticate(key) == info  # a new key works at once too
    assert gateway.tenants() == ["acme"]
    revoked = command.revoke(info.key_id)
    assert revoked is not None and revoked.revoked_at is not None
    assert refusal(gateway, key) == API_KEY_REVOKED
    assert gateway.list() == [revoked]
    command.close()
    gateway.close()


def test_revoke_is_idempotent(store: ApiKeyStore, clock: Clock) -> None:
    key, info = store.create("acme")
    clock.now += 5
    first = store.revoke(key)
    clock.now += 5
    assert store.revoke(key) == first
    assert store.revoke(info.key_id) == first
    assert first is not None and first.revoked_at == NOW + 5
    assert store.list() == [first]


def test_revoke_by_key_or_id(store: ApiKeyStore) -> None:
    key_a, info_a = store.create("acme")
    key_b, info_b = store.create("acme")
    by_id = store.revoke(info_a.key_id)
    assert by_id is not None and by_id.key_id == info_a.key_id
    by_key = store.revoke(f"{key_b}\n")
    assert by_key is not None and by_key.key_id == info_b.key_id
    assert refusal(store, key_a) == refusal(store, key_b) == API_KEY_REVOKED


def test_revoke_unknown(store: ApiKeyStore) -> None:
    key, info = store.create("acme")
    for unknown in ("", "  ", "key_000000000000", "sgk_" + "C" * 43, info.prefix, "x" * 10_000):
        assert store.revoke(unknown) is None
    assert store.authenticate(key) == info


# listing


def test_list(store: ApiKeyStore, clock: Clock) -> None:
    assert store.list() == []
    _, a1 = store.create("acme")
    clock.now += 1
    _, z1 = store.create("zeta")
    clock.now += 1
    key, _ = store.create("acme")
    clock.now += 1
    a2_revoked = store.revoke(key)
    assert store.list() == [a1, z1, a2_revoked]
    assert store.list("acme") == [a1, a2_revoked]
    assert store.list("zeta") == [z1]
    assert store.list("nobody") == []
    assert store.list("ACME") == []


# threads


def test_one_store_from_many_threads(store: ApiKeyStore) -> None:
    keys = [store.create(f"t{i}") for i in range(8)]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            key, info = keys[i]
            for n in range(200):
                assert store.authenticate(key) == info
                if n % 50 == 0:
                    store.create(f"t{i}")
                    store.list(f"t{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.list()) == 8 + 8 * 4
