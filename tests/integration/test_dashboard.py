"""The Grafana dashboard (deploy/grafana/streamgate.json) reads only series the gateway exports.

Every ``expr`` in it (panels, rows' panels, template variables) is taken apart for the
metric names it uses; each must be a series a real gateway's ``/metrics`` exports after
some traffic (a family with no sample yet, such as a labelled counter nothing has counted,
is exported by name: its ``_total``, or a histogram's ``_bucket``/``_sum``/``_count``).
The other way round, every family the gateway exports is on the dashboard.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamgate.server.app import Gateway

from support import base_url, open_ws, publish_ok, subscribe, trade_event
from support.metrics import scrape

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "streamgate.json"
METRIC = re.compile(r"\bstreamgate_[A-Za-z0-9_]+")
# PromQL functions and label names are not metric names: none starts with streamgate_.


def expressions(node: Any) -> Iterator[str]:
    """Every PromQL expression in the dashboard document, wherever it sits."""
    if isinstance(node, dict):
        for key, value in node.items():
            promql = key in ("expr", "definition") or (key == "query" and "(" in str(value))
            if promql and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def balanced(expr: str) -> bool:
    depth = 0
    for ch in expr:
        depth += {"(": 1, ")": -1, "{": 1, "}": -1, "[": 1, "]": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


async def test_every_dashboard_expression_names_an_exported_series(gw: Gateway) -> None:
    async with open_ws(gw) as ws:
        await subscribe(ws, ["trade/0xdash"])
        await publish_ok(gw, [trade_event("0xdash", 1)])
        await ws.recv()
        exported = await scrape(base_url(gw))
    doc = json.loads(DASHBOARD.read_text())
    exprs = list(expressions(doc))
    assert len(exprs) >= 20
    used: set[str] = set()
    for expr in exprs:
        assert balanced(expr), expr
        names = METRIC.findall(expr)
        assert names, f"no streamgate series in {expr!r}"
        used.update(names)
    known = exported.names()
    unknown = sorted(n for n in used if n not in known)
    assert not unknown, f"the dashboard uses series the gateway does not export: {unknown}"
    for name in used:
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and suffix != "_count":
                family = name.removesuffix(suffix)
                assert exported.families.get(family) == "histogram", name
    families = {name for name, kind in exported.families.items() if name.startswith("streamgate_")}

    def on_dashboard(family: str) -> bool:
        kind = exported.families[family]
        if kind == "histogram":
            return f"{family}_bucket" in used
        if kind == "counter":
            return f"{family}_total" in used
        return family in used

    missing = sorted(f for f in families if not on_dashboard(f))
    assert not missing, f"exported but not on the dashboard: {missing}"


def test_dashboard_is_a_grafana_document() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "streamgate" and doc["panels"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}"
            assert all(t["refId"] and t["expr"] for t in panel["targets"])
