"""Embedded mode: run spans indexed in a local SQLite file, with the collector's own code.

No server is needed: finished spans are decoded by the collector's lineage processor,
with the result it would have had from the OTLP request the exporter would send
(:func:`~mltrace_collector.index.embedded_spans.decode_spans`, which skips the protobuf round trip
for common spans), and written to the same store implementation the collector uses. One
implementation, two deployments.

Example::

    from mltrace_collector.index.embedded import EmbeddedIndexExporter
    exporter = EmbeddedIndexExporter("/tmp/lineage.db")
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from mltrace_collector.index.decode.processor import rejection_message
from mltrace_collector.index.embedded_spans import decode_spans
from mltrace_collector.index.store import Store, open_store


class EmbeddedIndexExporter(SpanExporter):
    """A ``SpanExporter`` that indexes component-run spans into a local lineage store."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._store: Store | None = None
        self._lock = threading.Lock()

    def _open(self) -> Store:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.path)
            return self._store

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.index_spans(spans)
        return SpanExportResult.SUCCESS

    def index_spans(self, spans: Sequence[ReadableSpan]) -> tuple[int, str]:
        """Index ``spans`` in one transaction; returns (runs rejected as invalid, why).

        Spans that are not runs (the application's own spans) are accepted, not indexed.
        """
        batch = decode_spans(spans)
        if batch.runs or batch.record_chunks or batch.run_starts:
            self._open().ingest(batch.runs, batch.record_chunks, batch.run_starts)
        if batch.rejections:
            return len(batch.rejections), rejection_message(batch.rejections)
        return 0, ""

    def after_fork(self) -> None:
        """In a forked child: the parent's SQLite connection is not ours to use or close."""
        self._store = None
        self._lock = threading.Lock()

    def shutdown(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
