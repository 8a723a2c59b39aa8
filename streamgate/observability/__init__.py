"""Operability: plain counters the hot path keeps, bounded rings, and log setup.

Nothing here imports another streamgate package, so every layer (hub, brokers,
webhooks, server) can keep its figures in these types; ``server/metrics.py`` turns them
into Prometheus series when scraped.
"""

__all__: list[str] = []
