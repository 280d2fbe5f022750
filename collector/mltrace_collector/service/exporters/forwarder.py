"""The :class:`Forwarder`: bounded, at-least-once forwarding of received spans over OTLP.

The ingest pipeline calls :meth:`Forwarder.observe` after each batch is committed to the
index; it only queues the request and returns (drops are counted, never raised), so a
slow or dead downstream never blocks or fails ingestion. One sender thread:

1. links each consumer run span to its inputs' producer run spans (``forward_links``),
   holding a request up to ``MLTRACE_FORWARD_HOLD_SECONDS`` while a producer is missing
   from the index, then sending it with the links it has;
2. batches prepared requests by concatenating their bytes and exports them
   (``forward_transport``), retrying retryable outcomes with exponential backoff + jitter
   or the server's RetryInfo / Retry-After delay;
3. every request is fsync'd to the spill directory before the receiver acknowledges it
   (write-ahead, ``forward_spill``; ``MLTRACE_FORWARD_SPILL_DIR``, by default beside the
   SQLite index) and read back by the sender: forwarded at least once even after a kill -9,
   bounded on disk. With ``MLTRACE_FORWARD_SPILL_DIR=memory`` the queue is memory only and
   overflow past ``MLTRACE_FORWARD_QUEUE_SIZE`` is dropped and counted.

Plugging it into a running collector is ``install_forwarding`` in
:mod:`mltrace_collector.service.exporters.forward`, which also re-exports :class:`Forwarder` and
:class:`ForwardSettings`.

Example::

    forwarder = Forwarder(ForwardSettings.resolve(forward_endpoint="http://127.0.0.1:4317"),
                          lookup=queries.producer_for)
    pipeline.add_observer(forwarder.observe)
    ...
    forwarder.stop()          # drain, then spill or drop (counted) what is left
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from mltrace_collector.index.decode.processor import decode_request
from mltrace_collector.index.model import DecodedBatch
from mltrace_collector.service.exporters.forward_links import (
    ProducerCache,
    ProducerLookup,
    consumers_of,
    find_links,
    with_links,
)
from mltrace_collector.service.exporters.forward_metrics import OUTCOMES
from mltrace_collector.service.exporters.forward_queue import ForwardQueue, Item
from mltrace_collector.service.exporters.forward_spill import SpillDir
from mltrace_collector.service.exporters.forward_transport import Transport, open_transport
from otel_mltrace.config import resolve_settings

log = logging.getLogger("mltrace_collector.forward")

MAX_BATCH_SPANS = 2048
MAX_BATCH_BYTES = 3 * 1024 * 1024  # under the 4 MiB default receive limit of gRPC servers
RECHECK_S = 0.1
MAX_SERVER_DELAY_S = 60.0


@dataclass(frozen=True)
class ForwardSettings:
    """Forwarding settings; :meth:`resolve` applies argument > ``MLTRACE_*`` env > default."""

    forward_endpoint: str | None
    forward_protocol: str
    forward_headers: dict[str, str] | None
    forward_insecure: bool
    forward_ca_file: str | None
    forward_timeout: float
    forward_queue_size: int
    forward_hold_seconds: float
    forward_spill_dir: str | None
    forward_spill_max_bytes: int
    forward_grace_seconds: float

    @classmethod
    def resolve(cls, **explicit: Any) -> ForwardSettings:
        return resolve_settings(cls, "forward", explicit)


class Forwarder:
    """Bounded, at-least-once OTLP forwarding with cross-trace links. Thread-safe."""

    def __init__(
        self,
        settings: ForwardSettings,
        lookup: ProducerLookup,
        *,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 5.0,
    ) -> None:
        if not settings.forward_endpoint:
            raise ValueError("forwarding needs MLTRACE_FORWARD_ENDPOINT, e.g. http://host:4317")
        if settings.forward_hold_seconds < 0:
            raise ValueError(
                f"MLTRACE_FORWARD_HOLD_SECONDS={settings.forward_hold_seconds} must be >= 0"
            )
        self.settings = settings
        self._producers = ProducerCache(lookup)
        self._transport: Transport = open_transport(
            settings.forward_endpoint,
            settings.forward_protocol,
            settings.forward_headers,
            settings.forward_insecure,
            settings.forward_ca_file,
        )
        self.queue = ForwardQueue(settings.forward_queue_size)
        self.spill = (
            SpillDir(settings.forward_spill_dir, settings.forward_spill_max_bytes)
            if settings.forward_spill_dir
            else None
        )
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(OUTCOMES, 0) | {"spilled": 0, "retries": 0}
        self._last_error = ""
        self._held: list[Item] = []
        self._batches_seen = 0
        self._ready: list[Item] = []
        self._segments: dict[Path, int] = {}  # spill segment -> items not yet done
        self._last_full_warning = -1e9
        self._stopping = threading.Event()
        self._drain_deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="mltrace-forward", daemon=True)
        self._thread.start()

    # -- receiver side ----------------------------------------------------------------------
    def observe(self, request: ExportTraceServiceRequest, batch: DecodedBatch) -> None:
        """Ingest observer: queue the request (or spill / drop it) and return at once."""
        spans = len(batch.runs) + len(batch.rejections) + batch.other_spans
        if spans == 0:
            return
        self._producers.remember(batch.runs)
        self._batches_seen += 1  # racy increments are fine: any change triggers a recheck
        now_ns = time.time_ns()
        item = Item(
            request=request,
            spans=spans,
            nbytes=request.ByteSize(),
            consumers=consumers_of(batch.runs),
            received_ns=now_ns,
            hold_until=time.monotonic() + self.settings.forward_hold_seconds,
        )
        if self.spill is not None:
            # Write-ahead: durable (fsync'd) before the receiver acknowledges the export, so
            # a crash (kill -9, OOM, power) after the ack cannot lose it; the sender reads
            # it back from the spill and deletes a segment once all of it is acknowledged.
            try:
                stored = self.spill.append(request.SerializeToString(), spans, now_ns)
            except OSError as exc:  # the index has it; only its forwarding is lost: say so
                log.warning("forward spill write failed (%s): %d spans not forwarded", exc, spans)
                self._count("dropped", spans)
                return
            if stored:
                self._count("spilled", spans)
                self.queue.wake()
            else:
                self._dropped_full(spans)
            return
        if not self._stopping.is_set() and self.queue.put(item):
            return
        self._count("dropped", spans)

    def _dropped_full(self, spans: int) -> None:
        self._count("dropped", spans)
        now = time.monotonic()
        if now - self._last_full_warning >= 10.0:
            self._last_full_warning = now
            log.warning(
                "forward spill %s is full (MLTRACE_FORWARD_SPILL_MAX_BYTES=%d): %d spans "
                "dropped instead of forwarded (downstream %s down or slow; raise the bound "
                "or fix the downstream)",
                self.settings.forward_spill_dir,
                self.settings.forward_spill_max_bytes,
                spans,
                self.settings.forward_endpoint,
            )

    # -- sender side ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            now = time.monotonic()
            if self._stopping.is_set() and (now >= self._drain_deadline or self._idle()):
                return
            self._refill_from_spill()
            wait = 0.0 if self._ready else (RECHECK_S if self._held else 0.5)
            for item in self.queue.take(wait):
                self._prepare(item)
            self._recheck_held()
            batch = self._next_batch()
            if batch:
                self._send(batch)

    def _idle(self) -> bool:
        spill_left = self.spill is not None and self.spill.spans > 0
        return self.queue.spans == 0 and not spill_left

    def _prepare(self, item: Item) -> None:
        item.checked_at_batch = self._batches_seen
        found = find_links(item.consumers, self._producers.lookup)
        now = time.monotonic()
        if found.missing and now < item.hold_until and not self._stopping.is_set():
            item.next_check = now + RECHECK_S
            self._held.append(item)
            return
        request = with_links(item.request, found.links) if found.links else item.request
        item.body = request.SerializeToString()
        self._ready.append(item)

    def _recheck_held(self) -> None:
        if not self._held:
            return
        now = time.monotonic()
        force = self._stopping.is_set()
        seen = self._batches_seen

        def due(item: Item) -> bool:
            if force or now >= item.hold_until:
                return True  # send now, with the links found by then
            return item.next_check <= now and item.checked_at_batch != seen

        ready = [i for i in self._held if due(i)]
        if ready:
            self._held = [i for i in self._held if not due(i)]
            for item in ready:
                self._prepare(item)

    def _next_batch(self) -> list[Item]:
        batch: list[Item] = []
        spans = nbytes = 0
        while self._ready:
            item = self._ready[0]
            size = len(item.body or b"")
            if batch and (spans + item.spans > MAX_BATCH_SPANS or nbytes + size > MAX_BATCH_BYTES):
                break
            batch.append(self._ready.pop(0))
            spans += item.spans
            nbytes += size
        return batch

    def _refill_from_spill(self) -> None:
        if self.spill is None or self.queue.spans > self.queue.max_spans // 2:
            return
        if self.spill.pending_segments == 0:
            return
        segment = self.spill.take_oldest()
        if segment is None:
            return
        if not segment.records:
            self.spill.release(segment.path)
            return
        self._segments[segment.path] = len(segment.records)
        hold_ns = int(self.settings.forward_hold_seconds * 1e9)
        for record in segment.records:
            request = ExportTraceServiceRequest.FromString(record.payload)
            left_s = max(0.0, (record.received_ns + hold_ns - time.time_ns()) / 1e9)
            item = Item(
                request=request,
                spans=record.spans,
                nbytes=len(record.payload),
                consumers=consumers_of(decode_request(request).runs),
                received_ns=record.received_ns,
                hold_until=time.monotonic() + left_s,
                segment=segment.path,
            )
            self.queue.put(item, force=True)

    def _send(self, batch: list[Item]) -> None:
        body = b"".join(item.body or b"" for item in batch)
        spans = sum(item.spans for item in batch)
        attempt = 0
        while True:
            result = self._transport.send(body, self.settings.forward_timeout)
            if result.ok:
                rejected = min(spans, result.rejected_spans)
                self._count("sent", spans - rejected)
                if rejected:
                    self._count("failed", rejected)
                    log.warning("downstream rejected %d spans: %s", rejected, result.error)
                break
            with self._lock:
                self._last_error = result.error
            if not result.retryable:
                self._count("failed", spans)
                log.warning("forwarding %d spans failed permanently: %s", spans, result.error)
                break
            delay = self._backoff(attempt, result.retry_after_s)
            attempt += 1
            self._count("retries", 1)
            if time.monotonic() + delay > self._drain_deadline:
                self._leftover(batch)
                return
            log.info("forward: %s; retry %d in %.2fs", result.error, attempt, delay)
            if self._stopping.is_set():
                time.sleep(delay)  # draining: keep retrying until the deadline
            else:
                self._stopping.wait(delay)
        self._finish(batch)

    def _backoff(self, attempt: int, server_delay: float | None) -> float:
        if server_delay is not None:
            return min(MAX_SERVER_DELAY_S, max(0.0, server_delay))
        ceiling = min(self._max_backoff_s, self._initial_backoff_s * (2**attempt))
        return random.uniform(ceiling / 2, ceiling)  # jitter, not crypto

    def _finish(self, items: list[Item]) -> None:
        self.queue.done(items)
        if self.spill is None:
            return
        for item in items:
            if item.segment is not None:
                left = self._segments[item.segment] - 1
                self._segments[item.segment] = left
                if left == 0:
                    del self._segments[item.segment]
                    self.spill.release(item.segment)

    def _leftover(self, items: list[Item]) -> None:
        """At shutdown: spill what is unsent (segment items stay in their files) or drop."""
        for item in items:
            if item.segment is not None:
                continue
            payload = item.request.SerializeToString()
            if self.spill is not None and self.spill.append(payload, item.spans, item.received_ns):
                self._count("spilled", item.spans)
            else:
                self._count("dropped", item.spans)
        self.queue.done(items)

    # -- lifecycle and metrics --------------------------------------------------------------
    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self._counts[key] += n

    def stats(self) -> dict[str, Any]:
        """Counters (sent/failed/dropped spans, spilled, retries) and queue gauges."""
        with self._lock:
            out: dict[str, Any] = dict(self._counts)
            out["last_error"] = self._last_error
        spill_spans = self.spill.waiting_spans if self.spill is not None else 0
        out["queue_spans"] = self.queue.spans + spill_spans
        out["queue_bytes"] = self.queue.bytes
        out["spill_bytes"] = self.spill.size_bytes if self.spill is not None else 0
        out["endpoint"] = self.settings.forward_endpoint
        return out

    def stop(self, grace_s: float | None = None) -> None:
        """Drain for up to ``grace_s`` (default ``forward_grace_seconds``), then spill or
        drop what is left, and close the connection. Idempotent."""
        if self._stopping.is_set():
            return
        grace = self.settings.forward_grace_seconds if grace_s is None else grace_s
        self._drain_deadline = time.monotonic() + max(0.0, grace)
        self._stopping.set()
        self.queue.wake()
        self._thread.join(grace + self.settings.forward_timeout + 1.0)
        leftover = self._ready + self._held + self.queue.take(0.0)
        self._ready, self._held = [], []
        self._leftover(leftover)
        if self.spill is not None:
            self.spill.close()
        self._transport.close()
