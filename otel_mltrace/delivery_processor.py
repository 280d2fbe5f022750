"""The span processor behind ``configure()``: no span is lost without being counted.

It replaces OpenTelemetry's ``BatchSpanProcessor`` (whose full queue drops spans with one
uncounted ``Queue full`` log line). A bounded in-memory queue feeds one worker thread:

* **embedded**: a full queue blocks the thread that ends a run (back-pressure) until the
  worker has indexed a batch; the worker writes everything queued in one transaction
  (group commit), so back-pressure only costs throughput when the disk cannot keep up;
* **OTLP**: a full queue, an unreachable collector or a retryable error sends the spans to
  the on-disk :class:`~otel_mltrace.spool.Spool` instead; the worker replays spooled
  requests as soon as the collector answers (``flush()`` drains the spool too). Spans are
  dropped only past the spool's size cap (or when the collector rejects the data), and
  every drop is counted with its reason in the :class:`~otel_mltrace.delivery.DeliveryReport`.

Example::

    proc = DeliveringProcessor("/tmp/i.db", queue_size=8192, index=EmbeddedIndexExporter(...))
    provider.add_span_processor(proc)
    report = proc.flush(timeout_s=10)
"""

from __future__ import annotations

import logging
import multiprocessing.util
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context, attach, set_value
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_mltrace.delivery import DeliveryCounters, DeliveryReport, IndexWriter, log_undelivered
from otel_mltrace.delivery_outcomes import DeliveryOutcomes
from otel_mltrace.request_split import SizeLimit
from otel_mltrace.sender import Sender
from otel_mltrace.spool import Spool

log = logging.getLogger("otel_mltrace")

OTLP_BATCH = 1024
DEFAULT_EXIT_TIMEOUT_S = 10.0
INDEX_STALL_S = 60.0


INDEX_RETRIES = (0.1, 0.5, 2.0)


class DeliveringProcessor(SpanProcessor, DeliveryOutcomes):
    """Bounded queue + one worker; ``index`` (embedded) or ``sender`` + ``spool`` (OTLP).

    How each batch is settled (counted, spooled, rejected) is
    :class:`~otel_mltrace.delivery_outcomes.DeliveryOutcomes`, mixed in here.
    """

    def __init__(
        self,
        destination: str,
        *,
        queue_size: int,
        index: IndexWriter | None = None,
        sender: Sender | None = None,
        spool: Spool | None = None,
        delay_s: float = 0.2,
    ) -> None:
        if queue_size < 1:
            raise ValueError(
                f"queue size {queue_size} is too small; set MLTRACE_QUEUE_SIZE to at least 1"
            )
        if (index is None) == (sender is None):
            raise ValueError("give exactly one of index= (embedded) or sender= (OTLP)")
        self.destination = destination
        self.mode = "embedded" if index is not None else "otlp"
        self.counters = DeliveryCounters()
        self._index, self._sender, self._spool = index, sender, spool
        self._max = queue_size
        self._take = queue_size if index is not None else min(OTLP_BATCH, queue_size)
        self._delay = delay_s
        # RLock: a signal handler (SIGTERM -> flush) may interrupt on_end holding it
        self._cond = threading.Condition(threading.RLock())
        self._queue: deque[ReadableSpan] = deque()
        self._inflight = 0
        self._closed = False
        self._flush_asked = self._flush_done = 0
        self._flush_deadline = 0.0
        # spans queued / taken off the queue and settled: a flush waits for the spans that
        # ended before it, not for ones ending meanwhile (they may never stop coming)
        self._queued = self._settled = self._flush_target = 0
        self._healthy, self._retry_at, self._backoff = True, 0.0, 0.5
        self._spool_hint = spool is not None and spool.enabled  # other processes' leftovers
        self._index_warned = False
        self._rejections_logged = 0
        self._spool_warned = False
        self._size_limit = SizeLimit()  # the collector's body limit, once it refuses one
        self._start_worker()
        ref = weakref.WeakMethod(self._after_fork)

        def in_child() -> None:
            method = ref()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=in_child)
        # multiprocessing children end with os._exit (no atexit): flush in its exit hook
        multiprocessing.util.register_after_fork(self, DeliveringProcessor._exit_hook)

    def _exit_hook(self) -> None:
        multiprocessing.util.Finalize(self, self._close_at_exit, exitpriority=100)

    def _close_at_exit(self) -> None:
        log_undelivered(self.close(DEFAULT_EXIT_TIMEOUT_S))

    def _start_worker(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otel-mltrace-delivery", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        """A forked child (multiprocessing) gets no thread: start its own, with empty counts;
        the parent's queued spans are the parent's to deliver."""
        self._cond = threading.Condition(threading.RLock())
        self._queue.clear()
        self._inflight = 0
        self._flush_asked = self._flush_done = 0
        self._queued = self._settled = self._flush_target = 0
        self.counters = DeliveryCounters()
        self._size_limit.after_fork()
        if self._spool is not None:
            self._spool.after_fork()
        if self._index is not None:
            self._index.after_fork()
        if self._sender is not None:
            self._sender.after_fork()
        if not self._closed:
            self._start_worker()

    # -- producer side (the user's threads) --------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None or not span.context.trace_flags.sampled:
            return
        overflow: list[ReadableSpan] | None = None
        with self._cond:
            if self._closed:
                overflow = [span]
            elif self._index is not None:
                # (never block the worker itself: an instrumented sqlite3 ends spans there)
                while (
                    len(self._queue) >= self._max
                    and not self._closed
                    and threading.current_thread() is not self._thread
                ):
                    self._cond.notify_all()
                    self._cond.wait(0.5)  # back-pressure: the worker frees room
                self._queue.append(span)
                self._queued += 1
            elif len(self._queue) >= self._max:
                overflow = [*self._queue, span]
                self._settled += len(self._queue)  # settled by this thread, just below
                self._queue.clear()
            else:
                self._queue.append(span)
                self._queued += 1
            if len(self._queue) == self._take:
                self._cond.notify_all()
        if overflow is not None:
            try:
                if self._index is not None:
                    self.counters.drop(len(overflow), "ended after shutdown")
                else:
                    self._spool_all(overflow)
            except Exception:  # export problems never reach user code
                log.debug("spilling spans failed", exc_info=True)
                self.counters.drop(len(overflow), "could not be encoded")

    # -- worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        # as OTel's own batch processor: what the export does (HTTP, gRPC, SQLite) must not
        # be traced by instrumentation, or each export makes spans to export, forever
        attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        while True:
            with self._cond:
                if len(self._queue) < self._take and not self._closed:
                    if self._flush_asked == self._flush_done:
                        self._cond.wait(self._delay)
                batch = [self._queue.popleft() for _ in range(min(self._take, len(self._queue)))]
                self._inflight = len(batch)
                asked, closed = self._flush_asked, self._closed
                self._cond.notify_all()  # producers waiting for room
            try:
                if batch:
                    self._deliver(batch)
            except Exception:  # never let the worker die: count and go on
                log.warning("otel-mltrace: delivery worker error", exc_info=True)
                self.counters.drop(len(batch), "internal error in the delivery worker")
            with self._cond:
                self._inflight = 0
                self._settled += len(batch)
                caught_up = self._settled >= self._flush_target
                flushing = asked != self._flush_done
            try:
                self._replay(drain=flushing and caught_up)
            except Exception:
                log.warning("otel-mltrace: delivery worker error", exc_info=True)
            with self._cond:
                if flushing and caught_up:
                    self._flush_done = asked
                    self._cond.notify_all()
                if closed and not self._queue:
                    return

    def _deliver(self, batch: Sequence[ReadableSpan]) -> None:
        if self._index is not None:
            self._index_write(batch)
            return
        for payload, n in self._encoded(batch):
            self._send_or_spool(payload, n)

    def _send_or_spool(self, payload: bytes, n: int) -> None:
        for piece, k in self._send_pieces(payload, n):
            self._to_spool(piece, k)

    def _index_write(self, batch: Sequence[ReadableSpan]) -> None:
        assert self._index is not None
        error: Exception | None = None
        for pause in (*INDEX_RETRIES, None):
            try:
                rejected, message = self._index.index_spans(batch)
                self._accepted(len(batch), rejected, message)
                return
            except Exception as exc:  # locked or full disk: retry, then count
                error = exc
                if pause is not None:
                    time.sleep(pause)
        reason = f"index write failed ({type(error).__name__}: {str(error)[:120]})"
        self.counters.drop(len(batch), reason)
        if not self._index_warned:
            self._index_warned = True
            log.warning(
                "otel-mltrace: %d spans not indexed in %s: %s", len(batch), self.destination, reason
            )

    def _replay(self, drain: bool) -> None:
        """Send spooled requests: one per call, or all of them (bounded by the flush deadline)."""
        spool, sender = self._spool, self._sender
        if spool is None or sender is None or not self._spool_hint:
            return
        if not self._healthy and not self._probe_due():  # a user's flush made it due
            return
        while True:
            with spool.claim() as batch:
                if batch is None:
                    if drain and spool.pending()[0] and time.monotonic() < self._flush_deadline:
                        time.sleep(0.05)  # other processes are sending the rest: wait for them
                        continue
                    self._spool_hint = False
                    return
                fitted = self._fit(batch.payload, batch.spans)
                left: list[tuple[bytes, int]] = []
                for piece, k in fitted:
                    left += self._send_pieces(piece, k, replayed=True)
                if left == fitted:  # nothing of it settled: the file stays as it is
                    return
                # sent, settled or split: what the collector did not take yet is kept as
                # new files before this one goes (a crash in between sends it twice, as a
                # crash between a send and its unlink always could; never loses it). They
                # take the place of this file in the spool's cap: counted on top of it, a
                # spool more than half full dropped them and then removed the file
                replacing = max(len(batch.payload), sum(len(piece) for piece, _ in left))
                for piece, k in left:
                    self._to_spool(piece, k, count=False, replacing=replacing)
                batch.done()
                if left:
                    return
            if not drain or time.monotonic() > self._flush_deadline:
                return

    # -- flush / shutdown ------------------------------------------------------------------
    def report(self, in_memory: int | None = None, advance: bool = True) -> DeliveryReport:
        """Counts since the previous report (``advance``: this one becomes it) and totals;
        ``in_memory``: spans not yet settled (default: all queued now)."""
        spool = self._spool
        pending = spool.pending()[0] if spool is not None and spool.enabled else 0
        with self._cond:
            if in_memory is None:
                in_memory = len(self._queue) + self._inflight
        return self.counters.report(
            self.mode,
            self.destination,
            pending_in_spool=pending,
            in_memory=in_memory,
            spool_dir=str(spool.directory) if spool is not None and spool.enabled else None,
            advance=advance,
        )

    def flush(self, timeout_s: float = 10.0) -> DeliveryReport:
        """Deliver (or spool) everything queued, then send the spool while the collector
        answers; returns within about ``timeout_s`` (plus one in-flight export) the report
        since the previous one."""
        return self.report(in_memory=self._flush(timeout_s))

    def hand_over(self, timeout_s: float) -> None:
        """The SDK's own flush (run announcements, SIGTERM): every finished span delivered,
        or spooled while the collector is down, without consuming the user's report or
        restarting the retry back-off — announcements come with every long run, and each
        one probing a collector that is down would hammer it."""
        self._flush(timeout_s, probe=False)

    def _flush(self, timeout_s: float, probe: bool = True) -> int:
        """:meth:`flush` without a report: the spans still in memory. ``probe``: try the
        collector once even if the back-off has not elapsed (a flush the user asked for)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flush_asked += 1
            asked = self._flush_asked
            target = self._flush_target = self._queued
            self._flush_deadline = deadline
            if probe:
                self._retry_at = min(self._retry_at, time.monotonic())
            self._spool_hint = self._spool is not None and self._spool.enabled
            self._cond.notify_all()
            while self._flush_done < asked and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return max(0, target - self._settled)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # not a report of the user's: the next flush() still tells what happened
        return bool(self.report(in_memory=self._flush(timeout_millis / 1000), advance=False))

    def close(self, timeout_s: float = 10.0) -> DeliveryReport:
        """Flush, stop the worker, spool what is left in memory (OTLP); the final report.

        Embedded: a local index that is still making progress is waited for past
        ``timeout_s`` (the queue is bounded); only one that finishes no batch for
        ``INDEX_STALL_S`` loses what is left, counted."""
        in_memory = self._flush(timeout_s)
        while self._index is not None and in_memory and self._thread.is_alive():
            before = self._settled
            in_memory = self._flush(max(timeout_s, INDEX_STALL_S))
            if self._settled == before:
                break
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=max(1.0, timeout_s))
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            self._settled += len(left)
        if left:
            if self._index is not None:
                self.counters.drop(len(left), "index write did not finish before shutdown")
            else:
                try:
                    self._spool_all(left)
                except Exception:  # export problems never reach shutdown()'s caller
                    log.debug("spooling the spans left at shutdown failed", exc_info=True)
                    self.counters.drop(len(left), "could not be encoded")
        report = self.report()
        if not self._thread.is_alive():  # else the worker still uses them; exit frees them
            try:
                if self._sender is not None:
                    self._sender.close()
                if self._index is not None:
                    self._index.shutdown()
            except Exception:
                log.debug("closing the export destination failed", exc_info=True)
        return report

    def shutdown(self) -> None:
        log_undelivered(self.close())
