"""Every module's __all__ names what it defines."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import streamgate

ROOT = Path(streamgate.__file__).parent

# Packages that export nothing (their modules do).
NO_ALL = {"streamgate.venue"}


def _walked() -> set[str]:
    return {info.name for info in pkgutil.walk_packages(streamgate.__path__, "streamgate.")}


def _on_disk() -> set[str]:
    names = set()
    for path in ROOT.rglob("*.py"):
        parts = ("streamgate", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return names


def _modules() -> list[str]:
    # walk_packages does not descend into directories without __init__.py, so the
    # files on disk are taken too: no module escapes the check.
    names = {"streamgate"} | _walked() | _on_disk()
    return sorted(n for n in names if n.rsplit(".", 1)[-1] != "__main__")  # runs the CLI


MODULES = _modules()


def test_modules_found() -> None:
    for name in (
        "streamgate.protocol.stream",
        "streamgate.protocol.producer",
        "streamgate.protocol.topics",
        "streamgate.hub.hub",
        "streamgate.brokers.memory",
        "streamgate.config",
        "streamgate.cli",
        "streamgate.venue.runner",
    ):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        assert name in NO_ALL, f"{name} has no __all__"
        return
    assert isinstance(exported, list | tuple)
    assert all(isinstance(n, str) for n in exported)
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names missing attributes: {missing}"


def test_walk_packages_sees_every_module() -> None:
    missing = sorted(_on_disk() - _walked() - {"streamgate", "streamgate.__main__"})
    assert missing == []
