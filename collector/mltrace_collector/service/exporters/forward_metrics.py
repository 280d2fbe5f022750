"""Prometheus series of the forwarder (names: docs/metrics.md).

``mltrace_forward_spans_total{outcome="sent"|"failed"|"dropped"}`` and
``mltrace_forward_queue_spans``, built from ``Forwarder.stats()`` at each scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

OUTCOMES = ("sent", "failed", "dropped")


class ForwardMetricsCollector:
    """``prometheus_client`` collector for the forwarding series of docs/metrics.md.

    Example::

        REGISTRY.register(ForwardMetricsCollector(forwarder.stats))
    """

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        spans = CounterMetricFamily(
            "mltrace_forward_spans",
            "Spans forwarded downstream by this replica, by outcome.",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            spans.add_metric([outcome], stats[outcome])
        yield spans
        yield GaugeMetricFamily(
            "mltrace_forward_queue_spans",
            "Spans waiting to be forwarded on this replica (memory and spill).",
            value=stats["queue_spans"],
        )
