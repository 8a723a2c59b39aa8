"""The SDK's public surface: ``__all__`` names what it exports, and nothing of the server."""

from __future__ import annotations

import ast
import pathlib

import streamgate.client as sdk

EXPECTED = {
    "AuthError", "Backoff", "BookGap", "BookOutOfSync", "ChecksumMismatch", "ClientError",
    "ClosedError", "ConnectError", "Disconnected", "Event", "HttpClient", "HttpResult",
    "LocalOrderBook", "MarketNotFound", "Producer", "ProtocolError", "PublishError",
    "PublishResult", "PublishUnavailable", "PushClient", "Reconnected", "StreamClient",
    "StreamItem", "SubscribeError", "SyncProducer", "list_markets", "mint_ticket",
    "resolve_market", "watch_book",
}  # fmt: skip


def test_all_is_the_public_surface() -> None:
    assert set(sdk.__all__) == EXPECTED
    assert all(hasattr(sdk, name) for name in sdk.__all__)


def test_no_sdk_module_imports_the_server_or_the_hub() -> None:
    root = pathlib.Path(sdk.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(("streamgate.server", "streamgate.hub")), path
