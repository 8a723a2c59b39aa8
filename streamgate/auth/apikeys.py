"""Tenants and their API keys, kept in the gateway's SQLite file (PROTOCOL.md sections 1, 5).

A tenant is an integrator named by a short string (1 to 64 characters of
``[A-Za-z0-9_.-]``, case-sensitive); producers address push events and webhooks with that
name. A tenant holds any number of API keys; it comes into being with its first key and
is never deleted. ``POST /auth/ws-token`` (and the webhook endpoints) authenticate the
``api-key`` header with :meth:`ApiKeyStore.authenticate`.

Keys. A key is ``sgk_`` followed by 32 random bytes in URL-safe base64 (47 characters).
It is returned once, by :meth:`ApiKeyStore.create`, and never stored: the database keeps
its SHA-256 digest, a public ``key_id`` (``key_`` + 12 hex digits, safe to log and list)
and a ``prefix`` (its first 8 characters, ``sgk_`` and 4 more) that lets a person tell
keys apart. A fast hash is enough here, where a password would need a slow KDF (bcrypt,
scrypt, Argon2): those make *guessing* a low-entropy secret from a stolen digest
expensive, but a key carries 256 random bits, so searching for it is hopeless at any
hash speed and a slow hash would add nothing but a per-request cost. An unsalted digest
also lets a key be found by an indexed lookup rather than by trying every row.

Constant time. A presented key is hashed and looked up by digest; the row found is then
checked with :func:`hmac.compare_digest`. The index lookup's timing depends only on the
digest, which an attacker cannot steer byte by byte without SHA-256 preimages, so it
leaks nothing usable about any stored key; unknown and known keys take the same path.

Revocation takes effect at once: :meth:`ApiKeyStore.authenticate` reads the database on
every call (no cache), so ``streamgate apikey revoke`` run by another process is seen by
a running gateway on its next request. A revoked key stays listed with its revocation
time; revoking again changes nothing.

Storage. :data:`DB_NAME` in ``STREAMGATE_DATA_DIR``, shared with other components
(webhooks) and opened by :mod:`streamgate.storage.sqlite` (mode 0600, WAL, busy timeout).
Each component versions its own tables in ``schema_versions`` (here ``"apikeys"``):
:data:`MIGRATIONS` lists this component's steps in order, applied by
:func:`streamgate.storage.migrations.migrate`, each once, in one ``BEGIN IMMEDIATE``
transaction with the version bump, so concurrent first opens agree.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from streamgate.core.identifiers import TENANT_RULE, is_tenant_name
from streamgate.core.text import shown
from streamgate.errors import StreamgateError
from streamgate.storage.sqlite import (
    BUSY_TIMEOUT,
    DB_NAME,
    open_shared,
    shared_db_path,
    write_transaction,
)

__all__ = [
    "API_KEY_REVOKED",
    "BUSY_TIMEOUT",
    "COMPONENT",
    "DB_NAME",
    "INVALID_API_KEY",
    "KEY_BYTES",
    "KEY_ID_PREFIX",
    "KEY_PREFIX",
    "MAX_KEY_CHARS",
    "MIGRATIONS",
    "MISSING_API_KEY",
    "SHOWN_CHARS",
    "ApiKeyError",
    "ApiKeyInfo",
    "ApiKeyStore",
    "check_tenant",
]

COMPONENT: Final = "apikeys"  # this module's row in schema_versions
KEY_PREFIX: Final = "sgk_"
KEY_ID_PREFIX: Final = "key_"
KEY_BYTES: Final = 32
SHOWN_CHARS: Final = 8  # ApiKeyInfo.prefix: "sgk_" and 4 characters of the random part
MAX_KEY_CHARS: Final = 256  # longer strings are refused without a lookup

MISSING_API_KEY: Final = "MISSING_API_KEY"
INVALID_API_KEY: Final = "INVALID_API_KEY"
API_KEY_REVOKED: Final = "API_KEY_REVOKED"

_MESSAGES = {
    MISSING_API_KEY: "API key required",
    INVALID_API_KEY: "Invalid API key",
    API_KEY_REVOKED: "API key revoked",
}

# Each entry is one migration: statements run in order inside one transaction. Append
# new steps; never edit a released one.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE tenants (
            name TEXT PRIMARY KEY NOT NULL,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL REFERENCES tenants(name),
            key_hash BLOB NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        )""",
        "CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at)",
    ),
)


class ApiKeyError(StreamgateError):
    """An ``api-key`` refused (HTTP 401): ``key`` is the error key of PROTOCOL.md section 1.

    ``key`` is :data:`MISSING_API_KEY` (no key or an empty one), :data:`INVALID_API_KEY`
    (no such key) or :data:`API_KEY_REVOKED`; ``message`` a short text for the body.
    """

    status = 401

    def __init__(self, key: str) -> None:
        self.key = key
        self.message = _MESSAGES[key]
        super().__init__(f"{key}: {self.message}")

    def error(self) -> dict[str, Any]:
        """The ``error`` member of the response envelope: ``{code, key, message}``."""
        return {"code": self.status, "key": self.key, "message": self.message}


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What is known of a key besides the key itself; safe to log and list."""

    key_id: str  # "key_" + 12 hex digits
    tenant: str
    prefix: str  # the key's first characters, e.g. "sgk_AbCd"
    created_at: float  # unix seconds
    revoked_at: float | None  # unix seconds, or None while the key is active

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def check_tenant(tenant: str) -> str:
    """Return ``tenant`` if it is a valid tenant name (1..64 of ``[A-Za-z0-9_.-]``).

    Raises:
        ValueError: anything else, with a message saying what is allowed.
    """
    if not is_tenant_name(tenant):
        raise ValueError(f"invalid tenant name {shown(tenant)}: use {TENANT_RULE}")
    return tenant


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _info(row: Sequence[Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row[0], tenant=row[1], prefix=row[2], created_at=row[3], revoked_at=row[4]
    )


class ApiKeyStore:
    """Tenants and API keys in one SQLite file; see the module docstring.

    Thread-safe: one connection, used under a lock (each call is one short statement or
    transaction). Several stores, in one process or several, may share a file. Blocking
    (SQLite file I/O): :meth:`authenticate` is one indexed read, tens of microseconds on
    a warm file, and never waits for a writer (WAL); the writes wait up to
    :data:`BUSY_TIMEOUT` for another writer. Database errors other than those documented
    propagate as :class:`sqlite3.Error`.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        """Open ``path``, creating the file (mode 0600) and this component's tables if needed.

        Raises:
            ConfigError: the file cannot be created or opened, is not a database, or holds
                a schema newer than this version of streamgate knows.
        """
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = open_shared(
            self.path, "PRAGMA foreign_keys = ON", component=COMPONENT, migrations=MIGRATIONS
        )

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ApiKeyStore:
        """Open :data:`DB_NAME` in ``data_dir``, creating the directory if needed.

        Raises:
            ConfigError: as :meth:`__init__`, or the directory cannot be created.
        """
        return cls(shared_db_path(data_dir))

    def create(self, tenant: str) -> tuple[str, ApiKeyInfo]:
        """Make a new key for ``tenant`` (created if new); return it and its info.

        The key itself is returned only here: store it now, it cannot be recovered.

        Raises:
            ValueError: ``tenant`` is not a valid name (see :func:`check_tenant`).
        """
        check_tenant(tenant)
        key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
        now = self._clock()
        with self._lock:
            attempts = 0
            while True:
                info = ApiKeyInfo(
                    key_id=KEY_ID_PREFIX + secrets.token_hex(6),
                    tenant=tenant,
                    prefix=key[:SHOWN_CHARS],
                    created_at=now,
                    revoked_at=None,
                )
                try:
                    self._write(
                        (
                            "INSERT OR IGNORE INTO tenants (name, created_at) VALUES (?, ?)",
                            (tenant, now),
                        ),
                        (
                            "INSERT INTO api_keys (key_id, tenant, key_hash, prefix, created_at)"
                            " VALUES (?, ?, ?, ?, ?)",
                            (info.key_id, tenant, _digest(key), info.prefix, now),
                        ),
                    )
                except sqlite3.IntegrityError:  # a key_id drawn twice (1 in 2**48 odds)
                    attempts += 1
                    if attempts == 3:
                        raise
                    continue
                return key, info

    def _write(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        def run() -> None:
            for sql, params in statements:
                self._db.execute(sql, params)

        write_transaction(self._db, run)

    def revoke(self, key_or_id: str) -> ApiKeyInfo | None:
        """Revoke a key, named by the key itself or by its ``key_id``; at once, for good.

        Returns the key's info (``revoked_at`` set; a key already revoked keeps its first
        revocation time), or None when no key matches.
        """
        if not isinstance(key_or_id, str):
            return None
        key_or_id = key_or_id.strip()
        if not key_or_id or len(key_or_id) > MAX_KEY_CHARS:
            return None
        digest = _digest(key_or_id)
        now = self._clock()
        with self._lock:
            self._write(
                (
                    "UPDATE api_keys SET revoked_at = ?"
                    " WHERE (key_id = ? OR key_hash = ?) AND revoked_at IS NULL",
                    (now, key_or_id, digest),
                )
            )
            row = self._db.execute(
                "SELECT key_id, tenant, prefix, created_at, revoked_at FROM api_keys"
                " WHERE key_id = ? OR key_hash = ?",
                (key_or_id, digest),
            ).fetchone()
        return None if row is None else _info(row)

    def list(self, tenant: str | None = None) -> builtins.list[ApiKeyInfo]:
        """Every key (of ``tenant`` when given), oldest first, revoked ones included."""
        with self._lock:
            if tenant is None:
                rows = self._db.execute(
                    "SELECT key_id, tenant, prefix, created_at, revoked_at FROM api_keys"
                    " ORDER BY created_at, key_id"
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT key_id, tenant, prefix, created_at, revoked_at FROM api_keys"
                    " WHERE tenant = ? ORDER BY created_at, key_id",
                    (tenant,),
                ).fetchall()
        return [_info(row) for row in rows]

    def authenticate(self, key: str | None) -> ApiKeyInfo:
        """Return the info of the active key ``key`` (an ``api-key`` header value).

        Surrounding whitespace is ignored. Reads the database every call, so a revocation
        by any process counts from the next call.

        Raises:
            ApiKeyError: ``MISSING_API_KEY`` for None or an empty key, ``INVALID_API_KEY``
                for a key that is not known, ``API_KEY_REVOKED`` for a revoked one.
        """
        if not isinstance(key, str) or not key.strip():
            raise ApiKeyError(MISSING_API_KEY)
        key = key.strip()
        if len(key) > MAX_KEY_CHARS:
            raise ApiKeyError(INVALID_API_KEY)
        digest = _digest(key)
        with self._lock:
            row = self._db.execute(
                "SELECT key_id, tenant, prefix, created_at, revoked_at, key_hash FROM api_keys"
                " WHERE key_hash = ?",
                (digest,),
            ).fetchone()
        if row is None or not hmac.compare_digest(bytes(row[5]), digest):
            raise ApiKeyError(INVALID_API_KEY)
        info = _info(row)
        if info.revoked_at is not None:
            raise ApiKeyError(API_KEY_REVOKED)
        return info

    def tenants(self) -> builtins.list[str]:
        """Every tenant name, sorted."""
        with self._lock:
            rows = self._db.execute("SELECT name FROM tenants ORDER BY name").fetchall()
        return [str(row[0]) for row in rows]

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards. Idempotent."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> ApiKeyStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
