"""The webhook lease name: kept in data_dir across restarts, one per worker, never shared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamgate.config import load_config
from streamgate.errors import ConfigError
from streamgate.server.workers import WORKER_ENV
from streamgate.webhooks.node import FILE_PREFIX, hold_lease_name


def test_the_name_is_kept_across_restarts(tmp_path: Path) -> None:
    first = hold_lease_name(tmp_path)
    assert first.stable
    first.close()
    again = hold_lease_name(tmp_path)
    assert again.stable and again.name == first.name
    again.close()
    assert (tmp_path / f"{FILE_PREFIX}0").stat().st_mode & 0o777 == 0o600


def test_each_worker_index_has_its_own_name(tmp_path: Path) -> None:
    names = [hold_lease_name(tmp_path, worker=i) for i in range(3)]
    assert len({n.name for n in names}) == 3 and all(n.stable for n in names)
    for n in names:
        n.close()


def test_a_second_process_on_the_name_gets_a_one_off_name(tmp_path: Path) -> None:
    held = hold_lease_name(tmp_path)
    other = hold_lease_name(tmp_path)  # another holder, as a second process would be
    assert not other.stable and other.name != held.name
    held.close()
    assert hold_lease_name(tmp_path).name == held.name


def test_a_killed_holder_leaves_the_name_free(tmp_path: Path) -> None:
    # A process that holds the name and is killed (-9): the kernel drops its lock.
    script = (
        "import sys, time; from pathlib import Path;"
        "from streamgate.webhooks.node import hold_lease_name;"
        "n = hold_lease_name(Path(sys.argv[1])); print(n.name, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        name = proc.stdout.readline().strip()
        assert not hold_lease_name(tmp_path).stable  # held by the live process
    finally:
        proc.kill()
        proc.wait(timeout=10)
    after = hold_lease_name(tmp_path)
    assert after.stable and after.name == name


def test_a_configured_node_name_is_used_per_worker(tmp_path: Path) -> None:
    assert hold_lease_name(tmp_path, name="eu-1").name == "eu-1"
    assert hold_lease_name(tmp_path, worker=2, name="eu-1").name == "eu-1-w2"
    assert hold_lease_name(tmp_path, name="eu-1").stable
    assert not (tmp_path / f"{FILE_PREFIX}0").exists()


def test_serve_workers_sets_each_worker_index(tmp_path: Path) -> None:
    # The supervisor sets STREAMGATE_WORKER_INDEX (server/workers.py WORKER_ENV) per worker.
    config = load_config(env={"STREAMGATE_WORKER_INDEX": "3", "STREAMGATE_DATA_DIR": str(tmp_path)})
    assert config.worker_index == 3
    hold_lease_name(config.data_path, worker=config.worker_index).close()
    assert (tmp_path / f"{FILE_PREFIX}3").exists()
    assert WORKER_ENV == "STREAMGATE_WORKER_INDEX"
    with pytest.raises(ConfigError, match="worker_index"):
        load_config(env={"STREAMGATE_WORKER_INDEX": "-1"})
