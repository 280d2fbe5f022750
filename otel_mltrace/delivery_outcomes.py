"""How a delivery attempt's outcome is counted: spooled, accepted, rejected, or dropped.

:class:`DeliveryOutcomes` is the half of the span processor
(:class:`~otel_mltrace.delivery_processor.DeliveringProcessor`) that settles a batch once
its fate is known -- every span ends up in exactly one count of the
:class:`~otel_mltrace.delivery.DeliveryCounters` -- and tracks whether the collector
answers (health and back-off between probes). The processor itself (queue, worker,
flush) mixes it in; it is not used on its own.

Example::

    class DeliveringProcessor(SpanProcessor, DeliveryOutcomes): ...
    self._to_spool(self._encode(spans), len(spans))   # spooled, or dropped with a reason
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan

from otel_mltrace.delivery import DeliveryCounters, IndexWriter
from otel_mltrace.spool import Spool

MAX_REQUEST_BYTES = 3 * 1024 * 1024
"""Largest OTLP request sent or spooled: under gRPC's (and the OTel Collector's) default
4 MiB receive limit."""

log = logging.getLogger("otel_mltrace")


class DeliveryOutcomes:
    """Counting, spooling and health bookkeeping shared by the processor's worker and
    producers (a mixin: the processor's ``__init__`` sets every attribute below)."""

    destination: str
    counters: DeliveryCounters
    _index: IndexWriter | None
    _spool: Spool | None
    _spool_hint: bool
    _spool_warned: bool
    _rejections_logged: int
    _healthy: bool
    _retry_at: float
    _backoff: float

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        # imported here: protobuf and the OTLP encoder cost ~40 ms at `import otel_mltrace`
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        return encode_spans(spans).SerializeToString()

    def _encoded(self, spans: Sequence[ReadableSpan]) -> list[tuple[bytes, int]]:
        """``spans`` as OTLP requests of at most ``MAX_REQUEST_BYTES`` each (a single larger
        span stays whole): one oversized request would be refused by the collector's
        receive limit again and again, and hold up the spool behind it."""
        payload = self._encode(spans)
        if len(payload) <= MAX_REQUEST_BYTES or len(spans) == 1:
            return [(payload, len(spans))]
        half = len(spans) // 2
        return self._encoded(spans[:half]) + self._encoded(spans[half:])

    def _spool_all(self, spans: Sequence[ReadableSpan]) -> None:
        for payload, n in self._encoded(spans):
            self._to_spool(payload, n)

    def _to_spool(self, payload: bytes, n: int) -> None:
        spool = self._spool
        if spool is None or not spool.enabled:
            self.counters.drop(n, "not sent, and the spool is off (MLTRACE_SPOOL_MAX_BYTES=0)")
            return
        try:
            stored = spool.put(payload, n)
        except OSError as exc:
            reason = f"spool directory {spool.directory} unusable ({exc.strerror or exc})"
            self.counters.drop(n, reason)
            if not self._spool_warned:
                self._spool_warned = True
                log.warning("otel-mltrace: %s; set MLTRACE_SPOOL_DIR to a writable one", reason)
            return
        if stored:
            self.counters.add(spooled=n)
            self._spool_hint = True
        else:
            self.counters.drop(n, f"spool full ({spool.max_bytes} bytes, MLTRACE_SPOOL_MAX_BYTES)")

    def _accepted(self, n: int, rejected: int, message: str, replayed: bool = False) -> None:
        ok = n - min(rejected, n)
        self.counters.add(delivered=ok, replayed=ok if replayed else 0)
        if rejected:
            self._reject(min(rejected, n), message)

    def _reject(self, n: int, message: str, reason: str = "") -> None:
        where = "the index" if self._index is not None else "the collector"
        self.counters.drop(n, reason or f"rejected as invalid by {where}")
        self._rejections_logged += 1
        if self._rejections_logged <= 5:  # the reasons of the first few; the rest counted
            log.warning("otel-mltrace: %s rejected %d spans: %s", self.destination, n, message)

    def _probe_due(self) -> bool:
        return time.monotonic() >= self._retry_at

    def _mark_ok(self) -> None:
        if not self._healthy:
            log.warning("otel-mltrace: export to %s recovered", self.destination)
        self._healthy, self._backoff = True, 0.5

    def _mark_failed(self, n: int, message: str) -> None:
        if self._healthy:
            where = self._spool.directory if self._spool and self._spool.enabled else None
            log.warning(
                "otel-mltrace: could not export %d spans to %s (%s); the pipeline goes on. %s",
                n,
                self.destination,
                message or "export failed",
                f"Spans wait in the spool {where} and are sent when the collector answers "
                "(by this process or the next one configured for this endpoint)."
                if where
                else "The spool is off (MLTRACE_SPOOL_MAX_BYTES=0): they are dropped and counted.",
            )
        self._healthy = False
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 30.0)
