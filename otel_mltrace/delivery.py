"""What became of the run spans this process produced: the delivery report.

``otel_mltrace.flush()`` and ``otel_mltrace.shutdown()`` return a :class:`DeliveryReport`.
Every finished span ends in exactly one of: delivered (indexed, or accepted by the
collector), spooled (durably on local disk, sent later by this or the next process that
configures the same endpoint) or dropped (counted here, with the reason). Each run is one
span; record chunks logged with ``log_records`` add one span per chunk.

Example::

    import otel_mltrace as mlt
    report = mlt.flush(timeout_s=30)
    if not report:                      # something is not (yet) at its destination
        print(report.summary())         # "... 1000 waiting in the spool /home/u/... ..."
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry.sdk.trace import ReadableSpan

log = logging.getLogger("otel_mltrace")


@dataclass(frozen=True)
class DeliveryReport:
    """Counts since ``configure()`` set up this destination, and the spool's state now.

    ``bool(report)`` is True when nothing was dropped and nothing waits (in memory or in
    the spool), i.e. everything reached ``destination``.

    >>> r = DeliveryReport("embedded", "/tmp/i.db", delivered=3)
    >>> bool(r), r.summary()
    (True, 'otel-mltrace: 3 spans delivered to /tmp/i.db.')
    """

    mode: str
    """``"embedded"``, ``"otlp"`` or ``"none"`` (nothing configured / no exporter)."""
    destination: str
    delivered: int = 0
    """Spans indexed or accepted by the collector (including ones replayed from the spool)."""
    spooled: int = 0
    """Spans this process wrote to the spool (some may have been delivered since)."""
    replayed: int = 0
    """Spans sent from the spool and accepted (part of ``delivered``)."""
    dropped: int = 0
    dropped_reasons: Mapping[str, int] = field(default_factory=dict)
    """Why spans were dropped: reason -> count."""
    pending_in_spool: int = 0
    """Spans waiting in the spool now (from any process using this endpoint)."""
    in_memory: int = 0
    """Spans still queued in memory (a flush that ran out of time)."""
    spool_dir: str | None = None

    def __bool__(self) -> bool:
        return self.dropped == 0 and self.pending_in_spool == 0 and self.in_memory == 0

    @property
    def undelivered(self) -> int:
        """Spans not at the destination: waiting (spool or memory) plus dropped."""
        return self.pending_in_spool + self.in_memory + self.dropped

    def summary(self) -> str:
        """One sentence a user can act on."""
        parts = [f"otel-mltrace: {self.delivered} spans delivered to {self.destination}"]
        if self.pending_in_spool:
            parts.append(
                f"{self.pending_in_spool} waiting in the spool {self.spool_dir} (sent when "
                "the collector answers, by this or the next process configured for it)"
            )
        if self.in_memory:
            parts.append(f"{self.in_memory} still in memory (flush ran out of time)")
        if self.dropped:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped_reasons.items()))
            parts.append(f"{self.dropped} DROPPED ({why})")
        return "; ".join(parts) + "."


class DeliveryCounters:
    """Thread-safe counters behind a :class:`DeliveryReport`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.delivered = 0
        self.spooled = 0
        self.replayed = 0
        self.dropped: dict[str, int] = {}

    def add(self, *, delivered: int = 0, spooled: int = 0, replayed: int = 0) -> None:
        with self._lock:
            self.delivered += delivered
            self.spooled += spooled
            self.replayed += replayed

    def drop(self, n: int, reason: str) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def report(
        self,
        mode: str,
        destination: str,
        *,
        pending_in_spool: int = 0,
        in_memory: int = 0,
        spool_dir: str | None = None,
    ) -> DeliveryReport:
        with self._lock:
            return DeliveryReport(
                mode,
                destination,
                delivered=self.delivered,
                spooled=self.spooled,
                replayed=self.replayed,
                dropped=sum(self.dropped.values()),
                dropped_reasons=dict(self.dropped),
                pending_in_spool=pending_in_spool,
                in_memory=in_memory,
                spool_dir=spool_dir,
            )


def log_undelivered(report: DeliveryReport) -> None:
    """The one line at exit (or re-``configure()``) when not everything arrived."""
    if not report:
        log.warning("%s", report.summary())


class IndexWriter(Protocol):
    """The embedded index (``mltrace_collector.index.embedded.EmbeddedIndexExporter``)."""

    def index_spans(self, spans: Sequence[ReadableSpan]) -> tuple[int, str]:
        """Index ``spans`` in one transaction; (runs rejected as invalid, why)."""
        ...

    def shutdown(self) -> None: ...

    def after_fork(self) -> None:
        """Forget (do not close) the parent's database connection."""
        ...
