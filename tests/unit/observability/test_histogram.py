"""The plain histogram: buckets as Prometheus reads them (``le`` inclusive, cumulative)."""

from __future__ import annotations

from prometheus_client.core import HistogramMetricFamily

from streamgate.observability.histogram import BYTES_BUCKETS, SECONDS_BUCKETS, Histogram


def test_values_fall_in_the_first_bucket_they_do_not_pass() -> None:
    h = Histogram((1.0, 2.0, 5.0))
    for value in (0.5, 1.0, 1.5, 2.0, 4.9, 5.0, 5.1, 100.0):
        h.observe(value)
    assert h.cumulative() == [("1.0", 2), ("2.0", 4), ("5.0", 6), ("+Inf", 8)]
    assert h.count == 8
    assert h.sum == 0.5 + 1.0 + 1.5 + 2.0 + 4.9 + 5.0 + 5.1 + 100.0


def test_empty_histogram_and_unsorted_bounds() -> None:
    h = Histogram((5, 1))
    assert h.bounds == (1, 5)
    assert h.cumulative() == [("1.0", 0), ("5.0", 0), ("+Inf", 0)]


def test_default_buckets_make_a_valid_family() -> None:
    for bounds in (SECONDS_BUCKETS, BYTES_BUCKETS):
        h = Histogram(bounds)
        h.observe(bounds[0])
        family = HistogramMetricFamily("x", "x")
        family.add_metric([], h.cumulative(), sum_value=h.sum)
        inf = [s for s in family.samples if s.labels.get("le") == "+Inf"]
        assert inf and inf[0].value == 1
