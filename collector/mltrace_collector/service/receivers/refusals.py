"""Counts of exports refused for their compression, per transport and encoding.

OTLP/HTTP counts each 415 for an unsupported ``Content-Encoding``; OTLP/gRPC counts each
call that gRPC core refused for a ``grpc-encoding`` it cannot decode (see
``grpc_refusals``). ``/healthz`` shows :meth:`EncodingRefusals.snapshot` under
``refused_encodings`` and ``/metrics`` exports ``mltrace_receiver_refused_total``.
Label values are bounded: at most ``MAX_NAMES`` distinct encodings per transport, the rest
(and anything that is not a short token) count as ``other``.

Example::

    REFUSALS.add("http", "br")
    REFUSALS.snapshot()   # {"grpc": {"unsupported": 0}, "http": {"br": 1}}
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

__all__ = ["REFUSALS", "EncodingRefusals", "refusal_metrics"]

MAX_NAMES = 16
_TOKEN = re.compile(r"[a-z0-9][a-z0-9._+-]{0,31}")


class EncodingRefusals:
    """Thread-safe counters ``transport -> encoding -> refused exports``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # exported from the start, so increase() sees the first gRPC refusal too
        self._counts: dict[str, dict[str, int]] = {"grpc": {"unsupported": 0}}

    def add(self, transport: str, encoding: str) -> None:
        name = encoding.strip().lower()
        with self._lock:
            per = self._counts.setdefault(transport, {})
            if not _TOKEN.fullmatch(name) or (name not in per and len(per) >= MAX_NAMES):
                name = "other"
            per[name] = per.get(name, 0) + 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {t: dict(per) for t, per in self._counts.items()}


REFUSALS = EncodingRefusals()
"""The process-wide counters (gRPC core's refusals are only visible process-wide)."""


def refusal_metrics() -> Iterator[Metric]:
    """``mltrace_receiver_refused_total{transport,encoding}`` for the Prometheus exporter."""
    family = CounterMetricFamily(
        "mltrace_receiver_refused",
        "OTLP exports refused because their compression is not supported, by transport "
        "and encoding (gRPC core does not say which encoding: 'unsupported').",
        labels=["transport", "encoding"],
    )
    for transport, per in sorted(REFUSALS.snapshot().items()):
        for encoding, count in sorted(per.items()):
            family.add_metric([transport, encoding], count)
    yield family
