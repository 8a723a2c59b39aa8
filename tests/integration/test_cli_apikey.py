"""``streamgate apikey create|revoke|list`` as real processes on a data directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamgate.auth.apikeys import API_KEY_REVOKED, ApiKeyError, ApiKeyStore

KEY_RE = re.compile(r"sgk_[A-Za-z0-9_-]{43}")
LINE_RE = re.compile(
    r"(key_[0-9a-f]{12})\t([A-Za-z0-9_.-]+)\t(sgk_[A-Za-z0-9_-]{4})\t"
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\t(active|revoked \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"
)


def run(
    data_dir: Path | None, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMGATE_")}
    if data_dir is not None:
        env["STREAMGATE_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "streamgate", "apikey", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def create(data_dir: Path, tenant: str) -> str:
    result = run(data_dir, "create", "--tenant", tenant)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()[-1]


def test_create_prints_the_key_last_and_list_never_shows_it(tmp_path: Path) -> None:
    result = run(tmp_path, "create", "--tenant", "acme")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    key = lines[-1]
    assert KEY_RE.fullmatch(key), result.stdout
    assert len(lines) == 2 and "acme" in lines[0] and "key_" in lines[0]
    assert key not in lines[0]
    with ApiKeyStore.in_data_dir(tmp_path) as store:
        info = store.authenticate(key)
    assert info.tenant == "acme"
    assert info.key_id in lines[0]

    other = create(tmp_path, "zeta")
    listing = run(tmp_path, "list")
    assert listing.returncode == 0, listing.stderr
    assert key not in listing.stdout and other not in listing.stdout
    rows = [LINE_RE.fullmatch(line) for line in listing.stdout.splitlines()]
    assert all(rows), listing.stdout
    parsed = [m.groups() for m in rows if m]
    first = parsed[0]
    assert (first[0], first[1], first[2], first[4]) == (
        info.key_id,
        "acme",
        key[:8],
        "active",
    )
    assert [r[1] for r in parsed] == ["acme", "zeta"]

    only = run(tmp_path, "list", "--tenant", "zeta")
    assert only.returncode == 0
    assert [line.split("\t")[1] for line in only.stdout.splitlines()] == ["zeta"]
    assert run(tmp_path, "list", "--tenant", "nobody").stdout == ""


@pytest.mark.parametrize("tenant", ["bad name", "a" * 65, "a/b"])
def test_bad_tenant_exits_2(tmp_path: Path, tenant: str) -> None:
    result = run(tmp_path, "create", "--tenant", tenant)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "tenant" in result.stderr
    with ApiKeyStore.in_data_dir(tmp_path) as store:
        assert store.list() == [] and store.tenants() == []


def test_revoke_by_key_and_by_id_seen_by_a_running_store(tmp_path: Path) -> None:
    key = create(tmp_path, "acme")
    key2 = create(tmp_path, "acme")
    with ApiKeyStore.in_data_dir(tmp_path) as gateway:  # opened before the revocation
        info = gateway.authenticate(key)
        info2 = gateway.authenticate(key2)

        result = run(tmp_path, "revoke", key)
        assert result.returncode == 0, result.stderr
        assert "revoked" in result.stdout and info.key_id in result.stdout
        assert key not in result.stdout + result.stderr
        with pytest.raises(ApiKeyError) as refused:
            gateway.authenticate(key)
        assert refused.value.key == API_KEY_REVOKED

        again = run(tmp_path, "revoke", key)  # idempotent
        assert again.returncode == 0 and "revoked" in again.stdout

        by_id = run(tmp_path, "revoke", info2.key_id)
        assert by_id.returncode == 0 and "revoked" in by_id.stdout
        with pytest.raises(ApiKeyError):
            gateway.authenticate(key2)

    statuses = [line.split("\t")[4] for line in run(tmp_path, "list").stdout.splitlines()]
    assert len(statuses) == 2 and all(s.startswith("revoked ") for s in statuses)


def test_revoke_unknown_exits_1(tmp_path: Path) -> None:
    create(tmp_path, "acme")
    for unknown in ("sgk_" + "A" * 43, "key_000000000000"):
        result = run(tmp_path, "revoke", unknown)
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr.strip()


def test_config_file_data_dir(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "from-file"}"\n')
    result = run(None, "create", "--tenant", "acme", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with ApiKeyStore.in_data_dir(tmp_path / "from-file") as store:
        assert store.authenticate(result.stdout.splitlines()[-1]).tenant == "acme"
    # STREAMGATE_DATA_DIR wins over the file, as for serve.
    env_dir = tmp_path / "from-env"
    create(env_dir, "zeta")
    listing = run(env_dir, "list", "--config", str(config))
    assert [line.split("\t")[1] for line in listing.stdout.splitlines()] == ["zeta"]

    broken = tmp_path / "broken.toml"
    broken.write_text("no_such_key = 1\n")
    bad = run(tmp_path, "list", "--config", str(broken))
    assert bad.returncode == 2 and "no_such_key" in bad.stderr
