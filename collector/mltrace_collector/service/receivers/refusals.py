"""Counts of refused exports: for their compression (per transport and encoding), and
every OTLP/HTTP request refused, by reason (``too_large``, ``invalid``, …).

OTLP/HTTP counts each 415 for an unsupported ``Content-Encoding``; OTLP/gRPC counts each
call that gRPC core refused for a ``grpc-encoding`` it cannot decode (see
``grpc_refusals``). ``/healthz`` shows :meth:`EncodingRefusals.snapshot` under
``refused_encodings`` and ``/metrics`` exports ``mltrace_receiver_refused_total``.
Label values are bounded: at most ``MAX_NAMES`` distinct encodings per transport, the rest
(and anything that is not a short token) count as ``other``.

``REQUESTS`` counts OTLP/HTTP requests answered 4xx/5xx by reason, so an operator tells a
body over ``MLTRACE_MAX_BODY_BYTES`` or a compression bomb (``too_large``, 413) from data
that is not OTLP (``invalid``, 400): ``/healthz`` ``refused_requests``, ``/metrics``
``mltrace_receiver_requests_refused_total{transport,reason}``.

Example::

    REFUSALS.add("http", "br")
    REFUSALS.snapshot()   # {"grpc": {"unsupported": 0}, "http": {"br": 1}}
    REQUESTS.add("http", 413)
    REQUESTS.snapshot()   # {"http": {"too_large": 1}}
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

__all__ = ["REFUSALS", "REQUESTS", "EncodingRefusals", "RequestRefusals", "refusal_metrics"]

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

REASONS = {
    400: "invalid",  # not OTLP, corrupt compression, data the index cannot store
    401: "unauthenticated",
    413: "too_large",  # over the body limit, on the wire or once decompressed
    415: "unsupported",  # Content-Type or Content-Encoding
    500: "internal",
    503: "overloaded",
}
"""The reason each refusal status is counted under (others: ``other``)."""


class RequestRefusals:
    """Thread-safe counters ``transport -> reason -> refused requests``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}

    def add(self, transport: str, status: int) -> None:
        reason = REASONS.get(status, "other")
        with self._lock:
            per = self._counts.setdefault(transport, {})
            per[reason] = per.get(reason, 0) + 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {t: dict(per) for t, per in self._counts.items()}


REQUESTS = RequestRefusals()
"""The process-wide counters of refused OTLP/HTTP requests."""


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
    requests = CounterMetricFamily(
        "mltrace_receiver_requests_refused",
        "OTLP/HTTP export requests refused, by reason: too_large (413: body over "
        "MLTRACE_MAX_BODY_BYTES, on the wire or decompressed), invalid (400: not OTLP, "
        "corrupt compression, data the index cannot store), unsupported (415), "
        "unauthenticated (401), overloaded (503), internal (500).",
        labels=["transport", "reason"],
    )
    for transport, per in sorted(REQUESTS.snapshot().items()):
        for reason, count in sorted(per.items()):
            requests.add_metric([transport, reason], count)
    yield requests
