"""Scrape a gateway's ``/metrics`` and read its samples, parsed by prometheus_client."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from streamgate.client.http import HttpClient


@dataclass
class Scrape:
    """Samples by name and labels; ``families`` holds each family's name and type."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    families: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` with exactly ``labels``; KeyError when it is not exported."""
        return self.samples[name, frozenset(labels.items())]

    def get(self, name: str, default: float = 0.0, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), default)

    def names(self) -> set[str]:
        """Every sample name exported, and the sample names of every family announced
        (``# TYPE``) even when it has no sample yet: a counter's ``_total``, a
        histogram's ``_bucket``, ``_sum`` and ``_count``."""
        names = {name for name, _ in self.samples} | set(self.families)
        for family, kind in self.families.items():
            if kind == "counter":
                names.add(f"{family}_total")
            elif kind == "histogram":
                names.update(f"{family}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        return names


def parse(text: str) -> Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    families: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return Scrape(samples, families)


async def scrape(base: str) -> Scrape:
    client = HttpClient(base)
    try:
        result = await client.request("GET", "/metrics")
    finally:
        await client.close()
    assert result.status == 200, result.body
    return parse(result.body.decode())
