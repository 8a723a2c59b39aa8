"""Write (or, with ``--check``, compare) ``asyncapi.json`` and ``openapi.json``.

``python -m streamgate.spec.build`` after changing :mod:`streamgate.spec`'s schemas;
the files beside this module are what the gateway serves.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamgate.spec.asyncapi import asyncapi_document
from streamgate.spec.openapi import openapi_document

__all__ = ["BUILDERS", "main", "render"]

HERE = Path(__file__).parent
BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "asyncapi.json": asyncapi_document,
    "openapi.json": openapi_document,
}


def render(name: str) -> bytes:
    """The document ``name`` as it must be on disk: indented JSON, one newline at the end."""
    return (json.dumps(BUILDERS[name](), indent=2, ensure_ascii=False) + "\n").encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name in BUILDERS:
        path, text = HERE / name, render(name)
        if args.check:
            if not path.exists() or path.read_bytes() != text:
                stale.append(name)
        else:
            path.write_bytes(text)
            print(f"wrote {path} ({len(text)} bytes)")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m streamgate.spec.build")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
