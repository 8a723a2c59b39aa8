"""Schemathesis hooks for tests/contract/test_schemathesis.py (``SCHEMATHESIS_HOOKS``).

Every webhook URL generated for ``POST /webhooks`` is replaced by one on 127.0.0.1: the
gateway resolves a new endpoint's host, and a generated name must never reach a resolver
off this machine. (Invalid URLs and non-strings still reach the gateway as generated.)
"""

from __future__ import annotations

from typing import Any

import schemathesis

LOOPBACK_TARGET = "http://127.0.0.1:9/schemathesis"  # discard port: deliveries fail locally


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.method.upper() != "POST" or case.operation.path != "/webhooks":
        return
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        body["url"] = LOOPBACK_TARGET
