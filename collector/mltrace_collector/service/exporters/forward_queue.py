"""The forward queue's items and its bounded, thread-safe intake.

Receiver threads (via the ingest observer) put items; one sender thread takes them. The
bound is in spans (``MLTRACE_FORWARD_QUEUE_SIZE``): an item that would exceed it is
refused and the caller spills or drops it. Items stay counted until the sender reports
them ``done`` (acknowledged, failed or dropped), so the bound covers in-flight batches too.

Example::

    q = ForwardQueue(max_spans=10_000)
    if not q.put(item):
        ...                      # full: spill to disk or count as dropped
    new = q.take(timeout_s=0.5)  # sender side
    q.done(new)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mltrace_collector.service.exporters.forward_links import Consumer


@dataclass
class Item:
    """One received export request waiting to be forwarded."""

    request: ExportTraceServiceRequest
    spans: int
    nbytes: int
    consumers: tuple[Consumer, ...]
    received_ns: int
    """Wall-clock receive time (survives a spill to disk)."""
    hold_until: float
    """``time.monotonic()`` after which the item goes out even without all its links."""
    segment: Path | None = None
    """Spill segment it was loaded from (deleted once all its items are done)."""
    body: bytes | None = None
    """Serialized request with links, once prepared."""
    next_check: float = field(default=0.0)
    checked_at_batch: int = -1
    """Observed-batch counter at the last link lookup: producers only come with new batches."""


class ForwardQueue:
    """Bounded intake (in spans) with a condition the sender waits on."""

    def __init__(self, max_spans: int) -> None:
        if max_spans <= 0:
            raise ValueError(
                f"MLTRACE_FORWARD_QUEUE_SIZE={max_spans} must be a positive number of spans, "
                "e.g. 10000"
            )
        self.max_spans = max_spans
        self._cond = threading.Condition()
        self._incoming: deque[Item] = deque()
        self._spans = 0
        self._bytes = 0
        self._poked = False

    @property
    def spans(self) -> int:
        """Spans held in memory: not yet taken, taken but not done (held, in flight)."""
        return self._spans

    @property
    def bytes(self) -> int:
        """Serialized size of the requests held in memory (what the bound keeps flat)."""
        return self._bytes

    def put(self, item: Item, force: bool = False) -> bool:
        """Queue ``item``; False (and nothing queued) if it would exceed the bound."""
        with self._cond:
            if not force and self._spans + item.spans > self.max_spans:
                return False
            self._incoming.append(item)
            self._spans += item.spans
            self._bytes += item.nbytes
            self._cond.notify()
            return True

    def take(self, timeout_s: float) -> list[Item]:
        """Everything put since the last call; waits up to ``timeout_s`` when empty (or
        until :meth:`wake`)."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while not self._incoming and not self._poked:
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            self._poked = False
            items = list(self._incoming)
            self._incoming.clear()
            return items

    def done(self, items: list[Item]) -> None:
        """The sender finished with ``items``: they leave the bound."""
        with self._cond:
            for item in items:
                self._spans -= item.spans
                self._bytes -= item.nbytes

    def wake(self) -> None:
        """End the sender's current ``take`` now (new data in the spill)."""
        with self._cond:
            self._poked = True
            self._cond.notify_all()
