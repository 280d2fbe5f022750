"""What became of the run spans this process produced: the delivery report.

``otel_mltrace.flush()`` and ``otel_mltrace.shutdown()`` return a :class:`DeliveryReport`.
Every finished span ends in exactly one of: delivered (indexed, or accepted by the
collector), spooled (durably on local disk, sent later by this or the next process that
configures the same endpoint) or dropped (counted here, with the reason). Each run is one
span; record chunks logged with ``log_records`` add one span per chunk.

Example::

    import otel_mltrace as mlt
    report = mlt.flush(timeout_s=30)
    if not report:                      # since the previous report, not all arrived (yet)
        print(report.summary())         # "... 1000 waiting in the spool /home/u/... ..."
    report.total_dropped                # drops since configure()
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
    """What happened since the previous report (``flush()``/``shutdown()`` of the same
    ``configure()``; the first one: since ``configure()``), the totals since
    ``configure()`` (``total_*``), and the spool's state now.

    ``bool(report)`` is True when nothing was dropped since the previous report and nothing
    waits (in memory or in the spool), i.e. everything reached ``destination``; one drop
    does not make every later report false (``total_dropped`` keeps it).

    >>> r = DeliveryReport("embedded", "/tmp/i.db", delivered=3, total_delivered=3)
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
    split: int = 0
    """Requests the collector refused as too large for its body limit that were sent again
    in smaller pieces (nothing lost; only a single span over the limit is dropped)."""
    total_delivered: int = 0
    """``delivered`` since ``configure()`` (every report so far, this one included)."""
    total_spooled: int = 0
    total_replayed: int = 0
    total_dropped: int = 0
    total_dropped_reasons: Mapping[str, int] = field(default_factory=dict)
    total_split: int = 0

    def __bool__(self) -> bool:
        return self.dropped == 0 and self.pending_in_spool == 0 and self.in_memory == 0

    @property
    def undelivered(self) -> int:
        """Spans not at the destination: waiting (spool or memory) plus dropped since the
        previous report."""
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
        if self.total_split:
            since = f" ({self.split} since the previous report)" if self.split else ""
            parts.append(
                f"{self.total_split} requests split since configure(){since} to fit the "
                "collector's body limit (nothing lost; raise the limit to send fewer, larger "
                "requests)"
            )
        if self.dropped:
            parts.append(f"{self.dropped} DROPPED ({_reasons(self.dropped_reasons)})")
        if self.total_dropped > self.dropped:
            parts.append(
                f"{self.total_dropped} dropped in all since configure() "
                f"({_reasons(self.total_dropped_reasons)})"
            )
        return "; ".join(parts) + "."


def _reasons(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))


class DeliveryCounters:
    """Thread-safe counters behind a :class:`DeliveryReport`: totals since
    ``configure()``, and what the previous report already said."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.delivered = 0
        self.spooled = 0
        self.replayed = 0
        self.split = 0
        self.dropped: dict[str, int] = {}
        self._reported: tuple[int, int, int, int, dict[str, int]] = (0, 0, 0, 0, {})

    def add(
        self, *, delivered: int = 0, spooled: int = 0, replayed: int = 0, split: int = 0
    ) -> None:
        with self._lock:
            self.delivered += delivered
            self.spooled += spooled
            self.replayed += replayed
            self.split += split

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
        advance: bool = True,
    ) -> DeliveryReport:
        """The report since the previous one, which (``advance``) it becomes."""
        with self._lock:
            delivered, spooled, replayed, split, dropped = self._reported
            since = {
                reason: n - dropped.get(reason, 0)
                for reason, n in self.dropped.items()
                if n > dropped.get(reason, 0)
            }
            if advance:
                self._reported = (
                    self.delivered, self.spooled, self.replayed, self.split, dict(self.dropped)
                )  # fmt: skip
            return DeliveryReport(
                mode,
                destination,
                delivered=self.delivered - delivered,
                spooled=self.spooled - spooled,
                replayed=self.replayed - replayed,
                dropped=sum(since.values()),
                dropped_reasons=since,
                pending_in_spool=pending_in_spool,
                in_memory=in_memory,
                spool_dir=spool_dir,
                split=self.split - split,
                total_delivered=self.delivered,
                total_spooled=self.spooled,
                total_replayed=self.replayed,
                total_dropped=sum(self.dropped.values()),
                total_dropped_reasons=dict(self.dropped),
                total_split=self.split,
            )


def log_undelivered(report: DeliveryReport) -> None:
    """The one line at exit (or re-``configure()``) when not everything arrived — drops
    an earlier report already told of included, so none goes unmentioned at exit — or when
    requests had to be split for the collector's body limit (a setting to fix)."""
    if not report or report.total_dropped or report.total_split:
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
